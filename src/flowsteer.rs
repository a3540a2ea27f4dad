//! `[[port]] flow_steering`: rte_flow rules that queue each FULLNAT local
//! address's replies to the worker whose slice holds the local port (DPVS's
//! sa_pool), for ports whose device has a flow director. One TCP and one
//! UDP rule per (local address, worker); kept in step with the services'
//! local addresses by the control thread. Checked with `rte_flow_validate`
//! at start: a device that refuses them stops rvsd with the device's
//! reason, rather than leave the option without effect.
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::dpdk::flow::{self, FlowRule, LportRule};
use crate::ipvs::ServiceSet;
use crate::laddr::PortSteer;

/// A port with flow steering on.
pub struct SteeredPort {
    pub id: u16,
    pub name: String,
    /// The port's own addresses: the local address of FULLNAT services
    /// without -P addresses of their family.
    pub addrs: Vec<IpAddr>,
    /// Rules installed, for the metrics.
    pub rules: Arc<AtomicU64>,
}

pub struct FlowSteering {
    ports: Vec<SteeredPort>,
    steer: PortSteer,
    installed: HashMap<(u16, IpAddr), Vec<FlowRule>>,
}

/// The rules that steer `lip`'s replies on a port: TCP and UDP, one per
/// worker's slice of the local ports.
pub fn rules_for(lip: IpAddr, steer: PortSteer) -> Vec<LportRule> {
    let mut out = Vec::new();
    for w in 0..steer.workers() {
        let Some((mask, value)) = steer.flow_match(w) else {
            continue;
        };
        for proto in [6, 17] {
            out.push(LportRule {
                lip,
                proto,
                mask,
                value,
                queue: w as u16,
            });
        }
    }
    out
}

impl FlowSteering {
    /// Validates and installs the rules for the ports' own addresses.
    pub fn start(ports: Vec<SteeredPort>, steer: PortSteer) -> Result<FlowSteering, String> {
        let mut s = FlowSteering {
            ports,
            steer,
            installed: HashMap::new(),
        };
        for p in &s.ports {
            for &a in &p.addrs {
                for r in rules_for(a, steer) {
                    flow::validate(p.id, &r).map_err(|e| {
                        format!(
                            "port {}: flow_steering: {e} (queue {} for {} port & {:#x} == {} to {a})",
                            p.name,
                            r.queue,
                            if r.proto == 6 { "TCP" } else { "UDP" },
                            r.mask,
                            r.value
                        )
                    })?;
                }
            }
        }
        let want: HashSet<(u16, IpAddr)> = s
            .ports
            .iter()
            .flat_map(|p| p.addrs.iter().map(|&a| (p.id, a)))
            .collect();
        s.apply(&want)?;
        Ok(s)
    }

    /// Follows the services' local addresses: a -P address bound (-F) to
    /// a steered port, or unbound, gets that port's (every steered port's)
    /// rules; one no service uses any more loses them.
    pub fn update(&mut self, set: &ServiceSet) {
        let mut want: HashSet<(u16, IpAddr)> = self
            .ports
            .iter()
            .flat_map(|p| p.addrs.iter().map(|&a| (p.id, a)))
            .collect();
        for svc in set.services() {
            for (a, name) in svc.laddrs() {
                for p in &self.ports {
                    if name.is_empty() || *name == p.name {
                        want.insert((p.id, *a));
                    }
                }
            }
        }
        if let Err(e) = self.apply(&want) {
            log::error!("flow_steering: {e}: replies to that address take the redirect ring");
        }
    }

    fn apply(&mut self, want: &HashSet<(u16, IpAddr)>) -> Result<(), String> {
        self.installed.retain(|k, _| want.contains(k));
        let mut failed = None;
        for &(port, lip) in want {
            if self.installed.contains_key(&(port, lip)) {
                continue;
            }
            let name = self.name(port);
            let made: Result<Vec<FlowRule>, _> = rules_for(lip, self.steer)
                .iter()
                .map(|r| flow::create(port, r))
                .collect();
            match made {
                Ok(rules) => {
                    log::info!(
                        "port {name}: {} flow rules queue the replies to {lip} to their local port's worker",
                        rules.len()
                    );
                    self.installed.insert((port, lip), rules);
                }
                Err(e) => failed = Some(format!("port {name}: {lip}: {e}")),
            }
        }
        for p in &self.ports {
            let n: usize = self
                .installed
                .iter()
                .filter(|((id, _), _)| *id == p.id)
                .map(|(_, r)| r.len())
                .sum();
            p.rules.store(n as u64, Ordering::Relaxed);
        }
        failed.map_or(Ok(()), Err)
    }

    fn name(&self, port: u16) -> String {
        self.ports
            .iter()
            .find(|p| p.id == port)
            .map_or_else(|| port.to_string(), |p| p.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_worker_gets_its_slice_of_each_protocol() {
        let lip: IpAddr = "198.19.0.5".parse().unwrap();
        let rules = rules_for(lip, PortSteer::new(3).unwrap());
        // Three workers, mask 3: slices 0, 1, 2 (slot 3 is nobody's).
        assert_eq!(rules.len(), 6);
        for w in 0..3u16 {
            for proto in [6, 17] {
                assert!(rules.contains(&LportRule {
                    lip,
                    proto,
                    mask: 3,
                    value: w,
                    queue: w
                }));
            }
        }
        // Every port the allocator gives worker w matches w's rule only.
        let steer = PortSteer::new(3).unwrap();
        for port in 1024..2048u16 {
            let hits: Vec<u16> = rules
                .iter()
                .filter(|r| r.proto == 6 && port & r.mask == r.value)
                .map(|r| r.queue)
                .collect();
            assert_eq!(
                hits.first().map(|&q| usize::from(q)),
                steer.owner_of(port),
                "{port}"
            );
            assert!(hits.len() <= 1);
        }
    }
}
