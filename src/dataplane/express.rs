//! The express lane: the packets of an established IPv4 conn that need
//! nothing but its rewrite.
//!
//! Most of a director's packets belong to conns it already tracks, and
//! for one of those with plain IPv4 on both sides the work is the same
//! every time: the same new addresses and ports, the same checksum
//! changes, the same next hop. The first packet of such a conn to come
//! this way works out what it can once and keeps it in the conn itself
//! (`ConnExpress`, in the bytes an IPv4 conn's addresses leave unused, so
//! it costs no memory and no cache line the lookup did not bring); later
//! ones are a tuple check, a few stores, two one's-complement adds (RFC
//! 1624) and the send.
//!
//! A burst goes through in two stages. In a table too big for the
//! caches, `Lb::prepare` (stage one) filters, parses and hashes every
//! frame of the burst and asks for the first few packets' index lines and
//! conns. `Lb::input` (stage two, a packet at a time and in order, so a
//! flow's packets never pass each other) looks each packet's conn up when
//! it comes to it (`Lb::lane`), having asked for the index lines of the
//! packet `INDEX_AHEAD` on and the conn of the one `CONN_AHEAD` on: the
//! misses overlap the work of the packets in between, a few at a time
//! rather than a burst's worth at once, which the processor's miss
//! buffers could not hold. In a smaller table there are no misses to
//! overlap, and stage one leaves its parse to stage two as well. Stage
//! two sends a packet with a lane here first; whatever the lane cannot
//! vouch for goes on to the full path, which is where everything else is
//! decided:
//! a conn that is not ESTABLISHED (TCP; but for the handshake's answer,
//! below) or a segment with SYN, FIN or RST,
//! IPv6 or NAT64, TUN other than IPIP, the SYN proxy, the proxy protocol's sequence shift,
//! one-packet scheduling, a TTL that expires, a packet over the egress
//! MTU, a next hop whose neighbour entry is not fresh, a frame the port's
//! filter does not pass, a VRRP backup's standby address. Those go the
//! full way as they always did. A packet whose conn this worker holds is
//! this worker's: the owner check that comes first on the full path
//! would send it nowhere else.
//!
//! Two packets of a conn that is not yet ESTABLISHED come this way. The
//! client's answer to a TCP handshake (its ACK, in SYN_RECV, or in
//! SYN_ACK under secure_tcp) moves its conn by the full path's own state
//! move (`ConnTable::on_packet`: state, dest counts, embryonic list,
//! timer) and is otherwise an established conn's packet, unless its
//! service inserts TOA into it. And a conn's first (a SYN, a UDP
//! datagram): the full path checks, schedules and makes the conn as that
//! packet leaves it (`ConnTable::insert_first`: its
//! state moved, its timer set), and then, rather than its general forward,
//! hands the packet here (`Lb::open`), which works out the client's side
//! of the conn's block (the one its later packets use; the reply's side
//! is worked out at the first reply), clamps a SYN's MSS where the forward
//! clamps it, and sends it; what the lane does not carry goes to the
//! forward.
//!
//! What the full path would do per packet and this lane does less often:
//! - the service and route lookups, the `IpAddr`s built from the conn and
//!   its dest: once per conn (and again after a change to the network
//!   configuration or the service table, `NetConfig::generation` and
//!   `ServiceSet::generation`, which start a new epoch);
//! - the Ethernet header: kept per next hop (a few routers and real
//!   servers) while the neighbour table vouches for it
//!   (`Stack::l2_fresh`);
//! - the dest's, service's and director's packet and byte counters: the
//!   conn counts, and `Lb::poll` folds the counts into them once a second
//!   (a conn that ends folds as it goes, a busy one before its counts
//!   could wrap), so `-L --stats`, `--rate` and /metrics are behind by at
//!   most a second.
//!
//! Its files, in the order a packet meets them: `express_head.rs`, stage
//! one's parse of a frame and the lookup with its asks ahead (`Head`,
//! `Lb::prepare`, `Lb::lane`); this file, stage two's lane (`Lb::express`:
//! the conn's checks, its timer, stats and the send) and a new conn's
//! first packet (`Lb::open`); `express_rewrite.rs`, the frame's rewrite
//! (`apply`, `tunnel`) and its sums; `express_block.rs`, what a conn's
//! first packet this way works out once (`work_out`) and the next hops
//! kept (`Hop`).
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use super::caches::SvcCache;
use super::parse::Flow;
use super::{Lb, ETH};
use crate::ipvs::conn::{flags as conn_flags, Conn, ConnExpress, ConnId};
use crate::ipvs::proto::{tcp_flags, Direction, TcpState, Timeouts, IPPROTO_TCP, IPPROTO_UDP};
use crate::ipvs::{Dest, FwdMethod, Service, ServiceSet};
use crate::netstack::{Millis, NetConfig, Output, Stack};
use crate::packet::Packet;

#[path = "express_head.rs"]
mod head;
pub(super) use head::PREFETCH_FROM;
use head::{Head, Lane};
#[cfg(test)]
pub(super) use head::{CONN_AHEAD, CONN_LAG};

#[path = "express_rewrite.rs"]
mod rewrite;
use rewrite::{apply, hop_only, leaves_as, tunnel};

#[path = "express_block.rs"]
mod block;
use block::{hop_lookup, server_slot, work_out, work_out_in_line, Hop, OFF, SERVER_SLOTS};

/// The modes the lane carries, as `express_side` takes them, and none in
/// particular (the conn's own).
const FULLNAT: u8 = FwdMethod::FullNat as u8;
const MASQ: u8 = FwdMethod::Masq as u8;
const DR: u8 = FwdMethod::DirectRoute as u8;
const TUN: u8 = FwdMethod::Tunnel as u8;
const ANY_MODE: u8 = u8::MAX;

/// A burst's parsed frames and the next hops conns go through.
pub(super) struct Express {
    /// Stage one left the parse to stage two as well as the lookups (a
    /// table small enough for the caches).
    one_pass: bool,
    /// Conns from which on stage one parses the burst first and the
    /// lookups ask ahead (`PREFETCH_FROM`; `Lb::set_two_pass_from`).
    two_pass_from: usize,
    /// Stage one's parsed frames, when it prefetches; the next one stage
    /// two comes to.
    heads: Vec<Option<Head>>,
    next: usize,
    /// Conn slots whose block has counts to fold.
    dirty: Vec<u32>,
    /// The next hops the conns' sides go through, with their Ethernet
    /// headers: a few routers and real servers, so a conn names one by
    /// index rather than keeping a header of its own.
    hops: Vec<Hop>,
    /// The next hop toward each real server, by `server_slot` of its
    /// address: a new conn's block starts with it (`work_out`), so its
    /// first packet is not routed again. Emptied with `hops`.
    servers: [(u32, u16); SERVER_SLOTS],
    /// The network configuration and the service table the blocks were
    /// worked out under (their generations), and its epoch: under a newer
    /// either, a conn's next packet works its side of the block out again
    /// (a dest's encapsulation, which `-e` changes in place, is read
    /// there).
    net: u64,
    svcs: u64,
    epoch: u32,
    /// `ConnTable::steady_ms` under the burst's timeouts (`prepare`'s).
    steady_ms: [u32; 2],
    /// Packets sent this way, and how many of them the worker's counter
    /// has been told of.
    hits: u64,
    published: u64,
    /// New conns' first packets may go this way (`Lb::open`); tests turn
    /// it off to compare with the full path.
    pub(super) opening: bool,
    /// First packets sent this way.
    opens: u64,
}

impl Default for Express {
    fn default() -> Express {
        Express {
            one_pass: false,
            two_pass_from: PREFETCH_FROM,
            heads: Vec::new(),
            next: 0,
            dirty: Vec::new(),
            hops: Vec::new(),
            servers: [(0, 0); SERVER_SLOTS],
            net: 0,
            svcs: 0,
            epoch: 0,
            steady_ms: [0; 2],
            hits: 0,
            published: 0,
            opening: true,
            opens: 0,
        }
    }
}

impl Express {
    /// A new burst under configuration `net` and the service table of
    /// generation `svcs`, its conns' steady timeouts `steady_ms`.
    pub(super) fn begin(&mut self, net: &NetConfig, svcs: u64, steady_ms: [u32; 2]) {
        if net.generation() != self.net {
            self.hops.clear();
            self.servers = [(0, 0); SERVER_SLOTS];
        }
        if (net.generation(), svcs) != (self.net, self.svcs) {
            (self.net, self.svcs) = (net.generation(), svcs);
            self.epoch = self.epoch.wrapping_add(1).max(1);
        }
        self.heads.clear();
        self.one_pass = false;
        self.next = 0;
        self.steady_ms = steady_ms;
    }

    /// The port of the next hop kept toward real server `rs` under `net`
    /// (`servers`); None where none is kept, as when `net` is newer than
    /// the hops.
    #[inline]
    pub(super) fn server_port(&self, net: &NetConfig, rs: IpAddr) -> Option<u16> {
        let IpAddr::V4(a) = rs else { return None };
        if self.net != net.generation() {
            return None;
        }
        let h = self.server_hop(u32::from(a));
        Some(self.hops.get(usize::from(h).checked_sub(1)?)?.hop.port)
    }

    /// The next hop kept toward real server `rs` (`servers`): its index +
    /// 1, 0 for none.
    #[inline(always)]
    fn server_hop(&self, rs: u32) -> u16 {
        match self.servers[server_slot(rs)] {
            (s, h) if s == rs => h,
            _ => 0,
        }
    }

    pub(super) fn memory_bytes(&self) -> usize {
        self.heads.capacity() * std::mem::size_of::<Option<Head>>()
            + self.dirty.capacity() * std::mem::size_of::<u32>()
            + self.hops.capacity() * std::mem::size_of::<Hop>()
    }
}

/// What a packet on the lane does to its conn's timer.
#[derive(Debug, Clone, Copy)]
enum Timer {
    /// Nothing: the packet opened the conn, which was made as it leaves it
    /// (`Lb::open`).
    Opened,
    /// Restarted with its protocol's steady timeout, `ms`
    /// (`Express::steady_ms`, UDP's or TCP's; `Conn::touch`).
    Touch { ms: u32 },
    /// Moved by the client's answer to its handshake
    /// (`ConnTable::on_packet`), which sets the timer of the state it
    /// moves to.
    Answer,
}

impl Timer {
    /// What the lane's packet does to the timer of conn `c`, which the
    /// lane's ask passed (and which the lane has not changed since), its
    /// protocols' steady timeouts `steady` (`Express::steady_ms`): asked
    /// of where the timer is, not kept from the ask, whose answer was
    /// spilled across the lane. An established TCP conn's and a UDP
    /// conn's are touched; the only other conn the ask passes is in its
    /// handshake, and its packet is the client's answer.
    #[inline(always)]
    fn of_asked(c: &Conn, steady: &[u32; 2]) -> Timer {
        // The protocol and the state side by side, compared as one word.
        let tcp_established = u16::from_ne_bytes([IPPROTO_TCP, TcpState::Established as u8]);
        if u16::from_ne_bytes([c.proto(), c.state()]) == tcp_established {
            Timer::Touch { ms: steady[0] }
        } else if c.proto() == IPPROTO_UDP {
            Timer::Touch { ms: steady[1] }
        } else {
            Timer::Answer
        }
    }
}

/// A conn's express counts into its dest's, the director's and its
/// service's stats (`count_stats`, as the full path counts each packet);
/// the counts are then zero.
pub(super) fn fold_counts(
    dest: Option<&Arc<Dest>>,
    e: &mut ConnExpress,
    svc: Option<&Service>,
    svcs: &ServiceSet,
    worker: usize,
) {
    for s in 0..2 {
        let (pkts, bytes) = (u64::from(e.pkts[s]), u64::from(e.bytes[s]));
        if pkts != 0 {
            super::count_stats(dest, svc, svcs, worker, s == 1, pkts, bytes);
        }
    }
    (e.pkts, e.bytes) = ([0; 2], [0; 2]);
}

impl Lb {
    /// Stage two's express lane for `pkt`: sent, or handed back for the
    /// full path with nothing changed.
    ///
    /// The conn is borrowed once for all of it (a miss on the next hop or
    /// a block to work out goes out of line, so the common case keeps its
    /// values in registers). The lookup (`lane`) has just matched the
    /// packet's tuple to the conn's: the packet arrived as its side's
    /// tuple.
    ///
    /// `open` is the full path's parse of the first packet of a conn it
    /// has just made as the packet leaves it (`Lb::open`): its state and
    /// timer are as they should be, so it is neither moved nor touched
    /// here; a SYN's MSS is clamped where the full path clamps it.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn express<P: Packet>(
        &mut self,
        lane: Lane,
        open: Option<&Flow>,
        net: &NetConfig,
        svcs: &ServiceSet,
        timeouts: &Timeouts,
        pkt: P,
        now: Millis,
        stack: &mut Stack<P>,
        out: &mut impl Output<P>,
    ) -> Result<(), P> {
        if lane.out {
            self.express_side::<P, true, ANY_MODE>(
                lane, open, net, svcs, timeouts, pkt, now, stack, out,
            )
        } else {
            self.express_side::<P, false, ANY_MODE>(
                lane, open, net, svcs, timeouts, pkt, now, stack, out,
            )
        }
    }

    /// `express` for the side `REPLY` says the packet is on: each side a
    /// copy of its own, in which the side is a constant. So is the conn's
    /// mode, `MODE` (`FwdMethod as u8`), where the caller knows it
    /// (`open`); `ANY_MODE`: read from the conn.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn express_side<P: Packet, const REPLY: bool, const MODE: u8>(
        &mut self,
        lane: Lane,
        open: Option<&Flow>,
        net: &NetConfig,
        svcs: &ServiceSet,
        timeouts: &Timeouts,
        mut pkt: P,
        now: Millis,
        stack: &mut Stack<P>,
        out: &mut impl Output<P>,
    ) -> Result<(), P> {
        let (id, reply) = (lane.id, REPLY);
        let s = usize::from(reply);
        // An established TCP conn's packet, the lane's commonest: asked in
        // one compare (`established_v4`).
        let fast = match open {
            None => self.conns.established_v4::<REPLY>(id),
            Some(_) => None,
        };
        let mut c = match fast {
            Some(c) => c,
            // Else a UDP conn's packet, the packet that opens a conn, or
            // the client's answer to its handshake; any other is the full
            // path's.
            None => {
                let Some(c) = self.conns.get_mut(id) else {
                    return Err(pkt);
                };
                if c.flags() & conn_flags::OFF_LANE != 0 {
                    return Err(pkt);
                }
                let carried = match c.proto() {
                    IPPROTO_UDP => true,
                    IPPROTO_TCP if open.is_some() => true,
                    // The client's answer (its ACK; stage one passed no
                    // SYN, FIN or RST), in SYN_RECV or, under secure_tcp,
                    // whose table moves a conn there on the server's
                    // SYN-ACK, SYN_ACK: moved by the full path's state
                    // move, not the rest of the full path. Not where TOA
                    // rides on it (the service's, as the forward reads
                    // it).
                    IPPROTO_TCP
                        if !reply
                            && 1u32.wrapping_shl(u32::from(c.state()))
                                & (1 << TcpState::SynRecv as u8 | 1 << TcpState::SynAck as u8)
                                != 0 =>
                    {
                        !toa_rides(&mut self.svc_cache, svcs, c)
                    }
                    _ => false,
                };
                if !carried {
                    return Err(pkt);
                }
                // An IPv6 conn has no block; a mode or side the lane does
                // not carry has its side off (`work_out`).
                let Some(c) = c.as_v4() else {
                    return Err(pkt);
                };
                c
            }
        };
        // A side's packet count about to wrap is folded into the stats
        // first, out of line, where the conn is first read: asked where the
        // packet is counted, its answer was spilled and asked again at the
        // end of the lane.
        if c.express_full(s) {
            self.fold_now(id, svcs);
            c = match self.conns.get_mut(id).and_then(Conn::as_v4) {
                Some(c) => c,
                None => return Err(pkt),
            };
        }
        let x = &mut self.express;
        let mut b = c.express_side(s);
        if b.0 != x.epoch {
            // Out of line, with the conn's dest, and the conn borrowed
            // again after: the lane keeps no hold on the table's dests.
            let conns = &mut self.conns;
            b = match work_out(conns, id, x, net, s) {
                Some(b) => b,
                None => return Err(pkt),
            };
            c = match conns.get_mut(id).and_then(Conn::as_v4) {
                Some(c) => c,
                None => return Err(pkt),
            };
        }
        let (rs, sums, hop) = (b.1, b.2, b.3);
        let fwd = match MODE {
            ANY_MODE => c.fwd(),
            FULLNAT => FwdMethod::FullNat,
            MASQ => FwdMethod::Masq,
            DR => FwdMethod::DirectRoute,
            _ => FwdMethod::Tunnel,
        };
        // The kept next hop while the neighbour table vouches for it (a
        // side not yet looked up, hop 0, wraps to no hop, and one the lane
        // does not carry, `OFF`, is past any kept); else looked up.
        let kept = match x.hops.get(usize::from(hop).wrapping_sub(1)) {
            Some(h) => h.kept(stack, now),
            None => None,
        };
        // Read in place: copied out, the header went through the stack
        // twice.
        let h = match kept {
            Some(h) => h,
            None => {
                if hop == OFF {
                    return Err(pkt);
                }
                let Some(k) = hop_lookup(x, &mut self.routes, &c, rs, reply, net, stack, now)
                else {
                    return Err(pkt);
                };
                c.set_express_hop(s, k);
                match x.hops.get(usize::from(k).wrapping_sub(1)) {
                    Some(h) => h,
                    None => return Err(pkt),
                }
            }
        };
        let (eth, max_end, src) = (&h.eth, h.max_end, h.src);
        let end = lane.end as usize;
        // The IP packet's bytes, as the stats count them (`ip_len`): its
        // total length, which a u16 holds. The end is past the Ethernet
        // header (`Head`'s, `plain_v4_end`): nothing wraps.
        let len = end.wrapping_sub(ETH) as u16;
        // Each mode's checks and rewrite under one branch on the mode
        // (asked where each needed it, it was compared four times). Over
        // the MTU: the full path's (need-frag, too big, fragments); TUN's
        // with the IPIP header it adds.
        if fwd == FwdMethod::Tunnel {
            const OUTER: usize = 20;
            if end + OUTER > max_end as usize || pkt.headroom() < OUTER || src == 0 {
                return Err(pkt);
            }
            trim_to(&mut pkt, end);
            tunnel(&mut pkt, sums[1], src, rs, eth);
        } else {
            if end > max_end as usize {
                return Err(pkt);
            }
            trim_to(&mut pkt, end);
            if fwd == FwdMethod::DirectRoute {
                hop_only(pkt.data_mut(), eth);
            } else {
                // A SYN's MSS as the full path clamps it (xmit::to_real):
                // in the modes that rewrite the segment, to what IPv4
                // leaves of the MTU.
                let syn =
                    open.filter(|f| f.t.proto == IPPROTO_TCP && f.tcp_flags & tcp_flags::SYN != 0);
                if let Some(ip) = syn.and_then(Flow::ip) {
                    if matches!(fwd, FwdMethod::FullNat | FwdMethod::Masq) {
                        crate::xmit::clamp_mss(pkt.data_mut(), &ip, h.mtu().saturating_sub(40));
                    }
                }
                // Read where the rewrite writes them, not earlier (kept
                // across the next hop's checks they spill).
                let v = c.words();
                let to = leaves_as(&v, fwd, rs, reply);
                apply(pkt.data_mut(), v.proto, &to, sums, eth);
            }
        }
        let port = h.hop.port;
        if c.express_count(s, len) {
            x.dirty.push(id.index() as u32);
        }
        let dir = if reply {
            Direction::Output
        } else {
            Direction::Input
        };
        let timer = match MODE {
            ANY_MODE => Timer::of_asked(&c, &self.express.steady_ms),
            _ => Timer::Opened,
        };
        match timer {
            Timer::Opened => self.express.opens += 1,
            Timer::Touch { ms } => {
                if !c.touch(dir, ms, now) {
                    self.conns.repost(id, dir, now, timeouts);
                }
            }
            // By its flags as stage one passed them: ACK of SYN, FIN, RST
            // and ACK, all the state move reads. (A conn that expects no
            // reply, DR's, is moved by the input-only table: `Conn::step`
            // sees to it.)
            Timer::Answer => _ = self.conns.on_packet(id, dir, tcp_flags::ACK, now, timeouts),
        }
        if self.sync.master_on() && dir != Direction::Output {
            self.sync_conn(id, now, out);
        }
        if !matches!(timer, Timer::Opened) {
            self.express.hits += 1;
        }
        out.send(port, pkt);
        Ok(())
    }
}

/// Whether conn `c`'s service inserts TOA into the client's answer to its
/// handshake (the forward's way, `svc_cache` as it finds the service),
/// which the lane then leaves to the full path. Out of line, as it runs
/// once a conn: inlined, its service lookup cost fnat-est-1m an eighth of
/// its rate, though it never ran there.
#[cold]
#[inline(never)]
fn toa_rides(svc_cache: &mut SvcCache, svcs: &ServiceSet, c: &Conn) -> bool {
    let svc = svc_cache.lookup(svcs, c.proto(), c.vaddr(), c.vport());
    svc.is_some_and(|s| s.toa())
}

impl Lb {
    /// Established conns' packets, and clients' answers to TCP handshakes,
    /// the express lane has sent (what the worker's express counter tells;
    /// a new conn's first packet sent this way is counted apart,
    /// `express_opens`).
    pub fn express_packets(&self) -> u64 {
        self.express.hits
    }

    /// New conns whose first packet went the express lane's way.
    pub fn express_opens(&self) -> u64 {
        self.express.opens
    }

    /// The first packet of conn `id`, which the full path has just made
    /// from it (`f`): sent the express lane's way where that may carry it,
    /// else handed back, untouched, for the full path's forward. The lane
    /// takes a plain IPv4 TCP SYN (without ACK, FIN or RST) or UDP
    /// datagram whose TTL does not run out here, of a service without
    /// TOA (which grows the SYN), under the configuration its blocks and
    /// next hops were worked out for. Most of a new conn's cost is what
    /// the forward would look up per packet; the client's side of the
    /// block worked out here is the one the conn's later packets use.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn open<P: Packet>(
        &mut self,
        id: ConnId,
        f: &Flow,
        toa: bool,
        net: &NetConfig,
        svcs: &ServiceSet,
        timeouts: &Timeouts,
        pkt: P,
        now: Millis,
        stack: &mut Stack<P>,
        out: &mut impl Output<P>,
    ) -> Result<(), P> {
        let x = &self.express;
        let state_flags = tcp_flags::SYN | tcp_flags::ACK | tcp_flags::FIN | tcp_flags::RST;
        if !x.opening
            || x.epoch == 0
            || net.generation() != x.net
            || f.plain_v4_end == 0
            || (f.t.proto == IPPROTO_TCP && (toa || f.tcp_flags & state_flags != tcp_flags::SYN))
            || pkt.data().get(ETH + 8).is_none_or(|&ttl| ttl <= 1)
        {
            return Err(pkt);
        }
        // A new conn's client side is worked out here, in line, where it
        // always is (the lane's is out of line, where a side is rarely
        // stale).
        if let Some((mut c, dest)) = self.conns.v4_with_dest(id) {
            if c.express_side(0).0 != self.express.epoch {
                work_out_in_line(&mut c, dest, &self.express, net, 0);
            }
        }
        let lane = Lane {
            id,
            out: false,
            end: f.plain_v4_end,
        };
        // A copy of the lane for each mode: a new conn's packet comes
        // here once, and each reads less in its own.
        let f = Some(f);
        match self.conns.get(id).map(|c| c.fwd()) {
            Some(FwdMethod::FullNat) => self.express_side::<P, false, FULLNAT>(
                lane, f, net, svcs, timeouts, pkt, now, stack, out,
            ),
            Some(FwdMethod::Masq) => self
                .express_side::<P, false, MASQ>(lane, f, net, svcs, timeouts, pkt, now, stack, out),
            Some(FwdMethod::DirectRoute) => self
                .express_side::<P, false, DR>(lane, f, net, svcs, timeouts, pkt, now, stack, out),
            Some(FwdMethod::Tunnel) => self
                .express_side::<P, false, TUN>(lane, f, net, svcs, timeouts, pkt, now, stack, out),
            _ => Err(pkt),
        }
    }

    /// Folds a conn's counts into the stats (before they could wrap, and
    /// once a second).
    #[cold]
    fn fold_now(&mut self, id: ConnId, svcs: &ServiceSet) {
        let Some(c) = self.conns.get(id) else { return };
        let (Some(v), Some(mut e)) = (c.v4(), c.express()) else {
            return;
        };
        let vip = IpAddr::V4(Ipv4Addr::from(v.vaddr));
        let svc = self.svc_cache.lookup(svcs, v.proto, vip, v.vport);
        fold_counts(c.dest(), &mut e, svc.map(|s| &**s), svcs, self.worker);
        if let Some(c) = self.conns.get_mut(id) {
            c.set_express(&e);
        }
    }

    /// Every conn's pending counts into the stats, and the packet count
    /// into the worker's counters (`Lb::poll`). A conn that ended since
    /// was folded as it went (`conn_ended`).
    pub(super) fn express_fold(&mut self, svcs: &ServiceSet) {
        let x = &mut self.express;
        self.counters.express.add(x.hits - x.published);
        x.published = x.hits;
        let dirty = std::mem::take(&mut self.express.dirty);
        for &i in &dirty {
            let id = ConnId::from_index(i);
            if self
                .conns
                .get(id)
                .and_then(|c| c.express())
                .is_some_and(|e| e.pkts != [0; 2])
            {
                self.fold_now(id, svcs);
            }
        }
        self.express.dirty = dirty;
        self.express.dirty.clear();
    }
}

/// Trims the frame's padding past the IP packet's `end`.
#[inline(always)]
fn trim_to<P: Packet>(pkt: &mut P, end: usize) {
    if pkt.len() > end {
        pkt.trim(pkt.len() - end);
    }
}

#[cfg(test)]
mod tests {
    use super::block::max_end;
    use super::*;
    use crate::netstack::{NextHop, L2};

    /// A next hop toward `rs` by port 3, kept as `hop_lookup` keeps one
    /// (its neighbour not yet known).
    fn hop_to(rs: Ipv4Addr) -> Hop {
        Hop {
            hop: NextHop {
                port: 3,
                addr: IpAddr::V4(rs),
            },
            max_end: max_end(1500),
            l2: L2::default(),
            eth: [0; 12],
            src: 0,
        }
    }

    /// The egress port kept toward a real server is told only under the
    /// configuration its next hop was found under, and a new one (`begin`)
    /// forgets it: the bind would otherwise pick a local address by a port
    /// the server may no longer be reached through.
    #[test]
    fn a_servers_kept_port_is_told_only_under_its_configuration() {
        let (a, b) = (
            NetConfig::new(vec![], vec![]),
            NetConfig::new(vec![], vec![]),
        );
        let rs = Ipv4Addr::new(10, 0, 0, 21);
        let mut x = Express::default();
        x.begin(&a, 0, [0; 2]);
        x.hops.push(hop_to(rs));
        x.servers[server_slot(u32::from(rs))] = (u32::from(rs), 1);
        assert_eq!(x.server_port(&a, IpAddr::V4(rs)), Some(3));
        let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 22));
        assert_eq!(x.server_port(&a, other), None, "a server not kept");
        assert_eq!(
            x.server_port(&b, IpAddr::V4(rs)),
            None,
            "a newer configuration"
        );
        x.begin(&b, 0, [0; 2]);
        assert_eq!(x.server_port(&b, IpAddr::V4(rs)), None, "forgotten");
        assert_eq!(x.server_port(&a, IpAddr::V4(rs)), None);
    }

    /// A service table of another generation starts a new epoch (each
    /// conn's block is worked out again, a dest's encapsulation read anew)
    /// but keeps the next hops, which only the network configuration's
    /// change forgets.
    #[test]
    fn a_new_service_table_starts_an_epoch_and_keeps_the_next_hops() {
        let net = NetConfig::new(vec![], vec![]);
        let rs = Ipv4Addr::new(10, 0, 0, 21);
        let mut x = Express::default();
        x.begin(&net, 7, [0; 2]);
        let first = x.epoch;
        x.hops.push(hop_to(rs));
        x.servers[server_slot(u32::from(rs))] = (u32::from(rs), 1);
        x.begin(&net, 7, [0; 2]);
        assert_eq!(x.epoch, first, "the same table: the same epoch");
        x.begin(&net, 8, [0; 2]);
        assert_ne!(x.epoch, first, "a newer table: a new epoch");
        assert_eq!(x.hops.len(), 1, "the next hops kept");
        assert_eq!(x.server_port(&net, IpAddr::V4(rs)), Some(3));
    }
}
