//! The ports and what the network stack knows of them: ethdevs opened and
//! started, interfaces, routes and neighbours from the configuration, RSS
//! spreads, the exception path's tap, the addresses answered for.
use super::*;

/// Each configured port opened on the pool (started later, once the
/// network stack knows it), with a tx queue per worker.
pub(super) fn open_ports(cfg: &Config, pool: &Arc<Mempool>) -> Result<Vec<Port>, DaemonError> {
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
            Port::open(&setup, pool).map_err(|e| err(format!("port[{i}] ({}): {e}", pc.name)))?;
        ports.push(port);
    }
    Ok(ports)
}

/// The network stack's view of the ports: their interfaces and
/// addresses, the static routes, the ports that take any MAC; and the
/// configured neighbours, which each worker has before its first packet.
pub(super) fn net_config(
    cfg: &Config,
    ports: &[Port],
) -> Result<(NetConfig, Vec<NeighUpdate>), DaemonError> {
    let ifaces: Vec<Iface> = cfg
        .ports
        .iter()
        .zip(ports)
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
            .zip(ports)
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
    let mut net = NetConfig::new(ifaces, statics);
    for (pc, p) in cfg.ports.iter().zip(ports) {
        if pc.accept_other_mac {
            net = net.with_accept_other_mac(p.id());
        }
    }
    Ok((net, static_neighbours))
}

/// Starts each port and says how it came up.
pub(super) fn start_ports(cfg: &Config, ports: &mut [Port]) -> Result<(), DaemonError> {
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
    Ok(())
}

/// The ports whose RSS decides which worker owns a flow (`[[port]] rss`,
/// DESIGN.md "Per-lcore ownership"): those that spread over one queue per
/// worker by a hash rvs can compute. Said in the log, port by port.
pub(super) fn port_spreads(
    cfg: &Config,
    ports: &[Port],
) -> Result<Vec<(u16, Arc<Spread>)>, DaemonError> {
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

/// Applies the start-up rules file: every line or rvsd does not start.
/// The exception path, when `[health] sources` asks for one: a net_tap
/// port whose kernel side carries the sources, with its policy routes.
pub(super) fn open_host_path(
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

/// What rvs answers the host's ARP and ND on the exception path with: a
/// locally administered address no real NIC has.
const HOST_PATH_MAC: MacAddr = MacAddr([0x02, 0x72, 0x76, 0x73, 0x68, 0x63]);

/// `[announce]`: the VIP routes' table on the exception path's tap, and
/// the index of the port whose link gates them.
pub(super) fn announce_setup(
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

/// The addresses rvsd answers for: the interfaces', plus every VIP and
/// FULLNAT local address of the services. Worker 0 announces new ones.
pub(super) fn publish_addresses(
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
