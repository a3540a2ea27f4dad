//! Many workers without cross-core traffic (DESIGN.md, "Per-lcore
//! ownership"): rvsd with two and four workers on a multi-queue net_memif
//! port whose peer is a software NIC with RSS (bench/rsspeer.rs: every
//! frame on the queue the Toeplitz hash and the redirection table pick, as
//! `rss = "software"` tells rvsd). The peer plays clients and real servers:
//! TCP handshakes through FULLNAT, DR and TUN services, the servers
//! answering, and the test counts what crossed between workers from rvsd's
//! own summary: nothing where RSS spreads, the ring for persistent and NAT
//! services (counted as client_owned) and for a device without RSS.
//!
//! One EAL per process: the peer's, set up once; each test starts its own
//! rvsd (EAL in its own process, --no-huge, private file prefix).
mod common;

#[path = "../bench/rsspeer.rs"]
mod rsspeer;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::lab::{worker_counter, RVSADM};
use common::{wait_until, Daemon, TempDir};
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use rsspeer::Peer;
use rvs::dpdk::{Eal, Mempool};

const RVSD_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const GW_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
const GW: &str = "10.9.0.254";
const LAN: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    FullNat,
    Dr,
    Tun,
    Nat,
}

impl Mode {
    fn index(self) -> u8 {
        match self {
            Mode::FullNat => 1,
            Mode::Dr => 2,
            Mode::Tun => 3,
            Mode::Nat => 4,
        }
    }
    fn vip(self) -> Ipv4Addr {
        Ipv4Addr::new(10, 9, 1, self.index())
    }
    fn rs(self) -> Ipv4Addr {
        Ipv4Addr::new(10, 9, 0, 10 + self.index())
    }
    fn rs_mac(self) -> [u8; 6] {
        [2, 0, 0, 0, 1, self.index()]
    }
    fn rport(self) -> u16 {
        match self {
            Mode::FullNat | Mode::Nat => 8080,
            Mode::Dr | Mode::Tun => 80,
        }
    }
    fn flag(self) -> &'static str {
        match self {
            Mode::FullNat => "-b",
            Mode::Dr => "-g",
            Mode::Tun => "-i",
            Mode::Nat => "-m",
        }
    }
    fn all() -> [Mode; 4] {
        [Mode::FullNat, Mode::Dr, Mode::Tun, Mode::Nat]
    }
}

/// The test process's EAL and mbuf pool, made once.
fn eal() -> &'static Mempool {
    static POOL: OnceLock<&'static Mempool> = OnceLock::new();
    POOL.get_or_init(|| {
        let args: Vec<String> = [
            "--no-huge",
            "--no-pci",
            "--no-telemetry",
            "-m",
            "256",
            "--lcores=0@0",
            &format!("--file-prefix=rvs-rss-test-{}", std::process::id()),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        Box::leak(Box::new(Eal::init("rvs-rss-test", &args).expect("EAL")));
        Box::leak(Box::new(
            Mempool::new_pktmbuf("rss_peer", 16383, 256, 2176, 0).expect("pool"),
        ))
    })
}

/// One test at a time: the peer's EAL polls from the test's thread.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static M: Mutex<()> = Mutex::new(());
    M.lock().unwrap_or_else(|p| p.into_inner())
}

struct Run {
    workers: usize,
    rss: &'static str,
    modes: &'static [Mode],
    flows: u16,
    /// Lines added to each service (`-p 60 -M 255.255.0.0`).
    svc_opts: &'static str,
    /// Flow k's client address and port.
    client: fn(u16) -> (Ipv4Addr, u16),
    /// The services' port: 80, or 0 (persistent port-zero services: the
    /// clients' even ports go to 80, their odd ones to 443).
    vport: u16,
}

impl Run {
    /// `flows` handshakes per mode from `client`'s clients to port 80 of
    /// services without options.
    fn plain(workers: usize, rss: &'static str, modes: &'static [Mode], flows: u16) -> Run {
        Run {
            workers,
            rss,
            modes,
            flows,
            svc_opts: "",
            client,
            vport: 80,
        }
    }

    /// The port a client port's flow goes to.
    fn dport(&self, cport: u16) -> u16 {
        match (self.vport, cport % 2) {
            (0, 1) => 443,
            (0, _) => 80,
            (p, _) => p,
        }
    }
}

/// What the peer saw, and rvsd's summary.
struct Seen {
    summary: String,
    log: String,
    /// Per mode: flows whose SYN reached the server, whose SYN-ACK reached
    /// the client (FULLNAT, NAT), whose ACK reached the server.
    syns: Vec<HashSet<(Ipv4Addr, u16)>>,
    synacks: Vec<HashSet<(Ipv4Addr, u16)>>,
    acks: Vec<HashSet<(Ipv4Addr, u16)>>,
    /// Each SYN's client and the server (by its MAC's last two bytes) it
    /// reached.
    servers: Vec<(Ipv4Addr, [u8; 2])>,
}

fn client(k: u16) -> (Ipv4Addr, u16) {
    (
        Ipv4Addr::new(172, 16, (k / 200) as u8, (k % 200) as u8 + 1),
        10_000 + k,
    )
}

fn tcp_frame(
    macs: ([u8; 6], [u8; 6]),
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
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
    b.write(&mut f, if syn { &[] } else { b"GET" }).unwrap();
    f
}

/// A TCP segment's addresses and ports and its SYN and ACK flags.
struct Seg {
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    syn: bool,
    ack: bool,
}

/// The TCP segment in an IPv4 frame, or inside an IPIP packet.
fn tcp_of(f: &[u8]) -> Option<Seg> {
    let p = SlicedPacket::from_ethernet(f).ok()?;
    let (ip, payload_tunnel) = match &p.net {
        Some(NetSlice::Ipv4(v4)) => (v4.header(), v4.header().protocol().0 == 4),
        _ => return None,
    };
    if payload_tunnel {
        let inner = SlicedPacket::from_ip(&f[14 + ip.slice().len()..]).ok()?;
        let Some(NetSlice::Ipv4(i4)) = &inner.net else {
            return None;
        };
        let Some(TransportSlice::Tcp(t)) = &inner.transport else {
            return None;
        };
        return Some(Seg {
            src: (i4.header().source_addr(), t.source_port()),
            dst: (i4.header().destination_addr(), t.destination_port()),
            syn: t.syn(),
            ack: t.ack(),
        });
    }
    let Some(TransportSlice::Tcp(t)) = &p.transport else {
        return None;
    };
    Some(Seg {
        src: (ip.source_addr(), t.source_port()),
        dst: (ip.destination_addr(), t.destination_port()),
        syn: t.syn(),
        ack: t.ack(),
    })
}

fn drive(tag: &str, run: &Run) -> Seen {
    let pool = eal();
    static NEXT: Mutex<usize> = Mutex::new(0);
    let index = {
        let mut n = NEXT.lock().unwrap();
        *n += 1;
        *n
    };
    let dir = TempDir::new(tag);
    let sock = dir.path("peer.sock");
    let mut peer = Peer::open(index, &sock, run.workers as u16, pool);

    let lcores = ["0@0", "1@0", "2@1", "3@0", "4@1"][..=run.workers].join(",");
    let list: Vec<String> = (1..=run.workers).map(|w| w.to_string()).collect();
    let mut cfg = format!(
        "[eal]\nargs = [\"--no-huge\", \"--no-telemetry\", \"-m\", \"256\", \"--lcores={lcores}\", \"--file-prefix=rvs-rss-{}-{index}\"]\n\
         [dataplane]\nworkers = [{}]\nconns = 8192\n\
         [[port]]\nname = \"lan\"\ndevargs = \"net_memif{index},role=client,socket={},id=0,socket-abstract=no\"\n\
         queues = {}\nrss = \"{}\"\nmac = \"02:00:00:00:00:01\"\naddresses = [\"{LAN}/24\"]\n\
         [[route]]\nprefix = \"172.0.0.0/8\"\nvia = \"{GW}\"\nport = \"lan\"\n\
         [[neighbour]]\nip = \"{GW}\"\nmac = \"02:00:00:00:00:fe\"\nport = \"lan\"\n",
        std::process::id(),
        list.join(", "),
        sock.display(),
        run.workers,
        run.rss
    );
    let mut rules = String::new();
    for m in Mode::all() {
        let _ = write!(
            cfg,
            "[[neighbour]]\nip = \"{}\"\nmac = \"{}\"\nport = \"lan\"\n",
            m.rs(),
            m.rs_mac()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        );
    }
    for m in run.modes {
        let _ = writeln!(
            rules,
            "-A -t {}:{} -s rr {}",
            m.vip(),
            run.vport,
            run.svc_opts
        );
        let _ = writeln!(
            rules,
            "-a -t {}:{} -r {}:{} {}",
            m.vip(),
            run.vport,
            m.rs(),
            m.rport(),
            m.flag()
        );
        if !run.svc_opts.is_empty() {
            // A second server, so persistence has a choice to keep.
            let other = Ipv4Addr::new(10, 9, 0, 20 + m.index());
            let _ = writeln!(
                rules,
                "-a -t {}:{} -r {other}:{} {}",
                m.vip(),
                run.vport,
                m.rport(),
                m.flag()
            );
            let _ = write!(
                cfg,
                "[[neighbour]]\nip = \"{other}\"\nmac = \"02:00:00:00:02:{:02x}\"\nport = \"lan\"\n",
                m.index()
            );
        }
    }
    let socket = dir.path("rvsd.sock");
    let rules_path = dir.path("rules");
    fs::write(&rules_path, &rules).unwrap();
    let _ = write!(
        cfg,
        "[ctl]\nsocket = \"{}\"\nrules = \"{}\"\n[metrics]\nlisten = \"off\"\n",
        socket.display(),
        rules_path.display()
    );
    let config = dir.path("rvsd.toml");
    fs::write(&config, cfg).unwrap();
    let mut daemon = Daemon::start(&dir, &[], &config);
    let up = wait_until(Duration::from_secs(30), || {
        // The memif handshake is served from this thread's EAL.
        peer.poll(|_, _| {});
        daemon.has_exited()
            || (peer.link_up()
                && Command::new(RVSADM)
                    .args(["-Ln"])
                    .env("RVS_SOCKET", &socket)
                    .output()
                    .is_ok_and(|o| {
                        String::from_utf8_lossy(&o.stdout).contains(&format!(
                            "{}:{}",
                            run.modes[0].vip(),
                            run.vport
                        ))
                    }))
    });
    assert!(
        up && !daemon.has_exited(),
        "rvsd did not come up:\n{}",
        daemon.log()
    );

    let n = run.modes.len();
    let mut seen = Seen {
        summary: String::new(),
        log: String::new(),
        syns: vec![HashSet::new(); n],
        synacks: vec![HashSet::new(); n],
        acks: vec![HashSet::new(); n],
        servers: Vec::new(),
    };
    let mode_of = |vip: Ipv4Addr| run.modes.iter().position(|m| m.vip() == vip);
    let rs_mode = |mac: &[u8]| {
        run.modes.iter().position(|m| {
            mac[..5] == [2, 0, 0, 0, 1] && mac[5] == m.index()
                || mac[..5] == [2, 0, 0, 0, 2] && mac[5] == m.index()
        })
    };
    for m in run.modes {
        for k in 0..run.flows {
            let c = (run.client)(k);
            let f = tcp_frame(
                (GW_MAC, RVSD_MAC),
                c,
                (m.vip(), run.dport(c.1)),
                true,
                false,
            );
            assert!(peer.send(pool, &f), "pool");
        }
        peer.flush();
    }
    let expected_acks = run.flows as usize;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut replies: Vec<Vec<u8>> = Vec::new();
    while Instant::now() < deadline {
        replies.clear();
        peer.poll(|_, f| {
            let Some(Seg { src, dst, syn, ack }) = tcp_of(f) else {
                return;
            };
            if let Some(mi) = rs_mode(&f[0..6]) {
                let m = run.modes[mi];
                // At a server, from the client (DR, TUN, NAT) or from the
                // local address and port standing for it (FULLNAT): one
                // key per flow either way.
                let key = src;
                if syn && !ack {
                    seen.syns[mi].insert(key);
                    seen.servers.push((src.0, [f[4], f[5]]));
                    if matches!(m, Mode::FullNat | Mode::Nat) {
                        replies.push(tcp_frame(
                            (f[0..6].try_into().unwrap(), RVSD_MAC),
                            dst,
                            src,
                            true,
                            true,
                        ));
                    }
                } else if ack && !syn {
                    seen.acks[mi].insert(key);
                }
            } else if f[0..6] == GW_MAC {
                // At a client: a server's answer through rvsd.
                if let Some(mi) = mode_of(src.0) {
                    if syn && ack && seen.synacks[mi].insert(dst) {
                        replies.push(tcp_frame((GW_MAC, RVSD_MAC), dst, src, false, true));
                    }
                }
            }
        });
        for r in &replies {
            assert!(peer.send(pool, r), "pool");
        }
        peer.flush();
        // DR and TUN: the client's ACK once its SYN arrived.
        for (mi, m) in run.modes.iter().enumerate() {
            if matches!(m, Mode::Dr | Mode::Tun) && seen.synacks[mi].len() < seen.syns[mi].len() {
                let new: Vec<_> = seen.syns[mi]
                    .difference(&seen.synacks[mi])
                    .copied()
                    .collect();
                for c in new {
                    seen.synacks[mi].insert(c);
                    let f = tcp_frame(
                        (GW_MAC, RVSD_MAC),
                        c,
                        (m.vip(), run.dport(c.1)),
                        false,
                        true,
                    );
                    assert!(peer.send(pool, &f), "pool");
                }
                peer.flush();
            }
        }
        if seen.acks.iter().all(|a| a.len() >= expected_acks) {
            break;
        }
    }
    seen.log = daemon.log();
    let done = daemon.stop();
    assert!(
        done.status.success(),
        "rvsd: {}\n{}",
        done.stdout,
        done.stderr
    );
    seen.summary = done.stdout;
    drop(peer);
    for (mi, m) in run.modes.iter().enumerate() {
        assert_eq!(
            (
                seen.syns[mi].len(),
                seen.synacks[mi].len(),
                seen.acks[mi].len()
            ),
            (expected_acks, expected_acks, expected_acks),
            "{m:?}: handshakes incomplete\n{}\n{}",
            seen.summary,
            seen.log
        );
    }
    seen
}

/// A worker counter of the exit summary (a redirect reason's, ...),
/// summed over the workers.
fn redirects(s: &str, workers: usize, name: &str) -> u64 {
    (0..workers).map(|w| worker_counter(s, w, name)).sum()
}

fn assert_every_worker_received(s: &Seen, workers: usize) {
    for w in 0..workers {
        assert!(
            worker_counter(&s.summary, w, "rx") > 0,
            "worker {w} received nothing: RSS did not spread\n{}",
            s.summary
        );
    }
}

#[test]
fn two_workers_with_rss_forward_fullnat_dr_and_tun_both_ways_and_nothing_crosses() {
    let _s = serial();
    let s = drive(
        "rss2",
        &Run::plain(2, "software", &[Mode::FullNat, Mode::Dr, Mode::Tun], 300),
    );
    assert!(
        s.log.contains("port lan: RSS (a software peer's, symmetric key, 128-entry table over 2 queues) decides each flow's worker"),
        "{}",
        s.log
    );
    assert_every_worker_received(&s, 2);
    assert_eq!(redirects(&s.summary, 2, "redirected"), 0, "{}", s.summary);
    // Each client's ACK took the express lane at the worker RSS put its
    // flow on.
    assert_eq!(
        redirects(&s.summary, 2, "express"),
        3 * 300,
        "{}",
        s.summary
    );
    for r in ["no_rss", "client_owned", "derived", "sync", "nat_reply"] {
        assert_eq!(redirects(&s.summary, 2, r), 0, "{r}\n{}", s.summary);
    }
}

#[test]
fn four_workers_with_rss_forward_fullnat_dr_and_tun_both_ways_and_nothing_crosses() {
    let _s = serial();
    let s = drive(
        "rss4",
        &Run::plain(4, "software", &[Mode::FullNat, Mode::Dr, Mode::Tun], 300),
    );
    assert_every_worker_received(&s, 4);
    assert_eq!(redirects(&s.summary, 4, "redirected"), 0, "{}", s.summary);
}

#[test]
fn nat_conns_stay_where_rss_put_the_client_and_only_replies_cross_counted_nat_reply() {
    let _s = serial();
    let s = drive("rssnat", &Run::plain(2, "software", &[Mode::Nat], 200));
    assert_every_worker_received(&s, 2);
    // A reply crosses when the device hashes it to another queue than its
    // client's packets. (With the symmetric key, whose 16-bit period folds
    // a tuple's words together, that is all replies or none of a server's;
    // here all.)
    let spread = rvs::rss::Spread::software(2);
    let q = |src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)| {
        spread.queue(
            &rvs::rss::RssTuple {
                proto: 6,
                src: src.0.into(),
                dst: dst.0.into(),
                sport: src.1,
                dport: dst.1,
            },
            false,
        )
    };
    let want = (0..200)
        .map(client)
        .filter(|&c| q(c, (Mode::Nat.vip(), 80)) != q((Mode::Nat.rs(), 8080), c))
        .count() as u64;
    let crossed = redirects(&s.summary, 2, "nat_reply");
    assert!(want > 0);
    assert_eq!(crossed, want, "{}", s.summary);
    assert_eq!(
        crossed,
        redirects(&s.summary, 2, "redirected"),
        "{}",
        s.summary
    );
    for r in ["no_rss", "client_owned", "derived"] {
        assert_eq!(redirects(&s.summary, 2, r), 0, "{r}\n{}", s.summary);
    }
}

#[test]
fn without_rss_the_ring_carries_flows_to_their_owner_and_counts_it() {
    let _s = serial();
    // memif has no RSS of its own: "device" finds none.
    let s = drive(
        "rssnone",
        &Run::plain(2, "device", &[Mode::FullNat, Mode::Dr, Mode::Tun], 200),
    );
    assert!(
        s.log.contains("port lan: no RSS rvs can follow"),
        "{}",
        s.log
    );
    let ring = redirects(&s.summary, 2, "no_rss");
    assert!(ring > 0, "{}", s.summary);
    // Every client's ACK (the handshake's answer, which makes its conn
    // ESTABLISHED) took the express lane at its conn's worker, whether it
    // came in there or over the ring.
    assert_eq!(
        redirects(&s.summary, 2, "express"),
        3 * 200,
        "{}",
        s.summary
    );
    assert_eq!(
        ring,
        redirects(&s.summary, 2, "redirected"),
        "{}",
        s.summary
    );
}

/// Persistence with -M 255.255.0.0 over two workers on RSS: one server
/// per /16 whichever worker's queue its clients land on.
fn persistence_across_workers(tag: &str, vport: u16) {
    let _s = serial();
    let s = drive(
        tag,
        &Run {
            svc_opts: "-p 60 -M 255.255.0.0",
            // A lone client of 172.15/16 first: one worker's rr turns
            // once more than the other's, so per-worker templates would
            // split the /16s that follow.
            client: |k| match k {
                0 => (Ipv4Addr::new(172, 15, 0, 1), 20_000),
                _ => {
                    let j = k - 1;
                    (
                        Ipv4Addr::new(
                            172,
                            16 + (j % 40) as u8,
                            ((j / 40) % 3) as u8,
                            (j / 120) as u8 + 1,
                        ),
                        20_000 + k,
                    )
                }
            },
            vport,
            ..Run::plain(2, "software", &[Mode::Dr], 361)
        },
    );
    // Forty /16s, three /24s each, their clients interleaved, RSS
    // spreading them over both workers' queues: one server per /16.
    assert_every_worker_received(&s, 2);
    let mut by_net: std::collections::HashMap<u8, HashSet<[u8; 2]>> = Default::default();
    for (c, rs) in &s.servers {
        by_net.entry(c.octets()[1]).or_default().insert(*rs);
    }
    assert_eq!(by_net.len(), 41);
    assert!(by_net.values().all(|rs| rs.len() == 1), "{by_net:?}");
    let used: HashSet<_> = by_net.values().flatten().collect();
    assert_eq!(used.len(), 2, "rr gave the /16s both servers: {by_net:?}");
}

#[test]
fn persistence_with_a_16_bit_netmask_keeps_a_whole_net_on_one_server_across_workers() {
    persistence_across_workers("rsspersist", 80);
}

/// Port zero (PCC): a client's conns to ports 80 and 443 share its net's
/// template.
#[test]
fn port_zero_persistence_with_a_16_bit_netmask_holds_across_workers_and_ports() {
    persistence_across_workers("rsspcc", 0);
}

/// rvsd is memif's server here, with no peer: a peer would be mid-handshake
/// when rvsd stops, and DPDK 22.11's memif server aborts its own process
/// (`eal_intr_thread_main`: epoll_ctl on the closed fd) when the client goes
/// then, so the test process would be the one to die.
#[test]
fn flow_steering_on_a_device_without_rte_flow_stops_rvsd_with_the_devices_reason() {
    let _s = serial();
    let dir = TempDir::new("rssflow");
    let sock = dir.path("rvsd-memif.sock");
    let index = 90;
    let cfg = format!(
        "[eal]\nargs = [\"--no-huge\", \"--no-telemetry\", \"-m\", \"256\", \"--lcores=0@0,1@0,2@1\", \"--file-prefix=rvs-rss-{}-{index}\"]\n\
         [dataplane]\nworkers = [1, 2]\n\
         [[port]]\nname = \"lan\"\ndevargs = \"net_memif{index},role=server,socket={},id=0,socket-abstract=no\"\n\
         queues = 2\nflow_steering = true\naddresses = [\"{LAN}/24\"]\n\
         [ctl]\nsocket = \"{}\"\n",
        std::process::id(),
        sock.display(),
        dir.path("rvsd.sock").display()
    );
    let config = dir.path("rvsd.toml");
    fs::write(&config, cfg).unwrap();
    let mut daemon = Daemon::start(&dir, &[], &config);
    let exited = wait_until(Duration::from_secs(30), || daemon.has_exited());
    let log = daemon.log();
    assert!(exited, "rvsd runs with flow_steering on memif:\n{log}");
    let done = daemon.stop();
    assert_eq!(done.status.code(), Some(1), "{log}");
    assert!(
        log.contains("port lan: flow_steering: the device refuses the rule"),
        "{log}"
    );
}
