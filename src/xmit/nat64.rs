//! FULLNAT across address families (DPVS's NAT64): an IPv6 VIP with IPv4
//! real servers, and the reverse, an IPv4 VIP with IPv6 real servers.
//!
//! A conn's client side (client, VIP) is of one family and its server side
//! (local address, real server) of the other: the local address comes from
//! the service's pool of the real server's family. Each packet's IP header
//! is replaced by one of the other family (RFC 7915 sections 4.1 and 5.1,
//! with the addresses of the conn instead of an address mapping), the ports
//! are rewritten as FULLNAT does, and the TCP/UDP checksum is adjusted for
//! the new pseudo header incrementally: the pseudo headers of both families
//! sum the same length and protocol, so only the addresses and ports change
//! the sum.
//!
//! Header fields, IPv6 → IPv4: traffic class → TOS; hop limit − 1 → TTL;
//! DF set when the IPv4 datagram is over 1260 bytes, clear below (RFC 7915
//! section 5.1, so that an IPv4 link under 1280 bytes can still fragment
//! the small ones); the identification from a per-worker counter when DF
//! is clear, zero when it is set (an atomic datagram, RFC 6864). DPVS
//! sends zero with DF always set; a zero identification on datagrams that
//! may be fragmented would let fragments of different datagrams mix.
//! IPv4 → IPv6: TOS → traffic class; flow label zero; TTL − 1 → hop limit;
//! the identification and flags are dropped. A datagram whose IPv6 form is
//! over the egress MTU is not fragmented: the caller gets
//! [`XmitError::TooBig`] with the MTU less 20 and answers the IPv4 sender
//! with fragmentation needed, whether or not DF was set, as DPVS answers
//! any packet over the MTU. The other way, an IPv6 datagram whose IPv4
//! form is over the MTU is fragmented by the caller when that form goes
//! without DF, and is otherwise TooBig with the MTU plus 20. An IPv4 UDP datagram without a checksum gets
//! one computed (RFC 7915 section 4.5), as IPv6 requires it.
//!
//! Only TCP and UDP without IPv6 extension headers and IPv4 options, and
//! not fragments (RFC 7915's fragment translation is not done), are
//! translated (DPVS: the same); other packets are Unsupported. ICMP errors
//! about these conns (which `icmp::to_real` / `icmp::to_client` hand over)
//! are rebuilt in the other family here too: [`icmp_to_real`],
//! [`icmp_to_client`].
//!
//! TCP MSS: the caller clamps the SYN's MSS to the server side's MTU less
//! 60 (IPv6's headers) for these conns, so that the real server's full
//! segments still fit once grown by 20 bytes; DPVS does not (it lowers the
//! SYN-ACK's MSS only by TOA's length).

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{
    be16, check_translatable, clamp_mss, set16, toa, trim_padding, Ip, XmitError, XmitOpts,
    ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_LEN, PROTO_TCP, PROTO_UDP,
};
use crate::counters::DropReason;
use crate::ipvs::ConnRef;
use crate::packet::Packet;
use crate::wire::checksum;
use crate::wire::tcp::{ACK, FIN, RST, SYN};

/// IPv6 header length less IPv4's: what a packet grows or shrinks by.
pub const GROWTH: usize = 20;
/// RFC 7915 section 5.1: translated datagrams up to this size go out with
/// DF clear.
const DF_THRESHOLD: usize = 1260;

/// Whether a conn's client side and server side differ in family.
#[inline]
pub fn is_nat64(conn: &ConnRef<'_>) -> bool {
    conn.caddr().is_ipv6() != conn.daddr().is_ipv6()
}

/// Whether the conn's client and VIP share a family and its local address
/// and real server share the other: the only mixed layout translated. Only
/// TCP and UDP are: SCTP's INIT and INIT ACK carry the endpoints' addresses
/// in their parameters, which a translation across families would have to
/// rewrite.
fn sides_consistent(conn: &ConnRef<'_>) -> bool {
    conn.caddr().is_ipv6() == conn.vaddr().is_ipv6()
        && conn.laddr().is_ipv6() == conn.daddr().is_ipv6()
        && conn.proto() != super::PROTO_SCTP
}

/// Client → real server across families: CIP:cport→VIP:vport becomes
/// LIP:lport→RIP:rport in a header of the server side's family. TOA and the
/// MSS clamp apply to the translated SYN as `fullnat::to_real` applies
/// them; with an IPv6 client, TOA carries the 16-byte address (kind 254,
/// length 20, as DPVS's toa module reads it on an IPv4 socket).
pub fn to_real<P: Packet>(
    pkt: &mut P,
    conn: &ConnRef<'_>,
    opts: &XmitOpts,
) -> Result<IpAddr, XmitError> {
    if !is_nat64(conn) || !sides_consistent(conn) {
        return Err(XmitError::Drop(DropReason::Unsupported));
    }
    let client = conn.caddr();
    let rs = conn.daddr();
    let ip = check_translatable(pkt.data(), None, conn, client.is_ipv6())?;
    plain(&ip)?;
    trim_padding(pkt, &ip);
    let src = (conn.laddr(), conn.lport());
    let dst = (rs, conn.dport());
    let mut ip = translate(pkt, &ip, src, dst, opts.mtu)?;
    if ip.proto == PROTO_TCP {
        let flags = pkt.data()[ip.l4 + 13] & (SYN | ACK | FIN | RST);
        let wants_toa = (opts.toa && flags == SYN) || (opts.toa && opts.toa_on_ack && flags == ACK);
        if wants_toa {
            toa::insert(pkt, &mut ip, (client, conn.cport()), opts.mtu);
        }
        if let (Some(clamp), true) = (opts.mss_clamp, flags & SYN != 0) {
            clamp_mss(pkt.data_mut(), &ip, clamp);
        }
    }
    Ok(rs)
}

/// Real server → client across families: RIP:rport→LIP:lport becomes
/// VIP:vport→CIP:cport in a header of the client side's family. `mtu` is
/// the egress MTU towards the client, which an IPv4 → IPv6 translation
/// must fit.
pub fn to_client<P: Packet>(
    pkt: &mut P,
    conn: &ConnRef<'_>,
    mtu: u16,
) -> Result<IpAddr, XmitError> {
    if !is_nat64(conn) || !sides_consistent(conn) {
        return Err(XmitError::Drop(DropReason::Unsupported));
    }
    let client = conn.caddr();
    let ip = check_translatable(pkt.data(), None, conn, conn.daddr().is_ipv6())?;
    plain(&ip)?;
    trim_padding(pkt, &ip);
    let src = (conn.vaddr(), conn.vport());
    let dst = (client, conn.cport());
    translate(pkt, &ip, src, dst, mtu)?;
    Ok(client)
}

/// Whether the packet's IP header is the fixed one alone and the datagram
/// whole: what `translate` replaces.
fn plain(ip: &Ip) -> Result<(), XmitError> {
    let fixed = ETH_LEN + if ip.v6 { 40 } else { 20 };
    if ip.l4 != fixed || ip.frag.is_some() {
        return Err(XmitError::Drop(DropReason::Unsupported));
    }
    Ok(())
}

/// Replaces the IP header of the TCP/UDP packet at `ip` (validated, TTL
/// checked, padding trimmed) by one of the other family from `src` to
/// `dst` (addresses of that family), with the ports set and the L4
/// checksum adjusted. Checks run before the first write: on `Err` the
/// packet is unchanged.
fn translate<P: Packet>(
    pkt: &mut P,
    ip: &Ip,
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    mtu: u16,
) -> Result<Ip, XmitError> {
    match (ip.v6, src.0, dst.0) {
        (true, IpAddr::V4(s), IpAddr::V4(d)) => {
            fit_six_to_four(ip, mtu)?;
            Ok(six_to_four(pkt, ip, (s, src.1), (d, dst.1)))
        }
        (false, IpAddr::V6(s), IpAddr::V6(d)) => four_to_six(pkt, ip, (s, src.1), (d, dst.1), mtu),
        _ => Err(XmitError::Drop(DropReason::Unsupported)),
    }
}

/// An IPv6 datagram over the IPv4 side's MTU once 20 bytes shorter: one
/// whose IPv4 form goes with DF clear (up to DF_THRESHOLD) is fragmented
/// by the caller; a larger one is TooBig with the MTU plus 20, at least
/// IPv6's 1280 (below which the IPv4 forms go without DF).
fn fit_six_to_four(ip: &Ip, mtu: u16) -> Result<(), XmitError> {
    let v4_len = 20 + ip.end - ip.l4;
    if v4_len <= usize::from(mtu) || v4_len <= DF_THRESHOLD {
        return Ok(());
    }
    Err(XmitError::TooBig {
        mtu: mtu.saturating_add(GROWTH as u16).max(1280),
    })
}

thread_local! {
    /// Identification of the IPv4 datagrams this thread translates.
    static NEXT_ID: Cell<u16> = const { Cell::new(0) };
}

/// The next IPv4 identification of this worker.
fn next_id() -> u16 {
    NEXT_ID.with(|c| {
        let v = c.get().wrapping_add(1);
        c.set(v);
        v
    })
}

/// Where the checksum of a TCP or UDP header sits, relative to it.
fn csum_off(proto: u8) -> usize {
    if proto == PROTO_TCP {
        16
    } else {
        6
    }
}

/// RFC 1624 eqn. 3 over whole fields: `old` words out of the sum, `new`
/// words in. Both slices have even lengths; they need not be equally long.
fn adjust(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    let mut acc = u32::from(!csum);
    for w in old.chunks_exact(2) {
        acc += u32::from(!u16::from_be_bytes([w[0], w[1]]));
        acc = (acc & 0xffff) + (acc >> 16);
    }
    for w in new.chunks_exact(2) {
        acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !checksum::fold(acc)
}

fn six_to_four<P: Packet>(pkt: &mut P, ip: &Ip, src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> Ip {
    let b = pkt.data_mut();
    let h = ETH_LEN;
    let tclass = (b[h] << 4) | (b[h + 1] >> 4);
    let hop = b[h + 7] - 1;
    let l4_len = ip.end - ip.l4;
    let mut old = [0u8; 36];
    old[..32].copy_from_slice(&b[h + 8..h + 40]);
    old[32..36].copy_from_slice(&b[ip.l4..ip.l4 + 4]);
    let mut new = [0u8; 12];
    new[..4].copy_from_slice(&src.0.octets());
    new[4..8].copy_from_slice(&dst.0.octets());
    new[8..10].copy_from_slice(&src.1.to_be_bytes());
    new[10..12].copy_from_slice(&dst.1.to_be_bytes());
    // Ports and checksum, in place: the L4 header does not move in the
    // buffer, only the start of the frame does.
    let c_at = ip.l4 + csum_off(ip.proto);
    let c = adjust(be16(b, c_at), &old, &new);
    set16(
        b,
        c_at,
        if ip.proto == PROTO_UDP && c == 0 {
            0xffff
        } else {
            c
        },
    );
    b[ip.l4..ip.l4 + 4].copy_from_slice(&new[8..12]);
    // The Ethernet header moves up next to the new, shorter IP header.
    b.copy_within(0..ETH_LEN, GROWTH);
    let total = 20 + l4_len;
    let df = total > DF_THRESHOLD;
    let id = if df { 0 } else { next_id() };
    let v4 = &mut b[GROWTH + ETH_LEN..GROWTH + ETH_LEN + 20];
    v4[0] = 0x45;
    v4[1] = tclass;
    v4[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    v4[4..6].copy_from_slice(&id.to_be_bytes());
    v4[6..8].copy_from_slice(&(if df { 0x4000u16 } else { 0 }).to_be_bytes());
    v4[8] = hop;
    v4[9] = ip.proto;
    v4[10..12].copy_from_slice(&[0, 0]);
    v4[12..16].copy_from_slice(&src.0.octets());
    v4[16..20].copy_from_slice(&dst.0.octets());
    let hc = checksum::checksum(v4);
    v4[10..12].copy_from_slice(&hc.to_be_bytes());
    set16(b, GROWTH + 12, ETHERTYPE_IPV4);
    // Shrinking at the front always succeeds on a frame this long.
    pkt.adj(GROWTH);
    Ip {
        v6: false,
        l4: ETH_LEN + 20,
        end: ETH_LEN + total,
        proto: ip.proto,
        frag: None,
    }
}

fn four_to_six<P: Packet>(
    pkt: &mut P,
    ip: &Ip,
    src: (Ipv6Addr, u16),
    dst: (Ipv6Addr, u16),
    mtu: u16,
) -> Result<Ip, XmitError> {
    let l4_len = ip.end - ip.l4;
    if 40 + l4_len > usize::from(mtu) {
        return Err(XmitError::TooBig {
            mtu: mtu.saturating_sub(GROWTH as u16),
        });
    }
    if pkt.headroom() < GROWTH || !pkt.prepend(GROWTH) {
        return Err(XmitError::Drop(DropReason::NoBuffer));
    }
    let b = pkt.data_mut();
    // Offsets below are in the grown frame: the old one starts at GROWTH.
    let (o_ip, o_l4) = (GROWTH + ETH_LEN, GROWTH + ip.l4);
    let tos = b[o_ip + 1];
    let ttl = b[o_ip + 8] - 1;
    let mut old = [0u8; 12];
    old[..8].copy_from_slice(&b[o_ip + 12..o_ip + 20]);
    old[8..12].copy_from_slice(&b[o_l4..o_l4 + 4]);
    let mut new = [0u8; 36];
    new[..16].copy_from_slice(&src.0.octets());
    new[16..32].copy_from_slice(&dst.0.octets());
    new[32..34].copy_from_slice(&src.1.to_be_bytes());
    new[34..36].copy_from_slice(&dst.1.to_be_bytes());
    let c_at = o_l4 + csum_off(ip.proto);
    let c = be16(b, c_at);
    b[o_l4..o_l4 + 4].copy_from_slice(&new[32..36]);
    let c = if ip.proto == PROTO_UDP && c == 0 {
        // No checksum to adjust: compute it over the new pseudo header.
        set16(b, c_at, 0);
        let ph = checksum::pseudo_header_v6(&src.0, &dst.0, PROTO_UDP, l4_len as u32);
        let c = !checksum::fold(ph + checksum::sum(&b[o_l4..o_l4 + l4_len]));
        if c == 0 {
            0xffff
        } else {
            c
        }
    } else {
        let c = adjust(c, &old, &new);
        if ip.proto == PROTO_UDP && c == 0 {
            0xffff
        } else {
            c
        }
    };
    set16(b, c_at, c);
    b.copy_within(GROWTH..GROWTH + ETH_LEN, 0);
    set16(b, 12, ETHERTYPE_IPV6);
    let v6 = &mut b[ETH_LEN..ETH_LEN + 40];
    v6[0] = 0x60 | (tos >> 4);
    v6[1] = tos << 4;
    v6[2..4].copy_from_slice(&[0, 0]);
    v6[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
    v6[6] = ip.proto;
    v6[7] = ttl;
    v6[8..24].copy_from_slice(&src.0.octets());
    v6[24..40].copy_from_slice(&dst.0.octets());
    Ok(Ip {
        v6: true,
        l4: ETH_LEN + 40,
        end: ETH_LEN + 40 + l4_len,
        proto: ip.proto,
        frag: None,
    })
}

// ---- ICMP errors about NAT64 conns ----

/// Largest ICMPv6 error (RFC 4443 section 2.4 (c)); translated ICMPv4
/// errors are cut to it as well.
const MAX_ERROR: usize = 1280;

/// An ICMP error from the client's side about a reply of the conn, on to
/// the real server in the other family: outer LIP → RIP, quote
/// RIP:rport → LIP:lport, the packet the server sent.
pub fn icmp_to_real<P: Packet>(pkt: &mut P, conn: &ConnRef<'_>) -> Result<IpAddr, XmitError> {
    if !is_nat64(conn) || !sides_consistent(conn) {
        return Err(XmitError::Drop(DropReason::Unsupported));
    }
    let (rs, lip) = (conn.daddr(), conn.laddr());
    translate_error(
        pkt,
        conn,
        conn.caddr().is_ipv6(),
        (lip, rs),
        ((rs, conn.dport()), (lip, conn.lport())),
    )?;
    Ok(rs)
}

/// An ICMP error from the real server's side about a packet of the conn,
/// on to the client in the other family: outer VIP → CIP, quote
/// CIP:cport → VIP:vport, the client's own packet.
pub fn icmp_to_client<P: Packet>(pkt: &mut P, conn: &ConnRef<'_>) -> Result<IpAddr, XmitError> {
    if !is_nat64(conn) || !sides_consistent(conn) {
        return Err(XmitError::Drop(DropReason::Unsupported));
    }
    let (client, vip) = (conn.caddr(), conn.vaddr());
    translate_error(
        pkt,
        conn,
        conn.daddr().is_ipv6(),
        (vip, client),
        ((client, conn.cport()), (vip, conn.vport())),
    )?;
    Ok(client)
}

/// RFC 7915's type and code mapping (sections 4.2 and 5.2) for the errors
/// `icmp` relays, from ICMPv6 when `from_v6`, with the 32-bit field after
/// the checksum: an MTU moves by the header difference (never under
/// IPv6's 1280), a parameter problem points at IPv6's next header field.
/// None: no counterpart (parameter problems other than an unknown next
/// header, whose pointer would need mapping field by field, among them).
fn map_error(from_v6: bool, t: u8, code: u8, rest: u32) -> Option<(u8, u8, u32)> {
    use crate::wire::{icmpv4 as v4, icmpv6 as v6};
    if from_v6 {
        match (t, code) {
            (v6::DST_UNREACH, 0 | 2 | 3) => Some((v4::DEST_UNREACH, v4::CODE_HOST_UNREACH, 0)),
            // Communication administratively prohibited.
            (v6::DST_UNREACH, 1) => Some((v4::DEST_UNREACH, 10, 0)),
            (v6::DST_UNREACH, 4) => Some((v4::DEST_UNREACH, v4::CODE_PORT_UNREACH, 0)),
            (v6::PACKET_TOO_BIG, _) => {
                let mtu = rest.saturating_sub(GROWTH as u32).min(0xffff);
                Some((v4::DEST_UNREACH, v4::CODE_FRAG_NEEDED, mtu))
            }
            (v6::TIME_EXCEEDED, 0 | 1) => Some((v4::TIME_EXCEEDED, code, 0)),
            (v6::PARAM_PROBLEM, 1) => Some((v4::DEST_UNREACH, v4::CODE_PROTO_UNREACH, 0)),
            _ => None,
        }
    } else {
        match (t, code) {
            (v4::DEST_UNREACH, 0 | 1 | 5 | 6 | 7 | 8 | 11 | 12) => {
                Some((v6::DST_UNREACH, v6::CODE_NO_ROUTE, 0))
            }
            (v4::DEST_UNREACH, v4::CODE_PROTO_UNREACH) => Some((v6::PARAM_PROBLEM, 1, 6)),
            (v4::DEST_UNREACH, v4::CODE_PORT_UNREACH) => {
                Some((v6::DST_UNREACH, v6::CODE_PORT_UNREACH, 0))
            }
            (v4::DEST_UNREACH, v4::CODE_FRAG_NEEDED) => {
                let mtu = (rest & 0xffff) + GROWTH as u32;
                Some((v6::PACKET_TOO_BIG, 0, mtu.max(1280)))
            }
            (v4::DEST_UNREACH, 9 | 10 | 13 | 15) => {
                Some((v6::DST_UNREACH, v6::CODE_ADMIN_PROHIBITED, 0))
            }
            (v4::TIME_EXCEEDED, 0 | 1) => Some((v6::TIME_EXCEEDED, code, 0)),
            _ => None,
        }
    }
}

/// Rebuilds the ICMP error in `pkt` (of the family `from_v6` says) as one
/// of the other family from `outer.0` to `outer.1`, its quote's IP header
/// translated too, with the quoted addresses and ports `quote` and the
/// quoted L4 checksum (when quoted) adjusted. The quote keeps the quoted
/// datagram's TTL and length fields; its IPv4 form gets identification 0
/// and DF as `six_to_four` sets it. Checks run before the first write.
fn translate_error<P: Packet>(
    pkt: &mut P,
    conn: &ConnRef<'_>,
    from_v6: bool,
    outer: (IpAddr, IpAddr),
    quote: ((IpAddr, u16), (IpAddr, u16)),
) -> Result<(), XmitError> {
    let b = pkt.data();
    let e = super::icmp::parse_error(b)?;
    if e.outer.v6 != from_v6 || e.proto != conn.proto() {
        return Err(XmitError::Drop(DropReason::Unsupported));
    }
    if checksum::fold(super::icmp::icmp_sum(b, &e)) != 0xffff {
        return Err(XmitError::Drop(DropReason::BadHeader));
    }
    if super::ttl_expires(b, &e.outer) {
        return Err(XmitError::TtlExceeded);
    }
    let icmp = e.outer.l4;
    let rest = u32::from_be_bytes([b[icmp + 4], b[icmp + 5], b[icmp + 6], b[icmp + 7]]);
    let (t, code, rest) = map_error(from_v6, b[icmp], b[icmp + 1], rest)
        .ok_or(XmitError::Drop(DropReason::Unsupported))?;
    let hop = b[ETH_LEN + if from_v6 { 7 } else { 8 }] - 1;
    let inner = e.inner_hdr.ip_off;
    let Some(l4) = e.inner_hdr.ports else {
        return Err(XmitError::Drop(DropReason::BadHeader));
    };
    // The quoted datagram's class, L4 length (as its header says, not as
    // much as is quoted) and TTL.
    let (tos, l4_len, ttl) = if from_v6 {
        (
            (b[inner] << 4) | (b[inner + 1] >> 4),
            usize::from(be16(b, inner + 4)),
            b[inner + 7],
        )
    } else {
        let ihl = l4 - inner;
        (
            b[inner + 1],
            usize::from(be16(b, inner + 2)).saturating_sub(ihl),
            b[inner + 8],
        )
    };
    let (to_v6, hl) = (!from_v6, if from_v6 { 20 } else { 40 });
    let families = [outer.0, outer.1, quote.0 .0, quote.1 .0];
    if families.iter().any(|a| a.is_ipv6() != to_v6) {
        return Err(XmitError::Drop(DropReason::Unsupported));
    }
    let q = &b[l4..e.outer.end];
    let qlen = q.len().min(MAX_ERROR - hl - 8 - hl);
    let mut buf = [0u8; MAX_ERROR];
    buf[..qlen].copy_from_slice(&q[..qlen]);
    // The quoted addresses and ports, out of the quoted L4 checksum.
    let alen = if from_v6 { 16 } else { 4 };
    let mut old = [0u8; 36];
    let a_at = inner + if from_v6 { 8 } else { 12 };
    old[..2 * alen].copy_from_slice(&b[a_at..a_at + 2 * alen]);
    old[2 * alen..2 * alen + 4].copy_from_slice(&buf[..4]);
    let old = &old[..2 * alen + 4];
    let nlen = if to_v6 { 16 } else { 4 };
    let mut new = [0u8; 36];
    put_addr(&mut new[..nlen], quote.0 .0);
    put_addr(&mut new[nlen..2 * nlen], quote.1 .0);
    new[2 * nlen..2 * nlen + 2].copy_from_slice(&quote.0 .1.to_be_bytes());
    new[2 * nlen + 2..2 * nlen + 4].copy_from_slice(&quote.1 .1.to_be_bytes());
    let new = &new[..2 * nlen + 4];
    let c_at = csum_off(e.proto);
    if qlen >= c_at + 2 {
        let c = be16(&buf, c_at);
        if !(e.proto == PROTO_UDP && c == 0) {
            let n = adjust(c, old, new);
            let n = if e.proto == PROTO_UDP && n == 0 {
                0xffff
            } else {
                n
            };
            set16(&mut buf, c_at, n);
        }
    }
    buf[..4].copy_from_slice(&new[2 * nlen..]);

    let msg_len = 8 + hl + qlen;
    if !pkt.set_len(ETH_LEN + hl + msg_len) {
        return Err(XmitError::Drop(DropReason::NoBuffer));
    }
    let b = pkt.data_mut();
    let proto = if to_v6 {
        super::PROTO_ICMPV6
    } else {
        super::PROTO_ICMP
    };
    write_ip(b, ETH_LEN, to_v6, 0, msg_len, 0, false, hop, proto, outer);
    set16(
        b,
        12,
        if to_v6 {
            ETHERTYPE_IPV6
        } else {
            ETHERTYPE_IPV4
        },
    );
    let m = ETH_LEN + hl;
    b[m] = t;
    b[m + 1] = code;
    set16(b, m + 2, 0);
    b[m + 4..m + 8].copy_from_slice(&rest.to_be_bytes());
    let df = hl + l4_len > DF_THRESHOLD;
    let qaddrs = (quote.0 .0, quote.1 .0);
    write_ip(b, m + 8, to_v6, tos, l4_len, 0, df, ttl, e.proto, qaddrs);
    b[m + 8 + hl..m + 8 + hl + qlen].copy_from_slice(&buf[..qlen]);
    let mut sum = checksum::sum(&b[m..m + msg_len]);
    if let (IpAddr::V6(s), IpAddr::V6(d)) = outer {
        sum += checksum::pseudo_header_v6(&s, &d, proto, msg_len as u32);
    }
    set16(b, m + 2, !checksum::fold(sum));
    Ok(())
}

fn put_addr(out: &mut [u8], a: IpAddr) {
    match a {
        IpAddr::V4(a) => out.copy_from_slice(&a.octets()),
        IpAddr::V6(a) => out.copy_from_slice(&a.octets()),
    }
}

/// Writes an IPv4 (checksum included) or IPv6 header at `at` for `len`
/// bytes of payload.
#[allow(clippy::too_many_arguments)]
fn write_ip(
    b: &mut [u8],
    at: usize,
    v6: bool,
    tos: u8,
    len: usize,
    id: u16,
    df: bool,
    ttl: u8,
    proto: u8,
    addrs: (IpAddr, IpAddr),
) {
    if v6 {
        let h = &mut b[at..at + 40];
        h[0] = 0x60 | (tos >> 4);
        h[1] = tos << 4;
        h[2..4].copy_from_slice(&[0, 0]);
        h[4..6].copy_from_slice(&(len as u16).to_be_bytes());
        h[6] = proto;
        h[7] = ttl;
        put_addr(&mut h[8..24], addrs.0);
        put_addr(&mut h[24..40], addrs.1);
    } else {
        let h = &mut b[at..at + 20];
        h[0] = 0x45;
        h[1] = tos;
        h[2..4].copy_from_slice(&((20 + len) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&id.to_be_bytes());
        h[6..8].copy_from_slice(&(if df { 0x4000u16 } else { 0 }).to_be_bytes());
        h[8] = ttl;
        h[9] = proto;
        h[10..12].copy_from_slice(&[0, 0]);
        put_addr(&mut h[12..16], addrs.0);
        put_addr(&mut h[16..20], addrs.1);
        let c = checksum::checksum(h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::FwdMethod;
    use crate::xmit::testkit::*;
    use etherparse::TcpOptionElement;

    const FLAGS: [&str; 7] = ["S", "SA", "A", "PA", "FA", "R", "UPA"];

    /// IPv6 client and VIP, IPv4 local address and real server.
    fn six_four() -> Addrs {
        let (a4, a6) = (v4(), v6());
        Addrs {
            client: a6.client,
            vip: a6.vip,
            rs: a4.rs,
            lip: a4.lip,
        }
    }

    /// IPv4 client and VIP, IPv6 local address and real server.
    fn four_six() -> Addrs {
        let (a4, a6) = (v4(), v6());
        Addrs {
            client: a4.client,
            vip: a4.vip,
            rs: a6.rs,
            lip: a6.lip,
        }
    }

    fn fnat(a: &Addrs, proto: u8) -> HeldConn {
        conn(
            FwdMethod::FullNat,
            proto,
            a.client,
            a.vip,
            a.rs,
            Some(a.lip),
        )
    }

    fn l4(proto: u8, flags: &str, sport: u16, dport: u16) -> L4 {
        if proto == 17 {
            return L4::Udp(sport, dport);
        }
        let opts = if flags.contains('S') {
            syn_opts()
        } else {
            vec![TcpOptionElement::Noop, TcpOptionElement::Noop]
        };
        tcp(sport, dport, flags, &opts)
    }

    /// What an IPv6 frame from `frame` becomes as IPv4 by RFC 7915's
    /// mapping: `frame` builds the IPv4 frame (TOS 0x29, ID 0x4242, DF);
    /// the TOS becomes the IPv6 traffic class 0xb9 `frame` gives, the
    /// identification and DF are set to `id` and `df`, and the header
    /// checksum is summed again here.
    fn as_v4(mut f: Vec<u8>, id: u16, df: bool) -> Vec<u8> {
        f[15] = 0xb9;
        f[18..20].copy_from_slice(&id.to_be_bytes());
        f[20] = if df { 0x40 } else { 0 };
        f[21] = 0;
        f[24] = 0;
        f[25] = 0;
        let c = !fold(ones(&f[14..34]));
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f
    }

    /// What an IPv4 frame from `frame` becomes as IPv6: traffic class from
    /// the TOS 0x29, flow label zero.
    fn as_v6(mut f: Vec<u8>) -> Vec<u8> {
        f[14] = 0x62;
        f[15] = 0x90;
        f[16] = 0;
        f[17] = 0;
        f
    }

    #[test]
    fn v6_client_to_v4_server_tcp_and_udp_every_flag() {
        let a = six_four();
        for proto in [6u8, 17] {
            let c = fnat(&a, proto);
            for flags in FLAGS {
                if proto == 17 && flags != "S" {
                    continue;
                }
                for payload in [&b""[..], b"GET / HTTP/1.1\r\n\r\n"] {
                    let inp = frame(
                        a.client.0,
                        a.vip.0,
                        64,
                        &l4(proto, flags, a.client.1, a.vip.1),
                        payload,
                    );
                    let (r, out) = run(&inp, |p| to_real(p, &c, &XmitOpts::default()));
                    assert_eq!(r, Ok(a.rs.0), "{flags}");
                    assert_eq!(out.len(), inp.len() - 20);
                    let id = u16::from_be_bytes([out[18], out[19]]);
                    let want = frame(
                        a.lip.0,
                        a.rs.0,
                        63,
                        &l4(proto, flags, a.lip.1, a.rs.1),
                        payload,
                    );
                    assert_eq!(out, as_v4(want, id, false), "{proto} {flags}");
                    assert_checksums(&out, false);
                }
            }
        }
    }

    #[test]
    fn v4_server_to_v6_client_tcp_and_udp_every_flag() {
        let a = six_four();
        for proto in [6u8, 17] {
            let c = fnat(&a, proto);
            for flags in FLAGS {
                if proto == 17 && flags != "S" {
                    continue;
                }
                for payload in [&b""[..], &[0x5a; 1000][..]] {
                    let inp = frame(
                        a.rs.0,
                        a.lip.0,
                        64,
                        &l4(proto, flags, a.rs.1, a.lip.1),
                        payload,
                    );
                    let (r, out) = run(&inp, |p| to_client(p, &c, 1500));
                    assert_eq!(r, Ok(a.client.0), "{flags}");
                    assert_eq!(out.len(), inp.len() + 20);
                    let want = frame(
                        a.vip.0,
                        a.client.0,
                        63,
                        &l4(proto, flags, a.vip.1, a.client.1),
                        payload,
                    );
                    assert_eq!(out, as_v6(want), "{proto} {flags}");
                    assert_checksums(&out, false);
                }
            }
        }
    }

    #[test]
    fn v4_client_to_v6_server_and_back() {
        let a = four_six();
        for proto in [6u8, 17] {
            let c = fnat(&a, proto);
            let inp = frame(
                a.client.0,
                a.vip.0,
                64,
                &l4(proto, "PA", a.client.1, a.vip.1),
                b"hello",
            );
            let (r, out) = run(&inp, |p| to_real(p, &c, &XmitOpts::default()));
            assert_eq!(r, Ok(a.rs.0));
            let want = frame(
                a.lip.0,
                a.rs.0,
                63,
                &l4(proto, "PA", a.lip.1, a.rs.1),
                b"hello",
            );
            assert_eq!(out, as_v6(want));

            let inp = frame(
                a.rs.0,
                a.lip.0,
                64,
                &l4(proto, "PA", a.rs.1, a.lip.1),
                b"world",
            );
            let (r, out) = run(&inp, |p| to_client(p, &c, 1500));
            assert_eq!(r, Ok(a.client.0));
            let id = u16::from_be_bytes([out[18], out[19]]);
            let want = frame(
                a.vip.0,
                a.client.0,
                63,
                &l4(proto, "PA", a.vip.1, a.client.1),
                b"world",
            );
            assert_eq!(out, as_v4(want, id, false));
        }
    }

    #[test]
    fn v4_udp_without_checksum_gets_one_in_v6() {
        let a = six_four();
        let c = fnat(&a, 17);
        let mut inp = frame(a.rs.0, a.lip.0, 64, &L4::Udp(a.rs.1, a.lip.1), b"abc");
        inp[14 + 20 + 6] = 0;
        inp[14 + 20 + 7] = 0;
        let (r, out) = run(&inp, |p| to_client(p, &c, 1500));
        assert_eq!(r, Ok(a.client.0));
        let want = frame(
            a.vip.0,
            a.client.0,
            63,
            &L4::Udp(a.vip.1, a.client.1),
            b"abc",
        );
        assert_eq!(out, as_v6(want));
    }

    /// Hand-worked: a UDP datagram [2001:db8::1]:1000 → [2001:db8::2]:53
    /// carrying "ab", translated to 10.0.0.1:2000 → 10.0.0.2:53.
    #[test]
    fn hand_worked_udp_six_to_four() {
        let c = conn(
            FwdMethod::FullNat,
            17,
            (ip("2001:db8::1"), 1000),
            (ip("2001:db8::2"), 53),
            (ip("10.0.0.2"), 53),
            Some((ip("10.0.0.1"), 2000)),
        );
        // The IPv6 UDP checksum by hand: pseudo header words
        // 2001 0db8 0000*5 0001 + 2001 0db8 0000*5 0002 + 000a (length)
        // + 0011, header 03e8 0035 000a, data 6162:
        // 0x2001*2 + 0x0db8*2 + 1 + 2 + 0xa + 0x11 + 0x3e8 + 0x35 + 0xa
        // + 0x6162 = 0xc119, checksum !0xc119 = 0x3ee6.
        let mut inp = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
        inp.extend_from_slice(&[0x60, 0, 0, 0, 0, 10, 17, 9]);
        inp.extend_from_slice(&ip6("2001:db8::1"));
        inp.extend_from_slice(&ip6("2001:db8::2"));
        inp.extend_from_slice(&[0x03, 0xe8, 0, 53, 0, 10, 0x3e, 0xe6, b'a', b'b']);
        let (r, out) = run(&inp, |p| to_real(p, &c, &XmitOpts::default()));
        assert_eq!(r, Ok(ip("10.0.0.2")));
        // IPv4 checksum over 4500 001e id 0000 0811 0a00 0001 0a00 0002:
        // 0x4500 + 0x1e + id + 0x0811 + 0x0a00*2 + 3 = 0x6132 + id.
        // UDP: pseudo 0a00 0001 0a00 0002 0011 000a, header 07d0 0035 000a,
        // data 6162: 0x1403 + 0x11 + 0xa + 0x7d0 + 0x35 + 0xa + 0x6162
        // = 0x7d8f, checksum 0x8270.
        let id = u16::from_be_bytes([out[18], out[19]]);
        let hc = !fold(0x6132 + u32::from(id));
        let mut want = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        want.extend_from_slice(&[0x45, 0, 0, 30]);
        want.extend_from_slice(&id.to_be_bytes());
        want.extend_from_slice(&[0, 0, 8, 17]);
        want.extend_from_slice(&hc.to_be_bytes());
        want.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        want.extend_from_slice(&[0x07, 0xd0, 0, 53, 0, 10, 0x82, 0x70, b'a', b'b']);
        assert_eq!(out, want);
    }

    fn ip6(s: &str) -> [u8; 16] {
        s.parse::<Ipv6Addr>().unwrap().octets()
    }

    #[test]
    fn df_and_identification_by_rfc_7915() {
        let a = six_four();
        let c = fnat(&a, 6);
        let mut ids = Vec::new();
        // 40 + 20 + 1220 = 1280 bytes of IPv6 become 1260 of IPv4: DF clear.
        // One more byte: DF set, identification zero.
        for (n, df) in [
            (1200usize, false),
            (1220, false),
            (1221, true),
            (1400, true),
        ] {
            let inp = frame(
                a.client.0,
                a.vip.0,
                64,
                &tcp(a.client.1, a.vip.1, "A", &[]),
                &vec![1; n],
            );
            let (r, out) = run(&inp, |p| to_real(p, &c, &XmitOpts::default()));
            assert!(r.is_ok());
            assert_eq!(out[20] & 0x40 != 0, df, "{n}");
            let id = u16::from_be_bytes([out[18], out[19]]);
            if df {
                assert_eq!(id, 0);
            } else {
                ids.push(id);
            }
            assert_checksums(&out, false);
        }
        assert_ne!(ids[0], ids[1]);
    }

    #[test]
    fn too_big_for_the_v6_side_leaves_the_packet_alone() {
        let a = six_four();
        let c = fnat(&a, 6);
        // 20 + 20 + 1440 = 1480 bytes of IPv4: 1500 as IPv6.
        let inp = frame(
            a.rs.0,
            a.lip.0,
            64,
            &tcp(a.rs.1, a.lip.1, "A", &[]),
            &[3; 1440],
        );
        let (r, out) = run(&inp, |p| to_client(p, &c, 1500));
        assert_eq!(r, Ok(a.client.0));
        assert_eq!(out.len(), 14 + 1500);
        let (r, out) = run(&inp, |p| to_client(p, &c, 1499));
        assert_eq!(r, Err(XmitError::TooBig { mtu: 1479 }));
        assert_eq!(out, inp);
        // The other way round, towards an IPv6 server.
        let b = four_six();
        let c = fnat(&b, 6);
        let inp = frame(
            b.client.0,
            b.vip.0,
            64,
            &tcp(b.client.1, b.vip.1, "A", &[]),
            &[3; 1440],
        );
        let opts = XmitOpts {
            mtu: 1400,
            ..XmitOpts::default()
        };
        let (r, out) = run(&inp, |p| to_real(p, &c, &opts));
        assert_eq!(r, Err(XmitError::TooBig { mtu: 1380 }));
        assert_eq!(out, inp);
    }

    #[test]
    fn ttl_one_and_inconsistent_conns() {
        let a = six_four();
        let c = fnat(&a, 6);
        let inp = frame(
            a.client.0,
            a.vip.0,
            1,
            &tcp(a.client.1, a.vip.1, "S", &[]),
            b"",
        );
        let (r, out) = run(&inp, |p| to_real(p, &c, &XmitOpts::default()));
        assert_eq!(r, Err(XmitError::TtlExceeded));
        assert_eq!(out, inp);
        // A v4 packet on the client side of a v6 client's conn.
        let inp = frame(a.rs.0, a.lip.0, 64, &tcp(1, 2, "S", &[]), b"");
        let (r, _) = run(&inp, |p| to_real(p, &c, &XmitOpts::default()));
        assert_eq!(r, Err(XmitError::Drop(DropReason::Unsupported)));
        // LIP of the client's family, real server of the other.
        let (a4, a6) = (v4(), v6());
        let bad = conn(
            FwdMethod::FullNat,
            6,
            a6.client,
            a6.vip,
            a4.rs,
            Some(a6.lip),
        );
        let inp = frame(
            a6.client.0,
            a6.vip.0,
            64,
            &tcp(a6.client.1, a6.vip.1, "S", &[]),
            b"",
        );
        let (r, out) = run(&inp, |p| to_real(p, &bad, &XmitOpts::default()));
        assert_eq!(r, Err(XmitError::Drop(DropReason::Unsupported)));
        assert_eq!(out, inp);
    }

    #[test]
    fn toa_carries_the_v6_client_into_the_v4_syn() {
        let a = six_four();
        let c = fnat(&a, 6);
        let opts = XmitOpts {
            toa: true,
            mss_clamp: Some(1440),
            ..XmitOpts::default()
        };
        let inp = frame(
            a.client.0,
            a.vip.0,
            64,
            &tcp(a.client.1, a.vip.1, "S", &syn_opts()),
            b"",
        );
        let (r, out) = run(&inp, |p| to_real(p, &c, &opts));
        assert_eq!(r, Ok(a.rs.0));
        assert_checksums(&out, false);
        // Kind 254, length 20, the client's port then its 16 bytes, right
        // after the fixed TCP header.
        let mut toa = vec![254, 20];
        toa.extend_from_slice(&a.client.1.to_be_bytes());
        toa.extend_from_slice(&ip6("2001:db8:c::7"));
        assert_eq!(&out[34 + 20..34 + 40], &toa[..]);
        assert_eq!(out.len(), inp.len() - 20 + 20);
        assert_eq!(
            u16::from_be_bytes([out[16], out[17]]) as usize,
            out.len() - 14
        );
        // The MSS option, after TOA: 1460 clamped to 1440.
        assert_eq!(&out[34 + 40..34 + 44], &[2, 4, 0x05, 0xa0]);
    }

    /// An ICMP(v6) error src→dst quoting `quote`, checksum summed here.
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

    /// Checks an error's outer header and ICMP header; returns its quote.
    fn relayed(out: &[u8], src: IpAddr, dst: IpAddr, t: u8, code: u8, rest: u32) -> Vec<u8> {
        assert_checksums(out, false);
        let v = view(out);
        assert_eq!((v.src(), v.dst(), v.ttl()), (src, dst, 63));
        let m = 14 + if src.is_ipv6() { 40 } else { 20 };
        assert_eq!((out[m], out[m + 1]), (t, code));
        assert_eq!(&out[m + 4..m + 8], &rest.to_be_bytes());
        out[m + 8..].to_vec()
    }

    #[test]
    fn frag_needed_from_the_v4_side_becomes_packet_too_big_for_the_client() {
        let a = six_four();
        let c = fnat(&a, 6);
        let seg = tcp(a.client.1, a.vip.1, "PA", &[]);
        let body = [7u8; 1300];
        let p0 = frame(a.client.0, a.vip.0, 64, &seg, &body);
        let (_, p1) = run(&p0, |p| to_real(p, &c, &XmitOpts::default()));
        // The quote comes back as the client's own datagram, with the hop
        // limit it had on the server's side and no flow label.
        let mut want = frame(a.client.0, a.vip.0, 63, &seg, &body);
        want[15] &= 0xf0;
        want[16] = 0;
        want[17] = 0;
        let router = ip("198.19.0.254");
        // Whole datagram, RFC 792's header + 8, and + 18 (TCP checksum).
        for cut in [p1.len() - 14, 28, 38] {
            let e = error_frame(router, a.lip.0, 3, 4, 1400, &p1[14..14 + cut]);
            let (r, out) = run(&e, |p| crate::xmit::icmp::to_client(p, &c));
            assert_eq!(r, Ok(a.client.0), "{cut}");
            let q = relayed(&out, a.vip.0, a.client.0, 2, 0, 1420);
            let n = (cut + 20).min(1280 - 48);
            assert_eq!(q.len(), n);
            assert_eq!(&q[..], &want[14..14 + n], "{cut}");
            let icmp = etherparse::Icmpv6Slice::from_slice(&out[54..]).unwrap();
            assert_eq!(
                icmp.icmp_type(),
                etherparse::Icmpv6Type::PacketTooBig { mtu: 1420 }
            );
        }
        // A frag-needed with a tiny MTU: IPv6's minimum.
        let e = error_frame(router, a.lip.0, 3, 4, 576, &p1[14..42]);
        let (_, out) = run(&e, |p| crate::xmit::icmp::to_client(p, &c));
        relayed(&out, a.vip.0, a.client.0, 2, 0, 1280);
    }

    #[test]
    fn packet_too_big_from_the_v6_side_becomes_frag_needed_for_the_server() {
        let a = six_four();
        let c = fnat(&a, 17);
        let seg = L4::Udp(a.rs.1, a.lip.1);
        let p1 = frame(a.rs.0, a.lip.0, 64, &seg, b"reply");
        let (_, p2) = run(&p1, |p| to_client(p, &c, 1500));
        // The server's datagram, TTL 63, identification 0, DF clear.
        let mut want = frame(a.rs.0, a.lip.0, 63, &seg, b"reply");
        want[18..22].copy_from_slice(&[0, 0, 0, 0]);
        want[24..26].copy_from_slice(&[0, 0]);
        let hc = !fold(ones(&want[14..34]));
        want[24..26].copy_from_slice(&hc.to_be_bytes());
        let router = ip("2001:db8:99::1");
        for cut in [p2.len() - 14, 48] {
            let e = error_frame(router, a.vip.0, 2, 0, 1400, &p2[14..14 + cut]);
            let (r, out) = run(&e, |p| {
                crate::xmit::icmp::to_real(p, &c, &XmitOpts::default())
            });
            assert_eq!(r, Ok(a.rs.0), "{cut}");
            let q = relayed(&out, a.lip.0, a.rs.0, 3, 4, 1380);
            assert_eq!(&q[..], &want[14..14 + cut - 20], "{cut}");
        }
    }

    #[test]
    fn error_types_map_by_rfc_7915() {
        let a = six_four();
        let c = fnat(&a, 6);
        let (_, to_rs) = run(
            &frame(
                a.client.0,
                a.vip.0,
                64,
                &tcp(a.client.1, a.vip.1, "S", &[]),
                b"",
            ),
            |p| to_real(p, &c, &XmitOpts::default()),
        );
        let (_, to_cli) = run(
            &frame(a.rs.0, a.lip.0, 64, &tcp(a.rs.1, a.lip.1, "SA", &[]), b""),
            |p| to_client(p, &c, 1500),
        );
        let r4 = ip("198.19.0.254");
        let r6 = ip("2001:db8:99::1");
        // ICMPv4 from the server's side → ICMPv6 to the client.
        for (t, code, want) in [
            (3u8, 3u8, Some((1u8, 4u8, 0u32))),
            (3, 1, Some((1, 0, 0))),
            (3, 13, Some((1, 1, 0))),
            (3, 2, Some((4, 1, 6))),
            (11, 0, Some((3, 0, 0))),
            (11, 1, Some((3, 1, 0))),
            (3, 14, None),
        ] {
            let e = error_frame(r4, a.lip.0, t, code, 0, &to_rs[14..]);
            let (r, out) = run(&e, |p| crate::xmit::icmp::to_client(p, &c));
            match want {
                Some((t6, c6, rest)) => {
                    assert_eq!(r, Ok(a.client.0), "{t}/{code}");
                    relayed(&out, a.vip.0, a.client.0, t6, c6, rest);
                }
                None => {
                    assert_eq!(r, Err(XmitError::Drop(DropReason::Unsupported)));
                    assert_eq!(out, e);
                }
            }
        }
        // ICMPv6 from the client's side → ICMPv4 to the server.
        for (t, code, want) in [
            (1u8, 4u8, Some((3u8, 3u8))),
            (1, 0, Some((3, 1))),
            (1, 1, Some((3, 10))),
            (3, 0, Some((11, 0))),
            (4, 1, Some((3, 2))),
            (4, 0, None),
        ] {
            let e = error_frame(r6, a.vip.0, t, code, 0, &to_cli[14..]);
            let (r, out) = run(&e, |p| {
                crate::xmit::icmp::to_real(p, &c, &XmitOpts::default())
            });
            match want {
                Some((t4, c4)) => {
                    assert_eq!(r, Ok(a.rs.0), "{t}/{code}");
                    relayed(&out, a.lip.0, a.rs.0, t4, c4, 0);
                }
                None => {
                    assert_eq!(r, Err(XmitError::Drop(DropReason::Unsupported)));
                    assert_eq!(out, e);
                }
            }
        }
        // A corrupt ICMP checksum is not laundered.
        let mut e = error_frame(r4, a.lip.0, 3, 3, 0, &to_rs[14..]);
        e[14 + 20 + 2] ^= 1;
        let (r, out) = run(&e, |p| crate::xmit::icmp::to_client(p, &c));
        assert_eq!(r, Err(XmitError::Drop(DropReason::BadHeader)));
        assert_eq!(out, e);
    }
}
