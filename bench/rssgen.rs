//! A multi-queue traffic generator and reflector for `bench/run --scaling`:
//! a software NIC with RSS at the other end of rvsd's net_memif port
//! (`rss = "software"` there; see bench/rsspeer.rs).
//!
//! Clients (10.0.0.0/8, many addresses and ports) send 64-byte UDP
//! datagrams to the VIP, each on the queue RSS picks; what rvsd forwards to
//! a real server (the servers' MAC) is answered in place (addresses, ports
//! and MACs swapped) on the queue RSS picks for the answer; what comes back
//! to a client (the gateway's MAC) is counted and freed. Closed loop: at
//! most `--window` datagrams per queue in flight, so the rate is what
//! rvsd sustains, not what it drops. One generator lcore per group of
//! queues; a FULLNAT answer lands on its flow's queue by construction, so
//! with RSS each lcore answers on its own queues; an answer RSS puts on
//! another lcore's queue (rvsd with the ring, several generator lcores) is
//! counted as misplaced and dropped.
//!
//!   rssgen --socket PATH --queues Q --lcores 0@0,1@2,... --flows N
//!          --seconds S --warmup W
//!
//! prints `rssgen: ... round trips/s R, rvsd forwarded F Mpps, misplaced M`
//! (F = 2 R: each round trip is two packets through rvsd), then serves on
//! until SIGINT, so that rvsd can be stopped first.
#[path = "rsspeer.rs"]
mod rsspeer;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvs::dpdk::{lcore, Burst, Eal, Mbuf, Mempool, RxQueue, TxQueue};
use rvs::packet::Packet;
use rvs::rss::Spread;

const RVSD_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const GW_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
const RS_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const FRAME: usize = 60;

struct Args {
    socket: PathBuf,
    queues: u16,
    lcores: String,
    flows: u32,
    seconds: u64,
    warmup: u64,
    window: usize,
}

fn args() -> Args {
    let mut a = Args {
        socket: PathBuf::from("/tmp/rssgen.sock"),
        queues: 1,
        lcores: "0@0,1@0".into(),
        flows: 1024,
        seconds: 8,
        warmup: 3,
        window: 512,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--socket" => a.socket = v.into(),
            "--queues" => a.queues = v.parse().expect("--queues"),
            "--lcores" => a.lcores = v,
            "--flows" => a.flows = v.parse().expect("--flows"),
            "--seconds" => a.seconds = v.parse().expect("--seconds"),
            "--warmup" => a.warmup = v.parse().expect("--warmup"),
            "--window" => a.window = v.parse().expect("--window"),
            // cargo bench passes --bench.
            "--bench" => {}
            _ => panic!("unknown argument {k}"),
        }
    }
    a
}

/// Flow `k`'s 60-byte UDP datagram client → VIP:80.
fn client_frame(k: u32) -> [u8; FRAME] {
    let mut f = [0u8; FRAME];
    f[0..6].copy_from_slice(&RVSD_MAC);
    f[6..12].copy_from_slice(&GW_MAC);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 1)) + k / 1000);
    let ipb = &mut f[14..34];
    ipb[0] = 0x45;
    ipb[2..4].copy_from_slice(&(46u16).to_be_bytes());
    ipb[8] = 64;
    ipb[9] = 17;
    ipb[12..16].copy_from_slice(&ip.octets());
    ipb[16..20].copy_from_slice(&VIP.octets());
    ip_checksum(&mut f);
    f[34..36].copy_from_slice(&(10_000 + (k % 1000) as u16).to_be_bytes());
    f[36..38].copy_from_slice(&80u16.to_be_bytes());
    f[38..40].copy_from_slice(&26u16.to_be_bytes());
    // UDP checksum 0: none, allowed over IPv4.
    f
}

fn ip_checksum(f: &mut [u8]) {
    f[24] = 0;
    f[25] = 0;
    let mut s = 0u32;
    for c in f[14..34].chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    f[24..26].copy_from_slice(&(!(s as u16)).to_be_bytes());
}

/// A server's answer to the datagram in `f`, in place.
fn reflect(f: &mut [u8]) {
    f[0..6].copy_from_slice(&RVSD_MAC);
    f[6..12].copy_from_slice(&RS_MAC);
    for i in 0..4 {
        f.swap(26 + i, 30 + i);
    }
    for i in 0..2 {
        f.swap(34 + i, 36 + i);
    }
    f[40] = 0;
    f[41] = 0;
    ip_checksum(f);
}

struct Lane {
    queue: u16,
    rx: RxQueue,
    tx: TxQueue,
    flows: Vec<[u8; FRAME]>,
    next: usize,
}

/// What the generator lcores share.
struct Shared {
    pool: Arc<Mempool>,
    spread: Arc<Spread>,
    /// Datagrams sent and not yet back, over all queues, and the most
    /// there may be: replies come back on whichever queue the worker that
    /// forwards them sends on, which with rvsd's ring is not the client's.
    in_flight: AtomicI64,
    window: i64,
    stop: AtomicBool,
    back: AtomicU64,
    misplaced: AtomicU64,
}

fn send_all(tx: &mut TxQueue, b: &mut Burst, stop: &AtomicBool) {
    while !b.is_empty() {
        if tx.tx(b) == 0 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            std::hint::spin_loop();
        }
    }
    for m in b.drain() {
        drop(m);
    }
}

fn run_lanes(mut lanes: Vec<Lane>, sh: Arc<Shared>, queues: u16) -> i32 {
    let mut rxb = Burst::default();
    let mut pend: Vec<Burst> = lanes.iter().map(|_| Burst::default()).collect();
    let mut lane_of = vec![None; usize::from(queues)];
    for (i, l) in lanes.iter().enumerate() {
        lane_of[usize::from(l.queue)] = Some(i);
    }
    let mut idle = 0u32;
    while !sh.stop.load(Ordering::Relaxed) {
        let mut got = 0;
        for li in 0..lanes.len() {
            got += lanes[li].rx.rx(&mut rxb, 32);
            let mut returned = 0;
            for mut m in rxb.drain() {
                let d = m.data_mut();
                if d.len() < 42 {
                    continue;
                }
                if d[0..6] == RS_MAC {
                    // A server's answer goes on the queue RSS picks for it;
                    // one another lcore polls cannot be sent from here.
                    reflect(d);
                    let q = rsspeer::queue_of(&sh.spread, d);
                    match lane_of[usize::from(q)] {
                        Some(to) if !pend[to].is_full() => {
                            let _ = pend[to].push(m);
                        }
                        Some(to) => {
                            send_all(&mut lanes[to].tx, &mut pend[to], &sh.stop);
                            let _ = pend[to].push(m);
                        }
                        None => {
                            sh.misplaced.fetch_add(1, Ordering::Relaxed);
                            sh.in_flight.fetch_sub(1, Ordering::Relaxed);
                        }
                    }
                } else if d[0..6] == GW_MAC {
                    returned += 1;
                }
            }
            if returned > 0 {
                sh.in_flight.fetch_sub(returned, Ordering::Relaxed);
                sh.back.fetch_add(returned as u64, Ordering::Relaxed);
            }
        }
        if got > 0 {
            idle = 0;
        } else {
            // What rvsd dropped never comes back: after a long silence the
            // window opens again rather than stalling.
            idle += 1;
            if idle > 200_000 {
                sh.in_flight.store(0, Ordering::Relaxed);
                idle = 0;
            }
        }
        // Top the window up with new client datagrams, lane by lane.
        for (li, l) in lanes.iter_mut().enumerate() {
            let mut sent = 0;
            while sh.in_flight.load(Ordering::Relaxed) + sent < sh.window
                && !pend[li].is_full()
                && !l.flows.is_empty()
            {
                let Some(mut m) = Mbuf::alloc(&sh.pool) else {
                    break;
                };
                if !m.append(FRAME) {
                    break;
                }
                m.data_mut().copy_from_slice(&l.flows[l.next]);
                l.next = (l.next + 1) % l.flows.len();
                sent += 1;
                let _ = pend[li].push(m);
            }
            sh.in_flight.fetch_add(sent, Ordering::Relaxed);
            send_all(&mut l.tx, &mut pend[li], &sh.stop);
        }
    }
    0
}

fn main() {
    let a = args();
    let eal_args: Vec<String> = [
        "--no-huge".to_string(),
        "--no-pci".into(),
        "--no-telemetry".into(),
        "-m".into(),
        "1024".into(),
        format!("--lcores={}", a.lcores),
        format!("--file-prefix=rssgen-{}", std::process::id()),
        "--log-level=lib.eal:error".into(),
    ]
    .to_vec();
    let _eal = Eal::init("rssgen", &eal_args).expect("EAL");
    let pool = Arc::new(Mempool::new_pktmbuf("rssgen", 65535, 256, 2176, 0).expect("pool"));
    let mut port = rsspeer::memif_server(0, &a.socket, a.queues, &pool);
    println!(
        "rssgen: memif server at {} with {} queues",
        a.socket.display(),
        a.queues
    );
    let t0 = Instant::now();
    while !port.link().up {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "rvsd never connected"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let spread = Arc::new(Spread::software(a.queues));
    let workers: Vec<u32> = (0..128)
        .filter(|&l| l != lcore::main_lcore() && lcore::is_enabled(l))
        .collect();
    assert!(
        !workers.is_empty(),
        "--lcores needs a generator lcore besides the main one"
    );
    let mut groups: Vec<Vec<Lane>> = (0..workers.len().min(usize::from(a.queues)))
        .map(|_| Vec::new())
        .collect();
    let mut per_queue: Vec<Vec<[u8; FRAME]>> = vec![Vec::new(); usize::from(a.queues)];
    for k in 0..a.flows {
        let f = client_frame(k);
        let q = rsspeer::queue_of(&spread, &f);
        per_queue[usize::from(q)].push(f);
    }
    for (q, flows) in per_queue.into_iter().enumerate() {
        let q = q as u16;
        let g = usize::from(q) % groups.len();
        groups[g].push(Lane {
            queue: q,
            rx: port.rx_queue(q).expect("rx queue"),
            tx: port.tx_queue(q).expect("tx queue"),
            flows,
            next: 0,
        });
    }
    let sh = Arc::new(Shared {
        pool: pool.clone(),
        spread: spread.clone(),
        in_flight: AtomicI64::new(0),
        window: (a.window * usize::from(a.queues)) as i64,
        stop: AtomicBool::new(false),
        back: AtomicU64::new(0),
        misplaced: AtomicU64::new(0),
    });
    let mut launched = Vec::new();
    for (lanes, &lc) in groups.into_iter().zip(&workers) {
        let (sh, queues) = (sh.clone(), a.queues);
        lcore::launch(lc, move || run_lanes(lanes, sh, queues)).expect("launch");
        launched.push(lc);
    }
    std::thread::sleep(Duration::from_secs(a.warmup));
    let (b0, t0) = (sh.back.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(Duration::from_secs(a.seconds));
    let (b1, t1) = (sh.back.load(Ordering::Relaxed), Instant::now());
    let rt = (b1 - b0) as f64 / (t1 - t0).as_secs_f64();
    println!(
        "rssgen: queues {} lcores {} flows {}: round trips/s {:.0}, rvsd forwarded {:.3} Mpps, misplaced {}",
        a.queues,
        workers.len(),
        a.flows,
        rt,
        2.0 * rt / 1e6,
        sh.misplaced.load(Ordering::Relaxed)
    );
    // Serving on until told to stop: rvsd must leave the memif first, as
    // DPDK's memif client can fault when the server goes from under a
    // polling worker.
    let signalled = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, signalled.clone()).expect("signal handler");
    }
    while !signalled.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
    }
    sh.stop.store(true, Ordering::Relaxed);
    for lc in launched {
        lcore::wait(lc);
    }
    port.stop();
}
