//! The first dataplane numbers, on net_null under real EAL (no hugepages):
//!
//! 1. bare loop: rx burst from net_null → tx burst to net_null, nothing else
//!    (the ceiling of rvs's worker loop on this machine);
//! 2. echo pipeline: ICMP echo requests built in mbufs → rvs's network stack
//!    (parse, checksum checks, reply in place, route, neighbour) → tx burst;
//! 3. an established FULLNAT TCP flow: packets built in mbufs → the
//!    load-balancing stage (conn lookup, state, stats, rewrite) → route →
//!    tx burst.
//!
//! Run: `cargo bench --bench bareloop` (add `-- --seconds N` to change the
//! measuring time per case, default 3). Prints Mpps and ns/packet.
//!
//! The FULLNAT case runs three times: alone, with a thread scraping the
//! Prometheus exporter (over these same worker counters and services) in
//! a tight loop, and alone again, so the cost of scrapes to a worker shows
//! against the run-to-run spread.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rvs::counters::WorkerCounters;
use rvs::dataplane::lb::Lb;
use rvs::dpdk::{Burst, Eal, Mbuf, Mempool, Port, PortSetup, TxQueue};
use rvs::ipvs::proto::Timeouts;
use rvs::ipvs::{DestConfig, FwdMethod, Protocol, ServiceConfig, ServiceKey, ServiceTable};
use rvs::metrics::{MetricsServer, MetricsSources, WorkerSource};
use rvs::netstack::AddrKind;
use rvs::netstack::{Iface, IfaceAddr, NeighUpdate, NetConfig, Output, Stack};
use rvs::packet::Packet;
use rvs::wire::MacAddr;

const BURST: usize = 32;

struct NullOut<'a> {
    tx: TxQueue,
    burst: Burst,
    pool: &'a Mempool,
    sent: u64,
}

impl NullOut<'_> {
    fn flush(&mut self) {
        self.sent += self.tx.tx(&mut self.burst) as u64;
        self.burst.drain().for_each(drop);
    }
}

impl Output<Mbuf> for NullOut<'_> {
    fn send(&mut self, _port: u16, pkt: Mbuf) {
        if let Err(m) = self.burst.push(pkt) {
            drop(m);
        }
        if self.burst.len() >= BURST {
            self.flush();
        }
    }
    fn alloc(&mut self) -> Option<Mbuf> {
        Mbuf::alloc(self.pool)
    }
}

fn echo_request(dst_mac: MacAddr) -> Vec<u8> {
    let mut buf = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], dst_mac.0)
        .ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
        .icmpv4_echo_request(7, 1)
        .write(&mut buf, &[0u8; 18])
        .expect("build echo request");
    buf
}

fn report(name: &str, pkts: u64, dt: Duration) {
    let mpps = pkts as f64 / dt.as_secs_f64() / 1e6;
    println!(
        "{name:<40} {pkts:>12} packets in {:>6.2} s  {mpps:>8.2} Mpps  {:>7.1} ns/packet",
        dt.as_secs_f64(),
        dt.as_nanos() as f64 / pkts.max(1) as f64
    );
}

fn main() {
    let mut seconds = 3u64;
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--seconds") {
        seconds = args
            .get(i + 1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(seconds);
    }
    let eal_args: Vec<String> = [
        "--no-huge",
        "--no-shconf",
        "--no-pci",
        "-m",
        "512",
        "-l",
        "0",
        "--log-level=lib.eal:error",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let _eal = match Eal::init("bareloop", &eal_args) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("bareloop: {e}");
            std::process::exit(1);
        }
    };
    let pool = Mempool::new_pktmbuf("bench", 16383, 256, 2176, 0).expect("pool");
    let setup = |devargs| PortSetup {
        devargs,
        rx_queues: 1,
        tx_queues: 1,
        rx_descriptors: 1024,
        tx_descriptors: 1024,
        promiscuous: false,
        mtu: None,
        mac: None,
    };
    let mut null = Port::open(&setup("net_null0,size=64"), &pool).expect("net_null0");
    null.start().expect("start");
    let run_for = Duration::from_secs(seconds);
    println!(
        "bareloop: {} s per case, burst {BURST}, one lcore, {}",
        seconds,
        rvs::dpdk::runtime_version()
    );

    // 1. The bare loop.
    let mut rxq = null.rx_queue(0).expect("rxq");
    let mut txq = null.tx_queue(0).expect("txq");
    let mut b = Burst::default();
    let (mut pkts, start) = (0u64, Instant::now());
    while start.elapsed() < run_for {
        for _ in 0..1024 {
            rxq.rx(&mut b, BURST);
            pkts += txq.tx(&mut b) as u64;
            b.drain().for_each(drop);
        }
    }
    report("bare loop rx->tx (net_null)", pkts, start.elapsed());

    // 2. ICMP echo through the network stack.
    let mac = MacAddr([2, 0, 0, 0, 0, 1]);
    let cfg = NetConfig::new(
        vec![Iface {
            port: null.id(),
            name: "null".into(),
            mac,
            addrs: vec![IfaceAddr {
                addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
                prefix_len: 24,
            }],
            mtu: 1500,
            tx_checksum: false,
        }],
        vec![],
    );
    let counters = Arc::new(WorkerCounters::default());
    let mut stack: Stack<Mbuf> = Stack::new(1024, counters.clone());
    let mut out = NullOut {
        tx: txq,
        burst: Burst::default(),
        pool: &pool,
        sent: 0,
    };
    stack.neighbour(
        &cfg,
        NeighUpdate {
            port: null.id(),
            ip: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
            mac: MacAddr([2, 0, 0, 0, 0, 2]),
        },
        0,
        &mut out,
    );
    let frame = echo_request(mac);
    let (mut pkts, start) = (0u64, Instant::now());
    while start.elapsed() < run_for {
        for _ in 0..1024 {
            for _ in 0..BURST {
                let Some(mut m) = Mbuf::alloc(&pool) else {
                    continue;
                };
                if !m.append(frame.len()) {
                    continue;
                }
                m.data_mut().copy_from_slice(&frame);
                m.set_rx_port(null.id());
                stack.input(&cfg, m, 0, &mut out);
                pkts += 1;
            }
            out.flush();
        }
    }
    let dt = start.elapsed();
    assert_eq!(
        counters.echo_replies.get(),
        pkts,
        "every request must be answered"
    );
    report("echo request->reply pipeline (mbufs)", pkts, dt);
    println!(
        "  replies sent {}, drops {}",
        out.sent,
        counters.total_drops()
    );

    // 3. An established FULLNAT flow through the load-balancing stage.
    let (vip, rs) = (
        Ipv4Addr::new(198, 18, 0, 100),
        Ipv4Addr::new(198, 18, 0, 11),
    );
    let mut table = ServiceTable::new(1);
    let key = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: IpAddr::V4(vip),
        port: 80,
    };
    table
        .add_service(ServiceConfig {
            scheduler: "rr".into(),
            ..ServiceConfig::new(key)
        })
        .expect("service");
    let mut dest = DestConfig::new(IpAddr::V4(rs), 8080);
    dest.fwd = FwdMethod::FullNat;
    table.add_dest(&key, dest).expect("dest");
    let svcs = table.snapshot();
    let net = cfg.with_extra([(IpAddr::V4(vip), AddrKind::Vip)]);
    let timeouts = Timeouts::default();
    stack.neighbour(
        &net,
        NeighUpdate {
            port: null.id(),
            ip: IpAddr::V4(rs),
            mac: MacAddr([2, 0, 0, 0, 0, 0x11]),
        },
        0,
        &mut out,
    );
    let mut lb = Lb::new(0, 1, 1 << 16, counters.clone());
    let tcp_frame = |syn: bool| {
        let mut b = Vec::new();
        let t = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], mac.0)
            .ipv4([198, 18, 0, 2], vip.octets(), 64)
            .tcp(40000, 80, 1000, 64240);
        let (t, payload): (_, &[u8]) = if syn {
            (t.syn(), &[])
        } else {
            (t.ack(1), &[0u8; 6])
        };
        t.write(&mut b, payload).expect("frame");
        b
    };
    let feed = |bytes: &[u8]| {
        let mut m = Mbuf::alloc(&pool)?;
        if !m.append(bytes.len()) {
            return None;
        }
        m.data_mut().copy_from_slice(bytes);
        m.set_rx_port(null.id());
        Some(m)
    };
    if let Some(m) = feed(&tcp_frame(true)) {
        let _ = lb.input(&net, &svcs, &timeouts, m, 0, &mut stack, &mut out);
    }
    out.flush();
    assert_eq!(lb.conns().len(), 1, "the SYN made the conn");
    let data = tcp_frame(false);
    let mut flow = |name: &str| {
        let sent_before = out.sent;
        let (mut pkts, start) = (0u64, Instant::now());
        while start.elapsed() < run_for {
            for _ in 0..1024 {
                for _ in 0..BURST {
                    let Some(m) = feed(&data) else { continue };
                    let _ = lb.input(&net, &svcs, &timeouts, m, 0, &mut stack, &mut out);
                    pkts += 1;
                }
                out.flush();
            }
        }
        let dt = start.elapsed();
        assert_eq!(out.sent - sent_before, pkts, "every packet forwarded");
        report(name, pkts, dt);
        println!("  drops {}", counters.total_drops());
    };
    flow("FULLNAT established flow (mbufs)");
    let sources = MetricsSources {
        workers: vec![WorkerSource {
            index: 0,
            lcore: 0,
            counters: counters.clone(),
        }],
        ports: vec![],
        pools: vec![],
        services: Arc::new(ArcSwap::from_pointee(svcs.clone())),
        dpdk_version: "bench".into(),
        session_log: None,
        announce: None,
        vrrp: None,
    };
    let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), sources).expect("metrics");
    let addr = server.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut scrapes, mut bytes) = (0u64, 0usize);
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut s) = TcpStream::connect(addr) else {
                    continue;
                };
                let _ = write!(s, "GET /metrics HTTP/1.0\r\n\r\n");
                let mut body = Vec::new();
                let _ = s.read_to_end(&mut body);
                scrapes += 1;
                bytes = body.len();
            }
            (scrapes, bytes)
        })
    };
    flow("FULLNAT established flow, scraped in a tight loop");
    stop.store(true, Ordering::Relaxed);
    let (scrapes, bytes) = scraper.join().expect("scraper");
    println!(
        "  {scrapes} scrapes in {:.1} s ({:.0}/s, {bytes} bytes each)",
        run_for.as_secs_f64(),
        scrapes as f64 / run_for.as_secs_f64()
    );
    server.stop();
    flow("FULLNAT established flow (mbufs), again");
    null.stop();
}
