//! A worker's table of things kept per service (its scheduler instances,
//! its FULLNAT pools): values in slots that keep their place while their
//! key lives, found by key through a hash map, and the key last found by a
//! compare alone, as a worker's new conns come in runs of one service's.
//! A slot emptied is taken again by the next value added. Below the
//! layers that use it (ipvs, the dataplane), importing none of them.
use std::hash::Hash;

use hashbrown::HashMap;

pub struct KeyedSlots<K, V> {
    slots: Vec<Option<(K, V)>>,
    by_key: HashMap<K, usize>,
    /// The key last found or added, and its slot.
    last: Option<(K, usize)>,
}

impl<K, V> Default for KeyedSlots<K, V> {
    fn default() -> Self {
        KeyedSlots {
            slots: Vec::new(),
            by_key: HashMap::new(),
            last: None,
        }
    }
}

impl<K: Copy + Eq + Hash, V> KeyedSlots<K, V> {
    /// The slot of `key`'s value, if it has one.
    #[inline(always)]
    pub fn find(&mut self, key: K) -> Option<usize> {
        match self.last {
            Some((k, i)) if k == key => Some(i),
            _ => self.find_out(key),
        }
    }

    /// `find` of a key other than the last.
    #[inline(never)]
    fn find_out(&mut self, key: K) -> Option<usize> {
        let i = *self.by_key.get(&key)?;
        self.last = Some((key, i));
        Some(i)
    }

    /// Adds `v` as `key`'s value, which `key` has none of: its slot.
    pub fn add(&mut self, key: K, v: V) -> usize {
        let e = Some((key, v));
        let i = match self.slots.iter().position(Option::is_none) {
            Some(i) => {
                self.slots[i] = e;
                i
            }
            None => {
                self.slots.push(e);
                self.slots.len() - 1
            }
        };
        self.by_key.insert(key, i);
        self.last = Some((key, i));
        i
    }

    /// The value in slot `i` (`find`, `add`).
    #[inline(always)]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut V> {
        self.slots.get_mut(i)?.as_mut().map(|(_, v)| v)
    }

    /// `key`'s value, if it has one.
    pub fn get_mut_by_key(&mut self, key: K) -> Option<&mut V> {
        let i = *self.by_key.get(&key)?;
        self.get_mut(i)
    }

    /// Every value, with its key.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.slots.iter().flatten().map(|(k, v)| (k, v))
    }

    /// Drops the values whose key `keep` refuses; their slots are empty
    /// until values added later take them.
    pub fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        let slots = &mut self.slots;
        self.by_key.retain(|k, &mut i| {
            let kept = keep(k);
            if !kept {
                slots[i] = None;
            }
            kept
        });
        self.last = None;
    }

    /// How many keys have a value.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_finds_its_own_value_whichever_was_found_last() {
        let mut t = KeyedSlots::default();
        let a = t.add(1u64, "a");
        let b = t.add(2u64, "b");
        assert_ne!(a, b);
        // Found through the map (the last added was 2), then by the compare.
        for _ in 0..2 {
            let i = t.find(1).unwrap();
            assert_eq!(t.get_mut(i).map(|v| *v), Some("a"));
        }
        let i = t.find(2).unwrap();
        assert_eq!(t.get_mut(i).map(|v| *v), Some("b"));
        assert_eq!(t.find(3), None);
        assert_eq!(t.get_mut_by_key(1).map(|v| *v), Some("a"));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn a_dropped_keys_slot_serves_the_next_value_and_the_key_is_gone() {
        let mut t = KeyedSlots::default();
        let a = t.add(1u64, "a");
        t.add(2u64, "b");
        assert_eq!(t.find(1), Some(a));
        // The last found is dropped: it must not be found by the compare.
        t.retain(|k| *k != 1);
        assert_eq!(t.find(1), None);
        assert_eq!(t.len(), 1);
        assert_eq!(t.add(3u64, "c"), a);
        let i = t.find(3).unwrap();
        assert_eq!(t.get_mut(i).map(|v| *v), Some("c"));
        let mut all: Vec<(u64, &str)> = t.iter().map(|(k, v)| (*k, *v)).collect();
        all.sort();
        assert_eq!(all, [(2, "b"), (3, "c")]);
    }
}
