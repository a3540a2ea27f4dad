//! ICMPv6 (RFC 4443) and the Neighbour Discovery messages of RFC 4861.

use std::net::Ipv6Addr;

use super::checksum;
use super::ethernet::MacAddr;
use super::{be16, be32, ipv6_at, set_be16, set_be32, Error, IpProtocol, Result};

pub const DST_UNREACH: u8 = 1;
pub const PACKET_TOO_BIG: u8 = 2;
pub const TIME_EXCEEDED: u8 = 3;
pub const PARAM_PROBLEM: u8 = 4;
pub const ECHO_REQUEST: u8 = 128;
pub const ECHO_REPLY: u8 = 129;
pub const ROUTER_SOLICIT: u8 = 133;
pub const ROUTER_ADVERT: u8 = 134;
pub const NEIGHBOR_SOLICIT: u8 = 135;
pub const NEIGHBOR_ADVERT: u8 = 136;
pub const REDIRECT: u8 = 137;

/// Destination-unreachable codes.
pub const CODE_NO_ROUTE: u8 = 0;
pub const CODE_ADMIN_PROHIBITED: u8 = 1;
pub const CODE_ADDR_UNREACH: u8 = 3;
pub const CODE_PORT_UNREACH: u8 = 4;

/// Neighbor Advertisement flags, in byte 4.
pub const NA_ROUTER: u8 = 0x80;
pub const NA_SOLICITED: u8 = 0x40;
pub const NA_OVERRIDE: u8 = 0x20;

/// NDP option types.
pub const OPT_SOURCE_LLA: u8 = 1;
pub const OPT_TARGET_LLA: u8 = 2;

/// Where NDP options start for each ND message type (RFC 4861 section 4).
fn nd_options_offset(msg_type: u8) -> Option<usize> {
    match msg_type {
        ROUTER_SOLICIT => Some(8),
        ROUTER_ADVERT => Some(16),
        NEIGHBOR_SOLICIT | NEIGHBOR_ADVERT => Some(24),
        REDIRECT => Some(40),
        _ => None,
    }
}

/// A view of an ICMPv6 message. The buffer must be exactly the message (as
/// `Ipv6Packet::payload` gives when no extension headers precede it), since
/// the checksum covers all of it.
///
/// `new_checked` also requires the fixed part of ND messages, so the
/// options of RS/RA/NS/NA/redirect can always be iterated.
#[derive(Debug, Clone, Copy)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    pub const HEADER_LEN: usize = 8;

    /// No validation; getters panic if the buffer is shorter than 8 bytes.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < Self::HEADER_LEN {
            return Err(Error::Truncated);
        }
        match nd_options_offset(self.msg_type()) {
            Some(min) if len < min => Err(Error::Truncated),
            _ => Ok(()),
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

    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }

    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }

    /// MTU of a Packet Too Big message (bytes 4..8).
    pub fn mtu(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }

    /// Destination unreachable, packet too big, time exceeded, parameter
    /// problem (types below 128).
    pub fn is_error(&self) -> bool {
        self.msg_type() < 128
    }

    /// Bytes after the 8-byte header: echo data, or for error messages the
    /// (truncated) original packet.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[Self::HEADER_LEN..]
    }

    /// The original packet quoted by an error message. Malformed if it does
    /// not start with a version-6 header; Truncated if shorter than 40 bytes.
    pub fn embedded(&self) -> Result<EmbeddedIpv6<'_>> {
        EmbeddedIpv6::parse(self.payload())
    }

    /// The NS/NA target address (bytes 8..24); Truncated if the message is
    /// shorter than 24 bytes.
    pub fn target_addr(&self) -> Result<Ipv6Addr> {
        let b = self.buffer.as_ref().get(8..24).ok_or(Error::Truncated)?;
        Ok(ipv6_at(b, 0))
    }

    pub fn na_flags(&self) -> u8 {
        self.buffer.as_ref()[4] & (NA_ROUTER | NA_SOLICITED | NA_OVERRIDE)
    }

    pub fn na_router(&self) -> bool {
        self.na_flags() & NA_ROUTER != 0
    }

    pub fn na_solicited(&self) -> bool {
        self.na_flags() & NA_SOLICITED != 0
    }

    pub fn na_override(&self) -> bool {
        self.na_flags() & NA_OVERRIDE != 0
    }

    /// The NDP options of an ND message; empty for other types. Each item is
    /// `(type, body)` where body excludes the type and length bytes.
    pub fn nd_options(&self) -> NdOptions<'_> {
        let b = self.buffer.as_ref();
        let rest = nd_options_offset(self.msg_type())
            .and_then(|o| b.get(o..))
            .unwrap_or_default();
        NdOptions { rest }
    }

    /// The first Source Link-Layer Address option, if any.
    pub fn source_lla(&self) -> Result<Option<MacAddr>> {
        find_lla(self.nd_options(), OPT_SOURCE_LLA)
    }

    /// The first Target Link-Layer Address option, if any.
    pub fn target_lla(&self) -> Result<Option<MacAddr>> {
        find_lla(self.nd_options(), OPT_TARGET_LLA)
    }

    /// Checksum over the IPv6 pseudo header and the whole buffer.
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        let b = self.buffer.as_ref();
        let ph = checksum::pseudo_header_v6(src, dst, IpProtocol::ICMPV6.0, b.len() as u32);
        checksum::fold(ph + checksum::sum(b)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[0] = v;
    }

    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[1] = v;
    }

    pub fn set_checksum(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), 2, v);
    }

    pub fn set_echo_ident(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), 4, v);
    }

    pub fn set_echo_seq_no(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), 6, v);
    }

    pub fn set_mtu(&mut self, v: u32) {
        set_be32(self.buffer.as_mut(), 4, v);
    }

    /// Writes bytes 4..8: `flags` in byte 4, the reserved bytes zeroed.
    pub fn set_na_flags(&mut self, flags: u8) {
        set_be32(self.buffer.as_mut(), 4, u32::from(flags) << 24);
    }

    /// Panics if the buffer is shorter than 24 bytes.
    pub fn set_target_addr(&mut self, a: &Ipv6Addr) {
        self.buffer.as_mut()[8..24].copy_from_slice(&a.octets());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[Self::HEADER_LEN..]
    }

    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let ph = checksum::pseudo_header_v6(src, dst, IpProtocol::ICMPV6.0, b.len() as u32);
        let c = !checksum::fold(ph + checksum::sum(b));
        self.set_checksum(c);
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Icmpv6Packet<&'a T> {
    /// As `payload()`, but borrowing the underlying buffer rather than the
    /// view, so the next layer's view can outlive this one.
    pub fn into_payload(self) -> &'a [u8] {
        let b: &'a [u8] = self.buffer.as_ref();
        &b[Self::HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Icmpv6Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// Iterator over NDP options. Yields `Err(Malformed)` once, then stops, on
/// a zero length field or an option running past the end of the message.
#[derive(Debug, Clone)]
pub struct NdOptions<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for NdOptions<'a> {
    type Item = Result<(u8, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&kind, &len8) = match self.rest {
            [] => return None,
            [k, l, ..] => (k, l),
            [_] => {
                self.rest = &[];
                return Some(Err(Error::Malformed));
            }
        };
        let len = usize::from(len8) * 8;
        match (len, self.rest.get(2..len)) {
            (0, _) | (_, None) => {
                self.rest = &[];
                Some(Err(Error::Malformed))
            }
            (_, Some(body)) => {
                self.rest = self.rest.get(len..).unwrap_or_default();
                Some(Ok((kind, body)))
            }
        }
    }
}

fn find_lla(opts: NdOptions<'_>, kind: u8) -> Result<Option<MacAddr>> {
    for o in opts {
        let (k, body) = o?;
        if k == kind {
            let mac = body.get(..6).and_then(MacAddr::from_slice);
            return mac.map(Some).ok_or(Error::Malformed);
        }
    }
    Ok(None)
}

/// The IPv6 header quoted inside an ICMPv6 error plus the quoted bytes that
/// follow it (extension headers are not skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedIpv6<'a> {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub next_header: IpProtocol,
    pub header: &'a [u8],
    /// Quoted bytes after the fixed header, cut at the original payload
    /// length when the quote is longer than the packet.
    pub payload: &'a [u8],
}

impl<'a> EmbeddedIpv6<'a> {
    fn parse(b: &'a [u8]) -> Result<Self> {
        let first = *b.first().ok_or(Error::Truncated)?;
        if first >> 4 != 6 {
            return Err(Error::Malformed);
        }
        let header = b.get(..40).ok_or(Error::Truncated)?;
        let rest = b.get(40..).unwrap_or_default();
        let pl = usize::from(be16(header, 4));
        Ok(EmbeddedIpv6 {
            src: ipv6_at(header, 8),
            dst: ipv6_at(header, 24),
            next_header: IpProtocol(header[6]),
            header,
            payload: rest.get(..pl).unwrap_or(rest),
        })
    }
}

/// A Neighbor Solicitation or Advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdRepr {
    NeighborSolicit {
        target: Ipv6Addr,
        source_lla: Option<MacAddr>,
    },
    NeighborAdvert {
        router: bool,
        solicited: bool,
        override_: bool,
        target: Ipv6Addr,
        target_lla: Option<MacAddr>,
    },
}

impl NdRepr {
    /// Checks the type, code 0 and every option (RFC 4861 7.1.1/7.1.2).
    /// The checksum and hop limit 255 need the IPv6 header and are left to
    /// the caller.
    pub fn parse<T: AsRef<[u8]>>(p: &Icmpv6Packet<T>) -> Result<NdRepr> {
        p.check_len()?;
        if p.msg_code() != 0 {
            return Err(Error::Malformed);
        }
        for o in p.nd_options() {
            o?;
        }
        match p.msg_type() {
            NEIGHBOR_SOLICIT => Ok(NdRepr::NeighborSolicit {
                target: p.target_addr()?,
                source_lla: p.source_lla()?,
            }),
            NEIGHBOR_ADVERT => Ok(NdRepr::NeighborAdvert {
                router: p.na_router(),
                solicited: p.na_solicited(),
                override_: p.na_override(),
                target: p.target_addr()?,
                target_lla: p.target_lla()?,
            }),
            _ => Err(Error::Malformed),
        }
    }

    fn lla(&self) -> Option<(u8, MacAddr)> {
        match *self {
            NdRepr::NeighborSolicit { source_lla, .. } => source_lla.map(|m| (OPT_SOURCE_LLA, m)),
            NdRepr::NeighborAdvert { target_lla, .. } => target_lla.map(|m| (OPT_TARGET_LLA, m)),
        }
    }

    /// Length of the ICMPv6 message: 24, plus 8 for the link-layer option.
    pub fn buffer_len(&self) -> usize {
        24 + if self.lla().is_some() { 8 } else { 0 }
    }

    /// Writes the message and its checksum for the given IPv6 addresses. The
    /// buffer must be exactly `buffer_len()` bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
        p: &mut Icmpv6Packet<T>,
    ) {
        match *self {
            NdRepr::NeighborSolicit { target, .. } => {
                p.set_msg_type(NEIGHBOR_SOLICIT);
                p.set_na_flags(0);
                p.set_target_addr(&target);
            }
            NdRepr::NeighborAdvert {
                router,
                solicited,
                override_,
                target,
                ..
            } => {
                let mut f = 0;
                if router {
                    f |= NA_ROUTER;
                }
                if solicited {
                    f |= NA_SOLICITED;
                }
                if override_ {
                    f |= NA_OVERRIDE;
                }
                p.set_msg_type(NEIGHBOR_ADVERT);
                p.set_na_flags(f);
                p.set_target_addr(&target);
            }
        }
        p.set_msg_code(0);
        if let Some((kind, mac)) = self.lla() {
            let b = p.buffer.as_mut();
            b[24] = kind;
            b[25] = 1;
            b[26..32].copy_from_slice(&mac.0);
        }
        p.fill_checksum(src, dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{IcmpEchoHeader, Icmpv6Header, Icmpv6Slice, Icmpv6Type};

    fn ll(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    const MAC: MacAddr = MacAddr([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);

    #[test]
    fn echo_from_etherparse() {
        let (s, d) = (ll("2001:db8::1"), ll("2001:db8::2"));
        let h = Icmpv6Header::with_checksum(
            Icmpv6Type::EchoRequest(IcmpEchoHeader { id: 99, seq: 3 }),
            s.octets(),
            d.octets(),
            b"abc",
        )
        .unwrap();
        let mut v = Vec::new();
        h.write(&mut v).unwrap();
        v.extend_from_slice(b"abc");
        let p = Icmpv6Packet::new_checked(&v[..]).unwrap();
        assert_eq!(p.msg_type(), ECHO_REQUEST);
        assert_eq!(p.echo_ident(), 99);
        assert_eq!(p.echo_seq_no(), 3);
        assert_eq!(p.payload(), b"abc");
        assert!(p.verify_checksum(&s, &d));
        assert!(!p.verify_checksum(&d, &ll("2001:db8::3")));
        assert_eq!(p.nd_options().count(), 0);

        // Turn it into a reply; etherparse must accept our checksum.
        let mut p = Icmpv6Packet::new_checked(&mut v[..]).unwrap();
        p.set_msg_type(ECHO_REPLY);
        p.fill_checksum(&d, &s);
        let es = Icmpv6Slice::from_slice(&v).unwrap();
        assert!(es.is_checksum_valid(d.octets(), s.octets()));
        assert_eq!(
            es.icmp_type(),
            Icmpv6Type::EchoReply(IcmpEchoHeader { id: 99, seq: 3 })
        );
    }

    #[test]
    fn packet_too_big_embedded() {
        let mut orig = Vec::new();
        etherparse::PacketBuilder::ipv6(ll("2001:db8::a").octets(), ll("2001:db8::b").octets(), 64)
            .udp(5353, 53)
            .write(&mut orig, &[7u8; 1500])
            .unwrap();
        let quoted = &orig[..1232];
        let (s, d) = (ll("2001:db8::fe"), ll("2001:db8::a"));
        let h = Icmpv6Header::with_checksum(
            Icmpv6Type::PacketTooBig { mtu: 1280 },
            s.octets(),
            d.octets(),
            quoted,
        )
        .unwrap();
        let mut v = Vec::new();
        h.write(&mut v).unwrap();
        v.extend_from_slice(quoted);
        let p = Icmpv6Packet::new_checked(&v[..]).unwrap();
        assert_eq!(p.msg_type(), PACKET_TOO_BIG);
        assert_eq!(p.mtu(), 1280);
        assert!(p.is_error());
        assert!(p.verify_checksum(&s, &d));
        let e = p.embedded().unwrap();
        assert_eq!(e.src, ll("2001:db8::a"));
        assert_eq!(e.next_header, IpProtocol::UDP);
        assert_eq!(e.payload.len(), 1232 - 40);
        assert_eq!(&e.payload[..4], &[0x14, 0xe9, 0x00, 0x35]);
    }

    // RFC 4861 4.3 layout, written out by hand: NS for 2001:db8::2 from
    // 2001:db8::1 with a source link-layer address option.
    fn ns_bytes() -> Vec<u8> {
        let mut v = vec![135, 0, 0, 0, 0, 0, 0, 0];
        v.extend_from_slice(&ll("2001:db8::2").octets());
        v.extend_from_slice(&[1, 1]);
        v.extend_from_slice(&MAC.0);
        v
    }

    #[test]
    fn ns_emit_matches_layout_and_etherparse_checksum() {
        let (s, d) = (ll("2001:db8::1"), solicited_dst());
        let r = NdRepr::NeighborSolicit {
            target: ll("2001:db8::2"),
            source_lla: Some(MAC),
        };
        assert_eq!(r.buffer_len(), 32);
        let mut buf = vec![0xeeu8; r.buffer_len()];
        r.emit(&s, &d, &mut Icmpv6Packet::new_unchecked(&mut buf[..]));
        let mut want = ns_bytes();
        want[2..4].copy_from_slice(&buf[2..4]);
        assert_eq!(buf, want);
        let es = Icmpv6Slice::from_slice(&buf).unwrap();
        assert!(es.is_checksum_valid(s.octets(), d.octets()));
        assert_eq!(es.type_u8(), 135);

        let p = Icmpv6Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum(&s, &d));
        assert_eq!(p.target_addr().unwrap(), ll("2001:db8::2"));
        assert_eq!(p.source_lla().unwrap(), Some(MAC));
        assert_eq!(p.target_lla().unwrap(), None);
        assert_eq!(NdRepr::parse(&p).unwrap(), r);
    }

    fn solicited_dst() -> Ipv6Addr {
        crate::wire::ipv6::solicited_node(ll("2001:db8::2"))
    }

    #[test]
    fn na_from_etherparse_checksum() {
        let (s, d) = (ll("fe80::1"), ll("fe80::2"));
        let mut body = ll("2001:db8::5").octets().to_vec();
        body.extend_from_slice(&[2, 1]);
        body.extend_from_slice(&MAC.0);
        let h = Icmpv6Header::with_checksum(
            Icmpv6Type::Unknown {
                type_u8: 136,
                code_u8: 0,
                bytes5to8: [0xe0, 0, 0, 0],
            },
            s.octets(),
            d.octets(),
            &body,
        )
        .unwrap();
        let mut v = Vec::new();
        h.write(&mut v).unwrap();
        v.extend_from_slice(&body);

        let p = Icmpv6Packet::new_checked(&v[..]).unwrap();
        assert!(p.verify_checksum(&s, &d));
        assert!(p.na_router() && p.na_solicited() && p.na_override());
        let r = NdRepr::parse(&p).unwrap();
        assert_eq!(
            r,
            NdRepr::NeighborAdvert {
                router: true,
                solicited: true,
                override_: true,
                target: ll("2001:db8::5"),
                target_lla: Some(MAC),
            }
        );

        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(&s, &d, &mut Icmpv6Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, v);

        let r2 = NdRepr::NeighborAdvert {
            router: false,
            solicited: true,
            override_: false,
            target: ll("2001:db8::5"),
            target_lla: None,
        };
        let mut buf = vec![0u8; r2.buffer_len()];
        r2.emit(&s, &d, &mut Icmpv6Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf.len(), 24);
        assert_eq!(buf[4], 0x40);
        assert!(Icmpv6Slice::from_slice(&buf)
            .unwrap()
            .is_checksum_valid(s.octets(), d.octets()));
        let p = Icmpv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(NdRepr::parse(&p).unwrap(), r2);
    }

    #[test]
    fn option_validation() {
        let mut v = ns_bytes();
        v[25] = 0;
        let p = Icmpv6Packet::new_checked(&v[..]).unwrap();
        assert_eq!(p.nd_options().next(), Some(Err(Error::Malformed)));
        assert_eq!(p.source_lla(), Err(Error::Malformed));
        assert_eq!(NdRepr::parse(&p), Err(Error::Malformed));

        let mut v = ns_bytes();
        v[25] = 2;
        let p = Icmpv6Packet::new_checked(&v[..]).unwrap();
        assert_eq!(NdRepr::parse(&p), Err(Error::Malformed));

        let mut v = ns_bytes();
        v.push(14);
        let p = Icmpv6Packet::new_checked(&v[..]).unwrap();
        let items: Vec<_> = p.nd_options().collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert_eq!(items[1], Err(Error::Malformed));

        // Unknown options are skipped; the LLA after them is found.
        let mut v = ns_bytes();
        let lla = v.split_off(24);
        v.extend_from_slice(&[14, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        v.extend_from_slice(&lla);
        let p = Icmpv6Packet::new_checked(&v[..]).unwrap();
        assert_eq!(p.nd_options().count(), 2);
        assert_eq!(p.source_lla().unwrap(), Some(MAC));

        let mut v = ns_bytes();
        v[1] = 1;
        let p = Icmpv6Packet::new_checked(&v[..]).unwrap();
        assert_eq!(NdRepr::parse(&p), Err(Error::Malformed));
    }

    #[test]
    fn truncation_never_panics() {
        let v = ns_bytes();
        for n in 0..=v.len() {
            match Icmpv6Packet::new_checked(&v[..n]) {
                Ok(p) => {
                    assert!(n >= 24);
                    let _ = p.target_addr().unwrap();
                    let _ = (p.na_flags(), p.mtu(), p.embedded());
                    let opts: Vec<_> = p.nd_options().collect();
                    if n == 24 || n == 32 {
                        assert!(opts.iter().all(|o| o.is_ok()));
                        NdRepr::parse(&p).unwrap();
                    } else {
                        assert_eq!(NdRepr::parse(&p), Err(Error::Malformed));
                    }
                }
                Err(e) => {
                    assert!(n < 24);
                    assert_eq!(e, Error::Truncated);
                }
            }
        }
        // An echo of 8 bytes passes; ND getters that need more report it.
        let e = [128u8, 0, 0, 0, 0, 1, 0, 2];
        let p = Icmpv6Packet::new_checked(&e[..]).unwrap();
        assert_eq!(p.target_addr(), Err(Error::Truncated));
        assert_eq!(p.source_lla(), Ok(None));
        assert_eq!(p.embedded(), Err(Error::Truncated));
    }

    #[test]
    fn fuzz_never_panics() {
        let mut rng = crate::wire::testutil::XorShift(0x5eed);
        let types = [133u8, 134, 135, 136, 137, 128, 1, 2];
        for i in 0..20_000 {
            let n = (rng.next() % 72) as usize;
            let mut b = rng.bytes(n);
            if n > 0 {
                b[0] = types[i % types.len()];
            }
            if n > 25 && i % 2 == 0 {
                b[25] %= 4;
            }
            if let Ok(p) = Icmpv6Packet::new_checked(&b[..]) {
                for (_, body) in p.nd_options().flatten() {
                    assert!(body.len() % 8 == 6);
                }
                let _ = (p.source_lla(), p.target_lla(), p.target_addr());
                let _ = (NdRepr::parse(&p), p.embedded());
            }
        }
    }
}
