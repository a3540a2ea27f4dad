//! SYN cookies for the SYN proxy: the ISN a director answers a SYN with
//! carries what it must remember of that SYN, so a flood of SYNs costs no
//! state at all.
//!
//! The layout is Linux's (net/ipv4/syncookies.c, net/ipv6/syncookies.c):
//!
//! ```text
//! cookie = H0(tuple) + client ISN + count << 24 + (H1(tuple, count) + data) mod 2^24
//! ```
//!
//! where `count` counts minutes, `data` is the index of the client's MSS in
//! a four-entry table, and H0/H1 are SipHash-2-4 under two keys drawn at
//! start. A cookie is good while its count is this minute's or the last
//! one's (MAX_AGE), and its data a valid index. The window scale, SACK
//! permission and ECN of the SYN have no room in the ISN: when the client
//! sent timestamps they ride in the low six bits of the TSval the director
//! answers with, which the client echoes in every ACK (Linux's TS cookie:
//! bits 0-3 the client's window scale, 0xf for none, bit 4 SACK, bit 5 ECN).
//! Without timestamps the connection gets none of the three, as in Linux.
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::net::IpAddr;

use super::Millis;

/// The upper bits of a cookie carry the minute counter.
pub const COUNT_SHIFT: u32 = 24;
const LOW_MASK: u32 = (1 << COUNT_SHIFT) - 1;
/// The counter's period.
pub const PERIOD_MS: Millis = 60_000;
/// A cookie minted `MAX_AGE` periods ago or earlier is refused: it lives 60
/// to 120 s (Linux's MAX_SYNCOOKIE_AGE).
pub const MAX_AGE: u32 = 2;

/// The MSS values an IPv4 cookie can carry (Linux's msstab: the values
/// clients announce most, sorted).
pub const MSS_V4: [u16; 4] = [536, 1300, 1440, 1460];
/// The IPv6 table: the minimum MTU, tunnels, Ethernet and jumbo frames,
/// less 60 bytes of headers.
pub const MSS_V6: [u16; 4] = [1220, 1420, 1440, 8940];

/// The low bits of the TSval that hold the SYN's options.
pub const TS_BITS: u32 = 6;
const TS_WSCALE_MASK: u32 = 0xf;
const TS_SACK: u32 = 1 << 4;
const TS_ECN: u32 = 1 << 5;
/// The largest window scale TCP allows (RFC 7323 section 2.3).
pub const MAX_WSCALE: u8 = 14;

/// The two SipHash keys of one start of rvsd.
#[derive(Clone)]
pub struct Secret {
    keys: [(u64, u64); 2],
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    pub fn new(keys: [(u64, u64); 2]) -> Secret {
        Secret { keys }
    }

    /// Fresh keys from the kernel's random source; should it be unreadable,
    /// from std's per-process random hash keys.
    pub fn random() -> Secret {
        let mut b = [0u8; 32];
        let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
        let w = |i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_le_bytes(x)
        };
        if read.is_ok() {
            return Secret::new([(w(0), w(1)), (w(2), w(3))]);
        }
        let s = std::collections::hash_map::RandomState::new();
        let k = |i: u64| {
            let mut h = s.build_hasher();
            h.write_u64(i);
            h.finish()
        };
        Secret::new([(k(0), k(1)), (k(2), k(3))])
    }

    /// SipHash of the tuple (and `count`) under key `which`, cut to 32 bits:
    /// of the bytes saddr, daddr, sport, dport (network order) and count
    /// (little-endian).
    fn hash(&self, which: usize, t: &CookieTuple, count: u32) -> u32 {
        let (k0, k1) = self.keys[which];
        if let (IpAddr::V4(s), IpAddr::V4(d)) = (t.saddr, t.daddr) {
            // The 16 bytes as SipHash reads them: two little-endian words.
            let mut a = [0u8; 8];
            a[..4].copy_from_slice(&s.octets());
            a[4..].copy_from_slice(&d.octets());
            let mut b = [0u8; 8];
            b[..2].copy_from_slice(&t.sport.to_be_bytes());
            b[2..4].copy_from_slice(&t.dport.to_be_bytes());
            b[4..].copy_from_slice(&count.to_le_bytes());
            return siphash24_words(k0, k1, &[u64::from_le_bytes(a), u64::from_le_bytes(b)], 16)
                as u32;
        }
        let mut m = [0u8; 40];
        let mut n = 0;
        for a in [t.saddr, t.daddr] {
            match a {
                IpAddr::V4(a) => {
                    m[n..n + 4].copy_from_slice(&a.octets());
                    n += 4;
                }
                IpAddr::V6(a) => {
                    m[n..n + 16].copy_from_slice(&a.octets());
                    n += 16;
                }
            }
        }
        m[n..n + 2].copy_from_slice(&t.sport.to_be_bytes());
        m[n + 2..n + 4].copy_from_slice(&t.dport.to_be_bytes());
        m[n + 4..n + 8].copy_from_slice(&count.to_le_bytes());
        siphash24(k0, k1, &m[..n + 8]) as u32
    }
}

/// The connection a cookie belongs to, as the client's SYN names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieTuple {
    /// The client.
    pub saddr: IpAddr,
    /// The virtual service.
    pub daddr: IpAddr,
    pub sport: u16,
    pub dport: u16,
}

/// The minute counter at `now`.
pub fn count_at(now: Millis) -> u32 {
    (now / PERIOD_MS) as u32
}

/// The index of the largest table MSS not above `mss` (the smallest entry
/// for anything below it, as Linux does), and that MSS.
pub fn mss_index(mss: u16, v6: bool) -> (u32, u16) {
    let table = if v6 { &MSS_V6 } else { &MSS_V4 };
    let i = table.iter().rposition(|&m| mss >= m).unwrap_or(0);
    (i as u32, table[i])
}

/// The MSS a checked cookie's index stands for.
pub fn mss_of(index: u32, v6: bool) -> u16 {
    let table = if v6 { &MSS_V6 } else { &MSS_V4 };
    table[index as usize % table.len()]
}

/// The cookie's arithmetic with the two hashes given.
fn assemble(h0: u32, h1: u32, isn: u32, count: u32, data: u32) -> u32 {
    h0.wrapping_add(isn)
        .wrapping_add(count << COUNT_SHIFT)
        .wrapping_add(h1.wrapping_add(data) & LOW_MASK)
}

/// The cookie for a SYN of `t` with initial sequence number `isn`, minted
/// in minute `count`, carrying MSS index `mss_index` (below 4).
pub fn make(secret: &Secret, t: &CookieTuple, isn: u32, count: u32, mss_index: u32) -> u32 {
    let h0 = secret.hash(0, t, 0);
    let h1 = secret.hash(1, t, count);
    assemble(h0, h1, isn, count, mss_index)
}

/// The MSS index a cookie carries if it is one this director minted for
/// `t` and `isn` no more than MAX_AGE minutes before `count`; None for
/// anything else.
pub fn check(secret: &Secret, t: &CookieTuple, isn: u32, cookie: u32, count: u32) -> Option<u32> {
    let rest = cookie.wrapping_sub(secret.hash(0, t, 0)).wrapping_sub(isn);
    let minted = rest >> COUNT_SHIFT;
    // Only the counter's low 8 bits travel.
    let age = count.wrapping_sub(minted) & (u32::MAX >> COUNT_SHIFT);
    if age >= MAX_AGE {
        return None;
    }
    let h1 = secret.hash(1, t, count.wrapping_sub(age));
    let data = rest.wrapping_sub(h1) & LOW_MASK;
    (data < MSS_V4.len() as u32).then_some(data)
}

/// What a SYN offered besides its MSS, kept in the TSval's low bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TsOptions {
    /// The client's window scale (at most MAX_WSCALE), None without the option.
    pub wscale: Option<u8>,
    pub sack: bool,
    pub ecn: bool,
}

/// The TSval to answer with at clock `now` (milliseconds): the clock with
/// its low bits replaced by the options, and never ahead of the clock, so
/// the timestamps the client sees later never run backwards.
pub fn ts_encode(now: u32, o: TsOptions) -> u32 {
    let mut bits = o
        .wscale
        .map_or(TS_WSCALE_MASK, |w| u32::from(w.min(MAX_WSCALE)));
    if o.sack {
        bits |= TS_SACK;
    }
    if o.ecn {
        bits |= TS_ECN;
    }
    let ts = (now >> TS_BITS << TS_BITS) | bits;
    if ts > now {
        ts.wrapping_sub(1 << TS_BITS)
    } else {
        ts
    }
}

/// The options a TSval from `ts_encode` carries (the client's TSecr).
pub fn ts_decode(echo: u32) -> TsOptions {
    let w = echo & TS_WSCALE_MASK;
    TsOptions {
        wscale: (w != TS_WSCALE_MASK).then(|| (w as u8).min(MAX_WSCALE)),
        sack: echo & TS_SACK != 0,
        ecn: echo & TS_ECN != 0,
    }
}

/// SipHash-2-4 (Aumasson and Bernstein, 2012) of `msg` under key (k0, k1).
pub fn siphash24(k0: u64, k1: u64, msg: &[u8]) -> u64 {
    let mut words = msg.chunks_exact(8);
    let mut v = sip_init(k0, k1);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        sip_compress(&mut v, u64::from_le_bytes(b));
    }
    let mut last = (msg.len() as u64 & 0xff) << 56;
    for (i, &x) in words.remainder().iter().enumerate() {
        last |= u64::from(x) << (8 * i);
    }
    sip_finish(v, last)
}

/// `siphash24` of a message of `len` bytes whose whole 8-byte words are
/// `words` (little-endian) and that has no bytes after them: the packet
/// path's IPv4 tuple, without the byte loop.
#[inline]
fn siphash24_words(k0: u64, k1: u64, words: &[u64], len: u64) -> u64 {
    let mut v = sip_init(k0, k1);
    for &m in words {
        sip_compress(&mut v, m);
    }
    sip_finish(v, (len & 0xff) << 56)
}

#[inline]
fn sip_init(k0: u64, k1: u64) -> [u64; 4] {
    [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ]
}

#[inline]
fn sip_round(v: &mut [u64; 4]) {
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

/// One message word: two compression rounds.
#[inline]
fn sip_compress(v: &mut [u64; 4], m: u64) {
    v[3] ^= m;
    sip_round(v);
    sip_round(v);
    v[0] ^= m;
}

/// The last word (length byte on top), then four finalization rounds.
#[inline]
fn sip_finish(mut v: [u64; 4], last: u64) -> u64 {
    sip_compress(&mut v, last);
    v[2] ^= 0xff;
    for _ in 0..4 {
        sip_round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_0_to_15() -> (u64, u64) {
        (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908)
    }

    #[test]
    fn siphash_matches_the_papers_vectors() {
        let (k0, k1) = key_0_to_15();
        // Appendix A of the SipHash paper: key 00..0f, message 00..0e.
        let msg: Vec<u8> = (0..15).collect();
        assert_eq!(siphash24(k0, k1, &msg), 0xa129_ca61_49be_45e5);
        // The reference implementation's first vector: the empty message.
        assert_eq!(siphash24(k0, k1, &[]), 0x726f_db47_dd0e_0e31);
    }

    #[test]
    #[allow(deprecated)]
    fn siphash_matches_std_for_every_length() {
        use std::hash::SipHasher;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for len in 0..70 {
            let (k0, k1) = (next(), next());
            let msg: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let mut h = SipHasher::new_with_keys(k0, k1);
            h.write(&msg);
            assert_eq!(siphash24(k0, k1, &msg), h.finish(), "length {len}");
        }
    }

    #[test]
    fn the_ipv4_tuple_hashes_as_its_sixteen_bytes() {
        let s = Secret::new([(0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908), (5, 6)]);
        let t = v4();
        // 198.18.0.2, 198.18.0.100, port 40000 = 0x9c40, port 80 = 0x0050,
        // count 7 little-endian.
        let bytes = [
            198, 18, 0, 2, 198, 18, 0, 100, 0x9c, 0x40, 0x00, 0x50, 7, 0, 0, 0,
        ];
        let (k0, k1) = key_0_to_15();
        assert_eq!(s.hash(0, &t, 7), siphash24(k0, k1, &bytes) as u32);
    }

    #[test]
    fn the_cookie_arithmetic_worked_by_hand() {
        // 0x11111111 + 0x22222222 + 5 << 24 + ((0x00fffffe + 3) mod 2^24):
        // 0x33333333 + 0x05000000 + 0x000001 = 0x38333334.
        assert_eq!(
            assemble(0x1111_1111, 0x00ff_fffe, 0x2222_2222, 5, 3),
            0x3833_3334
        );
        // Everything wraps modulo 2^32: 0xf0000000 + 0x20000000 = 0x10000000,
        // + 0xff << 24 = 0x0f000000, + (0x10 + 2) = 0x0f000012.
        assert_eq!(
            assemble(0xf000_0000, 0x10, 0x2000_0000, 0xff, 2),
            0x0f00_0012
        );
        // Only the count's low byte survives the shift: 0x105 acts as 5.
        assert_eq!(
            assemble(0x1111_1111, 0x00ff_fffe, 0x2222_2222, 0x105, 3),
            0x3833_3334
        );
    }

    fn secret() -> Secret {
        Secret::new([(1, 2), (3, 4)])
    }

    fn v4() -> CookieTuple {
        CookieTuple {
            saddr: "198.18.0.2".parse().unwrap(),
            daddr: "198.18.0.100".parse().unwrap(),
            sport: 40000,
            dport: 80,
        }
    }

    fn v6() -> CookieTuple {
        CookieTuple {
            saddr: "fd00:18::2".parse().unwrap(),
            daddr: "fd00:18::100".parse().unwrap(),
            sport: 40000,
            dport: 443,
        }
    }

    #[test]
    fn a_cookie_is_the_hashes_and_the_isn_as_documented() {
        let (s, t) = (secret(), v4());
        let h0 = s.hash(0, &t, 0);
        let h1 = s.hash(1, &t, 7);
        assert_eq!(make(&s, &t, 1000, 7, 2), assemble(h0, h1, 1000, 7, 2));
        // The second key and the count both change H1; the ISN does not
        // enter a hash at all.
        assert_ne!(s.hash(1, &t, 7), s.hash(1, &t, 8));
        assert_ne!(s.hash(0, &t, 0), s.hash(1, &t, 0));
    }

    #[test]
    fn every_mss_index_round_trips_v4_and_v6() {
        let s = secret();
        for (t, v6) in [(v4(), false), (v6(), true)] {
            for idx in 0..4 {
                for isn in [0, 1, 0x7fff_ffff, u32::MAX] {
                    for count in [0, 1, 255, 256, 100_000] {
                        let c = make(&s, &t, isn, count, idx);
                        assert_eq!(check(&s, &t, isn, c, count), Some(idx));
                        let (i, m) = mss_index(mss_of(idx, v6), v6);
                        assert_eq!((i, m), (idx, mss_of(idx, v6)));
                    }
                }
            }
        }
    }

    #[test]
    fn a_cookie_lives_this_minute_and_the_next_only() {
        let (s, t) = (secret(), v4());
        for count in [10, 255, 511] {
            let c = make(&s, &t, 77, count, 3);
            assert_eq!(check(&s, &t, 77, c, count), Some(3));
            assert_eq!(check(&s, &t, 77, c, count + 1), Some(3), "one minute on");
            assert_eq!(check(&s, &t, 77, c, count + 2), None, "two minutes on");
            assert_eq!(
                check(&s, &t, 77, c, count + 256),
                None,
                "the counter came round"
            );
            assert_eq!(
                check(&s, &t, 77, c, count.wrapping_sub(1)),
                None,
                "from the future"
            );
        }
        assert_eq!(count_at(59_999), 0);
        assert_eq!(count_at(60_000), 1);
        assert_eq!(count_at(3_600_000), 60);
    }

    #[test]
    fn another_tuple_isn_secret_or_a_bad_index_is_refused() {
        let (s, t) = (secret(), v4());
        let c = make(&s, &t, 5000, 3, 1);
        assert_eq!(check(&s, &t, 5000, c, 3), Some(1));
        let others = [
            CookieTuple { sport: 40001, ..t },
            CookieTuple { dport: 81, ..t },
            CookieTuple {
                saddr: "198.18.0.3".parse().unwrap(),
                ..t
            },
            CookieTuple {
                daddr: "198.18.0.101".parse().unwrap(),
                ..t
            },
        ];
        for o in others {
            assert_eq!(check(&s, &o, 5000, c, 3), None, "{o:?}");
        }
        // The ISN is added, not hashed (as in Linux): one off by a few
        // moves the data within the table, one off by more out of it.
        assert_eq!(check(&s, &t, 5001, c, 3), Some(0));
        assert_eq!(check(&s, &t, 5000 + 0x100, c, 3), None, "another ISN");
        assert_eq!(check(&s, &t, 5000, c.wrapping_add(0x100), 3), None);
        let other = Secret::new([(1, 2), (3, 5)]);
        assert_eq!(
            check(&other, &t, 5000, c, 3),
            None,
            "another start's secret"
        );
        // A cookie whose data says 4 or more holds no MSS index.
        let h0 = s.hash(0, &t, 0);
        let h1 = s.hash(1, &t, 3);
        assert_eq!(check(&s, &t, 5000, assemble(h0, h1, 5000, 3, 4), 3), None);
        // Random ACKs almost never pass: 4 of 2^24 data values in 2 of 256
        // minutes.
        let mut x = 0x1234_5678u32;
        let passed = (0..100_000)
            .filter(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                check(&s, &t, 5000, x, 3).is_some()
            })
            .count();
        assert_eq!(passed, 0);
    }

    #[test]
    fn the_mss_tables_round_down_as_linux() {
        assert_eq!(
            mss_index(100, false),
            (0, 536),
            "below the table: its first"
        );
        assert_eq!(mss_index(536, false), (0, 536));
        assert_eq!(mss_index(1299, false), (0, 536));
        assert_eq!(mss_index(1300, false), (1, 1300));
        assert_eq!(mss_index(1452, false), (2, 1440));
        assert_eq!(mss_index(1460, false), (3, 1460));
        assert_eq!(mss_index(8960, false), (3, 1460));
        assert_eq!(mss_index(1440, true), (2, 1440));
        assert_eq!(mss_index(1439, true), (1, 1420));
        assert_eq!(mss_index(9000, true), (3, 8940));
        assert_eq!(mss_index(1200, true), (0, 1220));
    }

    #[test]
    fn timestamp_options_worked_by_hand() {
        let ws7_sack = TsOptions {
            wscale: Some(7),
            sack: true,
            ecn: false,
        };
        // 1000 = 0x3e8; its low six bits cleared: 0x3c0 = 960; | 0x17 = 983.
        assert_eq!(ts_encode(1000, ws7_sack), 983);
        assert_eq!(ts_decode(983), ws7_sack);
        // With ECN the bits are 0x37 = 55: 960 + 55 = 1015 > 1000, so one
        // step of 64 back: 951.
        let all = TsOptions {
            ecn: true,
            ..ws7_sack
        };
        assert_eq!(ts_encode(1000, all), 951);
        assert_eq!(ts_decode(951), all);
        // No window scale: 0xf; nothing else: 0x3c0 | 0xf = 975.
        let none = TsOptions::default();
        assert_eq!(ts_encode(1000, none), 975);
        assert_eq!(ts_decode(975), none);
        // A scale above 14 is sent as 14.
        let big = TsOptions {
            wscale: Some(15),
            ..none
        };
        assert_eq!(ts_decode(ts_encode(1 << 20, big)).wscale, Some(14));
        // Never ahead of the clock, also where it wraps.
        for now in [0u32, 5, 63, 64, 1 << 31, u32::MAX] {
            for o in [none, ws7_sack, all] {
                let ts = ts_encode(now, o);
                assert!(now.wrapping_sub(ts) < 64, "{now} {ts}");
                assert_eq!(ts_decode(ts), o);
            }
        }
    }
}
