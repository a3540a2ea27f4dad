//! SCTP through the load-balancing stage: which packets open a conn, the
//! state `-Lc` shows as the association goes on, and the counted drops.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use super::lb::Lb;
use crate::counters::{DropReason, WorkerCounters};
use crate::ipvs::{
    DestConfig, FwdMethod, Protocol, ServiceConfig, ServiceKey, ServiceTable, Timeouts,
};
use crate::netstack::{AddrKind, Iface, IfaceAddr, NetConfig, Output, Stack};
use crate::packet::{Packet, VecPacket};
use crate::wire::{MacAddr, SctpPacket};
use crate::xmit::testkit::ip_frame;

struct Wire;

impl Output<VecPacket> for Wire {
    fn send(&mut self, _: u16, _: VecPacket) {}
    fn alloc(&mut self) -> Option<VecPacket> {
        Some(VecPacket::new())
    }
}

const VIP: [u8; 4] = [198, 18, 0, 100];
const CLIENT: [u8; 4] = [198, 18, 0, 2];

/// A client→VIP SCTP frame with one chunk of `kind` (and 4 bytes of value)
/// and a right CRC32c; `len` overrides the chunk length field.
fn frame(kind: u8, len: Option<u16>) -> Vec<u8> {
    let mut p = vec![0x9c, 0x40, 0x0f, 0x1c, 0, 0, 0, 7, 0, 0, 0, 0];
    p.extend_from_slice(&[kind, 0]);
    p.extend_from_slice(&len.unwrap_or(8).to_be_bytes());
    p.extend_from_slice(&[1, 2, 3, 4]);
    SctpPacket::new_unchecked(&mut p[..]).fill_checksum();
    ip_frame(
        Ipv4Addr::from(CLIENT).into(),
        Ipv4Addr::from(VIP).into(),
        64,
        132,
        &p,
    )
}

fn setup(fwd: FwdMethod) -> (NetConfig, ServiceTable, ServiceKey) {
    let net = NetConfig::new(
        vec![Iface {
            port: 0,
            name: "p".into(),
            // The MAC ip_frame's frames are addressed to.
            mac: MacAddr(crate::xmit::testkit::MAC_DST),
            addrs: vec![IfaceAddr {
                addr: Ipv4Addr::new(198, 18, 0, 1).into(),
                prefix_len: 16,
            }],
            mtu: 1500,
            tx_checksum: false,
        }],
        vec![],
    )
    .with_extra([(Ipv4Addr::from(VIP).into(), AddrKind::Vip)]);
    let key = ServiceKey::Addr {
        proto: Protocol::Sctp,
        addr: Ipv4Addr::from(VIP).into(),
        port: 3868,
    };
    let mut table = ServiceTable::new(1);
    table.add_service(ServiceConfig::new(key)).unwrap();
    let rs: IpAddr = Ipv4Addr::new(198, 18, 0, 11).into();
    let mut d = DestConfig::new(rs, 3868);
    d.fwd = fwd;
    table.add_dest(&key, d).unwrap();
    (net, table, key)
}

/// The state column of the one conn, or "" without one.
fn state(lb: &Lb) -> String {
    let (rows, _) = lb.conn_rows(0, usize::MAX, 0);
    assert!(rows.len() <= 1);
    rows.first()
        .map(|r| {
            assert_eq!(r.proto, "SCTP");
            r.state.to_string()
        })
        .unwrap_or_default()
}

#[test]
fn dr_only_an_init_opens_and_the_client_side_drives_the_state() {
    let (net, table, key) = setup(FwdMethod::DirectRoute);
    let svcs = table.snapshot();
    let counters = Arc::new(WorkerCounters::default());
    let mut stack: Stack<VecPacket> = Stack::new(64, counters.clone());
    let mut lb = Lb::new(0, 1, 64, counters.clone());
    let timeouts = Timeouts::default();
    let mut feed = |lb: &mut Lb, f: Vec<u8>| {
        let pkt = VecPacket::from_bytes(&f, 0);
        assert_eq!(pkt.len(), f.len());
        let _ = lb.input(&net, &svcs, &timeouts, pkt, 1_000, &mut stack, &mut Wire);
        state(lb)
    };
    use crate::wire::sctp::chunk::*;
    // DATA, COOKIE ECHO, ABORT: no conn, as the kernel (sloppy_sctp=0).
    for k in [DATA, COOKIE_ECHO, ABORT] {
        assert_eq!(feed(&mut lb, frame(k, None)), "");
    }
    assert_eq!(counters.drops(DropReason::NoConn), 3);
    // The INPUT_ONLY column of the kernel's table, by hand: INIT (NONE ->
    // INIT1), COOKIE ECHO (INIT1 -> ESTABLISHED), DATA stays, SHUTDOWN
    // (-> S-RECEIVED), SHUTDOWN COMPLETE (-> CLOSED).
    assert_eq!(feed(&mut lb, frame(INIT, None)), "INIT1");
    assert_eq!(feed(&mut lb, frame(COOKIE_ECHO, None)), "ESTABLISHED");
    assert_eq!(feed(&mut lb, frame(DATA, None)), "ESTABLISHED");
    // A chunk length below 4, and one past the end: counted, no change.
    assert_eq!(feed(&mut lb, frame(SHUTDOWN, Some(2))), "ESTABLISHED");
    assert_eq!(feed(&mut lb, frame(SHUTDOWN, Some(40))), "ESTABLISHED");
    assert_eq!(counters.drops(DropReason::BadHeader), 2);
    assert_eq!(feed(&mut lb, frame(SHUTDOWN, None)), "S-RECEIVED");
    assert_eq!(feed(&mut lb, frame(SHUTDOWN_COMPLETE, None)), "CLOSED");
    let dest = table.get(&key).unwrap().dests()[0].clone();
    assert_eq!(dest.stats.snapshot().conns, 1);
    assert_eq!(dest.stats.snapshot().inpkts, 5);
    // A new INIT on the CLOSED conn: a new association, scheduled afresh.
    assert_eq!(feed(&mut lb, frame(INIT, None)), "INIT1");
    assert_eq!(dest.stats.snapshot().conns, 2);
    assert_eq!(counters.drops(DropReason::NoConn), 3);
}

#[test]
fn nat_with_port_mapping_does_not_judge_the_crc() {
    let (net, mut table, key) = setup(FwdMethod::Masq);
    let rs: IpAddr = Ipv4Addr::new(198, 18, 0, 11).into();
    table.delete_dest(&key, rs, 3868).unwrap();
    let mut d = DestConfig::new(rs, 3869);
    d.fwd = FwdMethod::Masq;
    table.add_dest(&key, d).unwrap();
    let svcs = table.snapshot();
    let counters = Arc::new(WorkerCounters::default());
    let mut stack: Stack<VecPacket> = Stack::new(64, counters.clone());
    let mut lb = Lb::new(0, 1, 64, counters.clone());
    let timeouts = Timeouts::default();
    // An INIT whose last byte flipped: forwarded (the receiver finds the
    // error, which the rewrite keeps), as TCP and UDP with a bad checksum.
    let mut bad = frame(crate::wire::sctp::chunk::INIT, None);
    let last = bad.len() - 1;
    bad[last] ^= 0x40;
    let pkt = VecPacket::from_bytes(&bad, 0);
    let _ = lb.input(&net, &svcs, &timeouts, pkt, 1_000, &mut stack, &mut Wire);
    assert_eq!(counters.total_drops(), 0);
    assert_eq!(state(&lb), "INIT1");
    let dest = table.get(&key).unwrap().dests()[0].clone();
    assert_eq!(dest.stats.snapshot().inpkts, 1);
}
