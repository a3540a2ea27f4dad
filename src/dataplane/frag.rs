//! Fragments of a datagram to or from a conn. Only the first fragment
//! carries the ports that find the conn (and, with several workers, the
//! worker that owns it), so the worker remembers them per datagram, keyed
//! by (source, destination, protocol, IP identification), and lends them
//! to the fragments that follow; each fragment is then forwarded like a
//! whole packet of the flow. The real server (or the client) reassembles:
//! rvs does not.
//!
//! The table is a fixed array of 4-way buckets: an insert takes the key's
//! own slot, an empty or timed-out one, or else evicts the bucket's oldest
//! entry, so both operations are O(1) and memory never grows. An entry
//! lives `TIMEOUT_MS`, the kernel's default ipfrag_time, counted from the
//! first fragment.
//!
//! A later fragment that arrives before its first finds nothing and is
//! dropped (counted as `frag_no_first`) rather than held: holding it would
//! keep mbufs across polls in a queue an attacker could fill, and a sender
//! emits a datagram's fragments in order on one path (Linux does), so the
//! case is rare. Its datagram is then lost as if a fragment were, and the
//! application's retransmission recovers it. With several workers the
//! first fragment and the later ones must come in on one queue; NIC RSS
//! hashes every fragment of a datagram by its addresses alone (the NIC
//! sees no ports in a later fragment, and classes the first as a fragment
//! too), so they do.

use std::net::IpAddr;

use crate::netstack::Millis;

/// How long the first fragment's ports are kept (ipfrag_time, 30 s).
pub const TIMEOUT_MS: Millis = 30_000;
/// Entries per worker.
pub const CAPACITY: usize = 4096;
const WAYS: usize = 4;

/// A datagram, as RFC 791 and RFC 8200 identify its fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub ident: u32,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    key: FragKey,
    ports: (u16, u16),
    expires: Millis,
}

pub struct FragTable {
    slots: Vec<Option<Slot>>,
    bucket_mask: usize,
}

impl FragTable {
    /// A table of at least `capacity` entries (rounded up to a power of
    /// two, at least one bucket).
    pub fn new(capacity: usize) -> FragTable {
        let buckets = capacity.div_ceil(WAYS).max(1).next_power_of_two();
        FragTable {
            slots: vec![None; buckets * WAYS],
            bucket_mask: buckets - 1,
        }
    }

    fn bucket(&self, k: &FragKey) -> usize {
        let fold = |a: IpAddr| match a {
            IpAddr::V4(a) => u64::from(u32::from(a)),
            IpAddr::V6(a) => {
                let v = u128::from(a);
                (v as u64) ^ ((v >> 64) as u64).rotate_left(17)
            }
        };
        let mut x = fold(k.src)
            ^ fold(k.dst).rotate_left(29)
            ^ (u64::from(k.ident) << 8 | u64::from(k.proto));
        // splitmix64's finaliser.
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        (x as usize & self.bucket_mask) * WAYS
    }

    /// Remembers the ports of the datagram `key` from its first fragment.
    /// A first fragment seen again (a retransmission, or the ident reused)
    /// replaces the entry and restarts its time.
    pub fn insert(&mut self, key: FragKey, ports: (u16, u16), now: Millis) {
        let b = self.bucket(&key);
        let bucket = &mut self.slots[b..b + WAYS];
        let i = bucket
            .iter()
            .position(|s| s.is_some_and(|s| s.key == key))
            .or_else(|| {
                bucket
                    .iter()
                    .position(|s| s.is_none_or(|s| s.expires <= now))
            })
            .unwrap_or_else(|| {
                (0..WAYS)
                    .min_by_key(|&i| bucket[i].map_or(0, |s| s.expires))
                    .unwrap_or(0)
            });
        bucket[i] = Some(Slot {
            key,
            ports,
            expires: now + TIMEOUT_MS,
        });
    }

    /// The ports of the datagram `key`, while its entry lives.
    pub fn ports(&self, key: &FragKey, now: Millis) -> Option<(u16, u16)> {
        let b = self.bucket(key);
        self.slots[b..b + WAYS]
            .iter()
            .flatten()
            .find(|s| s.key == *key && s.expires > now)
            .map(|s| s.ports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ident: u32) -> FragKey {
        FragKey {
            src: "198.51.100.7".parse().unwrap(),
            dst: "203.0.113.10".parse().unwrap(),
            proto: 17,
            ident,
        }
    }

    #[test]
    fn a_first_fragment_lends_its_ports_for_30_seconds() {
        let mut t = FragTable::new(64);
        t.insert(key(1), (40000, 53), 1000);
        assert_eq!(t.ports(&key(1), 1000), Some((40000, 53)));
        assert_eq!(t.ports(&key(1), 30_999), Some((40000, 53)));
        assert_eq!(t.ports(&key(1), 31_000), None);
        assert_eq!(t.ports(&key(2), 1000), None);
        let mut other = key(1);
        other.proto = 6;
        assert_eq!(t.ports(&other, 1000), None);
        other = key(1);
        other.src = "198.51.100.8".parse().unwrap();
        assert_eq!(t.ports(&other, 1000), None);
        // The ident reused by a new datagram: the new ports win.
        t.insert(key(1), (40001, 53), 2000);
        assert_eq!(t.ports(&key(1), 2000), Some((40001, 53)));
        // 32-bit IPv6 idents are told apart.
        let k6 = |ident| FragKey {
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
            proto: 17,
            ident,
        };
        t.insert(k6(0x1_0000), (1, 2), 0);
        assert_eq!(t.ports(&k6(0x1_0000), 0), Some((1, 2)));
        assert_eq!(t.ports(&k6(0), 0), None);
    }

    #[test]
    fn a_full_table_evicts_the_oldest_and_never_grows() {
        let mut t = FragTable::new(16);
        assert_eq!(t.slots.len(), 16);
        for i in 0..10_000u32 {
            t.insert(key(i), (i as u16, 1), Millis::from(i));
        }
        assert_eq!(t.slots.len(), 16);
        // The newest entries are all there: each insert evicted the oldest
        // of its bucket, never a newer one.
        assert_eq!(t.ports(&key(9_999), 9_999), Some((9_999, 1)));
        let live = (0..10_000u32)
            .filter(|&i| t.ports(&key(i), 10_000).is_some())
            .count();
        assert_eq!(live, 16);
    }
}
