//! One worker's scheduler instances, kept in step with the services it sees.
//!
//! Control threads publish new `Service` values on every change; a worker
//! looks its scheduler up by the service's stable id and rebuilds derived
//! state only when the service's generation moved. Creating an instance
//! allocates, but only when a service first shows up or changes scheduler,
//! never per packet.
use super::{new, SchedFlags, Scheduler};
use crate::ipvs::service::{Service, ServiceSet};
use crate::ipvs::Millis;
use crate::slots::KeyedSlots;

struct Entry {
    generation: u64,
    name: String,
    flags: SchedFlags,
    sched: Box<dyn Scheduler>,
}

impl Entry {
    /// A new instance of `svc`'s scheduler over its dests, for `worker`.
    fn of(svc: &Service, worker: usize) -> Option<Entry> {
        let cfg = &svc.config;
        let mut sched = new(&cfg.scheduler, cfg.sched_flags).ok()?;
        sched.count_as(worker);
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
    /// The instances by their service's id.
    by_service: KeyedSlots<u64, Entry>,
    /// The worker whose instances they are (`Scheduler::count_as`).
    worker: usize,
}

impl WorkerScheds {
    /// Worker `worker`'s schedulers.
    pub fn new(worker: usize) -> WorkerScheds {
        WorkerScheds {
            worker,
            ..WorkerScheds::default()
        }
    }

    /// The worker's scheduler for `svc`, current with its dest list. None
    /// only if the service names a scheduler rvs does not have, which the
    /// control plane refuses before publishing.
    #[inline(always)]
    pub fn for_service(&mut self, svc: &Service) -> Option<&mut dyn Scheduler> {
        // The service last asked for, unchanged since: in line, no call.
        let generation = svc.generation();
        if let Some(i) = self.by_service.find(svc.id()) {
            let current = |e: &mut Entry| e.generation == generation;
            if self.by_service.get_mut(i).is_some_and(current) {
                // (A match, not `map`: the box's trait object is
                // shortened to the borrow's lifetime only at a return.)
                return match self.by_service.get_mut(i) {
                    Some(e) => Some(e.sched.as_mut()),
                    None => None,
                };
            }
        }
        self.for_service_out(svc)
    }

    /// `for_service` of a service new to the worker, or changed.
    #[inline(never)]
    fn for_service_out(&mut self, svc: &Service) -> Option<&mut dyn Scheduler> {
        let id = svc.id();
        let i = match self.by_service.find(id) {
            Some(i) => i,
            None => {
                let e = Entry::of(svc, self.worker)?;
                self.by_service.add(id, e)
            }
        };
        let e = self.by_service.get_mut(i)?;
        // Every change to a service publishes it anew under a later
        // generation: the generation the entry has seen means the same
        // scheduler over the same dests.
        if e.generation != svc.generation() {
            let cfg = &svc.config;
            if e.name != cfg.scheduler || e.flags != cfg.sched_flags {
                *e = Entry::of(svc, self.worker)?;
            } else {
                e.sched.update(svc.dests());
                e.generation = svc.generation();
            }
        }
        Some(e.sched.as_mut())
    }

    /// Forgets schedulers of services that are gone, and lets the others
    /// expire what they keep (lblc/lblcr tables).
    pub fn housekeeping(&mut self, set: &ServiceSet, now: Millis) {
        self.by_service
            .retain(|id| set.services().iter().any(|s| s.id() == *id));
        for s in set.services() {
            if let Some(e) = self.by_service.get_mut_by_key(s.id()) {
                e.sched.gc(s.dests(), now);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.by_service.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_service.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::{DestConfig, Protocol, ServiceConfig, ServiceKey, ServiceTable, Tuple};
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn input() -> Tuple {
        Tuple {
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

    /// Each service keeps its own scheduler whichever was asked for last
    /// (`last`), and a service that comes after a deleted one, in its
    /// slot, starts afresh rather than with the deleted one's state.
    #[test]
    fn each_service_keeps_its_own_scheduler_across_the_last_one_asked() {
        let key = |port| ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: ip("10.0.0.1"),
            port,
        };
        let (a, b, c) = (key(80), key(81), key(82));
        let mut t = ServiceTable::new(1);
        for k in [a, b] {
            let mut cfg = ServiceConfig::new(k);
            cfg.scheduler = "rr".into();
            t.add_service(cfg).unwrap();
            for rs in ["192.168.0.1", "192.168.0.2", "192.168.0.3"] {
                t.add_dest(&k, DestConfig::new(ip(rs), 80)).unwrap();
            }
        }
        let mut ws = WorkerScheds::new(0);
        // Newest first: .3, .2, .1; each service's round robin its own.
        let got: Vec<_> = [a, b, b, a, a, b]
            .iter()
            .map(|k| pick(&mut ws, &t, k).unwrap().to_string())
            .collect();
        assert_eq!(
            got,
            [
                "192.168.0.3",
                "192.168.0.3",
                "192.168.0.2",
                "192.168.0.2",
                "192.168.0.1",
                "192.168.0.1"
            ]
        );
        assert_eq!(pick(&mut ws, &t, &a), Some(ip("192.168.0.3")));
        t.delete_service(&a).unwrap();
        ws.housekeeping(&t.snapshot(), 0);
        assert_eq!(ws.len(), 1);
        let mut cfg = ServiceConfig::new(c);
        cfg.scheduler = "rr".into();
        t.add_service(cfg).unwrap();
        for rs in ["192.168.0.1", "192.168.0.2", "192.168.0.3"] {
            t.add_dest(&c, DestConfig::new(ip(rs), 80)).unwrap();
        }
        assert_eq!(pick(&mut ws, &t, &c), Some(ip("192.168.0.3")), "afresh");
        assert_eq!(pick(&mut ws, &t, &b), Some(ip("192.168.0.3")), "b goes on");
        assert_eq!(pick(&mut ws, &t, &c), Some(ip("192.168.0.2")));
        assert_eq!(ws.len(), 2);
    }

    /// A worker's least-connection scheduler weighs a dest by the conns
    /// the worker opened there at once, and by another worker's once that
    /// worker folded them (`Lb::poll`, every millisecond).
    #[test]
    fn each_worker_weighs_its_own_conns_at_once_and_the_others_once_folded() {
        use crate::ipvs::conn::ConnTable;
        use crate::ipvs::persist::{schedule, SchedCtx};
        let key = ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: ip("10.0.0.1"),
            port: 80,
        };
        let mut t = ServiceTable::new(2);
        let mut cfg = ServiceConfig::new(key);
        cfg.scheduler = "lc".into();
        t.add_service(cfg).unwrap();
        for rs in ["192.168.0.1", "192.168.0.2"] {
            t.add_dest(&key, DestConfig::new(ip(rs), 80)).unwrap();
        }
        let svc = t.get(&key).unwrap().clone();
        let mut workers: Vec<_> = (0..2)
            .map(|w| (WorkerScheds::new(w), ConnTable::for_worker(w, 16)))
            .collect();
        // Worker `w` opens a conn from client port `sport`: to which dest.
        let open = |workers: &mut Vec<(WorkerScheds, ConnTable)>, w: usize, sport: u16| {
            let (ws, table) = &mut workers[w];
            let inp = Tuple { sport, ..input() };
            let sched = ws.for_service(&svc).unwrap();
            let id = schedule(&svc, sched, table, &inp, &mut SchedCtx::new(w, 0)).unwrap();
            table.get(id).unwrap().daddr().to_string()
        };
        // Newest first: .2, then .1; a tie stays with the earlier.
        assert_eq!(open(&mut workers, 0, 1), "192.168.0.2");
        assert_eq!(
            open(&mut workers, 0, 2),
            "192.168.0.1",
            "its own first conn weighs"
        );
        assert_eq!(open(&mut workers, 0, 3), "192.168.0.2");
        // Worker 1 sees none of worker 0's three yet...
        assert_eq!(open(&mut workers, 1, 4), "192.168.0.2");
        assert_eq!(open(&mut workers, 1, 5), "192.168.0.1");
        assert_eq!(workers[0].1.dests_to_fold(), 2);
        // ...and after worker 0's fold, .2's two against .1's one.
        workers[0].1.fold_dest_counts();
        assert_eq!(workers[0].1.dests_to_fold(), 0);
        assert_eq!(
            open(&mut workers, 1, 6),
            "192.168.0.1",
            "3 to 2 as worker 1 sees it"
        );
        let d = svc.dests();
        assert_eq!(
            (d[0].inactconns(), d[1].inactconns()),
            (3, 3),
            "a listing sums every worker's"
        );
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
        let mut ws = WorkerScheds::new(0);
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
