//! The express lane: the packets of an established IPv4 conn that need
//! nothing but its rewrite.
//!
//! Most of a director's packets belong to conns it already tracks, and
//! for one of those with plain IPv4 on both sides the work is the same
//! every time: the same new addresses and ports, the same checksum
//! changes, the same next hop. The first packet of such a conn to come
//! this way works all of that out once (an `Entry`, kept by conn slot);
//! later ones are a tuple check, a few stores, two one's-complement adds
//! (RFC 1624) and the send.
//!
//! A burst goes through in two stages. `Lb::prepare` (stage one) parses
//! every frame of the burst and looks its conn up, back to back, so the
//! processor overlaps the lookups' cache misses; it notes a `Lane` for
//! each packet that may take this way. `Lb::input` (stage two, a packet at
//! a time and in order, so a flow's packets never pass each other) sends a
//! packet with a lane here first; whatever the lane cannot vouch for goes
//! on to the full path, which is where everything else is decided:
//! a conn that is not ESTABLISHED (TCP) or a segment with SYN, FIN or RST,
//! IPv6 or NAT64, TUN, the SYN proxy, the proxy protocol's sequence shift,
//! one-packet scheduling, a TTL that expires, a packet over the egress
//! MTU, a next hop whose neighbour entry is not fresh, a frame the port's
//! filter does not pass, a VRRP backup's standby address. Those go the
//! full way as they always did. A packet whose conn this worker holds is
//! this worker's: the owner check that comes first on the full path
//! would send it nowhere else.
//!
//! What the full path would do per packet and this lane does less often:
//! - the service and route lookups, the `IpAddr`s built from the conn and
//!   its dest: once per conn (and again after a network configuration
//!   change, `NetConfig::generation`, which starts a new epoch);
//! - the Ethernet header: kept per next hop (a few routers and real
//!   servers) while the neighbour table vouches for it
//!   (`Stack::l2_fresh`);
//! - the dest's, service's and director's packet and byte counters: the
//!   entry counts, and `Lb::poll` folds the counts into them once a
//!   second (and an entry about to serve another conn folds first), so
//!   `-L --stats`, `--rate` and /metrics are behind by at most a second.
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use super::{plain_ports, plain_v4, plain_v4_frame, Lb, ETH};
use crate::ipvs::conn::{flags as conn_flags, ConnId, ConnTable, ConnV4};
use crate::ipvs::proto::{tcp_flags, Direction, TcpState, Timeouts, IPPROTO_TCP, IPPROTO_UDP};
use crate::ipvs::stats::StatsCounters;
use crate::ipvs::{Dest, FwdMethod, ServiceSet};
use crate::netstack::{Millis, NetConfig, NextHop, Output, RxVerdict, Stack, L2};
use crate::packet::Packet;
use crate::wire::checksum::fold;

/// How often pending counts reach the dest, service and director stats.
pub(super) const FOLD_MS: Millis = 1000;

/// The TTL's word (TTL, protocol) one hop later, as an RFC 1624 sum: the
/// new word minus the old is -0x0100 for any TTL above 1.
const TTL_DELTA: u32 = 0xfeff;

/// `fold` of a sum of two 16-bit words: two carries at most, no loop.
#[inline(always)]
fn fold2(s: u32) -> u16 {
    let s = (s & 0xffff) + (s >> 16);
    ((s & 0xffff) + (s >> 16)) as u16
}

/// What stage one found for one packet of the burst.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lane {
    /// The frame's address: the packet stage two must be handed.
    data: usize,
    id: ConnId,
    out: bool,
    /// TCP's flag byte (0 for UDP).
    tcp_flags: u8,
    /// Its addresses and ports.
    addrs: Addrs,
    /// Where the IP datagram ends in the frame.
    end: u32,
}

/// A burst's lanes, the conns' entries and their next hops.
#[derive(Default)]
pub(super) struct Express {
    lanes: Vec<Option<Lane>>,
    next: usize,
    entries: Vec<Entry>,
    /// Slots whose entry has counts to fold.
    dirty: Vec<u32>,
    /// The next hops the entries' sides go through, with their Ethernet
    /// headers: a few routers and real servers, so a side names one by
    /// index rather than keeping a header of its own.
    hops: Vec<Hop>,
    /// The network configuration the entries were made under (its
    /// generation) and its epoch.
    net: u64,
    epoch: u32,
    /// Packets sent this way, and how many of them the worker's counter
    /// has been told of.
    hits: u64,
    published: u64,
}

/// At most this many next hops are kept; a side whose next hop finds no
/// room takes the full path.
const MAX_HOPS: usize = 1024;

/// Bytes per conn slot the express lane may use (its entry): what rvsd
/// counts against its memory with the conn table's own.
pub const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();

#[derive(Debug, Clone, Copy)]
struct Hop {
    hop: NextHop,
    mtu: u16,
    l2: Option<L2>,
}

#[derive(Default)]
struct Entry {
    /// The epoch it was made in; 0: none.
    epoch: u32,
    fwd: u8,
    dirty: bool,
    /// The conn it was made for: its tuple, its forwarding method and its
    /// dest (held, so the pointer cannot be reused while compared).
    conn: ConnV4,
    dest: Option<Arc<Dest>>,
    /// The real server's address (the dest's), where side 0 is routed;
    /// side 1 is routed to its new destination, the client.
    rs: u32,
    /// Client to real server (0) and back (1).
    sides: [Side; 2],
    /// Packets and bytes not yet folded into the stats, per side.
    pkts: [u32; 2],
    bytes: [u64; 2],
}

/// An IPv4 packet's addresses and ports, host order.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Addrs {
    src: u32,
    dst: u32,
    sport: u16,
    dport: u16,
}

#[derive(Debug, Default, Clone, Copy)]
struct Side {
    /// The packet as it arrives, and as it leaves (what does not change
    /// is written back as it was).
    from: Addrs,
    to: Addrs,
    /// RFC 1624 sums of the changes, folded: the IP header's (addresses,
    /// TTL) and the L4 checksum's (addresses in the pseudo header, ports).
    ip_delta: u16,
    l4_delta: u16,
    /// `Express::hops` index + 1 of the next hop towards `to.dst`; 0: not
    /// looked up yet.
    hop: u16,
    /// False for a side the mode has not (DR's replies).
    on: bool,
}

impl Side {
    fn new(from: Addrs, to: Addrs) -> Side {
        let words = |a: u32| (a >> 16) + (a & 0xffff);
        let d_addr = words(!from.src) + words(to.src) + words(!from.dst) + words(to.dst);
        let d_port = u32::from(!from.sport)
            + u32::from(to.sport)
            + u32::from(!from.dport)
            + u32::from(to.dport);
        Side {
            from,
            to,
            ip_delta: fold(d_addr + TTL_DELTA),
            l4_delta: fold(d_addr + d_port),
            hop: 0,
            on: true,
        }
    }

    /// The rewrite of a plain IPv4 TCP or UDP frame this side's `from`
    /// matched, with a TTL above 1, for next hop `l2`: its Ethernet
    /// addresses, TTL minus one, the new addresses and ports, both
    /// checksums changed by the precomputed sums.
    #[inline]
    fn apply(&self, b: &mut [u8], proto: u8, l2: &L2) {
        // Ethernet, IPv4 and the ports; the L4 checksum after.
        let Some(head) = b.get_mut(..ETH + 24) else {
            return;
        };
        let Ok(head) = <&mut [u8; ETH + 24]>::try_from(head) else {
            return;
        };
        head[0..6].copy_from_slice(&l2.dst.0);
        head[6..12].copy_from_slice(&l2.src.0);
        let word =
            |b: &[u8; ETH + 24], at: usize| u32::from(u16::from_be_bytes([b[at], b[at + 1]]));
        head[ETH + 8] -= 1;
        head[ETH + 12..ETH + 16].copy_from_slice(&self.to.src.to_be_bytes());
        head[ETH + 16..ETH + 20].copy_from_slice(&self.to.dst.to_be_bytes());
        head[ETH + 20..ETH + 22].copy_from_slice(&self.to.sport.to_be_bytes());
        head[ETH + 22..ETH + 24].copy_from_slice(&self.to.dport.to_be_bytes());
        let ip = !fold2((!word(head, ETH + 10) & 0xffff) + u32::from(self.ip_delta));
        head[ETH + 10..ETH + 12].copy_from_slice(&ip.to_be_bytes());
        let (at, udp) = if proto == IPPROTO_TCP {
            (ETH + 20 + 16, false)
        } else {
            (ETH + 20 + 6, true)
        };
        let Some(csum) = b.get_mut(at..at + 2) else {
            return;
        };
        let v = u32::from(u16::from_be_bytes([csum[0], csum[1]]));
        // A UDP datagram without a checksum keeps none.
        if udp && v == 0 {
            return;
        }
        let n = !fold2((!v & 0xffff) + u32::from(self.l4_delta));
        let n = if udp && n == 0 { 0xffff } else { n };
        csum.copy_from_slice(&n.to_be_bytes());
    }
}

/// The sides of an express entry for `c` whose real server is `rs`; None
/// for a mode this lane does not carry.
fn sides(c: &ConnV4, fwd: FwdMethod, rs: u32) -> Option<[Side; 2]> {
    let a = |src, sport, dst, dport| Addrs {
        src,
        dst,
        sport,
        dport,
    };
    let client_in = a(c.caddr, c.cport, c.vaddr, c.vport);
    Some(match fwd {
        FwdMethod::FullNat => [
            Side::new(client_in, a(c.laddr, c.lport, rs, c.dport)),
            Side::new(
                a(rs, c.dport, c.laddr, c.lport),
                a(c.vaddr, c.vport, c.caddr, c.cport),
            ),
        ],
        FwdMethod::Masq => [
            Side::new(client_in, a(c.caddr, c.cport, rs, c.dport)),
            Side::new(
                a(rs, c.dport, c.caddr, c.cport),
                a(c.vaddr, c.vport, c.caddr, c.cport),
            ),
        ],
        // The frame goes to the real server's MAC as it came, one hop
        // older; it is routed towards the real server's address.
        FwdMethod::DirectRoute => [Side::new(client_in, client_in), Side::default()],
        _ => return None,
    })
}

impl Express {
    /// A new burst under configuration `net`.
    pub(super) fn begin(&mut self, net: &NetConfig) {
        if net.generation() != self.net {
            self.net = net.generation();
            self.epoch = self.epoch.wrapping_add(1).max(1);
            self.hops.clear();
        }
        self.lanes.clear();
        self.next = 0;
    }

    /// The lane stage one noted for the packet at `data`, the next one
    /// stage two handles; none once the two are out of step.
    #[inline]
    pub(super) fn take(&mut self, data: usize) -> Option<Lane> {
        let slot = *self.lanes.get(self.next)?;
        self.next += 1;
        match slot {
            Some(l) if l.data == data => Some(l),
            Some(_) => {
                self.lanes.clear();
                None
            }
            None => None,
        }
    }

    pub(super) fn memory_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.dirty.capacity() * std::mem::size_of::<u32>()
    }
}

/// Stage one for one frame: a lane if it is plain IPv4 TCP or UDP (the
/// first parse's checks, header checksum included) and of a conn.
#[inline]
pub(super) fn lane_of(conns: &ConnTable, data: &[u8]) -> Option<Lane> {
    if !plain_v4_frame(data) {
        return None;
    }
    let (ip, l4) = plain_v4(data)?;
    let proto = ip[9];
    let (sport, dport, tcp_flags) = plain_ports(proto, l4)?;
    let word = |at: usize| u32::from_be_bytes([ip[at], ip[at + 1], ip[at + 2], ip[at + 3]]);
    let addrs = Addrs {
        src: word(12),
        dst: word(16),
        sport,
        dport,
    };
    let (id, out) = conns.lookup_v4(proto, addrs.src, sport, addrs.dst, dport)?;
    Some(Lane {
        data: data.as_ptr() as usize,
        id,
        out,
        tcp_flags,
        addrs,
        end: (ETH + 20 + l4.len()) as u32,
    })
}

/// Adds a side's pending counts to one stats slot.
fn add(s: &StatsCounters, out: bool, (pkts, bytes): (u64, u64)) {
    if out {
        s.outpkts.add(pkts);
        s.outbytes.add(bytes);
    } else {
        s.inpkts.add(pkts);
        s.inbytes.add(bytes);
    }
}

impl Lb {
    /// Stage one of a burst (see the module's comment).
    pub fn prepare<'a, P: Packet + 'a>(
        &mut self,
        net: &NetConfig,
        burst: impl Iterator<Item = &'a P>,
    ) {
        self.express.begin(net);
        if self.conns.is_empty() {
            return;
        }
        for p in burst {
            let lane = lane_of(&self.conns, p.data());
            self.express.lanes.push(lane);
        }
    }

    /// Stage two's express lane for `pkt`: sent, or handed back for the
    /// full path with nothing changed.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(super) fn express<P: Packet>(
        &mut self,
        lane: Lane,
        net: &NetConfig,
        svcs: &ServiceSet,
        timeouts: &Timeouts,
        mut pkt: P,
        now: Millis,
        stack: &mut Stack<P>,
        out: &mut impl Output<P>,
    ) -> Result<(), P> {
        if net.rx_check(pkt.rx_port(), pkt.data()) != RxVerdict::Pass {
            return Err(pkt);
        }
        let Some(c) = self.conns.get(lane.id) else {
            return Err(pkt);
        };
        if c.flags()
            & (conn_flags::TEMPLATE
                | conn_flags::ONE_PACKET
                | conn_flags::SEQ_ADJ
                | conn_flags::SYNPROXY)
            != 0
        {
            return Err(pkt);
        }
        let fwd = c.fwd();
        if !matches!(
            fwd,
            FwdMethod::FullNat | FwdMethod::Masq | FwdMethod::DirectRoute
        ) {
            return Err(pkt);
        }
        let Some(v) = c.v4() else {
            return Err(pkt);
        };
        match v.proto {
            IPPROTO_TCP
                if c.state() == TcpState::Established as u8
                    && lane.tcp_flags & (tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST) == 0
                    && !(lane.out && c.flags() & conn_flags::NOOUTPUT != 0) => {}
            IPPROTO_UDP => {}
            _ => return Err(pkt),
        }
        let i = lane.id.index();
        if self.express.entries.len() <= i {
            self.express.entries.resize_with(i + 1, Entry::default);
        }
        let epoch = self.express.epoch;
        let e = &self.express.entries[i];
        let same = e.epoch == epoch
            && e.conn == v
            && e.fwd == fwd as u8
            && matches!((&e.dest, c.dest()), (Some(a), Some(b)) if Arc::ptr_eq(a, b));
        if !same {
            let Some(d) = c.dest().cloned() else {
                return Err(pkt);
            };
            let IpAddr::V4(rs) = d.addr() else {
                return Err(pkt);
            };
            let Some(mut sides) = sides(&v, fwd, u32::from(rs)) else {
                return Err(pkt);
            };
            // A VRRP backup drops what comes to the addresses it holds in
            // standby: the full path's, for as long as this configuration
            // (and so this entry) lasts.
            for side in &mut sides {
                side.on &= !net.is_standby(IpAddr::V4(Ipv4Addr::from(side.from.dst)));
            }
            self.fold_entry(svcs, i);
            let e = &mut self.express.entries[i];
            e.epoch = epoch;
            e.conn = v;
            e.fwd = fwd as u8;
            e.dest = Some(d);
            e.rs = u32::from(rs);
            e.sides = sides;
        }
        let s = usize::from(lane.out);
        let e = &self.express.entries[i];
        let side = e.sides[s];
        let ttl = pkt.data().get(ETH + 8).copied().unwrap_or(0);
        if !side.on || side.from != lane.addrs || ttl <= 1 {
            return Err(pkt);
        }
        let via = if lane.out { side.to.dst } else { e.rs };
        let Some((l2, mtu)) = self.hop(i, s, via, net, stack, now) else {
            return Err(pkt);
        };
        // Over the MTU: the full path's (need-frag, too big, fragments).
        let end = lane.end as usize;
        if end > ETH + usize::from(mtu) {
            return Err(pkt);
        }
        let len = pkt.len().saturating_sub(ETH) as u64;
        if pkt.len() > end {
            pkt.trim(pkt.len() - end);
        }
        side.apply(pkt.data_mut(), v.proto, &l2);
        let e = &mut self.express.entries[i];
        e.pkts[s] += 1;
        e.bytes[s] += len;
        if !e.dirty {
            e.dirty = true;
            self.express.dirty.push(i as u32);
        }
        let dir = if lane.out {
            Direction::Output
        } else {
            Direction::Input
        };
        self.conns.refresh(lane.id, dir, now, timeouts);
        if self.sync.master_on() && dir != Direction::Output {
            self.sync_conn(lane.id, now, out);
        }
        self.express.hits += 1;
        out.send(l2.port, pkt);
        Ok(())
    }

    /// The Ethernet header and MTU for side `s` of entry `i`, routed to
    /// `via`: its next hop's while the neighbour table vouches for it,
    /// else looked up again (`hop_lookup`).
    #[inline(always)]
    fn hop<P: Packet>(
        &mut self,
        i: usize,
        s: usize,
        via: u32,
        net: &NetConfig,
        stack: &Stack<P>,
        now: Millis,
    ) -> Option<(L2, u16)> {
        let x = &self.express;
        let k = usize::from(x.entries[i].sides[s].hop);
        if let Some(h) = k.checked_sub(1).and_then(|k| x.hops.get(k)) {
            if let Some(l2) = h.l2.filter(|l2| stack.l2_fresh(l2, now)) {
                return Some((l2, h.mtu));
            }
        }
        self.hop_lookup(i, s, via, net, stack, now)
    }

    /// `hop`'s route and neighbour lookup; None while the neighbour is not
    /// known (the full path resolves it) or no room is left for another
    /// next hop.
    #[cold]
    #[inline(never)]
    fn hop_lookup<P: Packet>(
        &mut self,
        i: usize,
        s: usize,
        via: u32,
        net: &NetConfig,
        stack: &Stack<P>,
        now: Millis,
    ) -> Option<(L2, u16)> {
        let x = &mut self.express;
        let r = self.routes.lookup(net, IpAddr::V4(Ipv4Addr::from(via)));
        let hop = r.hop?;
        let l2 = stack.l2_for(net, hop, now)?;
        let k = match x.hops.iter().position(|h| h.hop == hop) {
            Some(k) => k,
            None if x.hops.len() < MAX_HOPS => {
                x.hops.push(Hop {
                    hop,
                    mtu: r.mtu,
                    l2: None,
                });
                x.hops.len() - 1
            }
            None => return None,
        };
        x.hops[k].l2 = Some(l2);
        x.hops[k].mtu = r.mtu;
        x.entries[i].sides[s].hop = k as u16 + 1;
        Some((l2, r.mtu))
    }

    /// Packets the express lane has sent.
    pub fn express_packets(&self) -> u64 {
        self.express.hits
    }

    /// Every entry's pending counts into the stats, and the packet count
    /// into the worker's counters (`Lb::poll`).
    pub(super) fn express_fold(&mut self, svcs: &ServiceSet) {
        let x = &mut self.express;
        self.counters.express.add(x.hits - x.published);
        x.published = x.hits;
        let dirty = std::mem::take(&mut self.express.dirty);
        for &i in &dirty {
            let i = i as usize;
            if let Some(e) = self.express.entries.get_mut(i) {
                e.dirty = false;
            }
            self.fold_entry(svcs, i);
        }
        self.express.dirty = dirty;
        self.express.dirty.clear();
    }

    /// One entry's pending counts into its dest's, the director's (while
    /// the dest is listed) and its service's stats, as the full path
    /// counts each packet.
    fn fold_entry(&mut self, svcs: &ServiceSet, i: usize) {
        let Some(e) = self.express.entries.get_mut(i) else {
            return;
        };
        if e.pkts == [0; 2] {
            return;
        }
        let pending = [0, 1].map(|s| (u64::from(e.pkts[s]), e.bytes[s]));
        (e.pkts, e.bytes) = ([0; 2], [0; 2]);
        let w = self.worker;
        let vip = IpAddr::V4(Ipv4Addr::from(e.conn.vaddr));
        let svc = self.svc_cache.lookup(svcs, e.conn.proto, vip, e.conn.vport);
        for (side, p) in pending.into_iter().enumerate() {
            if p.0 == 0 {
                continue;
            }
            let out = side == 1;
            if let Some(d) = &e.dest {
                add(d.stats.worker(w), out, p);
                if d.is_available() {
                    add(svcs.total().worker(w), out, p);
                }
            }
            if let Some(s) = svc {
                add(s.stats.worker(w), out, p);
            }
        }
    }
}
