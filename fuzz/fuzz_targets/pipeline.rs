//! The load-balancing pipeline and the network stack over the Vec<u8>
//! packet, as a worker runs them: any sequence of frames (each behind a
//! 2-byte length) on a director with a service in every forwarding mode,
//! IPv4 and IPv6, TCP and UDP, with a master and a backup sync daemon on
//! the servers' port (so sync messages are read and conns installed).
//! Two workers, each port spreading by RSS over both (rvs's software
//! spread) and a shared NAT reply index; the first byte before each frame
//! says which worker's queue it lands on and whether the burst goes on
//! with the next frame (up to 32), and what a worker hands over goes to
//! the other's ring path (`input_relayed`), as in rvsd. Worker 0 takes its
//! bursts in one pass, as a director with a small table does; worker 1 the
//! two-pass way (stage one parses the burst and asks ahead), as one with a
//! big table does, and a frame may be held back from stage two, as a
//! caller out of step would (the lane must then not trust what stage one
//! parsed).
//! Whatever arrives is forwarded, answered or dropped with a count;
//! nothing panics, and every IPv4 header sent sums right. A reference
//! director beside it takes the same packets without the express lane
//! (no stage one, no lane opens): whatever the lane sends is what the
//! full path sends for that packet, byte for byte.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use rvs::counters::WorkerCounters;
use rvs::dataplane::lb::{Lb, Outcome};
use rvs::dataplane::nat_replies::NatReplies;
use rvs::ipvs::proto::Timeouts;
use rvs::ipvs::sync::{Role, SyncConfig, SyncDaemons};
use rvs::ipvs::{
    DestConfig, FwdMethod, Protocol, ServiceConfig, ServiceKey, ServiceSet, ServiceTable,
};
use rvs::netstack::{AddrKind, Iface, IfaceAddr, NeighUpdate, NetConfig, Output, Route, Stack};
use rvs::packet::{Packet, VecPacket};
use rvs::rss::Spread;
use rvs::wire::MacAddr;

/// What a worker sent, by port.
#[derive(Default)]
struct Wire(Vec<(u16, Vec<u8>)>);

impl Output<VecPacket> for Wire {
    fn send(&mut self, port: u16, p: VecPacket) {
        assert!(
            ipv4_header_sums(p.data()),
            "an IPv4 header sent with a wrong sum"
        );
        self.0.push((port, p.data().to_vec()));
    }
    fn alloc(&mut self) -> Option<VecPacket> {
        Some(VecPacket::new())
    }
}

/// Whether an IPv4 frame's header sums to all ones (summed here, apart
/// from rvs's own sums), or the frame is no IPv4 one: every IPv4 header a
/// worker sends is one it checked on the way in and changed by its sum's
/// change, or one it wrote and summed (the ports ask for no offload).
fn ipv4_header_sums(f: &[u8]) -> bool {
    if f.get(12..14) != Some(&[0x08, 0x00]) || f.get(14).is_none_or(|v| v >> 4 != 4) {
        return true;
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let Some(h) = f.get(14..14 + ihl).filter(|_| ihl >= 20) else {
        return false;
    };
    let mut sum: u32 = h
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

const V4: [u8; 4] = [198, 18, 0, 100];

fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn v6(last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, last))
}

/// The real servers' IPv6 network, behind port 1.
fn rs6(last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, last))
}

/// Port 0 faces clients, port 1 the real servers; one service per mode.
fn director() -> (NetConfig, ServiceTable) {
    let iface = |port: u16, a4: [u8; 4], a6: IpAddr| Iface {
        port,
        name: format!("p{port}"),
        mac: MacAddr([2, 0, 0, 0, 0, 1 + port as u8]),
        addrs: vec![
            IfaceAddr {
                addr: v4(a4),
                prefix_len: 24,
            },
            IfaceAddr {
                addr: a6,
                prefix_len: 64,
            },
        ],
        mtu: 1500,
        tx_checksum: false,
    };
    let default = Route {
        prefix: Ipv4Addr::UNSPECIFIED.into(),
        len: 0,
        port: 0,
        via: Some(v4([198, 18, 0, 254])),
    };
    let mut vips = Vec::new();
    let mut table = ServiceTable::new(1);
    let modes = [
        FwdMethod::FullNat,
        FwdMethod::Masq,
        FwdMethod::DirectRoute,
        FwdMethod::Tunnel,
    ];
    for (i, fwd) in modes.into_iter().enumerate() {
        for (proto, port) in [(Protocol::Tcp, 80), (Protocol::Udp, 53)] {
            for vip in [
                v4([V4[0], V4[1], V4[2], V4[3] + i as u8]),
                v6(0x100 + i as u16),
            ] {
                let key = ServiceKey::Addr {
                    proto,
                    addr: vip,
                    port,
                };
                let _ = table.add_service(ServiceConfig::new(key));
                let rs = if vip.is_ipv4() {
                    v4([198, 19, 0, 10])
                } else {
                    rs6(10)
                };
                let mut d = DestConfig::new(rs, port);
                d.fwd = fwd;
                let _ = table.add_dest(&key, d);
                vips.push((vip, AddrKind::Vip));
            }
        }
        // The SYN proxy on TCP 443 of the FULLNAT and NAT VIPs.
        if matches!(fwd, FwdMethod::FullNat | FwdMethod::Masq) {
            for vip in [
                v4([V4[0], V4[1], V4[2], V4[3] + i as u8]),
                v6(0x100 + i as u16),
            ] {
                let key = ServiceKey::Addr {
                    proto: Protocol::Tcp,
                    addr: vip,
                    port: 443,
                };
                let _ = table.add_service(ServiceConfig::new(key));
                let _ = table.set_synproxy(&key, true);
                let rs = if vip.is_ipv4() {
                    v4([198, 19, 0, 10])
                } else {
                    rs6(10)
                };
                let mut d = DestConfig::new(rs, 443);
                d.fwd = fwd;
                let _ = table.add_dest(&key, d);
            }
        }
    }
    let net = NetConfig::new(
        vec![
            iface(0, [198, 18, 0, 1], v6(1)),
            iface(1, [198, 19, 0, 1], rs6(1)),
        ],
        vec![default],
    )
    .with_extra(vips);
    (net, table)
}

/// A director's two workers; `express`: with the express lane, else
/// every packet the full path's (the reference).
fn workers(
    net: &NetConfig,
    sync: &Arc<arc_swap::ArcSwap<SyncDaemons>>,
    spread: &Arc<Spread>,
    express: bool,
    now: u64,
) -> Vec<(Lb, Stack<VecPacket>)> {
    let replies = Arc::new(NatReplies::new(128, 3));
    (0..2)
        .map(|w| {
            let counters = Arc::new(WorkerCounters::default());
            let mut stack: Stack<VecPacket> = Stack::new(16, counters.clone());
            // Known next hops, so that conns' packets leave (and the express
            // lane keeps their Ethernet headers) rather than wait for ARP/ND.
            for (port, ip, mac) in [
                (0, v4([198, 18, 0, 254]), 0xfe),
                (1, v4([198, 19, 0, 10]), 0x10),
                (1, rs6(10), 0x11),
            ] {
                let mac = MacAddr([2, 0, 0, 0, 0, mac]);
                stack.static_neighbour(net, NeighUpdate { port, ip, mac }, &mut Wire::default());
            }
            let mut lb = Lb::new(w, 2, 64, counters);
            if w == 1 {
                lb.set_two_pass_from(0);
            }
            lb.set_express_opens(express);
            // The same local ports in both directors.
            lb.set_laddr_seed(0);
            lb.set_sync(sync.clone());
            lb.set_spreads([(0, spread.clone()), (1, spread.clone())]);
            lb.set_nat_replies(replies.clone());
            lb.poll_sync(net, now, &mut Wire::default());
            (lb, stack)
        })
        .collect()
}

/// Packet `pkt` into worker `w` of `workers` (stage two; stage one, where
/// the director has it, went over the burst first): what went out.
fn input(
    workers: &mut [(Lb, Stack<VecPacket>)],
    w: usize,
    pkt: VecPacket,
    net: &NetConfig,
    svcs: &ServiceSet,
    timeouts: &Timeouts,
    now: u64,
) -> Vec<(u16, Vec<u8>)> {
    let mut wire = Wire::default();
    let (lb, stack) = &mut workers[w];
    match lb.input(net, svcs, timeouts, pkt, now, stack, &mut wire) {
        Outcome::Done => {}
        Outcome::Local(p) => stack.input(net, p, now, &mut wire),
        Outcome::Redirect(to, p) => {
            // Over the ring to its owner, which handles it once.
            let (lb, stack) = &mut workers[to];
            if let Outcome::Local(p) =
                lb.input_relayed(net, svcs, timeouts, p, now, stack, &mut wire)
            {
                stack.input(net, p, now, &mut wire);
            }
        }
    }
    wire.0
}

fuzz_target!(|data: &[u8]| {
    let (net, table) = director();
    let svcs = table.snapshot();
    let timeouts = Timeouts::default();
    let spread = Arc::new(Spread::software(2));
    let daemon = |role| SyncConfig::with_defaults(role, "p1", 0, None, None, None, None, 1500);
    let sync = Arc::new(arc_swap::ArcSwap::from_pointee(SyncDaemons {
        master: Some(daemon(Role::Master)),
        backup: Some(daemon(Role::Backup)),
    }));
    let mut now = 1_000;
    let mut lane = workers(&net, &sync, &spread, true, now);
    let mut reference = workers(&net, &sync, &spread, false, now);
    let mut rest = data;
    while rest.len() >= 3 {
        // A burst: frames for one worker's queue, each `[flags, len_hi,
        // len_lo, frame..]`; flags bit 0 the port, bit 1 the worker (the
        // burst's first frame's), bit 2 that the burst goes on, bit 3 that
        // stage two does not see this frame.
        let w = usize::from(rest[0] >> 1 & 1);
        let mut burst = Vec::new();
        while rest.len() >= 3 && burst.len() < 32 {
            let flags = rest[0];
            let len = usize::from(rest[1]) << 8 | usize::from(rest[2]);
            let frame = &rest[3..(3 + len).min(rest.len())];
            rest = &rest[3 + frame.len()..];
            burst.push((frame, u16::from(flags & 1), flags & 8 != 0));
            if flags & 4 == 0 {
                break;
            }
        }
        // As a worker does: stage one over the burst, then each packet in
        // order, by the express lane where its conn allows.
        let pkts: Vec<VecPacket> = burst
            .iter()
            .map(|&(f, port, _)| VecPacket::from_bytes(f, port))
            .collect();
        lane[w].0.prepare(&net, &svcs, &timeouts, pkts.iter());
        for (pkt, &(frame, port, held)) in pkts.into_iter().zip(&burst) {
            if held {
                continue;
            }
            let before = (lane[w].0.express_packets(), lane[w].0.express_opens());
            let sent = input(&mut lane, w, pkt, &net, &svcs, &timeouts, now);
            let by_lane = (lane[w].0.express_packets(), lane[w].0.express_opens()) != before;
            let pkt = VecPacket::from_bytes(frame, port);
            let full = input(&mut reference, w, pkt, &net, &svcs, &timeouts, now);
            if by_lane {
                assert_eq!(sent, full, "the lane sent what the full path does not");
            }
        }
        lane[w].0.end_burst();
        now += 100;
        for (lb, stack) in lane.iter_mut().chain(reference.iter_mut()) {
            let mut wire = Wire::default();
            lb.poll(&svcs, now);
            lb.poll_synproxy(&net, &svcs, &timeouts, now, stack, &mut wire);
            lb.poll_sync(&net, now, &mut wire);
        }
    }
});
