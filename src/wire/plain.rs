//! The fast path's view of the common frame: Ethernet II carrying IPv4
//! with a 20-byte header that is no fragment, and in it TCP or UDP. Every
//! field sits at a fixed offset, so the view reads them in place with no
//! length walked twice; the checks are those `Ipv4Packet::new_checked`,
//! `verify_checksum` and `TcpPacket`/`UdpPacket::new_checked` make of
//! such a frame (a frame the view turns down goes to those views).
//!
//! Two steps, as the express lane wants them: `PlainFrame::new` looks at
//! the layout alone (the frame's first 34 bytes), so a segment that is
//! not the lane's (a SYN) is turned aside before the header's sum; then
//! `PlainFrame::ipv4` checks the header and finds its payload.

use super::IpProtocol;

/// Where the IPv4 header starts: after the Ethernet header.
const IP: usize = 14;
/// Where the L4 header starts: after a 20-byte IPv4 header.
const L4: usize = IP + 20;

/// A frame of IPv4 (type 0x0800) whose header is 20 bytes (0x45) and that
/// is no fragment (MF clear, offset 0): the first 34 bytes are there. The
/// rest of the header (its lengths, its sum) is unchecked.
#[derive(Debug, Clone, Copy)]
pub struct PlainFrame<'a> {
    frame: &'a [u8],
}

impl<'a> PlainFrame<'a> {
    /// The frame, if it has the layout.
    #[inline(always)]
    pub fn new(frame: &'a [u8]) -> Option<PlainFrame<'a>> {
        (frame.len() >= L4
            && frame[12..14] == [0x08, 0x00]
            && frame[IP] == 0x45
            && (frame[IP + 6] & 0x3f) | frame[IP + 7] == 0)
            .then_some(PlainFrame { frame })
    }

    /// The IP protocol field.
    #[inline(always)]
    pub fn protocol(&self) -> u8 {
        self.frame[IP + 9]
    }

    /// A TCP segment's flag byte, read before its header is checked: None
    /// for another protocol or a frame that ends before the byte. Enough
    /// to turn a segment aside early, not to act on.
    #[inline(always)]
    pub fn tcp_flags_early(&self) -> Option<u8> {
        if self.protocol() != IpProtocol::TCP.0 {
            return None;
        }
        self.frame.get(L4 + 13).copied()
    }

    /// The IPv4 header, where its total length is 20 or more and within
    /// the frame and its checksum is right (that it is no fragment, `new`
    /// found). The sum is not added up where
    /// `checked` (the device that received the frame found it right).
    #[inline(always)]
    pub fn ipv4(self, checked: bool) -> Option<PlainIpv4<'a>> {
        let data = self.frame;
        let ip: &[u8; 20] = data.get(IP..L4)?.try_into().ok()?;
        let be = |at: usize| u16::from_be_bytes([ip[at], ip[at + 1]]);
        let total = usize::from(be(2));
        if total < 20 || IP + total > data.len() {
            return None;
        }
        if !checked {
            // The header's one's-complement sum is all ones: its words'
            // plain sum is a multiple of 0xffff (a fold keeps the sum's
            // residue, as 2^16 is 1 modulo 0xffff, and folds a sum above
            // zero, which the total length makes this one, to neither 0
            // nor more than 0xffff), which the compiler tells by a
            // multiply. By two 64-bit words and a 32-bit one (2^64 and
            // 2^32 are 1 as well, so a carry out of the top is added back
            // at the bottom), read in the machine's byte order: the
            // residue of byte-swapped words is zero exactly when the
            // other is.
            let (lo, mid) = ip.split_first_chunk::<8>()?;
            let (mid, hi) = mid.split_first_chunk::<8>()?;
            let (sum, c1) = u64::from_ne_bytes(*lo).overflowing_add(u64::from_ne_bytes(*mid));
            let hi = u64::from(u32::from_ne_bytes(*hi.first_chunk::<4>()?));
            // Below 2^32 with the carry, and below it again if this wraps.
            let (sum, c2) = sum.overflowing_add(hi + u64::from(c1));
            if (sum + u64::from(c2)) % 0xffff != 0 {
                return None;
            }
        }
        Some(PlainIpv4 {
            ip,
            l4: data.get(L4..IP + total)?,
            end: (IP + total) as u32,
        })
    }
}

/// A checked IPv4 header of 20 bytes and its payload, up to the total
/// length (an Ethernet frame's padding left out).
#[derive(Debug, Clone, Copy)]
pub struct PlainIpv4<'a> {
    ip: &'a [u8; 20],
    l4: &'a [u8],
    end: u32,
}

impl<'a> PlainIpv4<'a> {
    #[inline(always)]
    pub fn ttl(&self) -> u8 {
        self.ip[8]
    }

    #[inline(always)]
    pub fn protocol(&self) -> u8 {
        self.ip[9]
    }

    #[inline(always)]
    pub fn total_len(&self) -> u16 {
        u16::from_be_bytes([self.ip[2], self.ip[3]])
    }

    /// The source address, as a number (its first byte highest).
    #[inline(always)]
    pub fn src(&self) -> u32 {
        self.word(12)
    }

    /// The destination address, as a number.
    #[inline(always)]
    pub fn dst(&self) -> u32 {
        self.word(16)
    }

    /// Source and destination addresses as they lie: what a hash over
    /// the wire's bytes takes.
    #[inline(always)]
    pub fn addr_bytes(&self) -> Option<&'a [u8; 8]> {
        self.ip[12..].first_chunk::<8>()
    }

    /// Where the datagram ends in the frame (its total length past the
    /// Ethernet header), as the bounds check worked it out.
    #[inline(always)]
    pub fn end(&self) -> u32 {
        self.end
    }

    /// Bytes from the end of the header to the total length.
    #[inline(always)]
    pub fn payload(&self) -> &'a [u8] {
        self.l4
    }

    /// The source and destination ports and the TCP flags (0 for UDP) of
    /// a TCP or UDP header the payload holds whole: a TCP data offset of
    /// 20 bytes or more within it, a UDP length of 8 or more within it.
    /// None for another protocol.
    #[inline(always)]
    pub fn ports(&self) -> Option<(u16, u16, u8)> {
        let be = |h: &[u8], at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
        match IpProtocol(self.protocol()) {
            IpProtocol::TCP => {
                let h = self.l4.first_chunk::<20>()?;
                let hl = usize::from(h[12] >> 4) * 4;
                if hl < 20 || self.l4.len() < hl {
                    return None;
                }
                Some((be(h, 0), be(h, 2), h[13]))
            }
            IpProtocol::UDP => {
                let h = self.l4.first_chunk::<8>()?;
                let ulen = usize::from(be(h, 4));
                if ulen < 8 || ulen > self.l4.len() {
                    return None;
                }
                Some((be(h, 0), be(h, 2), 0))
            }
            _ => None,
        }
    }

    /// The ports as they lie (the L4 header's first four bytes): what a
    /// hash over the wire's bytes takes.
    #[inline(always)]
    pub fn port_bytes(&self) -> Option<&'a [u8; 4]> {
        self.l4.first_chunk::<4>()
    }

    #[inline(always)]
    fn word(&self, at: usize) -> u32 {
        let ip = self.ip;
        u32::from_be_bytes([ip[at], ip[at + 1], ip[at + 2], ip[at + 3]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::XorShift;
    use crate::wire::{checksum, EtherType, EthernetFrame, Ipv4Packet, TcpPacket, UdpPacket};

    const ETH: usize = IP;

    /// The header checksum test by residue accepts exactly the headers
    /// whose folded one's-complement sum is all ones (`wire::checksum`,
    /// which folds word by word): random headers with the sum set right,
    /// then one bit off, made to sum to zero and written as 0 or 0xffff
    /// (both one's-complement zeros), or random.
    #[test]
    fn a_header_is_taken_exactly_when_its_sum_is_all_ones() {
        let mut r = XorShift(0x0791_1071);
        let (mut taken, mut refused) = (0, 0);
        for k in 0..200_000 {
            let mut f = [0u8; ETH + 40];
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            let ip = &mut f[ETH..ETH + 20];
            ip.fill_with(|| r.next() as u8);
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&(20 + (k % 21) as u16).to_be_bytes());
            ip[6] &= 0x80;
            ip[7] = 0;
            ip[10..12].fill(0);
            let sum = checksum::checksum(ip);
            match k % 4 {
                0 => ip[10..12].copy_from_slice(&sum.to_be_bytes()),
                1 => {
                    ip[10..12].copy_from_slice(&sum.to_be_bytes());
                    let bit = r.next() as usize % 160;
                    ip[bit / 8] ^= 1 << (bit % 8);
                }
                2 => {
                    // A source word takes up the sum, so that the right one
                    // is 0; written as 0 or as 0xffff, the other
                    // one's-complement zero.
                    let w = u32::from(u16::from_be_bytes([ip[12], ip[13]])) + u32::from(sum);
                    let w = (w & 0xffff) as u16 + (w >> 16) as u16;
                    ip[12..14].copy_from_slice(&w.to_be_bytes());
                    let zero: u16 = if r.next() & 1 == 0 { 0 } else { 0xffff };
                    ip[10..12].copy_from_slice(&zero.to_be_bytes())
                }
                _ => ip[10..12].copy_from_slice(&(r.next() as u16).to_be_bytes()),
            }
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            let plain = ip[0] == 0x45
                && (20..=40).contains(&total)
                && u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff == 0;
            let right = checksum::fold(checksum::sum(ip)) == 0xffff;
            let parse = |checked| PlainFrame::new(&f).and_then(|p| p.ipv4(checked)).is_some();
            let got = parse(false);
            assert_eq!(got, plain && right, "case {k}: {:02x?}", &f[ETH..ETH + 20]);
            assert_eq!(parse(true), plain, "case {k}, summed by the device");
            if got {
                taken += 1;
            } else {
                refused += 1;
            }
        }
        assert!(
            taken > 90_000 && refused > 90_000,
            "{taken} taken, {refused} refused"
        );
    }

    /// The residue's carries: headers whose two 64-bit words overflow
    /// their add, and whose sum then overflows again with the last word
    /// (a source of all ones, a zero ID, a high destination), each taken
    /// exactly when its folded sum is all ones: with the sum set right,
    /// and with the sum off by one either way.
    #[test]
    fn a_sum_that_carries_out_of_64_bits_is_checked_as_any_other() {
        let mut r = XorShift(0x6464_0001);
        let (mut first, mut second) = (0, 0);
        for k in 0..30_000 {
            let mut f = [0u8; ETH + 20];
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            let ip = &mut f[ETH..ETH + 20];
            ip[0] = 0x45;
            ip[1] = r.next() as u8;
            ip[2..4].copy_from_slice(&20u16.to_be_bytes());
            if k % 2 == 0 {
                ip[4..6].copy_from_slice(&(r.next() as u16).to_be_bytes());
            }
            ip[8] = r.next() as u8 | 0x80;
            ip[9] = r.next() as u8;
            ip[12..16].fill(0xff);
            ip[16..20].copy_from_slice(&(r.next() as u32 | 0xf000_0000).to_be_bytes());
            let sum = checksum::checksum(ip);
            let off = [0u16, 1, 0xffff][k % 3];
            ip[10..12].copy_from_slice(&sum.wrapping_add(off).to_be_bytes());
            let w = |at: usize| u64::from_ne_bytes(ip[at..at + 8].try_into().unwrap());
            let (s, c1) = w(0).overflowing_add(w(8));
            let hi = u64::from(u32::from_ne_bytes(ip[16..20].try_into().unwrap()));
            first += usize::from(c1);
            second += usize::from(s.overflowing_add(hi + u64::from(c1)).1);
            let right = checksum::fold(checksum::sum(ip)) == 0xffff;
            let got = PlainFrame::new(&f).and_then(|p| p.ipv4(false)).is_some();
            assert_eq!(got, right, "case {k}: {:02x?}", &f[ETH..]);
        }
        assert!(
            first > 1000 && second > 1000,
            "{first} and {second} carries"
        );
    }

    /// What the general views make of a frame, as the fast path's views
    /// answer it: None where they would turn it down or it is not the
    /// plain layout (IPv4, 20-byte header, no fragment, TCP or UDP).
    fn by_the_general_views(f: &[u8]) -> Option<(u8, u32, u32, u16, u16, u16, u8)> {
        let eth = EthernetFrame::new_checked(f).ok()?;
        if eth.ethertype() != EtherType::IPV4 {
            return None;
        }
        let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
        if ip.header_len() != 20 || ip.is_fragment() || !ip.verify_checksum() {
            return None;
        }
        let l4 = ip.payload();
        let (sport, dport, flags) = match IpProtocol(ip.protocol().0) {
            IpProtocol::TCP => {
                let t = TcpPacket::new_checked(l4).ok()?;
                (t.src_port(), t.dst_port(), t.flags())
            }
            IpProtocol::UDP => {
                let u = UdpPacket::new_checked(l4).ok()?;
                (u.src_port(), u.dst_port(), 0)
            }
            _ => return None,
        };
        Some((
            ip.ttl(),
            ip.src_addr().into(),
            ip.dst_addr().into(),
            ip.total_len(),
            sport,
            dport,
            flags,
        ))
    }

    fn by_the_plain_views(f: &[u8]) -> Option<(u8, u32, u32, u16, u16, u16, u8)> {
        let ip = PlainFrame::new(f)?.ipv4(false)?;
        let (sport, dport, flags) = ip.ports()?;
        assert_eq!(ip.end() as usize, ETH + usize::from(ip.total_len()));
        Some((
            ip.ttl(),
            ip.src(),
            ip.dst(),
            ip.total_len(),
            sport,
            dport,
            flags,
        ))
    }

    /// The fast path's views take what the general ones take of the plain
    /// layout, and read the same fields: random TCP and UDP frames whose
    /// lengths, flags, offsets and protocol are knocked about one field at
    /// a time (the header's sum set right after, so the other checks are
    /// what tells), padded past the datagram now and then.
    #[test]
    fn the_plain_views_take_and_read_what_the_general_views_do() {
        let mut r = XorShift(0x5eed_1e55);
        let (mut taken, mut refused) = (0, 0);
        for k in 0..100_000 {
            let tcp = r.next() & 1 == 0;
            let body = (r.next() % 40) as usize;
            let l4 = if tcp { 20 } else { 8 } + body;
            let pad = if r.next() % 4 == 0 {
                1 + (r.next() % 20) as usize
            } else {
                0
            };
            let mut f = vec![0u8; ETH + 20 + l4 + pad];
            f[..ETH + 20 + l4].fill_with(|| r.next() as u8);
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            let ip = &mut f[ETH..];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&((20 + l4) as u16).to_be_bytes());
            ip[6] &= 0x40;
            ip[7] = 0;
            ip[9] = if tcp { 6 } else { 17 };
            if tcp {
                // A data offset of 5 to the most the segment holds.
                let most = (l4 / 4).min(15) as u8;
                ip[20 + 12] = (5 + (r.next() as u8) % (most - 4)) << 4;
            } else {
                ip[20 + 4..20 + 6].copy_from_slice(&(l4 as u16).to_be_bytes());
            }
            match k % 10 {
                0 => f[12] ^= 1 << (r.next() % 8),
                1 => f[ETH] = r.next() as u8,
                2 => f[ETH + 2..ETH + 4].copy_from_slice(&(r.next() as u16 % 128).to_be_bytes()),
                3 => f[ETH + 6] ^= 1 << (r.next() % 8),
                4 => f[ETH + 7] = r.next() as u8,
                5 => f[ETH + 9] = r.next() as u8,
                6 if tcp => f[ETH + 20 + 12] = r.next() as u8,
                6 => f[ETH + 20 + 4..ETH + 20 + 6]
                    .copy_from_slice(&(r.next() as u16 % 128).to_be_bytes()),
                _ => {}
            }
            if k % 10 != 1 && f.len() >= ETH + 20 {
                let ip = &mut f[ETH..ETH + 20];
                ip[10..12].fill(0);
                let sum = checksum::checksum(ip);
                ip[10..12].copy_from_slice(&sum.to_be_bytes());
            }
            let want = by_the_general_views(&f);
            assert_eq!(by_the_plain_views(&f), want, "case {k}: {f:02x?}");
            if want.is_some() {
                taken += 1;
            } else {
                refused += 1;
            }
        }
        assert!(
            taken > 30_000 && refused > 50_000,
            "{taken} taken, {refused} refused"
        );
    }

    /// A segment's flag byte is seen before the header's checks, for TCP
    /// alone, where the frame holds it.
    #[test]
    fn the_early_flags_are_a_tcp_segments_own() {
        let mut f = [0u8; ETH + 20 + 20];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[ETH] = 0x45;
        f[ETH + 9] = 6;
        f[ETH + 20 + 13] = 0x12;
        let early = |f: &[u8]| PlainFrame::new(f).and_then(|p| p.tcp_flags_early());
        assert_eq!(early(&f), Some(0x12));
        assert_eq!(early(&f[..ETH + 20 + 13]), None, "the frame ends before it");
        f[ETH + 9] = 17;
        assert_eq!(early(&f), None, "UDP has none");
        f[ETH + 9] = 6;
        f[ETH] = 0x46;
        assert_eq!(early(&f), None, "not the plain layout");
    }
}
