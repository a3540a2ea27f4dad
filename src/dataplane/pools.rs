//! A worker's FULLNAT local-address pools: per service and address
//! family, the service's local addresses as the worker last saw them and
//! its allocator of this worker's share of their ports (`laddr`); and the
//! bind of a new conn's local address and port from them (`Pools::bind`,
//! which the scheduler calls once it has picked the real server).
//!
//! A new conn asks for its service's pool; a worker's new conns come in
//! runs of one service's, so the pool last asked for is found by a compare
//! of its key rather than a hash lookup. A conn that ends gives its port
//! back to the pool of its service (found by its VIP and port: a conn does
//! not name its service). A service that is gone takes its pools with it
//! (`housekeeping`); its conns that are left give nothing back, as no
//! service of theirs is found, and the conn table still tells which ports
//! they hold.
use std::cell::Cell;
use std::net::IpAddr;

use crate::ipvs::conn::{ConnRef, ConnTable};
use crate::ipvs::persist::Bound;
use crate::ipvs::{Dest, FwdMethod, Protocol, Service, ServiceSet, Tuple};
use crate::laddr::{LaddrAllocator, LaddrPool, Target};
use crate::netstack::NetConfig;
use crate::slots::KeyedSlots;

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
    /// `lips` are the service's own -P addresses (else, where it has none
    /// of the family, the address of the port toward the real server).
    pub(super) own: bool,
}

impl LocalPool {
    /// A service's pool of family `v6` over `lips` (new, or its list
    /// changed), its allocator for worker `me` of `n` seeded `seed`, of
    /// the service's generation `generation` (`at`), carrying `old`'s
    /// counts. Out of line: built once per pool, not per conn.
    #[cold]
    #[inline(never)]
    fn fresh(
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
            own: true,
        })
    }
}

/// `-F` resolved: each -P address of the family with its port's id, and
/// the one port they all share, if they do.
fn bound_ports(
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

/// `Pools::bind` where the replies must land on a queue (`target`) or
/// only some addresses serve the server's port (`all` false): out of line,
/// so that the plain sweep's bind, in line where the scheduler calls it,
/// keeps its values in registers.
#[inline(never)]
fn aimed(
    pool: &mut LocalPool,
    all: bool,
    egress: Option<u16>,
    target: Option<Target<'_>>,
    rs: (IpAddr, u16),
    proto: u8,
    is_free: impl Fn(IpAddr, u16) -> bool,
) -> Option<(IpAddr, u16)> {
    let ports = &pool.ports;
    let usable = (!all).then_some(|lip: IpAddr| {
        ports
            .iter()
            .any(|(a, p)| *a == lip && p.is_some() && *p == egress)
    });
    pool.alloc.alloc_aimed(rs, proto, usable, target, is_free)
}

/// What a new conn's bind (`Pools::bind`) takes of its service and
/// worker.
pub(super) struct Binding<'a> {
    pub(super) net: &'a NetConfig,
    /// The service: its -P addresses, with the port each is bound to
    /// (-F), its id and its generation.
    pub(super) svc: &'a Service,
    /// The worker's seed of its allocators (`laddr::seed`).
    pub(super) seed: u64,
    /// This worker and how many there are.
    pub(super) worker: (usize, usize),
}

/// The pools by service and family, in slots that keep their place while
/// their service lives (a pool changed is replaced in its slot).
#[derive(Default)]
pub(super) struct Pools {
    by_key: KeyedSlots<Key, LocalPool>,
}

impl Pools {
    /// Every pool, with its service's id.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u64, &LocalPool)> {
        self.by_key.iter().map(|((svc, _), p)| (*svc, p))
    }

    /// Drops the pools of services `set` no longer has (once a second).
    pub(super) fn housekeeping(&mut self, set: &ServiceSet) {
        self.by_key
            .retain(|(svc, _)| set.services().iter().any(|s| s.id() == *svc));
    }

    /// The local address and port of a new FULLNAT conn of `inp` to
    /// `dest`, from the pool of `b`'s service of the server's family, made
    /// or renewed first where the service's list changed: an address of the port the
    /// server is reached through (`egress`, where -F binds them), a port
    /// whose reply lands on this worker where the replies spread by RSS
    /// (`target`), and none any conn of `table` holds toward that server.
    /// None sets `short` where every address was usable and every port
    /// probed taken (the pressure's sign that the ports run short). In
    /// line: the scheduler's call of the bind is the call.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn bind(
        &mut self,
        b: &Binding<'_>,
        table: &ConnTable,
        dest: &Dest,
        inp: &Tuple,
        egress: Option<u16>,
        target: Option<Target<'_>>,
        short: &mut bool,
    ) -> Option<Bound> {
        let rs = dest.addr();
        let rport = if dest.port() != 0 {
            dest.port()
        } else {
            inp.dport
        };
        let proto = inp.proto;
        let v6 = rs.is_ipv6();
        // The pool last found, while it holds its service's own addresses
        // of the generation it was made under: nothing of the list read.
        let key = (b.svc.id(), v6);
        let slot = match self.by_key.find(key) {
            Some(i)
                if self
                    .by_key
                    .get_mut(i)
                    .is_some_and(|p| p.own && p.generation == b.svc.generation()) =>
            {
                i
            }
            found => self.renew(b, rs, found)?,
        };
        let pool = self.by_key.get_mut(slot)?;
        // -F: a -P address serves the servers reached through the port it
        // names; none there is a drop (no_local_addr).
        let egress = egress.filter(|_| pool.own);
        // Usually every address is on that port: no filter then, rather
        // than a scan of the list per candidate address.
        let all = !pool.own || (egress.is_some() && pool.single_port == egress);
        // The hash of the last IPv4 candidate's reply tuple: the free one's
        // is its conn's reply entry in the index.
        let hashed = Cell::new(None);
        let is_free = |lip: IpAddr, lport: u16| match (rs, lip) {
            (IpAddr::V4(r), IpAddr::V4(l)) => {
                let (r, l) = (u32::from(r), u32::from(l));
                let (found, h) = table.lookup_out_v4(proto, r, rport, l, lport);
                hashed.set(Some(h));
                found.is_none()
            }
            _ => {
                hashed.set(None);
                let reply = Tuple {
                    proto,
                    saddr: rs,
                    sport: rport,
                    daddr: lip,
                    dport: lport,
                };
                table.lookup_out(&reply).is_none()
            }
        };
        let got = if all && target.is_none() {
            // One worker, or no RSS: the plain sweep of the slice.
            let got = pool.alloc.alloc((rs, rport), proto, is_free);
            *short |= got.is_none();
            got
        } else {
            let got = aimed(pool, all, egress, target, (rs, rport), proto, is_free);
            *short |= all && got.is_none();
            got
        };
        let (addr, port) = got?;
        Some(Bound {
            addr,
            port,
            reply_hash: hashed.get(),
        })
    }

    /// The slot of the pool of `b`'s service toward real server `rs`
    /// (`found`, if it has one) made current: its addresses are the
    /// service's -P addresses of the server's family, or where it has none
    /// the port's own toward the server; a list that changed (or a new
    /// pool) gets a fresh allocator, whose ports in use stay safe as every
    /// candidate is checked against the conn table. Out of line: once per
    /// pool and change, not per conn, but for a pool of the port's own
    /// address, whose route is asked again for each conn.
    #[cold]
    #[inline(never)]
    fn renew(&mut self, b: &Binding<'_>, rs: IpAddr, found: Option<usize>) -> Option<usize> {
        let net = b.net;
        let (laddrs, id, generation) = (b.svc.laddrs(), b.svc.id(), b.svc.generation());
        let v6 = rs.is_ipv6();
        let family = || {
            laddrs
                .iter()
                .map(|(a, _)| *a)
                .filter(move |a| a.is_ipv6() == v6)
        };
        // No -P address of the server's family: the egress port's own.
        let fallback = family()
            .next()
            .is_none()
            .then(|| net.route(rs).and_then(|h| net.source_for(h.port, rs)))
            .flatten();
        let lips = || family().chain(fallback);
        let own = fallback.is_none();
        let seed = || crate::laddr::seed::allocator_seed(b.seed, id, v6);
        let (me, n) = b.worker;
        let at = (seed(), me, n, generation);
        match found {
            Some(i) => {
                let p = self.by_key.get_mut(i)?;
                if p.lips.iter().copied().eq(lips()) {
                    p.generation = generation;
                    (p.ports, p.single_port) = bound_ports(net, laddrs, v6);
                } else {
                    *p = LocalPool::fresh(v6, lips().collect(), Some(p), at, net, laddrs)?;
                }
                p.own = own;
                Some(i)
            }
            None => {
                let mut p = LocalPool::fresh(v6, lips().collect(), None, at, net, laddrs)?;
                p.own = own;
                Some(self.by_key.add((id, v6), p))
            }
        }
    }

    /// A FULLNAT conn's local port goes back to the allocator of its
    /// service and family.
    pub(super) fn release(&mut self, svcs: &ServiceSet, c: ConnRef<'_>) {
        if c.fwd() != FwdMethod::FullNat || c.is_template() {
            return;
        }
        let Some(svc) =
            Protocol::from_number(c.proto()).and_then(|p| svcs.lookup(0, p, c.vaddr(), c.vport()))
        else {
            return;
        };
        // By the map, not `find`: the pool last found stays the new
        // conns' (a conn's end is no sign of the next conn's service).
        if let Some(p) = self.by_key.get_mut_by_key((svc.id(), c.daddr().is_ipv6())) {
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
            own: true,
        }
    }

    /// A service that is gone takes its pools with it, whichever was found
    /// last; the others stay where they were, and a new pool takes a slot
    /// left empty.
    #[test]
    fn a_deleted_services_pools_go_and_their_slots_serve_again() {
        use crate::ipvs::{ServiceConfig, ServiceKey, ServiceTable};
        let key = |port| ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "10.0.0.1".parse().unwrap(),
            port,
        };
        let mut t = ServiceTable::new(1);
        for port in [80, 81] {
            t.add_service(ServiceConfig::new(key(port))).unwrap();
        }
        let id = |t: &ServiceTable, port| t.get(&key(port)).unwrap().id();
        let (a, b) = (id(&t, 80), id(&t, 81));
        let mut pools = Pools::default();
        let pa = pools.by_key.add((a, false), pool("192.0.2.1"));
        let pa6 = pools.by_key.add((a, true), pool("2001:db8::1"));
        let pb = pools.by_key.add((b, false), pool("192.0.2.2"));
        assert_eq!(
            pools.by_key.find((a, false)),
            Some(pa),
            "the last one found"
        );
        pools.housekeeping(&t.snapshot());
        assert_eq!(pools.iter().count(), 3, "every service is there");
        t.delete_service(&key(80)).unwrap();
        pools.housekeeping(&t.snapshot());
        assert_eq!(
            pools.by_key.find((a, false)),
            None,
            "gone, though found last"
        );
        assert_eq!(pools.by_key.find((a, true)), None);
        assert_eq!(pools.by_key.find((b, false)), Some(pb));
        let left: Vec<u64> = pools.iter().map(|(s, _)| s).collect();
        assert_eq!(left, [b]);
        t.add_service(ServiceConfig::new(key(82))).unwrap();
        let c = id(&t, 82);
        let pc = pools.by_key.add((c, false), pool("192.0.2.3"));
        assert!(pc == pa || pc == pa6, "an emptied slot serves again");
        assert_eq!(pools.by_key.find((c, false)), Some(pc));
        assert_eq!(pools.by_key.find((b, false)), Some(pb));
    }
}
