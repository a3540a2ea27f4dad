//! ICMP for IPv4 (RFC 792, RFC 1191 for the next-hop MTU).

use std::net::Ipv4Addr;

use super::checksum;
use super::{be16, be32, ipv4_at, set_be16, set_be32, Error, IpProtocol, Result};

pub const ECHO_REPLY: u8 = 0;
pub const DEST_UNREACH: u8 = 3;
pub const REDIRECT: u8 = 5;
pub const ECHO_REQUEST: u8 = 8;
pub const TIME_EXCEEDED: u8 = 11;
pub const PARAM_PROBLEM: u8 = 12;

/// Destination-unreachable codes.
pub const CODE_NET_UNREACH: u8 = 0;
pub const CODE_HOST_UNREACH: u8 = 1;
pub const CODE_PROTO_UNREACH: u8 = 2;
pub const CODE_PORT_UNREACH: u8 = 3;
pub const CODE_FRAG_NEEDED: u8 = 4;
/// Time-exceeded code: TTL reached zero in transit.
pub const CODE_TTL_EXCEEDED: u8 = 0;

/// A view of an ICMPv4 message. The buffer must be exactly the message
/// (as `Ipv4Packet::payload` gives), since the checksum covers all of it.
#[derive(Debug, Clone, Copy)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    pub const HEADER_LEN: usize = 8;

    /// No validation; getters panic if the buffer is shorter than 8 bytes.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < Self::HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    /// Bytes 4..8, whose meaning depends on the type.
    pub fn rest_of_header(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }

    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }

    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }

    /// Next-hop MTU of a fragmentation-needed message (0 from pre-RFC 1191
    /// routers).
    pub fn next_hop_mtu(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }

    /// Destination unreachable, redirect, time exceeded, parameter problem.
    pub fn is_error(&self) -> bool {
        matches!(
            self.msg_type(),
            DEST_UNREACH | REDIRECT | TIME_EXCEEDED | PARAM_PROBLEM
        )
    }

    /// Bytes after the 8-byte header: echo data, or for error messages the
    /// (usually truncated) original datagram.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[Self::HEADER_LEN..]
    }

    /// The original datagram quoted by an error message. Malformed if it
    /// does not start with a complete IPv4 header.
    pub fn embedded(&self) -> Result<EmbeddedIpv4<'_>> {
        EmbeddedIpv4::parse(self.payload())
    }

    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.buffer.as_ref())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[0] = v;
    }

    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[1] = v;
    }

    pub fn set_checksum(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), 2, v);
    }

    pub fn set_rest_of_header(&mut self, v: u32) {
        set_be32(self.buffer.as_mut(), 4, v);
    }

    pub fn set_echo_ident(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), 4, v);
    }

    pub fn set_echo_seq_no(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), 6, v);
    }

    /// Also clears the unused bytes 4..6.
    pub fn set_next_hop_mtu(&mut self, mtu: u16) {
        set_be32(self.buffer.as_mut(), 4, u32::from(mtu));
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[Self::HEADER_LEN..]
    }

    /// Checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Icmpv4Packet<&'a T> {
    /// As `payload()`, but borrowing the underlying buffer rather than the
    /// view, so the next layer's view can outlive this one.
    pub fn into_payload(self) -> &'a [u8] {
        let b: &'a [u8] = self.buffer.as_ref();
        &b[Self::HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Icmpv4Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The IPv4 header quoted inside an ICMPv4 error, plus whatever of its
/// payload was quoted (at least 8 bytes per RFC 792, often more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedIpv4<'a> {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: IpProtocol,
    /// The quoted IPv4 header, options included.
    pub header: &'a [u8],
    /// Quoted bytes after the header, cut at the original `total_len` when
    /// the quote is longer than the datagram.
    pub transport: &'a [u8],
}

impl<'a> EmbeddedIpv4<'a> {
    fn parse(b: &'a [u8]) -> Result<Self> {
        let first = *b.first().ok_or(Error::Truncated)?;
        if first >> 4 != 4 {
            return Err(Error::Malformed);
        }
        let hl = usize::from(first & 0x0f) * 4;
        if hl < 20 {
            return Err(Error::Malformed);
        }
        let header = b.get(..hl).ok_or(Error::Truncated)?;
        let rest = b.get(hl..).unwrap_or_default();
        let tl = usize::from(be16(header, 2));
        let transport = rest.get(..tl.saturating_sub(hl)).unwrap_or(rest);
        Ok(EmbeddedIpv4 {
            src: ipv4_at(header, 12),
            dst: ipv4_at(header, 16),
            protocol: IpProtocol(header[9]),
            header,
            transport,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::icmpv4::DestUnreachableHeader;
    use etherparse::{IcmpEchoHeader, Icmpv4Header, Icmpv4Slice, Icmpv4Type, PacketBuilder};

    fn echo() -> Vec<u8> {
        let h = Icmpv4Header::with_checksum(
            Icmpv4Type::EchoRequest(IcmpEchoHeader { id: 0x1234, seq: 7 }),
            b"ping data!",
        );
        let mut v = Vec::new();
        h.write(&mut v).unwrap();
        v.extend_from_slice(b"ping data!");
        v
    }

    #[test]
    fn parse_echo_from_etherparse() {
        let v = echo();
        let p = Icmpv4Packet::new_checked(&v[..]).unwrap();
        assert_eq!(p.msg_type(), ECHO_REQUEST);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 7);
        assert_eq!(p.payload(), b"ping data!");
        assert!(p.verify_checksum());
        assert!(!p.is_error());
    }

    #[test]
    fn build_reply_checked_by_etherparse() {
        let mut v = echo();
        let mut p = Icmpv4Packet::new_checked(&mut v[..]).unwrap();
        p.set_msg_type(ECHO_REPLY);
        p.fill_checksum();
        let s = Icmpv4Slice::from_slice(&v).unwrap();
        assert_eq!(
            s.icmp_type(),
            Icmpv4Type::EchoReply(IcmpEchoHeader { id: 0x1234, seq: 7 })
        );
        let want = Icmpv4Header::with_checksum(s.icmp_type(), s.payload());
        assert_eq!(s.checksum(), want.checksum);
    }

    // A frag-needed error quoting the first bytes of a TCP segment.
    fn frag_needed() -> Vec<u8> {
        let mut orig = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 80, 1, 1000)
            .write(&mut orig, &[0u8; 1400])
            .unwrap();
        let quoted = &orig[..28];
        let t = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
            next_hop_mtu: 1280,
        });
        let h = Icmpv4Header::with_checksum(t, quoted);
        let mut v = Vec::new();
        h.write(&mut v).unwrap();
        v.extend_from_slice(quoted);
        v
    }

    #[test]
    fn frag_needed_and_embedded() {
        let v = frag_needed();
        let p = Icmpv4Packet::new_checked(&v[..]).unwrap();
        assert_eq!(p.msg_type(), DEST_UNREACH);
        assert_eq!(p.msg_code(), CODE_FRAG_NEEDED);
        assert_eq!(p.next_hop_mtu(), 1280);
        assert!(p.verify_checksum());
        assert!(p.is_error());
        let e = p.embedded().unwrap();
        assert_eq!(e.src, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(e.dst, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(e.protocol, IpProtocol::TCP);
        assert_eq!(e.header.len(), 20);
        assert_eq!(e.transport.len(), 8);
        assert_eq!(&e.transport[..4], &[0x9c, 0x40, 0x00, 0x50]);

        let mut b = vec![0u8; 8 + 28];
        let mut q = Icmpv4Packet::new_unchecked(&mut b[..]);
        q.set_msg_type(DEST_UNREACH);
        q.set_msg_code(CODE_FRAG_NEEDED);
        q.set_next_hop_mtu(1280);
        q.payload_mut().copy_from_slice(&v[8..]);
        q.fill_checksum();
        assert_eq!(b, v);
    }

    #[test]
    fn truncation_never_panics() {
        for v in [echo(), frag_needed()] {
            for n in 0..=v.len() {
                match Icmpv4Packet::new_checked(&v[..n]) {
                    Ok(p) => {
                        assert!(n >= 8);
                        let _ = (p.echo_ident(), p.next_hop_mtu(), p.payload());
                        let _ = p.verify_checksum();
                        if let Ok(e) = p.embedded() {
                            assert!(e.header.len() >= 20);
                        }
                    }
                    Err(e) => {
                        assert!(n < 8);
                        assert_eq!(e, Error::Truncated);
                    }
                }
            }
        }
    }

    #[test]
    fn embedded_rejects_garbage() {
        let mut rng = crate::wire::testutil::XorShift(7);
        for _ in 0..5000 {
            let n = (rng.next() % 40) as usize;
            let b = rng.bytes(n);
            if let Ok(e) = EmbeddedIpv4::parse(&b) {
                assert!(e.header.len() >= 20 && e.header.len() <= n);
            }
        }
        assert_eq!(EmbeddedIpv4::parse(&[]).unwrap_err(), Error::Truncated);
        assert_eq!(EmbeddedIpv4::parse(&[0x60]).unwrap_err(), Error::Malformed);
        assert_eq!(EmbeddedIpv4::parse(&[0x43]).unwrap_err(), Error::Malformed);
        assert_eq!(EmbeddedIpv4::parse(&[0x45]).unwrap_err(), Error::Truncated);
    }
}
