//! A hashed timing wheel threaded through a slab: each slot is an intrusive
//! doubly linked list of slab indices, so filing, unfiling and popping are
//! O(1) and nothing is allocated after `new`.
//!
//! The wheel only decides when an entry is looked at again; the entry's own
//! expiry time decides whether it is due. That is what makes a per-packet
//! refresh O(1): the owner moves the expiry later and leaves the entry where
//! it is, and when the old slot comes round the entry is filed again.
//! Entries more than one revolution away are parked in the farthest slot
//! and re-filed each time round.

/// No entry (also: "not on the wheel" as a prev link).
pub const NIL: u32 = u32::MAX;

/// A prev link with this bit set names the slot whose list the entry heads,
/// so unlinking a head needs no search. Slab indices stay below it.
const HEAD: u32 = 0x8000_0000;

/// The largest slab index the wheel can hold.
pub const MAX_INDEX: u32 = HEAD - 2;

/// Granularity of the wheel: an entry is handled at most this late.
pub const TICK_MS: u64 = 16;

const SLOTS: usize = 1 << 16;

/// What the wheel needs from a slab entry: two links it alone writes.
pub trait WheelNode {
    fn wheel_links(&self) -> (u32, u32);
    fn set_wheel_prev(&mut self, prev: u32);
    fn set_wheel_next(&mut self, next: u32);
}

fn set_prev<N: WheelNode>(slab: &mut [N], i: u32, v: u32) {
    if let Some(n) = slab.get_mut(i as usize) {
        n.set_wheel_prev(v);
    }
}

fn set_next<N: WheelNode>(slab: &mut [N], i: u32, v: u32) {
    if let Some(n) = slab.get_mut(i as usize) {
        n.set_wheel_next(v);
    }
}

#[derive(Debug)]
pub struct Wheel {
    heads: Box<[u32]>,
    /// The first wheel tick not yet handled.
    cursor: u64,
    started: bool,
    linked: usize,
}

impl Default for Wheel {
    fn default() -> Self {
        Wheel::new()
    }
}

impl Wheel {
    pub fn new() -> Wheel {
        Wheel {
            heads: vec![NIL; SLOTS].into_boxed_slice(),
            cursor: 0,
            started: false,
            linked: 0,
        }
    }

    /// Bytes the wheel holds, for memory accounting.
    pub fn memory_bytes(&self) -> usize {
        self.heads.len() * std::mem::size_of::<u32>()
    }

    /// What every wheel holds (`memory_bytes`), known before making one.
    pub const fn bytes() -> usize {
        SLOTS * std::mem::size_of::<u32>()
    }

    pub fn len(&self) -> usize {
        self.linked
    }

    pub fn is_empty(&self) -> bool {
        self.linked == 0
    }

    fn start(&mut self, now: u64) {
        if !self.started {
            self.cursor = now / TICK_MS;
            self.started = true;
        }
    }

    fn slot(tick: u64) -> usize {
        (tick as usize) & (SLOTS - 1)
    }

    /// Whether ticks that `now` has completely passed are still to be
    /// looked at (`pop_due` has something to do, if only to move on).
    #[inline]
    pub fn behind(&self, now: u64) -> bool {
        self.started && self.linked > 0 && self.cursor < (now + 1) / TICK_MS
    }

    /// Whether entry `i` is on the wheel.
    pub fn is_linked<N: WheelNode>(slab: &[N], i: u32) -> bool {
        slab.get(i as usize)
            .is_some_and(|n| n.wheel_links().0 != NIL)
    }

    /// Files entry `i` (not on the wheel) to be looked at once `at_ms` has
    /// passed, or sooner when that is beyond one revolution.
    #[inline]
    pub fn link<N: WheelNode>(&mut self, slab: &mut [N], i: u32, at_ms: u64, now: u64) {
        if i > MAX_INDEX || i as usize >= slab.len() {
            return;
        }
        self.start(now);
        let last = self.cursor + (SLOTS as u64 - 1);
        let tick = (at_ms / TICK_MS).clamp(self.cursor, last);
        let s = Self::slot(tick);
        let old = self.heads[s];
        set_prev(slab, i, HEAD | s as u32);
        set_next(slab, i, old);
        if old != NIL {
            set_prev(slab, old, i);
        }
        self.heads[s] = i;
        self.linked += 1;
    }

    /// Takes entry `i` off the wheel; nothing happens when it is not on it.
    pub fn unlink<N: WheelNode>(&mut self, slab: &mut [N], i: u32) {
        let Some((prev, next)) = slab.get(i as usize).map(|n| n.wheel_links()) else {
            return;
        };
        if prev == NIL {
            return;
        }
        if prev & HEAD != 0 {
            if let Some(h) = self.heads.get_mut((prev & !HEAD) as usize) {
                *h = next;
            }
        } else {
            set_next(slab, prev, next);
        }
        if next != NIL {
            set_prev(slab, next, prev);
        }
        set_prev(slab, i, NIL);
        set_next(slab, i, NIL);
        self.linked = self.linked.saturating_sub(1);
    }

    /// Takes off and returns one entry filed at a tick that `now` has
    /// completely passed, advancing the cursor over empty slots; None once
    /// nothing filed up to `now` is left.
    pub fn pop_due<N: WheelNode>(&mut self, slab: &mut [N], now: u64) -> Option<u32> {
        self.start(now);
        // Tick t covers [t*TICK, (t+1)*TICK); it is due once now reaches its end.
        let end = (now + 1) / TICK_MS;
        if self.linked == 0 {
            self.cursor = self.cursor.max(end);
            return None;
        }
        while self.cursor < end {
            let head = self.heads[Self::slot(self.cursor)];
            if head != NIL {
                self.unlink(slab, head);
                return Some(head);
            }
            self.cursor += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy)]
    struct N(u32, u32);
    impl WheelNode for N {
        fn wheel_links(&self) -> (u32, u32) {
            (self.0, self.1)
        }
        fn set_wheel_prev(&mut self, p: u32) {
            self.0 = p;
        }
        fn set_wheel_next(&mut self, n: u32) {
            self.1 = n;
        }
    }

    fn drain(w: &mut Wheel, slab: &mut [N], now: u64) -> Vec<u32> {
        std::iter::from_fn(|| w.pop_due(slab, now)).collect()
    }

    #[test]
    fn entries_come_due_within_one_tick_and_not_before() {
        let mut slab = vec![N(NIL, NIL); 4];
        let mut w = Wheel::new();
        w.link(&mut slab, 0, 1000, 0);
        w.link(&mut slab, 1, 2000, 0);
        w.link(&mut slab, 2, 2000, 0);
        assert!(drain(&mut w, &mut slab, 999).is_empty());
        assert_eq!(drain(&mut w, &mut slab, 1000 + TICK_MS - 1), [0]);
        let mut got = drain(&mut w, &mut slab, 2000 + TICK_MS);
        got.sort();
        assert_eq!(got, [1, 2]);
        assert!(w.is_empty());
    }

    #[test]
    fn unlink_from_head_middle_and_tail() {
        let mut slab = vec![N(NIL, NIL); 4];
        let mut w = Wheel::new();
        for i in 0..4 {
            w.link(&mut slab, i, 500, 0);
        }
        w.unlink(&mut slab, 3); // head
        w.unlink(&mut slab, 1); // middle
        w.unlink(&mut slab, 0); // tail
        w.unlink(&mut slab, 0); // twice: no effect
        assert_eq!(w.len(), 1);
        assert_eq!(drain(&mut w, &mut slab, 10_000), [2]);
        assert!(!Wheel::is_linked(&slab, 2));
    }

    #[test]
    fn far_entries_park_in_the_last_slot() {
        let mut slab = vec![N(NIL, NIL); 1];
        let mut w = Wheel::new();
        let far = 10 * SLOTS as u64 * TICK_MS;
        w.link(&mut slab, 0, far, 0);
        let first = (SLOTS as u64 - 1) * TICK_MS;
        assert!(drain(&mut w, &mut slab, first - 1).is_empty());
        assert_eq!(
            drain(&mut w, &mut slab, first + TICK_MS),
            [0],
            "looked at after one revolution"
        );
        w.link(&mut slab, 9, 5, 0);
        assert!(w.is_empty(), "an index outside the slab is refused");
    }
}
