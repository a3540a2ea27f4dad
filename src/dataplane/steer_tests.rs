//! Ownership with two workers (`steer.rs`): each packet is put on the
//! worker whose queue the software NIC's RSS picks (`rss::Spread`, checked
//! against Microsoft's vectors in rss.rs), as a device would, and the test
//! counts what crosses to the other worker.

use std::net::Ipv4Addr;

use etherparse::{Icmpv4Type, PacketBuilder};

use super::*;
use crate::counters::RedirectReason;
use crate::ipvs::{Dest, DestConfig, ServiceConfig, ServiceKey, ServiceTable};
use crate::netstack::{AddrKind, Iface, IfaceAddr, NeighUpdate};
use crate::packet::VecPacket;
use crate::rss::{RssTuple, Spread};
use crate::wire::MacAddr;

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

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const LIP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 5);
const RS: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 11);
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const RS_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x11];
const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const PORT1_MAC: [u8; 6] = [2, 0, 0, 0, 0, 3];

fn client(k: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + 101 + (k % 150))
}

fn net() -> NetConfig {
    let iface = |port: u16, mac: [u8; 6], a: Ipv4Addr| Iface {
        port,
        name: format!("p{port}"),
        mac: MacAddr(mac),
        addrs: vec![IfaceAddr {
            addr: a.into(),
            prefix_len: 24,
        }],
        mtu: 1500,
        tx_checksum: false,
    };
    NetConfig::new(
        vec![
            iface(0, PORT0_MAC, Ipv4Addr::new(198, 18, 0, 1)),
            iface(1, PORT1_MAC, Ipv4Addr::new(198, 19, 0, 1)),
        ],
        vec![],
    )
    .with_extra([(VIP.into(), AddrKind::Vip), (LIP.into(), AddrKind::Local)])
}

/// TCP VIP:80 to RS:8080 by `fwd`; FULLNAT through LIP; persistent with
/// `persistent`.
fn services(fwd: FwdMethod, persistent: bool) -> ServiceSet {
    let key = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: VIP.into(),
        port: 80,
    };
    let mut table = ServiceTable::new(2);
    let mut cfg = ServiceConfig::new(key);
    cfg.persistent = persistent.then_some(300);
    table.add_service(cfg).unwrap();
    let mut d = DestConfig::new(RS.into(), 8080);
    d.fwd = fwd;
    table.add_dest(&key, d).unwrap();
    if fwd == FwdMethod::FullNat {
        table.add_laddr(&key, LIP.into(), "p1").unwrap();
    }
    table.snapshot()
}

struct Worker {
    lb: Lb,
    stack: Stack<VecPacket>,
    counters: Arc<WorkerCounters>,
    out: Capture,
}

struct Pair {
    net: NetConfig,
    svcs: ServiceSet,
    spread: Spread,
    w: Vec<Worker>,
}

fn pair(fwd: FwdMethod, persistent: bool, rss: bool) -> Pair {
    let net = net();
    let spread = Spread::software(2);
    let replies = Arc::new(crate::dataplane::nat_replies::NatReplies::new(4096, 5));
    let w = (0..2)
        .map(|i| {
            let counters = Arc::new(WorkerCounters::default());
            let mut stack: Stack<VecPacket> = Stack::new(64, counters.clone());
            let mut out = Capture::default();
            stack.static_neighbour(
                &net,
                NeighUpdate {
                    port: 1,
                    ip: RS.into(),
                    mac: MacAddr(RS_MAC),
                },
                &mut out,
            );
            for k in 0..150 {
                stack.static_neighbour(
                    &net,
                    NeighUpdate {
                        port: 0,
                        ip: client(k).into(),
                        mac: MacAddr(CLIENT_MAC),
                    },
                    &mut out,
                );
            }
            out.0.clear();
            let mut lb = Lb::new(i, 2, 4096, counters.clone());
            lb.set_nat_replies(replies.clone());
            if rss {
                let s = Arc::new(spread.clone());
                lb.set_spreads([(0, s.clone()), (1, s)]);
            }
            Worker {
                lb,
                stack,
                counters,
                out,
            }
        })
        .collect();
    Pair {
        net,
        svcs: services(fwd, persistent),
        spread,
        w,
    }
}

fn tcp(
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    macs: ([u8; 6], [u8; 6]),
    syn: bool,
    ack: bool,
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv4(src.0.octets(), dst.0.octets(), 64)
        .tcp(src.1, dst.1, 1000, 64240);
    if syn {
        b = b.syn();
    }
    if ack {
        b = b.ack(1);
    }
    let mut f = Vec::new();
    b.write(&mut f, &[]).unwrap();
    f
}

fn queue(s: &Spread, src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> usize {
    usize::from(s.queue(
        &RssTuple {
            proto: 6,
            src: src.0.into(),
            dst: dst.0.into(),
            sport: src.1,
            dport: dst.1,
        },
        false,
    ))
}

impl Pair {
    /// `f` through worker `i` as if received on `port`.
    fn feed(&mut self, i: usize, f: &[u8], port: u16) -> Outcome<VecPacket> {
        self.feed_at(i, f, port, 1000)
    }

    fn feed_at(&mut self, i: usize, f: &[u8], port: u16, now: Millis) -> Outcome<VecPacket> {
        let w = &mut self.w[i];
        w.out.0.clear();
        w.lb.input(
            &self.net,
            &self.svcs,
            &Timeouts::default(),
            VecPacket::from_bytes(f, port),
            now,
            &mut w.stack,
            &mut w.out,
        )
    }

    fn redirects(&self, reason: RedirectReason) -> u64 {
        self.w.iter().map(|w| w.counters.redirects(reason)).sum()
    }
}

/// The one frame worker `i` sent, its port and bytes.
fn sent(p: &Pair, i: usize) -> (u16, Vec<u8>) {
    let drops: Vec<_> = DropReason::ALL
        .iter()
        .filter(|r| p.w[i].counters.drops(**r) > 0)
        .map(|r| r.name())
        .collect();
    assert_eq!(
        p.w[i].out.0.len(),
        1,
        "one frame out of worker {i}, drops {drops:?}"
    );
    p.w[i].out.0[0].clone()
}

#[test]
fn rss_puts_a_fullnat_flow_and_its_replies_on_one_worker_and_nothing_crosses() {
    let mut p = pair(FwdMethod::FullNat, false, true);
    let mut per_worker = [0; 2];
    for k in 0..400u32 {
        let c = (client(k), 20_000 + k as u16);
        let q = queue(&p.spread, c, (VIP, 80));
        per_worker[q] += 1;
        let syn = tcp(c, (VIP, 80), (CLIENT_MAC, PORT0_MAC), true, false);
        assert!(matches!(p.feed(q, &syn, 0), Outcome::Done), "flow {k}");
        let (port, out) = sent(&p, q);
        assert_eq!(port, 1);
        let ip = etherparse::Ipv4HeaderSlice::from_slice(&out[14..]).unwrap();
        assert_eq!(ip.source_addr(), LIP);
        assert_eq!(ip.destination_addr(), RS);
        let lport = u16::from_be_bytes([out[34], out[35]]);
        // The server's answer: the device puts it where its tuple hashes,
        // which the conn's worker chose its local port for.
        let reply_q = queue(&p.spread, (RS, 8080), (LIP, lport));
        assert_eq!(
            reply_q, q,
            "flow {k}: lport {lport} lands on worker {reply_q}"
        );
        let synack = tcp((RS, 8080), (LIP, lport), (RS_MAC, PORT1_MAC), true, true);
        assert!(matches!(p.feed(reply_q, &synack, 1), Outcome::Done));
        let (port, back) = sent(&p, q);
        assert_eq!(port, 0);
        let ip = etherparse::Ipv4HeaderSlice::from_slice(&back[14..]).unwrap();
        assert_eq!((ip.source_addr(), ip.destination_addr()), (VIP, c.0));
        assert_eq!(u16::from_be_bytes([back[36], back[37]]), c.1);
        // And the client's next segment, on the same queue as its SYN.
        let ack = tcp(c, (VIP, 80), (CLIENT_MAC, PORT0_MAC), false, true);
        assert!(matches!(p.feed(q, &ack, 0), Outcome::Done));
        assert_eq!(sent(&p, q).1[34..36], out[34..36]);
    }
    assert!(per_worker.iter().all(|&n| n > 120), "{per_worker:?}");
    for r in RedirectReason::ALL {
        assert_eq!(p.redirects(r), 0, "{}", r.name());
    }
    assert_eq!(
        p.w[0].lb.conns().len() + p.w[1].lb.conns().len(),
        400,
        "one conn per flow"
    );
}

#[test]
fn dr_flows_stay_where_rss_put_them() {
    let mut p = pair(FwdMethod::DirectRoute, false, true);
    for k in 0..100u32 {
        let c = (client(k), 30_000 + k as u16);
        let q = queue(&p.spread, c, (VIP, 80));
        for (syn, ack) in [(true, false), (false, true)] {
            let f = tcp(c, (VIP, 80), (CLIENT_MAC, PORT0_MAC), syn, ack);
            assert!(matches!(p.feed(q, &f, 0), Outcome::Done));
            let (port, out) = sent(&p, q);
            assert_eq!((port, &out[0..6]), (1, &RS_MAC[..]), "to the server's MAC");
        }
    }
    assert_eq!(p.redirects(RedirectReason::NoRss), 0);
    assert_eq!(p.redirects(RedirectReason::ClientOwned), 0);
}

/// A worker counts the conns it opens on their dest where only it sees
/// them, and its millisecond's poll folds them where the other worker's
/// schedulers see them too; a listing sees them throughout.
#[test]
fn a_workers_conns_reach_the_other_workers_view_of_the_dest_at_its_poll() {
    let mut p = pair(FwdMethod::DirectRoute, false, true);
    let c = (client(7), 31_000);
    let q = queue(&p.spread, c, (VIP, 80));
    let other = 1 - q;
    let dest = p.svcs.services()[0].dests()[0].clone();
    let view = |d: &Dest, w: usize| (d.activeconns_at(w), d.inactconns_at(w));
    let conns = |d: &Dest| {
        let total = |(a, i): (u32, u32)| a + i;
        [
            total(view(d, q)),
            total(view(d, other)),
            d.activeconns() + d.inactconns(),
        ]
    };
    let syn = tcp(c, (VIP, 80), (CLIENT_MAC, PORT0_MAC), true, false);
    assert!(matches!(p.feed_at(q, &syn, 0, 1000), Outcome::Done));
    assert_eq!(conns(&dest), [1, 0, 1], "the owner's and the listing's");
    let ack = tcp(c, (VIP, 80), (CLIENT_MAC, PORT0_MAC), false, true);
    assert!(matches!(p.feed_at(q, &ack, 0, 1000), Outcome::Done));
    assert_eq!(conns(&dest), [1, 0, 1]);
    p.w[q].lb.poll(&p.svcs, 1001);
    assert_eq!(conns(&dest), [1, 1, 1], "folded at the poll");
    assert_eq!(view(&dest, other), view(&dest, q), "its state's count too");
    // Its end, at the poll that expires it.
    let mut now = 1001;
    while !p.w[q].lb.conns().is_empty() && now < 3_600_000 {
        now += 60_000;
        p.w[q].lb.poll(&p.svcs, now);
    }
    assert_eq!(conns(&dest), [0, 0, 0], "ended and folded");
}

#[test]
fn persistent_services_keep_the_clients_worker_and_say_so() {
    let mut p = pair(FwdMethod::FullNat, true, true);
    let mut crossed = 0;
    for k in 0..64u32 {
        let c = (client(k), 40_000 + k as u16);
        let q = queue(&p.spread, c, (VIP, 80));
        let owner = client_owner(c.0.into(), 2);
        let syn = tcp(c, (VIP, 80), (CLIENT_MAC, PORT0_MAC), true, false);
        match p.feed(q, &syn, 0) {
            Outcome::Redirect(w, _) => {
                assert_eq!((w, q == owner), (owner, false));
                crossed += 1;
            }
            Outcome::Done => assert_eq!(q, owner, "kept off its client's worker"),
            Outcome::Local(_) => panic!("not load balanced"),
        }
    }
    assert!(crossed > 10, "{crossed}");
    assert_eq!(p.redirects(RedirectReason::ClientOwned), crossed);
    assert_eq!(p.redirects(RedirectReason::NoRss), 0);
}

#[test]
fn nat_conns_stay_where_rss_put_the_client_and_replies_are_handed_to_them() {
    let mut p = pair(FwdMethod::Masq, false, true);
    let mut crossed = 0;
    for k in 0..64u32 {
        let c = (client(k), 45_000 + k as u16);
        let q = queue(&p.spread, c, (VIP, 80));
        let syn = tcp(c, (VIP, 80), (CLIENT_MAC, PORT0_MAC), true, false);
        assert!(matches!(p.feed(q, &syn, 0), Outcome::Done));
        let (port, out) = sent(&p, q);
        assert_eq!((port, &out[30..34]), (1, &RS.octets()[..]));
        // The server answers the client; the device hashes that tuple.
        let synack = tcp((RS, 8080), c, (RS_MAC, PORT1_MAC), true, true);
        let rq = queue(&p.spread, (RS, 8080), c);
        if rq != q {
            match p.feed(rq, &synack, 1) {
                Outcome::Redirect(w, _) => assert_eq!(w, q),
                _ => panic!("flow {k}: the reply was not handed to its conn's worker"),
            }
            crossed += 1;
        }
        assert!(matches!(p.feed(q, &synack, 1), Outcome::Done));
        let (port, back) = sent(&p, q);
        assert_eq!((port, &back[26..30]), (0, &VIP.octets()[..]));
    }
    assert!(crossed > 10, "{crossed}");
    assert_eq!(p.redirects(RedirectReason::NatReply), crossed);
    assert_eq!(p.redirects(RedirectReason::ClientOwned), 0);
    assert_eq!(p.redirects(RedirectReason::NoRss), 0);
}

#[test]
fn without_rss_the_ring_carries_what_lands_elsewhere_counted_no_rss() {
    let mut p = pair(FwdMethod::FullNat, false, false);
    let mut crossed = 0;
    for k in 0..64u32 {
        let c = (client(k), 50_000 + k as u16);
        let owner = client_owner(c.0.into(), 2);
        let syn = tcp(c, (VIP, 80), (CLIENT_MAC, PORT0_MAC), true, false);
        // As one queue would: everything on worker 0.
        match p.feed(0, &syn, 0) {
            Outcome::Redirect(w, _) => {
                assert_eq!(w, owner);
                crossed += 1;
                continue;
            }
            Outcome::Done => assert_eq!(owner, 0),
            Outcome::Local(_) => panic!("not load balanced"),
        }
        // Worker 0's conn: its port is in worker 0's slice, so its reply
        // stays even on the wrong queue... and one for worker 1's slice
        // would cross.
        let lport = u16::from_be_bytes([sent(&p, 0).1[34], sent(&p, 0).1[35]]);
        assert_eq!(lport & 1, 0, "worker 0's slice");
        let synack = tcp(
            (RS, 8080),
            (LIP, lport | 1),
            (RS_MAC, PORT1_MAC),
            true,
            true,
        );
        assert!(matches!(p.feed(0, &synack, 1), Outcome::Redirect(1, _)));
        crossed += 1;
    }
    assert!(crossed > 40, "{crossed}");
    assert_eq!(p.redirects(RedirectReason::NoRss), crossed);
}

#[test]
fn an_icmp_error_goes_to_the_worker_its_flow_hashes_to() {
    let mut p = pair(FwdMethod::FullNat, false, true);
    let c = (client(7), 12_345);
    let q = queue(&p.spread, c, (VIP, 80));
    let syn = tcp(c, (VIP, 80), (CLIENT_MAC, PORT0_MAC), true, false);
    assert!(matches!(p.feed(q, &syn, 0), Outcome::Done));
    let out = sent(&p, q).1;
    // The server's router says the segment LIP → RS could not be
    // delivered, quoting its IP header and first 8 bytes.
    let quote = &out[14..14 + 28];
    let mut f = Vec::new();
    PacketBuilder::ethernet2(RS_MAC, PORT1_MAC)
        .ipv4(RS.octets(), LIP.octets(), 64)
        .icmpv4(Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Host,
        ))
        .write(&mut f, quote)
        .unwrap();
    match p.feed(1 - q, &f, 1) {
        Outcome::Redirect(w, _) => assert_eq!(w, q),
        _ => panic!("not handed to the conn's worker"),
    }
    assert_eq!(p.redirects(RedirectReason::Derived), 1);
    // On its own worker it is the conn's: relayed to the client.
    assert!(matches!(p.feed(q, &f, 1), Outcome::Done));
    let (port, back) = sent(&p, q);
    assert_eq!(port, 0);
    assert_eq!(&back[30..34], &c.0.octets());
}

#[test]
fn a_persistent_nets_template_lives_on_its_owner_and_expires_there() {
    let mut p = pair(FwdMethod::DirectRoute, false, true);
    // DR to two servers, -p 1 -M 255.255.0.0.
    const RS2: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 12);
    const RS2_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x12];
    let key = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: VIP.into(),
        port: 80,
    };
    let mut table = ServiceTable::new(2);
    let mut cfg = ServiceConfig::new(key);
    cfg.persistent = Some(1);
    cfg.netmask = crate::ipvs::Netmask::V4(0xffff_0000);
    table.add_service(cfg).unwrap();
    for rs in [RS, RS2] {
        let mut d = DestConfig::new(rs.into(), 80);
        d.fwd = FwdMethod::DirectRoute;
        table.add_dest(&key, d).unwrap();
    }
    p.svcs = table.snapshot();
    for w in &mut p.w {
        let u = NeighUpdate {
            port: 1,
            ip: RS2.into(),
            mac: MacAddr(RS2_MAC),
        };
        w.stack.static_neighbour(&p.net, u, &mut w.out);
    }
    // Three clients of 198.18/16, two of them in other /24s.
    let clients = [
        (Ipv4Addr::new(198, 18, 0, 150), 1000),
        (Ipv4Addr::new(198, 18, 7, 9), 2000),
        (Ipv4Addr::new(198, 18, 200, 1), 3000),
    ];
    // Each SYN as the device places it, then to whom it is handed: the
    // server its dst MAC names.
    let syn_to = |p: &mut Pair, c: (Ipv4Addr, u16), now: Millis| -> (usize, [u8; 6]) {
        let f = tcp(c, (VIP, 80), (CLIENT_MAC, PORT0_MAC), true, false);
        let q = queue(&p.spread, c, (VIP, 80));
        let owner = match p.feed_at(q, &f, 0, now) {
            Outcome::Redirect(w, _) => {
                assert!(matches!(p.feed_at(w, &f, 0, now), Outcome::Done));
                w
            }
            Outcome::Done => q,
            Outcome::Local(_) => panic!("not load balanced"),
        };
        (owner, sent(p, owner).1[0..6].try_into().unwrap())
    };
    let templates = |p: &Pair, w: usize| {
        p.w[w]
            .lb
            .conns()
            .iter_from(0)
            .filter(|(_, c)| c.is_template())
            .count()
    };
    let (owner, first) = syn_to(&mut p, clients[0], 1000);
    let (o2, second) = syn_to(&mut p, clients[1], 1000);
    assert_eq!((o2, second), (owner, first), "one template for the /16");
    assert_eq!(templates(&p, owner), 1);
    assert_eq!(
        p.w[1 - owner].lb.conns().len(),
        0,
        "nothing on the other worker"
    );
    // The conns time out (SYN_RECV), then the template after its second.
    let mut now = 1000;
    while !p.w[owner].lb.conns().is_empty() && now < 3_600_000 {
        now += 5000;
        p.w[owner].lb.poll(&p.svcs, now);
    }
    assert_eq!(p.w[owner].lb.conns().len(), 0, "conns and template expired");
    // A new template, on the same worker.
    let (o3, _) = syn_to(&mut p, clients[2], now);
    assert_eq!(o3, owner);
    assert_eq!(templates(&p, owner), 1);
    assert_eq!(
        p.w[owner].lb.conns().len(),
        2,
        "the conn and its new template"
    );
    assert_eq!(p.w[1 - owner].lb.conns().len(), 0);
}
