//! The pipeline as a worker runs it (`Lb::prepare`, then `Lb::input` per
//! packet) over the `Vec<u8>` packet, every mode, both directions, IPv4
//! and IPv6, TCP and UDP. Each packet goes through twice: once as a
//! worker sends it (the express lane where it applies) and once by the
//! full path alone (`input` with no `prepare`); the two frames must be
//! the same, byte for byte, and etherparse must read the result as the
//! rewrite the conn calls for, with every checksum summed again from the
//! raw bytes (`assert_checksums`). Whether the express lane took a packet
//! is counted, not assumed.
use std::net::IpAddr;
use std::sync::Arc;

use etherparse::{NetHeaders, PacketHeaders, TransportHeader};

use super::Lb;
use crate::counters::WorkerCounters;
use crate::ipvs::conn::{Conn, ConnId};
use crate::ipvs::{
    DestConfig, FwdMethod, Protocol, ServiceConfig, ServiceKey, ServiceSet, ServiceTable,
    StatsSnapshot, Timeouts,
};
use crate::netstack::{
    AddrKind, Iface, IfaceAddr, Millis, NeighUpdate, NetConfig, Output, Route, Stack,
};
use crate::packet::{Packet, VecPacket};
use crate::wire::testutil::XorShift;
use crate::wire::MacAddr;
use crate::xmit::testkit::{self, assert_checksums, frame, ip, tcp, Addrs, L4, MAC_DST};

const GW_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
const RS_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x21];
const RS2_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x22];
const NOW: Millis = 1_000;

#[derive(Default)]
struct Wire {
    sent: Vec<(u16, Vec<u8>)>,
}

impl Output<VecPacket> for Wire {
    fn send(&mut self, port: u16, p: VecPacket) {
        self.sent.push((port, p.data().to_vec()));
    }
    fn alloc(&mut self) -> Option<VecPacket> {
        Some(VecPacket::new())
    }
}

/// A second real server, for a conn scheduled anew to another one.
fn rs2(a: &Addrs) -> IpAddr {
    match a.rs.0 {
        IpAddr::V4(_) => ip("10.0.0.22"),
        IpAddr::V6(_) => ip("fd00::22"),
    }
}

struct World {
    net: NetConfig,
    table: ServiceTable,
    svcs: ServiceSet,
    stack: Stack<VecPacket>,
    lb: Lb,
    timeouts: Timeouts,
    a: Addrs,
    fwd: FwdMethod,
    proto: u8,
    /// The real servers' port (the VIP's for DR and TUN).
    rport: u16,
}

/// A director on one port (MAC_DST): the real servers and the local
/// address on its subnet, clients behind a router. One service of
/// `proto` on the family's VIP with `dests` real servers of `fwd`.
fn world(fwd: FwdMethod, proto: u8, v6: bool, dests: usize) -> World {
    world_of(fwd, proto, v6, dests, 1024)
}

/// `world` with a table of `conns` slots.
fn world_of(fwd: FwdMethod, proto: u8, v6: bool, dests: usize, conns: usize) -> World {
    let a = if v6 { testkit::v6() } else { testkit::v4() };
    let (own, gw, plen, client_net, client_len) = if v6 {
        (ip("fd00::1"), ip("fd00::fe"), 64, ip("2001:db8:c::"), 48)
    } else {
        (ip("10.0.0.1"), ip("10.0.0.254"), 24, ip("198.51.100.0"), 24)
    };
    let addr = |addr| IfaceAddr {
        addr,
        prefix_len: plen,
    };
    let net = NetConfig::new(
        vec![Iface {
            port: 0,
            name: "p".into(),
            mac: MacAddr(MAC_DST),
            addrs: vec![addr(own), addr(a.lip.0)],
            mtu: 1500,
            tx_checksum: false,
        }],
        vec![Route {
            prefix: client_net,
            len: client_len,
            port: 0,
            via: Some(gw),
        }],
    )
    .with_extra([(a.vip.0, AddrKind::Vip)]);
    let protocol = if proto == 6 {
        Protocol::Tcp
    } else {
        Protocol::Udp
    };
    let key = ServiceKey::Addr {
        proto: protocol,
        addr: a.vip.0,
        port: a.vip.1,
    };
    let mut table = ServiceTable::new(1);
    table
        .add_service(ServiceConfig {
            scheduler: "rr".into(),
            ..ServiceConfig::new(key)
        })
        .unwrap();
    let rport = match fwd {
        FwdMethod::DirectRoute | FwdMethod::Tunnel => a.vip.1,
        _ => a.rs.1,
    };
    for rs in [a.rs.0, rs2(&a)].into_iter().take(dests) {
        let mut d = DestConfig::new(rs, rport);
        d.fwd = fwd;
        table.add_dest(&key, d).unwrap();
    }
    if fwd == FwdMethod::FullNat {
        table.add_laddr(&key, a.lip.0, "p").unwrap();
    }
    let counters = Arc::new(WorkerCounters::default());
    let mut stack = Stack::new(64, counters.clone());
    let mut w = Wire::default();
    for (ip, mac) in [(gw, GW_MAC), (a.rs.0, RS_MAC), (rs2(&a), RS2_MAC)] {
        let u = NeighUpdate {
            port: 0,
            ip,
            mac: MacAddr(mac),
        };
        stack.static_neighbour(&net, u, &mut w);
    }
    World {
        svcs: table.snapshot(),
        table,
        net,
        stack,
        lb: Lb::new(0, 1, conns, counters),
        timeouts: Timeouts::default(),
        a,
        fwd,
        proto,
        rport,
    }
}

impl World {
    /// One packet as a worker handles it: stage one over a burst of it,
    /// then stage two. What went out, and whether the express lane sent it.
    fn worker(&mut self, f: &[u8], now: Millis) -> (Vec<(u16, Vec<u8>)>, bool) {
        self.worker_packet(VecPacket::from_bytes(f, 0), now)
    }

    /// `worker` for a packet as the device handed it over.
    fn worker_packet(&mut self, pkt: VecPacket, now: Millis) -> (Vec<(u16, Vec<u8>)>, bool) {
        let before = self.lb.express_packets();
        self.lb
            .prepare(&self.net, &self.svcs, &self.timeouts, std::iter::once(&pkt));
        let out = self.input(pkt, now);
        self.lb.end_burst();
        (out, self.lb.express_packets() > before)
    }

    /// The same packet by the full path alone (a new conn's first packet
    /// too: not `Lb::open`'s way).
    fn full(&mut self, f: &[u8], now: Millis) -> Vec<(u16, Vec<u8>)> {
        let (before, opens) = (self.lb.express_packets(), self.lb.express_opens());
        let opening = std::mem::replace(&mut self.lb.express.opening, false);
        let out = self.input(VecPacket::from_bytes(f, 0), now);
        self.lb.express.opening = opening;
        assert_eq!(self.lb.express_packets(), before);
        assert_eq!(self.lb.express_opens(), opens);
        out
    }

    /// The frame by the lane (`express`: which must take it) or by the
    /// full path alone.
    fn by(&mut self, express: bool, f: &[u8], now: Millis) -> Vec<(u16, Vec<u8>)> {
        if !express {
            return self.full(f, now);
        }
        let (sent, took) = self.worker(f, now);
        assert!(took, "the lane took it");
        sent
    }

    fn input(&mut self, pkt: VecPacket, now: Millis) -> Vec<(u16, Vec<u8>)> {
        let mut w = Wire::default();
        let o = self.lb.input(
            &self.net,
            &self.svcs,
            &self.timeouts,
            pkt,
            now,
            &mut self.stack,
            &mut w,
        );
        if let super::Outcome::Local(p) = o {
            self.stack.input(&self.net, p, now, &mut w);
        }
        w.sent
    }

    /// The only conn (not a template).
    fn conn(&self) -> (ConnId, IpAddr, (IpAddr, u16)) {
        let mut conns = self.lb.conns().iter().filter(|(_, c)| !c.is_template());
        let (id, c) = conns.next().expect("a conn");
        assert!(conns.next().is_none(), "one conn");
        (id, c.daddr(), (c.laddr(), c.lport()))
    }

    fn l4(&self, sport: u16, dport: u16, flags: &str) -> L4 {
        if self.proto == 6 {
            tcp(sport, dport, flags, &[])
        } else {
            L4::Udp(sport, dport)
        }
    }

    /// Client → VIP.
    fn client_frame(&self, client: (IpAddr, u16), flags: &str, ttl: u8, payload: &[u8]) -> Vec<u8> {
        let l4 = self.l4(client.1, self.a.vip.1, flags);
        frame(client.0, self.a.vip.0, ttl, &l4, payload)
    }

    /// Real server → where its replies go (the local address, or the
    /// client for NAT).
    fn server_frame(&self, rs: IpAddr, to: (IpAddr, u16), flags: &str, payload: &[u8]) -> Vec<u8> {
        let l4 = self.l4(self.rport, to.1, flags);
        frame(rs, to.0, 64, &l4, payload)
    }

    fn has_replies(&self) -> bool {
        matches!(self.fwd, FwdMethod::FullNat | FwdMethod::Masq)
    }

    /// Opens a conn from `client` and brings it to ESTABLISHED by the full
    /// path (TCP: SYN, SYN-ACK where replies come back, ACK; UDP: a
    /// datagram each way). Its real server and reply destination.
    fn open(&mut self, client: (IpAddr, u16), now: Millis) -> (IpAddr, (IpAddr, u16)) {
        let first = if self.proto == 6 { "S" } else { "" };
        let sent = self.full(&self.client_frame(client, first, 64, b""), now);
        assert_eq!(sent.len(), 1, "the first packet forwarded");
        let (_, rs, to) = self.conn_of(client);
        if self.has_replies() {
            let back = if self.proto == 6 { "SA" } else { "" };
            let f = self.server_frame(rs, to, back, b"");
            assert_eq!(self.full(&f, now).len(), 1, "the reply forwarded");
        }
        if self.proto == 6 {
            let f = self.client_frame(client, "A", 64, b"");
            assert_eq!(self.full(&f, now).len(), 1, "the ACK forwarded");
        }
        (rs, to)
    }

    /// The conn of `client`: its id, real server and reply destination.
    fn conn_of(&self, client: (IpAddr, u16)) -> (ConnId, IpAddr, (IpAddr, u16)) {
        let (id, c) = self
            .lb
            .conns()
            .iter()
            .find(|(_, c)| !c.is_template() && c.caddr() == client.0 && c.cport() == client.1)
            .expect("the client's conn");
        (id, c.daddr(), (c.laddr(), c.lport()))
    }
}

/// The addresses, ports, TTL and payload etherparse reads from a frame
/// (the outer header of a tunnelled one, whose payload is then the inner
/// packet).
#[derive(Debug, PartialEq, Eq)]
struct Read {
    src: IpAddr,
    dst: IpAddr,
    ports: Option<(u16, u16)>,
    ttl: u8,
    payload: Vec<u8>,
}

fn read(f: &[u8]) -> Read {
    let p = PacketHeaders::from_ethernet_slice(f).expect("etherparse reads the frame");
    let (src, dst, ttl) = match p.net.expect("an IP header") {
        NetHeaders::Ipv4(h, _) => (h.source.into(), h.destination.into(), h.time_to_live),
        NetHeaders::Ipv6(h, _) => (h.source.into(), h.destination.into(), h.hop_limit),
    };
    let ports = match p.transport {
        Some(TransportHeader::Tcp(t)) => Some((t.source_port, t.destination_port)),
        Some(TransportHeader::Udp(u)) => Some((u.source_port, u.destination_port)),
        _ => None,
    };
    Read {
        src,
        dst,
        ports,
        ttl,
        payload: p.payload.slice().to_vec(),
    }
}

/// What a client's data packet must look like on its way to real server
/// `rs` of a conn whose reply destination is `to`, and the MAC it goes to.
fn want_in(
    w: &World,
    client: (IpAddr, u16),
    rs: IpAddr,
    to: (IpAddr, u16),
    payload: &[u8],
) -> (Read, [u8; 6]) {
    let mac = if rs == w.a.rs.0 { RS_MAC } else { RS2_MAC };
    let a = &w.a;
    let (src, dst, ports) = match w.fwd {
        FwdMethod::FullNat => (to.0, rs, (to.1, w.rport)),
        FwdMethod::Masq => (client.0, rs, (client.1, w.rport)),
        // TUN: the outer header's destination (`both_ways` reads the rest).
        FwdMethod::Tunnel => (client.0, rs, (client.1, a.vip.1)),
        _ => (client.0, a.vip.0, (client.1, a.vip.1)),
    };
    let read = Read {
        src,
        dst,
        ports: Some(ports),
        ttl: 63,
        payload: payload.to_vec(),
    };
    (read, mac)
}

/// What a real server's data packet must look like on its way back.
fn want_out(w: &World, client: (IpAddr, u16), payload: &[u8]) -> (Read, [u8; 6]) {
    let read = Read {
        src: w.a.vip.0,
        dst: client.0,
        ports: Some((w.a.vip.1, client.1)),
        ttl: 63,
        payload: payload.to_vec(),
    };
    (read, GW_MAC)
}

/// Sends `f` both ways; checks they agree and that the result is `want`
/// (for TUN: an IP-in-IP packet to the real server around the client's
/// packet, one hop older). Whether the express lane took it.
fn both_ways(w: &mut World, f: &[u8], want: &(Read, [u8; 6]), now: Millis) -> bool {
    let full = w.full(f, now);
    let (fast, express) = w.worker(f, now);
    assert_eq!(fast, full, "the express lane and the full path disagree");
    assert_eq!(fast.len(), 1, "one packet out");
    let out = &fast[0].1;
    assert_eq!(&out[0..6], &want.1, "the next hop's MAC");
    assert_eq!(&out[6..12], &MAC_DST, "the port's MAC");
    assert_checksums(out, true);
    let got = read(out);
    if w.fwd == FwdMethod::Tunnel {
        assert_eq!(got.dst, want.0.dst, "the tunnel's destination");
        let mut inner = vec![0u8; 14];
        let v6 = got.payload.first().is_some_and(|b| b >> 4 == 6);
        inner[12..14].copy_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
        inner.extend_from_slice(&got.payload);
        let inner = read(&inner);
        assert_eq!(inner, Read { ttl: 63, ..read(f) }, "the tunnelled packet");
    } else {
        assert_eq!(got, want.0);
    }
    express
}

/// Every mode, family and protocol: data both ways once the conn is
/// ESTABLISHED; the express lane takes exactly the plain IPv4 packets of
/// FULLNAT, NAT, DR and TUN (IPIP).
#[test]
fn every_mode_and_family_forwards_as_the_full_path_does() {
    for fwd in [
        FwdMethod::FullNat,
        FwdMethod::Masq,
        FwdMethod::DirectRoute,
        FwdMethod::Tunnel,
    ] {
        for v6 in [false, true] {
            for proto in [6u8, 17] {
                let mut w = world(fwd, proto, v6, 1);
                let client = w.a.client;
                let (rs, to) = w.open(client, NOW);
                let express_expected = !v6;
                let what = format!("{fwd:?} v6={v6} proto={proto}");
                for n in [0usize, 1, 100, 1400] {
                    let payload: Vec<u8> = (0..n).map(|i| i as u8).collect();
                    let f = w.client_frame(client, "PA", 64, &payload);
                    let want = want_in(&w, client, rs, to, &payload);
                    let express = both_ways(&mut w, &f, &want, NOW);
                    assert_eq!(express, express_expected, "{what}, {n} bytes in");
                    if w.has_replies() {
                        let f = w.server_frame(rs, to, "PA", &payload);
                        let want = want_out(&w, client, &payload);
                        let express = both_ways(&mut w, &f, &want, NOW);
                        assert_eq!(express, express_expected, "{what}, {n} bytes back");
                    }
                }
            }
        }
    }
}

/// A new conn's first packet (a SYN with an MSS above what the egress
/// MTU carries, a UDP datagram) goes the lane's way in every mode the
/// lane has (`Lb::open`): the frame the full path's forward writes, its
/// MSS clamped where that clamps it (FULLNAT and NAT, which rewrite the
/// segment), the same state and timer, the same stats once folded. The
/// block worked out on the way serves the conn's later packets, both
/// ways.
#[test]
fn a_new_conns_first_packet_goes_the_lanes_way_as_the_full_path_sends_it() {
    use etherparse::TcpOptionElement::MaximumSegmentSize;
    for fwd in [
        FwdMethod::FullNat,
        FwdMethod::Masq,
        FwdMethod::DirectRoute,
        FwdMethod::Tunnel,
    ] {
        for proto in [6u8, 17] {
            let what = format!("{fwd:?} proto={proto}");
            let run = |opening: bool| {
                let mut w = world(fwd, proto, false, 1);
                w.lb.express.opening = opening;
                // The same local port in both worlds.
                w.lb.set_laddr_seed(0);
                let client = w.a.client;
                let (l4, payload) = if proto == 6 {
                    let mss = [MaximumSegmentSize(8960)];
                    (tcp(client.1, w.a.vip.1, "S", &mss), &b""[..])
                } else {
                    (L4::Udp(client.1, w.a.vip.1), &b"query"[..])
                };
                let f = frame(client.0, w.a.vip.0, 64, &l4, payload);
                let (sent, lane) = w.worker(&f, NOW);
                assert!(!lane, "{what}: not an established conn's packet");
                let (id, rs, to) = w.conn();
                let c = w.lb.conns().get(id).unwrap();
                let conn = (
                    c.state(),
                    c.timeout_ms(),
                    c.expires_in(NOW),
                    c.flags(),
                    c.is_active(),
                );
                let dest = w.table.services()[0].dests()[0].clone();
                w.lb.poll(&w.svcs, NOW + 1_000);
                let stats = dest.stats.snapshot();
                (w, f, sent, conn, stats, rs, to)
            };
            let (mut w, f, sent, conn, stats, rs, to) = run(true);
            let full = run(false);
            assert_eq!(w.lb.express_opens(), 1, "{what}: the lane's way");
            assert_eq!(full.0.lb.express_opens(), 0, "{what}: the full path");
            assert_eq!(sent, full.2, "{what}: the frame the full path writes");
            assert_eq!(conn, full.3, "{what}: the conn's state and timer");
            assert_eq!(stats, full.4, "{what}: the stats once folded");
            assert_eq!((stats.conns, stats.inpkts), (1, 1), "{what}");
            assert_eq!(stats.inbytes, (f.len() - 14) as u64, "{what}");
            assert_eq!(sent.len(), 1, "{what}");
            let out = &sent[0].1;
            assert_checksums(out, true);
            let mut want = want_in(&w, w.a.client, rs, to, b"");
            want.0.payload = read(&f).payload;
            if fwd == FwdMethod::Tunnel {
                assert_eq!(read(out).dst, rs, "{what}: the tunnel's destination");
            } else {
                assert_eq!(read(out), want.0, "{what}");
            }
            if proto == 6 {
                // The MSS option's value: 1460 (0x05b4) where clamped to
                // the 1500-byte MTU, else the client's 8960 (0x2300).
                let clamped = matches!(fwd, FwdMethod::FullNat | FwdMethod::Masq);
                let mss: &[u8] = if clamped {
                    &[2, 4, 5, 0xb4]
                } else {
                    &[2, 4, 0x23, 0]
                };
                assert!(out.windows(4).any(|o| o == mss), "{what}: MSS {mss:?}");
            }
            // The rest of the conn's packets, on the block worked out above.
            let client = w.a.client;
            if w.has_replies() {
                let back = if proto == 6 { "SA" } else { "" };
                let f = w.server_frame(rs, to, back, b"");
                assert_eq!(w.full(&f, NOW).len(), 1, "{what}: the reply");
            }
            if proto == 6 {
                let f = w.client_frame(client, "A", 64, b"");
                assert_eq!(w.full(&f, NOW).len(), 1, "{what}: the ACK");
            }
            let f = w.client_frame(client, "PA", 64, b"data");
            let want = want_in(&w, client, rs, to, b"data");
            assert!(both_ways(&mut w, &f, &want, NOW), "{what}: data in");
            if w.has_replies() {
                let f = w.server_frame(rs, to, "PA", b"data");
                let want = want_out(&w, client, b"data");
                assert!(both_ways(&mut w, &f, &want, NOW), "{what}: data back");
            }
        }
    }
}

/// The client's answer to the handshake (its ACK, with data or without)
/// takes the lane and leaves its conn as the full path's state move does:
/// the frame, the conn's state, timer and flags, its dest's active and
/// inactive counts, the embryonic list, the stats once folded, in every
/// mode and under both TCP state tables; the conn's later packets take the
/// lane as well. Where its service inserts TOA (into this ACK), and for a
/// segment the lane leaves to the full path (a FIN), it goes the full way.
#[test]
fn the_handshakes_ack_takes_the_lane_and_moves_its_conn_as_the_full_path_does() {
    for fwd in [
        FwdMethod::FullNat,
        FwdMethod::Masq,
        FwdMethod::DirectRoute,
        FwdMethod::Tunnel,
    ] {
        for secure_tcp in [false, true] {
            for payload in [&b""[..], b"hello"] {
                let what = format!("{fwd:?} secure_tcp={secure_tcp} payload={payload:?}");
                let run = |lane: bool| {
                    let mut w = world(fwd, 6, false, 1);
                    w.lb.conns.set_secure_tcp(secure_tcp);
                    w.lb.set_laddr_seed(0);
                    let client = w.a.client;
                    w.full(&w.client_frame(client, "S", 64, b""), NOW);
                    let (id, rs, to) = w.conn();
                    if w.has_replies() {
                        let f = w.server_frame(rs, to, "SA", b"");
                        assert_eq!(w.full(&f, NOW).len(), 1, "{what}: the SYN-ACK");
                    }
                    let embryonic = w.lb.conns().embryonic_len();
                    let ack = w.client_frame(client, "A", 64, payload);
                    let later = NOW + 500;
                    let sent = if lane {
                        let (sent, express) = w.worker(&ack, later);
                        assert!(express, "{what}: the lane's way");
                        sent
                    } else {
                        w.full(&ack, later)
                    };
                    let c = w.lb.conns().get(id).unwrap();
                    let conn = (
                        c.state(),
                        c.timeout_ms(),
                        c.expires_in(later),
                        c.flags(),
                        c.is_active(),
                    );
                    let dest = w.table.services()[0].dests()[0].clone();
                    let counts = (dest.activeconns(), dest.inactconns());
                    let lists = (embryonic, w.lb.conns().embryonic_len());
                    w.lb.poll(&w.svcs, later + 1_000);
                    let stats = dest.stats.snapshot();
                    (w, sent, conn, counts, lists, stats, rs, to)
                };
                let (mut w, sent, conn, counts, lists, stats, rs, to) = run(true);
                let full = run(false);
                assert_eq!(sent, full.1, "{what}: the frame the full path writes");
                assert_eq!(conn, full.2, "{what}: the conn's state, timer and flags");
                assert_eq!(counts, full.3, "{what}: the dest's counts");
                assert_eq!(lists, full.4, "{what}: the embryonic list");
                assert_eq!(stats, full.5, "{what}: the stats once folded");
                assert_eq!(sent.len(), 1, "{what}");
                assert_checksums(&sent[0].1, true);
                // The kernel's tables: the ACK establishes the conn, but
                // for secure_tcp's, which leaves SYN_ACK (where the
                // server's SYN-ACK took a conn that sees replies) to the
                // server's next segment; both states count as active
                // (tcp_state_active_table).
                use crate::ipvs::TcpState::{Established, SynAck};
                let state = w.lb.conns().iter().next().unwrap().1.tcp_state();
                let want = if secure_tcp && w.has_replies() {
                    SynAck
                } else {
                    Established
                };
                assert_eq!((state, counts), (Some(want), (1, 0)), "{what}");
                let f = w.client_frame(w.a.client, "PA", 64, b"data");
                let want = want_in(&w, w.a.client, rs, to, b"data");
                assert!(both_ways(&mut w, &f, &want, NOW + 600), "{what}: data in");
            }
        }
    }

    // TOA rides on the handshake's ACK: the full path's.
    let mut w = world(FwdMethod::FullNat, 6, false, 1);
    let key = w.table.services()[0].key();
    w.table.set_toa(&key, true).unwrap();
    w.svcs = w.table.snapshot();
    let client = w.a.client;
    w.full(&w.client_frame(client, "S", 64, b""), NOW);
    let (_, rs, to) = w.conn();
    w.full(&w.server_frame(rs, to, "SA", b""), NOW);
    let ack = w.client_frame(client, "A", 64, b"");
    let (sent, express) = w.worker(&ack, NOW);
    assert!(!express, "TOA: the full path's");
    assert_eq!(
        sent[0].1.len(),
        ack.len() + 8,
        "the ACK carries TOA's 8 bytes"
    );

    // A FIN in SYN_RECV: the full path's as well.
    let mut w = world(FwdMethod::FullNat, 6, false, 1);
    w.full(&w.client_frame(client, "S", 64, b""), NOW);
    let (sent, express) = w.worker(&w.client_frame(client, "FA", 64, b""), NOW);
    assert!(!express && sent.len() == 1, "a FIN by the full path");
}

/// What a new conn's first packet leaves to the full path: a TTL that runs
/// out here (time exceeded, and no conn kept), TOA (which grows the SYN),
/// IPv6.
#[test]
fn first_packets_the_lane_cannot_carry_take_the_full_path() {
    let mut w = world(FwdMethod::FullNat, 6, false, 1);
    let client = w.a.client;
    let (sent, _) = w.worker(&w.client_frame(client, "S", 1, b""), NOW);
    assert_eq!(w.lb.express_opens(), 0, "TTL 1");
    assert!(
        sent.len() == 1 && read(&sent[0].1).ports.is_none(),
        "time exceeded"
    );
    assert_eq!(w.lb.conns().len(), 0, "no conn kept");
    let (sent, _) = w.worker(&w.client_frame(client, "S", 64, b""), NOW);
    assert_eq!((sent.len(), w.lb.express_opens()), (1, 1), "a plain SYN");

    let mut w = world(FwdMethod::FullNat, 6, false, 1);
    let key = w.table.services()[0].key();
    w.table.set_toa(&key, true).unwrap();
    w.svcs = w.table.snapshot();
    let f = w.client_frame(client, "S", 64, b"");
    let (sent, _) = w.worker(&f, NOW);
    assert_eq!(w.lb.express_opens(), 0, "TOA");
    assert_eq!(
        sent[0].1.len(),
        f.len() + 8,
        "the SYN carries TOA's 8 bytes"
    );

    let mut w = world(FwdMethod::FullNat, 6, true, 1);
    let client = w.a.client;
    let (sent, _) = w.worker(&w.client_frame(client, "S", 64, b""), NOW);
    assert_eq!((sent.len(), w.lb.express_opens()), (1, 0), "IPv6");
}

/// Random clients, ports, payload sizes, modes, families and protocols:
/// the express lane and the full path write the same frames, and
/// etherparse reads the rewrite the conn calls for.
#[test]
fn random_flows_and_sizes_agree_with_the_full_path() {
    let mut rng = XorShift(0x5eed_1234_abcd_0001);
    let modes = [
        FwdMethod::FullNat,
        FwdMethod::Masq,
        FwdMethod::DirectRoute,
        FwdMethod::Tunnel,
    ];
    let mut taken = 0;
    for round in 0..12 {
        let fwd = modes[round % 4];
        let v6 = round % 4 == 3;
        let proto = if round % 2 == 0 { 6 } else { 17 };
        let mut w = world(fwd, proto, v6, 2);
        let mut clients = Vec::new();
        for _ in 0..20 {
            let host = rng.next() as u8 | 1;
            let client = match v6 {
                false => (
                    IpAddr::from([198, 51, 100, host]),
                    1024 + rng.next() as u16 % 60000,
                ),
                true => (
                    IpAddr::from([0x2001, 0xdb8, 0xc, 0, 0, 0, 0, u16::from(host)]),
                    1024 + rng.next() as u16 % 60000,
                ),
            };
            if clients.iter().any(|(c, _, _)| *c == client) {
                continue;
            }
            let (rs, to) = w.open(client, NOW);
            clients.push((client, rs, to));
        }
        for _ in 0..60 {
            let (client, rs, to) = clients[rng.next() as usize % clients.len()];
            let n = rng.next() as usize % 1401;
            let payload = rng.bytes(n);
            let back = w.has_replies() && rng.next() % 2 == 0;
            let (f, want) = if back {
                (
                    w.server_frame(rs, to, "PA", &payload),
                    want_out(&w, client, &payload),
                )
            } else {
                (
                    w.client_frame(client, "PA", 64, &payload),
                    want_in(&w, client, rs, to, &payload),
                )
            };
            let express = both_ways(&mut w, &f, &want, NOW);
            assert_eq!(express, !v6, "{fwd:?} v6={v6} proto={proto}");
            taken += usize::from(express);
        }
    }
    assert!(taken > 300, "the express lane took {taken} packets");
}

/// The lane counts packets and bytes per side and folds them into the
/// dest's, the service's and the director's stats by `poll` once a
/// second: the same figures the full path counts packet by packet.
#[test]
fn express_counts_reach_the_stats_as_the_full_path_counts_them() {
    let run = |express: bool| {
        let mut w = world(FwdMethod::FullNat, 6, false, 1);
        let client = w.a.client;
        let (rs, to) = w.open(client, NOW);
        for n in [10usize, 200, 1000] {
            let f = w.client_frame(client, "PA", 64, &vec![7; n]);
            let g = w.server_frame(rs, to, "PA", &vec![9; n / 2]);
            for f in [f, g] {
                let sent = w.by(express, &f, NOW + 1);
                assert_eq!(sent.len(), 1);
            }
        }
        let svc = w.table.services()[0].clone();
        let dest = svc.dests()[0].clone();
        let snap = |w: &World| {
            (
                dest.stats.snapshot(),
                svc.stats.snapshot(),
                w.svcs.total().snapshot(),
            )
        };
        let before = snap(&w);
        w.lb.poll(&w.svcs, NOW + 1_000);
        (before, snap(&w))
    };
    let ((_, full), (pending, folded)) = (run(false), run(true));
    // The handshake went the full way; the six data packets' counts
    // wait in the entry until the fold.
    let handshake = pending.0;
    assert_eq!((handshake.inpkts, handshake.outpkts), (2, 1));
    assert_eq!(folded, full, "folded stats equal the full path's");
    let want = StatsSnapshot {
        conns: 1,
        inpkts: 2 + 3,
        outpkts: 1 + 3,
        inbytes: handshake.inbytes + [10u64, 200, 1000].iter().map(|n| 40 + n).sum::<u64>(),
        outbytes: handshake.outbytes + [5u64, 100, 500].iter().map(|n| 40 + n).sum::<u64>(),
    };
    assert_eq!(folded.0, want, "the dest's stats");
}

/// A side's packet count is folded into the stats before it would wrap:
/// more of a conn's packets than its block counts between folds, each
/// taken by the lane, all reach the dest's stats at the next fold.
#[test]
fn a_conns_packet_count_is_folded_before_it_wraps() {
    let mut w = world(FwdMethod::FullNat, 6, false, 1);
    let client = w.a.client;
    w.open(client, NOW);
    let dest = w.table.services()[0].dests()[0].clone();
    let before = dest.stats.snapshot();
    let f = w.client_frame(client, "A", 64, &[]);
    let n = u64::from(u16::MAX) + 5;
    for _ in 0..n {
        assert_eq!(w.by(true, &f, NOW + 1).len(), 1);
    }
    w.lb.poll(&w.svcs, NOW + 1_000);
    let after = dest.stats.snapshot();
    assert_eq!(
        (after.inpkts - before.inpkts, after.inbytes - before.inbytes),
        (n, 40 * n)
    );
}

/// A minimum-size Ethernet frame's padding is no byte of its packet's: the
/// stats count the IP packet (the kernel's skb->len, once ip_rcv has
/// trimmed the frame), on the lane as on the full path, each way.
#[test]
fn a_padded_frames_padding_is_not_counted_in_the_stats() {
    let run = |express: bool| {
        let mut w = world(FwdMethod::FullNat, 6, false, 1);
        let client = w.a.client;
        let (rs, to) = w.open(client, NOW);
        let dest = w.table.services()[0].dests()[0].clone();
        let before = dest.stats.snapshot();
        for mut f in [
            w.client_frame(client, "A", 64, &[]),
            w.server_frame(rs, to, "A", &[]),
        ] {
            // 14 + 20 + 20 bytes, padded to Ethernet's 60.
            assert_eq!(f.len(), 54);
            f.resize(60, 0);
            let sent = w.by(express, &f, NOW + 1);
            assert_eq!(sent.len(), 1);
            assert_eq!(sent[0].1.len(), 54, "sent without the padding");
        }
        w.lb.poll(&w.svcs, NOW + 1_000);
        let after = dest.stats.snapshot();
        (
            after.inpkts - before.inpkts,
            after.inbytes - before.inbytes,
            after.outpkts - before.outpkts,
            after.outbytes - before.outbytes,
        )
    };
    assert_eq!(run(false), (1, 40, 1, 40), "the full path");
    assert_eq!(run(true), (1, 40, 1, 40), "the lane");
}

/// A conn gone and its slot taken by the same client's new conn (another
/// local port; with two servers, another real server too): the express
/// lane writes the new conn's rewrite, not what it kept for the old one.
#[test]
fn a_slot_taken_by_a_new_conn_gets_the_new_conns_rewrite() {
    for dests in [1, 2] {
        slot_taken_by_a_new_conn(dests);
    }
}

fn slot_taken_by_a_new_conn(dests: usize) {
    let mut w = world(FwdMethod::FullNat, 6, false, dests);
    let client = w.a.client;
    let (rs, to) = w.open(client, NOW);
    let (first_id, _, _) = w.conn();
    let f = w.client_frame(client, "PA", 64, b"old");
    let want = want_in(&w, client, rs, to, b"old");
    assert!(both_ways(&mut w, &f, &want, NOW));
    // RST, then the CLOSE timeout (10 s) runs out.
    assert_eq!(w.full(&w.client_frame(client, "R", 64, b""), NOW).len(), 1);
    w.lb.poll(&w.svcs, NOW + 60_000);
    assert!(w.lb.conns().is_empty(), "the conn expired");
    let later = NOW + 61_000;
    let (rs2, to2) = w.open(client, later);
    let (second_id, _, _) = w.conn();
    assert_eq!(second_id, first_id, "the new conn took the old one's slot");
    assert_ne!(to2, to, "another local port");
    assert_eq!(rs2 == rs, dests == 1, "the real server");
    let f = w.client_frame(client, "PA", 64, b"new");
    let want = want_in(&w, client, rs2, to2, b"new");
    assert!(both_ways(&mut w, &f, &want, later));
}

/// A packet another worker handed over through its ring (a worker without
/// RSS takes in every flow and relays those it does not own), its burst
/// prepared as a port's is, takes the lane as it would off a port, both
/// ways, in one pass and past the prefetch size, and leaves as the full
/// path sends it.
#[test]
fn a_relayed_packet_of_an_established_conn_takes_the_lane() {
    for two_pass in [false, true] {
        let mut w = world(FwdMethod::FullNat, 6, false, 1);
        if two_pass {
            w.lb.set_two_pass_from(0);
        }
        let client = w.a.client;
        let (rs, to) = w.open(client, NOW);
        for f in [
            w.client_frame(client, "A", 64, b"relayed"),
            w.server_frame(rs, to, "A", b"relayed back"),
        ] {
            let want = w.full(&f, NOW);
            assert_eq!(want.len(), 1, "forwarded by the full path");
            let pkt = VecPacket::from_bytes(&f, 0);
            let before = w.lb.express_packets();
            w.lb.prepare(&w.net, &w.svcs, &w.timeouts, std::iter::once(&pkt));
            let mut wire = Wire::default();
            let o = w.lb.input_relayed(
                &w.net,
                &w.svcs,
                &w.timeouts,
                pkt,
                NOW,
                &mut w.stack,
                &mut wire,
            );
            w.lb.end_burst();
            assert!(matches!(o, super::Outcome::Done));
            assert_eq!(w.lb.express_packets(), before + 1, "on the lane");
            assert_eq!(wire.sent, want, "as the full path sends it");
        }
    }
}

/// A conn freed and its slot taken by another conn between the burst's two
/// stages (as an earlier packet of the burst could do): the packet is
/// looked up when stage two comes to it, finds no conn (not the slot's new
/// one, whose rewrite it must not get) and takes the full path, which
/// makes one.
#[test]
fn a_slot_that_changes_hands_between_the_stages_is_not_trusted() {
    let mut w = world(FwdMethod::FullNat, 17, false, 1);
    // Stage one parses the burst ahead of stage two, as in a big table.
    w.lb.set_two_pass_from(0);
    let old = w.a.client;
    w.open(old, NOW);
    let (id, _, (lip, _)) = w.conn();
    let dest = w.lb.conns().get(id).and_then(|c| c.dest().cloned());
    let f = w.client_frame(old, "", 64, b"late");
    let pkt = VecPacket::from_bytes(&f, 0);
    let before = w.lb.express_packets();
    w.lb.prepare(&w.net, &w.svcs, &w.timeouts, std::iter::once(&pkt));
    assert!(w.lb.conns.remove(id));
    let other = Conn::new(
        17,
        (ip("198.51.100.77"), 40_000),
        w.a.vip,
        w.rport,
        FwdMethod::FullNat,
    )
    .with_local(lip, 61_000);
    assert_eq!(
        w.lb.conns.insert(other, dest.as_ref(), NOW).ok(),
        Some(id),
        "the slot"
    );
    let opens = w.lb.express_opens();
    let out = w.input(pkt, NOW);
    assert_eq!(w.lb.express_packets(), before, "not the slot's conn's lane");
    assert_eq!(w.lb.express_opens(), opens + 1, "a new conn's first packet");
    assert_eq!(out.len(), 1, "forwarded");
    let (made, _, to) = w.conn_of(old);
    assert_ne!(made, id, "a conn of its own for the old client");
    assert_eq!(read(&out[0].1).ports, Some((to.1, w.rport)));
}

/// A table past the size from which stage one prefetches, and a burst of
/// 32 packets of as many conns, both ways: every packet takes the lane and
/// leaves as its conn's rewrite, as in a small table.
#[test]
fn a_big_table_prefetches_and_forwards_every_packet_of_a_burst() {
    let n = super::express::PREFETCH_FROM + 64;
    let mut w = world_of(FwdMethod::FullNat, 17, false, 2, n + 16);
    let mut flows = Vec::new();
    for i in 0..n {
        let client = (
            IpAddr::from([198, 51, 100, (i % 250) as u8 + 1]),
            1024 + (i / 250) as u16,
        );
        let (rs, to) = w.open(client, NOW);
        if i % (n / 16) == 0 {
            flows.push((client, rs, to));
        }
    }
    assert!(w.lb.conns().len() >= super::express::PREFETCH_FROM);
    let mut frames = Vec::new();
    let mut wants = Vec::new();
    for (k, &(client, rs, to)) in flows.iter().cycle().take(32).enumerate() {
        let payload = vec![k as u8; 10 + k];
        if k % 2 == 0 {
            frames.push(w.client_frame(client, "", 64, &payload));
            wants.push(want_in(&w, client, rs, to, &payload));
        } else {
            frames.push(w.server_frame(rs, to, "", &payload));
            wants.push(want_out(&w, client, &payload));
        }
    }
    let burst: Vec<VecPacket> = frames.iter().map(|f| VecPacket::from_bytes(f, 0)).collect();
    let before = w.lb.express_packets();
    w.lb.prepare(&w.net, &w.svcs, &w.timeouts, burst.iter());
    let mut out = Vec::new();
    for pkt in burst {
        out.extend(w.input(pkt, NOW));
    }
    assert_eq!(
        w.lb.express_packets() - before,
        32,
        "every packet on the lane"
    );
    assert_eq!(out.len(), 32);
    for ((_, o), want) in out.iter().zip(&wants) {
        assert_eq!(&o[0..6], &want.1, "the next hop's MAC");
        assert_checksums(o, true);
        assert_eq!(read(o), want.0);
    }
}

/// Past the prefetch size, stage one asks for the conns of a burst's
/// first `CONN_AHEAD` packets, and of no others, whatever the burst's
/// length: as it parses one long enough for the lag (`CONN_LAG`), once it
/// has parsed a shorter one. (Stage two asks for the rest as it goes.)
#[test]
fn stage_one_asks_for_the_first_conns_of_a_burst_of_any_length() {
    use super::express::{CONN_AHEAD, CONN_LAG};
    let mut w = world(FwdMethod::FullNat, 17, false, 2);
    w.lb.set_two_pass_from(0);
    let clients: Vec<_> = (0..40u8)
        .map(|i| (IpAddr::from([198, 51, 100, 10 + i]), 5000))
        .collect();
    for &c in &clients {
        w.open(c, NOW);
    }
    let sizes = [1, 3, CONN_AHEAD, CONN_LAG, CONN_LAG + 1, CONN_LAG + 3, 32];
    for n in sizes.into_iter().chain([clients.len()]) {
        let burst: Vec<VecPacket> = clients[..n]
            .iter()
            .map(|&c| VecPacket::from_bytes(&w.client_frame(c, "", 64, b"asked"), 0))
            .collect();
        w.lb.prepare(&w.net, &w.svcs, &w.timeouts, burst.iter());
        let asked = w.lb.conns_asked();
        w.lb.end_burst();
        let want: Vec<bool> = (0..n).map(|k| k < CONN_AHEAD).collect();
        assert_eq!(asked, want, "a burst of {n}");
    }
}

/// Past the prefetch size, a burst that mixes the lane's packets with
/// the full path's: a new client's first datagram (the conn made, and the
/// packet sent the lane's way) and, later in the same burst, its second,
/// which finds the conn the first made (each packet is looked up when
/// stage two comes to it) and takes the lane. Every packet leaves as the
/// full path alone sends it. A caller out of step (a packet stage one did
/// not parse next) gets the full path for it and the rest of the burst,
/// each still forwarded.
#[test]
fn a_burst_mixing_new_conns_with_the_lanes_packets_is_looked_up_in_step() {
    let setup = || {
        let mut w = world(FwdMethod::FullNat, 17, false, 2);
        w.lb.set_laddr_seed(0);
        w.lb.set_two_pass_from(0);
        let clients: Vec<_> = (0..10u8)
            .map(|i| (IpAddr::from([198, 51, 100, 10 + i]), 5000))
            .collect();
        for &c in &clients {
            w.open(c, NOW);
        }
        (w, clients)
    };
    let (mut w, clients) = setup();
    let (mut full, _) = setup();
    let new = (IpAddr::from([198, 51, 100, 99]), 6000);
    let mut frames = Vec::new();
    for (k, &c) in clients.iter().enumerate() {
        frames.push(w.client_frame(c, "", 64, &[k as u8; 20]));
        if k == 3 {
            frames.push(w.client_frame(new, "", 64, b"first"));
        }
        if k == 7 {
            frames.push(w.client_frame(new, "", 64, b"second"));
        }
    }
    for (k, &c) in clients.iter().enumerate() {
        frames.push(w.client_frame(c, "", 64, &[k as u8; 30]));
    }
    assert!(frames.len() > 2 * 10, "past INDEX_AHEAD and CONN_AHEAD");
    let want: Vec<_> = frames.iter().flat_map(|f| full.full(f, NOW)).collect();
    let burst: Vec<VecPacket> = frames.iter().map(|f| VecPacket::from_bytes(f, 0)).collect();
    let (lane, opens) = (w.lb.express_packets(), w.lb.express_opens());
    w.lb.prepare(&w.net, &w.svcs, &w.timeouts, burst.iter());
    let mut out = Vec::new();
    for pkt in burst {
        out.extend(w.input(pkt, NOW));
    }
    w.lb.end_burst();
    assert_eq!(out, want, "as the full path sends them");
    assert_eq!(w.lb.express_opens() - opens, 1, "the new client's first");
    assert_eq!(
        w.lb.express_packets() - lane,
        frames.len() as u64 - 1,
        "every other packet on the lane, the new conn's second included"
    );

    // Out of step: a packet stage one did not parse comes first.
    let frames: Vec<_> = clients
        .iter()
        .map(|&c| w.client_frame(c, "", 64, b"x"))
        .collect();
    let burst: Vec<VecPacket> = frames.iter().map(|f| VecPacket::from_bytes(f, 0)).collect();
    let lane = w.lb.express_packets();
    w.lb.prepare(&w.net, &w.svcs, &w.timeouts, burst.iter());
    let mut sent = w.input(VecPacket::from_bytes(&frames[0], 0), NOW).len();
    for pkt in burst {
        sent += w.input(pkt, NOW).len();
    }
    w.lb.end_burst();
    assert_eq!(sent, frames.len() + 1, "all forwarded");
    assert_eq!(w.lb.express_packets(), lane, "by the full path");
}

/// The device's word on the IPv4 header checksum: a frame it found right
/// is not summed again (a wrong sum it vouched for takes the lane, which
/// shows the sum was skipped); one it found wrong is summed as one without
/// its word, as the full path sums every header: a wrong one dropped, and
/// a right one (the device in error) forwarded on the lane.
#[test]
fn the_devices_rx_checksum_word_spares_the_sum_or_sends_the_full_way() {
    let mut w = world(FwdMethod::FullNat, 17, false, 1);
    let client = w.a.client;
    w.open(client, NOW);
    let right = w.client_frame(client, "", 64, b"x");
    let mut wrong = right.clone();
    wrong[14 + 10] ^= 0x01;
    let mut run = |f: &[u8], found: Option<bool>| {
        let mut pkt = VecPacket::from_bytes(f, 0);
        pkt.rx_ipv4_checksum = found;
        let (out, express) = w.worker_packet(pkt, NOW);
        (out.len(), express)
    };
    assert_eq!(run(&wrong, Some(true)), (1, true), "vouched for");
    assert_eq!(run(&wrong, Some(false)), (0, false), "found wrong, dropped");
    assert_eq!(run(&right, Some(false)), (1, true), "summed again, right");
    assert_eq!(run(&wrong, None), (0, false), "summed, dropped");
    assert_eq!(run(&right, None), (1, true), "summed, right");
}

/// The port's receive filter holds on the lane: an established conn's
/// frame sent to another host's MAC, or from a group MAC, is not
/// forwarded.
#[test]
fn frames_the_ports_filter_refuses_are_not_forwarded_on_the_lane() {
    let mut w = world(FwdMethod::FullNat, 17, false, 1);
    let client = w.a.client;
    w.open(client, NOW);
    let f = w.client_frame(client, "", 64, b"x");
    let mut other_host = f.clone();
    other_host[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x99]);
    let mut group_source = f.clone();
    group_source[6] |= 1;
    for (what, g) in [
        ("another host's", &other_host),
        ("a group source", &group_source),
    ] {
        let (out, express) = w.worker(g, NOW);
        assert!(out.is_empty() && !express, "{what} MAC: {out:?}");
    }
    let (out, express) = w.worker(&f, NOW);
    assert!(out.len() == 1 && express, "the port's own MAC");
}

/// A neighbour's new MAC is used by the next packet: the kept Ethernet
/// header is the neighbour table's only while it vouches for it.
#[test]
fn a_real_servers_new_mac_is_used_at_once() {
    let mut w = world(FwdMethod::FullNat, 6, false, 1);
    let client = w.a.client;
    let (rs, _) = w.open(client, NOW);
    let f = w.client_frame(client, "PA", 64, b"x");
    let (sent, express) = w.worker(&f, NOW);
    assert!(express);
    assert_eq!(&sent[0].1[0..6], &RS_MAC);
    let moved = [2, 0, 0, 0, 0, 0x77];
    let u = NeighUpdate {
        port: 0,
        ip: rs,
        mac: MacAddr(moved),
    };
    w.stack.static_neighbour(&w.net, u, &mut Wire::default());
    let (sent, express) = w.worker(&f, NOW);
    assert!(express);
    assert_eq!(&sent[0].1[0..6], &moved, "the real server's new MAC");
    assert_eq!(w.full(&f, NOW), sent, "as the full path sends it");
}

/// A real server's next conn starts from the next hop the server's last
/// one found (`Express::servers`), and a new network configuration, which
/// renumbers the next hops, must forget them all: each conn's first packet
/// goes to its own server's MAC, before and after. After the change the
/// second server comes first and takes the first next hop, where the first
/// server's was kept before.
#[test]
fn new_conns_first_packets_go_to_their_servers_mac_across_a_network_change() {
    let mut w = world(FwdMethod::FullNat, 6, false, 2);
    let mac = |w: &World, rs: IpAddr| if rs == w.a.rs.0 { RS_MAC } else { RS2_MAC };
    let mut servers = Vec::new();
    for (k, net_changes) in [(0, false), (1, false), (2, false), (3, true), (4, false)] {
        if net_changes {
            w.net = w.net.clone().with_extra([]);
        }
        let client = (w.a.client.0, 20_000 + k);
        let (sent, _) = w.worker(&w.client_frame(client, "S", 64, b""), NOW);
        let (_, rs, _) = w.conn_of(client);
        assert_eq!(sent.len(), 1, "conn {k}'s SYN");
        assert_eq!(&sent[0].1[0..6], &mac(&w, rs), "conn {k} to {rs}");
        servers.push(rs);
    }
    assert_eq!(w.lb.express_opens(), 5, "every SYN the lane's");
    // Round robin: the servers alternate, so the fourth conn (the first
    // after the change) is the second server's, the fifth the first's.
    assert_eq!(servers[0], servers[2]);
    assert_ne!(servers[0], servers[1]);
    assert_eq!(servers[3], servers[1]);
    assert_eq!(servers[4], servers[0]);
}

/// A conn's block is worked out a side at a time, as each side's first
/// packet comes: a new conn's first packet works out the client's side
/// only (a SYN flood's conns never pay for their replies'), its first
/// reply on the lane the reply side, rewritten as the full path rewrites
/// it; under a new epoch (a change to the network configuration), each
/// side again at its own next packet, the other left as it was.
#[test]
fn each_side_of_a_conns_block_is_worked_out_at_its_first_packet() {
    for fwd in [FwdMethod::FullNat, FwdMethod::Masq] {
        let mut w = world(fwd, 6, false, 1);
        let client = w.a.client;
        let (sent, _) = w.worker(&w.client_frame(client, "S", 64, b""), NOW);
        assert_eq!(
            (sent.len(), w.lb.express_opens()),
            (1, 1),
            "{fwd:?}: the SYN by the lane"
        );
        let (id, rs, to) = w.conn();
        let epochs = |w: &World| {
            let c = w.lb.conns().get(id).expect("the conn");
            c.express().expect("an IPv4 conn's block").epoch
        };
        let opened = epochs(&w);
        assert!(opened[0] != 0, "{fwd:?}: the client's side worked out");
        assert_eq!(opened[1], 0, "{fwd:?}: the reply's side not yet");
        let f = w.server_frame(rs, to, "SA", b"");
        assert_eq!(w.full(&f, NOW).len(), 1, "{fwd:?}: the SYN-ACK");
        let f = w.client_frame(client, "A", 64, b"");
        assert_eq!(w.full(&f, NOW).len(), 1, "{fwd:?}: the ACK");
        let data_in = w.client_frame(client, "PA", 64, b"data");
        let want_data_in = want_in(&w, client, rs, to, b"data");
        assert!(both_ways(&mut w, &data_in, &want_data_in, NOW), "{fwd:?}");
        assert_eq!(
            epochs(&w),
            opened,
            "{fwd:?}: the client's packets leave the reply's side"
        );
        let data_back = w.server_frame(rs, to, "PA", b"back");
        let want_data_back = want_out(&w, client, b"back");
        assert!(
            both_ways(&mut w, &data_back, &want_data_back, NOW),
            "{fwd:?}: the reply by the lane"
        );
        assert_eq!(
            epochs(&w),
            [opened[0]; 2],
            "{fwd:?}: the reply's side worked out"
        );
        // A new epoch; the reply comes first.
        w.net = w.net.clone().with_extra([]);
        assert!(
            both_ways(&mut w, &data_back, &want_data_back, NOW),
            "{fwd:?}"
        );
        let renewed = epochs(&w);
        assert_eq!(
            renewed[0], opened[0],
            "{fwd:?}: the client's side as it was"
        );
        assert_ne!(renewed[1], opened[0], "{fwd:?}: the reply's side anew");
        assert!(both_ways(&mut w, &data_in, &want_data_in, NOW), "{fwd:?}");
        assert_eq!(
            epochs(&w),
            [renewed[1]; 2],
            "{fwd:?}: both sides under the new epoch"
        );
    }
}

/// What the express lane leaves to the full path: a TTL that expires
/// (time exceeded to the client), a DF packet over the egress MTU (need
/// frag), a FIN (a state change); and Ethernet padding, which it trims.
#[test]
fn ttl_mtu_and_state_changes_take_the_full_path() {
    let mut w = world(FwdMethod::FullNat, 6, false, 1);
    let client = w.a.client;
    let (rs, to) = w.open(client, NOW);
    let icmp_to_client = |sent: &[(u16, Vec<u8>)]| {
        sent.len() == 1 && {
            let r = read(&sent[0].1);
            r.dst == client.0 && r.ports.is_none()
        }
    };
    let (sent, express) = w.worker(&w.client_frame(client, "PA", 1, b"x"), NOW);
    assert!(!express && icmp_to_client(&sent), "TTL 1: {sent:?}");
    let big = vec![0u8; 1500 - 40 + 1];
    let (sent, express) = w.worker(&w.client_frame(client, "PA", 64, &big), NOW);
    assert!(!express && icmp_to_client(&sent), "over the MTU: {sent:?}");
    let mut padded = w.client_frame(client, "PA", 64, b"pad");
    let plain_len = padded.len();
    padded.extend_from_slice(&[0xee; 12]);
    let want = want_in(&w, client, rs, to, b"pad");
    assert!(both_ways(&mut w, &padded, &want, NOW));
    assert_eq!(
        w.worker(&padded, NOW).0[0].1.len(),
        plain_len,
        "padding trimmed"
    );
    let (sent, express) = w.worker(&w.client_frame(client, "FA", 64, b""), NOW);
    assert!(!express && sent.len() == 1, "FIN by the full path");
    let c = w.lb.conns().iter().next().unwrap().1;
    assert_ne!(c.tcp_state(), Some(crate::ipvs::TcpState::Established));
    let (_, express) = w.worker(&w.client_frame(client, "A", 64, b""), NOW);
    assert!(!express, "no express lane once the conn is closing");
}

/// A segment with none of SYN, FIN, RST and ACK moves its conn to CLOSE,
/// as the kernel's state table does (tcp_state_idx finds it no row), on
/// either side: the full path's, not the lane's, which would keep the conn
/// ESTABLISHED. (The pipeline fuzz target's reference found it: the conn
/// outlived the full path's by CLOSE's timeout.)
#[test]
fn a_segment_without_ack_closes_its_conn_by_the_full_path() {
    use crate::ipvs::TcpState;
    let state = |w: &World| w.lb.conns().iter().next().unwrap().1.tcp_state();
    for reply in [false, true] {
        let mut w = world(FwdMethod::FullNat, 6, false, 1);
        let client = w.a.client;
        let (rs, to) = w.open(client, NOW);
        assert_eq!(state(&w), Some(TcpState::Established));
        let (_, express) = w.worker(&w.client_frame(client, "PA", 64, b"x"), NOW);
        assert!(express, "an ACK's segment by the lane");
        let f = if reply {
            w.server_frame(rs, to, "P", b"x")
        } else {
            w.client_frame(client, "P", 64, b"x")
        };
        let (sent, express) = w.worker(&f, NOW);
        assert!(
            !express && sent.len() == 1,
            "reply {reply}: by the full path"
        );
        assert_eq!(state(&w), Some(TcpState::Close), "reply {reply}");
    }
}

/// A UDP/IPv4 datagram without a checksum leaves without one.
#[test]
fn a_udp_datagram_without_a_checksum_keeps_none() {
    let mut w = world(FwdMethod::FullNat, 17, false, 1);
    let client = w.a.client;
    let (rs, to) = w.open(client, NOW);
    let mut f = w.client_frame(client, "", 64, b"no checksum");
    f[14 + 20 + 6..14 + 20 + 8].copy_from_slice(&[0, 0]);
    let want = want_in(&w, client, rs, to, b"no checksum");
    assert!(both_ways(&mut w, &f, &want, NOW));
    let (sent, _) = w.worker(&f, NOW);
    assert_eq!(&sent[0].1[14 + 20 + 6..14 + 20 + 8], &[0, 0]);
}

/// DR's frame goes on as it came but for its TTL and header sum, on the
/// lane as on the full path (xmit::dr): the segment is not touched, not
/// even a TCP checksum of 0xffff, which an update by nothing wrote back as
/// 0x0000 (UDP's 0xffff stood before too, being kept as UDP's zero).
/// Twice: the first packet looks its next hop up, the second takes the
/// kept one.
#[test]
fn dr_sends_the_segment_on_as_it_came() {
    for proto in [6u8, 17] {
        let mut w = world(FwdMethod::DirectRoute, proto, false, 1);
        let client = w.a.client;
        w.open(client, NOW);
        let mut f = w.client_frame(client, "PA", 64, b"as it came");
        let sum = if proto == 6 {
            14 + 20 + 16
        } else {
            14 + 20 + 6
        };
        f[sum..sum + 2].copy_from_slice(&[0xff, 0xff]);
        for n in 0..2 {
            let what = format!("proto {proto}, packet {n}");
            let full = w.full(&f, NOW);
            let (sent, express) = w.worker(&f, NOW);
            assert!(express, "{what}");
            assert_eq!(sent, full, "{what}");
            let out = &sent[0].1;
            assert_eq!(out.len(), f.len());
            assert_eq!(
                out[14 + 20..],
                f[14 + 20..],
                "{what}: the segment as it came"
            );
            assert_eq!(out[14 + 8], 63);
            for (i, (a, b)) in out[14..14 + 20].iter().zip(&f[14..14 + 20]).enumerate() {
                if ![8, 10, 11].contains(&i) {
                    assert_eq!(a, b, "{what}: IP header byte {i}");
                }
            }
            let ip_sum = crate::wire::checksum::checksum(&out[14..14 + 20]);
            assert_eq!(ip_sum, 0, "{what}: the header sums right");
        }
    }
}

/// A VRRP backup forwards nothing to the addresses it holds in standby,
/// though an entry was made while it was master; and once master again
/// (a new configuration) the lane carries on.
#[test]
fn a_vrrp_backup_forwards_nothing_to_its_standby_addresses() {
    let mut w = world(FwdMethod::FullNat, 6, false, 1);
    let client = w.a.client;
    let (rs, to) = w.open(client, NOW);
    let f = w.client_frame(client, "PA", 64, b"x");
    let want = want_in(&w, client, rs, to, b"x");
    assert!(both_ways(&mut w, &f, &want, NOW));
    let master = w.net.clone();
    w.net = master.with_standby([w.a.vip.0]);
    let dropped = |w: &World| w.lb.counters.drops(crate::counters::DropReason::VrrpBackup);
    let before = dropped(&w);
    let (sent, express) = w.worker(&f, NOW);
    assert!(sent.is_empty() && !express, "a backup sent {sent:?}");
    assert_eq!(dropped(&w), before + 1, "counted as vrrp_backup");
    w.net = master.with_extra([]);
    assert!(both_ways(&mut w, &f, &want, NOW));
}

/// An express packet restarts its conn's timer at the state's timeout,
/// as the full path's does: ESTABLISHED TCP (900 s) lives on past its
/// first expiry, then goes once that long passes with no packet; the
/// timeout is read as configured now (`--set`).
#[test]
fn express_packets_keep_their_conn_alive_for_the_states_timeout() {
    let mut w = world(FwdMethod::FullNat, 6, false, 1);
    let client = w.a.client;
    w.open(client, NOW);
    let f = w.client_frame(client, "PA", 64, b"x");
    let later = NOW + 800_000;
    assert!(w.worker(&f, later).1);
    w.lb.poll(&w.svcs, NOW + 901_000);
    assert_eq!(w.lb.conns().len(), 1, "alive past the handshake's 900 s");
    w.lb.poll(&w.svcs, later + 899_000);
    assert_eq!(w.lb.conns().len(), 1, "alive until 900 s after the packet");
    // A shorter ESTABLISHED timeout from now on: the next packet's timer.
    w.timeouts.set(5, 0, 0).unwrap();
    let last = later + 899_500;
    assert!(w.worker(&f, last).1);
    w.lb.poll(&w.svcs, last + 4_000);
    assert_eq!(w.lb.conns().len(), 1, "alive within the new 5 s");
    for t in (last + 4_000..last + 8_000).step_by(100) {
        w.lb.poll(&w.svcs, t);
    }
    assert!(w.lb.conns().is_empty(), "gone 5 s after its last packet");
}

/// A conn that ends before the once-a-second fold (an RST, then the
/// CLOSE timeout) leaves its express counts in the stats, as the full
/// path's packets left theirs.
#[test]
fn a_conns_express_counts_outlive_it() {
    let run = |express: bool| {
        let mut w = world(FwdMethod::FullNat, 6, false, 1);
        let client = w.a.client;
        w.open(client, NOW);
        for n in [1usize, 500, 1400] {
            let f = w.client_frame(client, "PA", 64, &vec![1; n]);
            if express {
                assert!(w.worker(&f, NOW).1);
            } else {
                w.full(&f, NOW);
            }
        }
        w.full(&w.client_frame(client, "R", 64, b""), NOW);
        // The conn goes (CLOSE's 10 s) at a poll that also folds.
        w.lb.poll(&w.svcs, NOW + 60_000);
        assert!(w.lb.conns().is_empty());
        let dest = w.table.services()[0].dests()[0].clone();
        (dest.stats.snapshot(), w.svcs.total().snapshot())
    };
    let (full, fast) = (run(false), run(true));
    assert_eq!(fast, full);
    assert_eq!(fast.0.inpkts, 2 + 3 + 1, "handshake, data, RST");
}

/// A busy conn's counts fold before the conn's 16-bit packet count could
/// wrap: 70 000 packets within one second are all counted.
#[test]
fn a_busy_conns_counts_never_wrap() {
    let mut w = world(FwdMethod::DirectRoute, 17, false, 1);
    let client = w.a.client;
    w.open(client, NOW);
    let f = w.client_frame(client, "", 64, b"");
    for _ in 0..70_000 {
        assert!(w.worker(&f, NOW).1);
    }
    w.lb.poll(&w.svcs, NOW + 1_000);
    let dest = w.table.services()[0].dests()[0].clone();
    let s = dest.stats.snapshot();
    assert_eq!(s.inpkts, 1 + 70_000);
    assert_eq!(s.inbytes, 28 * (1 + 70_000));
}

/// TUN takes the lane as IPIP only, where the outer header still fits the
/// MTU, and leaves it at once when `-e` changes the dest's encapsulation.
#[test]
fn a_tunnel_takes_the_lane_as_ipip_where_the_outer_header_fits() {
    let mut w = world(FwdMethod::Tunnel, 17, false, 1);
    let client = w.a.client;
    let (rs, to) = w.open(client, NOW);
    // 1500: an inner datagram of 1480 bytes fits with its outer header, 1481 not.
    let fits = vec![7u8; 1480 - 28];
    let f = w.client_frame(client, "", 64, &fits);
    let want = want_in(&w, client, rs, to, &fits);
    assert!(
        both_ways(&mut w, &f, &want, NOW),
        "1480 bytes inside: the lane"
    );
    let over = vec![7u8; 1481 - 28];
    let (_, express) = w.worker(&w.client_frame(client, "", 64, &over), NOW);
    assert!(
        !express,
        "1481 bytes inside: the full path (fragments or need-frag)"
    );
    // -e to GUE: the same conn's next packet is the full path's, GUE.
    let key = w.svcs.services()[0].key();
    let d = w.svcs.services()[0].dests()[0].config();
    let gue = crate::ipvs::Tunnel::Gue {
        port: 6080,
        csum: crate::ipvs::TunnelCsum::NoCsum,
    };
    w.table.edit_dest_tunnel(&key, d, gue).unwrap();
    w.svcs = w.table.snapshot();
    let f = w.client_frame(client, "", 64, b"gue");
    let full = w.full(&f, NOW);
    let (fast, express) = w.worker(&f, NOW);
    assert!(!express, "GUE: the full path");
    assert_eq!(fast, full);
    assert_eq!(
        fast[0].1[14 + 9],
        17,
        "UDP (GUE) around the client's packet"
    );
}

/// A FULLNAT service that is deleted takes its local-address pool with
/// it: once the next second's housekeeping has run, `-G` and the metrics
/// no longer list its address (the pool's memory goes with it), and a
/// service added on the same address gets a pool of its own.
#[test]
fn a_deleted_services_local_addresses_leave_the_listing() {
    let mut w = world(FwdMethod::FullNat, 6, false, 1);
    let listed = |w: &World| -> Vec<(u64, IpAddr, u32)> {
        let rows = w.lb.counters.laddr.load();
        rows.iter()
            .map(|u| (u.service, u.laddr, u.in_use))
            .collect()
    };
    let client = w.a.client;
    let f = w.client_frame(client, "S", 64, b"");
    w.worker(&f, NOW);
    w.lb.poll(&w.svcs, NOW + 1_000);
    let old = w.svcs.services()[0].clone();
    assert_eq!(listed(&w), [(old.id(), w.a.lip.0, 1)]);
    assert!(w.table.delete_service(&old.key()).is_ok());
    w.svcs = w.table.snapshot();
    w.lb.poll(&w.svcs, NOW + 2_000);
    assert_eq!(listed(&w), [], "the deleted service's address is gone");
    let again = ServiceConfig {
        scheduler: "rr".into(),
        ..ServiceConfig::new(old.key())
    };
    assert!(w.table.add_service(again).is_ok());
    let mut d = DestConfig::new(w.a.rs.0, w.a.rs.1);
    d.fwd = FwdMethod::FullNat;
    assert!(w.table.add_dest(&old.key(), d).is_ok());
    assert!(w.table.add_laddr(&old.key(), w.a.lip.0, "p").is_ok());
    w.svcs = w.table.snapshot();
    let new = w.svcs.services()[0].id();
    assert_ne!(new, old.id());
    let other = (client.0, client.1 + 1);
    let f = w.client_frame(other, "S", 64, b"");
    w.worker(&f, NOW + 2_000);
    w.lb.poll(&w.svcs, NOW + 3_000);
    assert_eq!(listed(&w), [(new, w.a.lip.0, 1)]);
}
