//! Which worker owns a packet's flow (DESIGN.md, "Per-lcore ownership").
//!
//! Where the rx port spreads packets by RSS over every worker's queue (the
//! device's, read at start, or a software peer's: `crate::rss`), a worker
//! owns what its queue receives: a client's packets to a VIP are handled
//! where they land, and a FULLNAT conn's replies land there too, because
//! the worker took a local port whose reply tuple hashes to its own queue
//! (`laddr::Target`). What the device hashes by other fields than its
//! flow's packets carry (a fragment, an ICMP error) goes to the worker
//! the flow's packets reach, worked out with the same hash.
//!
//! The rest keeps the owner every worker can compute from the packet alone:
//! - a NAT reply, which names neither the VIP nor the worker: the worker
//!   that made the conn noted it by the reply tuple (`nat_replies.rs`);
//! - persistent services: the worker picked by a hash of the client's
//!   network (/24, /64, or the persistence netmask where that is wider:
//!   `ServiceSet::owner_net`), so a template's every conn is made on one
//!   worker, and a reply to a persistent NAT conn goes there too;
//! - a port without RSS (af_packet, tap, one queue): the client's network
//!   for packets to a service, `lport & mask` for FULLNAT replies;
//! - a fragment after the first borrows its first fragment's ports from
//!   this worker's fragment table (`frag.rs`) and then goes where they say.
//!
//! Where `[[port]] flow_steering` installs rte_flow rules (`flowsteer`),
//! FULLNAT conns take local ports by slice as without RSS, and the rules
//! queue their replies to the slice's worker.
//!
//! A packet that lands elsewhere is handed to its owner over a ring, and
//! counted by reason (`RedirectReason`).
use std::net::IpAddr;
use std::sync::Arc;

use super::{reply_tuple, Flow, Lb};
use crate::counters::RedirectReason;
use crate::dataplane::nat_replies::NatReplies;
use crate::ipvs::conn::ConnId;
use crate::ipvs::{FwdMethod, ServiceSet};
use crate::laddr::Target;
use crate::netstack::NetConfig;
use crate::rss::{RssTuple, Spread};

/// The worker that owns a client's flows: a hash of its /24 or /64, so a
/// persistence netmask up to that wide keeps one template per client net.
pub fn client_owner(addr: IpAddr, workers: usize) -> usize {
    if workers <= 1 {
        return 0;
    }
    let key: u64 = match addr {
        IpAddr::V4(a) => u64::from(u32::from(a) & 0xffff_ff00),
        IpAddr::V6(a) => (u128::from(a) >> 64) as u64,
    };
    // A 64-bit mix (splitmix64's finaliser): neighbouring nets spread out.
    let mut x = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x % workers as u64) as usize
}

/// The ports that spread by RSS over every worker, by port id (worker `i`
/// polls rx queue `i` of each port, so a queue is its worker's index), and
/// those whose flow rules queue FULLNAT replies by local port slice.
#[derive(Default)]
pub(super) struct Spreads {
    rss: Vec<Option<Arc<Spread>>>,
    flow: Vec<u16>,
}

impl Spreads {
    fn get(&self, port: u16) -> Option<&Spread> {
        self.rss.get(usize::from(port)).and_then(|s| s.as_deref())
    }
    fn flow(&self, port: u16) -> bool {
        // Most directors steer no port by flow rules: no call to search
        // an empty list.
        !self.flow.is_empty() && self.flow.contains(&port)
    }
}

impl Lb {
    /// The ports whose RSS decides ownership: `(port id, spread)` for each
    /// port with one rx queue per worker and a spread rvs can model.
    pub fn set_spreads(&mut self, spreads: impl IntoIterator<Item = (u16, Arc<Spread>)>) {
        let mut v: Vec<Option<Arc<Spread>>> = Vec::new();
        for (port, s) in spreads {
            let i = usize::from(port);
            if v.len() <= i {
                v.resize(i + 1, None);
            }
            v[i] = Some(s);
        }
        self.spreads.rss = v;
    }

    /// The ports whose rte_flow rules queue the replies to FULLNAT local
    /// addresses by the local port's slice (`flowsteer`): there conns take
    /// ports by slice, and a reply's owner is its port's.
    pub fn set_flow_steered(&mut self, ports: impl IntoIterator<Item = u16>) {
        self.spreads.flow = ports.into_iter().collect();
    }

    /// The index of NAT conns' reply tuples all workers share.
    pub fn set_nat_replies(&mut self, index: Arc<NatReplies>) {
        self.ends.nat_replies = Some(index);
    }

    /// Notes a new conn in the NAT reply index, where it is a NAT conn
    /// and there are several workers; false when the index has no room.
    #[inline]
    pub(super) fn note_nat_reply(&self, id: ConnId) -> bool {
        let Some(r) = &self.ends.nat_replies else {
            return true;
        };
        match self.conns.get(id) {
            Some(c) if c.fwd() == FwdMethod::Masq && !c.is_template() => {
                r.insert(&reply_tuple(&c), self.worker)
            }
            _ => true,
        }
    }

    /// The worker whose queue `s` puts the packets `src` → `dst` on.
    fn spread_owner(&self, s: &Spread, proto: u8, src: (IpAddr, u16), dst: (IpAddr, u16)) -> usize {
        let t = RssTuple {
            proto,
            src: src.0,
            dst: dst.0,
            sport: src.1,
            dport: dst.1,
        };
        usize::from(s.queue(&t, false)).min(self.workers - 1)
    }

    /// `spread_owner` of a parsed flow.
    fn flow_owner(&self, s: &Spread, f: &Flow) -> usize {
        self.spread_owner(s, f.t.proto, (f.t.saddr, f.t.sport), (f.t.daddr, f.t.dport))
    }

    /// Which worker owns this packet's flow, counting a hand-over by
    /// reason. `derived`: `f` is not what the device hashed (a fragment,
    /// an ICMP error's quote), so where the packet landed says nothing.
    #[inline]
    pub(super) fn owner(
        &mut self,
        f: &Flow,
        rx_port: u16,
        derived: bool,
        net: &NetConfig,
        svcs: &ServiceSet,
    ) -> usize {
        if self.workers == 1 {
            return self.worker;
        }
        let (owner, reason) = self.owner_of_flow(f, rx_port, derived, net, svcs);
        if owner != self.worker {
            self.counters.redirect(reason);
        }
        owner
    }

    fn owner_of_flow(
        &mut self,
        f: &Flow,
        rx_port: u16,
        derived: bool,
        net: &NetConfig,
        svcs: &ServiceSet,
    ) -> (usize, RedirectReason) {
        let spread = self.spreads.get(rx_port);
        let service = self.svc_cache.lookup(svcs, f.t.proto, f.t.daddr, f.t.dport);
        if let Some(svc) = service {
            if svc.client_owned() {
                let net = svcs.owner_net(Some(svc), f.t.saddr);
                return (client_owner(net, self.workers), RedirectReason::ClientOwned);
            }
            return match spread {
                None => (client_owner(f.t.saddr, self.workers), RedirectReason::NoRss),
                Some(_) if !derived => (self.worker, RedirectReason::NoRss),
                Some(s) => (self.flow_owner(s, f), RedirectReason::Derived),
            };
        }
        if net.owner(f.t.daddr).is_some() {
            // A reply to one of our addresses: queued by its local port's
            // slice where flow rules do it, by construction where the
            // device hashes its ports, else FULLNAT's local port says who.
            if self.spreads.flow(rx_port) {
                let reason = if derived {
                    RedirectReason::Derived
                } else {
                    RedirectReason::NoRss
                };
                return (
                    self.steer.owner_of(f.t.dport).unwrap_or(self.worker),
                    reason,
                );
            }
            return match spread.filter(|s| s.steers(f.t.daddr.is_ipv6(), f.t.proto)) {
                Some(_) if !derived => (self.worker, RedirectReason::NoRss),
                Some(s) => (self.flow_owner(s, f), RedirectReason::Derived),
                None => (
                    self.steer.owner_of(f.t.dport).unwrap_or(self.worker),
                    RedirectReason::NoRss,
                ),
            };
        }
        // A NAT reply, on its way to the client: to the worker that made
        // the conn, as it noted; else a persistent service's, the client's.
        let noted = self.ends.nat_replies.as_ref().and_then(|r| r.owner(&f.t));
        if let Some(w) = noted {
            return (w.min(self.workers - 1), RedirectReason::NatReply);
        }
        let net = svcs.owner_net(None, f.t.daddr);
        (client_owner(net, self.workers), RedirectReason::ClientOwned)
    }

    /// The worker that will hold the conn of a synced entry: where its
    /// packets will arrive once this director takes over. Clients come in
    /// through the port the route to them leaves by.
    pub(super) fn synced_owner(
        &mut self,
        net: &NetConfig,
        svcs: &ServiceSet,
        proto: u8,
        client: (IpAddr, u16),
        vip: (IpAddr, u16),
    ) -> usize {
        if self.workers == 1 {
            return self.worker;
        }
        let svc = self.svc_cache.lookup(svcs, proto, vip.0, vip.1);
        let client_owned = svc.is_none_or(|s| s.client_owned());
        let owner_net = svcs.owner_net(svc.map(|s| &**s), client.0);
        let port = net.route(client.0).map(|h| h.port);
        match port.and_then(|p| self.spreads.get(p)) {
            Some(s) if !client_owned => self.spread_owner(s, proto, client, vip),
            _ => client_owner(owner_net, self.workers),
        }
    }

    /// The worker a FULLNAT reply from `rs` to `local` lands on, or is
    /// handed to.
    pub(super) fn reply_owner(
        &self,
        net: &NetConfig,
        proto: u8,
        rs: (IpAddr, u16),
        local: (IpAddr, u16),
    ) -> usize {
        if self.workers == 1 {
            return self.worker;
        }
        let port = net.route(rs.0).map(|h| h.port);
        let flow = port.is_some_and(|p| self.spreads.flow(p));
        match port.and_then(|p| self.spreads.get(p)) {
            Some(s) if !flow && s.steers(rs.0.is_ipv6(), proto) => {
                self.spread_owner(s, proto, rs, local)
            }
            _ => self.steer.owner_of(local.1).unwrap_or(usize::MAX),
        }
    }

    /// Where a new FULLNAT conn's replies from a server reached through
    /// `port` must land: this worker's queue, if that port spreads by RSS.
    pub(super) fn reply_target(
        spreads: &Spreads,
        port: Option<u16>,
        worker: usize,
    ) -> Option<Target<'_>> {
        let port = port?;
        let spread = spreads.get(port)?;
        if spreads.flow(port) {
            return None;
        }
        Some(Target {
            spread,
            queue: worker as u16,
        })
    }
}
