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
//! the small ones); the identification from a per-worker counter (DPVS
//! sends zero with DF always set; a zero identification on datagrams that
//! may be fragmented would let fragments of different datagrams mix).
//! IPv4 → IPv6: TOS → traffic class; flow label zero; TTL − 1 → hop limit;
//! the identification and flags are dropped. A datagram whose IPv6 form is
//! over the egress MTU is not fragmented: the caller gets
//! [`XmitError::TooBig`] with the MTU less 20 and answers the IPv4 sender
//! with fragmentation needed, whether or not DF was set, as DPVS answers
//! any packet over the MTU. An IPv4 UDP datagram without a checksum gets
//! one computed (RFC 7915 section 4.5), as IPv6 requires it.
//!
//! Only TCP and UDP without IPv6 extension headers and IPv4 options are
//! translated (DPVS: the same); other packets are Unsupported. ICMP errors
//! about these conns are translated in [`super::icmp`].

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{
    be16, check_translatable, clamp_mss, set16, toa, trim_padding, Ip, XmitError, XmitOpts,
    ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_LEN, PROTO_TCP, PROTO_UDP,
};
use crate::dataplane::counters::DropReason;
use crate::dataplane::packet::Packet;
use crate::ipvs::Conn;
use crate::wire::checksum;
use crate::wire::tcp::{ACK, FIN, RST, SYN};

/// IPv6 header length less IPv4's: what a packet grows or shrinks by.
pub const GROWTH: usize = 20;
/// RFC 7915 section 5.1: translated datagrams up to this size go out with
/// DF clear.
const DF_THRESHOLD: usize = 1260;

/// Whether a conn's client side and server side differ in family.
#[inline]
pub fn is_nat64(conn: &Conn) -> bool {
    conn.caddr().is_ipv6() != conn.daddr().is_ipv6()
}

/// Whether the conn's client and VIP share a family and its local address
/// and real server share the other: the only mixed layout translated.
fn sides_consistent(conn: &Conn) -> bool {
    conn.caddr().is_ipv6() == conn.vaddr().is_ipv6()
        && conn.laddr().is_ipv6() == conn.daddr().is_ipv6()
}

/// Client → real server across families: CIP:cport→VIP:vport becomes
/// LIP:lport→RIP:rport in a header of the server side's family. TOA and the
/// MSS clamp apply to the translated SYN as `fullnat::to_real` applies
/// them; with an IPv6 client, TOA carries the 16-byte address (kind 254,
/// length 20, as DPVS's toa module reads it on an IPv4 socket).
pub fn to_real<P: Packet>(pkt: &mut P, conn: &Conn, opts: &XmitOpts) -> Result<IpAddr, XmitError> {
    if !is_nat64(conn) || !sides_consistent(conn) {
        return Err(XmitError::Drop(DropReason::Unsupported));
    }
    let client = conn.caddr();
    let rs = conn.daddr();
    let ip = check_translatable(pkt.data(), conn, client.is_ipv6())?;
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
pub fn to_client<P: Packet>(pkt: &mut P, conn: &Conn, mtu: u16) -> Result<IpAddr, XmitError> {
    if !is_nat64(conn) || !sides_consistent(conn) {
        return Err(XmitError::Drop(DropReason::Unsupported));
    }
    let client = conn.caddr();
    let ip = check_translatable(pkt.data(), conn, conn.daddr().is_ipv6())?;
    trim_padding(pkt, &ip);
    let src = (conn.vaddr(), conn.vport());
    let dst = (client, conn.cport());
    translate(pkt, &ip, src, dst, mtu)?;
    Ok(client)
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
        (true, IpAddr::V4(s), IpAddr::V4(d)) => Ok(six_to_four(pkt, ip, (s, src.1), (d, dst.1))),
        (false, IpAddr::V6(s), IpAddr::V6(d)) => {
            four_to_six(pkt, ip, (s, src.1), (d, dst.1), mtu)
        }
        _ => Err(XmitError::Drop(DropReason::Unsupported)),
    }
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

fn six_to_four<P: Packet>(
    pkt: &mut P,
    ip: &Ip,
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
) -> Ip {
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
    })
}
