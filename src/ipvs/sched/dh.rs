//! The dh scheduler (ip_vs_dh.c): the packet's destination address picks
//! one of 256 buckets, and each bucket belongs to one dest for good, so a
//! given destination (a cache's origin server) always reaches the same dest.
//!
//! The kernel fills its buckets by walking the dest list cyclically, one
//! bucket per dest per lap and weights ignored, which leaves bucket `b` with
//! dest `b mod n`. That arithmetic is the whole table, so rvs computes it on
//! the spot instead of storing it: the result is the table the kernel would
//! have built from the same list, and it can never go stale.
use std::sync::Arc;

use super::{addr_fold, hash_32, SchedFlags, Scheduler, Tuple};
use crate::ipvs::dest::Dest;
use crate::ipvs::Millis;

/// CONFIG_IP_VS_DH_TAB_BITS.
const TAB_BITS: u32 = 8;

pub struct Dh;

impl Dh {
    /// dh has no scheduler flags; the argument keeps all constructors alike.
    pub fn new(_flags: SchedFlags) -> Self {
        Dh
    }
}

/// The bucket a destination address hashes to.
fn bucket(input: &Tuple) -> usize {
    hash_32(addr_fold(input.daddr), TAB_BITS) as usize
}

impl Scheduler for Dh {
    fn name(&self) -> &'static str {
        "dh"
    }

    fn schedule(&mut self, dests: &[Arc<Dest>], input: &Tuple, _now: Millis) -> Option<usize> {
        if dests.is_empty() {
            return None;
        }
        let i = bucket(input) % dests.len();
        let d = &dests[i];
        // No fallback: an origin pinned to a dead cache must bypass the
        // cache rather than pollute another one.
        if !d.is_available() || d.weight() <= 0 || d.is_overloaded() {
            return None;
        }
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::dest::{DestConfig, FwdMethod};
    use std::net::IpAddr;

    fn dest(addr: &str, weight: i32) -> Arc<Dest> {
        let cfg = DestConfig {
            addr: addr.parse().unwrap(),
            port: 80,
            fwd: FwdMethod::DirectRoute,
            weight,
            u_threshold: 0,
            l_threshold: 0,
        };
        Arc::new(Dest::new(&cfg, 1))
    }

    fn to(daddr: &str) -> Tuple {
        let daddr: IpAddr = daddr.parse().unwrap();
        let saddr: IpAddr = if daddr.is_ipv4() {
            "198.51.100.7".parse().unwrap()
        } else {
            "2001:db8::7".parse().unwrap()
        };
        Tuple {
            proto: 6,
            saddr,
            sport: 40000,
            daddr,
            dport: 80,
        }
    }

    #[test]
    fn buckets_hash_the_destination_address_by_hand() {
        // 10.0.0.1 = 0x0a000001; 0x0a000001 * 0x61C88647 mod 2^32
        //   = 0x61C88647 + (10 * 0x47 = 0x2C6) << 24 = 0x61C88647 + 0xC6000000
        //   = 0x27C88647 (mod 2^32); top 8 bits 0x27 = 39.
        assert_eq!(bucket(&to("10.0.0.1")), 39);
        // 0.0.0.2: 2 * 0x61C88647 = 0xC3910C8E; top byte 0xC3 = 195.
        assert_eq!(bucket(&to("0.0.0.2")), 195);
        // The source address plays no part.
        let mut other_src = to("10.0.0.1");
        other_src.saddr = "203.0.113.99".parse().unwrap();
        assert_eq!(bucket(&other_src), 39);
        // 2001:db8::1 folds to 0x20010db8 ^ 1 = 0x20010db9, the same word as
        // the v4 address 32.1.13.185.
        assert_eq!(bucket(&to("2001:db8::1")), bucket(&to("32.1.13.185")));
    }

    #[test]
    fn buckets_cycle_through_the_list_ignoring_weights() {
        let dests = vec![
            dest("10.1.0.1", 1),
            dest("10.1.0.2", 5),
            dest("10.1.0.3", 100),
        ];
        let mut dh = Dh::new(SchedFlags::default());
        // Bucket 39 of a three-dest cycle A B C A B C ... is 39 mod 3 = 0: A.
        assert_eq!(dh.schedule(&dests, &to("10.0.0.1"), 0), Some(0));
        // Bucket 195: 195 mod 3 = 0 as well; with two dests 195 mod 2 = 1.
        assert_eq!(dh.schedule(&dests, &to("0.0.0.2"), 0), Some(0));
        assert_eq!(dh.schedule(&dests[..2], &to("0.0.0.2"), 0), Some(1));
        // 0.0.0.1 hashes to 0x61 = 97; 97 mod 3 = 1: B, whatever the weights.
        assert_eq!(dh.schedule(&dests, &to("0.0.0.1"), 0), Some(1));
        // Every destination keeps its dest while the list is unchanged.
        for _ in 0..3 {
            assert_eq!(dh.schedule(&dests, &to("0.0.0.1"), 0), Some(1));
        }
    }

    #[test]
    fn unusable_dest_gives_none_without_fallback() {
        let dests = vec![
            dest("10.1.0.1", 1),
            dest("10.1.0.2", 1),
            dest("10.1.0.3", 1),
        ];
        let mut dh = Dh::new(SchedFlags(SchedFlags::ALL));
        let input = to("0.0.0.1"); // bucket 97 -> index 1
        assert_eq!(dh.schedule(&dests, &input, 0), Some(1));

        dests[1].set_overloaded(true);
        assert_eq!(dh.schedule(&dests, &input, 0), None);
        dests[1].set_overloaded(false);

        dests[1].set_weight(0);
        assert_eq!(dh.schedule(&dests, &input, 0), None, "quiesced");
        dests[1].set_weight(3);

        dests[1].set_unavailable();
        assert_eq!(dh.schedule(&dests, &input, 0), None, "not AVAILABLE");
        // Other destinations are unaffected.
        assert_eq!(dh.schedule(&dests, &to("10.0.0.1"), 0), Some(0));
    }

    #[test]
    fn empty_list_gives_none() {
        let mut dh = Dh::new(SchedFlags::default());
        assert_eq!(dh.name(), "dh");
        assert_eq!(dh.schedule(&[], &to("10.0.0.1"), 0), None);
        dh.update(&[]);
        assert_eq!(dh.schedule(&[], &to("10.0.0.1"), 0), None);
    }
}
