//! The SYN proxy's handshakes through `Lb::input` with hand-built frames
//! (etherparse), read back with etherparse: the cookie SYN-ACK, the
//! conn that only a good cookie makes, the SYN to the real server with the
//! options the cookie kept, the one client segment kept meanwhile, the
//! splice (the server's numbers shifted onto the client's both ways), the
//! SYN resent to a silent server and the resets.

use std::net::Ipv4Addr;

use etherparse::{
    NetHeaders, PacketBuilder, PacketHeaders, TcpOptionElement as O, TransportHeader,
};

use super::*;
use crate::ipvs::proxy_proto::ProxyProtocol;
use crate::ipvs::syncookie::{self, Secret};
use crate::ipvs::{DestConfig, ServiceConfig, ServiceKey, ServiceTable};
use crate::netstack::{AddrKind, Iface, IfaceAddr, NeighUpdate};
use crate::packet::VecPacket;
use crate::wire::MacAddr;
use crate::xmit::testkit::assert_checksums;

#[derive(Default)]
struct Capture(Vec<(u16, Vec<u8>)>);

impl Output<VecPacket> for Capture {
    fn send(&mut self, port: u16, p: VecPacket) {
        self.0.push((port, p.data().to_vec()));
    }
    fn alloc(&mut self) -> Option<VecPacket> {
        Some(VecPacket::new())
    }
}

const VIP: [u8; 4] = [198, 18, 0, 100];
const CLIENT: [u8; 4] = [198, 18, 0, 2];
const RS: [u8; 4] = [198, 19, 0, 11];
/// FULLNAT's local address: the server-side port's own.
const LIP: [u8; 4] = [198, 19, 0, 1];
const MAC_P0: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_P1: [u8; 6] = [2, 0, 0, 0, 0, 3];
const MAC_CLIENT: [u8; 6] = [2, 0, 0, 0, 0, 2];
const MAC_RS: [u8; 6] = [2, 0, 0, 0, 0, 0x11];
const ISN: u32 = 0x1000_0000;

fn net() -> NetConfig {
    let iface = |port: u16, mac: [u8; 6], a: [u8; 4]| Iface {
        port,
        name: format!("p{port}"),
        mac: MacAddr(mac),
        addrs: vec![IfaceAddr {
            addr: Ipv4Addr::from(a).into(),
            prefix_len: 24,
        }],
        mtu: 1500,
        tx_checksum: false,
    };
    NetConfig::new(
        vec![iface(0, MAC_P0, [198, 18, 0, 1]), iface(1, MAC_P1, LIP)],
        vec![],
    )
    .with_extra([(Ipv4Addr::from(VIP).into(), AddrKind::Vip)])
}

fn key() -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: Ipv4Addr::from(VIP).into(),
        port: 80,
    }
}

/// VIP:80 → RS:8080 by `fwd`, with the SYN proxy (and TOA and the proxy
/// protocol if asked).
fn services(fwd: FwdMethod, toa: bool, pp: ProxyProtocol) -> ServiceTable {
    let mut table = ServiceTable::new(1);
    let cfg = ServiceConfig {
        proxy_protocol: pp,
        ..ServiceConfig::new(key())
    };
    table.add_service(cfg).unwrap();
    table.set_synproxy(&key(), true).unwrap();
    let mut d = DestConfig::new(Ipv4Addr::from(RS).into(), 8080);
    d.fwd = fwd;
    table.add_dest(&key(), d).unwrap();
    if toa {
        table.set_toa(&key(), true).unwrap();
    }
    table
}

struct Rig {
    net: NetConfig,
    svcs: ServiceSet,
    lb: Lb,
    stack: Stack<VecPacket>,
    counters: Arc<WorkerCounters>,
    out: Capture,
}

fn rig(fwd: FwdMethod, toa: bool) -> Rig {
    rig_pp(fwd, toa, ProxyProtocol::Disable)
}

fn rig_pp(fwd: FwdMethod, toa: bool, pp: ProxyProtocol) -> Rig {
    let net = net();
    let counters = Arc::new(WorkerCounters::default());
    let mut stack: Stack<VecPacket> = Stack::new(64, counters.clone());
    let mut out = Capture::default();
    for (port, ip, mac) in [(0, CLIENT, MAC_CLIENT), (1, RS, MAC_RS)] {
        stack.static_neighbour(
            &net,
            NeighUpdate {
                port,
                ip: Ipv4Addr::from(ip).into(),
                mac: MacAddr(mac),
            },
            &mut out,
        );
    }
    out.0.clear();
    let mut lb = Lb::new(0, 1, 64, counters.clone());
    lb.synproxy.set_secret(Secret::new([(11, 12), (13, 14)]));
    Rig {
        svcs: services(fwd, toa, pp).snapshot(),
        lb,
        net,
        stack,
        counters,
        out,
    }
}

impl Rig {
    fn feed(&mut self, f: &[u8], port: u16, now: Millis) -> Vec<Got> {
        let pkt = VecPacket::from_bytes(f, port);
        let tmo = Timeouts::default();
        let r = self.lb.input(
            &self.net,
            &self.svcs,
            &tmo,
            pkt,
            now,
            &mut self.stack,
            &mut self.out,
        );
        assert!(matches!(r, Outcome::Done), "not the load balancer's");
        self.sent()
    }

    fn poll(&mut self, now: Millis) -> Vec<Got> {
        let tmo = Timeouts::default();
        self.lb.poll_synproxy(
            &self.net,
            &self.svcs,
            &tmo,
            now,
            &mut self.stack,
            &mut self.out,
        );
        self.sent()
    }

    fn sent(&mut self) -> Vec<Got> {
        self.out
            .0
            .drain(..)
            .map(|(port, f)| got(port, &f))
            .collect()
    }
}

/// A TCP segment, as etherparse builds it.
struct Seg<'a> {
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    seq: u32,
    ack: Option<u32>,
    flags: &'a str,
    win: u16,
    opts: Vec<O>,
    payload: &'a [u8],
}

impl Seg<'_> {
    fn frame(&self, macs: ([u8; 6], [u8; 6])) -> Vec<u8> {
        let mut b = PacketBuilder::ethernet2(macs.0, macs.1)
            .ipv4(self.src.0, self.dst.0, 64)
            .tcp(self.src.1, self.dst.1, self.seq, self.win);
        for c in self.flags.chars() {
            b = match c {
                'S' => b.syn(),
                'P' => b.psh(),
                'R' => b.rst(),
                'F' => b.fin(),
                'E' => b.ece(),
                'C' => b.cwr(),
                _ => panic!("flag {c}"),
            };
        }
        if let Some(a) = self.ack {
            b = b.ack(a);
        }
        let b = b.options(&self.opts).unwrap();
        let mut v = Vec::new();
        b.write(&mut v, self.payload).unwrap();
        v
    }

    fn client_frame(&self) -> Vec<u8> {
        self.frame((MAC_CLIENT, MAC_P0))
    }

    fn rs_frame(&self) -> Vec<u8> {
        self.frame((MAC_RS, MAC_P1))
    }
}

fn client_seg<'a>(
    seq: u32,
    ack: Option<u32>,
    flags: &'a str,
    opts: Vec<O>,
    payload: &'a [u8],
) -> Seg<'a> {
    Seg {
        src: (CLIENT, 40000),
        dst: (VIP, 80),
        seq,
        ack,
        flags,
        win: 502,
        opts,
        payload,
    }
}

/// What etherparse reads in a frame rvs sent.
#[derive(Debug, Clone)]
struct Got {
    port: u16,
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    tcp: etherparse::TcpHeader,
    payload: Vec<u8>,
}

impl Got {
    fn opts(&self) -> Vec<O> {
        self.tcp.options_iterator().map(|o| o.unwrap()).collect()
    }

    fn ts(&self) -> Option<(u32, u32)> {
        self.opts().into_iter().find_map(|o| match o {
            O::Timestamp(a, b) => Some((a, b)),
            _ => None,
        })
    }
}

fn got(port: u16, f: &[u8]) -> Got {
    assert_checksums(f, false);
    let h = PacketHeaders::from_ethernet_slice(f).unwrap();
    let eth = h.link.unwrap().ethernet2().unwrap();
    let Some(NetHeaders::Ipv4(ip, _)) = h.net else {
        panic!("not IPv4")
    };
    let Some(TransportHeader::Tcp(t)) = h.transport else {
        panic!("not TCP")
    };
    Got {
        port,
        dst_mac: eth.destination,
        src_mac: eth.source,
        src: (ip.source, t.source_port),
        dst: (ip.destination, t.destination_port),
        payload: h.payload.slice().to_vec(),
        tcp: t,
    }
}

fn syn_opts(ts: u32) -> Vec<O> {
    vec![
        O::MaximumSegmentSize(1460),
        O::SelectiveAcknowledgementPermitted,
        O::Timestamp(ts, 0),
        O::Noop,
        O::WindowScale(8),
    ]
}

const T0: Millis = 7_200_000;

/// The client's SYN (ECN-setup, all options) and the SYN-ACK it gets:
/// its cookie and the TSval it was shown.
fn syn(r: &mut Rig, now: Millis) -> (u32, u32) {
    let f = client_seg(ISN, None, "SEC", syn_opts(1000), b"").client_frame();
    let out = r.feed(&f, 0, now);
    assert_eq!(out.len(), 1, "one SYN-ACK");
    let a = &out[0];
    (a.tcp.sequence_number, a.ts().unwrap().0)
}

/// The handshake's ACK for `cookie`, echoing `shown`.
fn ack(cookie: u32, shown: u32, payload: &[u8]) -> Vec<u8> {
    let flags = if payload.is_empty() { "" } else { "P" };
    client_seg(
        ISN + 1,
        Some(cookie.wrapping_add(1)),
        flags,
        vec![O::Noop, O::Noop, O::Timestamp(1001, shown)],
        payload,
    )
    .client_frame()
}

#[test]
fn a_syn_gets_a_cookie_syn_ack_and_no_conn() {
    let mut r = rig(FwdMethod::FullNat, false);
    let f = client_seg(ISN, None, "SEC", syn_opts(1000), b"").client_frame();
    let out = r.feed(&f, 0, T0 + 1000);
    assert_eq!(out.len(), 1);
    let a = &out[0];
    assert_eq!(a.port, 0, "back out of the port it came in by");
    assert_eq!((a.dst_mac, a.src_mac), (MAC_CLIENT, MAC_P0));
    assert_eq!((a.src, a.dst), ((VIP, 80), (CLIENT, 40000)));
    let t = &a.tcp;
    assert!(t.syn && t.ack && t.ece && !t.cwr && !t.rst && !t.fin);
    assert_eq!(t.acknowledgment_number, ISN + 1);
    assert_eq!(t.window_size, 1460, "one segment's worth");
    // TSval: the clock (T0 + 1000 ms = 7201000 = 0x6de0e8) with its low
    // six bits replaced by wscale 8, SACK (0x10) and ECN (0x20): 0x6de0c0
    // | 0x38 = 0x6de0f8, past the clock, so one step of 64 back: 0x6de0b8.
    assert_eq!(
        a.opts(),
        vec![
            O::MaximumSegmentSize(1460),
            O::SelectiveAcknowledgementPermitted,
            O::Timestamp(0x006d_e0b8, 1000),
            O::Noop,
            O::WindowScale(7),
        ]
    );
    assert_eq!(r.lb.conns().len(), 0, "a SYN costs no conn");
    // The cookie is Linux's: the MSS 1460 is index 3 of the table.
    let t4 = syncookie::CookieTuple {
        saddr: Ipv4Addr::from(CLIENT).into(),
        daddr: Ipv4Addr::from(VIP).into(),
        sport: 40000,
        dport: 80,
    };
    let count = syncookie::count_at(T0 + 1000);
    assert_eq!(
        syncookie::check(&r.lb.synproxy.secret, &t4, ISN, t.sequence_number, count),
        Some(3)
    );
}

#[test]
fn a_flood_of_syns_from_random_sources_costs_no_conn() {
    let mut r = rig(FwdMethod::FullNat, false);
    let mut x = 0x2545_f491u32;
    for i in 0..2000u32 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let mut s = client_seg(x, None, "S", vec![O::MaximumSegmentSize(1460)], b"");
        s.src = ([10, (i >> 8) as u8, i as u8, 7], (x % 60000) as u16 + 1024);
        let out = r.feed(&s.client_frame(), 0, T0);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].dst, s.src);
        assert!(out[0].tcp.syn && out[0].tcp.ack);
    }
    assert_eq!(r.lb.conns().len(), 0);
    assert_eq!(r.lb.synproxy_handshakes(), 0);
    assert_eq!(r.counters.total_drops(), 0);
}

#[test]
fn an_ack_without_a_good_cookie_opens_nothing_and_is_counted() {
    let mut r = rig(FwdMethod::FullNat, false);
    let (cookie, shown) = syn(&mut r, T0);
    // Not our cookie.
    assert!(r
        .feed(&ack(cookie ^ 0x8000_0000, shown, b""), 0, T0)
        .is_empty());
    // Ours, but for another client port.
    let mut other = client_seg(ISN + 1, Some(cookie + 1), "", vec![], b"");
    other.src.1 = 40001;
    assert!(r.feed(&other.client_frame(), 0, T0).is_empty());
    // Ours, two minutes on.
    assert!(r
        .feed(&ack(cookie, shown, b""), 0, T0 + 2 * syncookie::PERIOD_MS)
        .is_empty());
    assert_eq!(r.counters.drops(DropReason::SynproxyBadCookie), 3);
    // A segment that is neither SYN nor ACK opens nothing either.
    let fin = client_seg(ISN + 1, Some(cookie + 1), "F", vec![], b"").client_frame();
    assert!(r.feed(&fin, 0, T0).is_empty());
    assert_eq!(r.counters.drops(DropReason::NoConn), 1);
    assert_eq!(r.lb.conns().len(), 0);
    // One minute on it is still good.
    let out = r.feed(&ack(cookie, shown, b""), 0, T0 + syncookie::PERIOD_MS);
    assert_eq!(out.len(), 1, "the SYN to the real server");
    assert_eq!(r.lb.conns().len(), 1);
}

/// A conn through the whole handshake: returns the SYN to the server.
fn open(r: &mut Rig, now: Millis) -> (u32, u32, Got) {
    let (cookie, shown) = syn(r, now);
    let out = r.feed(&ack(cookie, shown, b""), 0, now);
    assert_eq!(out.len(), 1, "{out:?}");
    (cookie, shown, out[0].clone())
}

#[test]
fn the_cookie_ack_opens_the_conn_and_the_proxy_syns_the_real_server() {
    let mut r = rig(FwdMethod::FullNat, false);
    let (_, _, s) = open(&mut r, T0);
    assert_eq!(r.lb.conns().len(), 1);
    assert_eq!(r.lb.synproxy_handshakes(), 1);
    assert_eq!(s.port, 1);
    assert_eq!((s.dst_mac, s.src_mac), (MAC_RS, MAC_P1));
    assert_eq!(s.src.0, LIP, "FULLNAT: from the local address");
    assert_eq!(s.dst, (RS, 8080));
    let t = &s.tcp;
    assert!(t.syn && !t.ack && t.ece && t.cwr);
    assert_eq!(t.sequence_number, ISN, "the client's own ISN");
    // The client's window 502 at its scale 8: 128512, capped at 65535.
    assert_eq!(t.window_size, 65535);
    assert_eq!(
        s.opts(),
        vec![
            O::MaximumSegmentSize(1460),
            O::SelectiveAcknowledgementPermitted,
            O::Timestamp(1001, 0),
            O::Noop,
            O::WindowScale(8),
        ],
        "the client's MSS, SACK, TSval and window scale"
    );
    let rows = r.lb.conn_rows(0, 10, T0);
    assert_eq!(rows.0.len(), 1);
    assert_eq!(rows.0[0].state, "SYN_RECV");
}

#[test]
fn the_real_servers_syn_ack_splices_the_two_halves() {
    let mut r = rig(FwdMethod::FullNat, false);
    let (cookie, shown, s) = open(&mut r, T0);
    let lport = s.src.1;
    // The client sends its request before the server is there: kept.
    let get = b"GET / HTTP/1.1\r\n\r\n";
    assert!(r.feed(&ack(cookie, shown, get), 0, T0 + 1).is_empty());
    // A second segment finds the one place taken.
    let more = client_seg(
        ISN + 1 + get.len() as u32,
        Some(cookie + 1),
        "P",
        vec![],
        b"more",
    );
    assert!(r.feed(&more.client_frame(), 0, T0 + 1).is_empty());
    assert_eq!(r.counters.drops(DropReason::SynproxyQueueFull), 1);

    // The server: ISN 0x50000000, window 65160 at scale 9, TSval 50000.
    let rs_isn = 0x5000_0000u32;
    let synack = Seg {
        src: (RS, 8080),
        dst: (LIP, lport),
        seq: rs_isn,
        ack: Some(ISN + 1),
        flags: "S",
        win: 65160,
        opts: vec![
            O::MaximumSegmentSize(1460),
            O::SelectiveAcknowledgementPermitted,
            O::Timestamp(50_000, 1001),
            O::Noop,
            O::WindowScale(9),
        ],
        payload: b"",
    };
    let out = r.feed(&synack.rs_frame(), 1, T0 + 2);
    assert_eq!(out.len(), 3, "{out:?}");
    assert_eq!(r.lb.synproxy_handshakes(), 0);

    // 1. The server's handshake completes: the client's ACK in the
    //    server's numbers, TSecr moved onto the server's clock.
    let a = &out[0];
    assert_eq!((a.src, a.dst), ((LIP, lport), (RS, 8080)));
    assert!(a.tcp.ack && !a.tcp.syn && a.payload.is_empty());
    assert_eq!(a.tcp.sequence_number, ISN + 1);
    assert_eq!(a.tcp.acknowledgment_number, rs_isn + 1);
    assert_eq!(a.ts(), Some((1001, 50_000)));
    // 2. The kept request, shifted the same way.
    let g = &out[1];
    assert_eq!(g.dst, (RS, 8080));
    assert_eq!(g.payload, get);
    assert_eq!(g.tcp.sequence_number, ISN + 1);
    assert_eq!(g.tcp.acknowledgment_number, rs_isn + 1);
    assert_eq!(g.ts(), Some((1001, 50_000)));
    // 3. The server's SYN-ACK goes on to the client as an ACK in the
    //    client's numbers: the cookie, the TSval it was shown, and the
    //    server's window (65160 = 127 << 9 + 136, so 127 at scale 9) at the
    //    scale the client was promised, 7: 127 << 2 = 508.
    let w = &out[2];
    assert_eq!(w.port, 0);
    assert_eq!((w.src, w.dst), ((VIP, 80), (CLIENT, 40000)));
    assert!(w.tcp.ack && !w.tcp.syn && !w.tcp.rst);
    assert_eq!(w.tcp.sequence_number, cookie.wrapping_add(1));
    assert_eq!(w.tcp.acknowledgment_number, ISN + 1);
    assert_eq!(w.tcp.window_size, 508);
    assert_eq!(w.ts(), Some((shown, 1001)));

    // From now on every segment is shifted, both ways.
    let reply = Seg {
        src: (RS, 8080),
        dst: (LIP, lport),
        seq: rs_isn + 1,
        ack: Some(ISN + 1 + get.len() as u32),
        flags: "P",
        win: 200,
        opts: vec![O::Noop, O::Noop, O::Timestamp(50_010, 1001)],
        payload: b"HTTP/1.1 200 OK\r\n\r\n",
    };
    let out = r.feed(&reply.rs_frame(), 1, T0 + 12);
    assert_eq!(out.len(), 1);
    let d = &out[0];
    assert_eq!((d.src, d.dst), ((VIP, 80), (CLIENT, 40000)));
    assert_eq!(d.tcp.sequence_number, cookie.wrapping_add(1));
    assert_eq!(d.tcp.acknowledgment_number, ISN + 1 + get.len() as u32);
    assert_eq!(d.tcp.window_size, 800, "200 at scale 9 is 800 at 7");
    assert_eq!(d.ts(), Some((shown + 10, 1001)));
    assert_eq!(d.payload, b"HTTP/1.1 200 OK\r\n\r\n");
    let client_ack = client_seg(
        ISN + 1 + get.len() as u32,
        Some(cookie.wrapping_add(1 + 19)),
        "",
        vec![O::Noop, O::Noop, O::Timestamp(1010, shown + 10)],
        b"",
    );
    let out = r.feed(&client_ack.client_frame(), 0, T0 + 13);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].tcp.acknowledgment_number, rs_isn + 1 + 19);
    assert_eq!(out[0].ts(), Some((1010, 50_010)));
    assert_eq!(r.lb.conn_rows(0, 10, T0).0[0].state, "ESTABLISHED");
    assert_eq!(r.counters.drops(DropReason::SynproxyHandshake), 0);
}

#[test]
fn a_syn_ack_for_another_isn_is_dropped_and_the_handshake_goes_on() {
    let mut r = rig(FwdMethod::FullNat, false);
    let (_, _, s) = open(&mut r, T0);
    let bad = Seg {
        src: (RS, 8080),
        dst: (LIP, s.src.1),
        seq: 5,
        ack: Some(ISN + 2),
        flags: "S",
        win: 1000,
        opts: vec![],
        payload: b"",
    };
    assert!(r.feed(&bad.rs_frame(), 1, T0 + 1).is_empty());
    assert_eq!(r.counters.drops(DropReason::SynproxyHandshake), 1);
    assert_eq!(r.lb.synproxy_handshakes(), 1);
}

#[test]
fn a_silent_server_gets_the_syn_three_more_times_then_the_client_a_reset() {
    let mut r = rig(FwdMethod::FullNat, false);
    let (cookie, _, first) = open(&mut r, T0);
    assert!(r.poll(T0 + 2999).is_empty());
    for k in 1..=3u64 {
        let out = r.poll(T0 + 3000 * k);
        assert_eq!(out.len(), 1, "retry {k}");
        assert_eq!(out[0].tcp.sequence_number, ISN);
        assert!(out[0].tcp.syn);
        assert_eq!((out[0].src, out[0].dst), (first.src, first.dst));
        assert!(r.poll(T0 + 3000 * k + 2999).is_empty());
    }
    let out = r.poll(T0 + 12_000);
    assert_eq!(out.len(), 1);
    let rst = &out[0];
    assert_eq!((rst.src, rst.dst), ((VIP, 80), (CLIENT, 40000)));
    assert_eq!(rst.dst_mac, MAC_CLIENT);
    assert!(rst.tcp.rst && rst.tcp.ack);
    assert_eq!(rst.tcp.sequence_number, cookie.wrapping_add(1));
    assert_eq!(rst.tcp.acknowledgment_number, ISN + 1);
    assert_eq!(r.lb.conns().len(), 0);
    assert_eq!(r.lb.synproxy_handshakes(), 0);
}

#[test]
fn a_reset_from_the_server_resets_the_client() {
    let mut r = rig(FwdMethod::FullNat, false);
    let (cookie, _, s) = open(&mut r, T0);
    let rst = Seg {
        src: (RS, 8080),
        dst: (LIP, s.src.1),
        seq: 0,
        ack: Some(ISN + 1),
        flags: "R",
        win: 0,
        opts: vec![],
        payload: b"",
    };
    let out = r.feed(&rst.rs_frame(), 1, T0 + 1);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].dst, (CLIENT, 40000));
    assert!(out[0].tcp.rst);
    assert_eq!(out[0].tcp.sequence_number, cookie.wrapping_add(1));
    assert_eq!(r.lb.conns().len(), 0);
    assert_eq!(r.lb.synproxy_handshakes(), 0);
    assert!(r.poll(T0 + 60_000).is_empty(), "no timer left");
}

#[test]
fn nat_keeps_the_clients_address_towards_the_server() {
    let mut r = rig(FwdMethod::Masq, false);
    let (cookie, shown, s) = open(&mut r, T0);
    assert_eq!((s.src, s.dst), ((CLIENT, 40000), (RS, 8080)));
    let synack = Seg {
        src: (RS, 8080),
        dst: (CLIENT, 40000),
        seq: 77,
        ack: Some(ISN + 1),
        flags: "S",
        win: 29200,
        opts: vec![
            O::MaximumSegmentSize(1460),
            O::SelectiveAcknowledgementPermitted,
            O::Timestamp(9, 1001),
            O::Noop,
            O::WindowScale(7),
        ],
        payload: b"",
    };
    let out = r.feed(&synack.rs_frame(), 1, T0 + 1);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!((out[0].src, out[0].dst), ((CLIENT, 40000), (RS, 8080)));
    assert_eq!(out[0].tcp.acknowledgment_number, 78);
    assert_eq!((out[1].src, out[1].dst), ((VIP, 80), (CLIENT, 40000)));
    assert_eq!(out[1].tcp.sequence_number, cookie.wrapping_add(1));
    // Same scale both sides: 29200 >> 7 = 228 passes as it is.
    assert_eq!(out[1].tcp.window_size, 228);
    assert_eq!(out[1].ts(), Some((shown, 1001)));
}

#[test]
fn without_timestamps_the_conn_gets_the_mss_alone() {
    let mut r = rig(FwdMethod::FullNat, false);
    let f = client_seg(
        ISN,
        None,
        "SEC",
        vec![
            O::MaximumSegmentSize(1400),
            O::SelectiveAcknowledgementPermitted,
            O::Noop,
            O::WindowScale(8),
        ],
        b"",
    )
    .client_frame();
    let out = r.feed(&f, 0, T0);
    let a = &out[0];
    assert_eq!(a.opts(), vec![O::MaximumSegmentSize(1460)]);
    assert!(!a.tcp.ece, "no room for ECN without a timestamp");
    let cookie = a.tcp.sequence_number;
    let ack = client_seg(ISN + 1, Some(cookie + 1), "", vec![], b"").client_frame();
    let out = r.feed(&ack, 0, T0);
    assert_eq!(out.len(), 1);
    let s = &out[0];
    // 1400 is not in the table: the cookie keeps 1300.
    assert_eq!(s.opts(), vec![O::MaximumSegmentSize(1300)]);
    assert!(!s.tcp.ece && !s.tcp.cwr);
    assert_eq!(s.tcp.window_size, 502, "unscaled");
}

#[test]
fn toa_rides_on_the_proxys_syn_and_ack_to_the_server() {
    let mut r = rig(FwdMethod::FullNat, true);
    let (_, _, s) = open(&mut r, T0);
    // The TOA option first: kind 254, length 8, port 40000 (0x9c40), the
    // client's address.
    assert_eq!(
        &s.tcp.options.as_slice()[..8],
        &[254, 8, 0x9c, 0x40, 198, 18, 0, 2]
    );
    let synack = Seg {
        src: (RS, 8080),
        dst: (LIP, s.src.1),
        seq: 1,
        ack: Some(ISN + 1),
        flags: "S",
        win: 29200,
        opts: vec![O::MaximumSegmentSize(1460)],
        payload: b"",
    };
    let out = r.feed(&synack.rs_frame(), 1, T0 + 1);
    assert_eq!(
        &out[0].tcp.options.as_slice()[..8],
        &[254, 8, 0x9c, 0x40, 198, 18, 0, 2]
    );
}

#[test]
fn a_client_reset_during_the_handshake_ends_the_conn() {
    let mut r = rig(FwdMethod::FullNat, false);
    let (cookie, _, _) = open(&mut r, T0);
    let rst = client_seg(ISN + 1, Some(cookie + 1), "R", vec![], b"").client_frame();
    assert!(r.feed(&rst, 0, T0 + 1).is_empty());
    assert_eq!(r.lb.conns().len(), 0);
    assert_eq!(r.lb.synproxy_handshakes(), 0);
}

#[test]
fn with_the_proxy_protocol_its_header_goes_in_front_of_the_kept_request() {
    let mut r = rig_pp(FwdMethod::FullNat, false, ProxyProtocol::V1);
    let pp = b"PROXY TCP4 198.18.0.2 198.18.0.100 40000 80\r\n";
    assert_eq!(pp.len(), 45);
    let f = client_seg(ISN, None, "S", syn_opts(1000), b"").client_frame();
    let out = r.feed(&f, 0, T0);
    // 1460 less the header the first segment must carry as well.
    assert_eq!(out[0].opts()[0], O::MaximumSegmentSize(1415));
    let (cookie, shown) = (out[0].tcp.sequence_number, out[0].ts().unwrap().0);
    let s = r.feed(&ack(cookie, shown, b""), 0, T0).remove(0);
    assert_eq!(s.tcp.sequence_number, ISN);
    let get = b"GET / HTTP/1.0\r\n\r\n";
    assert!(r.feed(&ack(cookie, shown, get), 0, T0 + 1).is_empty());
    let synack = Seg {
        src: (RS, 8080),
        dst: (LIP, s.src.1),
        seq: 900,
        ack: Some(ISN + 1),
        flags: "S",
        win: 29200,
        opts: vec![O::MaximumSegmentSize(1460)],
        payload: b"",
    };
    let out = r.feed(&synack.rs_frame(), 1, T0 + 2);
    assert_eq!(out.len(), 3, "{out:?}");
    assert_eq!(out[0].tcp.sequence_number, ISN + 1);
    assert!(out[0].payload.is_empty());
    let mut want = pp.to_vec();
    want.extend_from_slice(get);
    assert_eq!(out[1].payload, want, "the header, then the request");
    assert_eq!(out[1].tcp.sequence_number, ISN + 1);
    assert_eq!(out[1].tcp.acknowledgment_number, 901);
    assert_eq!(out[2].tcp.sequence_number, cookie.wrapping_add(1));
    // The server acknowledges header and request; the client hears of its
    // request only.
    let reply = Seg {
        src: (RS, 8080),
        dst: (LIP, s.src.1),
        seq: 901,
        ack: Some(ISN + 1 + 45 + get.len() as u32),
        flags: "P",
        win: 29200,
        opts: vec![],
        payload: b"HTTP/1.0 200 OK\r\n\r\n",
    };
    let out = r.feed(&reply.rs_frame(), 1, T0 + 3);
    assert_eq!(out[0].tcp.acknowledgment_number, ISN + 1 + get.len() as u32);
    assert_eq!(out[0].tcp.sequence_number, cookie.wrapping_add(1));
}

#[test]
fn a_service_whose_real_servers_all_have_weight_0_answers_no_syn() {
    let mut table = services(FwdMethod::FullNat, false, ProxyProtocol::Disable);
    let mut d = DestConfig::new(Ipv4Addr::from(RS).into(), 8080);
    d.fwd = FwdMethod::FullNat;
    d.weight = 0;
    table.edit_dest(&key(), d).unwrap();
    let mut r = rig(FwdMethod::FullNat, false);
    r.svcs = table.snapshot();
    let f = client_seg(ISN, None, "S", syn_opts(1000), b"").client_frame();
    assert!(r.feed(&f, 0, T0).is_empty());
    assert_eq!(r.counters.drops(DropReason::NoDest), 1);
}
