//! rvsd's life: EAL, pool, ports, workers on their lcores, the control loop
//! on the main lcore, and a clean shutdown on SIGINT/SIGTERM.
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

/// A start-up or run-time failure, as one line for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DaemonError(pub String);

fn err(s: impl Into<String>) -> DaemonError {
    DaemonError(s.into())
}

/// Whether the operator already chose the lcores in `eal.args`.
fn has_lcore_args(args: &[String]) -> bool {
    args.iter().any(|a| {
        a == "-l"
            || a == "-c"
            || a.starts_with("--lcores")
            || (a.starts_with("-l") && a.len() > 2)
            || (a.starts_with("-c") && a.len() > 2)
    })
}

/// Whether devargs name a PCI device ("0000:01:00.0" or "01:00.0").
fn is_pci(devargs: &str) -> bool {
    let name = crate::dpdk::ethdev::devargs_name(devargs);
    let parts: Vec<&str> = name.split([':', '.']).collect();
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    match parts.as_slice() {
        [d, b, s, f] => hex(d, 4) && hex(b, 2) && hex(s, 2) && hex(f, 1),
        [b, s, f] => hex(b, 2) && hex(s, 2) && hex(f, 1),
        _ => false,
    }
}

/// The EAL argument list: the configured one plus the lcores rvsd needs
/// when the operator did not give them, and a PCI allow list of exactly the
/// configured PCI ports (none: --no-pci), so EAL never takes over a NIC that
/// rvsd was not asked to drive.
pub fn eal_args(cfg: &Config) -> Vec<String> {
    let mut args = cfg.eal.args.clone();
    let chooses_pci = args.iter().any(|a| {
        ["-a", "-b", "--allow", "--block", "--no-pci"]
            .iter()
            .any(|o| {
                a == o
                    || a.starts_with(&format!("{o}="))
                    || (o.len() == 2 && a.starts_with(o) && a.len() > 2)
            })
    });
    if !chooses_pci {
        let pci: Vec<&str> = cfg
            .ports
            .iter()
            .map(|p| p.devargs.as_str())
            .filter(|d| is_pci(d))
            .collect();
        if pci.is_empty() {
            args.push("--no-pci".into());
        }
        for d in pci {
            args.push("-a".into());
            args.push(d.to_owned());
        }
    }
    if !has_lcore_args(&args) {
        let mut lcores = vec![cfg.dataplane.main_lcore];
        lcores.extend(cfg.dataplane.workers.iter().copied());
        let list: Vec<String> = lcores.iter().map(u32::to_string).collect();
        args.push("-l".into());
        args.push(list.join(","));
        if !args.iter().any(|a| a.starts_with("--main-lcore")) {
            args.push(format!("--main-lcore={}", cfg.dataplane.main_lcore));
        }
    }
    args
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

/// Starts the server for dpdk-dumpcap when secondary processes can attach.
/// Telemetry needs nothing here: EAL serves it unless --no-telemetry. A server
/// that fails to start costs capture only, so rvsd keeps forwarding.
fn capture_server(args: &[String]) -> Option<dpdk::Pdump> {
    let private = args
        .iter()
        .any(|a| a == "--no-shconf" || a == "--in-memory");
    if private {
        log::info!(
            "packet capture (dpdk-dumpcap) and dpdk-telemetry.py need a shared-config EAL: run with a --file-prefix and hugepages, without --no-shconf or --in-memory"
        );
        return None;
    }
    match dpdk::pdump_init() {
        Ok(p) => {
            log::info!("packet capture server up for dpdk-dumpcap");
            Some(p)
        }
        Err(e) => {
            log::warn!("dpdk-dumpcap cannot capture: {e}");
            None
        }
    }
}

/// An mbuf's data room: DPDK's default (2048 bytes after the headroom)
/// or the largest frame of the largest port MTU (with a VLAN tag's room),
/// so that every frame a port takes in fits one mbuf: rvs refuses chained
/// ones, and fragments it makes come from the same pool.
fn mbuf_data_room(cfg: &Config) -> u16 {
    let mtu = cfg.ports.iter().filter_map(|p| p.mtu).max().unwrap_or(1500);
    let frame = u32::from(mtu) + 14 + 4;
    let room = dpdk_sys::RTE_MBUF_DEFAULT_DATAROOM.max(frame.next_multiple_of(64));
    (dpdk_sys::RTE_PKTMBUF_HEADROOM + room).min(u32::from(u16::MAX)) as u16
}

/// The ports whose RSS decides which worker owns a flow (`[[port]] rss`,
/// DESIGN.md "Per-lcore ownership"): those that spread over one queue per
/// worker by a hash rvs can compute. Said in the log, port by port.
fn port_spreads(cfg: &Config, ports: &[Port]) -> Result<Vec<(u16, Arc<Spread>)>, DaemonError> {
    let workers = cfg.dataplane.workers.len();
    let mut out = Vec::new();
    for (pc, p) in cfg.ports.iter().zip(ports) {
        let spread = match pc.rss {
            RssMode::Off => None,
            RssMode::Device => p.spread().cloned(),
            RssMode::Software if p.rss() => {
                return Err(err(format!(
                    "port {}: rss = \"software\", but the {} device spreads by RSS itself: use rss = \"device\"",
                    pc.name,
                    p.driver()
                )))
            }
            RssMode::Software => Some(Spread::software(p.rx_queues())),
        };
        if workers < 2 {
            if pc.rss != RssMode::Device {
                log::info!(
                    "port {}: one worker owns every flow, so rss = \"{}\" decides nothing",
                    pc.name,
                    pc.rss.name()
                );
            }
            continue;
        }
        match spread {
            Some(s) if usize::from(p.rx_queues()) == workers => {
                log::info!(
                    "port {}: RSS ({}, {} key, {}-entry table over {} queues) decides each flow's worker: no packet crosses to another",
                    pc.name,
                    if pc.rss == RssMode::Software { "a software peer's" } else { "the device's" },
                    if s.key() == crate::rss::SYMMETRIC_KEY.as_slice() { "symmetric" } else { "the driver's" },
                    s.reta().len(),
                    p.rx_queues()
                );
                out.push((p.id(), Arc::new(s)));
            }
            Some(_) => log::info!(
                "port {}: {} rx queues for {workers} workers: RSS cannot reach every worker, so flows that land on another worker's queue take the redirect ring",
                pc.name,
                p.rx_queues()
            ),
            None => log::info!(
                "port {}: no RSS rvs can follow (rss = \"{}\", device {}): flows that land on another worker's queue take the redirect ring",
                pc.name,
                pc.rss.name(),
                p.driver()
            ),
        }
    }
    Ok(out)
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
    let workers = cfg.dataplane.workers.len() as u16;
    let mut ports = Vec::with_capacity(cfg.ports.len());
    for (i, pc) in cfg.ports.iter().enumerate() {
        let setup = PortSetup {
            devargs: &pc.devargs,
            rx_queues: pc.queues,
            tx_queues: workers,
            rx_descriptors: pc.rx_descriptors,
            tx_descriptors: pc.tx_descriptors,
            promiscuous: pc.promiscuous,
            mtu: pc.mtu,
            mac: pc.mac,
        };
        let port =
            Port::open(&setup, &pool).map_err(|e| err(format!("port[{i}] ({}): {e}", pc.name)))?;
        ports.push(port);
    }
    let ifaces: Vec<Iface> = cfg
        .ports
        .iter()
        .zip(&ports)
        .map(|(pc, p)| Iface {
            port: p.id(),
            name: pc.name.clone(),
            mtu: pc.mtu.unwrap_or(1500),
            tx_checksum: {
                let c = p.tx_checksum();
                c.ipv4 && c.tcp && c.udp
            },
            mac: MacAddr(p.mac()),
            addrs: pc
                .addresses
                .iter()
                .map(|a| IfaceAddr {
                    addr: a.addr,
                    prefix_len: a.prefix_len,
                })
                .collect(),
        })
        .collect();
    let port_id = |name: &str| {
        cfg.ports
            .iter()
            .zip(&ports)
            .find(|(pc, _)| pc.name == name)
            .map(|(_, p)| p.id())
    };
    let mut statics = Vec::with_capacity(cfg.routes.len());
    for (i, r) in cfg.routes.iter().enumerate() {
        let port = port_id(&r.port)
            .ok_or_else(|| err(format!("route[{i}].port: no port named {:?}", r.port)))?;
        statics.push(Route {
            prefix: r.prefix.addr,
            len: r.prefix.len,
            port,
            via: r.via,
        });
    }
    let mut static_neighbours = Vec::with_capacity(cfg.neighbours.len());
    for (i, n) in cfg.neighbours.iter().enumerate() {
        let port = port_id(&n.port)
            .ok_or_else(|| err(format!("neighbour[{i}].port: no port named {:?}", n.port)))?;
        static_neighbours.push(NeighUpdate {
            port,
            ip: n.ip,
            mac: MacAddr(n.mac),
        });
    }
    let mut base_net = NetConfig::new(ifaces, statics);
    for (pc, p) in cfg.ports.iter().zip(&ports) {
        if pc.accept_other_mac {
            base_net = base_net.with_accept_other_mac(p.id());
        }
    }
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

    for (pc, p) in cfg.ports.iter().zip(ports.iter_mut()) {
        p.start().map_err(|e| err(e.to_string()))?;
        let csum = p.tx_checksum();
        log::info!(
            "port {} up as ethdev {} ({}, driver {}): mac {}, {} rx / {} tx queues, rss {}, tx checksum offload ipv4={} tcp={} udp={}, rx ipv4 checksum offload={}",
            pc.name,
            p.id(),
            p.name(),
            p.driver(),
            MacAddr(p.mac()),
            p.rx_queues(),
            p.tx_queues(),
            if p.rss() { "on" } else { "off" },
            csum.ipv4,
            csum.tcp,
            csum.udp,
            p.rx_ipv4_checksum()
        );
    }

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

/// The addresses rvsd answers for: the interfaces', plus every VIP and
/// FULLNAT local address of the services. Worker 0 announces new ones.
fn publish_addresses(
    net: &ArcSwap<NetConfig>,
    base: &NetConfig,
    set: &ServiceSet,
    vrrp: Option<&mut crate::vrrp::Vrrp>,
) {
    let mut extra = Vec::new();
    let mut named = Vec::new();
    for s in set.services() {
        if let ServiceKey::Addr { addr, .. } = s.key() {
            extra.push((addr, AddrKind::Vip));
        }
        for (a, port) in s.laddrs() {
            // -F: the local address lives on the port it names (ARP and ND
            // answered there), unless it is a port's own address.
            match base.ifaces().iter().find(|i| i.name == *port) {
                Some(i) if base.owner(*a).is_none() => named.push((*a, i.port)),
                _ => extra.push((*a, AddrKind::Local)),
            }
        }
    }
    // A mark rule for one address names the VIP of a -f service, which
    // rvs then answers for as it does for -t/-u VIPs (no iptables or
    // kernel address stands in front of a DPDK port to do it).
    for r in set.marks().rules() {
        let host = if r.dst.is_ipv4() { 32 } else { 128 };
        if r.prefix_len == host {
            extra.push((r.dst, AddrKind::Vip));
        }
    }
    let mut cfg = base.clone();
    for (addr, port) in named {
        if cfg.owner(addr).is_none() {
            let kind = AddrKind::Local;
            cfg = cfg.with_owned(addr, OwnedAddr { port, kind });
        }
    }
    let cfg = cfg.with_extra(extra);
    // VRRP: a backup's addresses on standby, a master's own.
    net.store(Arc::new(match vrrp {
        Some(v) => v.apply(&cfg),
        None => cfg,
    }));
}

/// Applies the start-up rules file: every line or rvsd does not start.
/// The exception path, when `[health] sources` asks for one: a net_tap
/// port whose kernel side carries the sources, with its policy routes.
fn open_host_path(
    cfg: &Config,
    pool: &Arc<Mempool>,
) -> Result<Option<(Port, HostRoutes, HostPath)>, DaemonError> {
    let h = &cfg.health;
    if h.sources.is_empty() {
        return Ok(None);
    }
    let devargs = format!("net_tap_rvshc,iface={}", h.tap);
    let setup = PortSetup {
        devargs: &devargs,
        rx_queues: 1,
        tx_queues: cfg.dataplane.workers.len() as u16,
        rx_descriptors: 256,
        tx_descriptors: 256,
        promiscuous: false,
        mtu: None,
        mac: None,
    };
    let fail = |e: String| err(format!("health: the exception path ({devargs}): {e}"));
    let mut port = Port::open(&setup, pool).map_err(|e| fail(e.to_string()))?;
    port.start().map_err(|e| fail(e.to_string()))?;
    let host_mac = interface_mac(&h.tap).map_err(fail)?;
    let routes = HostRoutes::set_up(&h.tap, &h.sources, h.table).map_err(fail)?;
    let path = HostPath {
        port: port.id(),
        mac: HOST_PATH_MAC,
        host_mac: MacAddr(host_mac),
    };
    log::info!(
        "health checks leave from {:?} through the host interface {} (ethdev {}, policy table {})",
        h.sources,
        h.tap,
        port.id(),
        h.table
    );
    Ok(Some((port, routes, path)))
}

/// `[announce]`: the VIP routes' table on the exception path's tap, and
/// the index of the port whose link gates them.
fn announce_setup(
    cfg: &Config,
    a: &crate::config::AnnounceConfig,
    ports: &[Port],
) -> (Announcer<KernelTable>, usize) {
    let port = cfg
        .ports
        .iter()
        .position(|p| p.name == a.port)
        .unwrap_or(0)
        .min(ports.len().saturating_sub(1));
    log::info!(
        "announce: VIP routes go in table {} on {} while a real server is available and port {} has link",
        a.table,
        cfg.health.tap,
        a.port
    );
    let table = KernelTable::new(&cfg.health.tap, a.table, &cfg.health.sources);
    (Announcer::new(table, &a.port), port)
}

/// What rvs answers the host's ARP and ND on the exception path with: a
/// locally administered address no real NIC has.
const HOST_PATH_MAC: MacAddr = MacAddr([0x02, 0x72, 0x76, 0x73, 0x68, 0x63]);

/// `[[health.check]]`, through the same commands as `rvsadm --check-set`
/// and `--sorry-set`; a service the rules did not make is an error.
fn apply_checks(engine: &Mutex<Engine>, cfg: &Config) -> Result<(), DaemonError> {
    let mut e = engine.lock().unwrap_or_else(|p| p.into_inner());
    for (i, c) in cfg.health.checks.iter().enumerate() {
        let mut lines = vec![[
            vec!["--check-set".to_string()],
            c.service.clone(),
            c.words.clone(),
        ]
        .concat()];
        if let Some(f) = &c.fallback {
            lines.push(
                [
                    vec!["--sorry-set".to_string()],
                    c.service.clone(),
                    f.clone(),
                ]
                .concat(),
            );
        }
        for args in lines {
            let r = e.execute("rvsadm", &args, None);
            if r.code != 0 {
                return Err(err(format!(
                    "health.check[{i}] ({}): {}",
                    c.service.join(" "),
                    r.stderr.trim()
                )));
            }
        }
    }
    Ok(())
}

fn apply_rules(engine: &Mutex<Engine>, path: &std::path::Path) -> Result<(), DaemonError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(format!("ctl.rules: cannot read {}: {e}", path.display())))?;
    let mut e = engine.lock().unwrap_or_else(|p| p.into_inner());
    let reply = e.restore("rvsd", &text);
    if reply.code != 0 {
        let why = reply.stderr.trim_end().replace('\n', "; ");
        return Err(err(format!("ctl.rules: {}: {why}", path.display())));
    }
    log::info!(
        "applied {} service(s) from {}",
        e.table().services().len(),
        path.display()
    );
    Ok(())
}

fn describe_sink(sink: &Sink) -> String {
    match sink {
        Sink::File(p) => p.display().to_string(),
        Sink::Syslog { socket, facility } => {
            format!("syslog at {} (facility {facility})", socket.display())
        }
    }
}

/// ipvsadm.service's save at stop. Every change was saved already; this
/// one retries a save that failed (a full disk since freed).
fn save_rules_at_stop(engine: &Mutex<Engine>) {
    let mut e = engine.lock().unwrap_or_else(|p| p.into_inner());
    match e.save_rules() {
        Some(Ok(path)) => log::info!("rules saved to {}", path.display()),
        Some(Err(why)) => log::error!("ctl.persist: cannot save the rules at stop: {why}"),
        None => {}
    }
}

/// The main lcore's loop: neighbour fan-out and link watching, until a signal.
#[allow(clippy::too_many_arguments)]
fn control_loop(
    stop: &[&AtomicBool],
    from_workers: &Receiver<ToControl>,
    to_workers: &[Sender<ToWorker>],
    ports: &[Port],
    counters: &[Arc<WorkerCounters>],
    services: &ArcSwap<ServiceSet>,
    net: &ArcSwap<NetConfig>,
    base: &NetConfig,
    hup: &AtomicBool,
    mut keepalived: Option<&mut crate::keepalived::Reloader>,
    mut vrrp: Option<&mut crate::vrrp::Vrrp>,
    mut announcer: Option<(&mut Announcer<KernelTable>, usize)>,
    mut flows: Option<&mut FlowSteering>,
) {
    if let Some(f) = flows.as_deref_mut() {
        f.update(&services.load());
    }
    let mut announce = |set: &ServiceSet| {
        if let Some((a, port)) = announcer.as_mut() {
            let addrs = net.load();
            a.update(set, ports[*port].link().up, |vip| addrs.is_standby(vip));
        }
    };
    announce(&services.load());
    let mut seen_generation = services.load().generation();
    let conflicts = || {
        counters
            .iter()
            .map(|c| c.address_conflicts.get())
            .sum::<u64>()
    };
    let mut last_conflicts = 0;
    // Mbufs ran out either at the NIC (rx_nombuf: the PMD could not refill
    // a ring) or in a worker building a reply; either way traffic is lost
    // and the operator should grow the pool or find the leak.
    let no_buffer = || {
        let workers: u64 = counters.iter().map(|c| c.drops(DropReason::NoBuffer)).sum();
        workers + ports.iter().map(|p| p.stats().rx_nombuf).sum::<u64>()
    };
    let no_laddr = || {
        counters
            .iter()
            .map(|c| c.drops(DropReason::NoLocalAddr))
            .sum::<u64>()
    };
    let (mut last_no_buffer, mut last_no_laddr) = (no_buffer(), no_laddr());
    let mut neighbours: HashMap<(u16, IpAddr), MacAddr> = HashMap::new();
    let mut links: Vec<dpdk::LinkState> = ports.iter().map(Port::link).collect();
    let mut last_link_check = Instant::now();
    let estimate_every = Duration::from_millis(SAMPLE_INTERVAL_MS);
    let mut next_estimate = Instant::now() + estimate_every;
    let vrrp_to = to_workers.first();
    if let (Some(v), Some(to)) = (vrrp.as_deref_mut(), vrrp_to) {
        crate::vrrp::send(v.start(), to);
    }
    while !stop.iter().any(|s| s.load(Ordering::Relaxed)) {
        // VRRP's timers wake the loop when due, not at the next 100 ms.
        let wait =
            vrrp.as_deref()
                .and_then(|v| v.next_wake())
                .map_or(Duration::from_millis(100), |t| {
                    t.saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(100))
                });
        match from_workers.recv_timeout(wait) {
            Ok(ToControl::Learned { worker, update }) => {
                fan_out(&mut neighbours, worker, update, to_workers)
            }
            Ok(ToControl::Vrrp(a)) => {
                if let (Some(v), Some(to)) = (vrrp.as_deref_mut(), vrrp_to) {
                    crate::vrrp::send(v.heard(a), to);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if hup.swap(false, Ordering::Relaxed) {
            match keepalived.as_deref_mut() {
                Some(k) => k.reload(),
                None => log::info!("SIGHUP: nothing to reload (no [keepalived] config)"),
            }
        }
        if let (Some(v), Some(to)) = (vrrp.as_deref_mut(), vrrp_to) {
            crate::vrrp::send(v.poll(), to);
        }
        let generation = services.load().generation();
        let handed_over = vrrp.as_deref_mut().is_some_and(|v| v.take_changed());
        if generation != seen_generation || handed_over {
            seen_generation = generation;
            publish_addresses(net, base, &services.load(), vrrp.as_deref_mut());
            announce(&services.load());
            if let Some(f) = flows.as_deref_mut() {
                f.update(&services.load());
            }
        }
        let now = Instant::now();
        if now >= next_estimate {
            // A fixed schedule, not "2 s after the last one", keeps the
            // estimator's 2-second samples from drifting; after a stall it
            // starts afresh rather than catching up in a burst.
            next_estimate += estimate_every;
            if next_estimate <= now {
                next_estimate = now + estimate_every;
            }
            estimate_rates(&services.load());
        }
        if last_link_check.elapsed() >= Duration::from_secs(1) {
            last_link_check = Instant::now();
            let c = conflicts();
            if c > last_conflicts {
                log::warn!(
                    "{} ARP/NA packet(s) from other hosts claimed addresses rvsd owns",
                    c - last_conflicts
                );
                last_conflicts = c;
            }
            // Checked once a second, so these lines come at most that often
            // whatever the drop rate; the logger's limit caps them again.
            let n = no_buffer();
            if n > last_no_buffer {
                log::warn!(
                    "mbuf pool exhausted: {} packet(s) dropped for want of an mbuf in the last second (rx_nombuf + no_buffer)",
                    n - last_no_buffer
                );
                last_no_buffer = n;
            }
            let n = no_laddr();
            if n > last_no_laddr {
                log::warn!(
                    "local addresses exhausted: {} new FULLNAT conn(s) dropped with no free local port (add addresses with -P)",
                    n - last_no_laddr
                );
                last_no_laddr = n;
            }
            for (p, last) in ports.iter().zip(links.iter_mut()) {
                let now = p.link();
                if now.up != last.up {
                    if now.up {
                        log::info!("port {}: link up, {} Mbps", p.name(), now.speed_mbps);
                    } else {
                        log::warn!("port {}: link down", p.name());
                    }
                }
                *last = now;
            }
            announce(&services.load());
        }
    }
}

/// Starts serving /metrics from the running daemon's parts.
#[allow(clippy::too_many_arguments)]
fn start_metrics(
    listener: MetricsListener,
    cfg: &Config,
    ports: &[Port],
    flow_rules: &HashMap<u16, Arc<AtomicU64>>,
    lcores: &[u32],
    counters: &[Arc<WorkerCounters>],
    pool: &Arc<Mempool>,
    services: &Arc<ArcSwap<ServiceSet>>,
    session_log: Option<crate::sessionlog::writer::Counters>,
    vrrp: Option<Arc<crate::vrrp::status::Status>>,
    announce: Option<Arc<crate::announce::Status>>,
) -> Option<MetricsServer> {
    let sources = MetricsSources {
        workers: lcores
            .iter()
            .zip(counters)
            .enumerate()
            .map(|(index, (&lcore, c))| WorkerSource {
                index,
                lcore,
                counters: c.clone(),
            })
            .collect(),
        ports: cfg
            .ports
            .iter()
            .zip(ports)
            .map(|(pc, p)| metrics::port_source(&pc.name, p, flow_rules.get(&p.id()).cloned()))
            .collect(),
        pools: vec![metrics::pool_source("rvs_pkt", pool.clone())],
        services: services.clone(),
        dpdk_version: metrics::dpdk_version(),
        session_log,
        vrrp,
        announce,
    };
    match listener.serve(sources) {
        Ok(server) => {
            log::info!("metrics at http://{}/metrics", server.local_addr());
            Some(server)
        }
        Err(e) => {
            log::error!("cannot start the metrics thread: {e}");
            None
        }
    }
}

/// One rate-estimator sample of every service and real server.
fn estimate_rates(set: &ServiceSet) {
    for s in set.services() {
        s.stats.estimate();
        for d in s.dests() {
            d.stats.estimate();
        }
    }
}

fn fan_out(
    table: &mut HashMap<(u16, IpAddr), MacAddr>,
    from: usize,
    u: NeighUpdate,
    to_workers: &[Sender<ToWorker>],
) {
    if table.insert((u.port, u.ip), u.mac) != Some(u.mac) {
        log::debug!("neighbour {} is at {} on port {}", u.ip, u.mac, u.port);
    }
    for (i, tx) in to_workers.iter().enumerate() {
        if i != from {
            // A full queue only delays what that worker learns: it will
            // resolve the neighbour itself if it needs it first.
            let _ = tx.try_send(ToWorker::Neighbour(u));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str, devargs: &str) -> Config {
        Config::from_toml_str(&format!(
            "[eal]\nargs = [{extra}]\n[dataplane]\nworkers = [1, 2]\n[[port]]\nname = \"p\"\ndevargs = \"{devargs}\"\n"
        ))
        .unwrap()
    }

    #[test]
    fn eal_args_add_lcores_and_keep_unasked_pci_devices_out() {
        let a = eal_args(&cfg("\"--no-huge\"", "net_null0"));
        assert_eq!(
            a,
            ["--no-huge", "--no-pci", "-l", "0,1,2", "--main-lcore=0"]
        );
        let a = eal_args(&cfg("", "0000:01:00.0,rxq_pkt_split=1"));
        assert_eq!(
            a,
            [
                "-a",
                "0000:01:00.0,rxq_pkt_split=1",
                "-l",
                "0,1,2",
                "--main-lcore=0"
            ]
        );
        let a = eal_args(&cfg(
            "\"--lcores=0@0,(1,2)@1\", \"-a\", \"0000:02:00.0\"",
            "0000:01:00.0",
        ));
        assert_eq!(
            a,
            ["--lcores=0@0,(1,2)@1", "-a", "0000:02:00.0"],
            "the operator's choices stand"
        );
    }

    #[test]
    fn the_estimator_samples_services_and_their_reals() {
        use crate::ipvs::{DestConfig, Protocol, ServiceConfig, ServiceKey, ServiceTable};
        let mut t = ServiceTable::new(1);
        let k = ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "10.0.0.1".parse().unwrap(),
            port: 80,
        };
        t.add_service(ServiceConfig::new(k)).unwrap();
        t.add_dest(&k, DestConfig::new("10.0.1.1".parse().unwrap(), 80))
            .unwrap();
        let set = t.snapshot();
        let svc = &set.services()[0];
        for _ in 0..40 {
            svc.stats.worker(0).conns.add(200);
            svc.dests()[0].stats.worker(0).inpkts.add(2000);
            estimate_rates(&set);
        }
        assert_eq!(svc.stats.rates().cps, 100);
        assert_eq!(svc.dests()[0].stats.rates().inpps, 1000);
    }

    #[test]
    fn pci_addresses_are_told_from_vdevs() {
        assert!(is_pci("0000:3b:00.1"));
        assert!(is_pci("3b:00.1,foo=bar"));
        assert!(!is_pci("net_af_packet0,iface=eth0"));
        assert!(!is_pci("0000:3b:00"));
    }
}
