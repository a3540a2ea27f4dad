//! What reaches the load balancer: a SYN to a VIP in a frame for another
//! host's MAC, from a martian source or from one of rvs's own addresses
//! opens no conn and is counted; a port with `accept_other_mac` balances
//! frames for any unicast MAC; a broadcast frame is never balanced; a
//! truncated TCP header is a bad header, not "unsupported".

use std::net::Ipv4Addr;
use std::sync::Arc;

use etherparse::PacketBuilder;

use super::lb::Lb;
use crate::counters::{DropReason, WorkerCounters};
use crate::ipvs::{DestConfig, FwdMethod, Protocol, ServiceConfig, ServiceKey, ServiceTable};
use crate::ipvs::{ServiceSet, Timeouts};
use crate::netstack::{AddrKind, Iface, IfaceAddr, NetConfig, Output, Stack};
use crate::packet::VecPacket;
use crate::wire::MacAddr;

const PORT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const OTHER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x99];
const VIP: [u8; 4] = [198, 18, 0, 100];

#[derive(Default)]
struct Wire {
    sent: usize,
}

impl Output<VecPacket> for Wire {
    fn send(&mut self, _: u16, _: VecPacket) {
        self.sent += 1;
    }
    fn alloc(&mut self) -> Option<VecPacket> {
        Some(VecPacket::new())
    }
}

fn net() -> NetConfig {
    NetConfig::new(
        vec![Iface {
            port: 0,
            name: "p".into(),
            mac: MacAddr(PORT_MAC),
            addrs: vec![IfaceAddr {
                addr: Ipv4Addr::new(198, 18, 0, 1).into(),
                prefix_len: 24,
            }],
            mtu: 1500,
            tx_checksum: false,
        }],
        vec![],
    )
    .with_extra([(Ipv4Addr::from(VIP).into(), AddrKind::Vip)])
}

fn services() -> ServiceSet {
    let key = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: Ipv4Addr::from(VIP).into(),
        port: 80,
    };
    let mut table = ServiceTable::new(1);
    table.add_service(ServiceConfig::new(key)).unwrap();
    let mut d = DestConfig::new(Ipv4Addr::new(198, 18, 0, 11).into(), 80);
    d.fwd = FwdMethod::DirectRoute;
    table.add_dest(&key, d).unwrap();
    table.snapshot()
}

fn syn(dst_mac: [u8; 6], src: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(PEER_MAC, dst_mac)
        .ipv4(src, VIP, 64)
        .tcp(40000, 80, 1, 64240)
        .syn()
        .write(&mut f, b"")
        .unwrap();
    f
}

struct Rig {
    lb: Lb,
    stack: Stack<VecPacket>,
    counters: Arc<WorkerCounters>,
    svcs: ServiceSet,
}

impl Rig {
    fn new() -> Rig {
        let counters = Arc::new(WorkerCounters::default());
        Rig {
            lb: Lb::new(0, 1, 64, counters.clone()),
            stack: Stack::new(64, counters.clone()),
            counters,
            svcs: services(),
        }
    }

    /// Feeds a frame to the load balancer, and to the stack if it hands
    /// it on; the conns now in the table.
    fn feed(&mut self, net: &NetConfig, frame: &[u8]) -> usize {
        let pkt = VecPacket::from_bytes(frame, 0);
        let mut wire = Wire::default();
        let t = Timeouts::default();
        let (lb, stack) = (&mut self.lb, &mut self.stack);
        if let super::lb::Outcome::Local(p) =
            lb.input(net, &self.svcs, &t, pkt, 1_000, stack, &mut wire)
        {
            stack.input(net, p, 1_000, &mut wire);
        }
        self.lb.conns().len()
    }
}

#[test]
fn a_syn_for_another_mac_is_other_host_unless_the_port_accepts_it() {
    let net = net();
    let mut r = Rig::new();
    assert_eq!(r.feed(&net, &syn(OTHER_MAC, [198, 51, 100, 7])), 0);
    assert_eq!(r.counters.drops(DropReason::OtherHost), 1);
    assert_eq!(r.counters.total_drops(), 1);
    let open = net.with_accept_other_mac(0);
    assert_eq!(r.feed(&open, &syn(OTHER_MAC, [198, 51, 100, 7])), 1);
    assert_eq!(r.feed(&net, &syn(PORT_MAC, [198, 51, 100, 8])), 2);
    assert_eq!(r.counters.total_drops(), 1);
}

#[test]
fn martian_sources_open_no_conn() {
    let net = net();
    let mut r = Rig::new();
    let martians: [[u8; 4]; 10] = [
        [0, 0, 0, 0],
        [127, 0, 0, 1],
        [255, 255, 255, 255],
        [224, 0, 0, 5],
        [240, 0, 0, 1],
        // The port's subnet broadcast, its own address, the VIP.
        [198, 18, 0, 255],
        [198, 18, 0, 1],
        VIP,
        [0, 9, 9, 9],
        [127, 1, 2, 3],
    ];
    for m in martians {
        assert_eq!(r.feed(&net, &syn(PORT_MAC, m)), 0, "{m:?}");
    }
    assert_eq!(r.counters.drops(DropReason::Martian), martians.len() as u64);
    assert_eq!(r.counters.total_drops(), martians.len() as u64);
}

#[test]
fn a_syn_in_a_broadcast_frame_is_not_balanced() {
    let net = net();
    let mut r = Rig::new();
    assert_eq!(r.feed(&net, &syn([0xff; 6], [198, 51, 100, 7])), 0);
    // The stack's: a TCP segment to our address it does not serve.
    assert_eq!(r.counters.drops(DropReason::Unsupported), 1);
}

#[test]
fn a_truncated_tcp_header_to_a_vip_is_a_bad_header() {
    let net = net();
    let mut r = Rig::new();
    let full = syn(PORT_MAC, [198, 51, 100, 7]);
    for cut in 0..20usize {
        let mut f = full[..14 + 20 + cut].to_vec();
        // The IP total length says what is there; the checksum follows.
        let total = (20 + cut) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f[24..26].fill(0);
        let mut s: u32 = f[14..34]
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        f[24..26].copy_from_slice(&(!(s as u16)).to_be_bytes());
        assert_eq!(r.feed(&net, &f), 0);
    }
    assert_eq!(r.counters.drops(DropReason::BadHeader), 20);
    assert_eq!(r.counters.total_drops(), 20);
}

#[test]
fn an_ordinary_source_still_opens_a_conn() {
    let net = net();
    let mut r = Rig::new();
    assert_eq!(r.feed(&net, &syn(PORT_MAC, [198, 18, 0, 7])), 1);
    assert_eq!(r.counters.total_drops(), 0);
}
