//! UDP (RFC 768; IPv6 checksum rules from RFC 8200 section 8.1).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::checksum;
use super::{be16, set_be16, Error, IpProtocol, Result};

/// A view of a UDP datagram. After `new_checked`, the length field lies
/// within the buffer and `payload()` ends where it says.
#[derive(Debug, Clone, Copy)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    pub const HEADER_LEN: usize = 8;

    /// No validation; getters panic if the buffer is shorter than 8 bytes or
    /// than the length field.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Truncated: buffer below 8 bytes or below the length field.
    /// Malformed: length field below 8.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < Self::HEADER_LEN {
            return Err(Error::Truncated);
        }
        let l = usize::from(self.len());
        if l < Self::HEADER_LEN {
            return Err(Error::Malformed);
        }
        if l > b.len() {
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

    /// The length field: header plus payload.
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }

    /// True when the length field says there is no payload.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= Self::HEADER_LEN
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[Self::HEADER_LEN..usize::from(self.len())]
    }

    fn datagram(&self) -> &[u8] {
        &self.buffer.as_ref()[..usize::from(self.len())]
    }

    /// A zero checksum means the sender did not compute one and is accepted.
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let ph = checksum::pseudo_header_v4(src, dst, IpProtocol::UDP.0, self.len());
        checksum::fold(ph + checksum::sum(self.datagram())) == 0xffff
    }

    /// A zero checksum is invalid over IPv6.
    pub fn verify_checksum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        if self.checksum() == 0 {
            return false;
        }
        let ph = checksum::pseudo_header_v6(src, dst, IpProtocol::UDP.0, u32::from(self.len()));
        checksum::fold(ph + checksum::sum(self.datagram())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    pub fn set_src_port(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), 0, v);
    }

    pub fn set_dst_port(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), 2, v);
    }

    pub fn set_len(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), 4, v);
    }

    pub fn set_checksum(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), 6, v);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let l = usize::from(self.len());
        &mut self.buffer.as_mut()[Self::HEADER_LEN..l]
    }

    fn finish(&mut self, ph: u32) {
        self.set_checksum(0);
        let c = !checksum::fold(ph + checksum::sum(self.datagram()));
        // A computed zero is sent as all ones: zero on the wire means "none".
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    /// Checksum over the pseudo header and the first `len()` bytes.
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let ph = checksum::pseudo_header_v4(src, dst, IpProtocol::UDP.0, self.len());
        self.finish(ph);
    }

    pub fn fill_checksum_v6(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        let ph = checksum::pseudo_header_v6(src, dst, IpProtocol::UDP.0, u32::from(self.len()));
        self.finish(ph);
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> UdpPacket<&'a T> {
    /// As `payload()`, but borrowing the underlying buffer rather than the
    /// view, so the next layer's view can outlive this one.
    pub fn into_payload(self) -> &'a [u8] {
        let l = usize::from(self.len());
        let b: &'a [u8] = self.buffer.as_ref();
        &b[Self::HEADER_LEN..l]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for UdpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A UDP header in high-level form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload_len: usize,
}

impl UdpRepr {
    /// Lengths only; checksums need the IP addresses.
    pub fn parse<T: AsRef<[u8]>>(p: &UdpPacket<T>) -> Result<UdpRepr> {
        p.check_len()?;
        Ok(UdpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            payload_len: usize::from(p.len()) - UdpPacket::<T>::HEADER_LEN,
        })
    }

    pub const fn header_len(&self) -> usize {
        8
    }

    pub const fn buffer_len(&self) -> usize {
        8 + self.payload_len
    }

    /// Writes the header with a zero checksum; copy the payload in, then
    /// call `fill_checksum_v4/v6`. `payload_len` must be at most 65527
    /// (larger values saturate the length field).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut UdpPacket<T>) {
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len(u16::try_from(self.payload_len.saturating_add(8)).unwrap_or(u16::MAX));
        p.set_checksum(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::UdpHeader;

    const S4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const D4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

    fn s6() -> Ipv6Addr {
        "2001:db8::1".parse().unwrap()
    }
    fn d6() -> Ipv6Addr {
        "2001:db8::99".parse().unwrap()
    }

    fn sample_v4() -> Vec<u8> {
        let payload = b"the quick brown fox";
        let h = UdpHeader::with_ipv4_checksum(5000, 53, &etherparse_ipv4(), payload).unwrap();
        let mut v = h.to_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    fn etherparse_ipv4() -> etherparse::Ipv4Header {
        etherparse::Ipv4Header::new(0, 64, etherparse::IpNumber::UDP, S4.octets(), D4.octets())
            .unwrap()
    }

    #[test]
    fn parse_v4_from_etherparse() {
        let mut v = sample_v4();
        v.extend_from_slice(&[0u8; 5]);
        let p = UdpPacket::new_checked(&v[..]).unwrap();
        assert_eq!(p.src_port(), 5000);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 27);
        assert_eq!(p.payload(), b"the quick brown fox");
        assert!(p.verify_checksum_v4(S4, D4));
        assert!(!p.verify_checksum_v4(D4, Ipv4Addr::new(1, 1, 1, 1)));
        assert_eq!(
            UdpRepr::parse(&p).unwrap(),
            UdpRepr {
                src_port: 5000,
                dst_port: 53,
                payload_len: 19
            }
        );
    }

    #[test]
    fn emit_v4_and_v6_checked_by_etherparse() {
        let r = UdpRepr {
            src_port: 1234,
            dst_port: 4321,
            payload_len: 11,
        };
        let mut buf = vec![0xaau8; r.buffer_len()];
        let mut p = UdpPacket::new_unchecked(&mut buf[..]);
        r.emit(&mut p);
        p.payload_mut().copy_from_slice(b"hello world");
        p.fill_checksum_v4(S4, D4);
        let (h, rest) = UdpHeader::from_slice(&buf).unwrap();
        assert_eq!(
            (h.source_port, h.destination_port, h.length),
            (1234, 4321, 19)
        );
        assert_eq!(
            h.calc_checksum_ipv4_raw(S4.octets(), D4.octets(), rest)
                .unwrap(),
            h.checksum
        );

        let mut p = UdpPacket::new_checked(&mut buf[..]).unwrap();
        p.fill_checksum_v6(&s6(), &d6());
        assert!(p.verify_checksum_v6(&s6(), &d6()));
        let (h, rest) = UdpHeader::from_slice(&buf).unwrap();
        assert_eq!(
            h.calc_checksum_ipv6_raw(s6().octets(), d6().octets(), rest)
                .unwrap(),
            h.checksum
        );
    }

    #[test]
    fn zero_checksum_rules() {
        let mut v = sample_v4();
        v[6] = 0;
        v[7] = 0;
        let p = UdpPacket::new_checked(&v[..]).unwrap();
        assert!(p.verify_checksum_v4(S4, D4));
        assert!(!p.verify_checksum_v6(&s6(), &d6()));

        // Pick a payload whose checksum computes to zero: choose its last word
        // so the ones-complement sum is 0xffff.
        let mut v = vec![0u8; 10];
        let mut p = UdpPacket::new_unchecked(&mut v[..]);
        UdpRepr {
            src_port: 1,
            dst_port: 2,
            payload_len: 2,
        }
        .emit(&mut p);
        let partial = checksum::fold(
            checksum::pseudo_header_v4(S4, D4, 17, 10) + checksum::sum(&p.as_ref()[..8]),
        );
        p.payload_mut().copy_from_slice(&(!partial).to_be_bytes());
        p.fill_checksum_v4(S4, D4);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum_v4(S4, D4));
        let (h, rest) = UdpHeader::from_slice(&v).unwrap();
        assert_eq!(
            h.calc_checksum_ipv4_raw(S4.octets(), D4.octets(), rest)
                .unwrap(),
            0xffff
        );
    }

    #[test]
    fn truncation_and_bad_length() {
        let v = sample_v4();
        for n in 0..=v.len() {
            match UdpPacket::new_checked(&v[..n]) {
                Ok(p) => {
                    assert_eq!(n, v.len());
                    assert!(p.verify_checksum_v4(S4, D4));
                }
                Err(e) => assert_eq!(e, Error::Truncated),
            }
        }
        let mut b = v.clone();
        b[5] = 7;
        assert_eq!(
            UdpPacket::new_checked(&b[..]).unwrap_err(),
            Error::Malformed
        );
        b[4] = 1;
        assert_eq!(
            UdpPacket::new_checked(&b[..]).unwrap_err(),
            Error::Truncated
        );
        let mut b = v.clone();
        b[5] = 8;
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert!(p.is_empty());
        assert_eq!(p.payload(), b"");
    }
}
