//! The fixed IPv6 header (RFC 8200). Extension headers are not walked:
//! `next_header()` is whatever follows the fixed header.

use std::net::Ipv6Addr;

use super::{be16, be32, ipv6_at, set_be16, set_be32, Error, IpProtocol, Result};

/// The solicited-node multicast address of `addr` (RFC 4291 section 2.7.1):
/// ff02::1:ff00:0/104 with the low 24 bits of `addr`.
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// A view of an IPv6 packet.
///
/// After `new_checked`, `payload()` is exactly `payload_len` bytes, so
/// Ethernet padding is excluded. A jumbogram (payload length 0 with a
/// hop-by-hop jumbo option) shows an empty payload.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    pub const HEADER_LEN: usize = 40;

    /// No validation; getters panic if the buffer is shorter than 40 bytes
    /// plus `payload_len`.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Truncated: shorter than 40 bytes or than 40 + `payload_len`.
    /// Malformed: version not 6.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < Self::HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 6 {
            return Err(Error::Malformed);
        }
        if b.len() < Self::HEADER_LEN + usize::from(self.payload_len()) {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    pub fn traffic_class(&self) -> u8 {
        (be16(self.buffer.as_ref(), 0) >> 4) as u8
    }

    pub fn flow_label(&self) -> u32 {
        be32(self.buffer.as_ref(), 0) & 0x000f_ffff
    }

    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }

    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[6])
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[7]
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        ipv6_at(self.buffer.as_ref(), 8)
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        ipv6_at(self.buffer.as_ref(), 24)
    }

    pub fn payload(&self) -> &[u8] {
        let end = Self::HEADER_LEN + usize::from(self.payload_len());
        &self.buffer.as_ref()[Self::HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets version 6 and clears traffic class and flow label.
    pub fn set_version(&mut self) {
        set_be32(self.buffer.as_mut(), 0, 0x6000_0000);
    }

    pub fn set_traffic_class(&mut self, tc: u8) {
        let b = self.buffer.as_mut();
        let w = (be32(b, 0) & 0xf00f_ffff) | (u32::from(tc) << 20);
        set_be32(b, 0, w);
    }

    /// Only the low 20 bits are used.
    pub fn set_flow_label(&mut self, fl: u32) {
        let b = self.buffer.as_mut();
        let w = (be32(b, 0) & 0xfff0_0000) | (fl & 0x000f_ffff);
        set_be32(b, 0, w);
    }

    pub fn set_payload_len(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), 4, v);
    }

    pub fn set_next_header(&mut self, v: IpProtocol) {
        self.buffer.as_mut()[6] = v.0;
    }

    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[7] = v;
    }

    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[8..24].copy_from_slice(&a.octets());
    }

    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[24..40].copy_from_slice(&a.octets());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = Self::HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[Self::HEADER_LEN..end]
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv6Packet<&'a T> {
    /// As `payload()`, but borrowing the underlying buffer rather than the
    /// view, so the next layer's view can outlive this one.
    pub fn into_payload(self) -> &'a [u8] {
        let end = Self::HEADER_LEN + usize::from(self.payload_len());
        let b: &'a [u8] = self.buffer.as_ref();
        &b[Self::HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Ipv6Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The fixed IPv6 header in high-level form (traffic class and flow label
/// are emitted as zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub next_header: IpProtocol,
    pub payload_len: usize,
    pub hop_limit: u8,
}

impl Ipv6Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) -> Result<Ipv6Repr> {
        p.check_len()?;
        Ok(Ipv6Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: usize::from(p.payload_len()),
            hop_limit: p.hop_limit(),
        })
    }

    pub const fn header_len(&self) -> usize {
        40
    }

    pub const fn buffer_len(&self) -> usize {
        40 + self.payload_len
    }

    /// The buffer must hold at least the 40-byte header; `payload_len` must
    /// fit in 16 bits; larger values saturate the field.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Ipv6Packet<T>) {
        p.set_version();
        p.set_payload_len(u16::try_from(self.payload_len).unwrap_or(u16::MAX));
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{IpNumber, Ipv6FlowLabel, Ipv6Header};

    fn src() -> Ipv6Addr {
        "2001:db8::1".parse().unwrap()
    }
    fn dst() -> Ipv6Addr {
        "2001:db8:ffff::abcd:1234".parse().unwrap()
    }

    fn sample() -> Vec<u8> {
        let h = Ipv6Header {
            traffic_class: 0xb8,
            flow_label: Ipv6FlowLabel::try_new(0xabcde).unwrap(),
            payload_length: 5,
            next_header: IpNumber::TCP,
            hop_limit: 17,
            source: src().octets(),
            destination: dst().octets(),
        };
        let mut v = Vec::new();
        h.write(&mut v).unwrap();
        v.extend_from_slice(b"12345");
        v.extend_from_slice(&[0u8; 9]);
        v
    }

    #[test]
    fn parse_etherparse_header() {
        let v = sample();
        let p = Ipv6Packet::new_checked(&v[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0xabcde);
        assert_eq!(p.payload_len(), 5);
        assert_eq!(p.next_header(), IpProtocol::TCP);
        assert_eq!(p.hop_limit(), 17);
        assert_eq!(p.src_addr(), src());
        assert_eq!(p.dst_addr(), dst());
        assert_eq!(p.payload(), b"12345");
        let r = Ipv6Repr::parse(&p).unwrap();
        assert_eq!(r.payload_len, 5);
    }

    #[test]
    fn emit_parsed_by_etherparse() {
        let r = Ipv6Repr {
            src: src(),
            dst: dst(),
            next_header: IpProtocol::ICMPV6,
            payload_len: 3,
            hop_limit: 255,
        };
        let mut buf = vec![0xffu8; r.buffer_len()];
        let mut p = Ipv6Packet::new_unchecked(&mut buf[..]);
        r.emit(&mut p);
        p.set_traffic_class(0x12);
        p.set_flow_label(0x54321);
        p.payload_mut().copy_from_slice(b"xyz");
        let (h, rest) = Ipv6Header::from_slice(&buf).unwrap();
        assert_eq!(h.traffic_class, 0x12);
        assert_eq!(h.flow_label.value(), 0x54321);
        assert_eq!(h.payload_length, 3);
        assert_eq!(h.next_header, IpNumber::IPV6_ICMP);
        assert_eq!(h.hop_limit, 255);
        assert_eq!(h.source_addr(), src());
        assert_eq!(h.destination_addr(), dst());
        assert_eq!(rest, b"xyz");
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.traffic_class(), 0x12);
        assert_eq!(Ipv6Repr::parse(&p).unwrap(), r);
    }

    #[test]
    fn truncation_and_bad_version() {
        let v = sample();
        for n in 0..=v.len() {
            match Ipv6Packet::new_checked(&v[..n]) {
                Ok(p) => {
                    assert!(n >= 45);
                    assert_eq!(p.payload(), b"12345");
                }
                Err(e) => {
                    assert!(n < 45);
                    assert_eq!(e, Error::Truncated);
                }
            }
        }
        let mut b = v.clone();
        b[0] = 0x45;
        assert_eq!(
            Ipv6Packet::new_checked(&b[..]).unwrap_err(),
            Error::Malformed
        );
        let mut b = v.clone();
        b[4] = 1;
        assert_eq!(
            Ipv6Packet::new_checked(&b[..]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn solicited_node_address() {
        let a: Ipv6Addr = "2001:db8::2aa:ff:fe28:9c5a".parse().unwrap();
        let want: Ipv6Addr = "ff02::1:ff28:9c5a".parse().unwrap();
        assert_eq!(solicited_node(a), want);
    }
}
