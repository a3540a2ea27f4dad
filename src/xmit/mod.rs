//! Forwarding modes: the packet rewrites of FULLNAT, NAT (masquerade), DR and
//! TUN, ICMP errors about a tracked conn, and DPVS's TOA option.
//!
//! Every function works on a frame laid out as the dataplane hands it over:
//! 14 bytes of Ethernet header, then the IP header. The L3/L4 rewrite happens
//! in place; the 14 bytes in front stay for the network stack, which fills
//! in the MAC addresses after routing, so nothing here writes a MAC. Each
//! function returns the address to route to (the next hop's destination) or
//! an [`XmitError`].
//!
//! Frames must be contiguous (one segment): the length checks see only
//! `Packet::data()`, so a chained mbuf is refused as BadHeader rather than
//! rewritten in part.
//!
//! Contract on failure: every check runs before the first byte is written,
//! so an `Err` leaves the packet exactly as it came in. That matters for
//! [`XmitError::TtlExceeded`] and [`XmitError::TooBig`], whose ICMP answers
//! quote the datagram as the sender sent it.
//!
//! Checksums are updated incrementally (RFC 1624), so a segment that arrived
//! with a bad checksum still has one and the receiver drops it; nothing here
//! verifies L4 checksums on the fast path. [`request_checksum_offload`]
//! turns the result into what a NIC with checksum offload expects.

pub mod dr;
pub mod encap;
pub mod fragment;
pub mod fullnat;
pub mod icmp;
pub mod mtu;
pub mod nat;
pub mod nat64;
#[cfg(test)]
mod opts_tests;
pub mod proxy_proto;
pub mod sctp;
pub mod seqadj;
pub mod synproxy;
pub mod toa;
pub mod tun;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

use crate::counters::DropReason;
use crate::ipvs::{ConnRef, FwdMethod};
use crate::packet::{L4Checksum, Packet, TxOffload};
use crate::wire::checksum;
use crate::wire::ipext::{self, ChainError, Fragment};
use crate::wire::{EthernetFrame, Ipv4Packet, Ipv6Packet};

/// Length of the Ethernet header in front of every frame.
pub const ETH_LEN: usize = 14;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_SCTP: u8 = 132;
const PROTO_ICMP: u8 = 1;
const PROTO_ICMPV6: u8 = 58;

/// Why a rewrite did not produce a packet to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum XmitError {
    /// Drop the packet and count it under this reason.
    #[error("dropped: {}", .0.name())]
    Drop(DropReason),
    /// The TTL or hop limit would reach zero. The packet is unchanged, so
    /// the caller can quote it in an ICMP time exceeded
    /// ([`icmp::build_time_exceeded`]) before dropping it.
    #[error("TTL exceeded in transit")]
    TtlExceeded,
    /// The packet (with the tunnel's overhead) does not fit the egress MTU
    /// and may not be fragmented. The packet is unchanged; the caller
    /// answers with [`icmp::build_frag_needed`] / [`icmp::build_too_big`]
    /// carrying `mtu`, the largest datagram that fits.
    #[error("packet too big, path MTU {mtu}")]
    TooBig { mtu: u16 },
}

impl From<DropReason> for XmitError {
    fn from(r: DropReason) -> Self {
        XmitError::Drop(r)
    }
}

impl XmitError {
    /// The drop counter for this outcome. TTL exceeded has no reason of
    /// its own yet and counts as `Unsupported`.
    pub fn drop_reason(self) -> DropReason {
        match self {
            XmitError::Drop(r) => r,
            XmitError::TooBig { .. } => DropReason::TooBig,
            XmitError::TtlExceeded => DropReason::Unsupported,
        }
    }
}

/// What a service asks of the client→real-server rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XmitOpts {
    /// FULLNAT: put the client's address in a TOA option (kind 254) on the
    /// SYN, so the real server's toa module can see who the client is.
    pub toa: bool,
    /// FULLNAT: also put TOA on this packet if it is an ACK without SYN,
    /// FIN or RST. The caller sets it for the ACK that completes the
    /// handshake (the conn leaves SYN_RECV) or, as DPVS does, for the
    /// client's packets until the server has sent data: the Linux toa
    /// module reads the option from the handshake's last ACK, not from the
    /// SYN. Left out when the grown packet would not fit `mtu`.
    pub toa_on_ack: bool,
    /// FULLNAT and NAT: lower a SYN's MSS option to at most this.
    pub mss_clamp: Option<u16>,
    /// The egress link's IP MTU: TUN's fit check, and TOA is left out when
    /// the grown packet would not fit.
    pub mtu: u16,
    /// TUN: the director's address on the egress port, the outer source.
    pub tunnel_src: Option<IpAddr>,
    /// The dataplane's own parse of this very frame, when it made one that
    /// `parse_ip` and `check_l4` would repeat (see `check_translatable`).
    pub(crate) parsed: Option<Ip>,
}

impl Default for XmitOpts {
    fn default() -> Self {
        XmitOpts {
            toa: false,
            toa_on_ack: false,
            mss_clamp: None,
            mtu: 1500,
            tunnel_src: None,
            parsed: None,
        }
    }
}

/// Rewrites a client→VIP packet for the conn's real server by the conn's
/// forwarding method.
pub fn to_real<P: Packet>(
    pkt: &mut P,
    conn: &ConnRef<'_>,
    opts: &XmitOpts,
) -> Result<IpAddr, XmitError> {
    match conn.fwd() {
        FwdMethod::FullNat => fullnat::to_real(pkt, conn, opts),
        FwdMethod::Masq => nat::to_real(pkt, conn, opts),
        FwdMethod::DirectRoute => dr::to_real(pkt, conn, opts.mtu),
        FwdMethod::Tunnel => match opts.tunnel_src {
            Some(src) => tun::to_real(pkt, conn, src, opts.mtu),
            None => Err(XmitError::Drop(DropReason::NoRoute)),
        },
        FwdMethod::Local => Err(XmitError::Drop(DropReason::Unsupported)),
    }
}

/// Rewrites a real server's reply for the client, on a link that takes
/// any size. Only NAT and FULLNAT see replies; DR and TUN servers answer
/// the client directly.
pub fn to_client<P: Packet>(pkt: &mut P, conn: &ConnRef<'_>) -> Result<IpAddr, XmitError> {
    match conn.fwd() {
        FwdMethod::FullNat => fullnat::to_client(pkt, conn, u16::MAX),
        FwdMethod::Masq => nat::to_client(pkt, conn, u16::MAX),
        _ => Err(XmitError::Drop(DropReason::Unsupported)),
    }
}

/// `to_client` with the egress MTU towards the client (`mtu`), which the
/// reply must fit (see [`mtu`]): grown by FULLNAT's IPv4 → IPv6
/// translation for NAT64 conns, as it is for the others. `parsed`: as
/// `XmitOpts::parsed`.
pub(crate) fn to_client_mtu<P: Packet>(
    pkt: &mut P,
    conn: &ConnRef<'_>,
    mtu: u16,
    parsed: Option<Ip>,
) -> Result<IpAddr, XmitError> {
    match conn.fwd() {
        FwdMethod::FullNat if nat64::is_nat64(conn) => nat64::to_client(pkt, conn, mtu),
        FwdMethod::FullNat => fullnat::to_client_parsed(pkt, conn, mtu, parsed),
        FwdMethod::Masq => nat::to_client_parsed(pkt, conn, mtu, parsed),
        _ => Err(XmitError::Drop(DropReason::Unsupported)),
    }
}

/// Replaces the finished checksums of a frame by what a NIC with checksum
/// offload expects (IPv4 header checksum zero, L4 checksum field holding the
/// pseudo header's sum, not complemented, as DPDK's rte_ipv4_phdr_cksum
/// gives) and asks the packet for that offload. Call it after a rewrite
/// when the egress port offers the offload. An IPv4 UDP datagram without a
/// checksum keeps none; tunnel and ICMP packets get the IPv4 header only.
pub fn request_checksum_offload<P: Packet>(pkt: &mut P) -> Result<(), DropReason> {
    let ip = parse_ip(pkt.data())?;
    let b = pkt.data_mut();
    let l4_len = ip.end - ip.l4;
    let (l4, l4_hdr, csum_at) = match ip.proto {
        // A NIC would sum the fragment alone, not the datagram.
        _ if ip.frag.is_some() => (L4Checksum::None, 0, None),
        PROTO_TCP if l4_len >= 20 => {
            let hl = usize::from(b[ip.l4 + 12] >> 4) * 4;
            (L4Checksum::Tcp, hl, Some(ip.l4 + 16))
        }
        PROTO_UDP if l4_len >= 8 => {
            // No checksum to offload: UDP over IPv4 may go without one,
            // and so may a GUE tunnel's over IPv6 (RFC 6935), which
            // offload would otherwise fill in against --tun-nocsum.
            if be16(b, ip.l4 + 6) == 0 {
                (L4Checksum::None, 0, None)
            } else {
                (L4Checksum::Udp, 8, Some(ip.l4 + 6))
            }
        }
        _ => (L4Checksum::None, 0, None),
    };
    if let Some(at) = csum_at {
        let ph = pseudo_sum(b, &ip, ip.proto, l4_len as u32);
        set16(b, at, checksum::fold(ph));
    }
    if !ip.v6 {
        set16(b, ETH_LEN + 10, 0);
    }
    pkt.request_tx_offload(TxOffload {
        l2_len: ETH_LEN as u16,
        l3_len: (ip.l4 - ETH_LEN) as u16,
        l4_len: l4_hdr as u16,
        ipv4: !ip.v6,
        ip_checksum: !ip.v6,
        l4,
    });
    Ok(())
}

// ---- shared parsing and rewriting ----

/// Where the parts of a validated frame are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ip {
    pub v6: bool,
    /// Offset of the L4 header (or whatever follows the fixed IP header).
    pub l4: usize,
    /// End of the IP datagram; Ethernet padding may follow.
    pub end: usize,
    pub proto: u8,
    /// Set when the datagram is a fragment; only the first has the L4
    /// header at `l4`, a later one has data there.
    pub frag: Option<Fragment>,
}

impl Ip {
    /// A fragment other than the first: no ports, no L4 header.
    pub fn later_fragment(&self) -> bool {
        self.frag.is_some_and(|f| !f.is_first())
    }
}

#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn set16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Validates the Ethernet type and the IP header of a frame. IPv4 options
/// are kept and stepped over; IPv6 extension headers are walked to the
/// upper layer (`proto` is what follows them, `l4` where), and a chain
/// that cannot be walked is IpExtHeader. Fragments are marked in `frag`.
/// Lengths that do not add up are BadHeader.
pub(crate) fn parse_ip(b: &[u8]) -> Result<Ip, DropReason> {
    if b.len() < ETH_LEN + 20 {
        return Err(DropReason::BadHeader);
    }
    // The views without their length checks, which are made here as the
    // drops want them: the fixed fields read are within the 20 bytes
    // checked above (IPv6's 40, below).
    let ethertype = EthernetFrame::new_unchecked(b).ethertype().0;
    let l3 = &b[ETH_LEN..];
    match l3[0] >> 4 {
        4 => {
            let ip = Ipv4Packet::new_unchecked(l3);
            if ethertype != ETHERTYPE_IPV4 {
                return Err(DropReason::BadHeader);
            }
            let ihl = ip.header_len();
            if ihl < 20 {
                return Err(DropReason::BadHeader);
            }
            let total = usize::from(ip.total_len());
            if total < ihl || ETH_LEN + total > b.len() {
                return Err(DropReason::BadHeader);
            }
            // No options and not a fragment: nothing to walk, as for IPv6
            // without extension headers below.
            if ihl == 20 && !ip.is_fragment() {
                return Ok(Ip {
                    v6: false,
                    l4: ETH_LEN + 20,
                    end: ETH_LEN + total,
                    proto: ip.protocol().0,
                    frag: None,
                });
            }
            let u = Ipv4Packet::new_unchecked(&l3[..total]).upper_layer();
            Ok(Ip {
                v6: false,
                l4: ETH_LEN + u.offset,
                end: ETH_LEN + total,
                proto: u.proto.0,
                frag: u.frag,
            })
        }
        6 => {
            if ethertype != ETHERTYPE_IPV6 || b.len() < ETH_LEN + 40 {
                return Err(DropReason::BadHeader);
            }
            let ip = Ipv6Packet::new_unchecked(l3);
            let end = ETH_LEN + 40 + usize::from(ip.payload_len());
            if end > b.len() {
                return Err(DropReason::BadHeader);
            }
            let nh = ip.next_header().0;
            if !ipext::is_walked_ext(nh) {
                return Ok(Ip {
                    v6: true,
                    l4: ETH_LEN + 40,
                    end,
                    proto: nh,
                    frag: None,
                });
            }
            let u = Ipv6Packet::new_unchecked(&b[ETH_LEN..end])
                .upper_layer()
                .map_err(|e| match e {
                    ChainError::Bad(_) => DropReason::BadHeader,
                    ChainError::Unsupported => DropReason::IpExtHeader,
                })?;
            Ok(Ip {
                v6: true,
                l4: ETH_LEN + u.offset,
                end,
                proto: u.proto.0,
                frag: u.frag,
            })
        }
        _ => Err(DropReason::BadHeader),
    }
}

/// Validates a TCP, UDP or SCTP header after `parse_ip` (SCTP: the chunk
/// walk). Other protocols are Unsupported for the modes that rewrite ports.
/// A later fragment has no header to check; a first fragment must hold the
/// whole TCP header (RFC 1858's tiny fragments are BadHeader) and its UDP
/// length is the datagram's, longer than the fragment. SCTP fragments are
/// Unsupported: the CRC32c covers the whole packet.
pub(crate) fn check_l4(b: &[u8], ip: &Ip) -> Result<(), DropReason> {
    let len = ip.end - ip.l4;
    if ip.frag.is_some() && ip.proto == PROTO_SCTP {
        return Err(DropReason::Unsupported);
    }
    if ip.later_fragment() {
        return match ip.proto {
            PROTO_TCP | PROTO_UDP => Ok(()),
            _ => Err(DropReason::Unsupported),
        };
    }
    match ip.proto {
        PROTO_TCP => {
            if len < 20 {
                return Err(DropReason::BadHeader);
            }
            let hl = usize::from(b[ip.l4 + 12] >> 4) * 4;
            if hl < 20 || hl > len {
                return Err(DropReason::BadHeader);
            }
            Ok(())
        }
        PROTO_UDP => {
            if len < 8 {
                return Err(DropReason::BadHeader);
            }
            let ulen = usize::from(be16(b, ip.l4 + 4));
            if ulen < 8 || (ip.frag.is_none() && ulen > len) {
                return Err(DropReason::BadHeader);
            }
            // RFC 8200 section 8.1: a zero UDP checksum over IPv6 is
            // invalid and the receiver would drop it anyway.
            if ip.v6 && be16(b, ip.l4 + 6) == 0 {
                return Err(DropReason::BadHeader);
            }
            Ok(())
        }
        PROTO_SCTP => crate::wire::SctpPacket::new_checked(&b[ip.l4..ip.end])
            .map(|_| ())
            .map_err(|_| DropReason::BadHeader),
        _ => Err(DropReason::Unsupported),
    }
}

/// Whether forwarding would take the TTL / hop limit to zero.
pub(crate) fn ttl_expires(b: &[u8], ip: &Ip) -> bool {
    let at = if ip.v6 { ETH_LEN + 7 } else { ETH_LEN + 8 };
    b[at] <= 1
}

/// Decrements the TTL / hop limit (after `ttl_expires` said no).
pub(crate) fn dec_ttl(b: &mut [u8], ip: &Ip) {
    if ip.v6 {
        b[ETH_LEN + 7] = b[ETH_LEN + 7].saturating_sub(1);
    } else {
        // TTL and protocol share the header's fifth 16-bit word.
        let old = be16(b, ETH_LEN + 8);
        b[ETH_LEN + 8] = b[ETH_LEN + 8].saturating_sub(1);
        let new = be16(b, ETH_LEN + 8);
        let c = checksum::update_u16(be16(b, ETH_LEN + 10), old, new);
        set16(b, ETH_LEN + 10, c);
    }
}

/// Drops the Ethernet padding after the datagram, so that growing the
/// packet appends at the datagram's end.
pub(crate) fn trim_padding<P: Packet>(pkt: &mut P, ip: &Ip) {
    if pkt.len() > ip.end {
        pkt.trim(pkt.len() - ip.end);
    }
}

/// Partial sum of the pseudo header of the datagram at `ip`.
pub(crate) fn pseudo_sum(b: &[u8], ip: &Ip, proto: u8, len: u32) -> u32 {
    if ip.v6 {
        let s = ipv6_at(b, ETH_LEN + 8);
        let d = ipv6_at(b, ETH_LEN + 24);
        checksum::pseudo_header_v6(&s, &d, proto, len)
    } else {
        let s = ipv4_at(b, ETH_LEN + 12);
        let d = ipv4_at(b, ETH_LEN + 16);
        checksum::pseudo_header_v4(s, d, proto, len as u16)
    }
}

pub(crate) fn ipv4_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

pub(crate) fn ipv6_at(b: &[u8], at: usize) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(o)
}

/// Where an L4 checksum that covers rewritten fields lives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct L4Csum {
    /// Absolute offset of the checksum field.
    pub at: usize,
    /// UDP: zero means "no checksum" (IPv4) and a computed zero is sent as
    /// 0xffff.
    pub udp: bool,
}

/// One IP header (at `ip_off`) and the ports after it, as far as they are
/// there: a full packet, or the datagram quoted in an ICMP error.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hdr {
    pub ip_off: usize,
    pub v6: bool,
    /// Absolute offset of the source port, when the ports are present.
    pub ports: Option<usize>,
    pub csum: Option<L4Csum>,
}

/// Sets the source and/or destination address and port of `h`, keeping the
/// IPv4 header checksum and the L4 checksum right by RFC 1624. Addresses
/// must be of the header's family (callers check); one of another family
/// is left alone rather than written half.
pub(crate) fn rewrite(
    b: &mut [u8],
    h: &Hdr,
    src: Option<(IpAddr, u16)>,
    dst: Option<(IpAddr, u16)>,
) {
    if !h.v6 {
        let v4 = |a: Option<(IpAddr, u16)>| match a {
            None => Some(None),
            Some((IpAddr::V4(a), p)) => Some(Some((a, p))),
            Some(_) => None,
        };
        if let (Some(s), Some(d)) = (v4(src), v4(dst)) {
            rewrite_v4(b, h, s, d);
            return;
        }
    }
    let (src_at, dst_at, alen) = if h.v6 {
        (h.ip_off + 8, h.ip_off + 24, 16)
    } else {
        (h.ip_off + 12, h.ip_off + 16, 4)
    };
    let mut ip_csum = if h.v6 { 0 } else { be16(b, h.ip_off + 10) };
    let mut l4 = h.csum.and_then(|c| {
        let v = be16(b, c.at);
        (!(c.udp && v == 0)).then_some(v)
    });
    for (new, at, port_at) in [
        (src, src_at, h.ports),
        (dst, dst_at, h.ports.map(|p| p + 2)),
    ] {
        let Some((addr, port)) = new else { continue };
        let mut nb = [0u8; 16];
        let ok = match addr {
            IpAddr::V4(a) if !h.v6 => {
                nb[..4].copy_from_slice(&a.octets());
                true
            }
            IpAddr::V6(a) if h.v6 => {
                nb.copy_from_slice(&a.octets());
                true
            }
            _ => false,
        };
        if !ok {
            continue;
        }
        let mut ob = [0u8; 16];
        ob[..alen].copy_from_slice(&b[at..at + alen]);
        b[at..at + alen].copy_from_slice(&nb[..alen]);
        if !h.v6 {
            ip_csum = checksum::update_bytes(ip_csum, &ob[..4], &nb[..4]);
        }
        l4 = l4.map(|c| checksum::update_bytes(c, &ob[..alen], &nb[..alen]));
        if let Some(pa) = port_at {
            let old = be16(b, pa);
            set16(b, pa, port);
            l4 = l4.map(|c| checksum::update_u16(c, old, port));
        }
    }
    if !h.v6 {
        set16(b, h.ip_off + 10, ip_csum);
    }
    if let (Some(c), Some(v)) = (h.csum, l4) {
        set16(b, c.at, if c.udp && v == 0 { 0xffff } else { v });
    }
}

/// NAT's and FULLNAT's translation of a checked packet (`ip`): the TTL or
/// hop limit minus one, the new source and/or destination address and
/// port, the checksums kept right (SCTP's CRC32c recomputed over the new
/// ports). A plain IPv4 TCP or UDP packet, nearly all of them, takes
/// `translate_v4`'s single pass.
pub(crate) fn translate(
    b: &mut [u8],
    ip: &Ip,
    src: Option<(IpAddr, u16)>,
    dst: Option<(IpAddr, u16)>,
) {
    if translate_v4(b, ip, src, dst) {
        return;
    }
    let sctp_ports = (ip.proto == PROTO_SCTP).then(|| sctp::ports(b, ip));
    dec_ttl(b, ip);
    rewrite(b, &packet_hdr(ip), src, dst);
    if let Some(old) = sctp_ports {
        sctp::update_crc(b, ip, old);
    }
}

/// The whole translation of a plain IPv4 TCP or UDP packet (no options,
/// not a fragment; `ip` from `parse_ip` and `check_l4`, TTL checked by
/// `ttl_expires`): the TTL minus one and the new source and/or destination,
/// every checksum change summed once (RFC 1624 eqn. 3) at fixed offsets,
/// which is what `dec_ttl` and `rewrite` do in two passes for any packet.
/// False, with nothing written, for any other packet or address family.
#[inline]
pub(crate) fn translate_v4(
    b: &mut [u8],
    ip: &Ip,
    src: Option<(IpAddr, u16)>,
    dst: Option<(IpAddr, u16)>,
) -> bool {
    let (csum_at, udp) = match ip.proto {
        PROTO_TCP => (16, false),
        PROTO_UDP => (6, true),
        _ => return false,
    };
    if ip.v6 || ip.frag.is_some() || ip.l4 != ETH_LEN + 20 {
        return false;
    }
    let v4 = |a: Option<(IpAddr, u16)>| match a {
        None => Some(None),
        Some((IpAddr::V4(a), p)) => Some(Some((u32::from(a), p))),
        Some(_) => None,
    };
    let (Some(src), Some(dst)) = (v4(src), v4(dst)) else {
        return false;
    };
    let Some(frame) = b.get_mut(ETH_LEN..ETH_LEN + 20 + csum_at + 2) else {
        return false;
    };
    let (hdr, l4) = frame.split_at_mut(20);
    let Ok(hdr) = <&mut [u8; 20]>::try_from(hdr) else {
        return false;
    };
    let word = |b: &[u8], at: usize| u32::from(u16::from_be_bytes([b[at], b[at + 1]]));
    // The TTL shares its word with the protocol; it is in no pseudo header.
    let ttl_word = word(hdr, 8);
    hdr[8] = hdr[8].saturating_sub(1);
    let d_ttl = (!ttl_word & 0xffff) + word(hdr, 8);
    let (mut d_addr, mut d_port) = (0u32, 0u32);
    for (new, at, port_at) in [(src, 12, 0), (dst, 16, 2)] {
        let Some((addr, port)) = new else { continue };
        let old = u32::from_be_bytes([hdr[at], hdr[at + 1], hdr[at + 2], hdr[at + 3]]);
        hdr[at..at + 4].copy_from_slice(&addr.to_be_bytes());
        d_addr += (!(old >> 16) & 0xffff) + (!old & 0xffff) + (addr >> 16) + (addr & 0xffff);
        d_port += (!word(l4, port_at) & 0xffff) + u32::from(port);
        l4[port_at..port_at + 2].copy_from_slice(&port.to_be_bytes());
    }
    let ip_csum = !checksum::fold((!word(hdr, 10) & 0xffff) + d_ttl + d_addr);
    hdr[10..12].copy_from_slice(&ip_csum.to_be_bytes());
    let v = word(l4, csum_at);
    if !(udp && v == 0) {
        let n = !checksum::fold((!v & 0xffff) + d_addr + d_port);
        let n = if udp && n == 0 { 0xffff } else { n };
        l4[csum_at..csum_at + 2].copy_from_slice(&n.to_be_bytes());
    }
    true
}

/// `rewrite` for IPv4 addresses in an IPv4 header, the packet path's case:
/// the old and new words of every changed field are summed once (RFC 1624
/// eqn. 3 over all of them), the addresses into both checksums, the ports
/// into the L4 one only.
#[inline]
fn rewrite_v4(b: &mut [u8], h: &Hdr, src: Option<(Ipv4Addr, u16)>, dst: Option<(Ipv4Addr, u16)>) {
    let (mut d_addr, mut d_port) = (0u32, 0u32);
    for (new, at, port_at) in [
        (src, h.ip_off + 12, h.ports),
        (dst, h.ip_off + 16, h.ports.map(|p| p + 2)),
    ] {
        let Some((addr, port)) = new else { continue };
        let Some(field) = b.get_mut(at..at + 4) else {
            return;
        };
        let old = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
        let new = u32::from(addr);
        field.copy_from_slice(&new.to_be_bytes());
        d_addr += (!(old >> 16) & 0xffff) + (!old & 0xffff) + (new >> 16) + (new & 0xffff);
        if let Some(pa) = port_at {
            let old = be16(b, pa);
            set16(b, pa, port);
            d_port += u32::from(!old) + u32::from(port);
        }
    }
    let ip_csum = be16(b, h.ip_off + 10);
    set16(
        b,
        h.ip_off + 10,
        !checksum::fold(u32::from(!ip_csum) + d_addr),
    );
    if let Some(c) = h.csum {
        let v = be16(b, c.at);
        if !(c.udp && v == 0) {
            let n = !checksum::fold(u32::from(!v) + d_addr + d_port);
            set16(b, c.at, if c.udp && n == 0 { 0xffff } else { n });
        }
    }
}

/// The `Hdr` of a whole TCP, UDP or SCTP packet checked by `check_l4`.
/// SCTP's CRC32c is not an RFC 1624 sum: `sctp` keeps it. A later fragment
/// has addresses only: its ports and the L4 checksum travel in the first
/// fragment, whose incremental update covers the whole datagram.
pub(crate) fn packet_hdr(ip: &Ip) -> Hdr {
    let csum = match ip.proto {
        _ if ip.later_fragment() => None,
        PROTO_TCP => Some(L4Csum {
            at: ip.l4 + 16,
            udp: false,
        }),
        PROTO_UDP => Some(L4Csum {
            at: ip.l4 + 6,
            udp: true,
        }),
        _ => None,
    };
    Hdr {
        ip_off: ETH_LEN,
        v6: ip.v6,
        ports: (csum.is_some() || (ip.proto == PROTO_SCTP && ip.frag.is_none())).then_some(ip.l4),
        csum,
    }
}

/// Validation shared by NAT and FULLNAT: a TCP, UDP or SCTP packet of the
/// expected family and of the conn's protocol whose TTL survives the hop.
/// `parsed` is the caller's parse of this frame, unchanged since (the
/// dataplane's first parse of a plain IPv4 TCP or UDP packet checks all
/// that `parse_ip` and `check_l4` would): it is taken as it is, which
/// debug builds, and so every test, confirm.
pub(crate) fn check_translatable(
    b: &[u8],
    parsed: Option<Ip>,
    conn: &ConnRef<'_>,
    want_v6: bool,
) -> Result<Ip, XmitError> {
    let ip = match parsed {
        Some(ip) => {
            debug_assert_eq!(parse_ip(b), Ok(ip), "a stale parse of the frame");
            debug_assert_eq!(check_l4(b, &ip), Ok(()));
            ip
        }
        None => {
            let ip = parse_ip(b)?;
            check_l4(b, &ip)?;
            ip
        }
    };
    if ip.v6 != want_v6 || ip.proto != conn.proto() {
        return Err(XmitError::Drop(DropReason::Unsupported));
    }
    if ttl_expires(b, &ip) {
        return Err(XmitError::TtlExceeded);
    }
    Ok(ip)
}

/// Lowers the MSS option of a TCP SYN to `clamp` if it is above. Options
/// that cannot be walked are left as they are: the SYN still goes out, as
/// it would through a router that does not clamp.
pub(crate) fn clamp_mss(b: &mut [u8], ip: &Ip, clamp: u16) {
    let Some(seg) = b.get_mut(ip.l4..ip.end) else {
        return;
    };
    let Ok(mut t) = crate::wire::TcpPacket::new_checked(seg) else {
        return;
    };
    if !t.syn() {
        return;
    }
    if let Ok(Some(mss)) = t.mss() {
        if mss > clamp {
            let _ = t.set_mss(clamp);
        }
    }
}

/// Frame builders and independent checkers for the tests of every mode:
/// frames come from etherparse, results are read back with etherparse and
/// their checksums summed here from the raw bytes, never with `wire`.
#[cfg(test)]
pub(crate) mod testkit {
    use std::net::IpAddr;
    use std::sync::Arc;

    use etherparse::{
        EtherType, Ethernet2Header, IpNumber, Ipv4Header, Ipv6FlowLabel, Ipv6Header, NetHeaders,
        PacketHeaders, TcpHeader, TcpOptionElement, TransportHeader, UdpHeader,
    };

    use crate::ipvs::{Conn, ConnRef, ConnTable, Dest, DestConfig, FwdMethod};
    use crate::packet::{Packet, VecPacket};

    /// A test's conn, as a conn table lends it out (with its dest).
    pub type HeldConn = ConnRef<'static>;

    /// `c` of `dest`, in a table of its own that lives as long as the test
    /// process (a test's few conns).
    pub fn held(c: Conn, dest: &Arc<Dest>) -> HeldConn {
        let t: &'static mut ConnTable = Box::leak(Box::new(ConnTable::with_capacity(1)));
        let id = t.insert(c, Some(dest), 0).expect("a table of one has room");
        let t: &'static ConnTable = t;
        t.get(id).expect("just inserted")
    }

    /// Runs `f` on a packet holding `frame`; returns its result and bytes.
    pub fn run<T>(frame: &[u8], f: impl FnOnce(&mut VecPacket) -> T) -> (T, Vec<u8>) {
        let mut p = VecPacket::from_bytes(frame, 0);
        let r = f(&mut p);
        (r, p.data().to_vec())
    }

    pub const MAC_SRC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    pub const MAC_DST: [u8; 6] = [2, 0, 0, 0, 0, 2];

    pub fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Ones-complement sum, written out word by word.
    pub fn ones(data: &[u8]) -> u32 {
        let mut s: u64 = 0;
        let mut i = 0;
        while i < data.len() {
            let hi = u64::from(data[i]) << 8;
            let lo = data.get(i + 1).map_or(0, |&b| u64::from(b));
            s += hi | lo;
            i += 2;
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u32
    }

    pub fn fold(mut s: u32) -> u16 {
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    /// The pseudo header's bytes for `proto` and an L4 length.
    pub fn pseudo(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> Vec<u8> {
        let mut v = Vec::new();
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                v.extend_from_slice(&s.octets());
                v.extend_from_slice(&d.octets());
                v.extend_from_slice(&[0, proto]);
                v.extend_from_slice(&(len as u16).to_be_bytes());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                v.extend_from_slice(&s.octets());
                v.extend_from_slice(&d.octets());
                v.extend_from_slice(&(len as u32).to_be_bytes());
                v.extend_from_slice(&[0, 0, 0, proto]);
            }
            _ => panic!("mixed families"),
        }
        v
    }

    #[derive(Clone, Debug)]
    pub enum L4 {
        Tcp(TcpHeader),
        Udp(u16, u16),
    }

    pub fn tcp(sport: u16, dport: u16, flags: &str, opts: &[TcpOptionElement]) -> L4 {
        let mut h = TcpHeader::new(sport, dport, 0x1122_3344, 29200);
        for f in flags.chars() {
            match f {
                'S' => h.syn = true,
                'A' => {
                    h.ack = true;
                    h.acknowledgment_number = 0x5566_7788;
                }
                'F' => h.fin = true,
                'R' => h.rst = true,
                'P' => h.psh = true,
                'U' => {
                    h.urg = true;
                    h.urgent_pointer = 3;
                }
                _ => panic!("flag {f}"),
            }
        }
        h.set_options(opts).unwrap();
        L4::Tcp(h)
    }

    pub fn syn_opts() -> Vec<TcpOptionElement> {
        vec![
            TcpOptionElement::MaximumSegmentSize(1460),
            TcpOptionElement::SelectiveAcknowledgementPermitted,
            TcpOptionElement::Timestamp(0x0102_0304, 0),
            TcpOptionElement::Noop,
            TcpOptionElement::WindowScale(7),
        ]
    }

    /// An Ethernet frame src→dst with valid checksums (IPv4: DF set, ToS
    /// 0x29 and ident 0x4242; IPv6: traffic class 0xb9 and a flow label, so
    /// that copies of them can be checked).
    pub fn frame(src: IpAddr, dst: IpAddr, ttl: u8, l4: &L4, payload: &[u8]) -> Vec<u8> {
        let (proto, l4_bytes) = match l4 {
            L4::Tcp(h) => {
                let mut h = h.clone();
                h.checksum = match (src, dst) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => h
                        .calc_checksum_ipv4_raw(s.octets(), d.octets(), payload)
                        .unwrap(),
                    (IpAddr::V6(s), IpAddr::V6(d)) => h
                        .calc_checksum_ipv6_raw(s.octets(), d.octets(), payload)
                        .unwrap(),
                    _ => panic!(),
                };
                let mut v = h.to_bytes().to_vec();
                v.extend_from_slice(payload);
                (IpNumber::TCP, v)
            }
            L4::Udp(sp, dp) => {
                let h = UdpHeader {
                    source_port: *sp,
                    destination_port: *dp,
                    length: (8 + payload.len()) as u16,
                    checksum: 0,
                };
                let c = match (src, dst) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => h
                        .calc_checksum_ipv4_raw(s.octets(), d.octets(), payload)
                        .unwrap(),
                    (IpAddr::V6(s), IpAddr::V6(d)) => h
                        .calc_checksum_ipv6_raw(s.octets(), d.octets(), payload)
                        .unwrap(),
                    _ => panic!(),
                };
                let mut v = UdpHeader { checksum: c, ..h }.to_bytes().to_vec();
                v.extend_from_slice(payload);
                (IpNumber::UDP, v)
            }
        };
        ip_frame(src, dst, ttl, proto.0, &l4_bytes)
    }

    /// An Ethernet + IP frame around `body`.
    pub fn ip_frame(src: IpAddr, dst: IpAddr, ttl: u8, proto: u8, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                Ethernet2Header {
                    source: MAC_SRC,
                    destination: MAC_DST,
                    ether_type: EtherType::IPV4,
                }
                .write(&mut out)
                .unwrap();
                let mut h = Ipv4Header::new(
                    body.len() as u16,
                    ttl,
                    IpNumber(proto),
                    s.octets(),
                    d.octets(),
                )
                .unwrap();
                h.dscp = etherparse::Ipv4Dscp::try_new(10).unwrap();
                h.ecn = etherparse::Ipv4Ecn::ONE;
                h.identification = 0x4242;
                h.header_checksum = h.calc_header_checksum();
                h.write(&mut out).unwrap();
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                Ethernet2Header {
                    source: MAC_SRC,
                    destination: MAC_DST,
                    ether_type: EtherType::IPV6,
                }
                .write(&mut out)
                .unwrap();
                Ipv6Header {
                    traffic_class: 0xb9,
                    flow_label: Ipv6FlowLabel::try_new(0x12345).unwrap(),
                    payload_length: body.len() as u16,
                    next_header: IpNumber(proto),
                    hop_limit: ttl,
                    source: s.octets(),
                    destination: d.octets(),
                }
                .write(&mut out)
                .unwrap();
            }
            _ => panic!("mixed families"),
        }
        out.extend_from_slice(body);
        out
    }

    /// A frame parsed by etherparse, checksums and lengths zeroed so two
    /// views compare on everything else.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct View {
        pub eth: Vec<u8>,
        pub net: NetHeaders,
        pub transport: Option<TransportHeader>,
        pub payload: Vec<u8>,
    }

    pub fn view(frame: &[u8]) -> View {
        let p = PacketHeaders::from_ethernet_slice(frame).unwrap();
        let mut net = p.net.unwrap();
        match &mut net {
            NetHeaders::Ipv4(h, _) => h.header_checksum = 0,
            NetHeaders::Ipv6(_, _) => {}
        }
        let mut transport = p.transport;
        match &mut transport {
            Some(TransportHeader::Tcp(t)) => t.checksum = 0,
            Some(TransportHeader::Udp(u)) => u.checksum = 0,
            _ => {}
        }
        View {
            eth: frame[..14].to_vec(),
            net,
            transport,
            payload: p.payload.slice().to_vec(),
        }
    }

    impl View {
        pub fn src(&self) -> IpAddr {
            match &self.net {
                NetHeaders::Ipv4(h, _) => h.source.into(),
                NetHeaders::Ipv6(h, _) => h.source.into(),
            }
        }
        pub fn dst(&self) -> IpAddr {
            match &self.net {
                NetHeaders::Ipv4(h, _) => h.destination.into(),
                NetHeaders::Ipv6(h, _) => h.destination.into(),
            }
        }
        pub fn set_addrs(&mut self, src: IpAddr, dst: IpAddr) {
            match (&mut self.net, src, dst) {
                (NetHeaders::Ipv4(h, _), IpAddr::V4(s), IpAddr::V4(d)) => {
                    h.source = s.octets();
                    h.destination = d.octets();
                }
                (NetHeaders::Ipv6(h, _), IpAddr::V6(s), IpAddr::V6(d)) => {
                    h.source = s.octets();
                    h.destination = d.octets();
                }
                _ => panic!("family"),
            }
        }
        pub fn ttl(&self) -> u8 {
            match &self.net {
                NetHeaders::Ipv4(h, _) => h.time_to_live,
                NetHeaders::Ipv6(h, _) => h.hop_limit,
            }
        }
        pub fn set_ttl(&mut self, ttl: u8) {
            match &mut self.net {
                NetHeaders::Ipv4(h, _) => h.time_to_live = ttl,
                NetHeaders::Ipv6(h, _) => h.hop_limit = ttl,
            }
        }
        pub fn grow(&mut self, n: u16) {
            match &mut self.net {
                NetHeaders::Ipv4(h, _) => h.total_len += n,
                NetHeaders::Ipv6(h, _) => h.payload_length += n,
            }
        }
        pub fn set_ports(&mut self, sport: u16, dport: u16) {
            match &mut self.transport {
                Some(TransportHeader::Tcp(t)) => {
                    t.source_port = sport;
                    t.destination_port = dport;
                }
                Some(TransportHeader::Udp(u)) => {
                    u.source_port = sport;
                    u.destination_port = dport;
                }
                _ => panic!("no ports"),
            }
        }
        pub fn tcp_mut(&mut self) -> &mut TcpHeader {
            match &mut self.transport {
                Some(TransportHeader::Tcp(t)) => t,
                _ => panic!("not tcp"),
            }
        }
    }

    /// Checks the IPv4 header checksum and the TCP/UDP checksum of a frame
    /// from its raw bytes. A UDP/IPv4 checksum of zero passes when
    /// `udp_zero_ok`.
    pub fn assert_checksums(frame: &[u8], udp_zero_ok: bool) {
        let p = PacketHeaders::from_ethernet_slice(frame).unwrap();
        let (src, dst, hl, proto, end): (IpAddr, IpAddr, usize, u8, usize) = match p.net.unwrap() {
            NetHeaders::Ipv4(h, _) => {
                let hl = h.header_len();
                assert_eq!(
                    fold(ones(&frame[14..14 + hl])),
                    0xffff,
                    "IPv4 header checksum"
                );
                (
                    h.source.into(),
                    h.destination.into(),
                    hl,
                    h.protocol.0,
                    14 + usize::from(h.total_len),
                )
            }
            NetHeaders::Ipv6(h, _) => (
                h.source.into(),
                h.destination.into(),
                40,
                h.next_header.0,
                54 + usize::from(h.payload_length),
            ),
        };
        let l4 = &frame[14 + hl..end];
        match proto {
            6 | 17 | 58 => {
                if proto == 17 && src.is_ipv4() && l4[6] == 0 && l4[7] == 0 {
                    assert!(udp_zero_ok, "UDP checksum zero");
                    return;
                }
                let s = ones(&pseudo(src, dst, proto, l4.len())) + ones(l4);
                assert_eq!(fold(s), 0xffff, "L4 checksum, proto {proto}");
            }
            1 => assert_eq!(fold(ones(l4)), 0xffff, "ICMP checksum"),
            _ => {}
        }
    }

    pub fn dest(addr: IpAddr, port: u16, fwd: FwdMethod) -> Arc<Dest> {
        let mut cfg = DestConfig::new(addr, port);
        cfg.fwd = fwd;
        Arc::new(Dest::new(&cfg, 1))
    }

    /// A conn client→vip scheduled to rs (and bound to `local` for FULLNAT).
    pub fn conn(
        fwd: FwdMethod,
        proto: u8,
        client: (IpAddr, u16),
        vip: (IpAddr, u16),
        rs: (IpAddr, u16),
        local: Option<(IpAddr, u16)>,
    ) -> HeldConn {
        let c = Conn::new(proto, client, vip, rs.1, fwd);
        let c = match local {
            Some((a, p)) => c.with_local(a, p),
            None => c,
        };
        held(c, &dest(rs.0, rs.1, fwd))
    }

    pub struct Addrs {
        pub client: (IpAddr, u16),
        pub vip: (IpAddr, u16),
        pub rs: (IpAddr, u16),
        pub lip: (IpAddr, u16),
    }

    pub fn v4() -> Addrs {
        Addrs {
            client: (ip("198.51.100.7"), 40000),
            vip: (ip("203.0.113.10"), 80),
            rs: (ip("10.0.0.21"), 8080),
            lip: (ip("10.0.0.250"), 5001),
        }
    }

    pub fn v6() -> Addrs {
        Addrs {
            client: (ip("2001:db8:c::7"), 40000),
            vip: (ip("2001:db8:f::10"), 443),
            rs: (ip("fd00::21"), 8443),
            lip: (ip("fd00::fa"), 5001),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::*;
    use super::*;
    use crate::packet::VecPacket;
    use crate::wire::testutil::XorShift;
    use etherparse::{Ipv4Header, Ipv4Options, TcpOptionElement};

    fn conns(a: &Addrs, proto: u8) -> Vec<HeldConn> {
        vec![
            conn(
                FwdMethod::FullNat,
                proto,
                a.client,
                a.vip,
                a.rs,
                Some(a.lip),
            ),
            conn(FwdMethod::Masq, proto, a.client, a.vip, a.rs, None),
            conn(
                FwdMethod::DirectRoute,
                proto,
                a.client,
                a.vip,
                (a.rs.0, a.vip.1),
                None,
            ),
            conn(
                FwdMethod::Tunnel,
                proto,
                a.client,
                a.vip,
                (a.rs.0, a.vip.1),
                None,
            ),
        ]
    }

    fn opts_for(a: &Addrs) -> XmitOpts {
        XmitOpts {
            toa: true,
            toa_on_ack: true,
            mss_clamp: Some(1200),
            mtu: 1500,
            tunnel_src: Some(if a.rs.0.is_ipv4() {
                ip("10.0.0.1")
            } else {
                ip("fd00::1")
            }),
            ..XmitOpts::default()
        }
    }

    /// Every function that takes a client or server packet, run on `f`;
    /// returns (function, result, packet after).
    fn run_all(
        f: &[u8],
        a: &Addrs,
        proto: u8,
    ) -> Vec<(String, Result<IpAddr, XmitError>, Vec<u8>)> {
        let mut v = Vec::new();
        let opts = opts_for(a);
        for c in conns(a, proto) {
            let name = c.fwd().name();
            let (r, out) = run(f, |p| to_real(p, &c, &opts));
            v.push((format!("{name} to_real"), r, out));
            let (r, out) = run(f, |p| to_client(p, &c));
            v.push((format!("{name} to_client"), r, out));
            let (r, out) = run(f, |p| icmp::to_real(p, &c, &opts));
            v.push((format!("{name} icmp to_real"), r, out));
            let (r, out) = run(f, |p| icmp::to_client(p, &c));
            v.push((format!("{name} icmp to_client"), r, out));
        }
        v
    }

    fn valid_frames(a: &Addrs) -> Vec<(u8, Vec<u8>)> {
        vec![
            (
                6,
                frame(
                    a.client.0,
                    a.vip.0,
                    64,
                    &tcp(a.client.1, a.vip.1, "S", &syn_opts()),
                    b"",
                ),
            ),
            (
                6,
                frame(
                    a.client.0,
                    a.vip.0,
                    64,
                    &tcp(a.client.1, a.vip.1, "PA", &[]),
                    b"data!",
                ),
            ),
            (
                17,
                frame(
                    a.client.0,
                    a.vip.0,
                    64,
                    &L4::Udp(a.client.1, a.vip.1),
                    b"udp",
                ),
            ),
            (
                6,
                frame(
                    a.rs.0,
                    a.lip.0,
                    64,
                    &tcp(a.rs.1, a.lip.1, "SA", &syn_opts()),
                    b"",
                ),
            ),
        ]
    }

    #[test]
    fn every_truncation_fails_cleanly() {
        for a in [v4(), v6()] {
            for (proto, f) in valid_frames(&a) {
                for n in 0..f.len() {
                    for (name, r, out) in run_all(&f[..n], &a, proto) {
                        assert!(r.is_err(), "{name} len {n}");
                        assert_eq!(out, &f[..n], "{name} len {n}");
                    }
                }
            }
        }
    }

    fn refix_ip_csum(f: &mut [u8]) {
        if f[14] >> 4 == 4 {
            let hl = (usize::from(f[14] & 0x0f) * 4).clamp(20, f.len() - 14);
            f[24] = 0;
            f[25] = 0;
            let c = !fold(ones(&f[14..14 + hl]));
            f[24..26].copy_from_slice(&c.to_be_bytes());
        }
    }

    /// Expect every mode (L3 checks) or only the port-rewriting ones (L4
    /// checks) to refuse `f` with `want`, leaving it as it was.
    fn expect_refused(f: &[u8], a: &Addrs, proto: u8, want: DropReason, l4_only: bool) {
        let opts = opts_for(a);
        for c in conns(a, proto) {
            let l4_mode = matches!(c.fwd(), FwdMethod::FullNat | FwdMethod::Masq);
            if l4_only && !l4_mode {
                continue;
            }
            let (r, out) = run(f, |p| to_real(p, &c, &opts));
            assert_eq!(r, Err(XmitError::Drop(want)), "{:?} to_real", c.fwd());
            assert_eq!(out, f);
            if l4_mode {
                let (r, out) = run(f, |p| to_client(p, &c));
                assert_eq!(r, Err(XmitError::Drop(want)), "{:?} to_client", c.fwd());
                assert_eq!(out, f);
            }
        }
    }

    #[test]
    fn malformed_ipv4() {
        let a = v4();
        let base = frame(
            a.client.0,
            a.vip.0,
            64,
            &tcp(a.client.1, a.vip.1, "S", &[]),
            b"abcd",
        );
        let edit = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut v = base.clone();
            f(&mut v);
            refix_ip_csum(&mut v);
            v
        };
        use DropReason::{BadHeader, Unsupported};
        expect_refused(&edit(&|v| v[14] = 0x44), &a, 6, BadHeader, false);
        expect_refused(&edit(&|v| v[14] = 0x40), &a, 6, BadHeader, false);
        expect_refused(&edit(&|v| v[14] = 0x4f), &a, 6, BadHeader, false);
        expect_refused(&edit(&|v| v[14] = 0x55), &a, 6, BadHeader, false);
        expect_refused(&edit(&|v| v[12] = 0x86), &a, 6, BadHeader, false);
        expect_refused(&edit(&|v| v[17] = 19), &a, 6, BadHeader, false);
        expect_refused(&edit(&|v| v[16] = 1), &a, 6, BadHeader, false);
        // Fragments are forwarded: see opts_tests.
        // TCP data offset below 5 and past the segment.
        expect_refused(&edit(&|v| v[34 + 12] = 0x40), &a, 6, BadHeader, true);
        expect_refused(&edit(&|v| v[34 + 12] = 0xf0), &a, 6, BadHeader, true);
        // A segment shorter than a TCP header.
        expect_refused(
            &edit(&|v| {
                v.truncate(34 + 10);
                v[17] = 30;
            }),
            &a,
            6,
            BadHeader,
            true,
        );
        // Real IPv4 options are forwarded by every mode.
        let mut h = Ipv4Header::new(
            24,
            64,
            etherparse::IpNumber::TCP,
            [198, 51, 100, 7],
            [203, 0, 113, 10],
        )
        .unwrap();
        h.options = Ipv4Options::try_from(&[1u8, 1, 1, 0][..]).unwrap();
        h.total_len = (h.header_len() + 24) as u16;
        h.header_checksum = h.calc_header_checksum();
        let mut v = base[..14].to_vec();
        h.write(&mut v).unwrap();
        v.extend_from_slice(&base[34..]);
        for c in conns(&a, 6) {
            let (r, _) = run(&v, |p| to_real(p, &c, &opts_for(&a)));
            assert!(r.is_ok(), "{:?}", c.fwd());
        }
        // UDP lengths.
        let u = frame(
            a.client.0,
            a.vip.0,
            64,
            &L4::Udp(a.client.1, a.vip.1),
            b"abcd",
        );
        let mut bad = u.clone();
        bad[38..40].copy_from_slice(&7u16.to_be_bytes());
        expect_refused(&bad, &a, 17, BadHeader, true);
        bad[38..40].copy_from_slice(&13u16.to_be_bytes());
        expect_refused(&bad, &a, 17, BadHeader, true);
        // ICMP is no job for a port rewrite.
        let p = ip_frame(a.client.0, a.vip.0, 64, 1, &[8, 0, 0xf7, 0xff, 0, 0, 0, 0]);
        expect_refused(&p, &a, 6, Unsupported, true);
    }

    #[test]
    fn malformed_ipv6() {
        let a = v6();
        use DropReason::{BadHeader, Unsupported};
        let base = frame(
            a.client.0,
            a.vip.0,
            64,
            &L4::Udp(a.client.1, a.vip.1),
            b"abcd",
        );
        let mut v = base.clone();
        v[18..20].copy_from_slice(&13u16.to_be_bytes());
        expect_refused(&v, &a, 17, BadHeader, false);
        let mut v = base.clone();
        v[14] = 0x70;
        expect_refused(&v, &a, 17, BadHeader, false);
        let mut v = base.clone();
        v[12..14].copy_from_slice(&[0x08, 0x00]);
        expect_refused(&v, &a, 17, BadHeader, false);
        // Zero UDP checksum is invalid over IPv6.
        let mut v = base.clone();
        v[60] = 0;
        v[61] = 0;
        expect_refused(&v, &a, 17, BadHeader, true);
        // A hop-by-hop header (read from the UDP bytes) longer than the
        // payload.
        let mut v = base.clone();
        v[20] = 0;
        expect_refused(&v, &a, 17, BadHeader, false);
        // A fragment header read from the UDP bytes: a later fragment of
        // protocol 0x9c, no ports to rewrite.
        let mut v = base.clone();
        v[20] = 44;
        expect_refused(&v, &a, 17, Unsupported, true);
    }

    #[test]
    fn corrupted_frames_never_panic() {
        let mut rng = XorShift(0x5eed_1234_abcd_0001);
        for a in [v4(), v6()] {
            let mut frames: Vec<(u8, Vec<u8>)> = valid_frames(&a);
            let quote = frames[0].1[14..].to_vec();
            let t = if a.client.0.is_ipv6() { 1 } else { 3 };
            let mut msg = vec![t, 0, 0, 0, 0, 0, 0, 0];
            msg.extend_from_slice(&quote);
            let p = if a.client.0.is_ipv6() { 58 } else { 1 };
            frames.push((6, ip_frame(a.rs.0, a.lip.0, 64, p, &msg)));
            for (proto, f) in &frames {
                for _ in 0..400 {
                    let mut g = f.clone();
                    for _ in 0..1 + rng.next() % 4 {
                        let at = 12 + rng.next() as usize % (g.len() - 12);
                        g[at] = rng.next() as u8;
                    }
                    let cut = g.len() - (rng.next() as usize % 6);
                    let g = &g[..cut];
                    let _ = run_all(g, &a, *proto);
                    let _ = icmp::inner_tuple(g);
                    let _ = run(g, request_checksum_offload);
                    let mut out = VecPacket::new();
                    let _ = icmp::build_time_exceeded(&mut out, g, a.vip.0);
                }
            }
        }
    }

    #[test]
    fn dispatch_by_forwarding_method() {
        for a in [v4(), v6()] {
            let f = frame(
                a.client.0,
                a.vip.0,
                64,
                &tcp(a.client.1, a.vip.1, "PA", &[]),
                b"x",
            );
            for c in conns(&a, 6) {
                let (r, out) = run(&f, |p| to_real(p, &c, &opts_for(&a)));
                assert_eq!(r, Ok(a.rs.0), "{:?}", c.fwd());
                match c.fwd() {
                    FwdMethod::Tunnel => {
                        assert_eq!(out.len(), f.len() + if a.rs.0.is_ipv4() { 20 } else { 40 })
                    }
                    FwdMethod::DirectRoute => assert_eq!(view(&out).dst(), a.vip.0),
                    FwdMethod::Masq => {
                        assert_eq!((view(&out).src(), view(&out).dst()), (a.client.0, a.rs.0))
                    }
                    _ => assert_eq!((view(&out).src(), view(&out).dst()), (a.lip.0, a.rs.0)),
                }
            }
            let c = conn(FwdMethod::Tunnel, 6, a.client, a.vip, a.rs, None);
            let (r, _) = run(&f, |p| to_real(p, &c, &XmitOpts::default()));
            assert_eq!(r, Err(XmitError::Drop(DropReason::NoRoute)));
            let c = conn(FwdMethod::Local, 6, a.client, a.vip, a.rs, None);
            let (r, _) = run(&f, |p| to_real(p, &c, &XmitOpts::default()));
            assert_eq!(r, Err(XmitError::Drop(DropReason::Unsupported)));
            let c = conn(FwdMethod::DirectRoute, 6, a.client, a.vip, a.rs, None);
            let (r, _) = run(&f, |p| to_client(p, &c));
            assert_eq!(r, Err(XmitError::Drop(DropReason::Unsupported)));
        }
        assert_eq!(
            XmitError::TtlExceeded.drop_reason(),
            DropReason::Unsupported
        );
        assert_eq!(
            XmitError::from(DropReason::NoRoute).drop_reason(),
            DropReason::NoRoute
        );
        assert_eq!(
            XmitError::TooBig { mtu: 1480 }.drop_reason(),
            DropReason::TooBig
        );
        assert_eq!(
            XmitError::TooBig { mtu: 1480 }.to_string(),
            "packet too big, path MTU 1480"
        );
    }

    /// What a NIC does with an offload request, done by hand.
    fn nic(frame: &mut [u8], o: &TxOffload) {
        let l3 = usize::from(o.l2_len);
        let l4 = l3 + usize::from(o.l3_len);
        if o.ip_checksum {
            let c = !fold(ones(&frame[l3..l4]));
            frame[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
        let at = match o.l4 {
            L4Checksum::Tcp => l4 + 16,
            L4Checksum::Udp => l4 + 6,
            L4Checksum::None => return,
        };
        let mut c = !fold(ones(&frame[l4..]));
        if c == 0 && o.l4 == L4Checksum::Udp {
            c = 0xffff;
        }
        frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }

    #[test]
    fn checksum_offload() {
        for a in [v4(), v6()] {
            let c = conn(FwdMethod::FullNat, 6, a.client, a.vip, a.rs, Some(a.lip));
            let opts = [TcpOptionElement::MaximumSegmentSize(1460)];
            let f = frame(
                a.client.0,
                a.vip.0,
                64,
                &tcp(a.client.1, a.vip.1, "S", &opts),
                b"",
            );
            let mut p = VecPacket::from_bytes(&f, 0);
            assert!(fullnat::to_real(&mut p, &c, &XmitOpts::default()).is_ok());
            let done = p.data().to_vec();
            assert_eq!(request_checksum_offload(&mut p), Ok(()));
            let o = p.offload.unwrap();
            let v6 = a.client.0.is_ipv6();
            let l3 = if v6 { 40 } else { 20 };
            assert_eq!(
                o,
                TxOffload {
                    l2_len: 14,
                    l3_len: l3,
                    l4_len: 24,
                    ipv4: !v6,
                    ip_checksum: !v6,
                    l4: L4Checksum::Tcp
                }
            );
            let b = p.data();
            let l4 = 14 + usize::from(l3);
            let ph = pseudo(a.lip.0, a.rs.0, 6, b.len() - l4);
            assert_eq!(&b[l4 + 16..l4 + 18], &fold(ones(&ph)).to_be_bytes());
            if !v6 {
                assert_eq!(&b[24..26], &[0, 0]);
            }
            let mut sent = b.to_vec();
            nic(&mut sent, &o);
            assert_eq!(sent, done);

            // UDP, and IPv4 UDP without a checksum.
            let c = conn(FwdMethod::Masq, 17, a.client, a.vip, a.rs, None);
            let f = frame(
                a.client.0,
                a.vip.0,
                64,
                &L4::Udp(a.client.1, a.vip.1),
                b"hello",
            );
            let mut p = VecPacket::from_bytes(&f, 0);
            assert!(nat::to_real(&mut p, &c, &XmitOpts::default()).is_ok());
            let done = p.data().to_vec();
            request_checksum_offload(&mut p).unwrap();
            let o = p.offload.unwrap();
            assert_eq!((o.l4, o.l4_len), (L4Checksum::Udp, 8));
            let mut sent = p.data().to_vec();
            nic(&mut sent, &o);
            assert_eq!(sent, done);
            if !v6 {
                let mut z = f.clone();
                z[40] = 0;
                z[41] = 0;
                let mut p = VecPacket::from_bytes(&z, 0);
                request_checksum_offload(&mut p).unwrap();
                let o = p.offload.unwrap();
                assert_eq!(o.l4, L4Checksum::None);
                assert_eq!(&p.data()[40..42], &[0, 0]);
                let mut sent = p.data().to_vec();
                nic(&mut sent, &o);
                assert_checksums(&sent, true);
            }
        }
        // A tunnel packet: the outer IPv4 header only.
        let a = v4();
        let c = conn(FwdMethod::Tunnel, 6, a.client, a.vip, a.rs, None);
        let f = frame(a.client.0, a.vip.0, 64, &tcp(1, 2, "A", &[]), b"");
        let mut p = VecPacket::from_bytes(&f, 0);
        assert!(tun::to_real(&mut p, &c, ip("10.0.0.1"), 1500).is_ok());
        let done = p.data().to_vec();
        request_checksum_offload(&mut p).unwrap();
        let o = p.offload.unwrap();
        assert_eq!(
            (o.l4, o.ip_checksum, o.l3_len),
            (L4Checksum::None, true, 20)
        );
        let mut sent = p.data().to_vec();
        nic(&mut sent, &o);
        assert_eq!(sent, done);
    }
}
