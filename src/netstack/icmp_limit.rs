//! Rate limits on the ICMP messages rvs originates (echo replies, time
//! exceeded, fragmentation needed, packet too big), as the kernel's: one
//! limiter per worker, no locks, bounded memory.
//!
//! The kernel (net/ipv4/icmp.c, net/ipv6/icmp.c, net/ipv4/inetpeer.c):
//! 1. a message whose type is not in the rate mask goes unlimited:
//!    `icmp_ratemask` (bit t for ICMP type t; types above 18 and
//!    fragmentation needed never limited, "Don't limit PMTU discovery"),
//!    `icmpv6_ratemask` (a list of ICMPv6 types, by default every error but
//!    packet too big);
//! 2. a global token bucket (icmp_global_allow): while it holds credit the
//!    message may go; once empty it is refilled only when 20 ms or more
//!    passed since the last refill, with `icmp_msgs_per_sec` per second of
//!    that time (at most a second's worth), up to `icmp_msgs_burst`;
//! 3. a bucket per destination (inet_peer_xrlim_allow): time since the
//!    last message accrues as tokens, up to 6 × the timeout; a message costs
//!    the timeout (`icmp_ratelimit` for IPv4, `icmpv6_ratelimit` for IPv6;
//!    0: no limit); a new destination starts full;
//! 4. a message that passes both takes 0, 1 or 2 credits, at random, from
//!    the global bucket (icmp_global_consume: one on average, the draw
//!    hiding from an off-path prober how many messages were sent, which
//!    the budget would otherwise leak, CVE-2020-25705).
//!
//! rvs runs these in milliseconds where the kernel counts jiffies. The
//! global budget is the director's: each of `n` workers gets 1/n of the
//! rate and of the burst (rounded up). Destinations live in a fixed table
//! indexed by a keyed hash of the address, one per slot: a new destination
//! takes its slot over in O(1), and the one it evicts starts full again
//! when it comes back, as an entry the kernel's peer tree let go does.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;

use super::Millis;

/// The kernel's knobs, by their sysctl names, with its defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpLimits {
    /// net.ipv4.icmp_ratelimit: milliseconds of tokens one message to a
    /// destination costs; 0 turns the per-destination limit off.
    pub icmp_ratelimit: u32,
    /// net.ipv4.icmp_msgs_per_sec and icmp_msgs_burst: the global bucket,
    /// shared by IPv4 and IPv6.
    pub icmp_msgs_per_sec: u32,
    pub icmp_msgs_burst: u32,
    /// net.ipv4.icmp_ratemask: bit t set limits ICMP type t (0 to 18).
    pub icmp_ratemask: u32,
    /// net.ipv6.icmp.ratelimit, in milliseconds.
    pub icmpv6_ratelimit: u32,
    /// net.ipv6.icmp.ratemask: bit t set limits ICMPv6 type t.
    pub icmpv6_ratemask: [u64; 4],
}

/// The kernel's defaults: dest unreachable, source quench, time exceeded
/// and parameter problem limited (0x1818); ICMPv6 types 0-1 and 3-127.
pub const ICMP_RATEMASK_DEFAULT: u32 = 0x1818;
pub const ICMPV6_RATEMASK_DEFAULT: &str = "0-1,3-127";
/// The largest ICMP type the IPv4 mask speaks of (NR_ICMP_TYPES).
pub const NR_ICMP_TYPES: u8 = 18;

impl Default for IcmpLimits {
    fn default() -> Self {
        IcmpLimits {
            icmp_ratelimit: 1000,
            icmp_msgs_per_sec: 1000,
            icmp_msgs_burst: 50,
            icmp_ratemask: ICMP_RATEMASK_DEFAULT,
            // Linux lowered it from 1000 to 100 in 2026 (commit 0201eedb),
            // when it stopped scaling the timeout by the route's prefix.
            icmpv6_ratelimit: 100,
            icmpv6_ratemask: parse_ratemask_v6(ICMPV6_RATEMASK_DEFAULT).unwrap_or([0; 4]),
        }
    }
}

/// Reads an ICMPv6 rate mask in the kernel's list syntax ("0-1,3-127":
/// types and ranges of types 0 to 255, comma-separated; empty for none).
pub fn parse_ratemask_v6(s: &str) -> Result<[u64; 4], String> {
    let mut mask = [0u64; 4];
    let s = s.trim();
    if s.is_empty() {
        return Ok(mask);
    }
    for part in s.split(',') {
        let part = part.trim();
        let num = |t: &str| -> Result<u8, String> {
            t.trim().parse::<u8>().map_err(|_| {
                format!("{t:?} in {s:?} is not an ICMPv6 type (0 to 255); write types and ranges like \"0-1,3-127\"")
            })
        };
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let t = num(part)?;
                (t, t)
            }
        };
        if lo > hi {
            return Err(format!("range {part:?} in {s:?} runs backwards"));
        }
        for t in lo..=hi {
            mask[usize::from(t / 64)] |= 1 << (t % 64);
        }
    }
    Ok(mask)
}

/// What the limiter says about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// Held back by the global budget (the kernel's RateLimitGlobal).
    Global,
    /// Held back by the destination's bucket (RateLimitHost).
    Host,
}

/// Destinations one worker keeps a bucket for.
const PEER_SLOTS: usize = 4096;
/// inet_peer's XRLIM_BURST_FACTOR.
const BURST_FACTOR: u64 = 6;
/// icmp_global_allow refills no more often than HZ / 50, and with at most
/// a second's worth.
const REFILL_MIN_MS: u64 = 20;
const REFILL_MAX_MS: u64 = 1000;

#[derive(Debug, Clone, Copy)]
struct Peer {
    addr: IpAddr,
    tokens: u64,
    last: Millis,
}

pub struct IcmpLimiter {
    per_sec: u64,
    burst: i64,
    ratemask: u32,
    ratemask_v6: [u64; 4],
    timeout_v4: u64,
    timeout_v6: u64,
    credit: i64,
    stamp: Millis,
    peers: Box<[Option<Peer>]>,
    hasher: RandomState,
    rng: u64,
}

impl IcmpLimiter {
    /// One worker's limiter of `workers`.
    pub fn new(limits: &IcmpLimits, workers: usize) -> IcmpLimiter {
        let n = workers.max(1) as u64;
        let burst = u64::from(limits.icmp_msgs_burst).div_ceil(n) as i64;
        let hasher = RandomState::new();
        IcmpLimiter {
            per_sec: u64::from(limits.icmp_msgs_per_sec).div_ceil(n),
            burst,
            ratemask: limits.icmp_ratemask,
            ratemask_v6: limits.icmpv6_ratemask,
            timeout_v4: u64::from(limits.icmp_ratelimit),
            timeout_v6: u64::from(limits.icmpv6_ratelimit),
            credit: burst,
            stamp: 0,
            peers: vec![None; PEER_SLOTS].into_boxed_slice(),
            rng: hasher.hash_one(0x6963_6d70u32) | 1,
            hasher,
        }
    }

    /// Whether an ICMP (`dst` IPv4) or ICMPv6 message of `msg_type` and
    /// `code` to `dst` may go now.
    pub fn check(&mut self, dst: IpAddr, msg_type: u8, code: u8, now: Millis) -> Verdict {
        let credits = self.draw();
        self.check_with(dst, msg_type, code, now, credits)
    }

    /// `check` with the credits a message sent takes given.
    fn check_with(
        &mut self,
        dst: IpAddr,
        msg_type: u8,
        code: u8,
        now: Millis,
        credits: u32,
    ) -> Verdict {
        if !self.limited(dst.is_ipv6(), msg_type, code) {
            return Verdict::Send;
        }
        if !self.global_allow(now) {
            return Verdict::Global;
        }
        if !self.peer_allow(dst, now) {
            return Verdict::Host;
        }
        self.credit -= i64::from(credits);
        Verdict::Send
    }

    fn limited(&self, v6: bool, msg_type: u8, code: u8) -> bool {
        if v6 {
            return self.ratemask_v6[usize::from(msg_type / 64)] >> (msg_type % 64) & 1 != 0;
        }
        // Destination unreachable, fragmentation needed: never limited.
        if msg_type > NR_ICMP_TYPES || (msg_type == 3 && code == 4) {
            return false;
        }
        self.ratemask >> msg_type & 1 != 0
    }

    fn global_allow(&mut self, now: Millis) -> bool {
        if self.credit > 0 {
            return true;
        }
        let delta = now.saturating_sub(self.stamp).min(REFILL_MAX_MS);
        if delta < REFILL_MIN_MS {
            return false;
        }
        let incr = self.per_sec * delta / 1000;
        if incr == 0 {
            return false;
        }
        self.stamp = now;
        self.credit = (self.credit + incr as i64).min(self.burst);
        true
    }

    fn peer_allow(&mut self, dst: IpAddr, now: Millis) -> bool {
        let timeout = if dst.is_ipv6() {
            self.timeout_v6
        } else {
            self.timeout_v4
        };
        let cap = BURST_FACTOR * timeout;
        let slot = &mut self.peers[self.hasher.hash_one(dst) as usize % PEER_SLOTS];
        let peer = match slot {
            Some(p) if p.addr == dst => p,
            _ => slot.insert(Peer {
                addr: dst,
                // The kernel's new peer: its last message a minute ago.
                tokens: cap.min(60_000),
                last: now,
            }),
        };
        let tokens = (peer.tokens + now.saturating_sub(peer.last)).min(cap);
        peer.last = now;
        let allow = tokens >= timeout;
        peer.tokens = if allow { tokens - timeout } else { tokens };
        allow
    }

    /// 0, 1 or 2 (xorshift64*, uniform enough for a cost).
    fn draw(&mut self) -> u32 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32;
        ((r * 3) >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECHO_REPLY: u8 = 0;
    const TIME_EXCEEDED: u8 = 11;

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Limits with echo replies in the mask (6168 + 1) and no
    /// per-destination limit, to watch the global bucket alone.
    fn global_only() -> IcmpLimits {
        IcmpLimits {
            icmp_ratemask: 6169,
            icmp_ratelimit: 0,
            ..IcmpLimits::default()
        }
    }

    #[test]
    fn the_defaults_are_the_kernels() {
        let d = IcmpLimits::default();
        assert_eq!(
            (
                d.icmp_ratelimit,
                d.icmp_msgs_per_sec,
                d.icmp_msgs_burst,
                d.icmp_ratemask
            ),
            (1000, 1000, 50, 6168)
        );
        assert_eq!(d.icmpv6_ratelimit, 100);
        // 0-1 and 3-127: bits 0, 1, 3..=63 of the first word, all of the
        // second, none above.
        assert_eq!(
            d.icmpv6_ratemask,
            [!(1u64 << 2), !0u64, 0, 0],
            "{:x?}",
            d.icmpv6_ratemask
        );
    }

    #[test]
    fn unmasked_types_and_frag_needed_are_never_limited() {
        let mut l = IcmpLimiter::new(
            &IcmpLimits {
                icmp_msgs_burst: 0,
                icmp_msgs_per_sec: 0,
                ..IcmpLimits::default()
            },
            1,
        );
        for _ in 0..1000 {
            assert_eq!(
                l.check_with(a("192.0.2.1"), ECHO_REPLY, 0, 5, 1),
                Verdict::Send
            );
            assert_eq!(l.check_with(a("192.0.2.1"), 3, 4, 5, 1), Verdict::Send);
            // ICMPv6 packet too big (2) and echo reply (129).
            assert_eq!(l.check_with(a("2001:db8::1"), 2, 0, 5, 1), Verdict::Send);
            assert_eq!(l.check_with(a("2001:db8::1"), 129, 0, 5, 1), Verdict::Send);
        }
        // A type above 18 is outside the IPv4 mask even with every bit set.
        let mut l = IcmpLimiter::new(
            &IcmpLimits {
                icmp_ratemask: u32::MAX,
                icmp_msgs_burst: 0,
                icmp_msgs_per_sec: 0,
                ..IcmpLimits::default()
            },
            1,
        );
        assert_eq!(l.check_with(a("192.0.2.1"), 40, 0, 5, 1), Verdict::Send);
        assert_eq!(l.check_with(a("192.0.2.1"), 3, 1, 5, 1), Verdict::Global);
    }

    #[test]
    fn the_global_bucket_gives_the_burst_then_refills_after_20_ms() {
        let mut l = IcmpLimiter::new(&global_only(), 1);
        let dst = a("192.0.2.1");
        // 50 credits at one credit a message: 50 go at t = 1000.
        for i in 0..50 {
            assert_eq!(
                l.check_with(dst, ECHO_REPLY, 0, 1000, 1),
                Verdict::Send,
                "{i}"
            );
        }
        // Empty; 1000 ms since the stamp (0) would refill, so the stamp
        // first: the first refill takes a second's worth, capped at 50.
        assert_eq!(l.check_with(dst, ECHO_REPLY, 0, 1000, 1), Verdict::Send);
        assert_eq!((l.credit, l.stamp), (49, 1000));
        for _ in 0..49 {
            assert_eq!(l.check_with(dst, ECHO_REPLY, 0, 1000, 1), Verdict::Send);
        }
        assert_eq!(l.credit, 0);
        // Empty at 1019: 19 ms < 20, held back.
        assert_eq!(l.check_with(dst, ECHO_REPLY, 0, 1019, 1), Verdict::Global);
        // At 1020: 1000 * 20 / 1000 = 20 credits, then 20 messages.
        assert_eq!(l.check_with(dst, ECHO_REPLY, 0, 1020, 1), Verdict::Send);
        assert_eq!(l.credit, 19);
        for _ in 0..19 {
            assert_eq!(l.check_with(dst, ECHO_REPLY, 0, 1020, 1), Verdict::Send);
        }
        assert_eq!(l.check_with(dst, ECHO_REPLY, 0, 1039, 1), Verdict::Global);
        // 25 ms later: 25 credits; a message that takes 2 leaves 23, one
        // that takes none leaves 23 still.
        assert_eq!(l.check_with(dst, ECHO_REPLY, 0, 1045, 2), Verdict::Send);
        assert_eq!(l.credit, 23);
        assert_eq!(l.check_with(dst, ECHO_REPLY, 0, 1045, 0), Verdict::Send);
        assert_eq!(l.credit, 23);
    }

    #[test]
    fn the_credit_may_go_below_zero_and_a_refill_starts_from_there() {
        let mut l = IcmpLimiter::new(
            &IcmpLimits {
                icmp_msgs_burst: 1,
                icmp_msgs_per_sec: 100,
                ..global_only()
            },
            1,
        );
        let dst = a("192.0.2.1");
        assert_eq!(l.check_with(dst, ECHO_REPLY, 0, 0, 2), Verdict::Send);
        assert_eq!(l.credit, -1);
        // 20 ms at 100/s is 2 credits: -1 + 2 = 1 (the burst).
        assert_eq!(l.check_with(dst, ECHO_REPLY, 0, 20, 1), Verdict::Send);
        assert_eq!(l.credit, 0);
        // 10 ms at 100/s is one credit, but 10 ms is under 20.
        assert_eq!(l.check_with(dst, ECHO_REPLY, 0, 30, 1), Verdict::Global);
        // 50 ms: 5 credits, capped at the burst of 1.
        assert_eq!(l.check_with(dst, ECHO_REPLY, 0, 70, 1), Verdict::Send);
        assert_eq!(l.credit, 0);
    }

    #[test]
    fn a_destination_gets_six_then_one_per_ratelimit() {
        // Time exceeded is in the default mask; icmp_ratelimit 1000 ms.
        let mut l = IcmpLimiter::new(&IcmpLimits::default(), 1);
        let (x, y) = (a("192.0.2.1"), a("192.0.2.2"));
        // A new destination holds min(60 s, 6 x 1000 ms) = 6000 ms.
        for i in 0..6 {
            assert_eq!(
                l.check_with(x, TIME_EXCEEDED, 0, 5000, 1),
                Verdict::Send,
                "{i}"
            );
        }
        assert_eq!(l.check_with(x, TIME_EXCEEDED, 0, 5000, 1), Verdict::Host);
        // 999 ms later still short; at 1000 one more.
        assert_eq!(l.check_with(x, TIME_EXCEEDED, 0, 5999, 1), Verdict::Host);
        assert_eq!(l.check_with(x, TIME_EXCEEDED, 0, 6000, 1), Verdict::Send);
        assert_eq!(l.check_with(x, TIME_EXCEEDED, 0, 6000, 1), Verdict::Host);
        // Another destination has its own bucket.
        assert_eq!(l.check_with(y, TIME_EXCEEDED, 0, 6000, 1), Verdict::Send);
        // A long silence fills the bucket to 6 messages, not more.
        for _ in 0..6 {
            assert_eq!(l.check_with(x, TIME_EXCEEDED, 0, 600_000, 1), Verdict::Send);
        }
        assert_eq!(l.check_with(x, TIME_EXCEEDED, 0, 600_000, 1), Verdict::Host);
        // The 14 messages sent took a credit each of the 50.
        assert_eq!(l.credit, 50 - 14);
    }

    #[test]
    fn ipv6_destinations_use_their_own_ratelimit_and_mask() {
        let mut l = IcmpLimiter::new(&IcmpLimits::default(), 1);
        let x = a("2001:db8::1");
        // 100 ms: 600 ms of tokens for a new destination, 6 messages.
        for _ in 0..6 {
            assert_eq!(l.check_with(x, 3, 0, 1000, 1), Verdict::Send);
        }
        assert_eq!(l.check_with(x, 3, 0, 1000, 1), Verdict::Host);
        assert_eq!(l.check_with(x, 3, 0, 1100, 1), Verdict::Send);
        // Type 2 (packet too big) is outside the default mask.
        assert_eq!(l.check_with(x, 2, 0, 1100, 1), Verdict::Send);
    }

    #[test]
    fn a_rate_limit_of_zero_turns_the_destination_bucket_off() {
        let mut l = IcmpLimiter::new(
            &IcmpLimits {
                icmp_ratelimit: 0,
                ..IcmpLimits::default()
            },
            1,
        );
        for _ in 0..50 {
            assert_eq!(
                l.check_with(a("192.0.2.1"), TIME_EXCEEDED, 0, 9, 1),
                Verdict::Send
            );
        }
        assert_eq!(
            l.check_with(a("192.0.2.1"), TIME_EXCEEDED, 0, 9, 1),
            Verdict::Global
        );
    }

    #[test]
    fn workers_share_the_budget() {
        let l = IcmpLimiter::new(&IcmpLimits::default(), 3);
        // 1000 / 3 and 50 / 3, rounded up.
        assert_eq!((l.per_sec, l.burst, l.credit), (334, 17, 17));
    }

    #[test]
    fn the_table_holds_its_size_whatever_the_destinations() {
        let mut l = IcmpLimiter::new(&IcmpLimits::default(), 1);
        for i in 0..100_000u32 {
            l.check_with(IpAddr::V4(i.into()), TIME_EXCEEDED, 0, 1000, 0);
        }
        assert_eq!(l.peers.len(), PEER_SLOTS);
        assert!(l.peers.iter().all(|p| p.is_some()));
    }

    #[test]
    fn the_draw_is_0_1_or_2_and_1_on_average() {
        let mut l = IcmpLimiter::new(&IcmpLimits::default(), 1);
        let mut seen = [0u32; 3];
        for _ in 0..30_000 {
            seen[l.draw() as usize] += 1;
        }
        for n in seen {
            assert!((9_000..11_000).contains(&n), "{seen:?}");
        }
    }

    #[test]
    fn ratemask_lists_read_as_the_kernel_writes_them() {
        assert_eq!(parse_ratemask_v6(""), Ok([0; 4]));
        assert_eq!(parse_ratemask_v6("1"), Ok([2, 0, 0, 0]));
        assert_eq!(parse_ratemask_v6("0-1, 3"), Ok([0b1011, 0, 0, 0]));
        assert_eq!(parse_ratemask_v6("128,255"), Ok([0, 0, 1, 1 << 63]));
        for bad in ["256", "3-1", "a", "1-", ",", "-1"] {
            assert!(parse_ratemask_v6(bad).is_err(), "{bad}");
        }
    }
}
