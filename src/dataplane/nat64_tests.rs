//! The load-balancing stage with NAT64 conns: local addresses of the real
//! server's family, the MSS clamp for IPv6's headers, and the counted drop
//! when the service has no IPv4 local address to give.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TcpOptionElement, TransportSlice};

use super::lb::Lb;
use crate::counters::{DropReason, WorkerCounters};
use crate::ipvs::proto::Timeouts;
use crate::ipvs::{DestConfig, FwdMethod, Protocol, ServiceConfig, ServiceKey, ServiceTable};
use crate::netstack::{AddrKind, Iface, IfaceAddr, NeighUpdate, NetConfig, Output, Stack};
use crate::packet::VecPacket;
use crate::wire::MacAddr;

#[derive(Default)]
struct Wire {
    sent: Vec<(u16, Vec<u8>)>,
}

impl Output<VecPacket> for Wire {
    fn send(&mut self, port: u16, p: VecPacket) {
        use crate::packet::Packet;
        self.sent.push((port, p.data().to_vec()));
    }
    fn alloc(&mut self) -> Option<VecPacket> {
        Some(VecPacket::new())
    }
}

const VIP: &str = "fd00:18::100";
const CLIENT: &str = "fd00:18::2";
const RS: &str = "198.19.0.11";

fn iface(port: u16, addrs: &[(&str, u8)]) -> Iface {
    Iface {
        port,
        name: format!("p{port}"),
        mac: MacAddr([2, 0, 0, 0, 0, port as u8 + 1]),
        addrs: addrs
            .iter()
            .map(|(a, l)| IfaceAddr {
                addr: a.parse().unwrap(),
                prefix_len: *l,
            })
            .collect(),
        mtu: 1500,
        tx_checksum: false,
    }
}

/// A SYN from the client to the IPv6 VIP through a table whose service
/// has one IPv4 FULLNAT real server, with the servers' port holding
/// `server_addrs`; returns what went out and the worker's counters.
fn syn_through(server_addrs: &[(&str, u8)]) -> (Wire, Arc<WorkerCounters>, usize) {
    let net = NetConfig::new(
        vec![iface(0, &[("fd00:18::1", 64)]), iface(1, server_addrs)],
        vec![],
    )
    .with_extra([(VIP.parse().unwrap(), AddrKind::Vip)]);
    let key = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: VIP.parse().unwrap(),
        port: 80,
    };
    let mut table = ServiceTable::new(1);
    table.add_service(ServiceConfig::new(key)).unwrap();
    let mut d = DestConfig::new(RS.parse().unwrap(), 8080);
    d.fwd = FwdMethod::FullNat;
    table.add_dest(&key, d).unwrap();
    let counters = Arc::new(WorkerCounters::default());
    let mut stack: Stack<VecPacket> = Stack::new(64, counters.clone());
    let mut wire = Wire::default();
    stack.static_neighbour(
        &net,
        NeighUpdate {
            port: 1,
            ip: RS.parse().unwrap(),
            mac: MacAddr([2, 0, 0, 0, 0, 0x11]),
        },
        &mut wire,
    );
    let mut lb = Lb::new(0, 1, 64, counters.clone());
    let c: Ipv6Addr = CLIENT.parse().unwrap();
    let v: Ipv6Addr = VIP.parse().unwrap();
    let mut frame = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0x22], [2, 0, 0, 0, 0, 1])
        .ipv6(c.octets(), v.octets(), 64)
        .tcp(40000, 80, 1000, 64240)
        .syn()
        .options(&[TcpOptionElement::MaximumSegmentSize(1460)])
        .unwrap()
        .write(&mut frame, b"")
        .unwrap();
    let svcs = table.snapshot();
    let pkt = VecPacket::from_bytes(&frame, 0);
    let _ = lb.input(
        &net,
        &svcs,
        &Timeouts::default(),
        pkt,
        1_000,
        &mut stack,
        &mut wire,
    );
    let conns = lb.conns().len();
    (wire, counters, conns)
}

#[test]
fn a_v6_syn_leaves_as_ipv4_from_the_servers_port_with_mss_for_ipv6_headers() {
    let (wire, counters, conns) = syn_through(&[("198.19.0.1", 24), ("fd00:19::1", 64)]);
    assert_eq!(conns, 1);
    assert_eq!(counters.drops(DropReason::NoLocalAddr), 0);
    assert_eq!(wire.sent.len(), 1, "{:?}", wire.sent);
    let (port, bytes) = &wire.sent[0];
    assert_eq!(*port, 1);
    crate::xmit::testkit::assert_checksums(bytes, false);
    let p = SlicedPacket::from_ethernet(bytes).unwrap();
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!("not IPv4: {bytes:?}")
    };
    let h = ip.header();
    assert_eq!(
        (
            IpAddr::from(h.source_addr()),
            IpAddr::from(h.destination_addr())
        ),
        (
            IpAddr::V4(Ipv4Addr::new(198, 19, 0, 1)),
            IpAddr::V4(RS.parse().unwrap())
        )
    );
    assert_eq!(h.ttl(), 63);
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!("not TCP")
    };
    assert_eq!(t.destination_port(), 8080);
    assert!(t.syn());
    // 1500 less IPv6's 40 and TCP's 20: the server's full segments still
    // fit the client's side once grown by 20 bytes.
    let mss: Vec<_> = t
        .options_iterator()
        .filter_map(|o| match o {
            Ok(TcpOptionElement::MaximumSegmentSize(m)) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(mss, [1440]);
}

#[test]
fn without_an_ipv4_local_address_the_syn_is_a_counted_no_local_addr_drop() {
    let (wire, counters, conns) = syn_through(&[("fd00:19::1", 64)]);
    assert_eq!(counters.drops(DropReason::NoLocalAddr), 1);
    assert_eq!(conns, 0);
    assert!(wire.sent.is_empty(), "{:?}", wire.sent);
}
