//! VRRP version 3 (RFC 5798 §5.1) over IPv4: IP protocol 112, sent to
//! 224.0.0.18 (or unicast to configured peers) with TTL 255.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
//! |(rsvd) |     Max Adver Int     |          Checksum             |
//! |                    IPvX Address(es) ...                       |
//! ```
//!
//! The checksum covers the VRRP message and the IPv4 pseudo header
//! (source, destination, zero, protocol 112, VRRP length), as TCP's does.

use std::net::Ipv4Addr;

use super::checksum;
use super::{be16, set_be16, Error, Result};

/// The IP protocol number of VRRP.
pub const PROTO: u8 = 112;
/// The IPv4 group adverts go to (RFC 5798 §5.1.1.2).
pub const GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The only TTL a valid advert carries (§5.1.1.3).
pub const TTL: u8 = 255;
/// The version this module speaks.
pub const VERSION: u8 = 3;
/// The only packet type (§5.2.2).
pub const TYPE_ADVERTISEMENT: u8 = 1;
/// The largest Max Adver Int, in centiseconds (12 bits).
pub const MAX_ADVER_INT: u16 = 0x0fff;

/// A view of a VRRP message. After `new_checked`, the 8-byte header is
/// there; the address list is checked by `addrs_v4`.
#[derive(Debug, Clone, Copy)]
pub struct VrrpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VrrpPacket<T> {
    pub const HEADER_LEN: usize = 8;

    pub const fn new_unchecked(buffer: T) -> Self {
        VrrpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(VrrpPacket { buffer })
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    pub fn kind(&self) -> u8 {
        self.buffer.as_ref()[0] & 0x0f
    }

    pub fn vrid(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    pub fn priority(&self) -> u8 {
        self.buffer.as_ref()[2]
    }

    pub fn count(&self) -> u8 {
        self.buffer.as_ref()[3]
    }

    /// Centiseconds; the top four (reserved) bits are ignored.
    pub fn max_adver_int(&self) -> u16 {
        be16(self.buffer.as_ref(), 4) & MAX_ADVER_INT
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }

    /// The IPv4 addresses the message lists; `Truncated` when the buffer
    /// is shorter than `count` of them.
    pub fn addrs_v4(&self) -> Result<impl Iterator<Item = Ipv4Addr> + '_> {
        let b = self.buffer.as_ref();
        let end = Self::HEADER_LEN + 4 * usize::from(self.count());
        let list = b.get(Self::HEADER_LEN..end).ok_or(Error::Truncated)?;
        Ok(list
            .chunks_exact(4)
            .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3])))
    }

    /// Whether the checksum over the whole buffer (the VRRP message as
    /// the IP payload holds it) and the pseudo header is right.
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let b = self.buffer.as_ref();
        let Ok(len) = u16::try_from(b.len()) else {
            return false;
        };
        let s = checksum::pseudo_header_v4(src, dst, PROTO, len) + checksum::sum(b);
        checksum::fold(s) == 0xffff
    }
}

/// An advertisement in high-level form (IPv4 addresses only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpRepr<'a> {
    pub vrid: u8,
    pub priority: u8,
    /// Centiseconds, at most `MAX_ADVER_INT`.
    pub max_adver_int: u16,
    pub addrs: &'a [Ipv4Addr],
}

impl VrrpRepr<'_> {
    pub fn buffer_len(&self) -> usize {
        VrrpPacket::<&[u8]>::HEADER_LEN + 4 * self.addrs.len().min(255)
    }

    /// Writes the message into `buf` (at least `buffer_len` bytes) with
    /// its checksum for the IPv4 pseudo header of `src` → `dst`. At most
    /// 255 addresses are written (the count is one byte).
    pub fn emit_v4(&self, buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) {
        let len = self.buffer_len();
        let buf = &mut buf[..len];
        buf[0] = VERSION << 4 | TYPE_ADVERTISEMENT;
        buf[1] = self.vrid;
        buf[2] = self.priority;
        let addrs = &self.addrs[..self.addrs.len().min(255)];
        buf[3] = addrs.len() as u8;
        set_be16(buf, 4, self.max_adver_int.min(MAX_ADVER_INT));
        set_be16(buf, 6, 0);
        for (i, a) in addrs.iter().enumerate() {
            let at = VrrpPacket::<&[u8]>::HEADER_LEN + 4 * i;
            buf[at..at + 4].copy_from_slice(&a.octets());
        }
        let s = checksum::pseudo_header_v4(src, dst, PROTO, len as u16) + checksum::sum(buf);
        set_be16(buf, 6, !checksum::fold(s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);

    /// VRID 51, priority 150, one address, 100 cs (1 s), from 198.18.0.2
    /// to 224.0.0.18. The checksum by hand: the pseudo header's words
    /// c612 0002 e000 0012 0070 000c plus the message's 3133 9601 0064
    /// 0000 c612 000a sum to 0x33456; folded 0x3459; complemented 0xcba6.
    const ADVERT: [u8; 12] = [
        0x31, 0x33, 0x96, 0x01, 0x00, 0x64, 0xcb, 0xa6, 198, 18, 0, 10,
    ];

    #[test]
    fn emit_matches_the_hand_worked_advert() {
        let r = VrrpRepr {
            vrid: 51,
            priority: 150,
            max_adver_int: 100,
            addrs: &[VIP],
        };
        let mut buf = [0u8; 12];
        assert_eq!(r.buffer_len(), 12);
        r.emit_v4(&mut buf, SRC, GROUP_V4);
        assert_eq!(buf, ADVERT);
    }

    /// The checksum the test works out itself, word by word, with no help
    /// from the module's checksum code.
    fn independent_checksum(src: Ipv4Addr, dst: Ipv4Addr, msg: &[u8]) -> u16 {
        let mut words: Vec<u32> = Vec::new();
        for pair in src.octets().chunks(2).chain(dst.octets().chunks(2)) {
            words.push(u32::from(pair[0]) << 8 | u32::from(pair[1]));
        }
        words.push(112);
        words.push(msg.len() as u32);
        for (i, pair) in msg.chunks(2).enumerate() {
            if i == 3 {
                continue; // the checksum field itself counts as zero
            }
            words.push(u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0)));
        }
        let mut s: u32 = words.iter().sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn checksum_agrees_with_an_independent_sum_for_many_adverts() {
        let addrs = [
            VIP,
            Ipv4Addr::new(203, 0, 113, 7),
            Ipv4Addr::new(10, 0, 0, 1),
        ];
        for vrid in [1u8, 51, 255] {
            for prio in [0u8, 1, 100, 254, 255] {
                for n in 0..=addrs.len() {
                    let r = VrrpRepr {
                        vrid,
                        priority: prio,
                        max_adver_int: 10,
                        addrs: &addrs[..n],
                    };
                    let mut buf = vec![0u8; r.buffer_len()];
                    r.emit_v4(&mut buf, SRC, GROUP_V4);
                    let want = independent_checksum(SRC, GROUP_V4, &buf);
                    assert_eq!(u16::from_be_bytes([buf[6], buf[7]]), want);
                    assert!(VrrpPacket::new_checked(&buf[..])
                        .unwrap()
                        .verify_checksum_v4(SRC, GROUP_V4));
                }
            }
        }
    }

    #[test]
    fn view_reads_the_hand_worked_advert() {
        let p = VrrpPacket::new_checked(&ADVERT[..]).unwrap();
        assert_eq!(p.version(), 3);
        assert_eq!(p.kind(), 1);
        assert_eq!(p.vrid(), 51);
        assert_eq!(p.priority(), 150);
        assert_eq!(p.count(), 1);
        assert_eq!(p.max_adver_int(), 100);
        assert_eq!(p.checksum(), 0xcba6);
        assert_eq!(p.addrs_v4().unwrap().collect::<Vec<_>>(), vec![VIP]);
        assert!(p.verify_checksum_v4(SRC, GROUP_V4));
        // Another destination (a unicast peer) makes another pseudo header.
        assert!(!p.verify_checksum_v4(SRC, Ipv4Addr::new(198, 18, 0, 3)));
    }

    #[test]
    fn damaged_adverts_fail_the_checksum_and_short_ones_are_refused() {
        for i in 0..ADVERT.len() {
            let mut b = ADVERT;
            b[i] ^= 0x10;
            let p = VrrpPacket::new_checked(&b[..]).unwrap();
            assert!(!p.verify_checksum_v4(SRC, GROUP_V4), "byte {i}");
        }
        assert_eq!(
            VrrpPacket::new_checked(&ADVERT[..7]).err(),
            Some(Error::Truncated)
        );
        // Count says two addresses, the buffer holds one.
        let mut b = ADVERT;
        b[3] = 2;
        let p = VrrpPacket::new_checked(&b[..]).unwrap();
        assert!(p.addrs_v4().is_err());
    }

    #[test]
    fn reserved_bits_are_not_part_of_the_interval() {
        let mut b = ADVERT;
        b[4] |= 0xf0;
        assert_eq!(
            VrrpPacket::new_checked(&b[..]).unwrap().max_adver_int(),
            100
        );
    }
}
