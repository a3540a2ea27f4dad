//! Per-source new-conn rate limits: a token bucket per client address (an
//! IPv4 address or IPv6 prefix, /32 and /64 by default), in a fixed table
//! per worker, so memory is bounded whatever the number of sources and
//! each decision is O(1).
//!
//! The table is 4-way set associative, keyed by a hash with a per-run
//! random seed. A source not in its set takes the place of the entry that
//! loses least by going: the one whose bucket, refilled to now, holds the
//! most tokens (a bucket back to full is an idle source). A source being
//! held back has an almost empty bucket and keeps its place against any
//! number of one-off sources; what an attacker spreading over many
//! addresses gains is the burst of each new one, which no per-source limit
//! can take away.
use std::hash::BuildHasher;
use std::net::IpAddr;

use hashbrown::DefaultHashBuilder;

use crate::ipvs::Millis;

const WAYS: usize = 4;
/// Tokens are counted in thousandths, so a rate in conns per second adds
/// exactly `rate` thousandths per millisecond.
const MILLI: u64 = 1000;

/// `[limits]`'s per-source part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceLimitConfig {
    /// New conns per second a source may open, in the long run.
    pub rate: u32,
    /// New conns a source may open at once after being idle.
    pub burst: u32,
    /// Sources each worker tracks (rounded up to a power of two, at least
    /// `WAYS`).
    pub table: u32,
    /// IPv4 sources share a bucket per prefix of this length.
    pub prefix_v4: u8,
    /// IPv6 sources share a bucket per prefix of this length.
    pub prefix_v6: u8,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    key: u128,
    v6: bool,
    /// When the bucket was last refilled, in ms.
    stamp: u64,
    /// Thousandths of a token.
    tokens: u64,
    used: bool,
}

/// One worker's buckets.
#[derive(Debug)]
pub struct SourceLimiter {
    buckets: Box<[Bucket]>,
    sets: usize,
    rate: u64,
    full: u64,
    mask_v4: u32,
    mask_v6: u128,
    hasher: DefaultHashBuilder,
}

impl SourceLimiter {
    pub fn new(cfg: &SourceLimitConfig) -> SourceLimiter {
        let sets = (cfg.table as usize)
            .div_ceil(WAYS)
            .max(1)
            .next_power_of_two();
        let p4 = u32::from(cfg.prefix_v4.min(32));
        let p6 = u32::from(cfg.prefix_v6.min(128));
        SourceLimiter {
            buckets: vec![Bucket::default(); sets * WAYS].into_boxed_slice(),
            sets,
            rate: u64::from(cfg.rate),
            full: u64::from(cfg.burst.max(1)) * MILLI,
            mask_v4: u32::MAX.checked_shl(32 - p4).unwrap_or(0),
            mask_v6: u128::MAX.checked_shl(128 - p6).unwrap_or(0),
            hasher: DefaultHashBuilder::default(),
        }
    }

    /// Sources the table holds at most.
    pub fn capacity(&self) -> usize {
        self.buckets.len()
    }

    /// Bytes of the table.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.buckets)
    }

    /// The source's prefix, and whether it is IPv6.
    fn key(&self, src: IpAddr) -> (u128, bool) {
        match src {
            IpAddr::V4(a) => (u128::from(u32::from(a) & self.mask_v4), false),
            IpAddr::V6(a) => (u128::from(a) & self.mask_v6, true),
        }
    }

    /// The bucket's tokens refilled to `now`.
    fn refilled(&self, b: &Bucket, now: Millis) -> u64 {
        let dt = now.saturating_sub(b.stamp);
        b.tokens
            .saturating_add(dt.saturating_mul(self.rate))
            .min(self.full)
    }

    /// Whether `src` may open a conn at `now` (ms); takes a token if so.
    pub fn admit(&mut self, src: IpAddr, now: Millis) -> bool {
        let (key, v6) = self.key(src);
        let set = (self.hasher.hash_one((key, v6)) as usize) & (self.sets - 1);
        let base = set * WAYS;
        let mut victim = base;
        let mut victim_score = (false, 0u64, u64::MAX);
        for i in base..base + WAYS {
            let b = self.buckets[i];
            if b.used && b.key == key && b.v6 == v6 {
                let t = self.refilled(&b, now);
                let ok = t >= MILLI;
                self.buckets[i] = Bucket {
                    tokens: if ok { t - MILLI } else { t },
                    stamp: now,
                    ..b
                };
                return ok;
            }
            // Free first, then most tokens, then least recently refilled.
            let score = if b.used {
                (false, self.refilled(&b, now), b.stamp)
            } else {
                (true, 0, 0)
            };
            let better = score.0 && !victim_score.0
                || score.0 == victim_score.0
                    && (score.1 > victim_score.1
                        || score.1 == victim_score.1 && score.2 < victim_score.2);
            if i == base || better {
                victim = i;
                victim_score = score;
            }
        }
        self.buckets[victim] = Bucket {
            key,
            v6,
            stamp: now,
            tokens: self.full - MILLI,
            used: true,
        };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: u32, burst: u32, table: u32) -> SourceLimiter {
        SourceLimiter::new(&SourceLimitConfig {
            rate,
            burst,
            table,
            prefix_v4: 32,
            prefix_v6: 64,
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_source_gets_its_burst_then_the_rate() {
        // rate 10/s, burst 5: five at once, the sixth refused; a token
        // every 100 ms after that.
        let mut l = limiter(10, 5, 64);
        let a = ip("192.0.2.1");
        let got: Vec<bool> = (0..6).map(|_| l.admit(a, 1000)).collect();
        assert_eq!(got, [true, true, true, true, true, false]);
        assert!(!l.admit(a, 1099), "99 ms: 0.99 of a token");
        assert!(l.admit(a, 1100), "100 ms: one token");
        assert!(!l.admit(a, 1100));
        // A second's rest refills 10, capped at the burst of 5.
        let got = (0..7).filter(|_| l.admit(a, 2200)).count();
        assert_eq!(got, 5);
        // Other sources have buckets of their own.
        assert!(l.admit(ip("192.0.2.2"), 2200));
    }

    #[test]
    fn over_a_long_run_a_source_gets_the_rate() {
        // 1000 attempts a second for 10 s at rate 50/s, burst 20:
        // 20 + 50 * 10 = 520 admitted.
        let mut l = limiter(50, 20, 64);
        let a = ip("198.51.100.7");
        let admitted = (0..10_000u64).filter(|&ms| l.admit(a, ms)).count();
        assert_eq!(admitted, 20 + 50 * 10 - 1);
    }

    #[test]
    fn ipv6_sources_share_their_64_and_ipv4_their_address() {
        let mut l = limiter(1, 2, 64);
        assert!(l.admit(ip("2001:db8:1:2::1"), 0));
        assert!(l.admit(ip("2001:db8:1:2:ffff::9"), 0));
        assert!(!l.admit(ip("2001:db8:1:2::77"), 0), "same /64: 2 of 2 used");
        assert!(l.admit(ip("2001:db8:1:3::1"), 0), "the next /64");
        assert!(l.admit(ip("192.0.2.1"), 0));
        assert!(l.admit(ip("192.0.2.1"), 0));
        assert!(!l.admit(ip("192.0.2.1"), 0));
        assert!(l.admit(ip("192.0.2.2"), 0), "IPv4 /32 by default");
        // ::ffff:192.0.2.3 is an IPv6 source, not 192.0.2.3's bucket.
        let mut l = limiter(1, 1, 64);
        assert!(l.admit(ip("192.0.2.3"), 0));
        assert!(l.admit(ip("::ffff:192.0.2.3"), 0));
    }

    #[test]
    fn a_prefix_length_groups_ipv4_sources() {
        let mut l = SourceLimiter::new(&SourceLimitConfig {
            rate: 1,
            burst: 1,
            table: 64,
            prefix_v4: 24,
            prefix_v6: 64,
        });
        assert!(l.admit(ip("192.0.2.1"), 0));
        assert!(!l.admit(ip("192.0.2.200"), 0));
        assert!(l.admit(ip("192.0.3.1"), 0));
    }

    #[test]
    fn memory_is_fixed_and_a_held_back_source_keeps_its_place() {
        let mut l = limiter(1, 3, 1024);
        let mem = (l.capacity(), l.memory_bytes());
        assert_eq!(l.capacity(), 1024);
        let heavy = ip("203.0.113.9");
        for _ in 0..3 {
            assert!(l.admit(heavy, 0));
        }
        // A million one-off sources, each once, in the same millisecond:
        // the table holds 1024 and the held-back source stays held back.
        for i in 0..1_000_000u32 {
            l.admit(IpAddr::V4((0x0a00_0000 | i).into()), 0);
            if i % 1000 == 0 {
                assert!(!l.admit(heavy, 0), "after {i} sources");
            }
        }
        assert_eq!((l.capacity(), l.memory_bytes()), mem);
    }

    #[test]
    fn an_idle_source_comes_back_to_a_full_burst() {
        let mut l = limiter(2, 2, 4);
        let a = ip("192.0.2.1");
        assert!(l.admit(a, 0) && l.admit(a, 0) && !l.admit(a, 0));
        // A one-set table: four other sources fill it; a's bucket, refilled
        // after a second, is full and so the first to go.
        for i in 2..6 {
            assert!(l.admit(ip(&format!("192.0.2.{i}")), 1000));
        }
        assert!(l.admit(a, 1000) && l.admit(a, 1000) && !l.admit(a, 1000));
    }
}
