//! A worker's FULLNAT local-address pools: per service and address
//! family, the service's local addresses as the worker last saw them and
//! its allocator of this worker's share of their ports (`laddr`).
//!
//! A new conn asks for its service's pool; a worker's new conns come in
//! runs of one service's, so the pool last asked for is found by a compare
//! of its key rather than a hash lookup. A conn that ends gives its port
//! back to the pool of its service (found by its VIP and port: a conn does
//! not name its service).
use std::net::IpAddr;

use hashbrown::HashMap;

use crate::ipvs::{FwdMethod, Protocol, ServiceSet};
use crate::laddr::{LaddrAllocator, LaddrPool};
use crate::netstack::NetConfig;

/// A pool's key: the service's id and the family (IPv6).
type Key = (u64, bool);

/// A service's FULLNAT local addresses of one family as this worker last
/// saw them, and its allocator over them.
pub(super) struct LocalPool {
    pub(super) lips: Vec<IpAddr>,
    pub(super) alloc: LaddrAllocator,
    /// The service's generation the list came from: while it is the same
    /// and the list is the service's own (-P) addresses, it is current.
    pub(super) generation: u64,
    /// `-F`: the rvs port each -P address is bound to (None: a name no
    /// port has), resolved once per generation rather than per conn.
    pub(super) ports: Vec<(IpAddr, Option<u16>)>,
    /// The one port every address of the family is bound to, if one.
    pub(super) single_port: Option<u16>,
}

impl LocalPool {
    /// A service's pool of family `v6` over `lips` (new, or its list
    /// changed), its allocator for worker `me` of `n` seeded `seed`, of
    /// the service's generation `generation` (`at`), carrying `old`'s
    /// counts. Out of line: built once per pool, not per conn.
    #[cold]
    #[inline(never)]
    pub(super) fn fresh(
        v6: bool,
        lips: Vec<IpAddr>,
        old: Option<&LocalPool>,
        (seed, me, n, generation): (u64, usize, usize, u64),
        net: &NetConfig,
        laddrs: &[(IpAddr, String)],
    ) -> Option<LocalPool> {
        let pool = LaddrPool::new(lips.clone()).ok()?;
        let mut alloc = LaddrAllocator::new(&pool, me, n, seed).ok()?;
        if let Some(old) = old {
            alloc.carry_counts(&old.alloc);
        }
        let (ports, single_port) = bound_ports(net, laddrs, v6);
        Some(LocalPool {
            lips,
            alloc,
            generation,
            ports,
            single_port,
        })
    }
}

/// `-F` resolved: each -P address of the family with its port's id, and
/// the one port they all share, if they do.
pub(super) fn bound_ports(
    net: &NetConfig,
    laddrs: &[(IpAddr, String)],
    v6: bool,
) -> (Vec<(IpAddr, Option<u16>)>, Option<u16>) {
    let ports: Vec<(IpAddr, Option<u16>)> = laddrs
        .iter()
        .filter(|(a, _)| a.is_ipv6() == v6)
        .map(|(a, name)| {
            (
                *a,
                net.ifaces()
                    .iter()
                    .find(|i| i.name == *name)
                    .map(|i| i.port),
            )
        })
        .collect();
    let first = ports.first().and_then(|(_, p)| *p);
    let single = first.filter(|p| ports.iter().all(|(_, q)| *q == Some(*p)));
    (ports, single)
}

/// The pools, in slots that keep their place (a pool is replaced in its
/// slot, never removed), by key.
#[derive(Default)]
pub(super) struct Pools {
    slots: Vec<(Key, LocalPool)>,
    by_key: HashMap<Key, usize>,
    /// The slot last found.
    last: usize,
}

impl Pools {
    /// The slot of the pool of service `svc`, family `v6`.
    #[inline]
    pub(super) fn find(&mut self, svc: u64, v6: bool) -> Option<usize> {
        let key = (svc, v6);
        if self.slots.get(self.last).is_some_and(|(k, _)| *k == key) {
            return Some(self.last);
        }
        let i = *self.by_key.get(&key)?;
        self.last = i;
        Some(i)
    }

    /// Adds the pool of service `svc`, family `v6`, which has none: its slot.
    pub(super) fn add(&mut self, svc: u64, v6: bool, pool: LocalPool) -> usize {
        let i = self.slots.len();
        self.slots.push(((svc, v6), pool));
        self.by_key.insert((svc, v6), i);
        self.last = i;
        i
    }

    /// The pool in slot `i` (`find`, `add`).
    #[inline]
    pub(super) fn slot(&mut self, i: usize) -> Option<&mut LocalPool> {
        self.slots.get_mut(i).map(|(_, p)| p)
    }

    /// Every pool, with its service's id.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u64, &LocalPool)> {
        self.slots.iter().map(|((svc, _), p)| (*svc, p))
    }

    /// A FULLNAT conn's local port goes back to the allocator of its
    /// service and family.
    pub(super) fn release(&mut self, svcs: &ServiceSet, c: &crate::ipvs::Conn) {
        if c.fwd() != FwdMethod::FullNat || c.is_template() {
            return;
        }
        let Some(svc) =
            Protocol::from_number(c.proto()).and_then(|p| svcs.lookup(0, p, c.vaddr(), c.vport()))
        else {
            return;
        };
        if let Some(p) = self
            .find(svc.id(), c.daddr().is_ipv6())
            .and_then(|i| self.slot(i))
        {
            p.alloc.release(c.laddr(), c.lport(), c.proto());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::laddr::LaddrPool;

    fn pool(a: &str) -> LocalPool {
        let lips = vec![a.parse().unwrap()];
        let p = LaddrPool::new(lips.clone()).unwrap();
        LocalPool {
            lips,
            alloc: LaddrAllocator::new(&p, 0, 1, 0).unwrap(),
            generation: 1,
            ports: Vec::new(),
            single_port: None,
        }
    }

    /// Each key finds its own pool, whichever was found last, and a key
    /// with none finds none.
    #[test]
    fn each_service_and_family_finds_its_own_pool() {
        let mut pools = Pools::default();
        assert_eq!(pools.find(1, false), None);
        let a = pools.add(1, false, pool("192.0.2.1"));
        let b = pools.add(2, false, pool("192.0.2.2"));
        let c = pools.add(1, true, pool("2001:db8::1"));
        for (svc, v6, slot, lip) in [
            (1, false, a, "192.0.2.1"),
            (1, false, a, "192.0.2.1"),
            (2, false, b, "192.0.2.2"),
            (1, true, c, "2001:db8::1"),
            (1, false, a, "192.0.2.1"),
        ] {
            let i = pools.find(svc, v6).expect("a pool");
            assert_eq!(i, slot);
            let lips = &pools.slot(i).unwrap().lips;
            assert_eq!(lips, &[lip.parse::<IpAddr>().unwrap()]);
        }
        assert_eq!(pools.find(2, true), None);
        assert_eq!(pools.find(3, false), None);
        let names: Vec<u64> = pools.iter().map(|(s, _)| s).collect();
        assert_eq!(names, [1, 2, 1]);
    }
}
