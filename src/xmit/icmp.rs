//! ICMP and ICMPv6 errors about a tracked conn (the kernel's ip_vs_in_icmp
//! and ip_vs_out_icmp with ip_vs_nat_icmp), and the errors rvs itself
//! sends: fragmentation needed / packet too big, time exceeded.
//!
//! An error quotes the datagram it is about. [`inner_tuple`] turns the
//! quote into the tuple of the packet that would answer it, which is what
//! the conn table's index holds: an error from the client's side quotes a reply
//! rvs sent (VIP→client), so its tuple is the conn's in-tuple; one from the
//! real server's side quotes a packet rvs sent to the server, so its tuple
//! is the conn's out-tuple. [`to_real`] and [`to_client`] then rewrite the
//! outer header and the quote for the other side, as the kernel does for
//! NAT (and DPVS for FULLNAT), with the quoted IPv4 header checksum and the
//! quoted TCP/UDP checksum (when the quote holds it) updated and the ICMP
//! checksum recomputed. The kernel leaves the quoted L4 checksum stale;
//! updating it makes the quote exactly the packet the other side saw.
//!
//! FULLNAT conns across families (NAT64) have their errors rebuilt in the
//! other family by `nat64::icmp_to_real` / `nat64::icmp_to_client`.
//!
//! Accepted: ICMP destination unreachable and time exceeded; ICMPv6
//! destination unreachable, packet too big, time exceeded and parameter
//! problem. Source quench (deprecated, RFC 6633), redirects and all
//! informational messages are Unsupported: the caller drops and counts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{
    be16, dec_ttl, parse_ip, pseudo_sum, rewrite, set16, ttl_expires, Hdr, Ip, L4Csum, XmitError,
    XmitOpts, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_LEN, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP,
    PROTO_UDP,
};
use crate::counters::DropReason;
use crate::ipvs::seqadj::SeqAdj;
use crate::ipvs::{ConnRef, FwdMethod, Tuple};
use crate::packet::Packet;
use crate::wire::checksum;
use crate::wire::{icmpv4, icmpv6, IpProtocol, Ipv4Packet, Ipv6Packet};

/// Largest error datagram rvs sends: RFC 1812 section 4.3.2.3 for IPv4,
/// the IPv6 minimum MTU for ICMPv6 (RFC 4443 section 2.4 (c)).
const MAX_ERROR_V4: usize = 576;
const MAX_ERROR_V6: usize = 1280;
/// TTL / hop limit of the errors rvs originates.
const ERROR_TTL: u8 = 64;

/// What an ICMP error says, and about which conn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpQuote {
    /// The quoted datagram's tuple reversed: source and destination of a
    /// packet answering it, the form `ConnTable::lookup_in` / `lookup_out`
    /// take.
    pub tuple: Tuple,
    pub msg_type: u8,
    pub code: u8,
    /// Whether the message is ICMPv6.
    pub v6: bool,
}

/// The parts of a validated ICMP error frame.
#[derive(Debug, Clone, Copy)]
pub(super) struct ErrFrame {
    pub(super) outer: Ip,
    /// The quoted header's addresses and ports, and where its checksums are.
    pub(super) inner_hdr: Hdr,
    pub(super) proto: u8,
    pub(super) src: (IpAddr, u16),
    pub(super) dst: (IpAddr, u16),
}

fn accepted(v6: bool, msg_type: u8) -> bool {
    if v6 {
        matches!(
            msg_type,
            icmpv6::DST_UNREACH
                | icmpv6::PACKET_TOO_BIG
                | icmpv6::TIME_EXCEEDED
                | icmpv6::PARAM_PROBLEM
        )
    } else {
        matches!(msg_type, icmpv4::DEST_UNREACH | icmpv4::TIME_EXCEEDED)
    }
}

/// Validates an ICMP error frame down to the quoted ports.
pub(super) fn parse_error(b: &[u8]) -> Result<ErrFrame, DropReason> {
    let outer = parse_ip(b)?;
    let want = if outer.v6 { PROTO_ICMPV6 } else { PROTO_ICMP };
    if outer.proto != want || outer.frag.is_some() {
        return Err(DropReason::Unsupported);
    }
    let end = outer.end;
    let icmp = outer.l4;
    if end < icmp + 8 {
        return Err(DropReason::BadHeader);
    }
    if !accepted(outer.v6, b[icmp]) {
        return Err(DropReason::Unsupported);
    }
    let inner = icmp + 8;
    let quote = &b[inner..end];
    // The quoted header through the views without their length checks
    // (a quote is cut short by design): the fixed fields read are within
    // the bytes checked here.
    let (ihl, proto, src, dst) = if outer.v6 {
        if quote.len() < 40 || quote[0] >> 4 != 6 {
            return Err(DropReason::BadHeader);
        }
        let ip = Ipv6Packet::new_unchecked(quote);
        let (s, d) = (IpAddr::V6(ip.src_addr()), IpAddr::V6(ip.dst_addr()));
        (40, ip.next_header().0, s, d)
    } else {
        if quote.len() < 20 || quote[0] >> 4 != 4 {
            return Err(DropReason::BadHeader);
        }
        let ip = Ipv4Packet::new_unchecked(quote);
        let ihl = ip.header_len();
        if ihl < 20 || quote.len() < ihl {
            return Err(DropReason::BadHeader);
        }
        // A later fragment carries no ports to find the conn by.
        if ip.frag_offset() != 0 {
            return Err(DropReason::Unsupported);
        }
        let (s, d) = (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()));
        (ihl, ip.protocol().0, s, d)
    };
    if proto != PROTO_TCP && proto != PROTO_UDP && proto != super::PROTO_SCTP {
        return Err(DropReason::Unsupported);
    }
    let l4 = inner + ihl;
    if end < l4 + 4 {
        return Err(DropReason::BadHeader);
    }
    let csum = match proto {
        PROTO_TCP if end >= l4 + 18 => Some(L4Csum {
            at: l4 + 16,
            udp: false,
        }),
        PROTO_UDP if end >= l4 + 8 => Some(L4Csum {
            at: l4 + 6,
            udp: true,
        }),
        _ => None,
    };
    Ok(ErrFrame {
        outer,
        inner_hdr: Hdr {
            ip_off: inner,
            v6: outer.v6,
            ports: Some(l4),
            csum,
        },
        proto,
        src: (src, be16(b, l4)),
        dst: (dst, be16(b, l4 + 2)),
    })
}

/// The conn an ICMP error is about, from its quote; None for anything that
/// is not an error rvs relays or whose quote is too short to name a TCP or
/// UDP (or SCTP) conn.
pub fn inner_tuple(frame: &[u8]) -> Option<IcmpQuote> {
    let e = parse_error(frame).ok()?;
    Some(IcmpQuote {
        tuple: Tuple {
            proto: e.proto,
            saddr: e.dst.0,
            sport: e.dst.1,
            daddr: e.src.0,
            dport: e.src.1,
        },
        msg_type: frame[e.outer.l4],
        code: frame[e.outer.l4 + 1],
        v6: e.outer.v6,
    })
}

pub(super) fn icmp_sum(b: &[u8], e: &ErrFrame) -> u32 {
    let msg = &b[e.outer.l4..e.outer.end];
    let s = checksum::sum(msg);
    if e.outer.v6 {
        s + pseudo_sum(b, &e.outer, PROTO_ICMPV6, msg.len() as u32)
    } else {
        s
    }
}

/// The checks every relay does before touching the frame: a valid error,
/// addresses of one family with the conn, the conn's protocol, a correct
/// ICMP checksum (it is recomputed from scratch afterwards, which would
/// otherwise launder a corrupt message) and a TTL that survives the hop.
fn check(b: &[u8], conn: &ConnRef<'_>) -> Result<ErrFrame, XmitError> {
    let e = parse_error(b)?;
    let v6 = e.outer.v6;
    let same = [conn.caddr(), conn.vaddr(), conn.daddr(), conn.laddr()]
        .iter()
        .all(|a| a.is_ipv6() == v6);
    if !same || e.proto != conn.proto() {
        return Err(XmitError::Drop(DropReason::Unsupported));
    }
    if checksum::fold(icmp_sum(b, &e)) != 0xffff {
        return Err(XmitError::Drop(DropReason::BadHeader));
    }
    if ttl_expires(b, &e.outer) {
        return Err(XmitError::TtlExceeded);
    }
    Ok(e)
}

fn relay(
    b: &mut [u8],
    e: &ErrFrame,
    outer_src: Option<IpAddr>,
    outer_dst: Option<IpAddr>,
    inner_src: Option<(IpAddr, u16)>,
    inner_dst: Option<(IpAddr, u16)>,
) {
    dec_ttl(b, &e.outer);
    let outer = Hdr {
        ip_off: ETH_LEN,
        v6: e.outer.v6,
        ports: None,
        csum: None,
    };
    rewrite(
        b,
        &outer,
        outer_src.map(|a| (a, 0)),
        outer_dst.map(|a| (a, 0)),
    );
    rewrite(b, &e.inner_hdr, inner_src, inner_dst);
    let at = e.outer.l4 + 2;
    set16(b, at, 0);
    let c = !checksum::fold(icmp_sum(b, e));
    set16(b, at, c);
}

/// An error from the client's side about a reply of the conn, on to the
/// real server. NAT: destination VIP → RIP, quote's source VIP:vport →
/// RIP:rport. FULLNAT: also source → LIP and the quote's destination
/// CIP:cport → LIP:lport, since the server knows only the LIP. DR and TUN
/// forward the message as it is, the way they forward the conn's packets
/// (ip_vs_icmp_xmit).
pub fn to_real<P: Packet>(
    pkt: &mut P,
    conn: &ConnRef<'_>,
    opts: &XmitOpts,
) -> Result<IpAddr, XmitError> {
    let rs = conn.daddr();
    let rport = conn.dport();
    match conn.fwd() {
        FwdMethod::Masq => {
            let e = check(pkt.data(), conn)?;
            trim(pkt, &e);
            relay(pkt.data_mut(), &e, None, Some(rs), Some((rs, rport)), None);
            Ok(rs)
        }
        FwdMethod::FullNat if super::nat64::is_nat64(conn) => super::nat64::icmp_to_real(pkt, conn),
        FwdMethod::FullNat => {
            let e = check(pkt.data(), conn)?;
            let lip = conn.laddr();
            trim(pkt, &e);
            relay(
                pkt.data_mut(),
                &e,
                Some(lip),
                Some(rs),
                Some((rs, rport)),
                Some((lip, conn.lport())),
            );
            Ok(rs)
        }
        FwdMethod::DirectRoute => super::dr::to_real(pkt, conn, opts.mtu),
        FwdMethod::Tunnel => match opts.tunnel_src {
            Some(src) => super::tun::to_real(pkt, conn, src, opts.mtu),
            None => Err(XmitError::Drop(DropReason::NoRoute)),
        },
        FwdMethod::Local => Err(XmitError::Drop(DropReason::Unsupported)),
    }
}

/// An error from the real server's side about a packet of the conn, on to
/// the client. NAT: source → VIP, quote's destination RIP:rport →
/// VIP:vport. FULLNAT: also destination LIP → CIP and the quote's source
/// LIP:lport → CIP:cport, so the quote is the client's own packet.
pub fn to_client<P: Packet>(pkt: &mut P, conn: &ConnRef<'_>) -> Result<IpAddr, XmitError> {
    let client = conn.caddr();
    let vip = (conn.vaddr(), conn.vport());
    match conn.fwd() {
        FwdMethod::Masq => {
            let e = check(pkt.data(), conn)?;
            trim(pkt, &e);
            relay(pkt.data_mut(), &e, Some(vip.0), None, None, Some(vip));
            Ok(client)
        }
        FwdMethod::FullNat if super::nat64::is_nat64(conn) => {
            super::nat64::icmp_to_client(pkt, conn)
        }
        FwdMethod::FullNat => {
            let e = check(pkt.data(), conn)?;
            trim(pkt, &e);
            relay(
                pkt.data_mut(),
                &e,
                Some(vip.0),
                Some(client),
                Some((client, conn.cport())),
                Some(vip),
            );
            Ok(client)
        }
        _ => Err(XmitError::Drop(DropReason::Unsupported)),
    }
}

/// Moves the sequence number of a TCP quote into the other side's space
/// after `to_real` (`towards_client` false: the quote is a reply the
/// client saw, now in the real server's numbers) or `to_client` (true: a
/// segment the server saw, now in the client's), for a conn whose sides
/// count differently: the receiving kernel matches the quoted number
/// against what it sent (tcp_v4_err) and ignores an error that does not
/// fit, which would leave path MTU discovery deaf.
pub fn adjust_quoted_seq<P: Packet>(pkt: &mut P, adj: &SeqAdj, towards_client: bool) {
    let Ok(e) = parse_error(pkt.data()) else {
        return;
    };
    let Some(ports) = e.inner_hdr.ports else {
        return;
    };
    if e.proto != PROTO_TCP || ports + 8 > e.outer.end {
        return;
    }
    let b = pkt.data_mut();
    let at = ports + 4;
    let seq = u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let new = if towards_client {
        adj.server_ack_to_client(seq)
    } else {
        seq.wrapping_add(adj.s_delta)
    };
    if new == seq {
        return;
    }
    b[at..at + 4].copy_from_slice(&new.to_be_bytes());
    if let Some(c) = e.inner_hdr.csum.filter(|c| c.at + 2 <= e.outer.end) {
        let v = checksum::update_u32(be16(b, c.at), seq, new);
        set16(b, c.at, v);
    }
    let at = e.outer.l4 + 2;
    set16(b, at, 0);
    let c = !checksum::fold(icmp_sum(b, &e));
    set16(b, at, c);
}

fn trim<P: Packet>(pkt: &mut P, e: &ErrFrame) {
    super::trim_padding(pkt, &e.outer);
}

// ---- errors rvs originates ----

/// The datagram an error would quote.
struct Orig {
    v6: bool,
    src: IpAddr,
    /// The IP datagram (from its header on), cut at its length.
    bytes: std::ops::Range<usize>,
}

/// RFC 1122 3.2.2 and RFC 4443 2.4 (e): no error about an error, about a
/// later fragment, or to a source that names no single host.
fn quotable(orig: &[u8]) -> Option<Orig> {
    if orig.len() < ETH_LEN + 20 {
        return None;
    }
    // Read through the views without their length checks: the datagram
    // quoted may be cut short (its length is the frame's where shorter),
    // and the fixed fields read here are in the 20 bytes checked above
    // (IPv6's 40, checked below).
    let ip = &orig[ETH_LEN..];
    match ip[0] >> 4 {
        4 => {
            let v4 = Ipv4Packet::new_unchecked(ip);
            let ihl = v4.header_len();
            let total = usize::from(v4.total_len()).min(ip.len());
            if ihl < 20 || total < ihl {
                return None;
            }
            if v4.frag_offset() != 0 {
                return None;
            }
            let src = v4.src_addr();
            if src.is_unspecified() || src.is_broadcast() || src.is_multicast() || src.is_loopback()
            {
                return None;
            }
            if v4.protocol() == IpProtocol::ICMP {
                let t = *ip.get(ihl)?;
                if !matches!(t, icmpv4::ECHO_REPLY | icmpv4::ECHO_REQUEST | 13..=18) {
                    return None;
                }
            }
            Some(Orig {
                v6: false,
                src: IpAddr::V4(src),
                bytes: ETH_LEN..ETH_LEN + total,
            })
        }
        6 => {
            if ip.len() < 40 {
                return None;
            }
            let v6 = Ipv6Packet::new_unchecked(ip);
            let total = (40 + usize::from(v6.payload_len())).min(ip.len());
            let src = v6.src_addr();
            if src.is_unspecified() || src.is_multicast() || src.is_loopback() {
                return None;
            }
            if v6.next_header() == IpProtocol::ICMPV6 {
                let t = *ip.get(40)?;
                if t < 128 {
                    return None;
                }
            }
            Some(Orig {
                v6: true,
                src: IpAddr::V6(src),
                bytes: ETH_LEN..ETH_LEN + total,
            })
        }
        _ => None,
    }
}

/// Builds an ICMP or ICMPv6 error about the frame `orig` into `out`
/// (resized; 14 bytes left in front for Ethernet), from `src` to the
/// original sender, quoting as much of the original datagram as fits the
/// size limits. Returns the address to route to.
fn build<P: Packet>(
    out: &mut P,
    orig: &[u8],
    src: IpAddr,
    msg_type: u8,
    code: u8,
    rest: u32,
) -> Result<IpAddr, DropReason> {
    let o = quotable(orig).ok_or(DropReason::Unsupported)?;
    if o.v6 != src.is_ipv6() {
        return Err(DropReason::Unsupported);
    }
    let (hl, max) = if o.v6 {
        (40, MAX_ERROR_V6)
    } else {
        (20, MAX_ERROR_V4)
    };
    let quote_len = o.bytes.len().min(max - hl - 8);
    let total = hl + 8 + quote_len;
    if !out.set_len(ETH_LEN + total) {
        return Err(DropReason::NoBuffer);
    }
    let b = out.data_mut();
    b[..ETH_LEN].fill(0);
    let icmp = ETH_LEN + hl;
    b[icmp] = msg_type;
    b[icmp + 1] = code;
    set16(b, icmp + 2, 0);
    b[icmp + 4..icmp + 8].copy_from_slice(&rest.to_be_bytes());
    b[icmp + 8..icmp + 8 + quote_len]
        .copy_from_slice(&orig[o.bytes.start..o.bytes.start + quote_len]);
    let ip = Ip {
        v6: o.v6,
        l4: icmp,
        end: ETH_LEN + total,
        proto: if o.v6 { PROTO_ICMPV6 } else { PROTO_ICMP },
        frag: None,
    };
    match (src, o.src) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            set16(b, 12, ETHERTYPE_IPV4);
            write_v4(b, s, d, total as u16);
            let c = checksum::checksum(&b[icmp..ETH_LEN + total]);
            set16(b, icmp + 2, c);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            set16(b, 12, ETHERTYPE_IPV6);
            write_v6(b, s, d, (total - 40) as u16);
            let msg = checksum::sum(&b[icmp..ETH_LEN + total]);
            let ph = pseudo_sum(b, &ip, PROTO_ICMPV6, (total - 40) as u32);
            set16(b, icmp + 2, !checksum::fold(ph + msg));
        }
        _ => return Err(DropReason::Unsupported),
    }
    Ok(o.src)
}

fn write_v4(b: &mut [u8], s: Ipv4Addr, d: Ipv4Addr, total: u16) {
    let o = ETH_LEN;
    b[o] = 0x45;
    // Precedence "internetwork control", as Linux marks its ICMP errors.
    b[o + 1] = 0xc0;
    set16(b, o + 2, total);
    set16(b, o + 4, 0);
    set16(b, o + 6, 0);
    b[o + 8] = ERROR_TTL;
    b[o + 9] = PROTO_ICMP;
    set16(b, o + 10, 0);
    b[o + 12..o + 16].copy_from_slice(&s.octets());
    b[o + 16..o + 20].copy_from_slice(&d.octets());
    let c = checksum::checksum(&b[o..o + 20]);
    set16(b, o + 10, c);
}

fn write_v6(b: &mut [u8], s: Ipv6Addr, d: Ipv6Addr, payload: u16) {
    let o = ETH_LEN;
    b[o..o + 4].copy_from_slice(&0x6000_0000u32.to_be_bytes());
    set16(b, o + 4, payload);
    b[o + 6] = PROTO_ICMPV6;
    b[o + 7] = ERROR_TTL;
    b[o + 8..o + 24].copy_from_slice(&s.octets());
    b[o + 24..o + 40].copy_from_slice(&d.octets());
}

/// ICMP destination unreachable, fragmentation needed (RFC 792, next-hop
/// MTU of RFC 1191) about the IPv4 frame `orig`, from `src`.
pub fn build_frag_needed<P: Packet>(
    out: &mut P,
    orig: &[u8],
    src: Ipv4Addr,
    mtu: u16,
) -> Result<IpAddr, DropReason> {
    build(
        out,
        orig,
        IpAddr::V4(src),
        icmpv4::DEST_UNREACH,
        icmpv4::CODE_FRAG_NEEDED,
        u32::from(mtu),
    )
}

/// ICMPv6 packet too big (RFC 4443 3.2) about the IPv6 frame `orig`.
pub fn build_too_big<P: Packet>(
    out: &mut P,
    orig: &[u8],
    src: Ipv6Addr,
    mtu: u32,
) -> Result<IpAddr, DropReason> {
    build(out, orig, IpAddr::V6(src), icmpv6::PACKET_TOO_BIG, 0, mtu)
}

/// ICMP time exceeded in transit / ICMPv6 hop limit exceeded about `orig`.
pub fn build_time_exceeded<P: Packet>(
    out: &mut P,
    orig: &[u8],
    src: IpAddr,
) -> Result<IpAddr, DropReason> {
    let t = if src.is_ipv6() {
        icmpv6::TIME_EXCEEDED
    } else {
        icmpv4::TIME_EXCEEDED
    };
    build(out, orig, src, t, 0, 0)
}

/// The error a failed rewrite asks for: time exceeded for `TtlExceeded`,
/// need-frag / too-big for `TooBig`, nothing (Unsupported) for a drop.
/// `src` is the address the error comes from, usually the address the
/// original packet was sent to (the VIP or LIP).
pub fn build_for<P: Packet>(
    out: &mut P,
    orig: &[u8],
    err: XmitError,
    src: IpAddr,
) -> Result<IpAddr, DropReason> {
    match (err, src) {
        (XmitError::TtlExceeded, _) => build_time_exceeded(out, orig, src),
        (XmitError::TooBig { mtu }, IpAddr::V4(s)) => build_frag_needed(out, orig, s, mtu),
        (XmitError::TooBig { mtu }, IpAddr::V6(s)) => build_too_big(out, orig, s, u32::from(mtu)),
        (XmitError::Drop(_), _) => Err(DropReason::Unsupported),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::VecPacket;
    use crate::xmit::testkit::*;
    use etherparse::{icmpv4, Icmpv4Slice, Icmpv4Type, Icmpv6Slice, Icmpv6Type, PacketHeaders};

    /// An ICMP(v6) error src→dst quoting `quote`, checksum filled in
    /// independently.
    fn error_frame(src: IpAddr, dst: IpAddr, t: u8, code: u8, rest: u32, quote: &[u8]) -> Vec<u8> {
        let mut msg = vec![t, code, 0, 0];
        msg.extend_from_slice(&rest.to_be_bytes());
        msg.extend_from_slice(quote);
        let c = if src.is_ipv6() {
            !fold(ones(&pseudo(src, dst, 58, msg.len())) + ones(&msg))
        } else {
            !fold(ones(&msg))
        };
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        ip_frame(src, dst, 64, if src.is_ipv6() { 58 } else { 1 }, &msg)
    }

    fn unreach(v6: bool) -> (u8, u8) {
        if v6 {
            (1, 4)
        } else {
            (3, 3)
        }
    }

    fn outer_len(v6: bool) -> usize {
        if v6 {
            40
        } else {
            20
        }
    }

    /// Quote lengths to try: the whole datagram, header + 8 bytes (RFC 792,
    /// TCP checksum not quoted) and header + 18 (TCP checksum quoted).
    fn cuts(v6: bool, full: usize) -> [usize; 3] {
        let h = outer_len(v6);
        [full, h + 8, h + 18]
    }

    fn check_relayed(out: &[u8], src: IpAddr, dst: IpAddr, t: u8, code: u8, want_quote: &[u8]) {
        assert_checksums(out, false);
        let v = view(out);
        assert_eq!((v.src(), v.dst()), (src, dst));
        assert_eq!(v.ttl(), 63);
        let ol = outer_len(src.is_ipv6());
        let icmp = &out[14 + ol..];
        assert_eq!((icmp[0], icmp[1]), (t, code));
        assert_eq!(&icmp[8..], want_quote);
    }

    #[test]
    fn fullnat_error_from_real_server_reaches_client() {
        for a in [v4(), v6()] {
            let v6 = a.client.0.is_ipv6();
            let c = conn(FwdMethod::FullNat, 6, a.client, a.vip, a.rs, Some(a.lip));
            let seg = tcp(a.client.1, a.vip.1, "PA", &[]);
            let p0 = frame(a.client.0, a.vip.0, 64, &seg, b"some request bytes");
            let (_, p1) = run(&p0, |p| {
                crate::xmit::fullnat::to_real(p, &c, &XmitOpts::default())
            });
            // What the client would have sent had it had TTL 63: the quote
            // must come back as exactly that.
            let want = frame(a.client.0, a.vip.0, 63, &seg, b"some request bytes");
            for cut in cuts(v6, p1.len() - 14) {
                let (t, code) = unreach(v6);
                let e = error_frame(a.rs.0, a.lip.0, t, code, 0, &p1[14..14 + cut]);
                let q = inner_tuple(&e).unwrap();
                assert_eq!(
                    q.tuple,
                    Tuple {
                        proto: 6,
                        saddr: a.rs.0,
                        sport: a.rs.1,
                        daddr: a.lip.0,
                        dport: a.lip.1
                    }
                );
                assert_eq!((q.msg_type, q.code, q.v6), (t, code, v6));
                let (r, out) = run(&e, |p| to_client(p, &c));
                assert_eq!(r, Ok(a.client.0));
                check_relayed(&out, a.vip.0, a.client.0, t, code, &want[14..14 + cut]);
            }
        }
    }

    #[test]
    fn fullnat_error_from_client_side_reaches_real_server() {
        for a in [v4(), v6()] {
            let v6 = a.client.0.is_ipv6();
            let c = conn(FwdMethod::FullNat, 17, a.client, a.vip, a.rs, Some(a.lip));
            let seg = L4::Udp(a.rs.1, a.lip.1);
            let p1 = frame(a.rs.0, a.lip.0, 64, &seg, b"reply");
            let (_, p2) = run(&p1, |p| crate::xmit::fullnat::to_client(p, &c, 1500));
            let want = frame(a.rs.0, a.lip.0, 63, &seg, b"reply");
            let router = if v6 {
                ip("2001:db8:99::1")
            } else {
                ip("192.0.2.99")
            };
            for cut in [p2.len() - 14, outer_len(v6) + 8] {
                let t = if v6 { 3 } else { 11 };
                let e = error_frame(router, a.vip.0, t, 0, 0, &p2[14..14 + cut]);
                let q = inner_tuple(&e).unwrap();
                assert_eq!(
                    q.tuple,
                    Tuple {
                        proto: 17,
                        saddr: a.client.0,
                        sport: a.client.1,
                        daddr: a.vip.0,
                        dport: a.vip.1
                    }
                );
                let (r, out) = run(&e, |p| to_real(p, &c, &XmitOpts::default()));
                assert_eq!(r, Ok(a.rs.0));
                check_relayed(&out, a.lip.0, a.rs.0, t, 0, &want[14..14 + cut]);
            }
        }
    }

    #[test]
    fn nat_errors_both_ways() {
        for a in [v4(), v6()] {
            let v6 = a.client.0.is_ipv6();
            let c = conn(FwdMethod::Masq, 6, a.client, a.vip, a.rs, None);
            // From the real server about the client's (DNATed) SYN.
            let seg = tcp(a.client.1, a.vip.1, "S", &syn_opts());
            let p0 = frame(a.client.0, a.vip.0, 64, &seg, b"");
            let (_, p1) = run(&p0, |p| {
                crate::xmit::nat::to_real(p, &c, &XmitOpts::default())
            });
            let want = frame(a.client.0, a.vip.0, 63, &seg, b"");
            let (t, code) = unreach(v6);
            let e = error_frame(a.rs.0, a.client.0, t, code, 0, &p1[14..]);
            assert_eq!(inner_tuple(&e).unwrap().tuple.saddr, a.rs.0);
            let (r, out) = run(&e, |p| to_client(p, &c));
            assert_eq!(r, Ok(a.client.0));
            check_relayed(&out, a.vip.0, a.client.0, t, code, &want[14..]);

            // From a router on the client's side about a reply.
            let seg = tcp(a.rs.1, a.client.1, "SA", &[]);
            let p1 = frame(a.rs.0, a.client.0, 64, &seg, b"");
            let (_, p2) = run(&p1, |p| crate::xmit::nat::to_client(p, &c, 1500));
            let want = frame(a.rs.0, a.client.0, 63, &seg, b"");
            let router = if v6 {
                ip("2001:db8:99::1")
            } else {
                ip("192.0.2.99")
            };
            let (t, code) = if v6 { (2, 0) } else { (3, 4) };
            let e = error_frame(router, a.vip.0, t, code, 1400, &p2[14..]);
            let (r, out) = run(&e, |p| to_real(p, &c, &XmitOpts::default()));
            assert_eq!(r, Ok(a.rs.0));
            check_relayed(&out, router, a.rs.0, t, code, &want[14..]);
            let ol = outer_len(v6);
            assert_eq!(&out[14 + ol + 4..14 + ol + 8], &1400u32.to_be_bytes());
        }
    }

    #[test]
    fn dr_and_tun_forward_the_error_as_is() {
        let a = v4();
        let router = ip("192.0.2.99");
        let quote = frame(
            a.vip.0,
            a.client.0,
            60,
            &tcp(a.vip.1, a.client.1, "A", &[]),
            b"",
        );
        let e = error_frame(router, a.vip.0, 3, 1, 0, &quote[14..]);
        let c = conn(
            FwdMethod::DirectRoute,
            6,
            a.client,
            a.vip,
            (a.rs.0, a.vip.1),
            None,
        );
        let (r, out) = run(&e, |p| to_real(p, &c, &XmitOpts::default()));
        assert_eq!(r, Ok(a.rs.0));
        let mut want = view(&e);
        want.set_ttl(63);
        assert_eq!(view(&out), want);
        assert_checksums(&out, false);
        let c = conn(
            FwdMethod::Tunnel,
            6,
            a.client,
            a.vip,
            (a.rs.0, a.vip.1),
            None,
        );
        let (r, _) = run(&e, |p| to_real(p, &c, &XmitOpts::default()));
        assert_eq!(r, Err(XmitError::Drop(DropReason::NoRoute)));
        let opts = XmitOpts {
            tunnel_src: Some(ip("10.0.0.1")),
            ..XmitOpts::default()
        };
        let (r, out) = run(&e, |p| to_real(p, &c, &opts));
        assert_eq!(r, Ok(a.rs.0));
        assert_eq!(out.len(), e.len() + 20);
        assert_eq!(out[14 + 9], 4);
        // Neither sees the server's replies.
        let (r, _) = run(&e, |p| to_client(p, &c));
        assert_eq!(r, Err(XmitError::Drop(DropReason::Unsupported)));
    }

    #[test]
    fn refused_errors() {
        let a = v4();
        let c = conn(FwdMethod::FullNat, 6, a.client, a.vip, a.rs, Some(a.lip));
        let p1 = frame(a.lip.0, a.rs.0, 64, &tcp(a.lip.1, a.rs.1, "A", &[]), b"");
        let good = error_frame(a.rs.0, a.lip.0, 3, 3, 0, &p1[14..]);
        assert!(run(&good, |p| to_client(p, &c)).0.is_ok());
        // Bad ICMP checksum.
        let mut bad = good.clone();
        bad[14 + 20 + 2] ^= 1;
        let (r, out) = run(&bad, |p| to_client(p, &c));
        assert_eq!(r, Err(XmitError::Drop(DropReason::BadHeader)));
        assert_eq!(out, bad);
        // TTL 1.
        let mut t1 = good.clone();
        t1[22] = 1;
        t1[24] = 0;
        t1[25] = 0;
        let ck = !fold(ones(&t1[14..34]));
        t1[24..26].copy_from_slice(&ck.to_be_bytes());
        let (r, out) = run(&t1, |p| to_client(p, &c));
        assert_eq!(r, Err(XmitError::TtlExceeded));
        assert_eq!(out, t1);
        // Echo, redirect and source quench are not relayed.
        for t in [0u8, 8, 5, 4, 12] {
            let e = error_frame(a.rs.0, a.lip.0, t, 0, 0, &p1[14..]);
            assert!(inner_tuple(&e).is_none(), "type {t}");
            let (r, _) = run(&e, |p| to_client(p, &c));
            assert_eq!(r, Err(XmitError::Drop(DropReason::Unsupported)));
        }
        let b = v6();
        let p1 = frame(b.lip.0, b.rs.0, 64, &tcp(1, 2, "A", &[]), b"");
        for t in [128u8, 129, 135, 137] {
            let e = error_frame(b.rs.0, b.lip.0, t, 0, 0, &p1[14..]);
            assert!(inner_tuple(&e).is_none(), "type {t}");
        }
        // Quote without ports, of ICMP, of a later fragment.
        let e = error_frame(a.rs.0, a.lip.0, 3, 3, 0, &p1[14..14 + 22]);
        assert!(inner_tuple(&e).is_none());
        let ping = ip_frame(a.lip.0, a.rs.0, 64, 1, &[8, 0, 0xf7, 0xff, 0, 0, 0, 0]);
        let e = error_frame(a.rs.0, a.lip.0, 3, 3, 0, &ping[14..]);
        assert!(inner_tuple(&e).is_none());
        let mut frag = frame(a.lip.0, a.rs.0, 64, &tcp(1, 2, "A", &[]), b"")[14..].to_vec();
        frag[7] = 1;
        let e = error_frame(a.rs.0, a.lip.0, 3, 3, 0, &frag);
        assert!(inner_tuple(&e).is_none());
        // Conn of another protocol.
        let cu = conn(FwdMethod::FullNat, 17, a.client, a.vip, a.rs, Some(a.lip));
        let (r, _) = run(&good, |p| to_client(p, &cu));
        assert_eq!(r, Err(XmitError::Drop(DropReason::Unsupported)));
    }

    #[test]
    fn relay_never_panics_on_truncation() {
        for a in [v4(), v6()] {
            let c = conn(FwdMethod::FullNat, 6, a.client, a.vip, a.rs, Some(a.lip));
            let p1 = frame(a.lip.0, a.rs.0, 64, &tcp(a.lip.1, a.rs.1, "A", &[]), b"xyz");
            let (t, code) = unreach(a.client.0.is_ipv6());
            let e = error_frame(a.rs.0, a.lip.0, t, code, 0, &p1[14..]);
            for n in 0..e.len() {
                let cut = &e[..n];
                let _ = inner_tuple(cut);
                let (r, out) = run(cut, |p| to_client(p, &c));
                assert!(r.is_err(), "len {n}");
                assert_eq!(out, cut);
                let (r, _) = run(cut, |p| to_real(p, &c, &XmitOpts::default()));
                assert!(r.is_err());
            }
        }
    }

    fn big_frame(a: &Addrs, df: bool) -> Vec<u8> {
        let mut f = frame(
            a.client.0,
            a.vip.0,
            64,
            &tcp(a.client.1, a.vip.1, "PA", &[]),
            &[0x5a; 1460],
        );
        if !df && a.client.0.is_ipv4() {
            f[20] &= !0x40;
        }
        f
    }

    #[test]
    fn a_quoted_segment_moves_into_the_other_sides_sequence_space() {
        let a = v4();
        let src = match a.vip.0 {
            IpAddr::V4(s) => s,
            _ => unreachable!(),
        };
        // big_frame's segment has seq 0x11223344 (testkit's tcp()).
        let orig = big_frame(&a, true);
        let adj = SeqAdj {
            ins_at: 0x1122_3300,
            ins_len: 0x40,
            s_delta: 0x100,
            ..SeqAdj::default()
        };
        for (towards_client, want) in [(true, 0x1122_3304u32), (false, 0x1122_3444)] {
            let mut out = VecPacket::new();
            build_frag_needed(&mut out, &orig, src, 1480).unwrap();
            adjust_quoted_seq(&mut out, &adj, towards_client);
            let b = out.data();
            // The ICMP checksum still holds; the quote's seq moved.
            assert_eq!(fold(ones(&b[34..])), 0xffff);
            let q = 42 + 20;
            assert_eq!(
                u32::from_be_bytes([b[q + 4], b[q + 5], b[q + 6], b[q + 7]]),
                want
            );
            // The quoted TCP checksum moved with it: summed with the
            // whole segment it would still verify (RFC 1624).
            let old = u32::from_be_bytes([orig[38], orig[39], orig[40], orig[41]]);
            let c_old = u16::from_be_bytes([orig[50], orig[51]]);
            let c_new = u16::from_be_bytes([b[q + 16], b[q + 17]]);
            let delta = |v: u32| (v >> 16) + (v & 0xffff);
            assert_eq!(fold(u32::from(!c_old) + delta(!old) + delta(want)), !c_new);
        }
    }

    #[test]
    fn frag_needed_quotes_the_datagram() {
        let a = v4();
        let orig = big_frame(&a, true);
        let src = match a.vip.0 {
            IpAddr::V4(s) => s,
            _ => unreachable!(),
        };
        let mut out = VecPacket::new();
        let r = build_frag_needed(&mut out, &orig, src, 1480);
        assert_eq!(r, Ok(a.client.0));
        let b = out.data();
        assert_eq!(b.len(), 14 + 576);
        assert_eq!(&b[12..14], &[0x08, 0x00]);
        assert_checksums(b, false);
        let p = PacketHeaders::from_ethernet_slice(b).unwrap();
        let net = p.net.unwrap();
        let h = net.ipv4_ref().unwrap().0;
        assert_eq!(IpAddr::from(h.source), a.vip.0);
        assert_eq!(IpAddr::from(h.destination), a.client.0);
        assert_eq!(h.protocol.0, 1);
        assert_eq!(h.total_len, 576);
        let icmp = Icmpv4Slice::from_slice(&b[34..]).unwrap();
        assert_eq!(
            icmp.icmp_type(),
            Icmpv4Type::DestinationUnreachable(
                icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1480 }
            )
        );
        assert_eq!(&b[42..], &orig[14..14 + 548]);
        // A small datagram is quoted whole.
        let small = frame(a.client.0, a.vip.0, 1, &L4::Udp(1, 2), b"hi");
        let r = build_time_exceeded(&mut out, &small, a.vip.0);
        assert_eq!(r, Ok(a.client.0));
        let b = out.data();
        assert_checksums(b, false);
        assert_eq!(&b[42..], &small[14..]);
        let icmp = Icmpv4Slice::from_slice(&b[34..]).unwrap();
        assert_eq!(
            icmp.icmp_type(),
            Icmpv4Type::TimeExceeded(icmpv4::TimeExceededCode::TtlExceededInTransit)
        );
    }

    #[test]
    fn too_big_and_hop_limit_v6() {
        let a = v6();
        let orig = big_frame(&a, true);
        let src = match a.vip.0 {
            IpAddr::V6(s) => s,
            _ => unreachable!(),
        };
        let mut out = VecPacket::new();
        let r = build_too_big(&mut out, &orig, src, 1460);
        assert_eq!(r, Ok(a.client.0));
        let b = out.data();
        assert_eq!(b.len(), 14 + 1280);
        assert_eq!(&b[12..14], &[0x86, 0xdd]);
        assert_checksums(b, false);
        let icmp = Icmpv6Slice::from_slice(&b[54..]).unwrap();
        assert_eq!(icmp.icmp_type(), Icmpv6Type::PacketTooBig { mtu: 1460 });
        assert!(icmp.is_checksum_valid(
            src.octets(),
            match a.client.0 {
                IpAddr::V6(c) => c.octets(),
                _ => unreachable!(),
            }
        ));
        assert_eq!(&b[62..], &orig[14..14 + 1232]);
        let r = build_for(&mut out, &orig, XmitError::TtlExceeded, a.vip.0);
        assert_eq!(r, Ok(a.client.0));
        let icmp = Icmpv6Slice::from_slice(&out.data()[54..]).unwrap();
        assert_eq!(
            icmp.icmp_type(),
            Icmpv6Type::TimeExceeded(etherparse::icmpv6::TimeExceededCode::HopLimitExceeded)
        );
        assert_checksums(out.data(), false);
    }

    #[test]
    fn tun_too_big_answer_end_to_end() {
        for a in [v4(), v6()] {
            let c = conn(
                FwdMethod::Tunnel,
                6,
                a.client,
                a.vip,
                (a.rs.0, a.vip.1),
                None,
            );
            let orig = big_frame(&a, true);
            let local = if a.rs.0.is_ipv4() {
                ip("10.0.0.1")
            } else {
                ip("fd00::1")
            };
            let (r, same) = run(&orig, |p| crate::xmit::tun::to_real(p, &c, local, 1500));
            let err = r.unwrap_err();
            let mtu = if a.rs.0.is_ipv4() { 1480 } else { 1460 };
            assert_eq!(err, XmitError::TooBig { mtu });
            let mut out = VecPacket::new();
            assert_eq!(build_for(&mut out, &same, err, a.vip.0), Ok(a.client.0));
            let b = out.data();
            assert_checksums(b, false);
            let ol = outer_len(a.client.0.is_ipv6());
            let rest = &b[14 + ol + 4..14 + ol + 8];
            assert_eq!(
                u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) & 0xffff,
                u32::from(mtu)
            );
        }
    }

    #[test]
    fn no_error_about_errors_or_odd_sources() {
        let a = v4();
        let mut out = VecPacket::new();
        let e = error_frame(ip("192.0.2.1"), a.vip.0, 3, 3, 0, &[0x45; 28]);
        assert_eq!(
            build_time_exceeded(&mut out, &e, a.vip.0),
            Err(DropReason::Unsupported)
        );
        let echo = ip_frame(a.client.0, a.vip.0, 1, 1, &[8, 0, 0xf7, 0xff, 0, 0, 0, 0]);
        assert!(build_time_exceeded(&mut out, &echo, a.vip.0).is_ok());
        let mcast = frame(ip("224.0.0.5"), a.vip.0, 1, &L4::Udp(1, 2), b"");
        assert!(build_time_exceeded(&mut out, &mcast, a.vip.0).is_err());
        let b = v6();
        let e6 = error_frame(ip("2001:db8::1"), b.vip.0, 1, 4, 0, &[0x60; 48]);
        assert!(build_time_exceeded(&mut out, &e6, b.vip.0).is_err());
        let ok6 = frame(b.client.0, b.vip.0, 1, &L4::Udp(1, 2), b"");
        // Source of the wrong family.
        assert!(build_time_exceeded(&mut out, &ok6, a.vip.0).is_err());
        assert!(build_for(
            &mut out,
            &ok6,
            XmitError::Drop(DropReason::BadHeader),
            b.vip.0
        )
        .is_err());
        for n in 0..ok6.len() {
            let _ = build_time_exceeded(&mut out, &ok6[..n], b.vip.0);
        }
    }
}
