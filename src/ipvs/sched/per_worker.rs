//! One worker's scheduler instances, kept in step with the services it sees.
//!
//! Control threads publish new `Service` values on every change; a worker
//! looks its scheduler up by the service's stable id and rebuilds derived
//! state only when the service's generation moved. Creating an instance
//! allocates, but only when a service first shows up or changes scheduler,
//! never per packet.
use hashbrown::hash_map::Entry::{Occupied, Vacant};
use hashbrown::HashMap;

use super::{new, SchedFlags, Scheduler};
use crate::ipvs::service::{Service, ServiceSet};
use crate::ipvs::Millis;

struct Entry {
    generation: u64,
    name: String,
    flags: SchedFlags,
    sched: Box<dyn Scheduler>,
}

impl Entry {
    /// A new instance of `svc`'s scheduler over its dests.
    fn of(svc: &Service) -> Option<Entry> {
        let cfg = &svc.config;
        let mut sched = new(&cfg.scheduler, cfg.sched_flags).ok()?;
        sched.update(svc.dests());
        Some(Entry {
            generation: svc.generation(),
            name: cfg.scheduler.clone(),
            flags: cfg.sched_flags,
            sched,
        })
    }
}

#[derive(Default)]
pub struct WorkerScheds {
    map: HashMap<u64, Entry>,
}

impl WorkerScheds {
    pub fn new() -> WorkerScheds {
        WorkerScheds::default()
    }

    /// The worker's scheduler for `svc`, current with its dest list. None
    /// only if the service names a scheduler rvs does not have, which the
    /// control plane refuses before publishing.
    pub fn for_service(&mut self, svc: &Service) -> Option<&mut dyn Scheduler> {
        // Every change to a service publishes it anew under a later
        // generation: the generation the entry has seen means the same
        // scheduler over the same dests, and one lookup serves a new conn.
        let e = match self.map.entry(svc.id()) {
            Occupied(o) => {
                let e = o.into_mut();
                if e.generation != svc.generation() {
                    let cfg = &svc.config;
                    if e.name != cfg.scheduler || e.flags != cfg.sched_flags {
                        *e = Entry::of(svc)?;
                    } else {
                        e.sched.update(svc.dests());
                        e.generation = svc.generation();
                    }
                }
                e
            }
            Vacant(v) => v.insert(Entry::of(svc)?),
        };
        Some(e.sched.as_mut())
    }

    /// Forgets schedulers of services that are gone, and lets the others
    /// expire what they keep (lblc/lblcr tables).
    pub fn housekeeping(&mut self, set: &ServiceSet, now: Millis) {
        self.map
            .retain(|id, _| set.services().iter().any(|s| s.id() == *id));
        for s in set.services() {
            if let Some(e) = self.map.get_mut(&s.id()) {
                e.sched.gc(s.dests(), now);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::{DestConfig, Protocol, SchedInput, ServiceConfig, ServiceKey, ServiceTable};
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn input() -> SchedInput {
        SchedInput {
            proto: 6,
            saddr: ip("198.51.100.7"),
            sport: 40000,
            daddr: ip("10.0.0.1"),
            dport: 80,
        }
    }

    fn pick(ws: &mut WorkerScheds, t: &ServiceTable, key: &ServiceKey) -> Option<IpAddr> {
        let svc = t.get(key).unwrap().clone();
        let s = ws.for_service(&svc).unwrap();
        s.schedule(svc.dests(), &input(), 0)
            .map(|i| svc.dests()[i].addr())
    }

    #[test]
    fn schedulers_follow_dest_and_scheduler_changes() {
        let key = ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: ip("10.0.0.1"),
            port: 80,
        };
        let mut t = ServiceTable::new(1);
        let mut cfg = ServiceConfig::new(key);
        cfg.scheduler = "rr".into();
        t.add_service(cfg.clone()).unwrap();
        let mut ws = WorkerScheds::new();
        assert_eq!(pick(&mut ws, &t, &key), None, "no dests yet");
        t.add_dest(&key, DestConfig::new(ip("192.168.0.1"), 80))
            .unwrap();
        t.add_dest(&key, DestConfig::new(ip("192.168.0.2"), 80))
            .unwrap();
        // List order is newest first: .2, .1; rr starts at the head.
        assert_eq!(pick(&mut ws, &t, &key), Some(ip("192.168.0.2")));
        assert_eq!(pick(&mut ws, &t, &key), Some(ip("192.168.0.1")));
        assert_eq!(pick(&mut ws, &t, &key), Some(ip("192.168.0.2")));
        // -E to fo: a new instance; the highest weight wins.
        let mut w = DestConfig::new(ip("192.168.0.1"), 80);
        w.weight = 5;
        t.edit_dest(&key, w).unwrap();
        cfg.scheduler = "fo".into();
        t.edit_service(cfg).unwrap();
        assert_eq!(pick(&mut ws, &t, &key), Some(ip("192.168.0.1")));
        assert_eq!(ws.len(), 1);
        t.delete_service(&key).unwrap();
        ws.housekeeping(&t.snapshot(), 0);
        assert!(ws.is_empty(), "a deleted service's scheduler is dropped");
    }
}
