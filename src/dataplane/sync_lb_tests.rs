//! The sync daemons through the load-balancing stage: a master's conn goes
//! out in a frame (read here with etherparse and by the kernel's offsets,
//! not with rvs's decoder), and a backup fed that frame installs the conn
//! with its FULLNAT local address and port, which it then never hands out.
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use etherparse::{NetHeaders, PacketHeaders, TransportHeader};

use super::lb::{Lb, Outcome};
use crate::counters::{DropReason, WorkerCounters};
use crate::ipvs::proto::Timeouts;
use crate::ipvs::sync::{Role, SyncConfig, SyncDaemons};
use crate::ipvs::Tuple;
use crate::ipvs::{DestConfig, FwdMethod, Protocol, ServiceConfig, ServiceKey, ServiceTable};
use crate::netstack::tests::Wire as Capture;
use crate::netstack::{AddrKind, Iface, IfaceAddr, Millis, NeighUpdate, NetConfig, Stack};
use crate::packet::{Packet, VecPacket};
use crate::wire::MacAddr;
use crate::xmit::testkit::{frame, tcp, L4};

const GWC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const GWS: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const RS: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 11);

fn net() -> NetConfig {
    let iface = |port: u16, a: Ipv4Addr| Iface {
        port,
        name: ["client", "servers"][port as usize].into(),
        mac: MacAddr([2, 0, 0, 0, 0, port as u8 + 1]),
        addrs: vec![IfaceAddr {
            addr: a.into(),
            prefix_len: 24,
        }],
        mtu: 1500,
        tx_checksum: false,
    };
    NetConfig::new(vec![iface(0, GWC), iface(1, GWS)], vec![])
        .with_extra([(VIP.into(), AddrKind::Vip)])
}

/// TCP 80 FULLNAT, TCP 81 NAT, TCP 82 NAT persistent with the proxy
/// protocol, all to RS.
fn services() -> crate::ipvs::ServiceSet {
    let mut t = ServiceTable::new(1);
    for (port, fwd) in [
        (80, FwdMethod::FullNat),
        (81, FwdMethod::Masq),
        (82, FwdMethod::Masq),
    ] {
        let key = ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: VIP.into(),
            port,
        };
        let mut cfg = ServiceConfig::new(key);
        if port == 82 {
            // Persistent, with the proxy protocol's sequence shift.
            cfg.persistent = Some(300);
            cfg.proxy_protocol = crate::ipvs::proxy_proto::ProxyProtocol::V1;
        }
        t.add_service(cfg).unwrap();
        let mut d = DestConfig::new(RS.into(), port);
        d.fwd = fwd;
        t.add_dest(&key, d).unwrap();
    }
    // UDP 83 NAT, one-packet scheduling, persistent.
    let key = ServiceKey::Addr {
        proto: Protocol::Udp,
        addr: VIP.into(),
        port: 83,
    };
    let mut cfg = ServiceConfig::new(key);
    cfg.persistent = Some(120);
    cfg.one_packet = true;
    t.add_service(cfg).unwrap();
    let mut d = DestConfig::new(RS.into(), 83);
    d.fwd = FwdMethod::Masq;
    t.add_dest(&key, d).unwrap();
    t.snapshot()
}

struct Director {
    net: NetConfig,
    svcs: crate::ipvs::ServiceSet,
    lb: Lb,
    stack: Stack<VecPacket>,
    counters: Arc<WorkerCounters>,
    out: Capture,
}

fn director(daemons: SyncDaemons) -> Director {
    director_on(daemons, 0, 1)
}

/// Worker `worker` of `workers`.
fn director_on(daemons: SyncDaemons, worker: usize, workers: usize) -> Director {
    let net = net();
    let counters = Arc::new(WorkerCounters::default());
    let mut stack: Stack<VecPacket> = Stack::new(64, counters.clone());
    let mut out = Capture::default();
    for (port, ip, last) in [(0, Ipv4Addr::new(198, 18, 0, 254), 0x22), (1, RS, 0x11)] {
        let mac = MacAddr([2, 0, 0, 0, 0, last]);
        stack.static_neighbour(
            &net,
            NeighUpdate {
                port,
                ip: ip.into(),
                mac,
            },
            &mut out,
        );
    }
    out.sent.clear();
    let mut lb = Lb::new(worker, workers, 1024, counters.clone());
    lb.set_laddr_seed(0);
    lb.set_sync(Arc::new(ArcSwap::from_pointee(daemons)));
    let mut d = Director {
        net: net.clone(),
        svcs: services(),
        lb,
        stack,
        counters,
        out,
    };
    d.poll(0);
    d
}

fn daemon(role: Role, syncid: u8) -> SyncConfig {
    SyncConfig::with_defaults(role, "client", syncid, None, None, None, None, 1500)
}

impl Director {
    fn poll(&mut self, now: Millis) {
        let Director { lb, net, out, .. } = self;
        lb.poll_sync(net, now, out);
    }

    fn feed(&mut self, f: &[u8], port: u16, now: Millis) -> Outcome<VecPacket> {
        let pkt = VecPacket::from_bytes(f, port);
        self.lb.input(
            &self.net,
            &self.svcs,
            &Timeouts::default(),
            pkt,
            now,
            &mut self.stack,
            &mut self.out,
        )
    }

    /// A client's SYN, ACK and first data segment to the VIP.
    fn handshake(&mut self, client: Ipv4Addr, cport: u16, vport: u16, now: Millis) {
        for flags in ["S", "A", "AP"] {
            let mut f = frame(
                client.into(),
                VIP.into(),
                64,
                &tcp(cport, vport, flags, &[]),
                b"",
            );
            f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
            assert!(matches!(self.feed(&f, 0, now), Outcome::Done));
        }
    }

    fn conn(&self, client: Ipv4Addr, cport: u16, vport: u16) -> (IpAddr, u16, u8) {
        let t = Tuple {
            proto: 6,
            saddr: client.into(),
            sport: cport,
            daddr: VIP.into(),
            dport: vport,
        };
        let id = self.lb.conns().lookup_in(&t).expect("the conn");
        let c = self.lb.conns().get(id).unwrap();
        (c.laddr(), c.lport(), c.state())
    }

    /// The sync frames sent, on port 0.
    fn sync_frames(&mut self) -> Vec<Vec<u8>> {
        let frames: Vec<Vec<u8>> = self
            .out
            .sent
            .iter()
            .filter(|(p, f)| *p == 0 && f[0] == 0x01)
            .map(|(_, f)| f.clone())
            .collect();
        self.out.sent.clear();
        frames
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

#[test]
fn a_master_sends_its_conn_at_the_third_packet_and_a_backup_installs_it() {
    let mut m = director(SyncDaemons {
        master: Some(daemon(Role::Master, 7)),
        backup: None,
    });
    let client = Ipv4Addr::new(203, 0, 113, 2);
    m.handshake(client, 40000, 80, 10);
    let (laddr, lport, state) = m.conn(client, 40000, 80);
    assert_eq!(laddr, IpAddr::from(GWS), "the server port's own address");
    assert_eq!(state, 1, "ESTABLISHED");
    // In the message, not sent yet: 2 s after its first entry it is.
    m.poll(2009);
    assert!(m.sync_frames().is_empty());
    m.poll(2010);
    let frames = m.sync_frames();
    assert_eq!(frames.len(), 1);
    let f = &frames[0];
    let h = PacketHeaders::from_ethernet_slice(f).unwrap();
    let eth = h.link.unwrap().ethernet2().unwrap();
    assert_eq!(eth.destination, [0x01, 0, 0x5e, 0, 0, 0x51]);
    assert_eq!(eth.source, [2, 0, 0, 0, 0, 1]);
    let Some(NetHeaders::Ipv4(ip, _)) = h.net else {
        panic!()
    };
    assert_eq!((ip.source, ip.destination), (GWC.octets(), [224, 0, 0, 81]));
    assert_eq!(ip.time_to_live, 1);
    assert!(!ip.dont_fragment);
    assert_eq!(ip.header_checksum, ip.calc_header_checksum());
    let Some(TransportHeader::Udp(udp)) = h.transport else {
        panic!()
    };
    assert_eq!(udp.destination_port, 8848);
    let payload = &f[42..];
    assert_eq!(
        udp.checksum,
        udp.calc_checksum_ipv4_raw(ip.source, ip.destination, payload)
            .unwrap()
    );
    // The kernel's layout, by offset: header, then one entry of 36 + 8.
    assert_eq!(&payload[..8], &[0, 7, 0, 52, 1, 1, 0, 0]);
    let e = &payload[8..];
    assert_eq!((e[0], e[1], be16(&e[2..])), (0, 6, 44));
    // FULLNAT (DPVS's 5), active: no INACTIVE bit.
    assert_eq!(&e[4..8], &[0, 0, 0, 5]);
    assert_eq!(be16(&e[8..]), 1, "ESTABLISHED");
    assert_eq!(
        (be16(&e[10..]), be16(&e[12..]), be16(&e[14..])),
        (40000, 80, 80)
    );
    assert_eq!(u32::from_be_bytes(e[20..24].try_into().unwrap()), 900);
    assert_eq!(
        &e[24..36],
        &[203, 0, 113, 2, 198, 18, 0, 100, 198, 19, 0, 11]
    );
    // rvs's option: 0x40 | 0x10, length 6, local address, local port.
    assert_eq!(&e[36..42], &[0x50, 6, 198, 19, 0, 1]);
    assert_eq!(be16(&e[42..]), lport);
    assert_eq!(m.counters.sync.msgs_sent.get(), 1);
    assert_eq!(m.counters.sync.conns_sent.get(), 1);
    assert_eq!(m.counters.sync.bytes_sent.get(), 52);

    let mut b = director(SyncDaemons {
        master: None,
        backup: Some(daemon(Role::Backup, 7)),
    });
    assert!(matches!(b.feed(f, 0, 5000), Outcome::Done));
    assert_eq!(b.counters.sync.msgs_received.get(), 1);
    assert_eq!(b.counters.sync.conns_received.get(), 1);
    assert_eq!(b.conn(client, 40000, 80), (laddr, lport, 1));
    let id =
        b.lb.conns()
            .lookup_in(&Tuple {
                proto: 6,
                saddr: client.into(),
                sport: 40000,
                daddr: VIP.into(),
                dport: 80,
            })
            .unwrap();
    let c = b.lb.conns().get(id).unwrap();
    assert!(c.is_active());
    assert_eq!(
        c.expires_in(5000),
        900_000,
        "the synced timeout, on the backup's wheel"
    );
    // The same message again updates the conn; it is not duplicated.
    assert!(matches!(b.feed(f, 0, 6000), Outcome::Done));
    assert_eq!(b.lb.conns().len(), 1);
    assert_eq!(b.lb.conns().get(id).unwrap().expires_in(6000), 900_000);
}

#[test]
fn a_backup_never_hands_out_a_synced_local_port() {
    // Both directors' cursors start at the first port: the master's first
    // conn gets it, and so would the backup's.
    let mut m = director(SyncDaemons {
        master: Some(daemon(Role::Master, 0)),
        backup: None,
    });
    let a = Ipv4Addr::new(203, 0, 113, 2);
    m.handshake(a, 40000, 80, 10);
    let (_, synced_port, _) = m.conn(a, 40000, 80);
    m.poll(3000);
    let f = m.sync_frames().pop().unwrap();

    let mut twin = director(SyncDaemons::default());
    let c = Ipv4Addr::new(203, 0, 113, 9);
    twin.handshake(c, 41000, 80, 10);
    assert_eq!(
        twin.conn(c, 41000, 80).1,
        synced_port,
        "the port a fresh backup hands out first"
    );

    let mut b = director(SyncDaemons {
        master: None,
        backup: Some(daemon(Role::Backup, 0)),
    });
    b.feed(&f, 0, 100);
    assert_eq!(b.conn(a, 40000, 80).1, synced_port);
    b.handshake(c, 41000, 80, 200);
    let (_, got, _) = b.conn(c, 41000, 80);
    assert_ne!(got, synced_port, "the synced conn holds its port");
}

#[test]
fn wrong_syncid_no_dest_and_broken_messages_are_counted_drops() {
    let mut m = director(SyncDaemons {
        master: Some(daemon(Role::Master, 3)),
        backup: None,
    });
    let a = Ipv4Addr::new(203, 0, 113, 2);
    m.handshake(a, 40000, 81, 10);
    m.poll(3000);
    let f = m.sync_frames().pop().unwrap();
    // NAT: no local-address option, 8 + 36 bytes.
    assert_eq!(f.len(), 42 + 44);

    let mut b = director(SyncDaemons {
        master: None,
        backup: Some(daemon(Role::Backup, 4)),
    });
    b.feed(&f, 0, 100);
    assert_eq!(b.counters.drops(DropReason::SyncWrongSyncid), 1);
    assert!(b.lb.conns().is_empty());

    // syncid 0 takes any; a service the backup lacks is a counted drop.
    let mut b = director(SyncDaemons {
        master: None,
        backup: Some(daemon(Role::Backup, 0)),
    });
    b.svcs = ServiceTable::new(1).snapshot();
    b.feed(&f, 0, 100);
    assert_eq!(b.counters.drops(DropReason::SyncNoDest), 1);
    assert!(b.lb.conns().is_empty());

    // A message whose size field is not the datagram's.
    let mut b = director(SyncDaemons {
        master: None,
        backup: Some(daemon(Role::Backup, 0)),
    });
    let mut bad = f.clone();
    bad[42 + 3] += 4;
    b.feed(&bad, 0, 100);
    assert_eq!(b.counters.drops(DropReason::SyncBadMessage), 1);
    // A corrupted UDP checksum.
    let mut bad = f.clone();
    bad[42 + 8 + 10] ^= 1;
    b.feed(&bad, 0, 100);
    assert_eq!(b.counters.drops(DropReason::SyncBadMessage), 2);
    assert!(b.lb.conns().is_empty());
    b.feed(&f, 0, 100);
    assert_eq!(b.lb.conns().len(), 1);
}

/// The sync cost of new conns: 1000 FULLNAT conns of three client
/// segments each. Worked out by hand: an entry is 36 + 8 bytes (the local
/// address option), a message of at most 1472 bytes holds (1472 - 8) / 44
/// = 33 of them, so 1000 conns take 31 messages (30 full, one of 10 sent
/// 2 s later) of 1000 * 44 + 31 * 8 = 44 248 bytes.
#[test]
fn a_thousand_new_fullnat_conns_take_31_messages_and_44248_bytes() {
    let mut m = director(SyncDaemons {
        master: Some(daemon(Role::Master, 0)),
        backup: None,
    });
    for k in 0..1000u32 {
        let client = Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 0)) + k / 100);
        m.handshake(client, 10_000 + (k % 100) as u16, 80, 10);
    }
    assert_eq!(m.counters.sync.msgs_sent.get(), 30);
    m.poll(2010);
    let s = &m.counters.sync;
    assert_eq!(
        (s.msgs_sent.get(), s.conns_sent.get(), s.bytes_sent.get()),
        (31, 1000, 44_248)
    );
    let frames = m.sync_frames();
    assert_eq!(frames.len(), 31);
    assert!(frames.iter().all(|f| f.len() <= 14 + 20 + 8 + 1472));
}

/// A backup of two workers: the worker that takes the datagram off the
/// port installs its own entries and hands the datagram to the other,
/// which installs the rest; each conn lands in its client's worker. A
/// FULLNAT conn from a master of one worker whose local port is in the
/// other worker's slice is counted, not installed.
#[test]
fn a_backups_workers_each_install_their_own_entries() {
    let mut m = director(SyncDaemons {
        master: Some(daemon(Role::Master, 0)),
        backup: None,
    });
    let clients: Vec<Ipv4Addr> = (0..16).map(|i| Ipv4Addr::new(203, 0, i, 2)).collect();
    for c in &clients {
        m.handshake(*c, 40000, 81, 10);
        m.handshake(*c, 40001, 80, 10);
    }
    m.poll(3000);
    let frames = m.sync_frames();
    assert_eq!(frames.len(), 1);
    let b = || SyncDaemons {
        master: None,
        backup: Some(daemon(Role::Backup, 0)),
    };
    let mut w0 = director_on(b(), 0, 2);
    let mut w1 = director_on(b(), 1, 2);
    let owner = |c: &Ipv4Addr| super::lb::client_owner(IpAddr::V4(*c), 2);
    assert!(clients.iter().any(|c| owner(c) == 0) && clients.iter().any(|c| owner(c) == 1));
    let relayed = match w0.feed(&frames[0], 0, 100) {
        Outcome::Redirect(1, p) => p,
        _ => panic!("handed on to worker 1"),
    };
    // The same bytes off a port are not a relay, whatever else they say
    // (here a TTL of 0, which once marked a relay): a spare field set is a
    // version 0 message, counted and not read.
    let mut forged = relayed.data().to_vec();
    forged[14 + 8] = 0;
    let mut port_side = director_on(b(), 1, 2);
    assert!(matches!(port_side.feed(&forged, 0, 100), Outcome::Done));
    assert_eq!(port_side.counters.drops(DropReason::SyncBadMessage), 1);
    assert_eq!(port_side.lb.conns().len(), 0, "nothing installed from it");
    assert!(matches!(
        w1.lb.input_relayed(
            &w1.net,
            &w1.svcs,
            &Timeouts::default(),
            relayed,
            100,
            &mut w1.stack,
            &mut w1.out
        ),
        Outcome::Done
    ));
    for (w, me) in [(&w0, 0), (&w1, 1)] {
        for c in &clients {
            let t = Tuple {
                proto: 6,
                saddr: (*c).into(),
                sport: 40000,
                daddr: VIP.into(),
                dport: 81,
            };
            assert_eq!(
                w.lb.conns().lookup_in(&t).is_some(),
                owner(c) == me,
                "NAT conn of {c} on worker {me}"
            );
        }
    }
    // FULLNAT: installed where the local port's slice is the client's
    // worker's, counted elsewhere; never both.
    let fnat = |w: &Director| {
        clients
            .iter()
            .filter(|c| {
                w.lb.conns()
                    .lookup_in(&Tuple {
                        proto: 6,
                        saddr: (**c).into(),
                        sport: 40001,
                        daddr: VIP.into(),
                        dport: 80,
                    })
                    .is_some()
            })
            .count() as u64
    };
    let wrong = w0.counters.drops(DropReason::SyncWrongWorker)
        + w1.counters.drops(DropReason::SyncWrongWorker);
    assert_eq!(fnat(&w0) + fnat(&w1) + wrong, 16);
    assert!(wrong > 0, "a one-worker master's ports fill both slices");
    assert_eq!(w0.counters.sync.msgs_received.get(), 1);
    assert_eq!(
        w1.counters.sync.msgs_received.get(),
        0,
        "relayed, not received"
    );
}

/// A persistent service's template goes along with its conn, and a
/// conn's sequence adjustment (here the proxy protocol's) with it: the
/// backup installs both, the shift as the master has it.
#[test]
fn a_template_and_a_sequence_shift_are_synced_with_their_conn() {
    let mut m = director(SyncDaemons {
        master: Some(daemon(Role::Master, 0)),
        backup: None,
    });
    let a = Ipv4Addr::new(203, 0, 113, 2);
    m.handshake(a, 40000, 82, 10);
    let t = Tuple {
        proto: 6,
        saddr: a.into(),
        sport: 40000,
        daddr: VIP.into(),
        dport: 82,
    };
    let id = m.lb.conns().lookup_in(&t).unwrap();
    let adj = *m
        .lb
        .conns()
        .seq_adj(id)
        .expect("the proxy protocol's shift");
    assert_ne!(adj.ins_len, 0);
    m.poll(3000);
    let f = m.sync_frames().pop().unwrap();
    let p = &f[42..];
    assert_eq!(p[4], 2, "the conn and its template");
    // The conn: 36 + 20 (option 0x51, 18 bytes); then the template.
    assert_eq!(be16(&p[8 + 2..]), 56);
    assert_eq!(p[8 + 36], 0x51);
    let tpl = &p[8 + 56..];
    assert_eq!(be16(&tpl[2..]), 36);
    assert_eq!(&tpl[4..8], &[0, 0, 0x10, 0], "TEMPLATE | MASQ");
    assert_eq!((be16(&tpl[10..]), be16(&tpl[12..])), (0, 82), "cport 0");
    assert_eq!(u32::from_be_bytes(tpl[20..24].try_into().unwrap()), 300);

    let mut b = director(SyncDaemons {
        master: None,
        backup: Some(daemon(Role::Backup, 0)),
    });
    b.feed(&f, 0, 100);
    assert_eq!(b.counters.sync.conns_received.get(), 2);
    let bid = b.lb.conns().lookup_in(&t).unwrap();
    assert_eq!(b.lb.conns().seq_adj(bid), Some(&adj));
    let key = crate::ipvs::TemplateKey {
        proto: 6,
        client_net: a.into(),
        vaddr: VIP.into(),
        vport: 82,
    };
    let tid = b.lb.conns().lookup_template(&key).expect("the template");
    assert_eq!(b.lb.conns().get(tid).unwrap().expires_in(100), 300_000);
}

/// A one-packet (-o) conn is never synced, but its template is, at each of
/// its packets (ip_vs_sync_conn's `goto control`).
#[test]
fn a_one_packet_conns_template_is_synced_at_each_packet() {
    let mut m = director(SyncDaemons {
        master: Some(daemon(Role::Master, 0)),
        backup: None,
    });
    let a = Ipv4Addr::new(203, 0, 113, 2);
    for sport in [5000, 5001] {
        let mut f = frame(a.into(), VIP.into(), 64, &L4::Udp(sport, 83), b"hi");
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        assert!(matches!(m.feed(&f, 0, 10), Outcome::Done));
    }
    m.poll(3000);
    let f = m.sync_frames().pop().unwrap();
    let p = &f[42..];
    assert_eq!(p[4], 2, "the template, twice");
    for e in [&p[8..44], &p[44..80]] {
        assert_eq!(
            (e[1], &e[4..8]),
            (17, &[0u8, 0, 0x10, 0][..]),
            "UDP TEMPLATE | MASQ"
        );
        assert_eq!((be16(&e[10..]), be16(&e[12..])), (0, 83));
    }
}
