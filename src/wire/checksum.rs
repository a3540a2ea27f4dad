//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! `sum` returns a partial ones-complement sum that can be added to other
//! partial sums (pseudo headers, other chunks) with plain `+`; `fold` reduces
//! such a total to 16 bits and `!fold(..)` is the value that goes on the wire.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Partial ones-complement sum of `data` as big-endian 16-bit words.
///
/// An odd trailing byte is padded with a zero byte, so only the last chunk
/// of a message may have odd length. The result is at most 0xffff, so many
/// partial sums can be added without overflowing `u32`.
pub fn sum(data: &[u8]) -> u32 {
    // Read four bytes at a time in the machine's own byte order: RFC 1071's
    // sum does not depend on the order its words are read in (section
    // 2(B)), so the folded total is swapped to big-endian order once at
    // the end rather than every word on the way in. A u64 accumulator
    // cannot overflow for any slice that fits in memory.
    let mut acc: u64 = 0;
    let mut quads = data.chunks_exact(4);
    for q in &mut quads {
        acc += u64::from(u32::from_ne_bytes([q[0], q[1], q[2], q[3]]));
    }
    match *quads.remainder() {
        [a, b, c] => {
            acc += u64::from(u16::from_ne_bytes([a, b])) + u64::from(u16::from_ne_bytes([c, 0]))
        }
        [a, b] => acc += u64::from(u16::from_ne_bytes([a, b])),
        [a] => acc += u64::from(u16::from_ne_bytes([a, 0])),
        _ => {}
    }
    u32::from(u16::from_be(fold64(acc)))
}

/// `fold` of a sum kept in 64 bits (of whole 32-bit words: 2^32, like
/// 2^16, is 1 modulo 0xffff, so a word's halves need not be split first).
#[inline]
pub fn fold64(s: u64) -> u16 {
    // The halves' end-around carry: when the add carries, its low word is
    // at most 2^32 - 2, so adding the carry back cannot carry again.
    let (low, carry) = (s as u32).overflowing_add((s >> 32) as u32);
    fold(low + u32::from(carry))
}

/// Folds the carries of a sum of partial sums back into 16 bits.
///
/// Not complemented: `!fold(s)` is the checksum field, and a received message
/// is intact when `fold` over all of it (checksum field included) is 0xffff.
#[inline]
pub fn fold(s: u32) -> u16 {
    // Two end-around carries for any u32, no loop: the first leaves at
    // most 0x1fffe, the second at most 0xffff.
    let s = (s & 0xffff) + (s >> 16);
    ((s & 0xffff) + (s >> 16)) as u16
}

/// The Internet checksum of `data`, ready to be written into a header.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// Partial sum of the IPv4 pseudo header used by TCP and UDP.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: u16) -> u32 {
    sum(&src.octets()) + sum(&dst.octets()) + u32::from(proto) + u32::from(len)
}

/// Partial sum of the IPv6 pseudo header (RFC 8200 section 8.1).
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, len: u32) -> u32 {
    sum(&src.octets()) + sum(&dst.octets()) + (len >> 16) + (len & 0xffff) + u32::from(next_header)
}

/// RFC 1624 eqn. 3: the checksum after a 16-bit word changed from `old` to
/// `new`. Eqn. 3 (rather than eqn. 2) never produces -0 for a non-zero sum.
pub fn update_u16(csum: u16, old: u16, new: u16) -> u16 {
    !fold(u32::from(!csum) + u32::from(!old) + u32::from(new))
}

/// As [`update_u16`] for an aligned 32-bit field (IPv4 address, TCP seq).
pub fn update_u32(csum: u16, old: u32, new: u32) -> u16 {
    !fold(
        u32::from(!csum)
            + u32::from(!(old >> 16) as u16)
            + u32::from(!(old as u16))
            + (new >> 16)
            + (new & 0xffff),
    )
}

/// As [`update_u16`] for a field of several 16-bit words starting at an
/// even offset (IPv6 addresses). `old` and `new` must have the same, even,
/// length; extra bytes of the longer one and an odd trailing byte are ignored.
pub fn update_bytes(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    let mut acc = u32::from(!csum);
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        acc += u32::from(!u16::from_be_bytes([o[0], o[1]]));
        acc += u32::from(u16::from_be_bytes([n[0], n[1]]));
        // Folding per word keeps `acc` far from overflow for any length.
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::XorShift;

    // Word-by-word reference implementation, written independently of `sum`.
    fn reference(data: &[u8]) -> u16 {
        let mut s: u64 = 0;
        let mut i = 0;
        while i < data.len() {
            let hi = u64::from(data[i]);
            let lo = if i + 1 < data.len() {
                u64::from(data[i + 1])
            } else {
                0
            };
            s += (hi << 8) | lo;
            i += 2;
        }
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the sum of these words is 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn known_ipv4_header() {
        // A classic IPv4 header whose checksum field is 0xb861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10] = 0xb8;
        h[11] = 0x61;
        assert_eq!(fold(sum(&h)), 0xffff);
    }

    #[test]
    fn matches_reference_odd_and_even() {
        let mut rng = XorShift(0x1234_5678_9abc_def1);
        for len in 0..300 {
            let d = rng.bytes(len);
            assert_eq!(checksum(&d), reference(&d), "len {len}");
        }
        let big = vec![0xffu8; 200_001];
        assert_eq!(checksum(&big), reference(&big));
    }

    /// `sum` itself, not only the checksum made of it: callers add partial
    /// sums together, so each must be the big-endian words' folded sum
    /// (all ones for a nonzero multiple of 0xffff, zero only for zeros),
    /// whatever the slice's length and where in memory it starts.
    #[test]
    fn partial_sums_are_the_big_endian_words_folded() {
        let mut rng = XorShift(0x0bad_cafe_1234_5678);
        let buf = rng.bytes(400);
        for start in 0..8 {
            for len in 0..=200 {
                let d = &buf[start..start + len];
                assert_eq!(sum(d), u32::from(!reference(d)), "start {start} len {len}");
            }
        }
        for len in 0..40 {
            assert_eq!(sum(&vec![0u8; len]), 0, "zeros, len {len}");
            let ones = vec![0xffu8; len];
            assert_eq!(sum(&ones), u32::from(!reference(&ones)), "ones, len {len}");
        }
        // Words summing to a multiple of 0xffff: all ones, not zero.
        assert_eq!(sum(&[0x12, 0x34, 0xed, 0xcb]), 0xffff);
    }

    #[test]
    fn fold_and_fold64_are_the_sum_modulo_0xffff_with_all_ones_for_its_multiples() {
        // One's-complement arithmetic: a non-zero sum folds to the member
        // of 1..=0xffff it is congruent to modulo 0xffff; zero stays zero.
        let expect = |s: u64| {
            if s == 0 {
                0
            } else {
                ((s - 1) % 0xffff + 1) as u16
            }
        };
        let mut rng = XorShift(0x5eed_f01d_0000_0001);
        let edges = [
            0,
            1,
            0xfffe,
            0xffff,
            0x1_0000,
            0x1_fffe,
            0x1_ffff,
            0xfffe_0001,
            0xffff_0000,
            u32::MAX - 1,
            u32::MAX,
        ];
        let random: Vec<u32> = (0..10_000).map(|_| rng.next() as u32).collect();
        for s in edges.into_iter().chain(random) {
            assert_eq!(fold(s), expect(u64::from(s)), "{s:#x}");
            assert_eq!(fold64(u64::from(s)), expect(u64::from(s)), "{s:#x}");
        }
        let wide = [
            0x1_0000_0000,
            0x1_ffff_fffe,
            0xffff_ffff_0000_0000,
            u64::MAX - 1,
            u64::MAX,
        ];
        let random: Vec<u64> = (0..10_000).map(|_| rng.next()).collect();
        for s in wide.into_iter().chain(random) {
            assert_eq!(fold64(s), expect(s), "{s:#x}");
        }
    }

    #[test]
    fn rfc1624_edge_case() {
        // RFC 1624 section 3: other words sum to 0xcd7a, m = 0x5555 becomes
        // m' = 0x3285. The correct new checksum is 0x0000; eqn. 2 would give
        // 0xffff.
        let hc = !fold(0xcd7a + 0x5555);
        assert_eq!(hc, 0xdd2f);
        assert_eq!(update_u16(hc, 0x5555, 0x3285), 0x0000);
        assert_eq!(update_u16(hc, 0x5555, 0x3285), !fold(0xcd7a + 0x3285));
    }

    #[test]
    fn incremental_matches_recompute() {
        let mut rng = XorShift(0xdead_beef_cafe_f00d);
        for round in 0..5000 {
            let len = 40 + (rng.next() % 40) as usize * 2;
            let mut d = rng.bytes(len);
            // Bias some rounds toward all-ones / all-zero words, where -0/+0
            // representation mistakes show up.
            if round % 7 == 0 {
                for b in d.iter_mut().take(16) {
                    *b = if round % 2 == 0 { 0xff } else { 0x00 };
                }
            }
            // Checksum field at 0..2 (even offset, like every real header).
            d[0] = 0;
            d[1] = 0;
            let c = checksum(&d);
            d[0..2].copy_from_slice(&c.to_be_bytes());

            let at = 2 + 2 * (rng.next() as usize % ((len - 18) / 2));
            let c_old = u16::from_be_bytes([d[0], d[1]]);
            let c_new = match round % 3 {
                0 => {
                    let old = u16::from_be_bytes([d[at], d[at + 1]]);
                    let new = if round % 11 == 0 {
                        !old
                    } else {
                        rng.next() as u16
                    };
                    d[at..at + 2].copy_from_slice(&new.to_be_bytes());
                    update_u16(c_old, old, new)
                }
                1 => {
                    let old = u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]]);
                    let new = rng.next() as u32;
                    d[at..at + 4].copy_from_slice(&new.to_be_bytes());
                    update_u32(c_old, old, new)
                }
                _ => {
                    let old = d[at..at + 16].to_vec();
                    let new = rng.bytes(16);
                    d[at..at + 16].copy_from_slice(&new);
                    update_bytes(c_old, &old, &new)
                }
            };
            d[0] = 0;
            d[1] = 0;
            assert_eq!(c_new, checksum(&d), "round {round}");
        }
    }

    #[test]
    fn pseudo_headers() {
        let s4 = Ipv4Addr::new(192, 168, 0, 1);
        let d4 = Ipv4Addr::new(10, 1, 2, 3);
        let mut ph = Vec::new();
        ph.extend_from_slice(&s4.octets());
        ph.extend_from_slice(&d4.octets());
        ph.extend_from_slice(&[0, 6, 0x12, 0x34]);
        assert_eq!(fold(pseudo_header_v4(s4, d4, 6, 0x1234)), fold(sum(&ph)));

        let s6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d6: Ipv6Addr = "fe80::ffff:1".parse().unwrap();
        let mut ph = Vec::new();
        ph.extend_from_slice(&s6.octets());
        ph.extend_from_slice(&d6.octets());
        ph.extend_from_slice(&0x0001_0203u32.to_be_bytes());
        ph.extend_from_slice(&[0, 0, 0, 58]);
        assert_eq!(
            fold(pseudo_header_v6(&s6, &d6, 58, 0x0001_0203)),
            fold(sum(&ph))
        );
    }
}
