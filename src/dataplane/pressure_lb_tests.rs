//! Conn-table pressure through the load-balancing stage: a full table of a
//! FULLNAT service makes way for a new conn (its local port back to the
//! pool) or, full of established conns, refuses; the limits and
//! drop_packet drop and count; secure_tcp keeps TOA on the handshake's ACK.

use std::net::{IpAddr, Ipv4Addr};

use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

use super::*;
use crate::dataplane::pressure::PressureConfig;
use crate::dataplane::ratelimit::SourceLimitConfig;
use crate::ipvs::defense::DefenseConfig;
use crate::ipvs::{DestConfig, ServiceConfig, ServiceKey, ServiceTable};
use crate::netstack::{AddrKind, Iface, IfaceAddr, NeighUpdate};
use crate::packet::VecPacket;
use crate::wire::MacAddr;

#[derive(Default)]
struct Capture(Vec<Vec<u8>>);

impl Output<VecPacket> for Capture {
    fn send(&mut self, _: u16, p: VecPacket) {
        self.0.push(p.data().to_vec());
    }
    fn alloc(&mut self) -> Option<VecPacket> {
        Some(VecPacket::new())
    }
}

const VIP: [u8; 4] = [198, 18, 0, 100];
const CLIENT: [u8; 4] = [198, 18, 0, 2];
const LIP: [u8; 4] = [198, 19, 0, 1];
const RS: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 11);
const MAC0: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC1: [u8; 6] = [2, 0, 0, 0, 0, 3];

fn key() -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: Ipv4Addr::from(VIP).into(),
        port: 80,
    }
}

struct Rig {
    net: NetConfig,
    table: ServiceTable,
    svcs: ServiceSet,
    lb: Lb,
    stack: Stack<VecPacket>,
    counters: Arc<WorkerCounters>,
    out: Capture,
}

/// FULLNAT TCP VIP:80 → RS:80 with TOA; the client side on port 0, the
/// server side (and the local address, the port's own) on port 1.
fn rig(capacity: usize, cfg: &PressureConfig) -> Rig {
    rig_of(0, 1, capacity, cfg)
}

/// `rig` as worker `worker` of `workers`.
fn rig_of(worker: usize, workers: usize, capacity: usize, cfg: &PressureConfig) -> Rig {
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
    let net = NetConfig::new(
        vec![iface(0, MAC0, [198, 18, 0, 1]), iface(1, MAC1, LIP)],
        vec![],
    )
    .with_extra([(Ipv4Addr::from(VIP).into(), AddrKind::Vip)]);
    let mut table = ServiceTable::new(1);
    table.add_service(ServiceConfig::new(key())).unwrap();
    let mut d = DestConfig::new(RS.into(), 80);
    d.fwd = FwdMethod::FullNat;
    table.add_dest(&key(), d).unwrap();
    table.set_toa(&key(), true).unwrap();
    let counters = Arc::new(WorkerCounters::default());
    let mut stack: Stack<VecPacket> = Stack::new(64, counters.clone());
    let mut out = Capture::default();
    for (port, ip, last) in [(1, IpAddr::from(RS), 0x11), (0, CLIENT.into(), 0x02)] {
        stack.static_neighbour(
            &net,
            NeighUpdate {
                port,
                ip,
                mac: MacAddr([2, 0, 0, 0, 0, last]),
            },
            &mut out,
        );
    }
    out.0.clear();
    let mut lb = Lb::new(worker, workers, capacity, counters.clone());
    lb.set_pressure(cfg, 0);
    Rig {
        svcs: table.snapshot(),
        table,
        net,
        lb,
        stack,
        counters,
        out,
    }
}

/// A TCP segment (etherparse): `flags` of "S", "A", "SA".
fn segment(
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    macs: ([u8; 6], [u8; 6]),
    flags: &str,
    data: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv4(src.0, dst.0, 64)
        .tcp(src.1, dst.1, 1000, 64240);
    let b = match flags {
        "S" => b.syn(),
        "SA" => b.syn().ack(1),
        _ => b.ack(1),
    };
    let mut f = Vec::new();
    b.write(&mut f, data).unwrap();
    f
}

fn from_client(cport: u16, flags: &str, data: &[u8]) -> Vec<u8> {
    from(CLIENT, cport, flags, data)
}

fn from(client: [u8; 4], cport: u16, flags: &str, data: &[u8]) -> Vec<u8> {
    segment(
        (client, cport),
        (VIP, 80),
        ([2, 0, 0, 0, 0, 2], MAC0),
        flags,
        data,
    )
}

/// The forwarded segment's TCP source port (the local port) and options.
fn sent_tcp(f: &[u8]) -> (u16, Vec<u8>) {
    let p = SlicedPacket::from_ethernet(f).unwrap();
    match p.transport {
        Some(TransportSlice::Tcp(t)) => (t.source_port(), t.options().to_vec()),
        _ => panic!("not TCP"),
    }
}

impl Rig {
    fn feed(&mut self, f: &[u8], rx: u16, now: Millis) {
        let pkt = VecPacket::from_bytes(f, rx);
        let tmo = Timeouts::default();
        let _ = self.lb.input(
            &self.net,
            &self.svcs,
            &tmo,
            pkt,
            now,
            &mut self.stack,
            &mut self.out,
        );
    }

    /// The local ports this worker holds, as it publishes them.
    fn ports_in_use(&mut self, now: Millis) -> u32 {
        self.lb.poll(&self.svcs, now);
        self.counters.laddr.load().iter().map(|u| u.in_use).sum()
    }

    /// A SYN from the client's `cport`; the local port it left with.
    fn syn(&mut self, cport: u16, now: Millis) -> u16 {
        let before = self.out.0.len();
        self.feed(&from_client(cport, "S", b""), 0, now);
        assert_eq!(self.out.0.len(), before + 1, "SYN from {cport} forwarded");
        sent_tcp(self.out.0.last().unwrap()).0
    }
}

#[test]
fn a_full_table_evicts_the_oldest_embryonic_conn_and_frees_its_local_port() {
    let mut r = rig(4, &PressureConfig::default());
    for p in 1..=4 {
        r.syn(p, 1000 + u64::from(p));
    }
    assert_eq!((r.lb.conns().len(), r.ports_in_use(2000)), (4, 4));
    // The fifth SYN gets in: the first client's SYN_RECV conn makes way.
    r.syn(5, 2001);
    assert_eq!(r.counters.pressure.evicted.get(), 1);
    assert_eq!(r.counters.drops(DropReason::ConnTableFull), 0);
    assert_eq!((r.lb.conns().len(), r.ports_in_use(3000)), (4, 4));
    // The first client's ACK finds no conn; the second's still does.
    let sent = r.out.0.len();
    r.feed(&from_client(1, "A", b""), 0, 3001);
    assert_eq!(r.counters.drops(DropReason::NoConn), 1);
    r.feed(&from_client(2, "A", b""), 0, 3002);
    assert_eq!(r.out.0.len(), sent + 1);
}

#[test]
fn a_table_full_of_established_conns_refuses() {
    let mut r = rig(4, &PressureConfig::default());
    for p in 1..=4 {
        r.syn(p, 1000);
        r.feed(&from_client(p, "A", b""), 0, 1001);
    }
    let before = r.out.0.len();
    r.feed(&from_client(5, "S", b""), 0, 1002);
    assert_eq!(r.out.0.len(), before);
    assert_eq!(r.counters.drops(DropReason::ConnTableFull), 1);
    assert_eq!(r.counters.pressure.evicted.get(), 0);
}

#[test]
fn limits_and_drop_packet_drop_and_count() {
    // drop_packet = 3, am_droprate 2: the first new conn goes, then every
    // second (ip_vs_todrop's counter starts at 0).
    let cfg = PressureConfig {
        defense: DefenseConfig {
            drop_packet: 3,
            am_droprate: 2,
            ..DefenseConfig::default()
        },
        ..PressureConfig::default()
    };
    let mut r = rig(64, &cfg);
    for p in 1..=4 {
        r.feed(&from_client(p, "S", b""), 0, 10);
    }
    assert_eq!(r.counters.drops(DropReason::DefenseDropPacket), 2);
    assert_eq!(r.lb.conns().len(), 2);
    assert_eq!(r.counters.pressure.drop_packet.get(), 3);

    // A source may open 2 at once; the service may hold 3.
    let cfg = PressureConfig {
        source: Some(SourceLimitConfig {
            rate: 1,
            burst: 2,
            table: 64,
            prefix_v4: 32,
            prefix_v6: 64,
        }),
        service_limits: vec![(key(), 3)],
        ..PressureConfig::default()
    };
    let mut r = rig(64, &cfg);
    for p in 1..=3 {
        r.feed(&from_client(p, "S", b""), 0, 10);
    }
    assert_eq!(r.counters.drops(DropReason::SourceRateLimit), 1);
    // A second second: one more token; a third conn, the service's last.
    r.feed(&from_client(4, "S", b""), 0, 1010);
    assert_eq!(r.lb.conns().len(), 3);
    r.feed(&from_client(5, "S", b""), 0, 5000);
    assert_eq!(r.counters.drops(DropReason::ServiceConnLimit), 1);
    // A SYN retransmitted for a conn that exists is no new conn.
    r.feed(&from_client(4, "S", b""), 0, 5001);
    assert_eq!(r.counters.total_drops(), 2);
    let _ = &r.table;
}

#[test]
fn secure_tcp_keeps_toa_on_the_handshakes_ack_and_off_data() {
    let cfg = PressureConfig {
        defense: DefenseConfig {
            secure_tcp: 3,
            ..DefenseConfig::default()
        },
        ..PressureConfig::default()
    };
    let mut r = rig(64, &cfg);
    assert!(r.lb.conns().secure_tcp());
    let toa_of = |opts: &[u8]| opts.first() == Some(&254);
    let lport = r.syn(40000, 10);
    assert!(
        toa_of(&sent_tcp(r.out.0.last().unwrap()).1),
        "TOA on the SYN"
    );
    // The real server's SYN+ACK to the local address: SYN_RECV -> SYNACK.
    r.feed(
        &segment(
            (RS.octets(), 80),
            (LIP, lport),
            ([2, 0, 0, 0, 0, 0x11], MAC1),
            "SA",
            b"",
        ),
        1,
        11,
    );
    let state = |r: &Rig| {
        r.lb.conns()
            .iter()
            .next()
            .map(|(_, c)| c.state_name())
            .unwrap()
    };
    assert_eq!(state(&r), "SYNACK");
    // The handshake's ACK: TOA; then the client's data: none.
    r.feed(&from_client(40000, "A", b""), 0, 12);
    assert!(
        toa_of(&sent_tcp(r.out.0.last().unwrap()).1),
        "TOA on the ACK"
    );
    assert_eq!(state(&r), "SYNACK");
    r.feed(&from_client(40000, "A", b"GET / HTTP/1.0\r\n\r\n"), 0, 13);
    assert!(
        !toa_of(&sent_tcp(r.out.0.last().unwrap()).1),
        "no TOA on data"
    );
}

/// A client whose flows worker 0 of 64 owns.
fn worker0_of_64_client() -> [u8; 4] {
    (0..=255u8)
        .map(|n| [10, 1, n, 7])
        .find(|a| client_owner(IpAddr::from(*a), 64) == 0)
        .unwrap()
}

/// A local port serves each real server once: the bind looks a candidate
/// up by the reply tuple it would have, so a port a conn to one server
/// holds is free for the other. With two servers, worker 0 of 64's 1007
/// ports carry 2014 conns before the first is refused; and the ports come
/// back as the conns go.
#[test]
fn a_local_port_is_shared_by_conns_to_different_real_servers() {
    let client = worker0_of_64_client();
    let mut r = rig_of(0, 64, 8192, &PressureConfig::default());
    let rs2 = Ipv4Addr::new(198, 19, 0, 12);
    let mut d = DestConfig::new(rs2.into(), 80);
    d.fwd = FwdMethod::FullNat;
    r.table.add_dest(&key(), d).unwrap();
    r.svcs = r.table.snapshot();
    let hw = NeighUpdate {
        port: 1,
        ip: rs2.into(),
        mac: MacAddr([2, 0, 0, 0, 0, 0x12]),
    };
    r.stack.static_neighbour(&r.net, hw, &mut r.out);
    r.out.0.clear();
    let mut per_server = std::collections::HashMap::<(Ipv4Addr, u16), u32>::new();
    let mut taken = 0;
    for p in 10_000..12_100u16 {
        let before = r.out.0.len();
        r.feed(&from(client, p, "S", b""), 0, 10);
        if r.out.0.len() == before {
            break;
        }
        taken += 1;
        let f = r.out.0.last().unwrap();
        let ip = etherparse::SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::NetSlice::Ipv4(h)) = ip.net else {
            panic!("IPv4")
        };
        let (lport, _) = sent_tcp(f);
        *per_server
            .entry((h.header().destination_addr(), lport))
            .or_default() += 1;
    }
    assert_eq!(taken, 2 * 1007, "each port once per server, then none");
    assert_eq!(r.counters.drops(DropReason::NoLocalAddr), 1);
    assert!(
        per_server.values().all(|&n| n == 1),
        "no port twice to one server"
    );
    assert_eq!(per_server.len(), 2 * 1007);
    // Every conn expires (SYN_RECV, 60 s): every port is free again, for
    // either server. The expiry runs a budget at a time.
    for _ in 0..100 {
        r.lb.poll(&r.svcs, 100_000);
    }
    assert!(
        r.lb.conns().is_empty(),
        "{} left, e.g. {:?}",
        r.lb.conns().len(),
        r.lb.conns().iter().next().map(|(_, c)| c.state_name())
    );
    for p in 30_000..30_000 + taken as u16 {
        let before = r.out.0.len();
        r.feed(&from(client, p, "S", b""), 0, 100_000);
        assert_eq!(r.out.0.len(), before + 1, "SYN from {p}");
    }
}

/// A worker's slice full but for ten ports its conns gave back (their
/// handshakes never finished, and they expired): ten new conns take
/// exactly those ten, with no drop and no eviction, though the cursor is a
/// third of the slice away from them (a sweep of 32 candidates from it
/// finds none).
#[test]
fn a_full_slice_hands_out_the_ports_given_back_wherever_they_are() {
    let client = worker0_of_64_client();
    let mut r = rig_of(0, 64, 4096, &PressureConfig::default());
    r.lb.set_laddr_seed(0);
    let mut lport = Vec::new();
    for p in 10_000..10_000 + 1007u16 {
        let before = r.out.0.len();
        r.feed(&from(client, p, "S", b""), 0, 10);
        assert_eq!(r.out.0.len(), before + 1, "SYN from {p}");
        lport.push(sent_tcp(r.out.0.last().unwrap()).0);
    }
    // All but ten finish their handshakes (ESTABLISHED, 15 min); the ten
    // stay in SYN_RECV and expire after 60 s, a budget at a time.
    let stale = 340..350;
    for i in (0..1007u16).filter(|i| !stale.contains(i)) {
        r.feed(&from(client, 10_000 + i, "A", b""), 0, 20);
    }
    for _ in 0..20 {
        r.lb.poll(&r.svcs, 61_000);
    }
    assert_eq!(r.lb.conns().len(), 1007 - 10);
    let freed: Vec<u16> = stale.map(|i| lport[usize::from(i)]).collect();
    let mut again = Vec::new();
    for p in 30_000..30_010u16 {
        let before = r.out.0.len();
        r.feed(&from(client, p, "S", b""), 0, 61_000);
        assert_eq!(r.out.0.len(), before + 1, "SYN from {p}");
        again.push(sent_tcp(r.out.0.last().unwrap()).0);
    }
    assert_eq!(again, freed, "the ports given back, in the slice's order");
    assert_eq!(r.counters.drops(DropReason::NoLocalAddr), 0);
    assert_eq!(r.counters.pressure.evicted_ports.get(), 0);
}

#[test]
fn when_local_ports_run_out_embryonic_conns_give_theirs_back() {
    // Worker 0 of 64 owns the local ports that are 0 modulo 64 in
    // 1025..=65535: 1088 to 65472, 1007 of them.
    let client = worker0_of_64_client();
    let mut r = rig_of(0, 64, 4096, &PressureConfig::default());
    let mut taken = 0;
    for p in 10_000..11_100u16 {
        let before = r.out.0.len();
        r.feed(&from(client, p, "S", b""), 0, 10);
        if r.out.0.len() > before {
            taken += 1;
        } else {
            break;
        }
    }
    assert_eq!(taken, 1007, "every port of the slice, then none");
    assert_eq!(r.counters.drops(DropReason::NoLocalAddr), 1);
    assert_eq!(
        r.counters.pressure.evicted.get(),
        0,
        "the table is not full"
    );
    // The failed probe moved the allocator's cursor 32 ports on. The next
    // new conn evicts the 34 oldest embryonic conns (whose ports are those
    // 32 and two more), and each after it two: a hundred more all get in.
    for p in 20_000..20_100u16 {
        let before = r.out.0.len();
        r.feed(&from(client, p, "S", b""), 0, 20);
        assert_eq!(r.out.0.len(), before + 1, "SYN from port {p}");
    }
    assert_eq!(r.counters.drops(DropReason::NoLocalAddr), 1);
    assert_eq!(r.counters.pressure.evicted_ports.get(), 34 + 2 * 99);
    assert_eq!(r.lb.conns().len(), 1007 - 34 + 1 - 99);
    // A second on, new conns no longer evict.
    r.feed(&from(client, 30_000, "S", b""), 0, 1020);
    assert_eq!(r.counters.pressure.evicted_ports.get(), 34 + 2 * 99);
}
