//! The sh scheduler (ip_vs_sh.c): the client's address (and, with sh-port,
//! its port) picks one of 256 buckets, each owned by one dest, so a client
//! keeps reaching the same dest while the dest list stays the same.
//!
//! Weights shape the table: walking the list cyclically, each dest owns
//! `weight` consecutive buckets (at least one) until all 256 are taken.
//! sh-fallback re-hashes past an unusable dest the way the kernel does.
use std::sync::{Arc, Weak};

use super::{addr_fold, hash_32, SchedFlags, Scheduler, Tuple};
use crate::ipvs::dest::Dest;
use crate::ipvs::Millis;

/// CONFIG_IP_VS_SH_TAB_BITS.
const TAB_BITS: u32 = 8;
const TAB_SIZE: usize = 1 << TAB_BITS;
const TAB_MASK: u32 = (1 << TAB_BITS) - 1;

/// The protocols whose first four payload bytes are the two ports; any
/// other protocol hashes with port 0 even with sh-port, as the kernel does.
const PORT_PROTOS: [u8; 3] = [6, 17, 132];

pub struct Sh {
    flags: SchedFlags,
    /// The list the table was built from. Weak: identity without keeping a
    /// removed dest alive, and without its address being reused meanwhile.
    built_from: Vec<Weak<Dest>>,
    /// Index into `built_from` per bucket; empty when the list was empty.
    buckets: Vec<u32>,
}

impl Sh {
    pub fn new(flags: SchedFlags) -> Self {
        Sh {
            flags,
            built_from: Vec::new(),
            buckets: Vec::new(),
        }
    }

    fn rebuild(&mut self, dests: &[Arc<Dest>]) {
        self.built_from = dests.iter().map(Arc::downgrade).collect();
        self.buckets = layout(dests);
    }

    fn is_built_from(&self, dests: &[Arc<Dest>]) -> bool {
        self.built_from.len() == dests.len()
            && self
                .built_from
                .iter()
                .zip(dests)
                .all(|(w, d)| std::ptr::eq(w.as_ptr(), Arc::as_ptr(d)))
    }
}

/// The kernel's bucket fill. A dest moves on once its run reaches its
/// weight, and the check comes after the bucket is taken, so weight 0 (or
/// less) still owns one bucket per lap; a weight sum above 256 leaves the
/// dests late in the list with none.
fn layout(dests: &[Arc<Dest>]) -> Vec<u32> {
    if dests.is_empty() {
        return Vec::new();
    }
    let mut buckets = Vec::with_capacity(TAB_SIZE);
    let (mut cur, mut run) = (0usize, 0i32);
    while buckets.len() < TAB_SIZE {
        buckets.push(cur as u32);
        run += 1;
        if run >= dests[cur].weight() {
            cur = (cur + 1) % dests.len();
            run = 0;
        }
    }
    buckets
}

/// ip_vs_sh_hashkey: the hash of port plus folded address, then shifted by
/// `offset` within the table.
fn hashkey(fold: u32, port: u16, offset: u32) -> usize {
    (offset.wrapping_add(hash_32(u32::from(port).wrapping_add(fold), TAB_BITS)) & TAB_MASK) as usize
}

/// Weight 0 (quiesced) or OVERLOAD. Dests leave the list when deleted, so
/// the AVAILABLE flag needs no check here (the kernel's sh has none either).
fn is_unavailable(d: &Dest) -> bool {
    d.weight() <= 0 || d.is_overloaded()
}

impl Scheduler for Sh {
    fn name(&self) -> &'static str {
        "sh"
    }

    fn schedule(&mut self, dests: &[Arc<Dest>], input: &Tuple, _now: Millis) -> Option<usize> {
        if !self.is_built_from(dests) {
            self.rebuild(dests);
        }
        if self.buckets.is_empty() {
            return None;
        }
        let port = if self.flags.port() && PORT_PROTOS.contains(&input.proto) {
            input.sport
        } else {
            0
        };
        let fold = addr_fold(input.saddr);
        let usable = |bucket: usize| {
            let i = self.buckets[bucket] as usize;
            dests.get(i).filter(|d| !is_unavailable(d)).map(|_| i)
        };

        let ihash = hashkey(fold, port, 0);
        if let Some(i) = usable(ihash) {
            return Some(i);
        }
        if !self.flags.fallback() {
            return None;
        }
        // The kernel starts its walk at a point derived from the original
        // hash so that a given client always falls back to the same dest:
        // probe k lands on bucket (k + 2 * ihash) mod 256.
        (0..TAB_SIZE).find_map(|offset| {
            let roffset = (offset + ihash) % TAB_SIZE;
            usable(hashkey(fold, port, roffset as u32))
        })
    }

    fn update(&mut self, dests: &[Arc<Dest>]) {
        self.rebuild(dests);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::dest::{DestConfig, FwdMethod};

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

    fn dests(weights: &[i32]) -> Vec<Arc<Dest>> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| dest(&format!("10.1.0.{}", i + 1), w))
            .collect()
    }

    fn from(saddr: &str, proto: u8, sport: u16) -> Tuple {
        Tuple {
            proto,
            saddr: saddr.parse().unwrap(),
            sport,
            daddr: "192.0.2.1".parse().unwrap(),
            dport: 80,
        }
    }

    #[test]
    fn weights_give_consecutive_buckets_and_zero_still_gets_one() {
        let list = dests(&[2, 0, 3]);
        let mut sh = Sh::new(SchedFlags::default());
        sh.update(&list);
        // A A B C C C, then again: one lap is 2 + 1 + 3 = 6 buckets.
        assert_eq!(&sh.buckets[..9], &[0, 0, 1, 2, 2, 2, 0, 0, 1]);
        assert_eq!(sh.buckets.len(), 256);
        // 256 = 42 laps (252 buckets) + A A B C.
        let count = |i: u32| sh.buckets.iter().filter(|&&b| b == i).count();
        assert_eq!((count(0), count(1), count(2)), (86, 43, 127));
    }

    #[test]
    fn weights_over_256_starve_the_later_dests() {
        let list = dests(&[300, 1]);
        let mut sh = Sh::new(SchedFlags::default());
        sh.update(&list);
        assert!(sh.buckets.iter().all(|&b| b == 0));
    }

    #[test]
    fn source_address_hash_by_hand() {
        // 0.0.0.1 -> hash_32(1, 8) = 0x61C88647 >> 24 = 97; 97 = 16*6 + 1,
        // position 1 of the lap A A B C C C: A.
        // 0.0.0.2 -> 0xC3910C8E >> 24 = 195 = 32*6 + 3: C.
        let list = dests(&[2, 0, 3]);
        let mut sh = Sh::new(SchedFlags::default());
        assert_eq!(hashkey(1, 0, 0), 97);
        assert_eq!(hashkey(2, 0, 0), 195);
        assert_eq!(sh.schedule(&list, &from("0.0.0.1", 6, 1234), 0), Some(0));
        assert_eq!(sh.schedule(&list, &from("0.0.0.2", 6, 1234), 0), Some(2));
        // The destination address plays no part.
        let mut other = from("0.0.0.1", 6, 1234);
        other.daddr = "203.0.113.5".parse().unwrap();
        assert_eq!(sh.schedule(&list, &other, 0), Some(0));
    }

    #[test]
    fn sh_port_adds_the_source_port_for_tcp_udp_sctp_only() {
        let list = dests(&[2, 0, 3]);
        let mut plain = Sh::new(SchedFlags::default());
        let mut port = Sh::new(SchedFlags(SchedFlags::SCHED2));
        // Port 1 + 0.0.0.1 hashes as the value 2: bucket 195, C; port 0 keeps
        // bucket 97, A.
        assert_eq!(port.schedule(&list, &from("0.0.0.1", 6, 0), 0), Some(0));
        assert_eq!(port.schedule(&list, &from("0.0.0.1", 6, 1), 0), Some(2));
        assert_eq!(port.schedule(&list, &from("0.0.0.1", 17, 1), 0), Some(2));
        assert_eq!(port.schedule(&list, &from("0.0.0.1", 132, 1), 0), Some(2));
        // ICMP has no ports: hashed with 0.
        assert_eq!(port.schedule(&list, &from("0.0.0.1", 1, 1), 0), Some(0));
        // Without sh-port the port is ignored.
        assert_eq!(plain.schedule(&list, &from("0.0.0.1", 6, 1), 0), Some(0));
    }

    #[test]
    fn unavailable_dest_without_fallback_gives_none() {
        let list = dests(&[1, 1, 1]);
        let mut sh = Sh::new(SchedFlags::default());
        // Bucket 97 of the cycle A B C: 97 mod 3 = 1, B.
        let input = from("0.0.0.1", 6, 1);
        assert_eq!(sh.schedule(&list, &input, 0), Some(1));
        list[1].set_overloaded(true);
        assert_eq!(sh.schedule(&list, &input, 0), None);
        list[1].set_overloaded(false);
        list[1].set_weight(0);
        sh.update(&list);
        // Weight 0 still owns its buckets, but takes nothing new.
        assert_eq!(sh.buckets[97], 1);
        assert_eq!(sh.schedule(&list, &input, 0), None);
    }

    #[test]
    fn fallback_follows_the_kernels_rehash_walk() {
        let list = dests(&[1, 1, 1]);
        let mut sh = Sh::new(SchedFlags(SchedFlags::SCHED1));
        let input = from("0.0.0.1", 6, 1);
        // ihash 97 -> B. Probe k reads bucket (k + 2*97) mod 256: k = 0 is
        // bucket 194 (C), k = 1 bucket 195 (A) -- not the neighbour 98.
        assert_eq!(sh.schedule(&list, &input, 0), Some(1));
        list[1].set_overloaded(true);
        assert_eq!(sh.schedule(&list, &input, 0), Some(2));
        list[2].set_weight(0);
        assert_eq!(sh.schedule(&list, &input, 0), Some(0));
        list[0].set_overloaded(true);
        assert_eq!(sh.schedule(&list, &input, 0), None, "every dest unusable");
        // The walk wraps: ihash 195 (0.0.0.2) starts at (2*195) mod 256 = 134
        // and steps 134, 135, ...; only B usable -> first B bucket from 134
        // in the cycle (134 mod 3 = 2: C, 135: A, 136: B).
        list[0].set_overloaded(false);
        list[0].set_weight(0);
        list[1].set_overloaded(false);
        let mut probe = Sh::new(SchedFlags(SchedFlags::SCHED1));
        assert_eq!(probe.schedule(&list, &from("0.0.0.2", 6, 1), 0), Some(1));
    }

    #[test]
    fn tables_follow_the_list_they_are_given() {
        let list = dests(&[1, 1, 1]);
        let mut sh = Sh::new(SchedFlags::default());
        // Never updated: built on first use.
        assert_eq!(sh.schedule(&list, &from("0.0.0.1", 6, 1), 0), Some(1));
        // A different list (one removed) rebuilds: 97 mod 2 = 1.
        let shorter = vec![list[0].clone(), list[2].clone()];
        assert_eq!(sh.schedule(&shorter, &from("0.0.0.1", 6, 1), 0), Some(1));
        // Same length, other dests: still rebuilt, not reused.
        let other = vec![list[2].clone(), list[0].clone()];
        assert_eq!(sh.schedule(&other, &from("0.0.0.2", 6, 1), 0), Some(1));
        assert_eq!(sh.buckets[..4], [0, 1, 0, 1]);
        // A weight edit is picked up by update: weights 2,1 -> A A B.
        other[0].set_weight(2);
        sh.update(&other);
        assert_eq!(sh.buckets[..6], [0, 0, 1, 0, 0, 1]);
    }

    #[test]
    fn empty_list_gives_none() {
        let mut sh = Sh::new(SchedFlags(SchedFlags::ALL));
        assert_eq!(sh.name(), "sh");
        assert_eq!(sh.schedule(&[], &from("0.0.0.1", 6, 1), 0), None);
        let list = dests(&[1]);
        sh.update(&list);
        assert_eq!(sh.schedule(&[], &from("0.0.0.1", 6, 1), 0), None);
    }
}
