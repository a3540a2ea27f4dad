//! Connection table rates and memory, at 1 M and 10 M entries, on one core:
//!
//! - insert: `ConnTable::insert` of new NAT conns (dest bound, both tuples indexed,
//!   timer filed);
//! - lookup_in / lookup_out: hits, in random order, one at a time;
//! - on_packet: a TCP ACK on a random conn (state step, dest counts, timer);
//! - expire: every conn due, removed by `expire` in budgets of 1024;
//! - bytes/conn: slab + index + wheel from their capacities, and the
//!   resident-set growth (/proc/self/statm) from before the table was made
//!   to after it was filled.
//!
//! And conn lifecycles on shared dests: each of one, then two, workers
//! (threads, each with its own table, as rvsd's) opens NAT conns to the
//! same four dests, moves each to ESTABLISHED and ends it, folding its
//! dests' counts every 1024 conns as its millisecond's poll would: what
//! counting a conn on its dest costs a worker while another counts on the
//! same dests (`dest.rs`).
//!
//! Run: `cargo bench --bench conntable` (`-- --quick` for 1 M only and fewer
//! lookups; `-- --lifecycles` for the lifecycles alone).
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use rvs::ipvs::proto::{tcp_flags, IPPROTO_TCP};
use rvs::ipvs::{Conn, ConnId, ConnTable, Dest, DestConfig, Direction, FwdMethod, Timeouts, Tuple};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 1);
const VPORT: u16 = 80;
const DPORT: u16 = 8080;

/// Conn `i`'s client: 4096 ports per address.
fn client(i: u64) -> (IpAddr, u16) {
    let a = 0x0a00_0000u32.wrapping_add((i >> 12) as u32);
    (IpAddr::V4(Ipv4Addr::from(a)), 1024 + (i & 0xfff) as u16)
}

fn dest_addr(i: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1 + (i % 4) as u8))
}

fn in_tuple(i: u64) -> Tuple {
    let (c, p) = client(i);
    Tuple {
        proto: IPPROTO_TCP,
        saddr: c,
        sport: p,
        daddr: IpAddr::V4(VIP),
        dport: VPORT,
    }
}

fn out_tuple(i: u64) -> Tuple {
    let (c, p) = client(i);
    Tuple {
        proto: IPPROTO_TCP,
        saddr: dest_addr(i),
        sport: DPORT,
        daddr: c,
        dport: p,
    }
}

/// Conn `i`: its client to the VIP, NAT to one of the four `dests`
/// (the conn, and its dest to insert it with).
fn nat_conn(i: u64, dests: &[Arc<Dest>]) -> (Conn, Option<&Arc<Dest>>) {
    let c = Conn::new(
        IPPROTO_TCP,
        client(i),
        (IpAddr::V4(VIP), VPORT),
        DPORT,
        FwdMethod::Masq,
    );
    (c, Some(&dests[(i % 4) as usize]))
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        // xorshift64*, scaled to 0..n by a multiply instead of a division.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((u128::from(x) * u128::from(n)) >> 64) as u64
    }
}

fn rss_bytes() -> u64 {
    // statm's second field is resident pages; 4 KiB pages on the machines
    // this runs on.
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

fn rate(n: u64, secs: f64) -> String {
    format!("{:.1} M/s", n as f64 / secs / 1e6)
}

struct Row {
    n: u64,
    insert: String,
    lookup_in: String,
    lookup_out: String,
    on_packet: String,
    expire: String,
    bytes: f64,
    rss: f64,
}

fn run(n: u64, lookups: u64) -> Row {
    let dests: Vec<Arc<Dest>> = (0..4)
        .map(|i| {
            let mut c = DestConfig::new(dest_addr(i), DPORT);
            c.fwd = FwdMethod::Masq;
            Arc::new(Dest::new(&c, 1))
        })
        .collect();
    let rss0 = rss_bytes();
    let mut t = ConnTable::with_capacity(n as usize);
    let now = 1_000_000;

    let start = Instant::now();
    for i in 0..n {
        let (c, d) = nat_conn(i, &dests);
        if t.insert(c, d, now).is_err() {
            break;
        }
    }
    let insert = rate(n, start.elapsed().as_secs_f64());
    assert_eq!(t.len() as u64, n, "the table took every conn");
    let rss = rss_bytes().saturating_sub(rss0) as f64 / n as f64;
    let bytes = t.memory_bytes() as f64 / n as f64;

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut hits = 0u64;
    let start = Instant::now();
    for _ in 0..lookups {
        hits += u64::from(black_box(t.lookup_in(&in_tuple(rng.below(n)))).is_some());
    }
    let lookup_in = rate(lookups, start.elapsed().as_secs_f64());
    assert_eq!(hits, lookups, "every lookup_in hits");

    let mut hits = 0u64;
    let start = Instant::now();
    for _ in 0..lookups {
        hits += u64::from(black_box(t.lookup_out(&out_tuple(rng.below(n)))).is_some());
    }
    let lookup_out = rate(lookups, start.elapsed().as_secs_f64());
    assert_eq!(hits, lookups, "every lookup_out hits");

    let timeouts = Timeouts::new();
    let ids: Vec<ConnId> = t.iter().map(|(id, _)| id).collect();
    let packets = lookups / 2;
    let start = Instant::now();
    for k in 0..packets {
        let id = ids[rng.below(n) as usize];
        black_box(t.on_packet(
            id,
            Direction::Input,
            tcp_flags::ACK,
            now + k / 1000,
            &timeouts,
        ));
    }
    let on_packet = rate(packets, start.elapsed().as_secs_f64());
    drop(ids);

    // Past every conn's timer, ESTABLISHED's 900 s included.
    let later = now + 1_000_000;
    let start = Instant::now();
    let mut gone = 0u64;
    loop {
        let k = t.expire(later, 1024);
        if k == 0 {
            break;
        }
        gone += k as u64;
    }
    let expire = rate(gone, start.elapsed().as_secs_f64());
    assert_eq!((gone, t.len()), (n, 0), "every conn expired");
    assert!(dests
        .iter()
        .all(|d| d.activeconns() == 0 && d.inactconns() == 0));

    Row {
        n,
        insert,
        lookup_in,
        lookup_out,
        on_packet,
        expire,
        bytes,
        rss,
    }
}

/// Conn lifecycles per second per worker, `workers` threads each making
/// `per` conns on the four shared dests.
fn lifecycles(workers: usize, per: u64) -> f64 {
    let dests: Arc<Vec<Arc<Dest>>> = Arc::new(
        (0..4)
            .map(|i| {
                let mut c = DestConfig::new(dest_addr(i), DPORT);
                c.fwd = FwdMethod::Masq;
                Arc::new(Dest::new(&c, workers))
            })
            .collect(),
    );
    let start = Arc::new(std::sync::Barrier::new(workers));
    let threads: Vec<_> = (0..workers)
        .map(|w| {
            let (dests, start) = (dests.clone(), start.clone());
            std::thread::spawn(move || {
                let mut t = ConnTable::for_worker(w, 4096);
                let timeouts = Timeouts::new();
                let mut ids = Vec::with_capacity(1024);
                let now = 1_000_000;
                start.wait();
                let began = Instant::now();
                let mut k = (w as u64) << 32;
                for _ in 0..per / 1024 {
                    for _ in 0..1024 {
                        let (c, d) = nat_conn(k, &dests);
                        ids.push(t.insert(c, d, now).expect("room"));
                        k += 1;
                    }
                    for &id in &ids {
                        t.on_packet(id, Direction::Input, tcp_flags::SYN, now, &timeouts);
                        t.on_packet(id, Direction::Input, tcp_flags::ACK, now, &timeouts);
                    }
                    for id in ids.drain(..) {
                        t.remove(id);
                    }
                    t.fold_dest_counts();
                }
                (per / 1024 * 1024) as f64 / began.elapsed().as_secs_f64()
            })
        })
        .collect();
    let rates: Vec<f64> = threads
        .into_iter()
        .map(|h| h.join().expect("worker"))
        .collect();
    assert!(dests
        .iter()
        .all(|d| d.activeconns() == 0 && d.inactconns() == 0));
    rates.iter().sum::<f64>() / workers as f64
}

fn main() {
    if std::env::args().any(|a| a == "--lifecycles") {
        println!("conntable: conn lifecycles (open, ESTABLISHED, end) on 4 shared NAT dests");
        println!();
        println!("| workers | lifecycles/s per worker | per worker against one |");
        println!("| --- | --- | --- |");
        let per = 4_000_000;
        let one = lifecycles(1, per);
        for workers in [1, 2] {
            let r = if workers == 1 {
                one
            } else {
                lifecycles(workers, per)
            };
            println!("| {workers} | {:.2} M | {:.2} |", r / 1e6, r / one);
        }
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let cases: &[(u64, u64)] = if quick {
        &[(1_000_000, 4_000_000)]
    } else {
        &[(1_000_000, 20_000_000), (10_000_000, 20_000_000)]
    };
    println!("conntable: one core, random-order hits, NAT conns, IPv4 tuples");
    println!(
        "size_of::<Conn>() = {} bytes, wheel tick {} ms",
        std::mem::size_of::<Conn>(),
        rvs::ipvs::wheel::TICK_MS
    );
    println!();
    println!("| entries | insert | lookup_in | lookup_out | on_packet | expire | bytes/conn (capacities) | bytes/conn (RSS) |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for &(n, lookups) in cases {
        let r = run(n, lookups);
        println!(
            "| {} M | {} | {} | {} | {} | {} | {:.1} | {:.1} |",
            r.n / 1_000_000,
            r.insert,
            r.lookup_in,
            r.lookup_out,
            r.on_packet,
            r.expire,
            r.bytes,
            r.rss
        );
    }
}
