//! Virtual services and the table of them: ipvsadm's -A -E -D -C and
//! -a -e -d, with the kernel's errors, and the lookup a new packet does.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::dest::{Dest, DestConfig, FwdMethod};
use super::error::IpvsError;
use super::fwmark::{MarkRule, MarkRules};
use super::proxy_proto::ProxyProtocol;
use super::sched::{self, SchedFlags};
use super::stats::Stats;
use super::tunnel::Tunnel;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }
    pub fn from_number(n: u8) -> Option<Protocol> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }
    /// ipvsadm's protocol column.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// How a service is identified: (protocol, VIP, port) or a firewall mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceKey {
    Addr {
        proto: Protocol,
        addr: IpAddr,
        port: u16,
    },
    Fwmark {
        mark: u32,
        ipv6: bool,
    },
}

impl ServiceKey {
    /// The ipvsadm words that name the service: `-t 10.0.0.1:80`,
    /// `-u [fd00::1]:53`, `-f 5 -6`.
    pub fn words(&self) -> String {
        match *self {
            ServiceKey::Addr { proto, addr, port } => {
                let flag = match proto {
                    Protocol::Tcp => "-t",
                    Protocol::Udp => "-u",
                    Protocol::Sctp => "--sctp-service",
                };
                format!("{flag} {}", std::net::SocketAddr::new(addr, port))
            }
            ServiceKey::Fwmark { mark, ipv6 } => {
                format!("-f {mark}{}", if ipv6 { " -6" } else { "" })
            }
        }
    }

    pub fn is_ipv6(&self) -> bool {
        match *self {
            ServiceKey::Addr { addr, .. } => addr.is_ipv6(),
            ServiceKey::Fwmark { ipv6, .. } => ipv6,
        }
    }
    pub fn port(&self) -> u16 {
        match *self {
            ServiceKey::Addr { port, .. } => port,
            ServiceKey::Fwmark { .. } => 0,
        }
    }
}

/// -M: the client netmask of persistence templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Netmask {
    V4(u32),
    /// An IPv6 prefix length, 1..=128.
    V6(u8),
}

impl Netmask {
    /// ipvsadm's defaults: 255.255.255.255 and /128.
    pub fn host(ipv6: bool) -> Netmask {
        if ipv6 {
            Netmask::V6(128)
        } else {
            Netmask::V4(u32::MAX)
        }
    }

    /// The client network a template is keyed by (addresses of the other
    /// family pass unchanged).
    pub fn apply(self, a: IpAddr) -> IpAddr {
        match (self, a) {
            (Netmask::V4(m), IpAddr::V4(v4)) => IpAddr::V4((u32::from(v4) & m).into()),
            (Netmask::V6(len), IpAddr::V6(v6)) => {
                let m = u128::MAX
                    .checked_shl(128 - u32::from(len.min(128)))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(v6) & m).into())
            }
            _ => a,
        }
    }
}

/// What -A/-E give for a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    pub key: ServiceKey,
    pub scheduler: String,
    pub sched_flags: SchedFlags,
    /// -p: persistence timeout in seconds; None = not persistent.
    pub persistent: Option<u32>,
    pub netmask: Netmask,
    /// -o: one-packet scheduling (UDP and fwmark services).
    pub one_packet: bool,
    /// --pe: a persistence engine name.
    pub pe: Option<String>,
    /// DPVS's --proxy-protocol: the header put in front of each client's
    /// first byte (FULLNAT and NAT TCP services).
    pub proxy_protocol: ProxyProtocol,
}

impl ServiceConfig {
    /// ipvsadm's defaults: wlc, not persistent, host netmask.
    pub fn new(key: ServiceKey) -> ServiceConfig {
        ServiceConfig {
            key,
            scheduler: "wlc".into(),
            sched_flags: SchedFlags::default(),
            persistent: None,
            netmask: Netmask::host(key.is_ipv6()),
            one_packet: false,
            pe: None,
            proxy_protocol: ProxyProtocol::Disable,
        }
    }

    fn validate(&self) -> Result<(), IpvsError> {
        sched::new(&self.scheduler, self.sched_flags)?;
        if self.pe.as_deref().is_some_and(|pe| pe != "sip") {
            return Err(IpvsError::SchedulerNotFound);
        }
        if let ServiceKey::Addr { port: 0, .. } = self.key {
            if self.persistent.is_none() {
                return Err(IpvsError::InvalidArgument(
                    "Zero port specified for non-persistent service",
                ));
            }
        }
        if self.one_packet
            && matches!(self.key, ServiceKey::Addr { proto, .. } if proto != Protocol::Udp)
        {
            return Err(IpvsError::InvalidArgument(
                "One-Packet Scheduling is only for UDP virtual services",
            ));
        }
        if self.persistent.is_some_and(|t| t == 0) {
            return Err(IpvsError::InvalidArgument(
                "persistence timeout must be at least 1 second",
            ));
        }
        if matches!(self.netmask, Netmask::V6(l) if l == 0 || l > 128) {
            return Err(IpvsError::InvalidArgument(
                "IPv6 prefix length must be 1..128",
            ));
        }
        Ok(())
    }
}

/// One virtual service: its config, its dests (newest first, as the kernel
/// keeps them, since that order decides ties) and its counters.
#[derive(Debug)]
pub struct Service {
    pub config: ServiceConfig,
    dests: Vec<Arc<Dest>>,
    /// Real servers a health check took out of the list (ldirectord's
    /// quiescent=no), kept with their counters to come back when it passes.
    parked: Vec<Arc<Dest>>,
    /// FULLNAT local addresses (DPVS's -P), with the port name given.
    laddrs: Vec<(IpAddr, String)>,
    /// FULLNAT: put the client's address in a TOA option (rvs's --toa).
    toa: bool,
    /// DPVS's --synproxy: the director answers SYNs with cookies and opens
    /// the conn to the real server itself (TCP, FULLNAT and NAT only).
    synproxy: bool,
    pub stats: Arc<Stats>,
    /// `has_masq`, worked out once: a published service never changes.
    has_masq: std::sync::OnceLock<bool>,
    /// The table's director-wide totals, shared by every service of it, so
    /// that scheduling a conn can count it there without a table at hand.
    total: Arc<Stats>,
    id: u64,
    generation: u64,
}

impl Service {
    pub fn dests(&self) -> &[Arc<Dest>] {
        &self.dests
    }
    /// Whether this service's conns must live on the worker of the
    /// client's network rather than where RSS puts the client's packets:
    /// a persistent service's templates are per worker (`dataplane::steer`).
    pub fn client_owned(&self) -> bool {
        self.config.persistent.is_some()
    }
    /// Whether a dest (or a parked one) forwards by NAT.
    pub fn has_masq(&self) -> bool {
        *self.has_masq.get_or_init(|| {
            self.dests
                .iter()
                .chain(&self.parked)
                .any(|d| d.fwd() == FwdMethod::Masq)
        })
    }
    /// Whether FULLNAT conns carry the client's address to the real server
    /// in a TOA option.
    pub fn toa(&self) -> bool {
        self.toa
    }
    /// Whether the SYN proxy opens this service's conns.
    pub fn synproxy(&self) -> bool {
        self.synproxy
    }
    /// FULLNAT local addresses; empty means "the egress port's address".
    pub fn laddrs(&self) -> &[(IpAddr, String)] {
        &self.laddrs
    }
    /// The director's totals (the kernel's `tot_stats`).
    pub fn total(&self) -> &Stats {
        &self.total
    }
    /// Stable across edits: workers key their scheduler state by it.
    pub fn id(&self) -> u64 {
        self.id
    }
    /// Changes whenever the service's config or dest list changes, so a
    /// worker knows to rebuild its scheduler state.
    pub fn generation(&self) -> u64 {
        self.generation
    }
    pub fn key(&self) -> ServiceKey {
        self.config.key
    }
    /// Real servers out of the list because a health check failed.
    pub fn parked(&self) -> &[Arc<Dest>] {
        &self.parked
    }
    /// The real servers as configured: listed or parked, never the sorry
    /// server (what -S saves and health checks probe).
    pub fn configured_dests(&self) -> impl Iterator<Item = &Arc<Dest>> {
        self.dests
            .iter()
            .filter(|d| !d.is_sorry())
            .chain(self.parked.iter())
    }
    /// The sorry server, while it stands in.
    pub fn sorry(&self) -> Option<&Arc<Dest>> {
        self.dests.iter().find(|d| d.is_sorry())
    }
    fn find_dest(&self, addr: IpAddr, port: u16) -> Option<usize> {
        self.dests
            .iter()
            .position(|d| d.addr() == addr && d.port() == port)
    }
    fn find_parked(&self, addr: IpAddr, port: u16) -> Option<usize> {
        self.parked
            .iter()
            .position(|d| d.addr() == addr && d.port() == port)
    }
    /// A copy for the next generation; the caller changes what differs.
    fn next(&self, generation: u64) -> Service {
        Service {
            config: self.config.clone(),
            dests: self.dests.clone(),
            parked: self.parked.clone(),
            laddrs: self.laddrs.clone(),
            toa: self.toa,
            synproxy: self.synproxy,
            stats: self.stats.clone(),
            has_masq: std::sync::OnceLock::new(),
            total: self.total.clone(),
            id: self.id,
            generation,
        }
    }
}

/// The control plane's table of services. Every change makes new `Service`
/// values (dests and stats are shared), so a published snapshot never
/// changes under a worker.
#[derive(Debug, Default)]
pub struct ServiceTable {
    services: Vec<Arc<Service>>,
    /// Where each key is in `services`: -R of tens of thousands of rules
    /// must not scan the list for every line.
    pos: HashMap<ServiceKey, usize>,
    marks: MarkRules,
    /// Every conn, packet and byte of a conn whose real server is in its
    /// service's list, as the kernel's `tot_stats` (/proc/net/ip_vs_stats):
    /// it outlives the services it counted, so -D and -C take nothing off
    /// it; only -Z of everything zeroes it.
    total: Arc<Stats>,
    workers: usize,
    next_id: u64,
    generation: u64,
}

impl ServiceTable {
    /// A table whose counters have one slot per worker.
    pub fn new(workers: usize) -> ServiceTable {
        ServiceTable {
            workers: workers.max(1),
            total: Arc::new(Stats::new(workers)),
            ..Default::default()
        }
    }

    pub fn services(&self) -> &[Arc<Service>] {
        &self.services
    }

    pub fn get(&self, key: &ServiceKey) -> Option<&Arc<Service>> {
        self.pos.get(key).and_then(|&i| self.services.get(i))
    }

    fn index(&self, key: &ServiceKey) -> Result<usize, IpvsError> {
        self.pos.get(key).copied().ok_or(IpvsError::NoService)
    }

    fn reindex(&mut self) {
        self.pos = self
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.config.key, i))
            .collect();
    }

    /// Changes with every change to the table.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn bump(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// -A
    pub fn add_service(&mut self, cfg: ServiceConfig) -> Result<(), IpvsError> {
        if self.get(&cfg.key).is_some() {
            return Err(IpvsError::ServiceExists);
        }
        cfg.validate()?;
        self.next_id += 1;
        let generation = self.bump();
        self.pos.insert(cfg.key, self.services.len());
        self.services.push(Arc::new(Service {
            config: cfg,
            dests: Vec::new(),
            parked: Vec::new(),
            laddrs: Vec::new(),
            toa: false,
            synproxy: false,
            stats: Arc::new(Stats::new(self.workers)),
            has_masq: std::sync::OnceLock::new(),
            total: self.total.clone(),
            id: self.next_id,
            generation,
        }));
        Ok(())
    }

    /// -E: the whole config is replaced; dests and counters stay.
    pub fn edit_service(&mut self, cfg: ServiceConfig) -> Result<(), IpvsError> {
        let i = self.index(&cfg.key)?;
        cfg.validate()?;
        let generation = self.bump();
        self.services[i] = Arc::new(Service {
            config: cfg,
            ..self.services[i].next(generation)
        });
        Ok(())
    }

    /// -D
    pub fn delete_service(&mut self, key: &ServiceKey) -> Result<(), IpvsError> {
        let i = self.index(key)?;
        let svc = self.services.remove(i);
        svc.dests.iter().for_each(|d| d.set_unavailable());
        svc.parked.iter().for_each(|d| d.set_unavailable());
        self.reindex();
        self.bump();
        Ok(())
    }

    /// rvs's mark rules (`--mark-add`), which give packets the firewall
    /// marks that `-f` services match.
    pub fn marks(&self) -> &MarkRules {
        &self.marks
    }

    pub fn add_mark(&mut self, r: MarkRule) -> Result<(), IpvsError> {
        self.marks.add(r)?;
        self.bump();
        Ok(())
    }

    pub fn delete_mark(&mut self, r: &MarkRule) -> Result<(), IpvsError> {
        self.marks.delete(r)?;
        self.bump();
        Ok(())
    }

    /// -C
    pub fn clear(&mut self) {
        for s in self.services.drain(..) {
            s.dests.iter().for_each(|d| d.set_unavailable());
            s.parked.iter().for_each(|d| d.set_unavailable());
        }
        self.pos.clear();
        self.bump();
    }

    fn with_dests(&mut self, i: usize, dests: Vec<Arc<Dest>>) {
        let parked = self.services[i].parked.clone();
        self.with_lists(i, dests, parked);
    }

    fn with_lists(&mut self, i: usize, dests: Vec<Arc<Dest>>, parked: Vec<Arc<Dest>>) {
        let generation = self.bump();
        self.services[i] = Arc::new(Service {
            dests,
            parked,
            ..self.services[i].next(generation)
        });
    }

    /// DR and TUN dests of an address service take the service's port, as
    /// ipvsadm makes them.
    fn effective_port(svc: &Service, cfg: &DestConfig) -> u16 {
        match svc.config.key {
            ServiceKey::Addr { port, .. } if !cfg.fwd.maps_ports() => port,
            _ => cfg.port,
        }
    }

    /// -a: the new dest goes to the head of the list, as the kernel adds it.
    pub fn add_dest(&mut self, key: &ServiceKey, cfg: DestConfig) -> Result<(), IpvsError> {
        self.add_dest_tunnel(key, cfg, Tunnel::Ipip)
    }

    /// -a with the encapsulation of a `-i` dest (ipip for other methods),
    /// in place before any worker sees the dest.
    pub fn add_dest_tunnel(
        &mut self,
        key: &ServiceKey,
        cfg: DestConfig,
        tunnel: Tunnel,
    ) -> Result<(), IpvsError> {
        let i = self.index(key)?;
        cfg.validate()?;
        let svc = &self.services[i];
        let cfg = DestConfig {
            port: Self::effective_port(svc, &cfg),
            ..cfg
        };
        if svc.find_dest(cfg.addr, cfg.port).is_some()
            || svc.find_parked(cfg.addr, cfg.port).is_some()
        {
            return Err(IpvsError::DestExists);
        }
        if !crate::ipvs::dest::unicast(cfg.addr) {
            return Err(IpvsError::InvalidArgument(
                "real server address not unicast",
            ));
        }
        synproxy_takes(svc, cfg.fwd)?;
        let mut dests = Vec::with_capacity(svc.dests.len() + 1);
        let d = Dest::new(&cfg, self.workers);
        d.set_tunnel(tunnel);
        dests.push(Arc::new(d));
        dests.extend(svc.dests.iter().cloned());
        self.with_dests(i, dests);
        Ok(())
    }

    /// -e: a complete new config for an existing dest.
    pub fn edit_dest(&mut self, key: &ServiceKey, cfg: DestConfig) -> Result<(), IpvsError> {
        self.edit_dest_tunnel(key, cfg, Tunnel::Ipip)
    }

    /// -e with the encapsulation, which like the rest of -e is replaced
    /// whole (an -e without --tun-type goes back to ipip, as in the kernel).
    pub fn edit_dest_tunnel(
        &mut self,
        key: &ServiceKey,
        cfg: DestConfig,
        tunnel: Tunnel,
    ) -> Result<(), IpvsError> {
        let i = self.index(key)?;
        cfg.validate()?;
        let svc = &self.services[i];
        let cfg = DestConfig {
            port: Self::effective_port(svc, &cfg),
            ..cfg
        };
        synproxy_takes(svc, cfg.fwd)?;
        // A parked dest takes the edit too: it comes back with it.
        let d = svc
            .find_dest(cfg.addr, cfg.port)
            .map(|j| &svc.dests[j])
            .or_else(|| svc.find_parked(cfg.addr, cfg.port).map(|j| &svc.parked[j]))
            .ok_or(IpvsError::NoDest)?;
        // Before the method: a dest turning to -i is never seen tunnelling
        // with the old encapsulation.
        d.set_tunnel(tunnel);
        d.update(&cfg);
        let dests = svc.dests.clone();
        self.with_dests(i, dests);
        Ok(())
    }

    /// -d: the dest leaves the list; its conns keep it alive until they end.
    pub fn delete_dest(
        &mut self,
        key: &ServiceKey,
        addr: IpAddr,
        port: u16,
    ) -> Result<(), IpvsError> {
        let i = self.index(key)?;
        let svc = &self.services[i];
        // Exactly the address and port given: -d carries no forwarding
        // method, so nothing moves the port to the service's as -a/-e do
        // for DR and TUN (ipvsadm 1.31 and ip_vs_del_dest alike).
        let (mut dests, mut parked) = (svc.dests.clone(), svc.parked.clone());
        if let Some(j) = svc.find_dest(addr, port) {
            dests.remove(j).set_unavailable();
        } else if let Some(j) = svc.find_parked(addr, port) {
            parked.remove(j);
        } else {
            return Err(IpvsError::NoDest);
        }
        self.with_lists(i, dests, parked);
        Ok(())
    }

    /// DPVS -P: a FULLNAT local address for the service.
    pub fn add_laddr(
        &mut self,
        key: &ServiceKey,
        addr: IpAddr,
        ifname: &str,
    ) -> Result<(), IpvsError> {
        let i = self.index(key)?;
        let svc = &self.services[i];
        if svc.laddrs.iter().any(|(a, _)| *a == addr) {
            return Err(IpvsError::DestExists);
        }
        let generation = self.bump();
        let mut next = self.services[i].next(generation);
        next.laddrs.push((addr, ifname.to_owned()));
        self.services[i] = Arc::new(next);
        Ok(())
    }

    /// rvs's `--toa on|off`: FULLNAT conns of the service carry the client's
    /// address in a TCP option (kind 254, as DPVS and Alibaba's LVS send it).
    pub fn set_toa(&mut self, key: &ServiceKey, on: bool) -> Result<(), IpvsError> {
        let i = self.index(key)?;
        let generation = self.bump();
        self.services[i] = Arc::new(Service {
            toa: on,
            ..self.services[i].next(generation)
        });
        Ok(())
    }

    /// DPVS's `--synproxy enable|disable`. Only a TCP service all of whose
    /// real servers forward by FULLNAT or NAT can have it: the proxy must
    /// see both halves of the conn.
    pub fn set_synproxy(&mut self, key: &ServiceKey, on: bool) -> Result<(), IpvsError> {
        let i = self.index(key)?;
        if on {
            synproxy_allowed(&self.services[i])?;
        }
        let generation = self.bump();
        self.services[i] = Arc::new(Service {
            synproxy: on,
            ..self.services[i].next(generation)
        });
        Ok(())
    }

    /// DPVS -Q.
    pub fn del_laddr(&mut self, key: &ServiceKey, addr: IpAddr) -> Result<(), IpvsError> {
        let i = self.index(key)?;
        if !self.services[i].laddrs.iter().any(|(a, _)| *a == addr) {
            return Err(IpvsError::NoDest);
        }
        let generation = self.bump();
        let mut next = self.services[i].next(generation);
        next.laddrs.retain(|(a, _)| *a != addr);
        self.services[i] = Arc::new(next);
        Ok(())
    }

    /// -Z: all services (None) or one.
    pub fn zero(&mut self, key: Option<&ServiceKey>) -> Result<(), IpvsError> {
        let zero = |s: &Service| {
            s.stats.zero();
            s.dests.iter().for_each(|d| d.stats.zero());
            s.parked.iter().for_each(|d| d.stats.zero());
        };
        match key {
            Some(k) => zero(&self.services[self.index(k)?]),
            None => {
                self.services.iter().for_each(|s| zero(s));
                self.total.zero();
            }
        }
        Ok(())
    }

    /// A health check's verdict on a real server. Down quiesces it (weight
    /// 0, its conns finish) or, with `quiescent` false, takes it out of the
    /// list as `-d` would; up undoes either. Whether anything changed.
    pub fn set_dest_health(
        &mut self,
        key: &ServiceKey,
        addr: IpAddr,
        port: u16,
        up: bool,
        quiescent: bool,
    ) -> Result<bool, IpvsError> {
        let i = self.index(key)?;
        let svc = &self.services[i];
        let (mut dests, mut parked) = (svc.dests.clone(), svc.parked.clone());
        let listed = svc.find_dest(addr, port).filter(|&j| !dests[j].is_sorry());
        let was_parked = svc.find_parked(addr, port);
        let changed = match (listed, was_parked) {
            (Some(j), _) => {
                let d = &dests[j];
                match (up, quiescent) {
                    (true, _) | (false, true) if d.is_inhibited() != up => false,
                    (true, _) | (false, true) => {
                        d.set_inhibited(!up);
                        true
                    }
                    (false, false) => {
                        let d = dests.remove(j);
                        d.set_inhibited(false);
                        d.set_unavailable();
                        parked.push(d);
                        true
                    }
                }
            }
            (None, Some(j)) if up || quiescent => {
                // Back at the head of the list, where -a puts a dest.
                let d = parked.remove(j);
                d.set_available();
                d.set_inhibited(!up);
                dests.insert(0, d);
                true
            }
            (None, Some(_)) => false,
            (None, None) => return Err(IpvsError::NoDest),
        };
        if changed {
            self.with_lists(i, dests, parked);
        }
        Ok(changed)
    }

    /// Puts the service's sorry server in (at the head of the list, as -a
    /// would) or takes it out; its conns finish either way. Whether
    /// anything changed.
    pub fn set_sorry(
        &mut self,
        key: &ServiceKey,
        sorry: Option<&DestConfig>,
    ) -> Result<bool, IpvsError> {
        self.set_sorry_tunnel(key, sorry.map(|c| (c, Tunnel::Ipip)))
    }

    /// [`ServiceTable::set_sorry`] with the encapsulation of a `-i` sorry
    /// server.
    pub fn set_sorry_tunnel(
        &mut self,
        key: &ServiceKey,
        sorry: Option<(&DestConfig, Tunnel)>,
    ) -> Result<bool, IpvsError> {
        let i = self.index(key)?;
        let svc = &self.services[i];
        let current = svc.dests.iter().position(|d| d.is_sorry());
        let same = |d: &Dest, (c, t): (&DestConfig, Tunnel)| {
            let mut want = *c;
            want.port = Self::effective_port(svc, c);
            d.config() == want && d.tunnel() == t
        };
        let mut dests = svc.dests.clone();
        match (current, sorry) {
            (None, None) => return Ok(false),
            (Some(j), Some(c)) if same(&dests[j], c) => return Ok(false),
            (Some(j), _) => dests.remove(j).set_unavailable(),
            (None, Some(_)) => {}
        }
        if let Some((c, t)) = sorry {
            c.validate()?;
            synproxy_takes(svc, c.fwd)?;
            let c = DestConfig {
                port: Self::effective_port(svc, c),
                ..*c
            };
            if svc
                .find_dest(c.addr, c.port)
                .is_some_and(|j| !svc.dests[j].is_sorry())
                || svc.find_parked(c.addr, c.port).is_some()
            {
                return Err(IpvsError::DestExists);
            }
            let d = Dest::new_sorry(&c, self.workers);
            d.set_tunnel(t);
            dests.insert(0, Arc::new(d));
        }
        self.with_dests(i, dests);
        Ok(true)
    }

    /// A table with the same services and dests that shares no dest, stats
    /// or counters with this one: `-R` tries its lines on it first, so a
    /// failing line leaves the live table untouched.
    pub fn dry_run_copy(&self) -> ServiceTable {
        let mut t = ServiceTable::new(1);
        for s in &self.services {
            let key = s.config.key;
            // Both were valid here, so they are valid there.
            let _ = t.add_service(s.config.clone());
            let dests: Vec<&Arc<Dest>> = s.configured_dests().collect();
            for d in dests.into_iter().rev() {
                let _ = t.add_dest(&key, d.config());
            }
            for (a, ifname) in &s.laddrs {
                let _ = t.add_laddr(&key, *a, ifname);
            }
            if s.toa {
                let _ = t.set_toa(&key, true);
            }
            if s.synproxy {
                let _ = t.set_synproxy(&key, true);
            }
        }
        t.marks = self.marks.clone();
        t
    }

    /// An immutable lookup structure for the workers.
    pub fn snapshot(&self) -> ServiceSet {
        let mut by_addr = HashMap::new();
        let mut by_mark = HashMap::new();
        let mut rs_out = HashMap::new();
        for (i, s) in self.services.iter().enumerate() {
            match s.config.key {
                ServiceKey::Addr { proto, addr, port } => {
                    by_addr.insert((proto, addr, port), i);
                    if port != 0 && s.config.pe.as_deref() == Some(super::pe_sip::NAME) {
                        for (j, d) in s.dests().iter().enumerate() {
                            if d.fwd() == super::dest::FwdMethod::Masq && d.port() != 0 {
                                rs_out.entry((proto, d.addr(), d.port())).or_insert((i, j));
                            }
                        }
                    }
                }
                ServiceKey::Fwmark { mark, ipv6 } => {
                    by_mark.insert((mark, ipv6), i);
                }
            }
        }
        let (mut m4, mut l6, mut wide) = (0xffff_ff00u32, 64u8, false);
        for s in &self.services {
            if s.config.persistent.is_none() || !s.has_masq() {
                continue;
            }
            match s.config.netmask {
                Netmask::V4(m) if m & m4 != m4 => (m4, wide) = (m & m4, true),
                Netmask::V6(l) if l < l6 => (l6, wide) = (l, true),
                _ => {}
            }
        }
        ServiceSet {
            services: self.services.clone(),
            by_addr,
            by_mark,
            rs_out,
            marks: self.marks.clone(),
            total: self.total.clone(),
            generation: self.generation,
            nat_net: wide.then_some((m4, l6)),
        }
    }
}

/// Why `--synproxy` cannot be on for this service, if it cannot.
const SYNPROXY_TCP_ONLY: &str =
    "--synproxy needs a TCP service (-t): not UDP, SCTP or a firewall mark";
const SYNPROXY_FNAT_NAT_ONLY: &str =
    "--synproxy needs real servers that forward by FULLNAT (-b) or NAT (-m)";

/// Whether `svc` could have the SYN proxy: a TCP address service whose
/// real servers (parked and sorry ones too) all forward by FULLNAT or NAT.
pub fn synproxy_allowed(svc: &Service) -> Result<(), IpvsError> {
    synproxy_key(&svc.config.key)?;
    if svc
        .dests
        .iter()
        .chain(&svc.parked)
        .any(|d| !synproxy_fwd(d.fwd()))
    {
        return Err(IpvsError::InvalidArgument(SYNPROXY_FNAT_NAT_ONLY));
    }
    Ok(())
}

/// Whether a service of this key could have the SYN proxy: a TCP address
/// service (not UDP or SCTP, whose handshakes it does not know, nor a
/// firewall mark, which may carry any protocol).
pub fn synproxy_key(key: &ServiceKey) -> Result<(), IpvsError> {
    match key {
        ServiceKey::Addr {
            proto: Protocol::Tcp,
            ..
        } => Ok(()),
        _ => Err(IpvsError::InvalidArgument(SYNPROXY_TCP_ONLY)),
    }
}

/// The forwarding methods whose replies come back through the director.
fn synproxy_fwd(fwd: FwdMethod) -> bool {
    matches!(fwd, FwdMethod::FullNat | FwdMethod::Masq)
}

/// A SYN-proxy service takes only FULLNAT and NAT real servers.
fn synproxy_takes(svc: &Service, fwd: FwdMethod) -> Result<(), IpvsError> {
    if svc.synproxy && !synproxy_fwd(fwd) {
        return Err(IpvsError::InvalidArgument(SYNPROXY_FNAT_NAT_ONLY));
    }
    Ok(())
}

/// What workers look services up in.
#[derive(Debug, Default, Clone)]
pub struct ServiceSet {
    services: Vec<Arc<Service>>,
    by_addr: HashMap<(Protocol, IpAddr, u16), usize>,
    by_mark: HashMap<(u32, bool), usize>,
    /// NAT real servers (proto, address, port) of services whose
    /// persistence engine lets a real server start conns (sip's conn_out):
    /// the service's and the dest's index.
    rs_out: HashMap<(Protocol, IpAddr, u16), (usize, usize)>,
    marks: MarkRules,
    total: Arc<Stats>,
    generation: u64,
    /// The persistence netmasks of the NAT services, combined (None: none
    /// wider than /24 and /64): `owner_net`.
    nat_net: Option<(u32, u8)>,
}

impl ServiceSet {
    /// The client network whose worker owns a conn of `svc` from `client`
    /// (`dataplane::steer`), or for `svc` None a reply to `client` of a
    /// persistent NAT conn: for persistent services at least the netmask
    /// (one worker holds a template's every conn), for persistent NAT
    /// services the widest of every such service's (a reply names only
    /// the client, so they must agree), else the client's /24 or /64.
    pub fn owner_net(&self, svc: Option<&Service>, client: IpAddr) -> IpAddr {
        let nat = |a: IpAddr| match self.nat_net {
            Some((m4, l6)) => Netmask::V6(l6).apply(Netmask::V4(m4).apply(a)),
            None => a,
        };
        match svc {
            None => nat(client),
            Some(s) if s.client_owned() && s.has_masq() => nat(client),
            Some(s) if s.config.persistent.is_some() => s.config.netmask.apply(client),
            Some(_) => client,
        }
    }

    pub fn services(&self) -> &[Arc<Service>] {
        &self.services
    }
    /// The director's totals, the same counters in every snapshot of a
    /// table.
    pub fn total(&self) -> &Stats {
        &self.total
    }
    /// rvs's mark rules, as published with the services.
    pub fn marks(&self) -> &MarkRules {
        &self.marks
    }
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The service and NAT real server a packet from `addr`:`port` comes
    /// from, when that service's persistence engine lets real servers start
    /// conns (ip_vs_find_real_service, for the pe's conn_out).
    pub fn find_real_service(
        &self,
        proto: Protocol,
        addr: IpAddr,
        port: u16,
    ) -> Option<(&Arc<Service>, &Arc<Dest>)> {
        if self.rs_out.is_empty() {
            return None;
        }
        let &(i, j) = self.rs_out.get(&(proto, addr, port))?;
        let svc = self.services.get(i)?;
        Some((svc, svc.dests().get(j)?))
    }

    /// The kernel's order (ip_vs_service_find): firewall mark when the packet
    /// has one, then the exact <proto, VIP, port>, then the VIP's port-0
    /// service.
    pub fn lookup(
        &self,
        mark: u32,
        proto: Protocol,
        addr: IpAddr,
        port: u16,
    ) -> Option<&Arc<Service>> {
        // A mark of 0 means "as rvs's mark rules say".
        let mark = if mark == 0 && !self.by_mark.is_empty() {
            self.marks.classify(proto.number(), addr, port)
        } else {
            mark
        };
        let i = (mark != 0)
            .then(|| self.by_mark.get(&(mark, addr.is_ipv6())))
            .flatten()
            .or_else(|| self.by_addr.get(&(proto, addr, port)))
            .or_else(|| self.by_addr.get(&(proto, addr, 0)))?;
        self.services.get(*i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::dest::FwdMethod;

    fn tcp(addr: &str, port: u16) -> ServiceKey {
        ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: addr.parse().unwrap(),
            port,
        }
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn service_errors_are_the_kernels() {
        let mut t = ServiceTable::new(2);
        let k = tcp("10.0.0.1", 80);
        t.add_service(ServiceConfig::new(k)).unwrap();
        assert_eq!(
            t.add_service(ServiceConfig::new(k)),
            Err(IpvsError::ServiceExists)
        );
        assert_eq!(
            t.edit_service(ServiceConfig::new(tcp("10.0.0.2", 80))),
            Err(IpvsError::NoService)
        );
        assert_eq!(
            t.delete_service(&tcp("10.0.0.2", 80)),
            Err(IpvsError::NoService)
        );
        let mut bad = ServiceConfig::new(tcp("10.0.0.3", 80));
        bad.scheduler = "nosuch".into();
        assert_eq!(t.add_service(bad), Err(IpvsError::SchedulerNotFound));
        assert!(matches!(
            t.add_service(ServiceConfig::new(tcp("10.0.0.3", 0))),
            Err(IpvsError::InvalidArgument(_))
        ));
        let mut ops = ServiceConfig::new(tcp("10.0.0.3", 53));
        ops.one_packet = true;
        assert!(matches!(
            t.add_service(ops),
            Err(IpvsError::InvalidArgument(_))
        ));
        assert_eq!(t.services().len(), 1, "failed commands change nothing");
    }

    #[test]
    fn dests_are_newest_first_and_dr_takes_the_service_port() {
        let mut t = ServiceTable::new(1);
        let k = tcp("10.0.0.1", 80);
        t.add_service(ServiceConfig::new(k)).unwrap();
        t.add_dest(&k, DestConfig::new(ip("192.168.0.1"), 8080))
            .unwrap();
        let mut nat = DestConfig::new(ip("192.168.0.2"), 8080);
        nat.fwd = FwdMethod::Masq;
        t.add_dest(&k, nat).unwrap();
        let s = t.get(&k).unwrap();
        let got: Vec<(IpAddr, u16)> = s.dests().iter().map(|d| (d.addr(), d.port())).collect();
        assert_eq!(got, [(ip("192.168.0.2"), 8080), (ip("192.168.0.1"), 80)]);
        assert_eq!(
            t.add_dest(&k, DestConfig::new(ip("192.168.0.1"), 80)),
            Err(IpvsError::DestExists)
        );
        assert_eq!(
            t.add_dest(&tcp("10.9.9.9", 80), nat),
            Err(IpvsError::NoService)
        );
        assert_eq!(
            t.edit_dest(&k, DestConfig::new(ip("192.168.0.9"), 80)),
            Err(IpvsError::NoDest)
        );
        assert_eq!(
            t.delete_dest(&k, ip("192.168.0.9"), 80),
            Err(IpvsError::NoDest)
        );
    }

    #[test]
    fn edits_keep_counters_and_dest_identity_and_bump_the_generation() {
        let mut t = ServiceTable::new(1);
        let k = tcp("10.0.0.1", 80);
        t.add_service(ServiceConfig::new(k)).unwrap();
        t.add_dest(&k, DestConfig::new(ip("192.168.0.1"), 80))
            .unwrap();
        let before = t.get(&k).unwrap().clone();
        before.dests()[0].bind_conn(0, true);
        before.stats.worker(0).conns.inc();
        let mut e = DestConfig::new(ip("192.168.0.1"), 80);
        e.weight = 0;
        t.edit_dest(&k, e).unwrap();
        let mut cfg = ServiceConfig::new(k);
        cfg.scheduler = "rr".into();
        let after_dest_edit = t.get(&k).unwrap().clone();
        assert!(after_dest_edit.generation() > before.generation());
        assert_eq!(after_dest_edit.id(), before.id());
        assert_eq!(after_dest_edit.dests()[0].weight(), 0);
        assert_eq!(after_dest_edit.dests()[0].activeconns(), 1);
        assert_eq!(after_dest_edit.stats.snapshot().conns, 1);
        // The snapshot a worker holds did not change under it.
        assert_eq!(before.dests().len(), 1);
        t.delete_dest(&k, ip("192.168.0.1"), 80).unwrap();
        assert!(
            !before.dests()[0].is_available(),
            "a removed dest is never scheduled again"
        );
        assert!(t.get(&k).unwrap().dests().is_empty());
    }

    #[test]
    fn lookup_order_is_fwmark_exact_then_port_zero() {
        let mut t = ServiceTable::new(1);
        let mut p0 = ServiceConfig::new(tcp("10.0.0.1", 0));
        p0.persistent = Some(360);
        t.add_service(p0).unwrap();
        t.add_service(ServiceConfig::new(tcp("10.0.0.1", 443)))
            .unwrap();
        t.add_service(ServiceConfig::new(ServiceKey::Fwmark {
            mark: 7,
            ipv6: false,
        }))
        .unwrap();
        let set = t.snapshot();
        let key = |s: Option<&Arc<Service>>| s.map(|s| s.key());
        assert_eq!(
            key(set.lookup(0, Protocol::Tcp, ip("10.0.0.1"), 443)),
            Some(tcp("10.0.0.1", 443))
        );
        assert_eq!(
            key(set.lookup(0, Protocol::Tcp, ip("10.0.0.1"), 22)),
            Some(tcp("10.0.0.1", 0))
        );
        assert_eq!(
            key(set.lookup(7, Protocol::Tcp, ip("10.0.0.1"), 443)),
            Some(ServiceKey::Fwmark {
                mark: 7,
                ipv6: false
            })
        );
        assert_eq!(
            key(set.lookup(8, Protocol::Tcp, ip("10.0.0.1"), 443)),
            Some(tcp("10.0.0.1", 443))
        );
        assert_eq!(key(set.lookup(0, Protocol::Udp, ip("10.0.0.1"), 443)), None);
        assert_eq!(
            key(set.lookup(7, Protocol::Tcp, ip("fd00::1"), 443)),
            None,
            "an IPv4 mark service"
        );
    }

    #[test]
    fn netmask_keys_the_client_network() {
        assert_eq!(
            Netmask::V4(0xffff_ff00).apply(ip("192.0.2.77")),
            ip("192.0.2.0")
        );
        assert_eq!(
            Netmask::V6(64).apply(ip("2001:db8:1:2:3:4:5:6")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            Netmask::host(false).apply(ip("192.0.2.77")),
            ip("192.0.2.77")
        );
    }
}
