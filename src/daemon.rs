//! rvsd's life: EAL, pool, ports, workers on their lcores, the control loop
//! on the main lcore, and a clean shutdown on SIGINT/SIGTERM. This file is
//! its order (`run_with_eal`); the parts are EAL's arguments (`eal.rs`),
//! the ports and the network stack's view of them (`ports.rs`), the rules
//! at start and stop (`rules.rs`), the main lcore's loop (`control.rs`)
//! and the exporter's sources (`exporter.rs`).
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};

use crate::announce::{kernel::KernelTable, Announcer};
use crate::config::{Config, LogLevel, RssMode};
use crate::counters::{DropReason, RedirectReason, WorkerCounters};
use crate::ctl::engine::Engine;
use crate::ctl::server::Server as CtlServer;
use crate::dataplane::lcore::{run as worker_run, WorkerSetup};
use crate::dataplane::nat_replies::NatReplies;
use crate::dataplane::{ToControl, ToWorker};
use crate::dpdk::{self, lcore, Eal, Mempool, Port, PortSetup, Ring};
use crate::flowsteer::{FlowSteering, SteeredPort};
use crate::health::hostpath::{interface_mac, HostRoutes};
use crate::health::runner::Runner as HealthRunner;
use crate::ipvs::proto::Timeouts;
use crate::ipvs::{estimator::SAMPLE_INTERVAL_MS, ServiceKey, ServiceSet};
use crate::metrics::{self, http::MetricsListener, MetricsServer, MetricsSources, WorkerSource};
use crate::netstack::{
    AddrKind, HostPath, Iface, IfaceAddr, NeighUpdate, NetConfig, OwnedAddr, Route, SolicitLog,
};
use crate::rss::Spread;
use crate::sessionlog::writer::{SessionLog, Sink};
use crate::sessionlog::SessionRing;
use crate::wire::MacAddr;

mod control;
mod eal;
mod exporter;
mod ports;
mod rules;

use control::control_loop;
pub use eal::eal_args;
use eal::{capture_server, mbuf_data_room};
use exporter::start_metrics;
use ports::{
    announce_setup, net_config, open_host_path, open_ports, port_spreads, publish_addresses,
    start_ports,
};
use rules::{apply_checks, apply_rules, save_rules_at_stop};

/// A start-up or run-time failure, as one line for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DaemonError(pub String);

fn err(s: impl Into<String>) -> DaemonError {
    DaemonError(s.into())
}

fn level_filter(l: LogLevel) -> log::LevelFilter {
    match l {
        LogLevel::Error => log::LevelFilter::Error,
        LogLevel::Warn => log::LevelFilter::Warn,
        LogLevel::Info => log::LevelFilter::Info,
        LogLevel::Debug => log::LevelFilter::Debug,
        LogLevel::Trace => log::LevelFilter::Trace,
    }
}

pub fn run(cfg: Config) -> Result<(), DaemonError> {
    crate::logging::init("rvsd", level_filter(cfg.log.level));
    log_panics();
    log::info!("{}", crate::version::long("rvsd"));
    let max = dpdk_sys::RTE_MAX_LCORE;
    for &l in std::iter::once(&cfg.dataplane.main_lcore).chain(&cfg.dataplane.workers) {
        if l >= max {
            return Err(err(format!(
                "dataplane: lcore {l} is beyond what this DPDK supports (RTE_MAX_LCORE = {max}); map it with --lcores in eal.args"
            )));
        }
    }
    let args = eal_args(&cfg);
    log::debug!("EAL arguments: {args:?}");
    let eal = Eal::init("rvsd", &args).map_err(|e| err(e.to_string()))?;
    let pdump = capture_server(&args);
    let result = run_with_eal(&cfg);
    drop(pdump);
    drop(eal);
    result
}

/// Conns a worker lists per request of `-c`.
const CONN_CHUNK: usize = 4096;

/// A panic anywhere in rvsd is logged, with where it happened and the
/// backtrace, through the log (the journal under systemd) rather than only
/// to a stderr nobody may read.
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        log::error!(
            "panic on thread {} (lcore {}): {info}\n{}",
            thread.name().unwrap_or("unnamed"),
            lcore::current(),
            std::backtrace::Backtrace::force_capture()
        );
    }));
}

fn run_with_eal(cfg: &Config) -> Result<(), DaemonError> {
    let main = lcore::main_lcore();
    for &w in &cfg.dataplane.workers {
        if w == main {
            return Err(err(format!("dataplane.workers: lcore {w} is EAL's main lcore; workers need lcores of their own")));
        }
        if !lcore::is_enabled(w) {
            return Err(err(format!(
                "dataplane.workers: lcore {w} is not enabled in EAL (eal.args chooses lcores with -l/--lcores)"
            )));
        }
    }
    let pool = Arc::new(
        Mempool::new_pktmbuf(
            "rvs_pkt",
            cfg.dataplane.mbufs,
            cfg.dataplane.mbuf_cache,
            mbuf_data_room(cfg),
            lcore::socket_id(),
        )
        .map_err(|e| err(format!("dataplane.mbufs: {e}")))?,
    );
    let mut ports = open_ports(cfg, &pool)?;
    let (mut base_net, static_neighbours) = net_config(cfg, &ports)?;
    let (mut host_port, host_routes) = match open_host_path(cfg, &pool)? {
        Some((port, routes, path)) => {
            base_net = base_net
                .with_host_path(path)
                .with_extra(cfg.health.sources.iter().map(|a| (*a, AddrKind::Health)));
            (Some(port), Some(routes))
        }
        None => (None, None),
    };
    let mut vrrp = match cfg.vrrp.is_empty() {
        true => None,
        false => Some(crate::vrrp::Vrrp::new(&cfg.vrrp, &base_net).map_err(err)?),
    };
    let net = Arc::new(ArcSwap::from_pointee(base_net.clone()));
    let mut announcer = cfg
        .announce
        .as_ref()
        .map(|a| announce_setup(cfg, a, &ports));

    start_ports(cfg, &mut ports)?;

    let spreads = port_spreads(cfg, &ports)?;
    let steered: Vec<SteeredPort> = cfg
        .ports
        .iter()
        .zip(&ports)
        .filter(|(pc, _)| pc.flow_steering)
        .map(|(pc, p)| SteeredPort {
            id: p.id(),
            name: pc.name.clone(),
            addrs: pc.addresses.iter().map(|a| a.addr).collect(),
            rules: Arc::new(AtomicU64::new(0)),
        })
        .collect();
    let flow_rules: HashMap<u16, Arc<AtomicU64>> =
        steered.iter().map(|s| (s.id, s.rules.clone())).collect();
    // Dropped before the ports close: each rule destroys itself.
    let mut flows = match steered.is_empty() {
        true => None,
        false => {
            let steer = crate::laddr::PortSteer::new(cfg.dataplane.workers.len())
                .map_err(|e| err(e.to_string()))?;
            Some(FlowSteering::start(steered, steer).map_err(err)?)
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let worker_panics = Arc::new(AtomicUsize::new(0));
    // The control loop ends on a signal; the workers run on until it set
    // `stop`, so that what it sends last (VRRP's priority-0 advert) leaves.
    let signalled = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, signalled.clone())
            .map_err(|e| err(format!("cannot install signal handler: {e}")))?;
    }
    // A daemon's reload signal, caught also where there is nothing to
    // reload: its default action would kill the director.
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .map_err(|e| err(format!("cannot install signal handler: {e}")))?;
    // Bound before the workers start, so a taken address is a start-up error.
    let metrics_listener = match cfg.metrics.listen {
        Some(addr) => Some(
            MetricsListener::bind(addr)
                .map_err(|e| err(format!("metrics.listen: cannot listen on {addr}: {e}")))?,
        ),
        None => None,
    };
    // Published by the management engine on every change; read by the
    // workers, the exporter and the rate estimator.
    let services = Arc::new(ArcSwap::from_pointee(ServiceSet::default()));
    let timeouts = Arc::new(ArcSwap::from_pointee(Timeouts::default()));
    let engine = Arc::new(Mutex::new(Engine::new(
        cfg.dataplane.workers.len(),
        services.clone(),
        timeouts.clone(),
    )));
    {
        let mut sources = crate::health::Sources::default();
        for a in &cfg.health.sources {
            match a {
                IpAddr::V4(a) => sources.v4 = Some(*a),
                IpAddr::V6(a) => sources.v6 = Some(*a),
            }
        }
        let mut e = engine.lock().unwrap_or_else(|p| p.into_inner());
        e.set_health_sources(sources);
        // Before the rules: their -P lines name these ports (-F).
        e.laddr_view()
            .set_ports(cfg.ports.iter().map(|p| p.name.clone()).collect());
        e.sync_view().set_ports(
            cfg.ports
                .iter()
                .map(|p| (p.name.clone(), p.mtu.unwrap_or(1500)))
                .collect(),
        );
    }
    if let Some(path) = &cfg.ctl.rules {
        if cfg.ctl.persist && !path.exists() {
            log::info!(
                "no saved rules at {} yet: starting with no services; changes will be saved there",
                path.display()
            );
        } else {
            apply_rules(&engine, path)?;
        }
    }
    apply_checks(&engine, cfg)?;
    // After the rules and checks: the file is applied as a diff against them.
    let mut keepalived = match &cfg.keepalived.config {
        Some(path) => Some(
            crate::keepalived::Reloader::start(path, engine.clone())
                .map_err(|e| err(format!("keepalived: {e}")))?,
        ),
        None => None,
    };
    if let (true, Some(path)) = (cfg.ctl.persist, &cfg.ctl.rules) {
        let mut e = engine.lock().unwrap_or_else(|p| p.into_inner());
        e.persist_to(path.clone()).map_err(|e| {
            err(format!(
                "ctl.persist: cannot save the rules to {}: {e}",
                path.display()
            ))
        })?;
        log::info!("every change to the rules is saved to {}", path.display());
    }
    let _ctl = CtlServer::start(&cfg.ctl.socket, engine.clone()).map_err(|e| {
        err(format!(
            "ctl.socket: cannot serve {}: {e}",
            cfg.ctl.socket.display()
        ))
    })?;
    log::info!("management socket at {}", cfg.ctl.socket.display());
    publish_addresses(&net, &base_net, &services.load(), vrrp.as_mut());
    let workers = cfg.dataplane.workers.len();
    let mut rings = Vec::new();
    if workers > 1 {
        for w in 0..workers {
            rings.push(
                Ring::new(&format!("rvs_redirect_{w}"), 4096, false, true).map_err(|e| {
                    err(format!(
                        "cannot create the redirect ring of worker {w}: {e}"
                    ))
                })?,
            );
        }
    }
    let rings = Arc::new(rings);
    let (to_ctl, from_workers) = bounded::<ToControl>(4096);
    let epoch = Instant::now();
    let solicits = Arc::new(SolicitLog::new());
    let mut to_workers: Vec<Sender<ToWorker>> = Vec::new();
    let mut counters: Vec<Arc<WorkerCounters>> = Vec::new();
    let mut launched: Vec<u32> = Vec::new();
    let mut launch_error = None;
    let session_rings: Vec<Arc<SessionRing>> = match &cfg.session_log {
        Some(c) => (0..workers)
            .map(|_| Arc::new(SessionRing::new(c.ring)))
            .collect(),
        None => Vec::new(),
    };
    let session_log = match &cfg.session_log {
        Some(c) => {
            let log = SessionLog::start(&c.writer, session_rings.clone(), epoch)
                .map_err(|e| err(format!("session_log: {e}")))?;
            log::info!(
                "session log: conn starts and ends go to {}",
                describe_sink(&c.writer.sink)
            );
            Some(log)
        }
        None => None,
    };
    let conn_capacity = conn_table_size(cfg.dataplane.conns, workers);
    // Room for every conn all workers can hold to be a NAT conn.
    let nat_replies = (workers > 1).then(|| {
        let r = NatReplies::new(conn_capacity * workers, crate::laddr::seed::start_seed());
        log::info!(
            "NAT reply index: {} KiB shared by the workers",
            r.memory_bytes() / 1024
        );
        Arc::new(r)
    });
    let sync_daemons = engine
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .sync_view()
        .daemons();
    for (index, &lc) in cfg.dataplane.workers.iter().enumerate() {
        let (tx, rx) = bounded::<ToWorker>(1024);
        // Configured neighbours are in place before the first packet.
        for &u in &static_neighbours {
            let _ = tx.try_send(ToWorker::StaticNeighbour(u));
        }
        let c = Arc::new(WorkerCounters::default());
        let q = index as u16;
        let setup = WorkerSetup {
            index,
            lcore: lc,
            rx: ports.iter().filter_map(|p| p.rx_queue(q)).collect(),
            tx: ports
                .iter()
                .chain(host_port.iter())
                .filter_map(|p| p.tx_queue(q))
                .collect(),
            pool: pool.clone(),
            net: net.clone(),
            counters: c.clone(),
            stop: stop.clone(),
            to_ctl: to_ctl.clone(),
            from_ctl: rx,
            burst: cfg.dataplane.burst as usize,
            neighbours: cfg.dataplane.neighbours as usize,
            announcer: index == 0,
            epoch,
            services: services.clone(),
            timeouts: timeouts.clone(),
            rings: rings.clone(),
            workers,
            spreads: spreads.clone(),
            flow_steered: flow_rules.keys().copied().collect(),
            nat_replies: nat_replies.clone(),
            conn_capacity,
            host_rx: if index == 0 {
                host_port.as_ref().and_then(|p| p.rx_queue(0))
            } else {
                None
            },
            session_log: session_rings.get(index).cloned(),
            icmp: cfg.icmp.clone(),
            solicits: solicits.clone(),
            pressure: cfg.pressure.clone(),
            sync: sync_daemons.clone(),
        };
        // A worker that panics has stopped polling its queues: its share of
        // the traffic is lost until rvsd restarts. It stops rvsd, which
        // then exits non-zero, so systemd's Restart=on-failure brings a
        // whole director back instead of one that forwards in part.
        let (panics, stop_all) = (worker_panics.clone(), stop.clone());
        let run = move || match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            worker_run(setup)
        })) {
            Ok(code) => code,
            Err(_) => {
                panics.fetch_add(1, Ordering::SeqCst);
                stop_all.store(true, Ordering::SeqCst);
                -1
            }
        };
        if let Err(e) = lcore::launch(lc, run) {
            launch_error = Some(err(e.to_string()));
            break;
        }
        to_workers.push(tx);
        counters.push(c);
        launched.push(lc);
    }
    log::info!(
        "{} worker(s) running on lcores {:?}; main lcore {}",
        launched.len(),
        launched,
        lcore::main_lcore()
    );

    {
        // -c asks every worker for its conns, between their bursts.
        let senders = to_workers.clone();
        let mut e = engine.lock().unwrap_or_else(|p| p.into_inner());
        e.set_conn_source(Arc::new(
            move |emit: &mut dyn FnMut(Vec<crate::ipvs::ConnRow>) -> bool| {
                // Worker by worker, a chunk per request, between bursts:
                // a worker spends a bounded time per request whatever its
                // table holds.
                for (w, to) in senders.iter().enumerate() {
                    let mut from = Some(0);
                    while let Some(start) = from {
                        let (tx, rx) = bounded(1);
                        let ask = ToWorker::ListConns {
                            from: start,
                            max: CONN_CHUNK,
                            reply: tx,
                        };
                        to.send_timeout(ask, Duration::from_secs(2))
                            .map_err(|_| format!("worker {w} did not take the request"))?;
                        let (rows, next) = rx
                            .recv_timeout(Duration::from_secs(2))
                            .map_err(|_| format!("worker {w} did not answer within 2 s"))?;
                        if !emit(rows) {
                            return Ok(());
                        }
                        from = next;
                    }
                }
                Ok(())
            },
        ));
        let published = counters.clone();
        e.laddr_view().set_source(Box::new(move || {
            published
                .iter()
                .flat_map(|c| c.laddr.load().iter().copied().collect::<Vec<_>>())
                .collect()
        }));
    }
    let metrics_server = match metrics_listener {
        Some(l) if launch_error.is_none() => {
            let log = session_log.as_ref().map(SessionLog::counters);
            let v = vrrp.as_ref().map(|v| v.status());
            let ann = announcer.as_ref().map(|(a, _)| a.status());
            start_metrics(
                l,
                cfg,
                &ports,
                &flow_rules,
                &launched,
                &counters,
                &pool,
                &services,
                log,
                v,
                ann,
            )
        }
        _ => None,
    };

    // Checks start once workers forward: a check's packets go through them.
    let health = match launch_error {
        None => HealthRunner::start(engine.clone(), Arc::new(|p: &crate::health::Probe| p.run()))
            .map_err(|e| log::error!("health checks cannot run: no thread for them: {e}"))
            .ok(),
        Some(_) => None,
    };
    if launch_error.is_none() {
        crate::notify::ready(&format!(
            "forwarding: {} port(s), {} worker(s)",
            ports.len(),
            launched.len()
        ));
        control_loop(
            &[&stop, &signalled],
            &from_workers,
            &to_workers,
            &ports,
            &counters,
            &services,
            &net,
            &base_net,
            &hup,
            keepalived.as_mut(),
            vrrp.as_mut(),
            announcer.as_mut().map(|(a, p)| (a, *p)),
            flows.as_mut(),
        );
        crate::notify::stopping();
        if let Some(v) = vrrp.take() {
            if let Some(to) = to_workers.first() {
                v.stop(to);
            }
        }
    }
    if let Some((a, _)) = announcer.as_mut() {
        // The workers run until `stop`: the routing daemon's withdrawal
        // leaves through them.
        a.withdraw_all();
        let wait = cfg
            .announce
            .as_ref()
            .map_or(Duration::ZERO, |c| c.withdraw_wait);
        if !wait.is_zero() {
            log::info!(
                "announce: forwarding {wait:?} more for the withdrawal to reach the routers"
            );
            std::thread::sleep(wait);
        }
    }
    // Before the ports close: the exporter reads them by id.
    if let Some(server) = metrics_server {
        server.stop();
    }
    if let Some(h) = health {
        h.stop();
    }
    save_rules_at_stop(&engine);
    stop.store(true, Ordering::SeqCst);
    for &lc in &launched {
        let code = lcore::wait(lc);
        if code != 0 {
            log::error!("worker on lcore {lc} exited with code {code}");
        }
    }
    // After the workers: what they logged last is written too.
    if let Some(log) = session_log {
        log.stop();
    }
    for p in ports.iter_mut().chain(host_port.iter_mut()) {
        p.stop();
    }
    drop(host_routes);
    drop(host_port);
    print!("{}", summary(cfg, &ports, &launched, &counters));
    drop(ports);
    let panics = worker_panics.load(Ordering::SeqCst);
    match launch_error {
        Some(e) => Err(e),
        None if panics > 0 => Err(err(format!(
            "{panics} worker(s) panicked (the log has where, and the backtrace); rvsd stopped so that it can be restarted whole"
        ))),
        None => Ok(()),
    }
}

fn describe_sink(sink: &Sink) -> String {
    match sink {
        Sink::File(p) => p.display().to_string(),
        Sink::Syslog { socket, facility } => {
            format!("syslog at {} (facility {facility})", socket.display())
        }
    }
}

/// Each worker's conn-table capacity: the configured one, or what the
/// memory rvsd is given affords (`crate::memory`); logged either way.
fn conn_table_size(configured: Option<u32>, workers: usize) -> usize {
    let (n, why) = match configured {
        Some(n) => (n, "dataplane.conns".to_string()),
        None => crate::memory::default_conns(workers),
    };
    let bytes = crate::ipvs::ConnTable::bytes_for(n as usize);
    log::info!(
        "conn table: {n} slots per worker, {} MiB each ({why})",
        bytes >> 20
    );
    n as usize
}

/// The counters printed at shutdown.
fn summary(
    cfg: &Config,
    ports: &[Port],
    lcores: &[u32],
    counters: &[Arc<WorkerCounters>],
) -> String {
    let mut s = String::from("rvsd: stopped\n");
    for (pc, p) in cfg.ports.iter().zip(ports) {
        let st = p.stats();
        let _ = writeln!(
            s,
            "port {} ({}): rx {} packets {} bytes, tx {} packets {} bytes, missed {}, rx errors {}, tx errors {}, rx no-mbuf {}",
            pc.name, p.name(), st.ipackets, st.ibytes, st.opackets, st.obytes, st.imissed, st.ierrors, st.oerrors, st.rx_nombuf
        );
    }
    for (i, (lc, c)) in lcores.iter().zip(counters).enumerate() {
        let drops: Vec<String> = DropReason::ALL
            .iter()
            .filter(|r| c.drops(**r) > 0)
            .map(|r| format!("{}={}", r.name(), c.drops(*r)))
            .collect();
        let _ = writeln!(
            s,
            "worker {i} (lcore {lc}): rx {}, tx {}, consumed {}, express {}, arp replies {}, arp requests {}, nd adverts {}, nd solicits {}, echo replies {}, gratuitous {}, redirected {} (by reason: {}), to host {}, from host {}, icmp errors {}, icmp limited global {}, icmp limited host {}, frag ok {}, frag creates {}, busy polls {}, idle polls {}, conns evicted {}, entries dropped {}, drops {} [{}]",
            c.rx_packets.get(),
            c.tx_packets.get(),
            c.consumed.get(),
            c.express.get(),
            c.arp_replies.get(),
            c.arp_requests.get(),
            c.nd_adverts.get(),
            c.nd_solicits.get(),
            c.echo_replies.get(),
            c.gratuitous.get(),
            c.redirected.get(),
            RedirectReason::ALL
                .iter()
                .map(|r| format!("{} {}", r.name(), c.redirects(*r)))
                .collect::<Vec<_>>()
                .join(", "),
            c.to_host.get(),
            c.from_host.get(),
            c.icmp_errors.get(),
            c.icmp_limited_global.get(),
            c.icmp_limited_host.get(),
            c.frag_ok.get(),
            c.frag_creates.get(),
            c.busy_polls.get(),
            c.idle_polls.get(),
            c.pressure.evicted.get() + c.pressure.evicted_ports.get(),
            c.pressure.dropped_entries.get(),
            c.total_drops(),
            drops.join(" ")
        );
    }
    s
}
