//! IP tunnelling (`-i`): the client's packet, TTL lowered, goes to the real
//! server inside a new IP header (IPv4 protocol 4 for an IPv4 packet, IPv6
//! next header 41 for an IPv6 one; RFC 2003 / RFC 2473). The real server
//! decapsulates on an ipip/ip6tnl device holding the VIP and answers the
//! client directly.
//!
//! The outer family is the real server's; an IPv4 client reaching an IPv6
//! real server (or the reverse) is tunnelled as the kernel does since 5.3.
//! Outer header as the kernel's ip_vs_tunnel_xmit builds it, except the
//! TTL: DS field and ECN copied from the inner packet, DF copied from an
//! IPv4 inner packet (never set for an IPv6 one), IPv6 flow label zero,
//! TTL / hop limit 64 where the kernel copies the inner TTL.
//!
//! A dest with `--tun-type gue|gre` gets a UDP+GUE or GRE header between
//! the two ([`super::encap`]); the MTU check counts it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::encap;
use super::{
    be16, dec_ttl, parse_ip, set16, trim_padding, ttl_expires, XmitError, ETHERTYPE_IPV4,
    ETHERTYPE_IPV6, ETH_LEN,
};
use crate::counters::DropReason;
use crate::ipvs::{ConnRef, Tunnel};
use crate::packet::Packet;
use crate::wire::checksum;

enum Outer {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

/// TTL / hop limit of the outer header.
pub const OUTER_TTL: u8 = 64;
pub const PROTO_IPIP: u8 = 4;
const PROTO_IPV6: u8 = 41;

/// Encapsulates the client's packet for the conn's real server:
/// `local_src` → RIP, the director's address on the egress port as the
/// outer source. `mtu` is the egress link's IP MTU.
///
/// When the tunnelled packet would not fit `mtu` and the inner packet may
/// not be fragmented (IPv4 with DF, or IPv6), the answer is
/// `TooBig { mtu: mtu - overhead }` with the packet unchanged, for the
/// caller to send ICMP need-frag / packet-too-big to the client
/// ([`super::mtu`]). An IPv4 packet without DF is encapsulated with DF
/// clear in the outer header whatever its size, and the caller fragments
/// the tunnel packet as the kernel's ip_fragment would.
pub fn to_real<P: Packet>(
    pkt: &mut P,
    conn: &ConnRef<'_>,
    local_src: IpAddr,
    mtu: u16,
) -> Result<IpAddr, XmitError> {
    let rs = conn.daddr();
    let outer = match (local_src, rs) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Outer::V4(s, d),
        (IpAddr::V6(s), IpAddr::V6(d)) => Outer::V6(s, d),
        _ => return Err(XmitError::Drop(DropReason::Unsupported)),
    };
    let ip = parse_ip(pkt.data())?;
    if ttl_expires(pkt.data(), &ip) {
        return Err(XmitError::TtlExceeded);
    }
    let tunnel = conn.dest().map_or(Tunnel::Ipip, |d| d.tunnel());
    let inner_len = ip.end - ETH_LEN;
    let ip_len: usize = if rs.is_ipv6() { 40 } else { 20 };
    let encap_len = encap::header_len(tunnel);
    let outer_len = ip_len + encap_len;
    let b = pkt.data();
    let inner_df = ip.v6 || be16(b, ETH_LEN + 6) & 0x4000 != 0;
    let total = inner_len + outer_len;
    super::mtu::fit(b, &ip, mtu, outer_len)?;
    if total > usize::from(u16::MAX) {
        return Err(XmitError::Drop(DropReason::Unsupported));
    }
    if pkt.headroom() < outer_len {
        return Err(XmitError::Drop(DropReason::NoBuffer));
    }
    // Read before the headers move.
    let (tos, ident) = if ip.v6 {
        let tc = (be16(b, ETH_LEN) >> 4) as u8;
        (tc, flow_ident(b, &ip))
    } else {
        (b[ETH_LEN + 1], be16(b, ETH_LEN + 4) ^ flow_ident(b, &ip))
    };
    let df_out = !ip.v6 && inner_df;
    let inner_proto = if ip.v6 { PROTO_IPV6 } else { PROTO_IPIP };
    let proto = encap::outer_proto(tunnel, inner_proto);
    let sport = match tunnel {
        Tunnel::Gue { .. } => encap::src_port(encap::flow_hash(conn)),
        _ => 0,
    };
    trim_padding(pkt, &ip);
    dec_ttl(pkt.data_mut(), &ip);
    if !pkt.prepend(outer_len) {
        return Err(XmitError::Drop(DropReason::NoBuffer));
    }
    let b = pkt.data_mut();
    b.copy_within(outer_len..outer_len + ETH_LEN, 0);
    let o = ETH_LEN;
    match outer {
        Outer::V4(s, d) => {
            set16(b, 12, ETHERTYPE_IPV4);
            let h = OuterV4 {
                tos,
                total: total as u16,
                ident,
                df: df_out,
                proto,
                src: s.octets(),
                dst: d.octets(),
            };
            h.write(&mut b[o..o + 20]);
        }
        Outer::V6(s, d) => {
            set16(b, 12, ETHERTYPE_IPV6);
            let w = 0x6000_0000u32 | u32::from(tos) << 20;
            b[o..o + 4].copy_from_slice(&w.to_be_bytes());
            set16(b, o + 4, (inner_len + encap_len) as u16);
            b[o + 6] = proto;
            b[o + 7] = OUTER_TTL;
            b[o + 8..o + 24].copy_from_slice(&s.octets());
            b[o + 24..o + 40].copy_from_slice(&d.octets());
        }
    }
    encap::write(&mut b[o + ip_len..], tunnel, ip.v6, local_src, rs, sport);
    Ok(rs)
}

/// An outer IPv4 header's fields that vary (the rest as ip_vs_tunnel_xmit
/// writes them, TTL `OUTER_TTL`): one writer for the full path and the
/// express lane.
pub struct OuterV4 {
    pub tos: u8,
    pub total: u16,
    pub ident: u16,
    pub df: bool,
    pub proto: u8,
    pub src: [u8; 4],
    pub dst: [u8; 4],
}

impl OuterV4 {
    /// Writes the 20-byte header, its checksum included, into `o`.
    #[inline]
    pub fn write(&self, o: &mut [u8]) {
        let Some(o) = o.get_mut(..20) else {
            return;
        };
        o[0] = 0x45;
        o[1] = self.tos;
        o[2..4].copy_from_slice(&self.total.to_be_bytes());
        o[4..6].copy_from_slice(&self.ident.to_be_bytes());
        o[6..8].copy_from_slice(&(if self.df { 0x4000u16 } else { 0 }).to_be_bytes());
        o[8] = OUTER_TTL;
        o[9] = self.proto;
        o[10..12].fill(0);
        o[12..16].copy_from_slice(&self.src);
        o[16..20].copy_from_slice(&self.dst);
        let c = checksum::checksum(o);
        o[10..12].copy_from_slice(&c.to_be_bytes());
    }
}

/// What a flow's outer IPv4 IDs are mixed with: the client's address and
/// the inner packet's ports (`flow_ident`).
pub fn ident_mix(src: &[u8], ports: &[u8]) -> u16 {
    checksum::fold(checksum::sum(src) + checksum::sum(ports))
}

/// Spreads the outer IPv4 identification over clients: many clients share
/// one (director, real server) pair, so the inner ID alone would repeat
/// within that pair far sooner than one sender's IDs do.
fn flow_ident(b: &[u8], ip: &super::Ip) -> u16 {
    let src = if ip.v6 {
        &b[ETH_LEN + 8..ETH_LEN + 24]
    } else {
        &b[ETH_LEN + 12..ETH_LEN + 16]
    };
    let ports = b
        .get(ip.l4..ip.end)
        .and_then(|l4| l4.get(..4))
        .unwrap_or(&[]);
    ident_mix(src, ports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::FwdMethod;
    use crate::packet::VecPacket;
    use crate::xmit::testkit::*;
    use etherparse::{Ipv4Header, Ipv6Header};

    fn tun_conn(a: &Addrs, rs: IpAddr, proto: u8) -> HeldConn {
        conn(
            FwdMethod::Tunnel,
            proto,
            a.client,
            a.vip,
            (rs, a.vip.1),
            None,
        )
    }

    /// The inner frame: the outer Ethernet header with the inner's type.
    fn inner_frame(out: &[u8], outer_len: usize, inner_v6: bool) -> Vec<u8> {
        let mut f = out[..14].to_vec();
        f[12..14].copy_from_slice(if inner_v6 {
            &[0x86, 0xdd]
        } else {
            &[0x08, 0x00]
        });
        f.extend_from_slice(&out[14 + outer_len..]);
        f
    }

    #[test]
    fn encapsulates_every_family_pair() {
        let local4 = ip("10.0.0.1");
        let local6 = ip("fd00::1");
        for a in [v4(), v6()] {
            for (rs, local) in [(ip("10.0.0.21"), local4), (ip("fd00::21"), local6)] {
                for (proto, l4) in [
                    (6, tcp(a.client.1, a.vip.1, "S", &syn_opts())),
                    (6, tcp(a.client.1, a.vip.1, "PA", &[])),
                    (17, L4::Udp(a.client.1, a.vip.1)),
                ] {
                    let c = tun_conn(&a, rs, proto);
                    let inp = frame(a.client.0, a.vip.0, 64, &l4, b"hello");
                    let (r, out) = run(&inp, |p| to_real(p, &c, local, 1500));
                    assert_eq!(r, Ok(rs));
                    let inner_v6 = a.client.0.is_ipv6();
                    let inner_len = inp.len() - 14;
                    assert_eq!(&out[..12], &inp[..12]);
                    let outer_len = if rs.is_ipv6() {
                        assert_eq!(&out[12..14], &[0x86, 0xdd]);
                        let (h, rest) = Ipv6Header::from_slice(&out[14..]).unwrap();
                        assert_eq!(h.next_header.0, if inner_v6 { 41 } else { 4 });
                        assert_eq!(h.hop_limit, 64);
                        assert_eq!(usize::from(h.payload_length), inner_len);
                        assert_eq!(h.traffic_class, if inner_v6 { 0xb9 } else { 0x29 });
                        assert_eq!(h.flow_label.value(), 0);
                        assert_eq!(IpAddr::from(h.source), local);
                        assert_eq!(IpAddr::from(h.destination), rs);
                        assert_eq!(rest.len(), inner_len);
                        40
                    } else {
                        assert_eq!(&out[12..14], &[0x08, 0x00]);
                        let (h, rest) = Ipv4Header::from_slice(&out[14..]).unwrap();
                        assert_eq!(h.ihl(), 5);
                        assert_eq!(h.protocol.0, if inner_v6 { 41 } else { 4 });
                        assert_eq!(h.time_to_live, 64);
                        assert_eq!(usize::from(h.total_len), inner_len + 20);
                        // Inner IPv4 has DF (etherparse's default); IPv6 never.
                        assert_eq!(h.dont_fragment, !inner_v6);
                        assert!(!h.more_fragments);
                        assert_eq!(h.fragment_offset.value(), 0);
                        assert_eq!(out[15], if inner_v6 { 0xb9 } else { 0x29 });
                        assert_eq!(IpAddr::from(h.source), local);
                        assert_eq!(IpAddr::from(h.destination), rs);
                        assert_eq!(fold(ones(&out[14..34])), 0xffff);
                        assert_eq!(rest.len(), inner_len);
                        20
                    };
                    let inner = inner_frame(&out, outer_len, inner_v6);
                    let mut want = view(&inp);
                    want.set_ttl(63);
                    assert_eq!(view(&inner), want);
                    assert_checksums(&inner, false);
                }
            }
        }
    }

    #[test]
    fn too_big_and_df() {
        for a in [v4(), v6()] {
            let c = tun_conn(&a, a.rs.0, 6);
            let local = if a.rs.0.is_ipv4() {
                ip("10.0.0.1")
            } else {
                ip("fd00::1")
            };
            let over = if a.rs.0.is_ipv4() { 20 } else { 40 };
            let base = frame(a.client.0, a.vip.0, 64, &tcp(1, 2, "PA", &[]), b"").len() - 14;
            // Exactly fits.
            let fit = frame(
                a.client.0,
                a.vip.0,
                64,
                &tcp(1, 2, "PA", &[]),
                &vec![0u8; 1500 - over - base],
            );
            let (r, out) = run(&fit, |p| to_real(p, &c, local, 1500));
            assert!(r.is_ok());
            assert_eq!(out.len(), 14 + 1500);
            // One byte over.
            let big = frame(
                a.client.0,
                a.vip.0,
                64,
                &tcp(1, 2, "PA", &[]),
                &vec![0u8; 1501 - over - base],
            );
            let (r, out) = run(&big, |p| to_real(p, &c, local, 1500));
            assert_eq!(
                r,
                Err(XmitError::TooBig {
                    mtu: 1500 - over as u16
                })
            );
            assert_eq!(out, big);
            if a.client.0.is_ipv4() {
                // Without DF it is tunnelled whatever its size, DF clear
                // outside, for the caller to fragment the tunnel packet.
                let mut nodf = big.clone();
                nodf[20] &= !0x40;
                nodf[24] = 0;
                nodf[25] = 0;
                let c16 = !fold(ones(&nodf[14..34]));
                nodf[24..26].copy_from_slice(&c16.to_be_bytes());
                for mtu in [1500, 1600] {
                    let (r, out) = run(&nodf, |p| to_real(p, &c, local, mtu));
                    assert!(r.is_ok());
                    assert_eq!(out.len(), 14 + 1501);
                    assert_eq!(out[20] & 0x40, 0);
                }
            } else {
                // A path MTU below IPv6's minimum is not announced.
                let (r, _) = run(&big, |p| to_real(p, &c, local, 1300));
                assert_eq!(r, Err(XmitError::Drop(DropReason::TooBig)));
            }
        }
    }

    #[test]
    fn ttl_family_and_headroom() {
        let a = v4();
        let c = tun_conn(&a, a.rs.0, 17);
        let inp = frame(a.client.0, a.vip.0, 1, &L4::Udp(1, 2), b"x");
        let (r, out) = run(&inp, |p| to_real(p, &c, ip("10.0.0.1"), 1500));
        assert_eq!(r, Err(XmitError::TtlExceeded));
        assert_eq!(out, inp);
        let inp = frame(a.client.0, a.vip.0, 9, &L4::Udp(1, 2), b"x");
        let (r, _) = run(&inp, |p| to_real(p, &c, ip("fd00::1"), 1500));
        assert_eq!(r, Err(XmitError::Drop(DropReason::Unsupported)));
        // Only 8 bytes of headroom: no room for the outer header.
        let mut p = VecPacket::from_bytes(&inp, 0);
        assert!(p.prepend(VecPacket::HEADROOM - 8));
        let n = inp.len();
        p.data_mut().copy_within(VecPacket::HEADROOM - 8.., 0);
        assert!(p.trim(VecPacket::HEADROOM - 8));
        assert_eq!(p.data(), &inp[..]);
        let r = to_real(&mut p, &c, ip("10.0.0.1"), 1500);
        assert_eq!(r, Err(XmitError::Drop(DropReason::NoBuffer)));
        assert_eq!(p.data(), &inp[..n]);
        // Ethernet padding is not tunnelled.
        let mut padded = frame(a.client.0, a.vip.0, 9, &L4::Udp(1, 2), b"");
        padded.resize(60, 0xaa);
        let (r, out) = run(&padded, |p| to_real(p, &c, ip("10.0.0.1"), 1500));
        assert!(r.is_ok());
        assert_eq!(out.len(), 14 + 20 + 28);
    }
}
