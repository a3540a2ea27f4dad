//! The load-balancing stage of a worker: conn lookup by in- or out-tuple,
//! service lookup and scheduling on a miss (`schedule.rs`), the forwarding
//! rewrite, then routing through the network stack (`forward.rs`); an ICMP
//! error about a conn goes on to its other side (`icmp.rs`).
//!
//! With several workers every flow has one owner, which holds its conn,
//! its persistence template and its FULLNAT port: `steer.rs` says which.
use std::net::IpAddr;
use std::sync::Arc;

use super::frag::{self, FragKey, FragTable};
use super::nat_replies::NatReplies;
use super::pressure::{Pressure, PressureConfig};
use crate::counters::{DropReason, LaddrUse, WorkerCounters};
use crate::ipvs::conn::{flags as conn_flags, ConnId, ConnRef, ConnTable};
use crate::ipvs::persist::{self, FirstPacket, SchedCtx, SchedError};
use crate::ipvs::proto::{
    tcp_flags, Direction, TcpState, Timeouts, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP,
};
use crate::ipvs::proto_sctp::{SctpEvent, SctpState};
use crate::ipvs::proxy_proto::ProxyProtocol;
use crate::ipvs::sched::WorkerScheds;
use crate::ipvs::stats::StatsCounters;
use crate::ipvs::ConnRow;
use crate::ipvs::{Dest, FwdMethod, Protocol, Service, ServiceSet, Tuple};
use crate::laddr::PortSteer;
use crate::netstack::{AddrKind, Millis, NetConfig, NextHop, Output, RxVerdict, Stack, L2};
use crate::packet::Packet;
use crate::sessionlog::{Event, Session, SessionRing};
use crate::wire::ipext::{is_walked_ext, ChainError};
use crate::wire::{
    icmpv4, icmpv6, sctp, EtherType, EthernetFrame, IpProtocol, Ipv4Packet, Ipv6Packet, PlainFrame,
    SctpPacket, TcpPacket, UdpPacket,
};
use crate::xmit::{self, XmitError, XmitOpts};

const ETH: usize = 14;
/// Conns expired per millisecond's poll at most, so expiry never stalls
/// rx; each new conn expires a few more first (`pressure::EXPIRE_PER_NEW`),
/// so expiry keeps up with any rate conns are made at.
const EXPIRE_BUDGET: usize = 256;

/// What the stage did with a packet.
pub enum Outcome<P> {
    /// Forwarded or dropped (and counted).
    Done,
    /// Not load-balancer traffic: the network stack's.
    Local(P),
    /// Another worker owns the flow.
    Redirect(usize, P),
}

pub struct Lb {
    worker: usize,
    workers: usize,
    conns: ConnTable,
    scheds: WorkerScheds,
    /// What a conn's end gives back or tells (`ConnEnds::ended`).
    ends: ConnEnds,
    counters: Arc<WorkerCounters>,
    last_housekeeping: Millis,
    /// Which worker owns a FULLNAT local port (`port & mask`) where the
    /// replies' port has no RSS.
    steer: PortSteer,
    /// The ports whose RSS decides who owns a flow (`steer.rs`).
    spreads: steer::Spreads,
    svc_cache: SvcCache,
    routes: RouteCache,
    /// The ports of datagrams whose first fragment came this way.
    frags: FragTable,
    /// Where this worker's FULLNAT local-port cursors start (random per
    /// start; `laddr::seed`).
    laddr_seed: u64,
    /// Defences and limits for a table under pressure.
    pressure: Pressure,
    /// `--synproxy` services' cookies and handshakes with real servers.
    synproxy: synproxy::SynProxy,
    /// The connection sync daemons (`--start-daemon`).
    sync: super::sync::SyncWorker,
    /// The packet in hand came through this worker's ring from another
    /// worker (`input_relayed`), not off a port.
    relayed: bool,
    /// IPv4 conns' rewrites, and the burst's frames stage one parsed.
    express: express::Express,
}

impl Lb {
    pub fn new(
        worker: usize,
        workers: usize,
        conn_capacity: usize,
        counters: Arc<WorkerCounters>,
    ) -> Lb {
        Lb {
            worker,
            workers: workers.max(1),
            conns: ConnTable::for_worker(worker, conn_capacity),
            scheds: WorkerScheds::new(worker),
            ends: ConnEnds {
                pools: Pools::default(),
                sessions: None,
                nat_replies: None,
                worker,
            },
            counters,
            last_housekeeping: 0,
            // At most MAX_WORKERS workers exist (rvsd's config bounds them
            // far lower), so this never falls back; one worker owns all.
            steer: PortSteer::new(workers.max(1)).unwrap_or_else(|_| PortSteer::single()),
            spreads: steer::Spreads::default(),
            svc_cache: SvcCache::new(),
            routes: RouteCache {
                net: 0,
                slots: [None; ROUTE_CACHE_SLOTS],
            },
            frags: FragTable::new(frag::CAPACITY),
            laddr_seed: crate::laddr::seed::start_seed(),
            pressure: Pressure::new(&PressureConfig::default()),
            synproxy: synproxy::SynProxy::new(conn_capacity),
            sync: super::sync::SyncWorker::default(),
            relayed: false,
            express: express::Express::default(),
        }
    }

    /// `[defense]` and `[limits]`; the defence levels are judged at once.
    pub fn set_pressure(&mut self, cfg: &PressureConfig, now: Millis) {
        self.pressure = Pressure::new(cfg);
        self.pressure
            .poll(&mut self.conns, now, &self.counters.pressure, |_, _| {});
    }

    /// Where this worker's local-port cursors start (rvsd: a random seed;
    /// 0: each pool's first port), so that the port a conn gets is known,
    /// or the same in two directors given the same packets (the tests, the
    /// fuzz target's reference worker).
    pub fn set_laddr_seed(&mut self, seed: u64) {
        self.laddr_seed = seed;
    }

    /// Logs every conn's start and end into `ring` from now on.
    pub fn set_session_log(&mut self, ring: Arc<SessionRing>) {
        self.ends.sessions = Some(ring);
    }

    /// Bytes allocated for the conn table and the express lane's entries.
    pub fn memory_bytes(&self) -> usize {
        self.conns.memory_bytes() + self.express.memory_bytes()
    }

    pub fn conns(&self) -> &ConnTable {
        &self.conns
    }

    /// The rows of `ipvsadm -c` for at most `max` of this worker's conns
    /// and templates, from slab slot `from` on, and the slot the next rows
    /// start from (None: these were the last).
    pub fn conn_rows(&self, from: u32, max: usize, now: Millis) -> (Vec<ConnRow>, Option<u32>) {
        let mut rows = Vec::new();
        for (id, c) in self.conns.iter_from(from) {
            if rows.len() >= max {
                return (rows, Some(id.index() as u32));
            }
            rows.push(ConnRow::of(c, now, self.conns.pe_data(id)));
        }
        (rows, None)
    }

    /// `input` for a packet another worker handed over through this
    /// worker's ring (its burst `prepare`d as a port's is: an established
    /// conn's packet takes the lane here too). What only a relay may carry
    /// (a sync message's relay mark) is believed only here: a frame off a
    /// port cannot claim it.
    #[allow(clippy::too_many_arguments)]
    pub fn input_relayed<P: Packet>(
        &mut self,
        net: &NetConfig,
        svcs: &ServiceSet,
        timeouts: &Timeouts,
        pkt: P,
        now: Millis,
        stack: &mut Stack<P>,
        out: &mut impl Output<P>,
    ) -> Outcome<P> {
        self.relayed = true;
        let o = self.input(net, svcs, timeouts, pkt, now, stack, out);
        self.relayed = false;
        o
    }

    /// One packet, in the order of its burst (stage two, after
    /// `prepare`): the express lane if it is an established conn's that
    /// the lane carries (`Lb::lane`), else the full path (`input_full`).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn input<P: Packet>(
        &mut self,
        net: &NetConfig,
        svcs: &ServiceSet,
        timeouts: &Timeouts,
        pkt: P,
        now: Millis,
        stack: &mut Stack<P>,
        out: &mut impl Output<P>,
    ) -> Outcome<P> {
        let mut pkt = pkt;
        if let Some(lane) = self.lane(net, &pkt) {
            match self.express(lane, None, net, svcs, timeouts, pkt, now, stack, out) {
                Ok(()) => return Outcome::Done,
                Err(p) => pkt = p,
            }
        }
        self.input_full(net, svcs, timeouts, pkt, now, stack, out)
    }

    /// Everything but the express lane, classified: every check, the
    /// conn by its in- or out-tuple (forwarded, every mode), else the
    /// service and whether the packet may open a conn (`schedule.rs` opens
    /// it), else the network stack's.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn input_full<P: Packet>(
        &mut self,
        net: &NetConfig,
        svcs: &ServiceSet,
        timeouts: &Timeouts,
        pkt: P,
        now: Millis,
        stack: &mut Stack<P>,
        out: &mut impl Output<P>,
    ) -> Outcome<P> {
        // Martian addresses are judged where no conn holds the packet: a
        // conn is made only from a packet that passed.
        match net.rx_check(pkt.rx_port(), pkt.data()) {
            RxVerdict::Pass => {}
            RxVerdict::Group => {
                if let Some(at) = self.sync.backup_datagram(pkt.rx_port(), pkt.data()) {
                    return self.sync_in(net, svcs, timeouts, pkt, at, now);
                }
                if !net.martian_frame(pkt.data()) {
                    return Outcome::Local(pkt);
                }
                return self.count_drop(DropReason::Martian);
            }
            RxVerdict::Drop(r) => return self.count_drop(r),
        }
        // The flow used where `parse_flow` returned it: moved out of the
        // `Option`, it was copied.
        let mut parsed = parse_flow(pkt.data());
        let Some(f) = parsed.as_mut() else {
            if net.martian_frame(pkt.data()) {
                return self.count_drop(DropReason::Martian);
            }
            // A chain rvs does not follow, to a VIP: counted here, where the
            // network stack would call it only unsupported.
            if let Some(dst) = refused_ext_chain(pkt.data()) {
                if net.owner(dst).is_some_and(|o| o.kind == AddrKind::Vip) {
                    self.counters.dropped(DropReason::IpExtHeader);
                    return Outcome::Done;
                }
            }
            if super::malformed::malformed(pkt.data()) {
                self.counters.dropped(DropReason::BadHeader);
                return Outcome::Done;
            }
            return self.icmp_error(net, svcs, pkt, now, stack, out);
        };
        if f.t.proto == IPPROTO_SCTP && f.tcp_flags == SCTP_MALFORMED {
            self.counters.dropped(DropReason::BadHeader);
            return Outcome::Done;
        }
        // A VRRP backup is silent for the addresses the master holds.
        if net.is_standby(f.t.daddr) {
            return self.count_drop(DropReason::VrrpBackup);
        }
        if let Some((key, first)) = f.frag {
            if first {
                self.frags.insert(key, (f.t.sport, f.t.dport), now);
            } else if let Some((s, d)) = self.frags.ports(&key, now) {
                (f.t.sport, f.t.dport) = (s, d);
            } else {
                self.counters.dropped(DropReason::FragNoFirst);
                return Outcome::Done;
            }
        }
        let owner = self.owner(f, pkt.rx_port(), f.frag.is_some(), net, svcs);
        if owner != self.worker {
            return Outcome::Redirect(owner, pkt);
        }
        // The kernel's conn_reuse_mode=1: a new SYN on a tuple whose conn
        // sits in TIME_WAIT ends that conn and is scheduled afresh, so a
        // client reusing its source port reaches the scheduler (and the
        // counters) like any new connection.
        let probe = self.conns.probe(&f.t);
        let mut hit = self.conns.probe_either(&probe);
        if let Some((id, false)) = hit {
            let syn_only = f.t.proto == IPPROTO_TCP
                && f.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK | tcp_flags::RST)
                    == tcp_flags::SYN;
            let ends = if syn_only {
                self.conns.get(id).and_then(|c| c.tcp_state()) == Some(TcpState::TimeWait)
            } else {
                // The same for an INIT on an SCTP conn that is CLOSED.
                f.t.proto == IPPROTO_SCTP
                    && f.tcp_flags == SctpEvent::Init as u8
                    && self.conns.get(id).is_some_and(|c| {
                        c.state() == SctpState::Closed as u8 && c.control().is_none()
                    })
            };
            if ends {
                self.remove_conn(svcs, id, now);
                hit = self.conns.probe_out(&probe).map(|id| (id, true));
            }
        }
        match hit {
            Some((id, false)) => {
                if self.synproxy_holds(id) {
                    self.synproxy_client(id, svcs, pkt, now);
                    return Outcome::Done;
                }
                let dir = Direction::Input;
                self.forward(id, dir, false, f, net, svcs, timeouts, pkt, now, stack, out);
                return Outcome::Done;
            }
            Some((id, true)) => {
                if self.synproxy_holds(id) {
                    let (n, s, tm) = (net, svcs, timeouts);
                    self.synproxy_server(id, f, n, s, tm, pkt, now, stack, out);
                    return Outcome::Done;
                }
                let dir = Direction::Output;
                self.forward(id, dir, false, f, net, svcs, timeouts, pkt, now, stack, out);
                return Outcome::Done;
            }
            None => {}
        }
        if net.martian_flow(f.t.saddr, f.t.daddr) {
            return self.count_drop(DropReason::Martian);
        }
        let Some(svc) = self
            .svc_cache
            .lookup_in_line(svcs, f.t.proto, f.t.daddr, f.t.dport)
        else {
            if let Some(id) = self.rs_conn_out(svcs, f, pkt.data(), now) {
                let dir = Direction::Output;
                self.forward(id, dir, false, f, net, svcs, timeouts, pkt, now, stack, out);
                return Outcome::Done;
            }
            return Outcome::Local(pkt);
        };
        // Only a first fragment opens a conn; a later one whose first made
        // none has nowhere to go.
        if matches!(f.frag, Some((_, false))) {
            self.counters.dropped(DropReason::FragNoFirst);
            return Outcome::Done;
        }
        // A SYN-proxy service answers SYNs itself; only an ACK with its
        // cookie opens a conn.
        let mut opening = None;
        if f.t.proto == IPPROTO_TCP && svc.synproxy() {
            if xmit::synproxy::is_syn(f.tcp_flags) {
                self.synproxy_answer(net, f, svc, pkt, now, out);
                return Outcome::Done;
            }
            match self.synproxy_check(&pkt, f, now) {
                Ok(o) => opening = Some(o),
                Err(r) => {
                    self.counters.dropped(r);
                    return Outcome::Done;
                }
            }
        }
        // Only a SYN (without RST) opens a TCP conn, only an INIT an SCTP
        // one (the kernel's default, sloppy_sctp=0); any UDP datagram does.
        else if (f.t.proto == IPPROTO_TCP
            && (f.tcp_flags & tcp_flags::SYN == 0 || f.tcp_flags & tcp_flags::RST != 0))
            || (f.t.proto == IPPROTO_SCTP && f.tcp_flags != SctpEvent::Init as u8)
        {
            self.counters.dropped(DropReason::NoConn);
            return Outcome::Done;
        }
        let h = probe.hash();
        self.schedule(
            f, h, svc, opening, net, svcs, timeouts, pkt, now, stack, out,
        )
    }

    fn count_drop<P>(&self, reason: DropReason) -> Outcome<P> {
        self.counters.dropped(reason);
        Outcome::Done
    }

    /// A UDP packet from a NAT real server that opens a conn to a client
    /// through its service's persistence engine (sip's conn_out); None
    /// when it does not, and the packet is not the load balancer's.
    fn rs_conn_out(
        &mut self,
        svcs: &ServiceSet,
        f: &Flow,
        data: &[u8],
        now: Millis,
    ) -> Option<ConnId> {
        if f.t.proto != IPPROTO_UDP {
            return None;
        }
        let (svc, dest) = svcs.find_real_service(Protocol::Udp, f.t.saddr, f.t.sport)?;
        let mut ctx = SchedCtx {
            payload: udp_payload(data),
            ..SchedCtx::new(self.worker, now)
        };
        let id = persist::conn_out(svc, dest, &mut self.conns, &f.t, &mut ctx).ok()?;
        if let (Some(ring), Some(c)) = (&self.ends.sessions, self.conns.get(id)) {
            ring.push(Session::of(c, Event::Start, now, self.worker));
        }
        Some(id)
    }

    /// Removes a conn and gives its FULLNAT local port back to the pool
    /// it came from.
    fn remove_conn(&mut self, svcs: &ServiceSet, id: ConnId, now: Millis) {
        let ends = &mut self.ends;
        self.conns.remove_with(id, |_, c| ends.ended(svcs, c, now));
    }

    /// Timers: conn expiry within a budget, the dests' counts folded,
    /// scheduler housekeeping once a second.
    pub fn poll(&mut self, svcs: &ServiceSet, now: Millis) {
        let ends = &mut self.ends;
        self.conns
            .expire_with(now, EXPIRE_BUDGET, |_, c| ends.ended(svcs, c, now));
        self.pressure
            .poll(&mut self.conns, now, &self.counters.pressure, |_, c| {
                ends.ended(svcs, c, now)
            });
        // Its conns' changes to their dests' counts, where the other
        // workers' schedulers see them (rvsd polls once a millisecond).
        self.conns.fold_dest_counts();
        if now.saturating_sub(self.last_housekeeping) >= 1000 {
            self.last_housekeeping = now;
            // The express lane's counts reach the stats once a second.
            self.express_fold(svcs);
            self.scheds.housekeeping(svcs, now);
            self.ends.pools.housekeeping(svcs);
            self.publish_laddr_use();
        }
    }

    /// The stats and counters the lane's packets have not yet reached
    /// (`poll` brings them once a second), and the dests' counts: brought
    /// now, as the worker stops.
    pub fn fold_stats(&mut self, svcs: &ServiceSet) {
        self.express_fold(svcs);
        self.conns.fold_dest_counts();
    }

    /// Local ports in use and conflicts per service and local address, for
    /// `-G` and the metrics: published once a second (an allocation here,
    /// off the packet path).
    fn publish_laddr_use(&self) {
        let mut use_: Vec<LaddrUse> = Vec::new();
        for (service, LocalPool { lips, alloc: a, .. }) in self.ends.pools.iter() {
            for lip in lips {
                use_.push(LaddrUse {
                    service,
                    laddr: *lip,
                    in_use: a.in_use(*lip).unwrap_or(0),
                    conflicts: a.conflicts(*lip).unwrap_or(0),
                    ports: a.ports_per_lip() as u32,
                });
            }
        }
        self.counters.laddr.store(Arc::new(use_));
    }
}

/// Packets and bytes of a conn on one side into its dest's, the
/// director's and its service's stats (worker `w`'s slots). The director's
/// totals count as the kernel's ip_vs_in_stats and ip_vs_out_stats count
/// tot_stats: by the conn's real server, so whatever service it belongs
/// to, and only while that real server is in its service's list (a deleted
/// or parked one's conns finish uncounted there).
#[inline]
fn count_stats(
    dest: Option<&Arc<Dest>>,
    svc: Option<&Service>,
    svcs: &ServiceSet,
    w: usize,
    out: bool,
    pkts: u64,
    bytes: u64,
) {
    let add = |s: &StatsCounters| {
        if out {
            s.outpkts.add(pkts);
            s.outbytes.add(bytes);
        } else {
            s.inpkts.add(pkts);
            s.inbytes.add(bytes);
        }
    };
    if let Some(d) = dest {
        add(d.stats.worker(w));
        if d.is_available() {
            add(svcs.total().worker(w));
        }
    }
    if let Some(s) = svc {
        add(s.stats.worker(w));
    }
}

/// What a worker keeps about its conns besides the table: what a conn's
/// end gives back or tells.
struct ConnEnds {
    /// FULLNAT local ports, per service and address family: this worker's
    /// share of each local address, with the pool it was built from.
    pools: Pools,
    /// `[session_log]`: conn starts and ends, for the writer thread.
    sessions: Option<Arc<SessionRing>>,
    /// Which worker holds each NAT conn, by reply tuple (several workers).
    nat_replies: Option<Arc<NatReplies>>,
    worker: usize,
}

impl ConnEnds {
    /// A conn is gone: its local port goes back, its NAT reply index entry
    /// goes, its unfolded counts are folded, and the session log hears of it.
    fn ended(&mut self, svcs: &ServiceSet, c: ConnRef<'_>, now: Millis) {
        self.pools.release(svcs, c);
        if let Some(r) = self
            .nat_replies
            .as_deref()
            .filter(|_| c.fwd() == FwdMethod::Masq && !c.is_template())
        {
            r.remove(&reply_tuple(&c), self.worker);
        }
        // What the express lane counted and has not yet folded.
        if let Some(mut e) = c.express().filter(|e| e.pkts != [0; 2]) {
            let svc = Protocol::from_number(c.proto())
                .and_then(|p| svcs.lookup(0, p, c.vaddr(), c.vport()));
            express::fold_counts(c.dest(), &mut e, svc.map(|s| &**s), svcs, self.worker);
        }
        if let Some(ring) = &self.sessions {
            if !c.is_template() {
                ring.push(Session::of(c, Event::End, now, self.worker));
            }
        }
    }
}

/// Where a conn's replies come from and go to: real server → client for
/// NAT (the conn's out-tuple).
fn reply_tuple(c: &ConnRef<'_>) -> Tuple {
    Tuple {
        proto: c.proto(),
        saddr: c.daddr(),
        sport: c.dport(),
        daddr: c.laddr(),
        dport: c.lport(),
    }
}

#[path = "steer.rs"]
mod steer;
pub use steer::client_owner;

#[path = "parse.rs"]
mod parse;
use parse::*;

#[path = "schedule.rs"]
mod schedule;

#[path = "forward.rs"]
mod forward;

#[path = "icmp.rs"]
mod icmp;

#[path = "pools.rs"]
mod pools;
use pools::{Binding, LocalPool, Pools};

#[path = "caches.rs"]
mod caches;
use caches::*;

#[path = "synproxy.rs"]
mod synproxy;

#[path = "lb_sync.rs"]
mod lb_sync;

#[path = "express.rs"]
mod express;

#[cfg(test)]
#[path = "express_tests.rs"]
mod express_tests;

#[cfg(test)]
#[path = "synproxy_tests.rs"]
mod synproxy_tests;

#[cfg(test)]
#[path = "steer_tests.rs"]
mod steer_tests;

#[cfg(test)]
#[path = "frag_lb_tests.rs"]
mod frag_lb_tests;

#[cfg(test)]
#[path = "pressure_lb_tests.rs"]
mod pressure_lb_tests;

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use etherparse::PacketBuilder;

    use super::*;
    use crate::ipvs::{DestConfig, ServiceConfig, ServiceKey, ServiceTable, StatsSnapshot};
    use crate::netstack::{AddrKind, Iface, IfaceAddr};
    use crate::packet::VecPacket;
    use crate::wire::MacAddr;

    struct Wire;

    impl Output<VecPacket> for Wire {
        fn send(&mut self, _: u16, _: VecPacket) {}
        fn alloc(&mut self) -> Option<VecPacket> {
            Some(VecPacket::new())
        }
    }

    fn segment(syn: bool) -> Vec<u8> {
        segment_from(40000, syn)
    }

    fn segment_from(cport: u16, syn: bool) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
            .ipv4([198, 18, 0, 2], [198, 18, 0, 100], 64)
            .tcp(cport, 80, 1000, 64240);
        let b = if syn { b.syn() } else { b.ack(1) };
        let mut f = Vec::new();
        b.write(&mut f, b"").unwrap();
        f
    }

    /// The first parse hands the rewrite what xmit's own parse would find
    /// for a plain IPv4 TCP or UDP frame, and nothing for the frames xmit
    /// must walk itself (options, fragments, SCTP, IPv6).
    #[test]
    fn the_first_parse_is_the_rewrites_for_plain_ipv4_tcp_and_udp_only() {
        let plain_udp = {
            let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
                .ipv4([198, 18, 0, 2], [198, 18, 0, 100], 64)
                .udp(4000, 53);
            let mut f = Vec::new();
            b.write(&mut f, b"query").unwrap();
            // Ethernet padding after the datagram is not part of it.
            f.extend_from_slice(&[0; 6]);
            f
        };
        for frame in [segment(true), segment(false), plain_udp] {
            let f = parse_flow(&frame).unwrap();
            assert_eq!(
                f.ip(),
                Some(xmit::parse_ip(&frame).unwrap()),
                "{frame:02x?}"
            );
        }
        let with_options = {
            let mut h = etherparse::Ipv4Header::new(
                20,
                64,
                etherparse::IpNumber::TCP,
                [198, 18, 0, 2],
                [198, 18, 0, 100],
            )
            .unwrap();
            h.options = [1, 1, 1, 0][..].try_into().unwrap();
            let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
                .ip(etherparse::IpHeaders::Ipv4(h, Default::default()))
                .tcp(40000, 80, 1000, 64240)
                .ack(1);
            let mut f = Vec::new();
            b.write(&mut f, b"").unwrap();
            f
        };
        let v6 = {
            let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
                .ipv6([0xfd; 16], [0xfe; 16], 64)
                .tcp(40000, 80, 1000, 64240)
                .ack(1);
            let mut f = Vec::new();
            b.write(&mut f, b"").unwrap();
            f
        };
        for frame in [with_options, v6] {
            let f = parse_flow(&frame).expect("a flow all the same");
            assert_eq!(f.ip(), None, "{frame:02x?}");
        }
    }

    /// One port on 198.18/16, a NAT service on 198.18.0.100:80 with one
    /// real server.
    fn director() -> (NetConfig, ServiceTable, ServiceKey, IpAddr) {
        let net = NetConfig::new(
            vec![Iface {
                port: 0,
                name: "p".into(),
                mac: MacAddr([2, 0, 0, 0, 0, 1]),
                addrs: vec![IfaceAddr {
                    addr: Ipv4Addr::new(198, 18, 0, 1).into(),
                    prefix_len: 16,
                }],
                mtu: 1500,
                tx_checksum: false,
            }],
            vec![],
        )
        .with_extra([(Ipv4Addr::new(198, 18, 0, 100).into(), AddrKind::Vip)]);
        let key = ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: Ipv4Addr::new(198, 18, 0, 100).into(),
            port: 80,
        };
        let rs: IpAddr = Ipv4Addr::new(198, 19, 0, 11).into();
        let mut table = ServiceTable::new(1);
        table.add_service(ServiceConfig::new(key)).unwrap();
        let mut d = DestConfig::new(rs, 8080);
        d.fwd = FwdMethod::Masq;
        table.add_dest(&key, d).unwrap();
        (net, table, key, rs)
    }

    #[test]
    fn a_listing_in_chunks_sees_every_conn_once() {
        let (net, table, _, _) = director();
        let counters = Arc::new(WorkerCounters::default());
        let mut stack: Stack<VecPacket> = Stack::new(64, counters.clone());
        let mut lb = Lb::new(0, 1, 64, counters);
        let (svcs, timeouts) = (table.snapshot(), Timeouts::default());
        for cport in 40000..40010 {
            let pkt = VecPacket::from_bytes(&segment_from(cport, true), 0);
            let _ = lb.input(&net, &svcs, &timeouts, pkt, 1_000, &mut stack, &mut Wire);
        }
        let (mut seen, mut chunks, mut from) = (Vec::new(), 0, Some(0));
        while let Some(f) = from {
            let (rows, next) = lb.conn_rows(f, 3, 1_000);
            assert!(rows.len() <= 3);
            seen.extend(rows.iter().map(|r| r.cport));
            chunks += 1;
            from = next;
        }
        seen.sort_unstable();
        assert_eq!(seen, (40000..40010).collect::<Vec<u16>>());
        assert_eq!(chunks, 4, "3 + 3 + 3 + 1");
    }

    #[test]
    fn the_totals_count_while_the_real_server_is_listed_as_the_kernels_tot_stats() {
        let (net, mut table, key, rs) = director();
        let counters = Arc::new(WorkerCounters::default());
        let mut stack: Stack<VecPacket> = Stack::new(64, counters.clone());
        let mut lb = Lb::new(0, 1, 64, counters);
        let timeouts = Timeouts::default();
        let mut feed = |lb: &mut Lb, svcs: &ServiceSet, frame: &[u8]| {
            let pkt = VecPacket::from_bytes(frame, 0);
            let _ = lb.input(&net, svcs, &timeouts, pkt, 1_000, &mut stack, &mut Wire);
        };
        let (syn, ack) = (segment(true), segment(false));
        let ip_len = |f: &[u8]| (f.len() - 14) as u64;

        let svcs = table.snapshot();
        feed(&mut lb, &svcs, &syn);
        let dest = table.get(&key).unwrap().dests()[0].clone();
        assert_eq!(
            dest.stats.snapshot().inpkts,
            1,
            "the SYN reached the real server"
        );
        let after_syn = StatsSnapshot {
            conns: 1,
            inpkts: 1,
            inbytes: ip_len(&syn),
            ..Default::default()
        };
        assert_eq!(svcs.total().snapshot(), after_syn);
        feed(&mut lb, &svcs, &ack);
        let after_ack = StatsSnapshot {
            inpkts: 2,
            inbytes: ip_len(&syn) + ip_len(&ack),
            ..after_syn
        };
        assert_eq!(svcs.total().snapshot(), after_ack);

        // -d: the conn finishes and its real server still counts it, the
        // director's totals no longer do.
        table.delete_dest(&key, rs, 8080).unwrap();
        let svcs = table.snapshot();
        feed(&mut lb, &svcs, &ack);
        assert_eq!(dest.stats.snapshot().inpkts, 3);
        assert_eq!(svcs.total().snapshot(), after_ack);
    }
}
