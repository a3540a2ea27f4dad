//! One worker's network stack: classify a frame, answer what is ours, route
//! and resolve what we send.
use std::net::IpAddr;
use std::sync::Arc;

use super::addr::NetConfig;
use super::icmp_limit::{IcmpLimiter, IcmpLimits, Verdict};
use super::neigh::{Lookup, NeighTable, NeighUpdate, Pending};
use super::route::NextHop;
use super::solicit::SolicitLog;
use super::Millis;
use crate::counters::{DropReason, WorkerCounters};
use crate::packet::Packet;
use crate::wire::{EtherType, EthernetFrame, MacAddr};

/// Ethernet header length; every packet the stack handles starts with one.
pub(super) const ETH: usize = 14;
/// Packets waiting for neighbour resolution, per worker.
const PENDING_CAPACITY: usize = 256;
/// Neighbour news queued for the control thread between two bursts.
const LEARNED_CAPACITY: usize = 64;

/// Where the stack sends packets and gets buffers for ones it originates.
pub trait Output<P> {
    fn send(&mut self, port: u16, pkt: P);
    fn alloc(&mut self) -> Option<P>;
}

/// What to do with a received packet after a handler looked at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Drop(DropReason),
    /// Used up without a reply (a learned ARP reply, an NA).
    Consumed,
    /// Rewritten in place, Ethernet header included: send on the rx port.
    SendBack,
    /// Rewritten in place from L3 on: route to this destination.
    Route(IpAddr),
    /// For a health-check source: to the host's kernel, as it is.
    ToHost,
}

pub struct Stack<P> {
    pub(super) neigh: NeighTable,
    pending: Pending<P>,
    learned: Vec<NeighUpdate>,
    retry: Vec<(u16, IpAddr)>,
    pub(super) counters: Arc<WorkerCounters>,
    /// The rate limits on the ICMP messages this worker originates.
    icmp: IcmpLimiter,
    /// The neighbours asked for, by this worker and (when shared) the others.
    solicits: Arc<SolicitLog>,
}

impl<P: Packet> Stack<P> {
    pub fn new(neighbours: usize, counters: Arc<WorkerCounters>) -> Self {
        Stack {
            neigh: NeighTable::new(neighbours),
            pending: Pending::new(PENDING_CAPACITY),
            learned: Vec::with_capacity(LEARNED_CAPACITY),
            retry: Vec::with_capacity(PENDING_CAPACITY),
            counters,
            icmp: IcmpLimiter::new(&IcmpLimits::default(), 1),
            solicits: Arc::new(SolicitLog::new()),
        }
    }

    /// The ICMP rate limits of this worker, one of `workers` sharing the
    /// global budget (see `icmp_limit`).
    pub fn set_icmp_limits(&mut self, limits: &IcmpLimits, workers: usize) {
        self.icmp = IcmpLimiter::new(limits, workers);
    }

    /// Whether an ICMP (IPv4 `dst`) or ICMPv6 message of `msg_type` and
    /// `code` that rvs originates may go to `dst` now; one held back is
    /// counted.
    pub fn icmp_allow(&mut self, dst: IpAddr, msg_type: u8, code: u8, now: Millis) -> bool {
        icmp_allow(&mut self.icmp, &self.counters, dst, msg_type, code, now)
    }

    /// Shares one log of the neighbours asked for among the workers, so
    /// that whichever receives an answer knows it was asked for.
    pub fn share_solicitations(&mut self, log: Arc<SolicitLog>) {
        self.solicits = log;
    }

    /// Whether `ip` on `port` was asked for lately, by any worker sharing
    /// the log: an answer about it may be learned.
    pub(super) fn was_asked(&self, port: u16, ip: IpAddr, now: Millis) -> bool {
        self.pending.is_resolving(port, ip) || self.solicits.was_asked(port, ip, now)
    }

    /// Handles one received frame.
    pub fn input(&mut self, cfg: &NetConfig, mut pkt: P, now: Millis, out: &mut impl Output<P>) {
        let rx_port = pkt.rx_port();
        match self.classify(cfg, &mut pkt, now, out) {
            Action::Drop(reason) => self.counters.dropped(reason),
            Action::Consumed => self.counters.consumed.inc(),
            Action::SendBack => out.send(rx_port, pkt),
            Action::Route(dst) => self.route_out(cfg, pkt, dst, rx_port, now, out),
            Action::ToHost => match cfg.host_path() {
                Some(h) => {
                    fill_ethernet(&mut pkt, h.host_mac, h.mac);
                    self.counters.to_host.inc();
                    out.send(h.port, pkt);
                }
                None => self.counters.dropped(DropReason::NotForUs),
            },
        }
    }

    fn classify(
        &mut self,
        cfg: &NetConfig,
        pkt: &mut P,
        now: Millis,
        out: &mut impl Output<P>,
    ) -> Action {
        if !pkt.is_contiguous() {
            return Action::Drop(DropReason::Unsupported);
        }
        let port = pkt.rx_port();
        if let Some(h) = cfg.host_path().filter(|h| h.port == port) {
            return self.host_input(cfg, pkt, h);
        }
        let Some(mac) = cfg.iface(port).map(|i| i.mac) else {
            return Action::Drop(DropReason::NotForUs);
        };
        let Ok(eth) = EthernetFrame::new_checked(pkt.data()) else {
            return Action::Drop(DropReason::BadHeader);
        };
        let dst = eth.dst_addr();
        let ipv6_multicast = dst.0[0] == 0x33 && dst.0[1] == 0x33;
        let other_unicast = !dst.is_multicast() && cfg.accepts_other_mac(port);
        if dst != mac && !dst.is_broadcast() && !ipv6_multicast && !other_unicast {
            return Action::Drop(DropReason::NotForUs);
        }
        let src_mac = eth.src_addr();
        // No station sends from a group or all-zero address (IEEE 802).
        if src_mac.is_multicast() || src_mac.0 == [0; 6] {
            return Action::Drop(DropReason::Martian);
        }
        match eth.ethertype() {
            EtherType::ARP => self.arp_input(cfg, pkt, port, mac, now, out),
            EtherType::IPV4 => self.ipv4_input(cfg, pkt, now),
            EtherType::IPV6 => self.ipv6_input(cfg, pkt, port, mac, src_mac, now, out),
            _ => Action::Drop(DropReason::Unsupported),
        }
    }

    /// Sends a packet whose L3 header starts after `ETH` bytes of room:
    /// route, resolve the next hop, fill the Ethernet header.
    pub fn route_out(
        &mut self,
        cfg: &NetConfig,
        pkt: P,
        dst: IpAddr,
        rx_port: u16,
        now: Millis,
        out: &mut impl Output<P>,
    ) {
        let Some(hop) = Self::next_hop(cfg, dst, rx_port) else {
            self.counters.dropped(DropReason::NoRoute);
            return;
        };
        self.resolve_and_send(cfg, pkt, hop, now, out);
    }

    /// Where a packet to `dst` that came in on `rx_port` goes next: what
    /// `route_out` looks up, for callers that need the egress port first.
    #[inline]
    pub fn next_hop(cfg: &NetConfig, dst: IpAddr, rx_port: u16) -> Option<NextHop> {
        match dst {
            // Link-local destinations are on the link the packet came from.
            IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80 => Some(NextHop {
                port: rx_port,
                addr: dst,
            }),
            _ => cfg.route(dst),
        }
    }

    /// What a packet to `hop` gets as its Ethernet header, for a caller to
    /// keep (a route cache slot) and use while `l2_fresh` says so: the
    /// next hop's MAC while it is reachable, the port's own.
    pub fn l2_for(&self, cfg: &NetConfig, hop: NextHop, now: Millis) -> Option<L2> {
        let src = cfg.iface(hop.port)?.mac;
        let (dst, until) = self.neigh.reachable_until(hop.port, hop.addr, now)?;
        Some(L2 {
            port: hop.port,
            src,
            dst,
            generation: self.neigh.generation(),
            until,
        })
    }

    /// Whether `l2` still says what a lookup would: no neighbour went or
    /// changed since, and the entry is not yet due for a probe.
    #[inline]
    pub fn l2_fresh(&self, l2: &L2, now: Millis) -> bool {
        l2.generation == self.neigh.generation() && now < l2.until
    }

    /// Sends with a kept Ethernet header (`l2_for`, checked by `l2_fresh`).
    #[inline]
    pub fn send_l2(&mut self, mut pkt: P, l2: &L2, out: &mut impl Output<P>) {
        fill_ethernet(&mut pkt, l2.dst, l2.src);
        out.send(l2.port, pkt);
    }

    /// `route_out` with the next hop already looked up (`next_hop`).
    #[inline]
    pub fn send_via(
        &mut self,
        cfg: &NetConfig,
        pkt: P,
        hop: NextHop,
        now: Millis,
        out: &mut impl Output<P>,
    ) {
        self.resolve_and_send(cfg, pkt, hop, now, out);
    }

    fn resolve_and_send(
        &mut self,
        cfg: &NetConfig,
        mut pkt: P,
        hop: NextHop,
        now: Millis,
        out: &mut impl Output<P>,
    ) {
        let Some(src_mac) = cfg.iface(hop.port).map(|i| i.mac) else {
            self.counters.dropped(DropReason::NoRoute);
            return;
        };
        match self.neigh.lookup(hop.port, hop.addr, now) {
            Lookup::Reachable(mac) => {
                fill_ethernet(&mut pkt, mac, src_mac);
                out.send(hop.port, pkt);
            }
            Lookup::Stale(mac) => {
                fill_ethernet(&mut pkt, mac, src_mac);
                out.send(hop.port, pkt);
                if self.neigh.should_probe(hop.port, hop.addr, now) {
                    self.solicit(cfg, hop.port, hop.addr, now, out);
                }
            }
            Lookup::Missing => match self.pending.push(hop.port, hop.addr, pkt, now) {
                Ok(true) => self.solicit(cfg, hop.port, hop.addr, now, out),
                Ok(false) => {}
                Err(_dropped) => self.counters.dropped(DropReason::NeighbourQueueFull),
            },
        }
    }

    /// Records a neighbour this worker saw, tells the others through the
    /// control thread, and sends what waited for it.
    pub(super) fn learn_local(
        &mut self,
        cfg: &NetConfig,
        port: u16,
        ip: IpAddr,
        mac: MacAddr,
        now: Millis,
        out: &mut impl Output<P>,
    ) {
        if !mac.is_unicast() || ip.is_unspecified() {
            return;
        }
        let learned = self.neigh.learn(port, ip, mac, now);
        if learned.report && self.learned.len() < LEARNED_CAPACITY {
            self.learned.push(NeighUpdate { port, ip, mac });
        }
        self.flush_pending(cfg, port, ip, mac, out);
    }

    /// A neighbour another worker learned.
    pub fn neighbour(
        &mut self,
        cfg: &NetConfig,
        u: NeighUpdate,
        now: Millis,
        out: &mut impl Output<P>,
    ) {
        self.neigh.learn(u.port, u.ip, u.mac, now);
        self.flush_pending(cfg, u.port, u.ip, u.mac, out);
    }

    /// A configured (permanent) neighbour; see `NeighTable::set_permanent`.
    pub fn static_neighbour(&mut self, cfg: &NetConfig, u: NeighUpdate, out: &mut impl Output<P>) {
        self.neigh.set_permanent(u.port, u.ip, u.mac);
        self.flush_pending(cfg, u.port, u.ip, u.mac, out);
    }

    fn flush_pending(
        &mut self,
        cfg: &NetConfig,
        port: u16,
        ip: IpAddr,
        mac: MacAddr,
        out: &mut impl Output<P>,
    ) {
        let Some(src_mac) = cfg.iface(port).map(|i| i.mac) else {
            return;
        };
        self.pending.take(port, ip, |mut p| {
            fill_ethernet(&mut p, mac, src_mac);
            out.send(port, p);
        });
    }

    /// Timers: re-asks for unresolved next hops and drops what waited too long.
    pub fn poll(&mut self, cfg: &NetConfig, now: Millis, out: &mut impl Output<P>) {
        if self.pending.is_empty() {
            return;
        }
        let mut retry = std::mem::take(&mut self.retry);
        let counters = &self.counters;
        self.pending.expire(
            now,
            |port, ip| retry.push((port, ip)),
            |_p| counters.dropped(DropReason::NoNeighbour),
        );
        for (port, ip) in retry.drain(..) {
            self.solicit(cfg, port, ip, now, out);
        }
        self.retry = retry;
    }

    /// Hands the neighbours learned since the last call to `f`.
    pub fn drain_learned(&mut self, f: impl FnMut(NeighUpdate)) {
        self.learned.drain(..).for_each(f);
    }

    /// Asks who has `target` on `port`: an ARP request or a neighbour solicitation.
    fn solicit(
        &mut self,
        cfg: &NetConfig,
        port: u16,
        target: IpAddr,
        now: Millis,
        out: &mut impl Output<P>,
    ) {
        let (Some(ifc), Some(src)) = (cfg.iface(port), cfg.source_for(port, target)) else {
            return;
        };
        self.solicits.asked(port, target, now);
        let mac = ifc.mac;
        let Some(mut pkt) = out.alloc() else {
            self.counters.dropped(DropReason::NoBuffer);
            return;
        };
        let built = match (src, target) {
            (IpAddr::V4(s), IpAddr::V4(t)) => {
                self.counters.arp_requests.inc();
                super::arp::build_request(&mut pkt, mac, s, t, MacAddr::BROADCAST)
            }
            (IpAddr::V6(s), IpAddr::V6(t)) => {
                self.counters.nd_solicits.inc();
                super::nd::build_solicit(&mut pkt, mac, s, t)
            }
            _ => false,
        };
        if built {
            out.send(port, pkt);
        } else {
            self.counters.dropped(DropReason::NoBuffer);
        }
    }

    /// Announces an address rvs owns: gratuitous ARP or an unsolicited NA.
    pub fn announce(&mut self, cfg: &NetConfig, addr: IpAddr, out: &mut impl Output<P>) {
        let Some(owner) = cfg.owner(addr) else { return };
        let Some(mac) = cfg.iface(owner.port).map(|i| i.mac) else {
            return;
        };
        let Some(mut pkt) = out.alloc() else {
            self.counters.dropped(DropReason::NoBuffer);
            return;
        };
        let built = match addr {
            IpAddr::V4(a) => super::arp::build_request(&mut pkt, mac, a, a, MacAddr::BROADCAST),
            IpAddr::V6(a) => super::nd::build_unsolicited_advert(&mut pkt, mac, a),
        };
        if built {
            self.counters.gratuitous.inc();
            out.send(owner.port, pkt);
        } else {
            self.counters.dropped(DropReason::NoBuffer);
        }
    }

    fn ipv4_input(&mut self, cfg: &NetConfig, pkt: &mut P, now: Millis) -> Action {
        let (limiter, counters) = (&mut self.icmp, &*self.counters);
        super::icmp::ipv4_local(cfg, pkt, counters, |dst| {
            icmp_allow(limiter, counters, dst, 0, 0, now)
        })
    }
}

fn icmp_allow(
    limiter: &mut IcmpLimiter,
    counters: &WorkerCounters,
    dst: IpAddr,
    msg_type: u8,
    code: u8,
    now: Millis,
) -> bool {
    match limiter.check(dst, msg_type, code, now) {
        Verdict::Send => true,
        Verdict::Global => {
            counters.icmp_limited_global.inc();
            false
        }
        Verdict::Host => {
            counters.icmp_limited_host.inc();
            false
        }
    }
}

/// A resolved next hop as a caller keeps it (`Stack::l2_for`). The
/// default is a hop never resolved: `Stack::l2_fresh` never vouches for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct L2 {
    pub port: u16,
    pub src: MacAddr,
    pub dst: MacAddr,
    generation: u64,
    until: Millis,
}

/// Writes the Ethernet header of a packet routed out: MACs and the
/// ethertype that matches the IP version in the first L3 byte.
pub(super) fn fill_ethernet<P: Packet>(pkt: &mut P, dst: MacAddr, src: MacAddr) {
    let d = pkt.data_mut();
    if d.len() < ETH + 1 {
        return;
    }
    let ethertype = if d[ETH] >> 4 == 6 {
        EtherType::IPV6
    } else {
        EtherType::IPV4
    };
    let mut eth = EthernetFrame::new_unchecked(d);
    eth.set_dst_addr(dst);
    eth.set_src_addr(src);
    eth.set_ethertype(ethertype);
}

/// Prepares a fresh buffer of exactly `len` bytes.
pub(super) fn sized<P: Packet>(pkt: &mut P, len: usize) -> bool {
    pkt.set_len(len) && pkt.len() == len
}
