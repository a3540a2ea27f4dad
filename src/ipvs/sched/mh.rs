//! The mh scheduler (ip_vs_mh.c): Maglev consistent hashing. Each dest
//! walks its own permutation of a prime-sized lookup table and claims
//! slots in turn, in proportion to its weight; the client's address (and,
//! with mh-port, its port) then indexes the table. Adding or removing a dest
//! moves only a small share of the clients.
//!
//! The table is built from `last_weight`, so quiescing a dest (weight 0)
//! leaves every slot where it was: the quiesced dest's clients get None, or
//! with mh-fallback are re-hashed elsewhere, and come back when it returns.
use std::sync::{Arc, Weak};

use super::{addr_fold, SchedFlags, Scheduler, Tuple};
use crate::ipvs::dest::Dest;
use crate::ipvs::error::IpvsError;
use crate::ipvs::Millis;

/// The table sizes the kernel can be built with (CONFIG_IP_VS_MH_TAB_INDEX
/// 8..=17 picks one); primes so that every skip walks the whole table.
pub const PRIMES: [u32; 10] = [
    251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
];

/// CONFIG_IP_VS_MH_TAB_INDEX's default, 12: table size 4093.
const DEFAULT_TAB_INDEX: u32 = 12;

/// The kernel's fixed hsiphash keys (generate_hash_secret): both words of
/// each key hold the same constant, so every kernel hashes alike.
const HASH1: u64 = 2_654_435_761;
const HASH2: u64 = 2_654_446_892;

/// The protocols whose first four payload bytes are the two ports; any
/// other protocol hashes with port 0 even with mh-port, as the kernel does.
const PORT_PROTOS: [u8; 3] = [6, 17, 132];

pub struct Mh {
    flags: SchedFlags,
    /// The lookup table's length, one of `PRIMES`.
    size: u32,
    /// IP_VS_MH_TAB_BITS: how many bits of max_weight/gcd the table gives
    /// room for before weights are shifted down.
    tab_bits: u32,
    /// The list the table was built from. Weak: identity without keeping a
    /// removed dest alive, and without its address being reused meanwhile.
    built_from: Vec<Weak<Dest>>,
    /// Index into `built_from` per slot; empty when no dest has a weight.
    lookup: Vec<u32>,
}

/// One dest's walk through the table (ip_vs_mh_dest_setup).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Setup {
    perm: u32,
    skip: u32,
    turns: u32,
}

impl Mh {
    /// The kernel's default table of 4093 slots.
    pub fn new(flags: SchedFlags) -> Self {
        Self::build_for(flags, DEFAULT_TAB_INDEX)
    }

    /// A kernel built with another CONFIG_IP_VS_MH_TAB_INDEX: `prime` must be
    /// one of `PRIMES`. Larger tables spread weights more finely.
    pub fn with_size(flags: SchedFlags, prime: u32) -> Result<Self, IpvsError> {
        let pos = PRIMES
            .iter()
            .position(|&p| p == prime)
            .ok_or(IpvsError::InvalidArgument(
                "mh table size must be one of 251, 509, ..., 131071",
            ))?;
        Ok(Self::build_for(flags, pos as u32 + 8))
    }

    fn build_for(flags: SchedFlags, tab_index: u32) -> Self {
        Mh {
            flags,
            size: PRIMES[(tab_index - 8) as usize],
            tab_bits: tab_index / 2,
            built_from: Vec::new(),
            lookup: Vec::new(),
        }
    }

    /// The lookup table's length.
    pub fn size(&self) -> u32 {
        self.size
    }

    fn is_built_from(&self, dests: &[Arc<Dest>]) -> bool {
        self.built_from.len() == dests.len()
            && self
                .built_from
                .iter()
                .zip(dests)
                .all(|(w, d)| std::ptr::eq(w.as_ptr(), Arc::as_ptr(d)))
    }

    fn rebuild(&mut self, dests: &[Arc<Dest>]) {
        self.built_from = dests.iter().map(Arc::downgrade).collect();
        self.lookup = match self.setups(dests) {
            Some(setups) => populate(setups, self.size),
            None => Vec::new(),
        };
    }

    /// ip_vs_mh_permutate with the gcd and shift of its caller. None when
    /// no table can be built: no dest has a last weight, or there are more
    /// dests than slots (the kernel refuses that with EINVAL).
    fn setups(&self, dests: &[Arc<Dest>]) -> Option<Vec<Setup>> {
        if dests.len() > self.size as usize {
            return None;
        }
        let weights: Vec<u32> = dests
            .iter()
            .map(|d| d.last_weight().max(0) as u32)
            .collect();
        let g = weights.iter().fold(0, |g, &w| gcd(g, w));
        if g == 0 {
            return None;
        }
        let rshift = self.rshift(weights.iter().copied().max().unwrap_or(0) / g);
        let setups = dests
            .iter()
            .zip(&weights)
            .map(|(d, &lw)| {
                let (offset, skip) = self.offset_skip(d);
                // A dest whose share shifts down to nothing still gets one
                // turn: only a zero last weight keeps a dest out.
                let turns = match (lw / g) >> rshift {
                    0 => u32::from(lw != 0),
                    t => t,
                };
                Setup {
                    perm: offset,
                    skip,
                    turns,
                }
            })
            .collect();
        Some(setups)
    }

    /// How far weight/gcd is shifted down so that the largest weight needs
    /// at most `tab_bits` bits: huge weights would otherwise make a round
    /// longer than the table and starve the dests late in the list.
    fn rshift(&self, max_ratio: u32) -> u32 {
        let fls = u32::BITS - max_ratio.leading_zeros();
        fls.saturating_sub(self.tab_bits)
    }

    /// Where a dest's permutation starts and how it steps, from its address
    /// and port.
    fn offset_skip(&self, d: &Dest) -> (u32, u32) {
        let fold = addr_fold(d.addr());
        let offset = hashkey(fold, d.port(), HASH1, 0) % self.size;
        let skip = hashkey(fold, d.port(), HASH2, 0) % (self.size - 1) + 1;
        (offset, skip)
    }

    fn slot(&self, fold: u32, port: u16, offset: u32) -> usize {
        (hashkey(fold, port, HASH1, offset) % self.size) as usize
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// ip_vs_mh_populate: round after round, each dest with turns claims that
/// many slots, each the next free one on its permutation, until the table
/// is full. Every claim fills a slot, so the shares are exact to within one
/// round.
fn populate(mut setups: Vec<Setup>, size: u32) -> Vec<u32> {
    const FREE: u32 = u32::MAX;
    let mut lookup = vec![FREE; size as usize];
    let mut filled = 0u32;
    // setups() returns None unless some dest has turns, so every round fills
    // at least one slot and the loop ends.
    loop {
        for (i, s) in setups.iter_mut().enumerate() {
            for _ in 0..s.turns {
                while lookup[s.perm as usize] != FREE {
                    s.perm += s.skip;
                    if s.perm >= size {
                        s.perm -= size;
                    }
                }
                lookup[s.perm as usize] = i as u32;
                filled += 1;
                if filled == size {
                    return lookup;
                }
            }
        }
    }
}

/// ip_vs_mh_hashkey: hsiphash of the u32 offset + port + folded address.
fn hashkey(fold: u32, port: u16, key: u64, offset: u32) -> u32 {
    let v = offset.wrapping_add(u32::from(port)).wrapping_add(fold);
    siphash::hsiphash_u32(v, [key, key])
}

/// Weight 0 (quiesced) or OVERLOAD. Dests leave the list when deleted, so
/// the AVAILABLE flag needs no check here (the kernel's mh has none either).
fn is_unavailable(d: &Dest) -> bool {
    d.weight() <= 0 || d.is_overloaded()
}

impl Scheduler for Mh {
    fn name(&self) -> &'static str {
        "mh"
    }

    fn schedule(&mut self, dests: &[Arc<Dest>], input: &Tuple, _now: Millis) -> Option<usize> {
        if !self.is_built_from(dests) {
            self.rebuild(dests);
        }
        if self.lookup.is_empty() {
            return None;
        }
        let port = if self.flags.port() && PORT_PROTOS.contains(&input.proto) {
            input.sport
        } else {
            0
        };
        let fold = addr_fold(input.saddr);
        let usable = |slot: usize| {
            let i = self.lookup[slot] as usize;
            dests.get(i).filter(|d| !is_unavailable(d)).map(|_| i)
        };

        let ihash = self.slot(fold, port, 0);
        if let Some(i) = usable(ihash) {
            return Some(i);
        }
        if !self.flags.fallback() {
            return None;
        }
        // Re-hash with a growing offset started from the first slot, so a
        // given client always falls back to the same dest.
        (0..self.size).find_map(|offset| {
            let roffset = (offset + ihash as u32) % self.size;
            usable(self.slot(fold, port, roffset))
        })
    }

    fn update(&mut self, dests: &[Arc<Dest>]) {
        self.rebuild(dests);
    }
}

/// The kernel's hsiphash as 64-bit kernels compute it: SipHash-1-3 with
/// 64-bit key words, truncated to 32 bits. (32-bit kernels use HalfSipHash
/// instead and hash differently; rvs matches the 64-bit ones.)
mod siphash {
    #[inline]
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }

    /// SipHash-C-D of `msg` under the key words `k`.
    pub(super) fn siphash<const C: usize, const D: usize>(k: [u64; 2], msg: &[u8]) -> u64 {
        let mut v = [
            k[0] ^ 0x736f_6d65_7073_6575,
            k[1] ^ 0x646f_7261_6e64_6f6d,
            k[0] ^ 0x6c79_6765_6e65_7261,
            k[1] ^ 0x7465_6462_7974_6573,
        ];
        let compress = |v: &mut [u64; 4], m: u64| {
            v[3] ^= m;
            (0..C).for_each(|_| round(v));
            v[0] ^= m;
        };
        let mut words = msg.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            compress(&mut v, u64::from_le_bytes(b));
        }
        // The last word carries the length's low byte on top of the tail.
        let mut tail = [0u8; 8];
        tail[..words.remainder().len()].copy_from_slice(words.remainder());
        compress(
            &mut v,
            u64::from_le_bytes(tail) | ((msg.len() as u64) << 56),
        );
        v[2] ^= 0xff;
        (0..D).for_each(|_| round(&mut v));
        v[0] ^ v[1] ^ v[2] ^ v[3]
    }

    /// `hsiphash(&v, sizeof(v), key)` for a u32 `v`: the kernel hashes its
    /// bytes in memory, which on the little-endian machines IPVS runs on
    /// are `v.to_le_bytes()`.
    pub(super) fn hsiphash_u32(v: u32, k: [u64; 2]) -> u32 {
        siphash::<1, 3>(k, &v.to_le_bytes()) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::siphash::{hsiphash_u32, siphash};
    use super::*;
    use crate::ipvs::dest::{DestConfig, FwdMethod};

    fn dest(addr: &str, port: u16, weight: i32) -> Arc<Dest> {
        let cfg = DestConfig {
            addr: addr.parse().unwrap(),
            port,
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
            .map(|(i, &w)| dest(&format!("10.2.0.{}", i + 1), 80, w))
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

    fn client(n: u32) -> Tuple {
        let a = std::net::Ipv4Addr::from(0xc633_0000 + n); // 198.51.0.0 + n
        Tuple {
            proto: 6,
            saddr: a.into(),
            sport: 1000,
            daddr: "192.0.2.1".parse().unwrap(),
            dport: 80,
        }
    }

    const KEY_00_0F: [u64; 2] = [0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908];

    #[test]
    fn siphash_2_4_matches_the_papers_vectors() {
        // SipHash paper, appendix A: key 00..0f, message 00..0e.
        let msg: Vec<u8> = (0..15).collect();
        assert_eq!(siphash::<2, 4>(KEY_00_0F, &msg), 0xa129_ca61_49be_45e5);
        // Reference vectors.h, entry 0 (empty message).
        assert_eq!(siphash::<2, 4>(KEY_00_0F, &[]), 0x726f_db47_dd0e_0e31);
    }

    #[test]
    #[allow(deprecated)]
    fn siphash_2_4_matches_std_for_every_tail_length() {
        use std::hash::{Hasher, SipHasher};
        let msg: Vec<u8> = (0..64u8).map(|b| b.wrapping_mul(37)).collect();
        for len in 0..=msg.len() {
            let mut h = SipHasher::new_with_keys(KEY_00_0F[0], 0xdead_beef_0000_0001);
            h.write(&msg[..len]);
            assert_eq!(
                siphash::<2, 4>([KEY_00_0F[0], 0xdead_beef_0000_0001], &msg[..len]),
                h.finish(),
                "len {len}"
            );
        }
    }

    #[test]
    fn siphash_1_3_matches_an_independent_implementation() {
        // CPython 3.11 hashes bytes with SipHash-1-3; PYTHONHASHSEED=0 makes
        // its key all zero: hash(bytes) & (2**64 - 1).
        let seq = |n: u8| (0..n).collect::<Vec<u8>>();
        assert_eq!(siphash::<1, 3>([0, 0], &[0]), 0x68a9_1412_8e01_e473);
        assert_eq!(siphash::<1, 3>([0, 0], &seq(4)), 0x7cc4_3f98_813e_4dbd);
        assert_eq!(siphash::<1, 3>([0, 0], &seq(7)), 0x2f09_8ab0_c751_325a);
        assert_eq!(siphash::<1, 3>([0, 0], &seq(8)), 0xead4_11e6_7ebe_2eea);
        assert_eq!(siphash::<1, 3>([0, 0], &seq(15)), 0xf30e_b725_bb91_c9ea);
        assert_eq!(
            siphash::<1, 3>([0, 0], b"hello world, siphash"),
            0x968e_8130_4724_9cf5
        );
        // hsiphash of a u32 hashes its little-endian bytes, keeps 32 bits.
        assert_eq!(hsiphash_u32(0x0302_0100, [0, 0]), 0x813e_4dbd);
    }

    #[test]
    fn permutation_of_one_dest_matches_a_separate_computation() {
        // Computed with a separate Python SipHash-1-3 (checked against
        // CPython's builtin hash) under the kernel's keys:
        //   10.0.0.1:80     v = 0x0a000001 + 80 -> h1 0x439c0cbe, h2 0x97b3dc47
        //   192.168.1.5:8080 v = 0xc0a80105 + 8080 -> h1 0x33464e6f, h2 0x0a7b0e56
        let mh = Mh::new(SchedFlags::default());
        let a = dest("10.0.0.1", 80, 1);
        assert_eq!(hashkey(0x0a00_0001, 80, HASH1, 0), 0x439c_0cbe);
        assert_eq!(hashkey(0x0a00_0001, 80, HASH2, 0), 0x97b3_dc47);
        assert_eq!(
            mh.offset_skip(&a),
            (0x439c_0cbe % 4093, 0x97b3_dc47 % 4092 + 1)
        );
        assert_eq!(mh.offset_skip(&a), (3167, 700));
        let b = dest("192.168.1.5", 8080, 1);
        assert_eq!(mh.offset_skip(&b), (3433, 3519));
        let small = Mh::with_size(SchedFlags::default(), 251).unwrap();
        assert_eq!(
            small.offset_skip(&b),
            (0x3346_4e6f % 251, 0x0a7b_0e56 % 250 + 1)
        );
        assert_eq!(small.offset_skip(&b), (92, 9));
    }

    #[test]
    fn a_lone_dest_fills_its_permutation_in_order() {
        let a = dest("10.0.0.1", 80, 1);
        let mut mh = Mh::with_size(SchedFlags::default(), 251).unwrap();
        mh.update(std::slice::from_ref(&a));
        assert!(mh.lookup.iter().all(|&i| i == 0));
        // With two dests, each takes its first preference in the first
        // round: A's offset slot is A's unless B's offset is the same slot.
        let b = dest("192.168.1.5", 8080, 1);
        let list = vec![a.clone(), b.clone()];
        mh.update(&list);
        let (oa, _) = mh.offset_skip(&a);
        let (ob, _) = mh.offset_skip(&b);
        assert_ne!(oa, ob);
        assert_eq!(mh.lookup[oa as usize], 0);
        assert_eq!(mh.lookup[ob as usize], 1);
    }

    #[test]
    fn turns_follow_weight_over_gcd_and_the_shift() {
        let mh = Mh::new(SchedFlags::default());
        // gcd 10: turns 1, 2, 3; max ratio 3 needs 2 bits <= 6, no shift.
        let turns = |mh: &Mh, w: &[i32]| {
            mh.setups(&dests(w))
                .unwrap()
                .iter()
                .map(|s| s.turns)
                .collect::<Vec<_>>()
        };
        assert_eq!(turns(&mh, &[10, 20, 30]), [1, 2, 3]);
        // 1 and 100: 100 has fls 7, one over the 6 bits of the default
        // table: shift 1 -> 50, and 1 >> 1 = 0 is raised to 1.
        assert_eq!(turns(&mh, &[1, 100]), [1, 50]);
        // The 251 table has 4 bits: shift 3 -> 100 >> 3 = 12.
        let small = Mh::with_size(SchedFlags::default(), 251).unwrap();
        assert_eq!(turns(&small, &[1, 100]), [1, 12]);
        // 65521 is index 16: 8 bits, 100 fits unshifted.
        let big = Mh::with_size(SchedFlags::default(), 65521).unwrap();
        assert_eq!(turns(&big, &[1, 100]), [1, 100]);
        // A zero last weight takes no turns.
        assert_eq!(turns(&mh, &[0, 4]), [0, 1]);
        assert!(mh.setups(&dests(&[0, 0])).is_none());
        assert!(Mh::with_size(SchedFlags::default(), 4000).is_err());
    }

    #[test]
    fn shares_are_proportional_to_weight() {
        let list = dests(&[1, 2, 3]);
        let mut mh = Mh::new(SchedFlags::default());
        mh.update(&list);
        // Rounds of 1 + 2 + 3 = 6 claims: 682 rounds fill 4092 slots and the
        // last slot goes to the first dest of round 683.
        let count = |i: u32| mh.lookup.iter().filter(|&&d| d == i).count();
        assert_eq!((count(0), count(1), count(2)), (683, 1364, 2046));
        assert_eq!(mh.lookup.len(), 4093);

        // Clients follow: 3000 of them land roughly 1:2:3.
        let mut hits = [0usize; 3];
        for n in 0..3000 {
            hits[mh.schedule(&list, &client(n), 0).unwrap()] += 1;
        }
        for (i, &h) in hits.iter().enumerate() {
            let expect = 500 * (i + 1);
            assert!(
                h.abs_diff(expect) < expect / 5,
                "dest {i}: {h} of 3000, expected about {expect}"
            );
        }
    }

    #[test]
    fn quiescing_keeps_the_table_and_fallback_moves_only_its_clients() {
        let list = dests(&[1, 1, 1, 1]);
        let mut mh = Mh::new(SchedFlags::default());
        mh.update(&list);
        let before = mh.lookup.clone();
        list[2].set_weight(0);
        mh.update(&list);
        assert_eq!(mh.lookup, before, "last_weight builds the table");

        let mut fb = Mh::new(SchedFlags(SchedFlags::SCHED1));
        let mut saw_quiesced = false;
        for n in 0..400 {
            let c = client(n);
            let slot = mh.slot(addr_fold(c.saddr), 0, 0);
            let owner = before[slot] as usize;
            let plain = mh.schedule(&list, &c, 0);
            let fell = fb.schedule(&list, &c, 0);
            if owner == 2 {
                saw_quiesced = true;
                assert_eq!(plain, None);
                let f = fell.unwrap();
                assert_ne!(f, 2);
            } else {
                assert_eq!(plain, Some(owner));
                assert_eq!(fell, Some(owner), "clients of live dests stay put");
            }
        }
        assert!(saw_quiesced);
        // Back from quiescence: everyone returns home.
        list[2].set_weight(1);
        let c = (0..400)
            .map(client)
            .find(|c| before[mh.slot(addr_fold(c.saddr), 0, 0)] == 2)
            .unwrap();
        assert_eq!(mh.schedule(&list, &c, 0), Some(2));
    }

    #[test]
    fn fallback_walks_the_kernels_offsets() {
        let list = dests(&[1, 1, 1]);
        let mut mh = Mh::new(SchedFlags(SchedFlags::SCHED1));
        mh.update(&list);
        let c = (0..100)
            .map(client)
            .find(|c| mh.schedule(&list, c, 0) == Some(0))
            .unwrap();
        list[0].set_overloaded(true);
        // The kernel's walk, spelled out: offsets ihash, ihash+1, ... fed
        // into the hash, first slot whose dest is usable.
        let fold = addr_fold(c.saddr);
        let ihash = mh.slot(fold, 0, 0) as u32;
        let expect = (0..4093u32)
            .map(|o| mh.lookup[mh.slot(fold, 0, (o + ihash) % 4093)] as usize)
            .find(|&i| i != 0);
        assert_eq!(mh.schedule(&list, &c, 0), expect);
        list[1].set_overloaded(true);
        list[2].set_weight(0);
        assert_eq!(mh.schedule(&list, &c, 0), None, "nothing usable");
    }

    #[test]
    fn removing_a_dest_moves_few_other_clients() {
        let list = dests(&[1; 10]);
        let mut mh = Mh::new(SchedFlags::default());
        mh.update(&list);
        let before: Vec<*const Dest> = mh
            .lookup
            .iter()
            .map(|&i| Arc::as_ptr(&list[i as usize]))
            .collect();
        let removed = Arc::as_ptr(&list[4]);
        let mut rest = list.clone();
        rest.remove(4);
        mh.update(&rest);
        let after: Vec<*const Dest> = mh
            .lookup
            .iter()
            .map(|&i| Arc::as_ptr(&rest[i as usize]))
            .collect();
        let orphaned = before.iter().filter(|&&d| d == removed).count();
        let collateral = before
            .iter()
            .zip(&after)
            .filter(|(&b, &a)| b != removed && b != a)
            .count();
        // The removed dest's tenth must move; Maglev keeps the rest almost
        // still (the paper measures a few percent at this table load).
        assert!(orphaned.abs_diff(409) <= 1, "{orphaned}");
        assert!(
            collateral * 100 < 4093 * 5,
            "{collateral} of 4093 slots moved needlessly"
        );
    }

    #[test]
    fn mh_port_adds_the_source_port() {
        let list = dests(&[1, 1, 1]);
        let mut plain = Mh::new(SchedFlags::default());
        let mut port = Mh::new(SchedFlags(SchedFlags::SCHED2));
        let picks: Vec<_> = (0..32)
            .map(|p| port.schedule(&list, &from("198.51.100.1", 6, p), 0))
            .collect();
        assert!(picks.iter().any(|&p| p != picks[0]), "the port must matter");
        // Port p hashes like the address plus p.
        let via_addr = plain.schedule(&list, &from("198.51.100.8", 6, 0), 0);
        assert_eq!(
            port.schedule(&list, &from("198.51.100.1", 17, 7), 0),
            via_addr
        );
        // No port for ICMP, none without mh-port.
        let base = plain.schedule(&list, &from("198.51.100.1", 6, 0), 0);
        assert_eq!(port.schedule(&list, &from("198.51.100.1", 1, 7), 0), base);
        assert!((0..32).all(|p| plain.schedule(&list, &from("198.51.100.1", 6, p), 0) == base));
    }

    #[test]
    fn empty_or_weightless_lists_give_none_and_tables_are_lazy() {
        let mut mh = Mh::new(SchedFlags(SchedFlags::ALL));
        assert_eq!(mh.name(), "mh");
        assert_eq!(mh.size(), 4093);
        assert_eq!(mh.schedule(&[], &client(1), 0), None);
        let zero = dests(&[0, 0]);
        assert_eq!(mh.schedule(&zero, &client(1), 0), None);
        // Never updated: the first schedule builds the table for its list.
        let list = dests(&[1]);
        let mut lazy = Mh::new(SchedFlags::default());
        assert_eq!(lazy.schedule(&list, &client(1), 0), Some(0));
        // A list of other dests is not served from the old table.
        let two = dests(&[0, 1]);
        assert_eq!(lazy.schedule(&two, &client(1), 0), Some(1));
    }
}
