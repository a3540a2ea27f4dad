//! The egress MTU through the load-balancing stage, every mode and both
//! directions: a director whose client side has MTU 9000 and whose server
//! side has 1500 (or the reverse) answers a datagram that may not be
//! fragmented with fragmentation needed / packet too big carrying the
//! egress MTU, counts it too_big, and sends one without DF in fragments;
//! and the ICMP errors it originates obey the rate limits. Expected bytes
//! are read with etherparse and summed by hand here, never with `wire`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use etherparse::{Icmpv4Slice, Icmpv4Type, Icmpv6Slice, Icmpv6Type, PacketHeaders};

use super::lb::{Lb, Outcome};
use crate::counters::{DropReason, WorkerCounters};
use crate::ipvs::proto::Timeouts;
use crate::ipvs::{DestConfig, FwdMethod, Protocol, ServiceConfig, ServiceKey, ServiceTable};
use crate::netstack::{
    AddrKind, IcmpLimits, Iface, IfaceAddr, Millis, NeighUpdate, NetConfig, Stack,
};
use crate::packet::{Packet, VecPacket};
// What the stage sends, and how many buffers it may still take.
use crate::netstack::tests::Wire as Capture;
use crate::wire::MacAddr;
use crate::xmit::testkit::{fold, frame, ones, pseudo, L4};

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const GWC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const GWS: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
const RS: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 11);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x18, 0, 0, 0, 0, 0, 2);
const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x18, 0, 0, 0, 0, 0, 0x100);
const GWC6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x18, 0, 0, 0, 0, 0, 1);
const RS6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x19, 0, 0, 0, 0, 0, 0x11);

/// Ports: FULLNAT 53, DR 54, NAT 55 (UDP, IPv4 and IPv6).
const FNAT: u16 = 53;
const DR: u16 = 54;
const NAT: u16 = 55;

fn net(client_mtu: u16, server_mtu: u16) -> NetConfig {
    let iface = |port: u16, mtu: u16, a: [IpAddr; 2]| Iface {
        port,
        name: format!("p{port}"),
        mac: MacAddr([2, 0, 0, 0, 0, port as u8 + 1]),
        addrs: a
            .iter()
            .map(|&addr| IfaceAddr {
                addr,
                prefix_len: if addr.is_ipv4() { 24 } else { 64 },
            })
            .collect(),
        mtu,
        tx_checksum: false,
    };
    NetConfig::new(
        vec![
            iface(0, client_mtu, [GWC.into(), GWC6.into()]),
            iface(
                1,
                server_mtu,
                [
                    GWS.into(),
                    Ipv6Addr::new(0xfd00, 0x19, 0, 0, 0, 0, 0, 1).into(),
                ],
            ),
        ],
        vec![],
    )
    .with_extra([(VIP.into(), AddrKind::Vip), (VIP6.into(), AddrKind::Vip)])
}

fn services() -> ServiceTable {
    let mut table = ServiceTable::new(1);
    // TCP 80 FULLNAT and SCTP 81 NAT, IPv4; UDP 56 and 57 TUN (ipip) to
    // the real server's IPv4 and IPv6 addresses.
    for (proto, port, fwd, rs) in [
        (Protocol::Tcp, 80, FwdMethod::FullNat, IpAddr::from(RS)),
        (Protocol::Sctp, 81, FwdMethod::Masq, RS.into()),
        (Protocol::Udp, 56, FwdMethod::Tunnel, RS.into()),
        (Protocol::Udp, 57, FwdMethod::Tunnel, RS6.into()),
    ] {
        let key = ServiceKey::Addr {
            proto,
            addr: VIP.into(),
            port,
        };
        table.add_service(ServiceConfig::new(key)).unwrap();
        let mut d = DestConfig::new(rs, port);
        d.fwd = fwd;
        table.add_dest(&key, d).unwrap();
    }
    for (vip, rs) in [
        (IpAddr::from(VIP), IpAddr::from(RS)),
        (VIP6.into(), RS6.into()),
    ] {
        for (port, fwd) in [
            (FNAT, FwdMethod::FullNat),
            (DR, FwdMethod::DirectRoute),
            (NAT, FwdMethod::Masq),
        ] {
            let key = ServiceKey::Addr {
                proto: Protocol::Udp,
                addr: vip,
                port,
            };
            table.add_service(ServiceConfig::new(key)).unwrap();
            let mut d = DestConfig::new(rs, port);
            d.fwd = fwd;
            table.add_dest(&key, d).unwrap();
        }
    }
    table
}

struct Rig {
    net: NetConfig,
    svcs: crate::ipvs::ServiceSet,
    lb: Lb,
    stack: Stack<VecPacket>,
    counters: Arc<WorkerCounters>,
    out: Capture,
}

fn rig(client_mtu: u16, server_mtu: u16, limits: &IcmpLimits) -> Rig {
    let net = net(client_mtu, server_mtu);
    let counters = Arc::new(WorkerCounters::default());
    let mut stack: Stack<VecPacket> = Stack::new(64, counters.clone());
    stack.set_icmp_limits(limits, 1);
    let mut out = Capture::default();
    for (port, ip, last) in [
        (0, IpAddr::from(CLIENT), 0x22),
        (0, CLIENT6.into(), 0x22),
        (1, RS.into(), 0x11),
        (1, RS6.into(), 0x11),
    ] {
        let mac = MacAddr([2, 0, 0, 0, 0, last]);
        stack.static_neighbour(&net, NeighUpdate { port, ip, mac }, &mut out);
    }
    out.sent.clear();
    Rig {
        svcs: services().snapshot(),
        lb: Lb::new(0, 1, 256, counters.clone()),
        net,
        stack,
        counters,
        out,
    }
}

impl Rig {
    fn feed(&mut self, f: &[u8], port: u16, now: Millis) {
        // Addressed to the receiving port's MAC, as a neighbour sends it.
        let mut f = f.to_vec();
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, port as u8 + 1]);
        let pkt = VecPacket::from_bytes(&f, port);
        let tmo = Timeouts::default();
        let o = self.lb.input(
            &self.net,
            &self.svcs,
            &tmo,
            pkt,
            now,
            &mut self.stack,
            &mut self.out,
        );
        assert!(matches!(o, Outcome::Done), "not the load balancer's");
    }
}

/// A UDP datagram of `total` IP bytes src→dst, TTL 64, DF as given (IPv4),
/// data counting up.
fn udp(src: (IpAddr, u16), dst: (IpAddr, u16), total: usize, df: bool) -> Vec<u8> {
    let hl = if src.0.is_ipv4() { 20 } else { 40 };
    let data: Vec<u8> = (0..total - hl - 8).map(|i| (i % 249) as u8).collect();
    let mut f = frame(src.0, dst.0, 64, &L4::Udp(src.1, dst.1), &data);
    if src.0.is_ipv4() {
        f[20] = if df { 0x40 } else { 0 };
        f[21] = 0;
        f[24..26].fill(0);
        let c = !fold(ones(&f[14..34]));
        f[24..26].copy_from_slice(&c.to_be_bytes());
    }
    assert_eq!(f.len(), 14 + total);
    f
}

/// The one ICMP error sent: (port, outer source, outer destination, type,
/// code, MTU field, quote), its checksums checked by hand.
fn icmp_error(sent: &[(u16, Vec<u8>)]) -> (u16, IpAddr, IpAddr, Icmp, Vec<u8>) {
    assert_eq!(sent.len(), 1, "one packet out");
    let (port, f) = &sent[0];
    let p = PacketHeaders::from_ethernet_slice(f).unwrap();
    match p.net.unwrap() {
        etherparse::NetHeaders::Ipv4(h, _) => {
            assert_eq!(fold(ones(&f[14..34])), 0xffff);
            let icmp = Icmpv4Slice::from_slice(&f[34..]).unwrap();
            assert_eq!(fold(ones(&f[34..])), 0xffff, "ICMP checksum");
            let t = match icmp.icmp_type() {
                Icmpv4Type::DestinationUnreachable(
                    etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu },
                ) => Icmp::FragNeeded(next_hop_mtu),
                Icmpv4Type::TimeExceeded(_) => Icmp::TimeExceeded,
                t => panic!("{t:?}"),
            };
            (
                *port,
                h.source.into(),
                h.destination.into(),
                t,
                icmp.payload().to_vec(),
            )
        }
        etherparse::NetHeaders::Ipv6(h, _) => {
            let l4 = &f[54..];
            let s = ones(&pseudo(h.source.into(), h.destination.into(), 58, l4.len())) + ones(l4);
            assert_eq!(fold(s), 0xffff, "ICMPv6 checksum");
            let icmp = Icmpv6Slice::from_slice(l4).unwrap();
            let t = match icmp.icmp_type() {
                Icmpv6Type::PacketTooBig { mtu } => Icmp::TooBig(mtu),
                t => panic!("{t:?}"),
            };
            (
                *port,
                h.source.into(),
                h.destination.into(),
                t,
                icmp.payload().to_vec(),
            )
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Icmp {
    FragNeeded(u16),
    TooBig(u32),
    TimeExceeded,
}

#[test]
fn client_to_server_df_over_the_server_mtu_is_answered_in_every_mode() {
    for vport in [FNAT, DR, NAT] {
        let mut r = rig(9000, 1500, &IcmpLimits::default());
        let big = udp((CLIENT.into(), 40000), (VIP.into(), vport), 8000, true);
        r.feed(&big, 0, 1000);
        let (port, src, dst, t, quote) = icmp_error(&r.out.sent);
        assert_eq!(
            (port, src, dst, t),
            (0, GWC.into(), CLIENT.into(), Icmp::FragNeeded(1500)),
            "port {vport}"
        );
        // 576 - 20 - 8 bytes of the datagram as the client sent it.
        assert_eq!(quote, big[14..14 + 548], "port {vport}");
        assert_eq!(r.counters.drops(DropReason::TooBig), 1);
        assert_eq!(r.counters.icmp_errors.get(), 1);
        // Exactly the MTU goes through whole.
        r.out.sent.clear();
        let fits = udp((CLIENT.into(), 40000), (VIP.into(), vport), 1500, true);
        r.feed(&fits, 0, 1000);
        assert_eq!(r.out.sent.len(), 1);
        assert_eq!((r.out.sent[0].0, r.out.sent[0].1.len()), (1, 1514));
    }
}

#[test]
fn ipv6_over_the_server_mtu_gets_packet_too_big() {
    for vport in [FNAT, DR, NAT] {
        let mut r = rig(9000, 1500, &IcmpLimits::default());
        let big = udp((CLIENT6.into(), 40000), (VIP6.into(), vport), 3000, true);
        r.feed(&big, 0, 1000);
        let (port, src, dst, t, quote) = icmp_error(&r.out.sent);
        assert_eq!(
            (port, src, dst, t),
            (0, GWC6.into(), CLIENT6.into(), Icmp::TooBig(1500)),
            "port {vport}"
        );
        // 1280 - 40 - 8 bytes of the packet.
        assert_eq!(quote, big[14..14 + 1232]);
        assert_eq!(r.counters.drops(DropReason::TooBig), 1);
    }
}

/// The fragments sent on port 1, put back together by offset: (source,
/// destination, MF and offset of each, reassembled datagram).
fn reassemble(sent: &[(u16, Vec<u8>)]) -> (IpAddr, IpAddr, Vec<(usize, u16)>, Vec<u8>) {
    let mut layout = Vec::new();
    let mut data = Vec::new();
    let mut addrs = None;
    for (port, f) in sent {
        assert_eq!(*port, 1);
        let h = &f[14..34];
        assert_eq!(fold(ones(h)), 0xffff, "header checksum");
        assert_eq!(h[0], 0x45);
        let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
        assert_eq!(f.len(), 14 + total);
        assert!(total <= 1500);
        let word = u16::from_be_bytes([h[6], h[7]]);
        let off = usize::from(word & 0x1fff) * 8;
        assert_eq!(off, data.len(), "in order, no gap");
        data.extend_from_slice(&f[34..]);
        layout.push((total, word));
        let a: (IpAddr, IpAddr) = (
            Ipv4Addr::new(h[12], h[13], h[14], h[15]).into(),
            Ipv4Addr::new(h[16], h[17], h[18], h[19]).into(),
        );
        assert_eq!(*addrs.get_or_insert(a), a);
    }
    let (s, d) = addrs.unwrap();
    (s, d, layout, data)
}

#[test]
fn client_to_server_without_df_goes_in_fragments_in_every_mode() {
    for vport in [FNAT, DR, NAT] {
        let mut r = rig(9000, 1500, &IcmpLimits::default());
        let big = udp((CLIENT.into(), 40000), (VIP.into(), vport), 4000, false);
        r.feed(&big, 0, 1000);
        let (s, d, layout, dg) = reassemble(&r.out.sent);
        // 3980 bytes of data: 1480 + 1480 + 1020 at 0, 185 and 370 (x 8).
        assert_eq!(layout, [(1500, 0x2000), (1500, 0x2000 | 185), (1040, 370)]);
        let (want_src, want_dst, want_sport) = match vport {
            FNAT => (IpAddr::from(GWS), IpAddr::from(RS), None),
            DR => (CLIENT.into(), VIP.into(), Some(40000)),
            _ => (CLIENT.into(), RS.into(), Some(40000)),
        };
        assert_eq!((s, d), (want_src, want_dst), "port {vport}");
        let sport = u16::from_be_bytes([dg[0], dg[1]]);
        if let Some(p) = want_sport {
            assert_eq!(sport, p);
        }
        assert_eq!(u16::from_be_bytes([dg[2], dg[3]]), vport);
        assert_eq!(dg[8..], big[42..], "the data");
        let sum = ones(&pseudo(s, d, 17, dg.len())) + ones(&dg);
        assert_eq!(fold(sum), 0xffff, "the datagram's UDP checksum");
        assert_eq!(r.counters.frag_ok.get(), 1);
        assert_eq!(r.counters.frag_creates.get(), 3);
        assert_eq!(r.counters.total_drops(), 0);
    }
}

#[test]
fn server_to_client_is_checked_against_the_client_side() {
    // The reverse: client side 1500, server side 9000. A FULLNAT and a
    // NAT conn, then the real server's big reply.
    for vport in [FNAT, NAT] {
        let mut r = rig(1500, 9000, &IcmpLimits::default());
        r.feed(
            &udp((CLIENT.into(), 40000), (VIP.into(), vport), 100, true),
            0,
            1000,
        );
        let (_, first) = r.out.sent.pop().unwrap();
        // Where the real server's reply goes: the request's source and port.
        let rs_peer: IpAddr = Ipv4Addr::new(first[26], first[27], first[28], first[29]).into();
        let rs_peer_port = u16::from_be_bytes([first[34], first[35]]);
        let from_rs = |total, df| udp((RS.into(), vport), (rs_peer, rs_peer_port), total, df);
        let big = from_rs(8000, true);
        r.feed(&big, 1, 1001);
        let (port, src, dst, t, quote) = icmp_error(&r.out.sent);
        assert_eq!(
            (port, src, dst, t),
            (1, GWS.into(), RS.into(), Icmp::FragNeeded(1500)),
            "port {vport}"
        );
        assert_eq!(quote, big[14..14 + 548]);
        r.out.sent.clear();
        // Without DF: fragments to the client, from the VIP.
        r.feed(&from_rs(3000, false), 1, 1002);
        let frags: Vec<_> = r.out.sent.iter().map(|(_, f)| (1, f.clone())).collect();
        assert!(r.out.sent.iter().all(|(p, _)| *p == 0));
        let (s, d, layout, dg) = reassemble(&frags);
        assert_eq!((s, d), (VIP.into(), CLIENT.into()));
        // 2980 bytes of data: 1480 + 1480 + 20.
        assert_eq!(layout, [(1500, 0x2000), (1500, 0x2000 | 185), (40, 370)]);
        assert_eq!(u16::from_be_bytes([dg[0], dg[1]]), vport);
        assert_eq!(u16::from_be_bytes([dg[2], dg[3]]), 40000);
        let sum = ones(&pseudo(s, d, 17, dg.len())) + ones(&dg);
        assert_eq!(fold(sum), 0xffff);
    }
}

#[test]
fn fragments_without_buffers_are_a_counted_drop() {
    let mut r = rig(9000, 1500, &IcmpLimits::default());
    r.out.buffers = Some(1);
    r.feed(
        &udp((CLIENT.into(), 40000), (VIP.into(), FNAT), 4000, false),
        0,
        1000,
    );
    assert_eq!(r.counters.drops(DropReason::NoBuffer), 1);
    assert_eq!(r.counters.frag_ok.get(), 0);
}

#[test]
fn time_exceeded_is_rate_limited_per_destination_and_frag_needed_is_not() {
    let mut r = rig(9000, 1500, &IcmpLimits::default());
    let mut expiring = udp((CLIENT.into(), 40000), (VIP.into(), FNAT), 100, true);
    expiring[22] = 1;
    expiring[24..26].fill(0);
    let c = !fold(ones(&expiring[14..34]));
    expiring[24..26].copy_from_slice(&c.to_be_bytes());
    for _ in 0..20 {
        r.feed(&expiring, 0, 5000);
    }
    // A new destination's bucket holds 6 messages (6 x icmp_ratelimit).
    assert_eq!(r.out.sent.len(), 6);
    assert!(icmp_error(&r.out.sent[..1]).3 == Icmp::TimeExceeded);
    assert_eq!(r.counters.icmp_errors.get(), 6);
    assert_eq!(r.counters.icmp_limited_host.get(), 14);
    // A second later, one more.
    r.feed(&expiring, 0, 6000);
    assert_eq!(r.out.sent.len(), 7);
    r.out.sent.clear();
    // Fragmentation needed is never limited ("don't limit PMTU discovery").
    let big = udp((CLIENT.into(), 40001), (VIP.into(), FNAT), 8000, true);
    for _ in 0..100 {
        r.feed(&big, 0, 6000);
    }
    assert_eq!(r.out.sent.len(), 100);
    assert_eq!(r.counters.drops(DropReason::TooBig), 100);
}

#[test]
fn echo_replies_follow_the_mask_and_the_global_budget() {
    // ICMP echo request 198.18.0.2 → 198.18.0.1, id 1, seq 1.
    let mut msg = vec![8, 0, 0, 0, 0, 1, 0, 1];
    msg.extend_from_slice(&[0x61; 56]);
    let c = !fold(ones(&msg));
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    let req = crate::xmit::testkit::ip_frame(CLIENT.into(), GWC.into(), 64, 1, &msg);
    let replies = |limits: &IcmpLimits| {
        let mut r = rig(1500, 1500, limits);
        for _ in 0..200 {
            let mut p = VecPacket::from_bytes(&req, 0);
            // To our MAC, as the network stack checks.
            p.data_mut()[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
            r.stack.input(&r.net, p, 1000, &mut r.out);
        }
        (r.out.sent.len() as u64, r.counters)
    };
    // The kernel's default mask leaves echo replies alone.
    let (n, c) = replies(&IcmpLimits::default());
    assert_eq!((n, c.echo_replies.get()), (200, 200));
    // With echo reply in the mask and no per-destination limit: the burst
    // of 50 credits, then (the bucket last filled at time 0, a second
    // before) one refill of another 50, each reply taking 0, 1 or 2 at
    // random. At least 25 + 25 replies (every draw 2); about 101 on
    // average, with a standard deviation near 8 (two sums of uniform 0..2
    // draws reaching 50), so 160 is over six deviations out.
    let (n, c) = replies(&IcmpLimits {
        icmp_ratemask: 6169,
        icmp_ratelimit: 0,
        ..IcmpLimits::default()
    });
    assert!((50..=160).contains(&n), "{n} replies");
    assert_eq!(c.icmp_limited_global.get(), 200 - n);
    // With the per-destination limit too: 6 at most.
    let (n, c) = replies(&IcmpLimits {
        icmp_ratemask: 6169,
        ..IcmpLimits::default()
    });
    assert_eq!(n, 6);
    assert_eq!(c.icmp_limited_host.get(), 194);
}

/// Sets DF (or clears it) in an IPv4 frame and refreshes its checksum.
fn with_df(mut f: Vec<u8>, df: bool) -> Vec<u8> {
    f[20] = if df { 0x40 } else { 0 };
    f[24..26].fill(0);
    let c = !fold(ones(&f[14..34]));
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

#[test]
fn tcp_and_sctp_take_the_same_path() {
    use crate::xmit::testkit::{ip_frame, tcp};
    let mut r = rig(9000, 1500, &IcmpLimits::default());
    // A SYN opens the TCP conn, then a 4000-byte segment with DF.
    let seg = |flags: &str, len: usize, df: bool| {
        let data: Vec<u8> = (0..len).map(|i| (i % 241) as u8).collect();
        let l4 = tcp(40000, 80, flags, &[]);
        with_df(frame(CLIENT.into(), VIP.into(), 64, &l4, &data), df)
    };
    r.feed(&seg("S", 0, true), 0, 1000);
    assert_eq!(r.out.sent.len(), 1);
    r.out.sent.clear();
    let big = seg("PA", 3960, true);
    r.feed(&big, 0, 1001);
    let (port, src, dst, t, quote) = icmp_error(&r.out.sent);
    assert_eq!(
        (port, src, dst, t),
        (0, GWC.into(), CLIENT.into(), Icmp::FragNeeded(1500))
    );
    assert_eq!(quote, big[14..14 + 548]);
    r.out.sent.clear();
    // Without DF: three fragments to the real server, the segment's
    // checksum right over the datagram they make.
    r.feed(&seg("PA", 3960, false), 0, 1002);
    let (s, d, layout, dg) = reassemble(&r.out.sent);
    assert_eq!((s, d), (GWS.into(), RS.into()));
    assert_eq!(layout, [(1500, 0x2000), (1500, 0x2000 | 185), (1040, 370)]);
    let sum = ones(&pseudo(s, d, 6, dg.len())) + ones(&dg);
    assert_eq!(fold(sum), 0xffff, "TCP checksum");
    r.out.sent.clear();
    // An SCTP INIT of 4000 bytes with DF to the NAT service.
    let mut p = vec![0x9c, 0x40, 0, 81, 0, 0, 0, 0, 0, 0, 0, 0];
    let chunk = 4000 - 20 - 12;
    p.extend_from_slice(&[1, 0]);
    p.extend_from_slice(&(chunk as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1]);
    p.resize(12 + chunk, 0);
    crate::wire::SctpPacket::new_unchecked(&mut p[..]).fill_checksum();
    let init = with_df(ip_frame(CLIENT.into(), VIP.into(), 64, 132, &p), true);
    r.feed(&init, 0, 1003);
    let (_, _, dst, t, _) = icmp_error(&r.out.sent);
    assert_eq!((dst, t), (CLIENT.into(), Icmp::FragNeeded(1500)));
    assert_eq!(r.counters.drops(DropReason::TooBig), 2);
}

#[test]
fn tun_answers_with_the_mtu_less_its_header_and_fragments_the_tunnel_packet() {
    let mut r = rig(9000, 1500, &IcmpLimits::default());
    // With DF: the inner datagram may be 1480 bytes in 20 of ipip.
    r.feed(
        &udp((CLIENT.into(), 40000), (VIP.into(), 56), 1481, true),
        0,
        1000,
    );
    let (_, _, _, t, _) = icmp_error(&r.out.sent);
    assert_eq!(t, Icmp::FragNeeded(1480));
    r.out.sent.clear();
    // Without DF: the ipip packet (protocol 4, DF clear like the inner
    // one) goes in fragments; put together, it is the client's datagram
    // behind a 20-byte header.
    let inner = udp((CLIENT.into(), 40000), (VIP.into(), 56), 3000, false);
    r.feed(&inner, 0, 1001);
    assert!(r.out.sent.iter().all(|(_, f)| f[14 + 9] == 4));
    let (s, d, layout, dg) = reassemble(&r.out.sent);
    assert_eq!((s, d), (GWS.into(), RS.into()));
    // The 3000-byte inner datagram is the outer one's data: 1480 + 1480
    // + 40.
    assert_eq!(layout, [(1500, 0x2000), (1500, 0x2000 | 185), (60, 370)]);
    assert_eq!(dg[8], 63, "the inner TTL, less one");
    assert_eq!(dg[20..], inner[34..], "the inner datagram's data");
    r.out.sent.clear();
    // Over IPv6 to the real server's IPv6 address: IPv6 fragments of the
    // tunnel packet (next header 4 in their fragment header).
    let inner = udp((CLIENT.into(), 40000), (VIP.into(), 57), 3000, false);
    r.feed(&inner, 0, 1002);
    let mut data = Vec::new();
    for (port, f) in &r.out.sent {
        assert_eq!(*port, 1);
        assert_eq!((f[14 + 6], f[14 + 40]), (44, 4), "Fragment header, ipip");
        assert!(f.len() <= 14 + 1500);
        let off = usize::from(u16::from_be_bytes([f[56], f[57]]) & !7);
        assert_eq!(off, data.len());
        data.extend_from_slice(&f[62..]);
    }
    assert_eq!(r.out.sent.len(), 3);
    assert_eq!(data.len(), 3000);
    assert_eq!(data[20..], inner[34..]);
    assert_eq!(r.counters.frag_ok.get(), 2);
    assert_eq!(r.counters.frag_creates.get(), 6);
}

/// The egress's next hop, which the route cache keeps with its Ethernet
/// header: a real server's new MAC takes effect from the next packet on,
/// in every mode and family, the same as when the stack resolves each one.
#[test]
fn a_real_servers_new_mac_is_used_from_the_next_packet_on() {
    for (client, vip, rs) in [
        (IpAddr::from(CLIENT), IpAddr::from(VIP), IpAddr::from(RS)),
        (CLIENT6.into(), VIP6.into(), RS6.into()),
    ] {
        for vport in [FNAT, DR, NAT] {
            let mut r = rig(1500, 1500, &IcmpLimits::default());
            let dst_macs = |r: &mut Rig| -> Vec<[u8; 6]> {
                let sent = std::mem::take(&mut r.out.sent);
                sent.iter()
                    .map(|(port, f)| {
                        assert_eq!(*port, 1);
                        f[..6].try_into().unwrap()
                    })
                    .collect()
            };
            for now in [1000, 1001] {
                let d = udp((client, 40000), (vip, vport), 200, true);
                r.feed(&d, 0, now);
            }
            let old = [2, 0, 0, 0, 0, 0x11];
            assert_eq!(dst_macs(&mut r), [old, old], "{vip} port {vport}");
            let mac = MacAddr([2, 0, 0, 0, 0, 0x33]);
            r.stack.static_neighbour(
                &r.net,
                NeighUpdate {
                    port: 1,
                    ip: rs,
                    mac,
                },
                &mut r.out,
            );
            r.out.sent.clear();
            let d = udp((client, 40000), (vip, vport), 200, true);
            r.feed(&d, 0, 1002);
            assert_eq!(dst_macs(&mut r), [mac.0], "{vip} port {vport}");
        }
    }
}
