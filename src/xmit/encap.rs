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
use crate::ipvs::{ConnRef, Tunnel, TunnelCsum};
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
        Tunnel::Gre {
            csum: TunnelCsum::Csum,
        } => GRE_LEN + GRE_CSUM_LEN,
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
pub fn flow_hash(conn: &ConnRef<'_>) -> u32 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::FwdMethod;
    use crate::xmit::testkit::*;
    use crate::xmit::tun::to_real;
    use crate::xmit::XmitError;

    // Frames worked out with an independent Python script (its own
    // checksum, header packing, and a port of flow_hash + src_port):
    // 198.51.100.7:40000 -> 203.0.113.10:80 UDP "hi", TTL 64, ID 0x1234,
    // DF, TOS 0x29; tunnelled 10.0.0.1 -> 10.0.0.21 or fd00::1 -> fd00::21,
    // inner TTL 63, outer TTL 64, outer ID = 0x1234 ^ 0xe1cb, GUE port
    // 6080 from source port 36108. The IPv6 inner packet is
    // [2001:db8:c::7]:40000 -> [2001:db8:f::10]:443, traffic class 0xb9.
    const INPUT4: &str =
        "02000000000202000000000108004529001e123440004011c22cc6336407cb00710a9c400050000a949a6869";
    const GUE4_NOCSUM: &str = "02000000000202000000000108004529003ed4ff4000401151710a0000010a0000158d0c17c0002a0000000400004529001e123440003f11c32cc6336407cb00710a9c400050000a949a6869";
    const GUE4_CSUM: &str = "02000000000202000000000108004529003ed4ff4000401151710a0000010a0000158d0c17c0002aad15000400004529001e123440003f11c32cc6336407cb00710a9c400050000a949a6869";
    const GRE4: &str = "020000000002020000000001080045290036d4ff4000402f515b0a0000010a000015000008004529001e123440003f11c32cc6336407cb00710a9c400050000a949a6869";
    const GRE4_CSUM: &str = "02000000000202000000000108004529003ad4ff4000402f51570a0000010a00001580000800de6000004529001e123440003f11c32cc6336407cb00710a9c400050000a949a6869";
    const GUE6_NOCSUM: &str = "02000000000202000000000186dd62900000002a1140fd000000000000000000000000000001fd0000000000000000000000000000218d0c17c0002a0000000400004529001e123440003f11c32cc6336407cb00710a9c400050000a949a6869";
    const GUE6_CSUM: &str = "02000000000202000000000186dd62900000002a1140fd000000000000000000000000000001fd0000000000000000000000000000218d0c17c0002ac707000400004529001e123440003f11c32cc6336407cb00710a9c400050000a949a6869";
    const GRE6_CSUM: &str = "02000000000202000000000186dd6290000000262f40fd000000000000000000000000000001fd00000000000000000000000000002180000800de6000004529001e123440003f11c32cc6336407cb00710a9c400050000a949a6869";
    const INPUT6: &str = "02000000000202000000000186dd6b900000000a114020010db8000c0000000000000000000720010db8000f000000000000000000109c4001bb000a9dd16869";
    const GRE6_IN6: &str = "02000000000202000000000186dd6b90000000362f40fd000000000000000000000000000001fd000000000000000000000000000021000086dd6b900000000a113f20010db8000c0000000000000000000720010db8000f000000000000000000109c4001bb000a9dd16869";
    const GUE6_IN6_CSUM: &str = "02000000000202000000000186dd6b900000003e1140fd000000000000000000000000000001fd0000000000000000000000000000219c3717c0003ed46f002900006b900000000a113f20010db8000c0000000000000000000720010db8000f000000000000000000109c4001bb000a9dd16869";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn tunnelled(input: &str, local: &str, rs: &str, t: Tunnel) -> Result<Vec<u8>, XmitError> {
        let inp = hex(input);
        let v6 = input.len() > 2 * 60;
        let (c, v) = if v6 {
            ((ip("2001:db8:c::7"), 40000), (ip("2001:db8:f::10"), 443))
        } else {
            ((ip("198.51.100.7"), 40000), (ip("203.0.113.10"), 80))
        };
        let conn = conn(FwdMethod::Tunnel, 17, c, v, (ip(rs), v.1), None);
        conn.dest().unwrap().set_tunnel(t);
        let (r, out) = run(&inp, |p| to_real(p, &conn, ip(local), 1500));
        r.map(|_| out)
    }

    const GUE: Tunnel = Tunnel::Gue {
        port: 6080,
        csum: TunnelCsum::NoCsum,
    };
    const GUE_CSUM: Tunnel = Tunnel::Gue {
        port: 6080,
        csum: TunnelCsum::Csum,
    };
    const GUE_REMCSUM: Tunnel = Tunnel::Gue {
        port: 6080,
        csum: TunnelCsum::RemCsum,
    };
    const GRE: Tunnel = Tunnel::Gre {
        csum: TunnelCsum::NoCsum,
    };
    const GRE_CSUM: Tunnel = Tunnel::Gre {
        csum: TunnelCsum::Csum,
    };

    #[test]
    fn gue_and_gre_over_ipv4_exact_bytes() {
        for (t, want) in [
            (GUE, GUE4_NOCSUM),
            (GUE_CSUM, GUE4_CSUM),
            (GRE, GRE4),
            (GRE_CSUM, GRE4_CSUM),
        ] {
            let out = tunnelled(INPUT4, "10.0.0.1", "10.0.0.21", t).unwrap();
            assert_eq!(out, hex(want), "{t:?}");
        }
    }

    #[test]
    fn gue_and_gre_over_ipv6_exact_bytes() {
        for (input, t, want) in [
            (INPUT4, GUE, GUE6_NOCSUM),
            (INPUT4, GUE_CSUM, GUE6_CSUM),
            (INPUT4, GRE_CSUM, GRE6_CSUM),
            (INPUT6, GRE, GRE6_IN6),
            (INPUT6, GUE_CSUM, GUE6_IN6_CSUM),
        ] {
            let out = tunnelled(input, "fd00::1", "fd00::21", t).unwrap();
            assert_eq!(out, hex(want), "{t:?}");
        }
    }

    /// rvs forwards packets whose inner checksum is complete, where the
    /// kernel's remcsum sends what csum does (see the module comment).
    #[test]
    fn remcsum_of_a_forwarded_packet_is_csum() {
        for (local, rs, want) in [
            ("10.0.0.1", "10.0.0.21", GUE4_CSUM),
            ("fd00::1", "fd00::21", GUE6_CSUM),
        ] {
            let out = tunnelled(INPUT4, local, rs, GUE_REMCSUM).unwrap();
            assert_eq!(out, hex(want));
        }
    }

    #[test]
    fn mtu_counts_the_encapsulation() {
        let (c4, v4) = ((ip("198.51.100.7"), 40000), (ip("203.0.113.10"), 80));
        // A 998-byte IPv4 inner packet with DF.
        let inp = frame(c4.0, v4.0, 64, &L4::Udp(c4.1, v4.1), &[7u8; 970]);
        for (t, over) in [(GUE, 32), (GUE_CSUM, 32), (GRE, 24), (GRE_CSUM, 28)] {
            let conn = conn(FwdMethod::Tunnel, 17, c4, v4, (ip("10.0.0.21"), 80), None);
            conn.dest().unwrap().set_tunnel(t);
            let fits = 998 + over;
            let (r, out) = run(&inp, |p| to_real(p, &conn, ip("10.0.0.1"), fits));
            assert!(r.is_ok(), "{t:?}");
            assert_eq!(out.len(), 14 + usize::from(fits));
            // One byte short: need-frag announcing what the inner packet may be.
            let (r, out) = run(&inp, |p| to_real(p, &conn, ip("10.0.0.1"), fits - 1));
            assert_eq!(r, Err(XmitError::TooBig { mtu: 997 }), "{t:?}");
            assert_eq!(out, inp);
        }
        // IPv6 outer and inner, GUE: 40 + 12 bytes; a 1300-byte packet.
        let (c6, v6) = ((ip("2001:db8:c::7"), 40000), (ip("2001:db8:f::10"), 443));
        let inp = frame(c6.0, v6.0, 64, &L4::Udp(c6.1, v6.1), &[7u8; 1252]);
        let conn = conn(FwdMethod::Tunnel, 17, c6, v6, (ip("fd00::21"), 443), None);
        conn.dest().unwrap().set_tunnel(GUE);
        let (r, _) = run(&inp, |p| to_real(p, &conn, ip("fd00::1"), 1352));
        assert!(r.is_ok());
        let (r, _) = run(&inp, |p| to_real(p, &conn, ip("fd00::1"), 1351));
        assert_eq!(r, Err(XmitError::TooBig { mtu: 1299 }));
        // A path under IPv6's 1280 is not announced.
        let (r, _) = run(&inp, |p| to_real(p, &conn, ip("fd00::1"), 1331));
        assert_eq!(r, Err(XmitError::Drop(crate::counters::DropReason::TooBig)));
    }

    /// Checksum offload on the egress port must not fill in the zero
    /// UDP checksum of --tun-nocsum over IPv6, and does offload csum's.
    #[test]
    fn offload_keeps_nocsum_over_ipv6() {
        use crate::packet::{L4Checksum, Packet, VecPacket};
        for (t, want, l4) in [
            (GUE, GUE6_NOCSUM, L4Checksum::None),
            (GUE_CSUM, GUE6_CSUM, L4Checksum::Udp),
        ] {
            let out = tunnelled(INPUT4, "fd00::1", "fd00::21", t).unwrap();
            assert_eq!(out, hex(want));
            let mut p = VecPacket::from_bytes(&out, 0);
            crate::xmit::request_checksum_offload(&mut p).unwrap();
            assert_eq!(p.offload.unwrap().l4, l4);
            if l4 == L4Checksum::None {
                assert_eq!(p.data(), &out[..]);
            }
        }
    }

    #[test]
    fn source_port_by_hand() {
        // hash ^ hash << 16, times 28231, upper 32 bits, plus 32768.
        assert_eq!(src_port(0), 32768);
        assert_eq!(src_port(0xffff_ffff), 32768);
        assert_eq!(src_port(0x1234_5678), 40299);
        assert_eq!(src_port(0x0000_ffff), 60998);
    }

    #[test]
    fn one_conn_one_port_and_conns_spread() {
        let mut ports = std::collections::HashSet::new();
        for cport in 1000..1064u16 {
            let c = conn(
                FwdMethod::Tunnel,
                6,
                (ip("198.51.100.7"), cport),
                (ip("203.0.113.10"), 80),
                (ip("10.0.0.21"), 80),
                None,
            );
            let p = src_port(flow_hash(&c));
            assert_eq!(p, src_port(flow_hash(&c)));
            assert!((32768..60999).contains(&p));
            ports.insert(p);
        }
        assert!(ports.len() > 56, "{}", ports.len());
    }
}
