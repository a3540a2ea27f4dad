//! IPv4 headers (RFC 791).

use std::net::Ipv4Addr;

use super::checksum;
use super::{be16, ipv4_at, set_be16, Error, IpProtocol, Result};

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
///
/// After `new_checked` the header (options included) and `total_len` bytes
/// are inside the buffer, so `payload()` stops at `total_len` and excludes
/// any Ethernet padding that follows.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    pub const MIN_HEADER_LEN: usize = 20;

    /// No validation; getters panic if the buffer is shorter than the header
    /// or `total_len` says.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Truncated: buffer shorter than 20 bytes, than the IHL, or than
    /// `total_len`. Malformed: version not 4, IHL below 5, `total_len`
    /// shorter than the header.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < Self::MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::Malformed);
        }
        let hl = self.header_len();
        if hl < Self::MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if b.len() < hl {
            return Err(Error::Truncated);
        }
        let tl = usize::from(self.total_len());
        if tl < hl {
            return Err(Error::Malformed);
        }
        if tl > b.len() {
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

    /// Header length in 32-bit words.
    pub fn ihl(&self) -> u8 {
        self.buffer.as_ref()[0] & 0x0f
    }

    /// Header length in bytes (IHL * 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.ihl()) * 4
    }

    /// The whole second byte: DSCP in the top six bits, ECN in the low two.
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    pub fn dscp(&self) -> u8 {
        self.dscp_ecn() >> 2
    }

    pub fn ecn(&self) -> u8 {
        self.dscp_ecn() & 0x03
    }

    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }

    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), 6) & FLAG_DF != 0
    }

    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), 6) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field times 8).
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), 6) & FRAG_MASK) << 3
    }

    /// MF set or a non-zero offset: this is part of a larger datagram.
    pub fn is_fragment(&self) -> bool {
        be16(self.buffer.as_ref(), 6) & (FLAG_MF | FRAG_MASK) != 0
    }

    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[8]
    }

    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[9])
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 10)
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), 12)
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), 16)
    }

    /// The header bytes between the fixed 20 and the IHL.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[Self::MIN_HEADER_LEN..self.header_len()]
    }

    /// Whether the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(&self.buffer.as_ref()[..self.header_len()])) == 0xffff
    }

    /// Bytes from the end of the header to `total_len`.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets version 4 and the header length (bytes, multiple of 4, 20..=60).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[0] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }

    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[1] = v;
    }

    pub fn set_total_len(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), 2, v);
    }

    pub fn set_ident(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), 4, v);
    }

    fn set_flags_word(&mut self, mask: u16, v: u16) {
        let b = self.buffer.as_mut();
        let w = (be16(b, 6) & !mask) | (v & mask);
        set_be16(b, 6, w);
    }

    pub fn set_dont_frag(&mut self, on: bool) {
        self.set_flags_word(FLAG_DF, if on { FLAG_DF } else { 0 });
    }

    pub fn set_more_frags(&mut self, on: bool) {
        self.set_flags_word(FLAG_MF, if on { FLAG_MF } else { 0 });
    }

    /// Offset in bytes; the low three bits are dropped.
    pub fn set_frag_offset(&mut self, bytes: u16) {
        self.set_flags_word(FRAG_MASK, bytes >> 3);
    }

    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[8] = v;
    }

    pub fn set_protocol(&mut self, v: IpProtocol) {
        self.buffer.as_mut()[9] = v.0;
    }

    pub fn set_checksum(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), 10, v);
    }

    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[12..16].copy_from_slice(&a.octets());
    }

    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[16..20].copy_from_slice(&a.octets());
    }

    /// Recomputes the header checksum over `header_len()` bytes.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::checksum(&self.buffer.as_ref()[..hl]);
        self.set_checksum(c);
    }

    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[Self::MIN_HEADER_LEN..hl]
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (self.header_len(), usize::from(self.total_len()));
        &mut self.buffer.as_mut()[hl..tl]
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv4Packet<&'a T> {
    /// As `payload()`, but borrowing the underlying buffer rather than the
    /// view, so the next layer's view can outlive this one.
    pub fn into_payload(self) -> &'a [u8] {
        let (hl, tl) = (self.header_len(), usize::from(self.total_len()));
        let b: &'a [u8] = self.buffer.as_ref();
        &b[hl..tl]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Ipv4Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// An IPv4 header in high-level form. Options, DSCP/ECN, the ident and
/// fragmentation (other than DF) are not represented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: IpProtocol,
    pub payload_len: usize,
    pub ttl: u8,
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Validates lengths only: the checksum is not verified (call
    /// `verify_checksum` unless the NIC already did).
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) -> Result<Ipv4Repr> {
        p.check_len()?;
        Ok(Ipv4Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: usize::from(p.total_len()) - p.header_len(),
            ttl: p.ttl(),
            dont_frag: p.dont_frag(),
        })
    }

    pub const fn header_len(&self) -> usize {
        20
    }

    pub const fn buffer_len(&self) -> usize {
        20 + self.payload_len
    }

    /// Writes a 20-byte header (ident 0, TOS 0) with a valid checksum. The
    /// buffer must hold at least the header; `payload_len` must be at most
    /// 65515; larger values saturate the length field.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Ipv4Packet<T>) {
        p.set_version_and_header_len(20);
        p.set_dscp_ecn(0);
        p.set_total_len(u16::try_from(self.payload_len.saturating_add(20)).unwrap_or(u16::MAX));
        p.set_ident(0);
        p.set_flags_word(0xffff, if self.dont_frag { FLAG_DF } else { 0 });
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        p.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{IpFragOffset, IpNumber, Ipv4Dscp, Ipv4Ecn, Ipv4Header};

    fn ep_header() -> Ipv4Header {
        let mut h = Ipv4Header::new(6, 63, IpNumber::UDP, [10, 0, 0, 1], [192, 0, 2, 7]).unwrap();
        h.dscp = Ipv4Dscp::try_new(46).unwrap();
        h.ecn = Ipv4Ecn::ONE;
        h.identification = 0xbeef;
        h.dont_fragment = false;
        h.more_fragments = true;
        h.fragment_offset = IpFragOffset::try_new(185).unwrap();
        h.options = [1u8, 1, 1, 0, 0x94, 0x04, 0, 0][..].try_into().unwrap();
        h.set_payload_len(6).unwrap();
        h.header_checksum = h.calc_header_checksum();
        h
    }

    fn sample() -> Vec<u8> {
        let h = ep_header();
        let mut v = Vec::new();
        h.write(&mut v).unwrap();
        v.extend_from_slice(b"abcdef");
        // Ethernet minimum-frame padding that must not show up in payload().
        v.extend_from_slice(&[0u8; 10]);
        v
    }

    #[test]
    fn parse_etherparse_header() {
        let v = sample();
        let h = ep_header();
        let p = Ipv4Packet::new_checked(&v[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.ihl(), 7);
        assert_eq!(p.header_len(), 28);
        assert_eq!(p.dscp(), 46);
        assert_eq!(p.ecn(), 1);
        assert_eq!(p.total_len(), 34);
        assert_eq!(p.ident(), 0xbeef);
        assert!(!p.dont_frag());
        assert!(p.more_frags());
        assert_eq!(p.frag_offset(), 185 * 8);
        assert!(p.is_fragment());
        assert_eq!(p.ttl(), 63);
        assert_eq!(p.protocol(), IpProtocol::UDP);
        assert_eq!(p.checksum(), h.header_checksum);
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(192, 0, 2, 7));
        assert_eq!(p.options(), &[1, 1, 1, 0, 0x94, 0x04, 0, 0]);
        assert_eq!(p.payload(), b"abcdef");
        assert!(p.verify_checksum());

        let r = Ipv4Repr::parse(&p).unwrap();
        assert_eq!(r.payload_len, 6);
        assert_eq!(r.protocol, IpProtocol::UDP);
    }

    #[test]
    fn fill_checksum_matches_etherparse() {
        let mut v = sample();
        v[10] = 0x12;
        v[11] = 0x34;
        let mut p = Ipv4Packet::new_checked(&mut v[..]).unwrap();
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.checksum(), ep_header().header_checksum);
    }

    #[test]
    fn setters_roundtrip_through_etherparse() {
        let mut v = sample();
        let mut p = Ipv4Packet::new_checked(&mut v[..]).unwrap();
        p.set_dont_frag(true);
        p.set_more_frags(false);
        p.set_frag_offset(0);
        p.set_ident(7);
        p.set_ttl(1);
        p.set_src_addr(Ipv4Addr::new(1, 2, 3, 4));
        p.fill_checksum();
        assert!(!p.is_fragment());
        let (h, _) = Ipv4Header::from_slice(&v).unwrap();
        assert!(h.dont_fragment);
        assert!(!h.more_fragments);
        assert_eq!(h.fragment_offset.value(), 0);
        assert_eq!(h.identification, 7);
        assert_eq!(h.time_to_live, 1);
        assert_eq!(h.source, [1, 2, 3, 4]);
        assert_eq!(h.header_checksum, h.calc_header_checksum());
    }

    #[test]
    fn emit_parsed_by_etherparse() {
        let r = Ipv4Repr {
            src: Ipv4Addr::new(198, 51, 100, 1),
            dst: Ipv4Addr::new(203, 0, 113, 9),
            protocol: IpProtocol::TCP,
            payload_len: 4,
            ttl: 64,
            dont_frag: true,
        };
        let mut buf = vec![0xffu8; r.buffer_len()];
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        r.emit(&mut p);
        p.payload_mut().copy_from_slice(b"wxyz");
        let (h, rest) = Ipv4Header::from_slice(&buf).unwrap();
        assert_eq!(h.source, [198, 51, 100, 1]);
        assert_eq!(h.destination, [203, 0, 113, 9]);
        assert_eq!(h.protocol, IpNumber::TCP);
        assert_eq!(h.total_len, 24);
        assert_eq!(h.time_to_live, 64);
        assert!(h.dont_fragment);
        assert!(!h.more_fragments);
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        assert_eq!(rest, b"wxyz");
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&p).unwrap(), r);
    }

    #[test]
    fn truncation_never_panics() {
        let v = sample();
        for n in 0..=v.len() {
            match Ipv4Packet::new_checked(&v[..n]) {
                Ok(p) => {
                    assert!(n >= 34);
                    assert_eq!(p.payload(), b"abcdef");
                    assert_eq!(p.options().len(), 8);
                    assert!(p.verify_checksum());
                }
                Err(e) => {
                    assert!(n < 34);
                    assert_eq!(e, Error::Truncated);
                }
            }
        }
    }

    #[test]
    fn bad_fields() {
        let v = sample();
        let with = |at: usize, val: u8| {
            let mut b = v.clone();
            b[at] = val;
            Ipv4Packet::new_checked(b).map(|_| ()).unwrap_err()
        };
        assert_eq!(with(0, 0x67), Error::Malformed); // version 6
        assert_eq!(with(0, 0x44), Error::Malformed); // ihl 4
        assert_eq!(with(0, 0x40), Error::Malformed); // ihl 0
        assert_eq!(with(0, 0x4f), Error::Truncated); // ihl 15 = 60 > total_len and buffer
        assert_eq!(with(3, 27), Error::Malformed); // total_len below header
        assert_eq!(with(3, 200), Error::Truncated); // total_len past buffer
        let mut b = v.clone();
        b[2] = 0xff;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn fuzz_never_panics() {
        let mut rng = crate::wire::testutil::XorShift(99);
        for _ in 0..20_000 {
            let n = (rng.next() % 80) as usize;
            let mut b = rng.bytes(n);
            if n > 0 {
                b[0] = 0x40 | (b[0] & 0x0f);
            }
            if let Ok(p) = Ipv4Packet::new_checked(&b[..]) {
                let _ = (
                    p.options(),
                    p.payload(),
                    p.verify_checksum(),
                    p.is_fragment(),
                );
                let _ = Ipv4Repr::parse(&p).unwrap();
            }
        }
    }
}
