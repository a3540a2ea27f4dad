//! GUE and GRE encapsulation of `-i` dests (`--tun-type gue|gre`, kernel
//! 5.2+ IPVS): what goes between the outer IP header [`super::tun`] builds
//! and the client's packet.
//!
//! - GUE (draft-ietf-intarea-gue, variant 0): UDP to `--tun-port` from a
//!   port chosen by the flow, then a 4-byte GUE header (version 0, no
//!   control bit, no options) whose protocol is 4 (IPv4 inside) or 41
//!   (IPv6 inside). `--tun-csum` fills the UDP checksum; `--tun-nocsum`
//!   leaves it 0, over IPv6 too (RFC 6935), as the kernel's udp_set_csum
//!   and udp6_set_csum do.
//! - GRE (RFC 2784): flags and version 0, protocol 0x0800 or 0x86DD; with
//!   `--tun-csum` the C bit, then the checksum over the GRE header and the
//!   packet and 2 reserved bytes.
//!
//! `--tun-remcsum`: the kernel adds GUE's remote checksum offload option
//! (private flags with REMCSUM, then the inner checksum's start and
//! offset) only for a packet whose inner L4 checksum is still
//! CHECKSUM_PARTIAL, that is one the director itself is sending with
//! checksum offload. A packet it forwards from the wire has its checksum
//! complete, and then remcsum sends exactly what `--tun-csum` does: the
//! outer UDP checksum, no option. rvs only ever forwards packets from the
//! wire and asks its ports for no receive offload, so no PMD hands it a
//! partial checksum: remcsum is always that second case.

use std::net::IpAddr;

use super::set16;
use crate::ipvs::{Conn, Tunnel, TunnelCsum};
use crate::wire::checksum;

pub const PROTO_UDP: u8 = 17;
pub const PROTO_GRE: u8 = 47;
const UDP_LEN: usize = 8;
const GUE_LEN: usize = 4;
const GRE_LEN: usize = 4;
const GRE_CSUM_LEN: usize = 4;
const GRE_FLAG_CSUM: u16 = 0x8000;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
/// The kernel's default ip_local_port_range, from which
/// udp_flow_src_port picks the outer source port.
const PORT_MIN: u32 = 32768;
const PORT_MAX: u32 = 60999;

/// Bytes between the outer IP header and the inner packet.
#[inline]
pub fn header_len(t: Tunnel) -> usize {
    match t {
        Tunnel::Ipip => 0,
        Tunnel::Gue { .. } => UDP_LEN + GUE_LEN,
        Tunnel::Gre { csum } if csum == TunnelCsum::Csum => GRE_LEN + GRE_CSUM_LEN,
        Tunnel::Gre { .. } => GRE_LEN,
    }
}

/// The outer header's protocol for an inner packet of `inner_proto`
/// (4 or 41).
#[inline]
pub fn outer_proto(t: Tunnel, inner_proto: u8) -> u8 {
    match t {
        Tunnel::Ipip => inner_proto,
        Tunnel::Gue { .. } => PROTO_UDP,
        Tunnel::Gre { .. } => PROTO_GRE,
    }
}

/// Writes the encapsulation at the start of `seg`, which runs from there
/// to the end of the inner packet (already in place after `header_len`
/// bytes). `src`/`dst` are the outer addresses (for the UDP pseudo
/// header), `sport` the GUE source port.
pub fn write(seg: &mut [u8], t: Tunnel, inner_v6: bool, src: IpAddr, dst: IpAddr, sport: u16) {
    match t {
        Tunnel::Ipip => {}
        Tunnel::Gue { port, csum } => {
            let len = seg.len();
            set16(seg, 0, sport);
            set16(seg, 2, port);
            set16(seg, 4, len as u16);
            set16(seg, 6, 0);
            // Version 0, C 0, Hlen 0; proto/ctype; flags 0.
            seg[8] = 0;
            seg[9] = if inner_v6 { 41 } else { 4 };
            set16(seg, 10, 0);
            if csum != TunnelCsum::NoCsum {
                let ph = match (src, dst) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => {
                        checksum::pseudo_header_v4(s, d, PROTO_UDP, len as u16)
                    }
                    (IpAddr::V6(s), IpAddr::V6(d)) => {
                        checksum::pseudo_header_v6(&s, &d, PROTO_UDP, len as u32)
                    }
                    // tun::to_real never mixes families.
                    _ => 0,
                };
                let c = !checksum::fold(ph + checksum::sum(seg));
                // RFC 768: a computed 0 goes out as all ones.
                set16(seg, 6, if c == 0 { 0xffff } else { c });
            }
        }
        Tunnel::Gre { csum } => {
            let with_csum = csum == TunnelCsum::Csum;
            set16(seg, 0, if with_csum { GRE_FLAG_CSUM } else { 0 });
            set16(seg, 2, if inner_v6 { ETH_P_IPV6 } else { ETH_P_IP });
            if with_csum {
                set16(seg, 4, 0);
                set16(seg, 6, 0);
                let c = checksum::checksum(seg);
                set16(seg, 4, c);
            }
        }
    }
}

/// udp_flow_src_port's mapping of a flow hash into the local port range:
/// the upper 16 bits, mixed with the lower, scaled into [32768, 60999).
#[inline]
pub fn src_port(hash: u32) -> u16 {
    let h = hash ^ (hash << 16);
    ((u64::from(h) * u64::from(PORT_MAX - PORT_MIN)) >> 32) as u16 + PORT_MIN as u16
}

/// The hash GUE's source port comes from: the client's flow (the kernel
/// takes skb_get_hash over the same tuple), so one conn keeps one outer
/// port and conns spread over the receiver's queues.
pub fn flow_hash(conn: &Conn) -> u32 {
    let mut h: u32 = u32::from(conn.proto());
    let mut mix = |w: u32| {
        h = (h ^ w).wrapping_mul(0x9e37_79b1).rotate_left(13);
    };
    for a in [conn.caddr(), conn.vaddr()] {
        match a {
            IpAddr::V4(v) => mix(u32::from(v)),
            IpAddr::V6(v) => {
                for c in v.octets().chunks_exact(4) {
                    mix(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
                }
            }
        }
    }
    mix(u32::from(conn.cport()) << 16 | u32::from(conn.vport()));
    // murmur3's finaliser: every input bit reaches the upper 16 bits.
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}
