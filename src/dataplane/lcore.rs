//! The worker loop on a DPDK lcore: rx burst → netstack → tx burst.
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender};

use super::lb::{Lb, Outcome};
use super::pressure::PressureConfig;
use super::{ToControl, ToWorker};
use crate::counters::{DropReason, WorkerCounters};
use crate::dpdk::mbuf::MbufSource;
use crate::dpdk::{Burst, Mbuf, Mempool, Ring, RxQueue, TxQueue};
use crate::ipvs::proto::Timeouts;
use crate::ipvs::ServiceSet;
use crate::netstack::{IcmpLimits, Millis, NetConfig, Output, SolicitLog, Stack};
use crate::sessionlog::SessionRing;

/// Everything one worker owns; moved onto its lcore.
pub struct WorkerSetup {
    pub index: usize,
    pub lcore: u32,
    pub rx: Vec<RxQueue>,
    /// One tx queue on every port, this worker's own.
    pub tx: Vec<TxQueue>,
    pub pool: Arc<Mempool>,
    pub net: Arc<ArcSwap<NetConfig>>,
    pub counters: Arc<WorkerCounters>,
    pub stop: Arc<AtomicBool>,
    pub to_ctl: Sender<ToControl>,
    pub from_ctl: Receiver<ToWorker>,
    pub burst: usize,
    pub neighbours: usize,
    /// This worker sends gratuitous ARP / unsolicited NA for new addresses.
    pub announcer: bool,
    pub epoch: Instant,
    pub services: Arc<ArcSwap<ServiceSet>>,
    pub timeouts: Arc<ArcSwap<Timeouts>>,
    /// One ring per worker (index = worker); packets whose flow another
    /// worker owns go into that worker's ring. Empty with one worker.
    pub rings: Arc<Vec<Ring>>,
    pub workers: usize,
    /// The ports whose RSS spreads over every worker (`Lb::set_spreads`).
    pub spreads: Vec<(u16, Arc<crate::rss::Spread>)>,
    /// The ports whose flow rules queue FULLNAT replies by local port.
    pub flow_steered: Vec<u16>,
    /// NAT conns' owners by reply tuple, shared by all workers (several).
    pub nat_replies: Option<Arc<super::nat_replies::NatReplies>>,
    pub conn_capacity: usize,
    /// The exception path's queue from the host's kernel (worker 0 only).
    /// Polled once a millisecond: a tap read is a system call, and the
    /// host's traffic (health checks) is light.
    pub host_rx: Option<RxQueue>,
    /// `[session_log]`: this worker's ring of conn starts and ends.
    pub session_log: Option<Arc<SessionRing>>,
    /// `[icmp]`: the rate limits on the ICMP messages rvs originates.
    pub icmp: IcmpLimits,
    /// The neighbours any worker asked for (one log shared by all).
    pub solicits: Arc<SolicitLog>,
    /// `[defense]` and `[limits]`.
    pub pressure: PressureConfig,
    /// The connection sync daemons, as the management engine publishes them.
    pub sync: Arc<ArcSwap<crate::ipvs::sync::SyncDaemons>>,
}

/// Per-port tx bursts; `Output` for the network stack.
struct TxStage<'a> {
    queues: Vec<TxQueue>,
    bursts: Vec<Burst>,
    /// DPDK port id → index in `queues`.
    slot: [u8; 256],
    source: MbufSource<'a>,
    counters: &'a WorkerCounters,
}

impl TxStage<'_> {
    fn flush(&mut self) {
        for (q, b) in self.queues.iter_mut().zip(self.bursts.iter_mut()) {
            if b.is_empty() {
                continue;
            }
            let sent = q.tx(b);
            self.counters.tx_packets.add(sent as u64);
            for m in b.drain() {
                self.counters.dropped(DropReason::TxFull);
                drop(m);
            }
        }
    }
}

impl Output<Mbuf> for TxStage<'_> {
    fn send(&mut self, port: u16, pkt: Mbuf) {
        let Some(i) = self
            .slot
            .get(port as usize)
            .copied()
            .filter(|&i| i != u8::MAX)
        else {
            self.counters.dropped(DropReason::NoRoute);
            return;
        };
        let i = i as usize;
        if let Err(m) = self.bursts[i].push(pkt) {
            drop(m);
            self.counters.dropped(DropReason::TxFull);
        }
        if self.bursts[i].len() >= 32 {
            let sent = self.queues[i].tx(&mut self.bursts[i]);
            self.counters.tx_packets.add(sent as u64);
        }
    }

    fn alloc(&mut self) -> Option<Mbuf> {
        use crate::packet::PacketSource;
        self.source.alloc()
    }
}

fn now_ms(epoch: Instant) -> Millis {
    epoch.elapsed().as_millis() as Millis
}

/// The worker loop; returns when `stop` is set. Never blocks, locks or
/// allocates on the packet path.
pub fn run(setup: WorkerSetup) -> i32 {
    let WorkerSetup {
        index,
        lcore: _,
        mut rx,
        tx,
        pool,
        net,
        counters,
        stop,
        to_ctl,
        from_ctl,
        burst,
        neighbours,
        announcer,
        epoch,
        services,
        timeouts,
        rings,
        workers,
        conn_capacity,
        spreads,
        flow_steered,
        nat_replies,
        mut host_rx,
        session_log,
        icmp,
        solicits,
        pressure,
        sync,
    } = setup;
    let mut lb = Lb::new(index, workers, conn_capacity, counters.clone());
    if let Some(ring) = session_log {
        lb.set_session_log(ring);
    }
    lb.set_pressure(&pressure, now_ms(epoch));
    lb.set_sync(sync);
    lb.set_spreads(spreads);
    lb.set_flow_steered(flow_steered);
    if let Some(r) = nat_replies {
        lb.set_nat_replies(r);
    }
    counters.conn_capacity.set(lb.conns().capacity() as u64);
    // Per target worker: packets to hand over at the end of the burst.
    let mut redirect: Vec<Burst> = (0..rings.len()).map(|_| Burst::default()).collect();
    let mut slot = [u8::MAX; 256];
    for (i, q) in tx.iter().enumerate() {
        slot[q.port() as usize] = i as u8;
    }
    let mut out = TxStage {
        bursts: tx.iter().map(|_| Burst::default()).collect(),
        queues: tx,
        slot,
        source: MbufSource(&pool),
        counters: &counters,
    };
    let mut stack: Stack<Mbuf> = Stack::new(neighbours, counters.clone());
    stack.set_icmp_limits(&icmp, workers);
    stack.share_solicitations(solicits);
    let mut rxb = Burst::default();
    let mut cfg = net.load_full();
    let mut announced: HashSet<IpAddr> = HashSet::new();
    let mut last_timer: Millis = 0;
    let mut need_announce = announcer;

    // Debug builds only: RVS_FAULT_PANIC_WORKER=N makes worker N panic in
    // its loop, to test what rvsd does when a worker dies (tests/startup.rs).
    #[cfg(debug_assertions)]
    let fault_panic = std::env::var("RVS_FAULT_PANIC_WORKER")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        == Some(index);
    while !stop.load(Ordering::Relaxed) {
        let now = now_ms(epoch);
        #[cfg(debug_assertions)]
        if fault_panic && now > 500 {
            panic!("RVS_FAULT_PANIC_WORKER={index}: worker {index} panics on purpose");
        }
        // Control messages and configuration changes, between bursts.
        while let Ok(msg) = from_ctl.try_recv() {
            match msg {
                ToWorker::Neighbour(u) => stack.neighbour(&cfg, u, now, &mut out),
                ToWorker::StaticNeighbour(u) => stack.static_neighbour(&cfg, u, &mut out),
                // A control request between bursts; the listing allocates,
                // the packet path does not.
                ToWorker::ListConns { from, max, reply } => {
                    let _ = reply.try_send(lb.conn_rows(from, max, now));
                }
                ToWorker::Frame { port, frame, via } => {
                    let c = &counters;
                    super::vrrp::send_frame(&cfg, &mut stack, &mut out, c, port, &frame, via, now);
                    out.flush();
                }
                ToWorker::Announce(addrs) => {
                    for a in addrs.iter() {
                        stack.announce(&cfg, *a, &mut out);
                    }
                }
            }
        }
        let latest = net.load();
        if !Arc::ptr_eq(&latest, &cfg) {
            cfg = arc_swap::Guard::into_inner(latest);
            need_announce = announcer;
        }
        if need_announce {
            need_announce = false;
            announced.retain(|a| cfg.owner(*a).is_some());
            for (addr, _) in cfg.owned() {
                if announced.insert(addr) {
                    stack.announce(&cfg, addr, &mut out);
                }
            }
        }

        let svcs = services.load();
        let tmo = timeouts.load();
        let mut got = 0;
        let handle = |lb: &mut Lb,
                      m: Mbuf,
                      relayed: bool,
                      stack: &mut Stack<Mbuf>,
                      out: &mut TxStage<'_>,
                      redirect: &mut Vec<Burst>| {
            let outcome = if relayed {
                lb.input_relayed(&cfg, &svcs, &tmo, m, now, stack, out)
            } else {
                lb.input(&cfg, &svcs, &tmo, m, now, stack, out)
            };
            match outcome {
                Outcome::Done => {}
                Outcome::Local(m) if cfg.vrrp() => {
                    if let Some(m) = super::vrrp::intercept(&cfg, m, &to_ctl, &counters) {
                        stack.input(&cfg, m, now, out)
                    }
                }
                Outcome::Local(m) => stack.input(&cfg, m, now, out),
                Outcome::Redirect(w, m) => match redirect.get_mut(w) {
                    Some(b) => {
                        if b.push(m).is_err() {
                            counters.dropped(DropReason::RingFull);
                        }
                    }
                    None => counters.dropped(DropReason::RingFull),
                },
            }
        };
        if let Some(mine) = rings.get(index) {
            if mine.dequeue(&mut rxb, burst) > 0 {
                lb.prepare(&cfg, &svcs, &tmo, rxb.iter());
                for m in rxb.drain() {
                    handle(&mut lb, m, true, &mut stack, &mut out, &mut redirect);
                }
                lb.end_burst();
            }
        }
        for q in rx.iter_mut() {
            let n = q.rx(&mut rxb, burst);
            if n == 0 {
                continue;
            }
            got += n;
            counters.rx_packets.add(n as u64);
            lb.prepare(&cfg, &svcs, &tmo, rxb.iter());
            for m in rxb.drain() {
                handle(&mut lb, m, false, &mut stack, &mut out, &mut redirect);
            }
            lb.end_burst();
        }
        for (w, b) in redirect.iter_mut().enumerate() {
            if b.is_empty() {
                continue;
            }
            if let Some(r) = rings.get(w) {
                counters.redirected.add(r.enqueue(b) as u64);
            }
            for m in b.drain() {
                counters.dropped(DropReason::RingFull);
                drop(m);
            }
        }
        if got > 0 {
            counters.busy_polls.inc();
        } else {
            counters.idle_polls.inc();
        }
        if now != last_timer {
            last_timer = now;
            if let Some(q) = host_rx.as_mut() {
                if q.rx(&mut rxb, burst) > 0 {
                    for m in rxb.drain() {
                        stack.input(&cfg, m, now, &mut out);
                    }
                }
            }
            stack.poll(&cfg, now, &mut out);
            lb.poll(&svcs, now);
            lb.poll_sync(&cfg, now, &mut out);
            lb.poll_synproxy(&cfg, &svcs, &tmo, now, &mut stack, &mut out);
            counters.conns.set(lb.conns().len() as u64);
        }
        stack.drain_learned(|update| {
            // The channel is bounded; a full one only delays what others learn.
            let _ = to_ctl.try_send(ToControl::Learned {
                worker: index,
                update,
            });
        });
        out.flush();
    }
    out.flush();
    // The lane's last counts, for the exit summary.
    lb.fold_stats(&services.load());
    0
}
