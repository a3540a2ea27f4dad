//! Which worker holds a NAT conn, by its reply tuple: what lets a NAT conn
//! live where RSS put its client's packets (DESIGN.md, "Per-lcore
//! ownership"). A reply (real server → client) names neither the VIP nor
//! the worker, and the device hashes it to a queue of its own; the worker
//! that made the conn writes its index here before the first packet goes
//! out, so the reply's worker finds the owner and hands the reply over
//! (counted as `nat_reply`), never a message late.
//!
//! Shared by all workers without a lock: cache-line buckets of eight
//! 64-bit entries (a 48-bit tag of the tuple's hash and the owner), each
//! written by one compare-and-swap. A tuple lives in the emptier of its two
//! buckets; two full buckets refuse the conn (`DropReason::NatIndexFull`), which
//! at the sizes rvsd gives (four entries per conn all workers can hold, up
//! to 64 MiB) does not happen short of a hostile hash flood: the hash is
//! keyed per run.
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ipvs::Tuple;

const WAYS: usize = 8;
const MAX_BUCKETS: usize = 1 << 20;
const OWNER_BITS: u32 = 16;
const TAG_MASK: u64 = !((1 << OWNER_BITS) - 1);

#[repr(align(64))]
struct Bucket([AtomicU64; WAYS]);

pub struct NatReplies {
    buckets: Box<[Bucket]>,
    mask: usize,
    /// Keys the hash per run, so clients cannot aim at one bucket.
    seed: u64,
}

fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn addr_word(a: IpAddr) -> u64 {
    match a {
        IpAddr::V4(v) => u64::from(u32::from(v)),
        IpAddr::V6(v) => {
            let x = u128::from(v);
            mix((x >> 64) as u64) ^ x as u64
        }
    }
}

impl NatReplies {
    /// Room for `conns` NAT conns at a quarter of the entries, in at most
    /// `MAX_BUCKETS` buckets (64 MiB, 2M conns at that load; more fill it
    /// to half and still fit).
    pub fn new(conns: usize, seed: u64) -> NatReplies {
        let n = (conns * 4 / WAYS)
            .next_power_of_two()
            .clamp(64, MAX_BUCKETS);
        NatReplies {
            buckets: (0..n)
                .map(|_| Bucket(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
            mask: n - 1,
            seed,
        }
    }

    pub fn memory_bytes(&self) -> usize {
        self.buckets.len() * std::mem::size_of::<Bucket>()
    }

    /// The tuple's two buckets (it goes in the emptier: with two choices
    /// no bucket fills at these loads) and its tag.
    fn place(&self, t: &Tuple) -> ([&Bucket; 2], u64) {
        let h = mix(addr_word(t.saddr)
            ^ self.seed
            ^ mix(addr_word(t.daddr).rotate_left(17))
            ^ (u64::from(t.sport) << 32 | u64::from(t.dport) << 16 | u64::from(t.proto)));
        let g = mix(h ^ self.seed);
        let b = [
            &self.buckets[(h.rotate_left(32) as usize) & self.mask],
            &self.buckets[(g as usize) & self.mask],
        ];
        // A zero tag would read as an empty entry's.
        (b, (h & TAG_MASK).max(1 << OWNER_BITS))
    }

    /// Notes that `owner` holds the conn whose replies are `reply`. False
    /// when both of the tuple's buckets are full.
    pub fn insert(&self, reply: &Tuple, owner: usize) -> bool {
        let (bs, tag) = self.place(reply);
        let entry = tag | (owner as u64 + 1);
        // Our own tuple again (a conn made anew on it): take it over.
        for e in bs.iter().flat_map(|b| &b.0) {
            let cur = e.load(Ordering::Relaxed);
            if cur != 0
                && cur & TAG_MASK == tag
                && e.compare_exchange(cur, entry, Ordering::Release, Ordering::Relaxed)
                    .is_ok()
            {
                return true;
            }
        }
        let free = |b: &Bucket| {
            b.0.iter()
                .filter(|e| e.load(Ordering::Relaxed) == 0)
                .count()
        };
        let order = if free(bs[1]) > free(bs[0]) {
            [bs[1], bs[0]]
        } else {
            bs
        };
        for e in order.iter().flat_map(|b| &b.0) {
            if e.load(Ordering::Relaxed) == 0
                && e.compare_exchange(0, entry, Ordering::Release, Ordering::Relaxed)
                    .is_ok()
            {
                return true;
            }
        }
        false
    }

    /// The conn `owner` noted for `reply` is gone.
    pub fn remove(&self, reply: &Tuple, owner: usize) {
        let (bs, tag) = self.place(reply);
        let entry = tag | (owner as u64 + 1);
        for e in bs.iter().flat_map(|b| &b.0) {
            if e.compare_exchange(entry, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }

    /// The worker holding the conn `reply` answers.
    pub fn owner(&self, reply: &Tuple) -> Option<usize> {
        let (bs, tag) = self.place(reply);
        bs.iter().flat_map(|b| &b.0).find_map(|e| {
            let v = e.load(Ordering::Acquire);
            (v != 0 && v & TAG_MASK == tag).then(|| (v & !TAG_MASK) as usize - 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn reply(k: u32) -> Tuple {
        Tuple {
            proto: 6,
            saddr: IpAddr::V4(Ipv4Addr::new(10, 1, 0, (k % 7) as u8 + 1)),
            sport: 8080,
            daddr: IpAddr::V4(Ipv4Addr::from(0xac10_0000 + k / 1000)),
            dport: 10_000 + (k % 1000) as u16,
        }
    }

    #[test]
    fn owners_are_found_by_their_reply_tuple_until_removed() {
        let idx = NatReplies::new(100_000, 42);
        for k in 0..100_000 {
            assert!(idx.insert(&reply(k), (k % 5) as usize), "{k}");
        }
        for k in 0..100_000 {
            assert_eq!(idx.owner(&reply(k)), Some((k % 5) as usize), "{k}");
        }
        assert_eq!(idx.owner(&reply(100_001)), None);
        for k in (0..100_000).step_by(2) {
            idx.remove(&reply(k), (k % 5) as usize);
        }
        for k in 0..1000 {
            let want = (k % 2 == 1).then_some((k % 5) as usize);
            assert_eq!(idx.owner(&reply(k)), want, "{k}");
        }
        // Removal by another owner than the holder leaves it.
        idx.remove(&reply(1), 3);
        assert_eq!(idx.owner(&reply(1)), Some(1));
    }

    #[test]
    fn a_tuple_made_anew_takes_its_entry_over() {
        let idx = NatReplies::new(64, 1);
        assert!(idx.insert(&reply(9), 0));
        assert!(idx.insert(&reply(9), 1));
        assert_eq!(idx.owner(&reply(9)), Some(1));
        idx.remove(&reply(9), 1);
        assert_eq!(idx.owner(&reply(9)), None);
    }

    #[test]
    fn full_buckets_refuse_rather_than_evict() {
        // 64 buckets of 8: 600 tuples fill some pairs of buckets.
        let idx = NatReplies::new(16, 7);
        let mut refused = 0;
        let mut kept = Vec::new();
        for k in 0..600 {
            if idx.insert(&reply(k), 2) {
                kept.push(k);
            } else {
                refused += 1;
            }
        }
        assert!(refused > 0);
        assert!(kept.iter().all(|&k| idx.owner(&reply(k)) == Some(2)));
    }
}
