//! The fragment path of the load-balancing stage: a datagram's fragments,
//! fed to `Lb::input` one by one, leave rewritten for one conn; a later
//! fragment without its first is dropped and counted; with two workers
//! every fragment is handed to the conn's owner.

use std::net::{IpAddr, Ipv4Addr};

use etherparse::PacketBuilder;

use super::*;
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
const RS: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 11);
const VIP6: [u8; 16] = [0xfd, 0, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];

fn net() -> NetConfig {
    let iface = |port: u16, last: u8, a: [u8; 4]| Iface {
        port,
        name: format!("p{port}"),
        mac: MacAddr([2, 0, 0, 0, 0, last]),
        addrs: vec![IfaceAddr {
            addr: Ipv4Addr::from(a).into(),
            prefix_len: 24,
        }],
        mtu: 1500,
        tx_checksum: false,
    };
    NetConfig::new(
        vec![iface(0, 1, [198, 18, 0, 1]), iface(1, 3, [198, 19, 0, 1])],
        vec![],
    )
    .with_extra([
        (Ipv4Addr::from(VIP).into(), AddrKind::Vip),
        (IpAddr::from(VIP6), AddrKind::Vip),
    ])
}

/// A NAT UDP service VIP:53 → RS:5353.
fn services() -> ServiceTable {
    let key = ServiceKey::Addr {
        proto: Protocol::Udp,
        addr: Ipv4Addr::from(VIP).into(),
        port: 53,
    };
    let mut table = ServiceTable::new(1);
    table.add_service(ServiceConfig::new(key)).unwrap();
    let mut d = DestConfig::new(RS.into(), 5353);
    d.fwd = FwdMethod::Masq;
    table.add_dest(&key, d).unwrap();
    table
}

/// A 3000-byte UDP datagram from CLIENT:40000 to VIP:53 (etherparse),
/// cut into IPv4 fragments of 1480 bytes of data, ident `id`.
fn fragments(id: u16) -> Vec<Vec<u8>> {
    let payload: Vec<u8> = (0..3000u32).map(|i| (i % 253) as u8).collect();
    let mut whole = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
        .ipv4(CLIENT, VIP, 64)
        .udp(40000, 53)
        .write(&mut whole, &payload)
        .unwrap();
    let data = whole[34..].to_vec();
    let mut out = Vec::new();
    let mut lo = 0;
    while lo < data.len() {
        let hi = (lo + 1480).min(data.len());
        let mut f = whole[..34].to_vec();
        f[16..18].copy_from_slice(&((20 + hi - lo) as u16).to_be_bytes());
        f[18..20].copy_from_slice(&id.to_be_bytes());
        let more = if hi < data.len() { 0x2000 } else { 0 };
        f[20..22].copy_from_slice(&(more | (lo / 8) as u16).to_be_bytes());
        f[24] = 0;
        f[25] = 0;
        let c = !crate::wire::checksum::fold(crate::wire::checksum::sum(&f[14..34]));
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&data[lo..hi]);
        out.push(f);
        lo = hi;
    }
    out
}

struct Rig {
    net: NetConfig,
    svcs: ServiceSet,
    lb: Lb,
    stack: Stack<VecPacket>,
    counters: Arc<WorkerCounters>,
    out: Capture,
}

fn rig(worker: usize, workers: usize) -> Rig {
    let net = net();
    let counters = Arc::new(WorkerCounters::default());
    let mut stack: Stack<VecPacket> = Stack::new(64, counters.clone());
    let mut out = Capture::default();
    stack.static_neighbour(
        &net,
        NeighUpdate {
            port: 1,
            ip: RS.into(),
            mac: MacAddr([2, 0, 0, 0, 0, 0x11]),
        },
        &mut out,
    );
    out.0.clear();
    Rig {
        svcs: services().snapshot(),
        lb: Lb::new(worker, workers, 64, counters.clone()),
        net,
        stack,
        counters,
        out,
    }
}

impl Rig {
    fn feed(&mut self, f: &[u8], now: Millis) -> Outcome<VecPacket> {
        let pkt = VecPacket::from_bytes(f, 0);
        let tmo = Timeouts::default();
        self.lb.input(
            &self.net,
            &self.svcs,
            &tmo,
            pkt,
            now,
            &mut self.stack,
            &mut self.out,
        )
    }
}

#[test]
fn every_fragment_follows_the_first_to_its_conn() {
    let mut r = rig(0, 1);
    let frags = fragments(0x1234);
    assert_eq!(frags.len(), 3);
    for f in &frags {
        assert!(matches!(r.feed(f, 1000), Outcome::Done));
    }
    assert_eq!(r.out.0.len(), 3, "all three forwarded");
    let mut data = Vec::new();
    for (sent, f) in r.out.0.iter().zip(&frags) {
        assert_eq!(&sent[30..34], &RS.octets(), "destination rewritten");
        assert_eq!(&sent[26..30], &CLIENT, "NAT keeps the client");
        assert_eq!(&sent[18..22], &f[18..22], "ident and fragment fields kept");
        data.extend_from_slice(&sent[34..]);
    }
    // The reassembled datagram: port 5353 and a checksum right for RS.
    assert_eq!(&data[2..4], &5353u16.to_be_bytes());
    let mut ph = Vec::new();
    ph.extend_from_slice(&CLIENT);
    ph.extend_from_slice(&RS.octets());
    ph.extend_from_slice(&[0, 17]);
    ph.extend_from_slice(&(data.len() as u16).to_be_bytes());
    let s = crate::wire::checksum::sum(&ph) + crate::wire::checksum::sum(&data);
    assert_eq!(crate::wire::checksum::fold(s), 0xffff);
    assert_eq!(r.lb.conns().len(), 1, "one conn for the datagram");
    assert_eq!(r.counters.drops(DropReason::FragNoFirst), 0);
}

#[test]
fn a_later_fragment_without_its_first_is_dropped_and_counted() {
    let mut r = rig(0, 1);
    let frags = fragments(7);
    assert!(matches!(r.feed(&frags[1], 1000), Outcome::Done));
    assert_eq!(r.counters.drops(DropReason::FragNoFirst), 1);
    assert!(r.out.0.is_empty());
    assert_eq!(r.lb.conns().len(), 0, "no conn from a later fragment");
    // After the first, the same later fragment goes through; 30 s after
    // the first it no longer finds it.
    r.feed(&frags[0], 2000);
    r.feed(&frags[1], 2000 + frag::TIMEOUT_MS - 1);
    assert_eq!(r.out.0.len(), 2);
    r.feed(&frags[2], 2000 + frag::TIMEOUT_MS);
    assert_eq!(r.out.0.len(), 2);
    assert_eq!(r.counters.drops(DropReason::FragNoFirst), 2);
}

#[test]
fn with_two_workers_every_fragment_goes_to_the_conns_owner() {
    let owner = client_owner(IpAddr::from(CLIENT), 2);
    let mut other = rig(1 - owner, 2);
    let frags = fragments(99);
    for f in &frags {
        match other.feed(f, 1000) {
            Outcome::Redirect(w, _) => assert_eq!(w, owner),
            _ => panic!("not handed to the owner"),
        }
    }
    let mut own = rig(owner, 2);
    for f in &frags {
        assert!(matches!(own.feed(f, 1000), Outcome::Done));
    }
    assert_eq!(own.out.0.len(), 3);
}

#[test]
fn an_extension_chain_rvs_does_not_follow_to_a_vip_is_counted() {
    let mut r = rig(0, 1);
    // Ethernet, IPv6 fd00:18::2 → VIP6 with a routing header (type 4,
    // segments left 1) before an 8-byte UDP header.
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd];
    f.extend_from_slice(&[0x60, 0, 0, 0, 0, 16, 43, 64]);
    f.extend_from_slice(&[0xfd, 0, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    f.extend_from_slice(&VIP6);
    f.extend_from_slice(&[17, 0, 4, 1, 0, 0, 0, 0]);
    f.extend_from_slice(&[0x9c, 0x40, 0, 53, 0, 8, 0x12, 0x34]);
    assert!(matches!(r.feed(&f, 0), Outcome::Done));
    assert_eq!(r.counters.drops(DropReason::IpExtHeader), 1);
    // Segments left 0: walked, an ordinary UDP packet to a VIP without a
    // service on that port, for the network stack.
    f[14 + 40 + 3] = 0;
    assert!(matches!(r.feed(&f, 0), Outcome::Local(_)));
    assert_eq!(r.counters.drops(DropReason::IpExtHeader), 1);
}
