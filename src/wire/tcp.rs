//! TCP segments (RFC 9293).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::checksum;
use super::{be16, be32, set_be16, set_be32, Error, IpProtocol, Result};

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;
pub const ECE: u8 = 0x40;
pub const CWR: u8 = 0x80;

pub const OPT_EOL: u8 = 0;
pub const OPT_NOP: u8 = 1;
pub const OPT_MSS: u8 = 2;
pub const OPT_WINDOW_SCALE: u8 = 3;
pub const OPT_SACK_PERMITTED: u8 = 4;
pub const OPT_SACK: u8 = 5;
pub const OPT_TIMESTAMP: u8 = 8;

/// A view of a TCP segment. The buffer must be exactly the segment (as
/// `Ipv4Packet::payload` gives), since the checksum covers all of it.
#[derive(Debug, Clone, Copy)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    pub const MIN_HEADER_LEN: usize = 20;

    /// No validation; getters panic if the buffer is shorter than 20 bytes
    /// or than the data offset.
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Truncated: below 20 bytes or below the data offset. Malformed: data
    /// offset below 5.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < Self::MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len();
        if hl < Self::MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if b.len() < hl {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }

    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    pub fn seq_number(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }

    pub fn ack_number(&self) -> u32 {
        be32(self.buffer.as_ref(), 8)
    }

    /// The data offset field, in 32-bit words.
    pub fn data_offset(&self) -> u8 {
        self.buffer.as_ref()[12] >> 4
    }

    /// Header length in bytes, options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.data_offset()) * 4
    }

    /// The eight flag bits (CWR..FIN); see the `FIN`..`CWR` constants.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[13]
    }

    pub fn fin(&self) -> bool {
        self.flags() & FIN != 0
    }

    pub fn syn(&self) -> bool {
        self.flags() & SYN != 0
    }

    pub fn rst(&self) -> bool {
        self.flags() & RST != 0
    }

    pub fn psh(&self) -> bool {
        self.flags() & PSH != 0
    }

    pub fn ack(&self) -> bool {
        self.flags() & ACK != 0
    }

    pub fn urg(&self) -> bool {
        self.flags() & URG != 0
    }

    pub fn ece(&self) -> bool {
        self.flags() & ECE != 0
    }

    pub fn cwr(&self) -> bool {
        self.flags() & CWR != 0
    }

    pub fn window_len(&self) -> u16 {
        be16(self.buffer.as_ref(), 14)
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 16)
    }

    pub fn urgent_at(&self) -> u16 {
        be16(self.buffer.as_ref(), 18)
    }

    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[Self::MIN_HEADER_LEN..self.header_len()]
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// Sequence space the segment occupies: payload plus one each for SYN
    /// and FIN.
    pub fn segment_len(&self) -> usize {
        self.payload().len() + usize::from(self.syn()) + usize::from(self.fin())
    }

    pub fn options_iter(&self) -> TcpOptions<'_> {
        TcpOptions {
            data: self.options(),
            pos: 0,
        }
    }

    /// The MSS option value, if present. Malformed if the options cannot be
    /// walked up to it or it does not have length 4.
    pub fn mss(&self) -> Result<Option<u16>> {
        Ok(self.find_mss()?.map(|(_, v)| v))
    }

    /// Offset of the MSS value from the start of the segment, and the value.
    fn find_mss(&self) -> Result<Option<(usize, u16)>> {
        let mut it = self.options_iter();
        while let Some(o) = it.next() {
            let (kind, body) = o?;
            if kind == OPT_MSS {
                return match body {
                    [a, b] => {
                        let at = Self::MIN_HEADER_LEN + it.pos - 2;
                        Ok(Some((at, u16::from_be_bytes([*a, *b]))))
                    }
                    _ => Err(Error::Malformed),
                };
            }
        }
        Ok(None)
    }

    fn verify(&self, ph: u32) -> bool {
        checksum::fold(ph + checksum::sum(self.buffer.as_ref())) == 0xffff
    }

    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let len = self.buffer.as_ref().len() as u16;
        self.verify(checksum::pseudo_header_v4(src, dst, IpProtocol::TCP.0, len))
    }

    pub fn verify_checksum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        let len = self.buffer.as_ref().len() as u32;
        self.verify(checksum::pseudo_header_v6(src, dst, IpProtocol::TCP.0, len))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    pub fn set_src_port(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), 0, v);
    }

    pub fn set_dst_port(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), 2, v);
    }

    pub fn set_seq_number(&mut self, v: u32) {
        set_be32(self.buffer.as_mut(), 4, v);
    }

    pub fn set_ack_number(&mut self, v: u32) {
        set_be32(self.buffer.as_mut(), 8, v);
    }

    /// Header length in bytes (multiple of 4, 20..=60); clears the reserved
    /// bits.
    pub fn set_header_len(&mut self, bytes: usize) {
        self.buffer.as_mut()[12] = (((bytes / 4) as u8) & 0x0f) << 4;
    }

    pub fn set_flags(&mut self, flags: u8) {
        self.buffer.as_mut()[13] = flags;
    }

    pub fn set_window_len(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), 14, v);
    }

    pub fn set_checksum(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), 16, v);
    }

    pub fn set_urgent_at(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), 18, v);
    }

    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[Self::MIN_HEADER_LEN..hl]
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }

    /// Rewrites an existing MSS option and returns its old value (`None`,
    /// and nothing written, if there is none). The checksum is adjusted
    /// incrementally, so a segment that was valid stays valid; the option
    /// may sit at an odd offset, which a plain `update_u16` would get wrong.
    pub fn set_mss(&mut self, mss: u16) -> Result<Option<u16>> {
        let Some((at, old)) = self.find_mss()? else {
            return Ok(None);
        };
        let csum = self.checksum();
        let b = self.buffer.as_mut();
        let new_csum = if at % 2 == 0 {
            set_be16(b, at, mss);
            checksum::update_u16(csum, old, mss)
        } else {
            // The aligned 4-byte window [at-1, at+3) lies inside the options,
            // since the option kind and length precede the value.
            let mut before = [0u8; 4];
            before.copy_from_slice(&b[at - 1..at + 3]);
            set_be16(b, at, mss);
            let mut after = [0u8; 4];
            after.copy_from_slice(&b[at - 1..at + 3]);
            checksum::update_bytes(csum, &before, &after)
        };
        self.set_checksum(new_csum);
        Ok(Some(old))
    }

    fn fill(&mut self, ph: u32) {
        self.set_checksum(0);
        let c = !checksum::fold(ph + checksum::sum(self.buffer.as_ref()));
        self.set_checksum(c);
    }

    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let len = self.buffer.as_ref().len() as u16;
        self.fill(checksum::pseudo_header_v4(src, dst, IpProtocol::TCP.0, len));
    }

    pub fn fill_checksum_v6(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        let len = self.buffer.as_ref().len() as u32;
        self.fill(checksum::pseudo_header_v6(src, dst, IpProtocol::TCP.0, len));
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> TcpPacket<&'a T> {
    /// As `payload()`, but borrowing the underlying buffer rather than the
    /// view, so the next layer's view can outlive this one.
    pub fn into_payload(self) -> &'a [u8] {
        let hl = self.header_len();
        let b: &'a [u8] = self.buffer.as_ref();
        &b[hl..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for TcpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// Iterator over TCP options as `(kind, body)`, body excluding the kind and
/// length bytes (empty for EOL and NOP). Stops after EOL. A length below 2
/// or running past the header yields `Err(Malformed)` once, then stops.
#[derive(Debug, Clone)]
pub struct TcpOptions<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> TcpOptions<'a> {
    pub fn new(options: &'a [u8]) -> Self {
        TcpOptions {
            data: options,
            pos: 0,
        }
    }
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = Result<(u8, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let (&kind, tail) = rest.split_first()?;
        match kind {
            OPT_EOL => {
                self.pos = self.data.len();
                Some(Ok((OPT_EOL, &[])))
            }
            OPT_NOP => {
                self.pos += 1;
                Some(Ok((OPT_NOP, &[])))
            }
            _ => {
                let len = tail.first().map_or(0, |&l| usize::from(l));
                match rest.get(2..len) {
                    Some(body) if len >= 2 => {
                        self.pos += len;
                        Some(Ok((kind, body)))
                    }
                    _ => {
                        self.pos = self.data.len();
                        Some(Err(Error::Malformed))
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::XorShift;
    use etherparse::{TcpHeader, TcpOptionElement};

    const S4: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 1);
    const D4: Ipv4Addr = Ipv4Addr::new(10, 2, 2, 2);

    fn s6() -> Ipv6Addr {
        "2001:db8::1".parse().unwrap()
    }
    fn d6() -> Ipv6Addr {
        "2001:db8::2".parse().unwrap()
    }

    fn syn_header() -> TcpHeader {
        let mut h = TcpHeader::new(43210, 443, 0x0102_0304, 64240);
        h.syn = true;
        h.ece = true;
        h.cwr = true;
        h.set_options(&[
            TcpOptionElement::MaximumSegmentSize(1460),
            TcpOptionElement::SelectiveAcknowledgementPermitted,
            TcpOptionElement::Timestamp(0x1111_2222, 0),
            TcpOptionElement::Noop,
            TcpOptionElement::WindowScale(7),
        ])
        .unwrap();
        h
    }

    fn segment(h: &mut TcpHeader, payload: &[u8]) -> Vec<u8> {
        h.checksum = h
            .calc_checksum_ipv4_raw(S4.octets(), D4.octets(), payload)
            .unwrap();
        let mut v = h.to_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn parse_etherparse_syn() {
        let v = segment(&mut syn_header(), b"");
        let p = TcpPacket::new_checked(&v[..]).unwrap();
        assert_eq!(p.src_port(), 43210);
        assert_eq!(p.dst_port(), 443);
        assert_eq!(p.seq_number(), 0x0102_0304);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.flags(), SYN | ECE | CWR);
        assert!(p.syn() && p.ece() && p.cwr());
        assert!(!p.ack() && !p.fin() && !p.rst() && !p.psh() && !p.urg());
        assert_eq!(p.window_len(), 64240);
        assert_eq!(p.segment_len(), 1);
        assert!(p.verify_checksum_v4(S4, D4));
        assert!(!p.verify_checksum_v4(D4, Ipv4Addr::new(10, 1, 1, 2)));
        assert_eq!(p.mss().unwrap(), Some(1460));
        let kinds: Vec<u8> = p.options_iter().map(|o| o.unwrap().0).collect();
        assert_eq!(kinds, [2, 4, 8, 1, 3]);
        let ts = p.options_iter().nth(2).unwrap().unwrap();
        assert_eq!(ts.1, &[0x11, 0x11, 0x22, 0x22, 0, 0, 0, 0]);
    }

    #[test]
    fn build_with_setters_parsed_by_etherparse() {
        let payload = b"GET / HTTP/1.1\r\n\r\n";
        let mut buf = vec![0u8; 24 + payload.len()];
        let mut p = TcpPacket::new_unchecked(&mut buf[..]);
        p.set_src_port(80);
        p.set_dst_port(50000);
        p.set_seq_number(1);
        p.set_ack_number(0xffff_fffe);
        p.set_header_len(24);
        p.set_flags(ACK | PSH | FIN | URG);
        p.set_window_len(1024);
        p.set_urgent_at(3);
        p.options_mut().copy_from_slice(&[2, 4, 0x05, 0xb4]);
        p.payload_mut().copy_from_slice(payload);
        p.fill_checksum_v4(S4, D4);
        let (h, rest) = TcpHeader::from_slice(&buf).unwrap();
        assert_eq!((h.source_port, h.destination_port), (80, 50000));
        assert_eq!(
            (h.sequence_number, h.acknowledgment_number),
            (1, 0xffff_fffe)
        );
        assert!(h.ack && h.psh && h.fin && h.urg && !h.syn && !h.rst);
        assert_eq!((h.window_size, h.urgent_pointer), (1024, 3));
        assert_eq!(rest, payload);
        assert_eq!(
            h.calc_checksum_ipv4_raw(S4.octets(), D4.octets(), rest)
                .unwrap(),
            h.checksum
        );

        let mut p = TcpPacket::new_checked(&mut buf[..]).unwrap();
        p.fill_checksum_v6(&s6(), &d6());
        assert!(p.verify_checksum_v6(&s6(), &d6()));
        assert_eq!(p.segment_len(), payload.len() + 1);
        let (h, rest) = TcpHeader::from_slice(&buf).unwrap();
        assert_eq!(
            h.calc_checksum_ipv6_raw(s6().octets(), d6().octets(), rest)
                .unwrap(),
            h.checksum
        );
    }

    #[test]
    fn set_mss_keeps_checksum_valid() {
        // Aligned: MSS first. Odd: one NOP before it.
        for prefix in [&[][..], &[1u8][..], &[1, 1, 1][..]] {
            let mut opts = prefix.to_vec();
            opts.extend_from_slice(&[2, 4, 0x23, 0x28]);
            while opts.len() % 4 != 0 {
                opts.push(1);
            }
            let mut h = TcpHeader::new(1, 2, 3, 4);
            h.syn = true;
            h.set_options_raw(&opts).unwrap();
            let mut v = segment(&mut h, b"xyz");
            let mut p = TcpPacket::new_checked(&mut v[..]).unwrap();
            assert_eq!(p.set_mss(1400).unwrap(), Some(9000));
            assert_eq!(p.mss().unwrap(), Some(1400));
            assert!(p.verify_checksum_v4(S4, D4), "prefix {prefix:?}");
            let (h, rest) = TcpHeader::from_slice(&v).unwrap();
            assert_eq!(
                h.calc_checksum_ipv4_raw(S4.octets(), D4.octets(), rest)
                    .unwrap(),
                h.checksum
            );
            assert_eq!(
                h.options_iterator().next().map(|o| o.unwrap()),
                Some(if prefix.is_empty() {
                    TcpOptionElement::MaximumSegmentSize(1400)
                } else {
                    TcpOptionElement::Noop
                })
            );
        }
        let mut v = segment(&mut TcpHeader::new(1, 2, 3, 4), b"");
        let mut p = TcpPacket::new_checked(&mut v[..]).unwrap();
        assert_eq!(p.set_mss(1400).unwrap(), None);
        assert!(p.verify_checksum_v4(S4, D4));
    }

    #[test]
    fn malformed_options() {
        let cases: [(&[u8], Error); 4] = [
            (&[2, 4, 5, 0xb4, 3, 1, 0, 0], Error::Malformed), // length 1
            (&[1, 1, 1, 8, 0, 0, 0, 0], Error::Malformed),    // runs past end
            (&[1, 1, 1, 2], Error::Malformed),                // kind without length
            (&[2, 3, 5, 0], Error::Malformed),                // MSS of wrong length
        ];
        for (opts, want) in cases {
            let mut v = vec![0u8; 20 + opts.len()];
            v[12] = ((20 + opts.len()) as u8 / 4) << 4;
            v[20..].copy_from_slice(opts);
            let p = TcpPacket::new_checked(&v[..]).unwrap();
            let last = p.options_iter().last().unwrap();
            if opts[0] == 2 && opts[1] == 3 {
                assert_eq!(p.mss(), Err(want));
            } else {
                assert_eq!(last, Err(want), "{opts:?}");
            }
            assert!(p.options_iter().count() <= opts.len());
        }
        // EOL stops the walk even if garbage follows.
        let mut v = [0u8; 24];
        v[12] = 6 << 4;
        v[20..].copy_from_slice(&[0, 2, 0, 0]);
        let p = TcpPacket::new_checked(&v[..]).unwrap();
        assert_eq!(p.options_iter().count(), 1);
        assert_eq!(p.mss(), Ok(None));
    }

    #[test]
    fn truncation_and_bad_offset() {
        let v = segment(&mut syn_header(), b"data");
        for n in 0..=v.len() {
            match TcpPacket::new_checked(&v[..n]) {
                Ok(p) => {
                    assert!(n >= 40);
                    assert_eq!(p.payload().len(), n - 40);
                    assert_eq!(p.mss(), Ok(Some(1460)));
                    let _ = p.verify_checksum_v4(S4, D4);
                }
                Err(e) => {
                    assert!(n < 40);
                    assert_eq!(e, Error::Truncated);
                }
            }
        }
        for doff in 0..5u8 {
            let mut b = v.clone();
            b[12] = doff << 4;
            assert_eq!(
                TcpPacket::new_checked(&b[..]).unwrap_err(),
                Error::Malformed
            );
        }
        let mut b = v[..44].to_vec();
        b[12] = 15 << 4;
        assert_eq!(
            TcpPacket::new_checked(&b[..]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn fuzz_never_panics() {
        let mut rng = XorShift(0xfeed_face);
        for _ in 0..20_000 {
            let n = (rng.next() % 70) as usize;
            let mut b = rng.bytes(n);
            if n > 12 {
                b[12] = (5 + (b[12] % 11)) << 4;
            }
            if let Ok(mut p) = TcpPacket::new_checked(&mut b[..]) {
                for o in p.options_iter() {
                    let _ = o;
                }
                let _ = (p.mss(), p.payload(), p.segment_len());
                let _ = p.verify_checksum_v6(&s6(), &d6());
                p.fill_checksum_v4(S4, D4);
                if let Ok(Some(_)) = p.set_mss(536) {
                    assert!(p.verify_checksum_v4(S4, D4));
                }
            }
        }
    }
}
