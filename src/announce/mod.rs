//! Health-gated announcement of the VIPs for ECMP scale-out (scenario 10 of
//! operator-scenarios.md): rvsd keeps a host route to each VIP (/32, /128)
//! in a kernel table of its own, on the exception path's tap, exactly while
//! the VIP can be served; a routing daemon on the host (BIRD's `protocol
//! kernel { learn; }`, FRR's `ip import-table`) reads the table and
//! announces what is in it by BGP, over a session that leaves from a
//! health-check source through rvs's dataplane.
//!
//! A VIP is **available** while at least one of its services lists a real
//! server with weight > 0: not quiesced by a failed check (weight 0), not
//! drained by the operator (`-w 0`), not parked by a `quiescent=no` check,
//! and not the sorry server (a director that can only serve the sorry page
//! leaves the traffic to directors that have real servers). A server over
//! its upper threshold still counts: overload is transient and per
//! director. The VIPs are the addresses of the `-t`, `-u` and
//! `--sctp-service` services, and the destination of a host-length (`/32`,
//! `/128`) mark rule whose mark is a `-f` service's.
//!
//! A VIP is **announced** while it is available and the announce port's
//! link is up. Its route goes when either stops, at an orderly stop of
//! rvsd, and with the tap when rvsd dies: the kernel deletes a vanished
//! interface's routes, so a killed rvsd leaves nothing announced.
pub mod kernel;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Mutex;

use crate::ipvs::{Service, ServiceKey, ServiceSet};

/// Where the routes go: the kernel table (see [`kernel::KernelTable`]),
/// or a record in tests.
pub trait RouteTable {
    fn add(&mut self, vip: IpAddr) -> Result<(), String>;
    fn remove(&mut self, vip: IpAddr) -> Result<(), String>;
    /// Whether routes of this family can be added (a family without a
    /// health-check source has no BGP session to carry them): the reason
    /// when not.
    fn refuses(&self, vip: IpAddr) -> Option<String>;
}

/// Whether a service has a real server that can take a new conn.
fn serves(s: &Service) -> bool {
    s.dests().iter().any(|d| !d.is_sorry() && d.weight() > 0)
}

/// Every VIP of the set, and whether it is available (module docs).
pub fn availability(set: &ServiceSet) -> BTreeMap<IpAddr, bool> {
    let mut vips = BTreeMap::new();
    let mut marks: BTreeMap<(u32, bool), bool> = BTreeMap::new();
    for s in set.services() {
        match s.key() {
            ServiceKey::Addr { addr, .. } => {
                *vips.entry(addr).or_insert(false) |= serves(s);
            }
            ServiceKey::Fwmark { mark, ipv6 } => {
                *marks.entry((mark, ipv6)).or_insert(false) |= serves(s);
            }
        }
    }
    for r in set.marks().rules() {
        let host = if r.dst.is_ipv4() { 32 } else { 128 };
        if r.prefix_len != host {
            continue;
        }
        if let Some(up) = marks.get(&(r.mark, r.dst.is_ipv6())) {
            *vips.entry(r.dst).or_insert(false) |= *up;
        }
    }
    vips
}

/// What /metrics shows: every VIP, and whether its route is in the table.
#[derive(Debug, Default)]
pub struct Status {
    vips: Mutex<Vec<(IpAddr, bool)>>,
}

impl Status {
    pub fn snapshot(&self) -> Vec<(IpAddr, bool)> {
        self.vips.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn set(&self, v: Vec<(IpAddr, bool)>) {
        *self.vips.lock().unwrap_or_else(|p| p.into_inner()) = v;
    }
}

/// Keeps the table in step with the VIPs' availability and the link.
#[derive(Debug)]
pub struct Announcer<T: RouteTable> {
    table: T,
    /// The announce port's name, for the log.
    port: String,
    announced: BTreeSet<IpAddr>,
    /// VIPs whose route could not be added, with why: said once, retried
    /// at every update.
    failed: BTreeMap<IpAddr, String>,
    link_up: Option<bool>,
    status: std::sync::Arc<Status>,
}

impl<T: RouteTable> Announcer<T> {
    pub fn new(table: T, port: &str) -> Announcer<T> {
        Announcer {
            table,
            port: port.to_string(),
            announced: BTreeSet::new(),
            failed: BTreeMap::new(),
            link_up: None,
            status: Default::default(),
        }
    }

    pub fn status(&self) -> std::sync::Arc<Status> {
        self.status.clone()
    }

    pub fn announced(&self) -> &BTreeSet<IpAddr> {
        &self.announced
    }

    /// Brings the table in step with `set`, the port's link, and VRRP:
    /// a VIP this director holds as a VRRP backup (`standby`) is not
    /// announced, since the director drops its traffic.
    pub fn update(&mut self, set: &ServiceSet, link_up: bool, standby: impl Fn(IpAddr) -> bool) {
        if self.link_up != Some(link_up) {
            if !link_up {
                log::warn!(
                    "announce: port {} link down: no VIP is announced while it is",
                    self.port
                );
            } else if self.link_up.is_some() {
                log::info!("announce: port {} link up again", self.port);
            }
            self.link_up = Some(link_up);
        }
        let vips = availability(set);
        let gone: Vec<IpAddr> = self
            .announced
            .iter()
            .filter(|v| !link_up || vips.get(v) != Some(&true) || standby(**v))
            .copied()
            .collect();
        for vip in gone {
            let why = if !vips.contains_key(&vip) {
                "no longer a VIP".to_string()
            } else if !link_up {
                format!("port {} link down", self.port)
            } else if standby(vip) {
                "this director is a VRRP backup for it".to_string()
            } else {
                "no real server available".to_string()
            };
            self.withdraw(vip, &why);
        }
        self.failed.retain(|v, _| vips.get(v) == Some(&true));
        if link_up {
            for (&vip, _) in vips.iter().filter(|(_, &up)| up) {
                if !self.announced.contains(&vip) && !standby(vip) {
                    self.announce(vip);
                }
            }
        }
        self.status.set(
            vips.keys()
                .map(|v| (*v, self.announced.contains(v)))
                .collect(),
        );
    }

    fn announce(&mut self, vip: IpAddr) {
        let r = match self.table.refuses(vip) {
            Some(why) => Err(why),
            None => self.table.add(vip),
        };
        match r {
            Ok(()) => {
                self.failed.remove(&vip);
                self.announced.insert(vip);
                log::info!("announce: VIP {vip} announced (a real server is available)");
            }
            Err(why) => {
                if self.failed.get(&vip) != Some(&why) {
                    log::error!("announce: VIP {vip} cannot be announced: {why}");
                    self.failed.insert(vip, why);
                }
            }
        }
    }

    fn withdraw(&mut self, vip: IpAddr, why: &str) {
        self.announced.remove(&vip);
        match self.table.remove(vip) {
            Ok(()) => log::warn!("announce: VIP {vip} withdrawn: {why}"),
            Err(e) => log::error!("announce: VIP {vip} withdrawn ({why}), but: {e}"),
        }
    }

    /// Takes every route out: rvsd is stopping.
    pub fn withdraw_all(&mut self) {
        let all: Vec<IpAddr> = self.announced.iter().copied().collect();
        for vip in all {
            self.withdraw(vip, "rvsd is stopping");
        }
        let mut s = self.status.snapshot();
        for (_, on) in &mut s {
            *on = false;
        }
        self.status.set(s);
    }
}
