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
//! hands the packet here (`Lb::open`), which works out the conn's block
//! (the one its later packets use), clamps a SYN's MSS where the forward
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
use std::net::{IpAddr, Ipv4Addr};

use super::caches::{RouteCache, SvcCache};
use super::parse::Flow;
use super::{Lb, ETH};
use crate::ipvs::conn::{
    flags as conn_flags, Conn, ConnExpress, ConnId, ConnTable, ConnV4, Spot, V4Conn, NO_HINT,
};
use crate::ipvs::proto::{tcp_flags, Direction, TcpState, Timeouts, IPPROTO_TCP, IPPROTO_UDP};
use crate::ipvs::{FwdMethod, Service, ServiceSet, Tunnel};
use crate::netstack::{Millis, NetConfig, NextHop, Output, RxVerdict, Stack, L2};
use crate::packet::Packet;
use crate::wire::checksum::fold;
use crate::wire::PlainFrame;
use crate::xmit::tun;

/// The modes the lane carries, as `express_side` takes them, and none in
/// particular (the conn's own).
const FULLNAT: u8 = FwdMethod::FullNat as u8;
const MASQ: u8 = FwdMethod::Masq as u8;
const DR: u8 = FwdMethod::DirectRoute as u8;
const TUN: u8 = FwdMethod::Tunnel as u8;
const ANY_MODE: u8 = u8::MAX;

/// The TTL's word (TTL, protocol) one hop later, as an RFC 1624 sum: the
/// new word minus the old is -0x0100 for any TTL above 1.
const TTL_DELTA: u32 = 0xfeff;

/// A checksum field as it reads after the change whose folded sum is
/// `sum` (RFC 1624: `~(~old + sum)`), both in the frame's byte order: a
/// one's-complement sum comes out the same whichever order its words are
/// read in (RFC 1071), so the lane neither swaps the field nor the sum
/// (the sums are kept as `u16::to_be` gives them), and the one carry of
/// two 16-bit terms is the add's own.
#[inline(always)]
fn changed(field: u16, sum: u16) -> u16 {
    let (s, carry) = (!field).overflowing_add(sum);
    !s.wrapping_add(u16::from(carry))
}

/// A checksum field read in the frame's byte order (`changed`).
#[inline(always)]
fn field(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

/// A burst's parsed frames and the next hops conns go through.
pub(super) struct Express {
    /// Stage one left the parse to stage two as well as the lookups (a
    /// table small enough for the caches).
    one_pass: bool,
    /// Conns from which on stage one parses the burst first and the
    /// lookups ask ahead (`PREFETCH_FROM`; tests lower it).
    pub(super) two_pass_from: usize,
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
    /// either, a conn's next packet works its block out again (a dest's
    /// encapsulation, which `-e` changes in place, is read there).
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

/// At most this many next hops are kept; a side whose next hop finds no
/// room takes the full path.
const MAX_HOPS: usize = 1024;

/// A side's `ConnExpress::hop` when the side is not the express lane's.
const OFF: u16 = u16::MAX;

/// Real servers whose next hop is kept by address (`Express::servers`);
/// two that share a slot take turns.
const SERVER_SLOTS: usize = 256;

/// Real server `rs`'s slot in `Express::servers`.
#[inline(always)]
fn server_slot(rs: u32) -> usize {
    (rs.wrapping_mul(0x9e37_79b1) >> 24) as usize % SERVER_SLOTS
}

/// `Hop::max_end` of an MTU.
fn max_end(mtu: u16) -> u32 {
    ETH as u32 + u32::from(mtu)
}

#[derive(Debug, Clone, Copy)]
struct Hop {
    hop: NextHop,
    /// The longest frame the hop's MTU lets through: the MTU and the
    /// Ethernet header, one compare with a packet's end.
    max_end: u32,
    /// The neighbour's resolution the Ethernet header is of; always one:
    /// a hop is kept once its neighbour is known.
    l2: L2,
    /// `l2`'s addresses as a frame starts: the hop's MAC, then the port's
    /// (one 12-byte copy; two MACs apart were four moves more).
    eth: [u8; 12],
    /// The port's address a tunnel to a real server through this hop
    /// leaves from (`NetConfig::source_for`: the address of the server's
    /// subnet where the hop is the server itself, else the port's first).
    src: u32,
}

impl Hop {
    /// The hop's MTU.
    fn mtu(&self) -> u16 {
        self.max_end.saturating_sub(ETH as u32) as u16
    }

    /// The hop while the neighbour table vouches for its Ethernet header.
    #[inline(always)]
    fn kept<P: Packet>(&self, stack: &Stack<P>, now: Millis) -> Option<&Hop> {
        stack.l2_fresh(&self.l2, now).then_some(self)
    }
}

/// An IPv4 packet's addresses and ports, host order.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Addrs {
    src: u32,
    dst: u32,
    sport: u16,
    dport: u16,
}

/// A side's packet as it arrives and as it leaves (what does not change
/// is written back as it was); None for a side the mode has not (DR's
/// replies) or a mode this lane does not carry.
fn side(c: &ConnV4, fwd: FwdMethod, rs: u32, out: bool) -> Option<(Addrs, Addrs)> {
    let a = |src, sport, dst, dport| Addrs {
        src,
        dst,
        sport,
        dport,
    };
    let from = match (fwd, out) {
        (
            FwdMethod::FullNat | FwdMethod::Masq | FwdMethod::DirectRoute | FwdMethod::Tunnel,
            false,
        ) => a(c.caddr, c.cport, c.vaddr, c.vport),
        (FwdMethod::FullNat, true) => a(rs, c.dport, c.laddr, c.lport),
        (FwdMethod::Masq, true) => a(rs, c.dport, c.caddr, c.cport),
        _ => return None,
    };
    Some((from, leaves_as(c, fwd, rs, out)))
}

/// What a packet of the conn on a side the mode has (the caller knows
/// it from the block) leaves with: `side`'s second half. The frame goes
/// to DR's real server as it came, one hop older, or, tunnelled, inside
/// a new IPv4 header (`tunnel`).
#[inline(always)]
fn leaves_as(c: &ConnV4, fwd: FwdMethod, rs: u32, out: bool) -> Addrs {
    let a = |src, sport, dst, dport| Addrs {
        src,
        dst,
        sport,
        dport,
    };
    match (fwd, out) {
        (FwdMethod::FullNat, false) => a(c.laddr, c.lport, rs, c.dport),
        (FwdMethod::Masq, false) => a(c.caddr, c.cport, rs, c.dport),
        (_, true) => a(c.vaddr, c.vport, c.caddr, c.cport),
        _ => a(c.caddr, c.cport, c.vaddr, c.vport),
    }
}

/// The RFC 1624 sums of a side's changes, folded: the IP header's
/// (addresses, TTL) and the L4 checksum's (addresses in the pseudo
/// header, ports).
fn sums(from: &Addrs, to: &Addrs) -> [u16; 2] {
    let words = |a: u32| (a >> 16) + (a & 0xffff);
    let d_addr = words(!from.src) + words(to.src) + words(!from.dst) + words(to.dst);
    let d_port =
        u32::from(!from.sport) + u32::from(to.sport) + u32::from(!from.dport) + u32::from(to.dport);
    [fold(d_addr + TTL_DELTA), fold(d_addr + d_port)]
}

/// The sums of the change that undoes the one `s` sums (`sums(to', from')`
/// of `s = sums(from, to)`, each reversed): negated, the TTL's delta added
/// once more, as the reply loses a hop as well. The same values `sums`
/// gives, a zero as 0xffff (as `fold` of terms not all zero has it).
fn reversed(s: [u16; 2]) -> [u16; 2] {
    let neg = |x: u16| if x == 0xffff { 0xffff } else { !x };
    [fold(u32::from(neg(s[0])) + 2 * TTL_DELTA), neg(s[1])]
}

/// The rewrite of a plain IPv4 TCP or UDP frame that arrived as its
/// side's `from`, with a TTL above 1, for the next hop whose Ethernet
/// addresses are `eth` (`Hop::eth`): those addresses, TTL minus one,
/// `to`'s addresses and ports, both checksums changed by the side's
/// `sums` (frame order, `changed`). Without `to` (DR, whose frame goes on
/// as it came, xmit::dr), the IP header's sum takes the TTL alone and the
/// addresses, ports and L4 checksum are left as they are.
#[inline(always)]
fn apply(b: &mut [u8], proto: u8, to: Option<&Addrs>, sums: [u16; 2], eth: &[u8; 12]) {
    // A TCP segment's headers up to its checksum taken in one piece (one
    // length check); else Ethernet, IPv4 and the L4 header's first eight
    // bytes (UDP's whole, its checksum in them).
    match to {
        Some(to) if proto == IPPROTO_TCP => {
            let Some(head) = b.first_chunk_mut::<{ ETH + 38 }>() else {
                return;
            };
            ip_and_ports(head, to, sums[0], eth);
            let n = changed(field(head, ETH + 36), sums[1]);
            head[ETH + 36..ETH + 38].copy_from_slice(&n.to_ne_bytes());
        }
        Some(to) => {
            let Some(head) = b.first_chunk_mut::<{ ETH + 28 }>() else {
                return;
            };
            ip_and_ports(head, to, sums[0], eth);
            // A UDP datagram without a checksum keeps none, and one whose
            // sum comes to zero sends it as all ones.
            let v = field(head, ETH + 26);
            if v == 0 {
                return;
            }
            let n = match changed(v, sums[1]) {
                0 => 0xffff,
                n => n,
            };
            head[ETH + 26..ETH + 28].copy_from_slice(&n.to_ne_bytes());
        }
        None => {
            if let Some(head) = b.first_chunk_mut::<{ ETH + 20 }>() {
                hop(head, sums[0], eth);
            }
        }
    }
}

/// The Ethernet addresses `eth`, the TTL one less and the IP header's sum
/// changed by `ip_sum`.
#[inline(always)]
fn hop<const N: usize>(head: &mut [u8; N], ip_sum: u16, eth: &[u8; 12]) {
    head[..12].copy_from_slice(eth);
    head[ETH + 8] -= 1;
    let ip = changed(field(head, ETH + 10), ip_sum);
    head[ETH + 10..ETH + 12].copy_from_slice(&ip.to_ne_bytes());
}

/// `hop`, and `to`'s addresses and ports.
#[inline(always)]
fn ip_and_ports<const N: usize>(head: &mut [u8; N], to: &Addrs, ip_sum: u16, eth: &[u8; 12]) {
    hop(head, ip_sum, eth);
    head[ETH + 12..ETH + 16].copy_from_slice(&to.src.to_be_bytes());
    head[ETH + 16..ETH + 20].copy_from_slice(&to.dst.to_be_bytes());
    head[ETH + 20..ETH + 22].copy_from_slice(&to.sport.to_be_bytes());
    head[ETH + 22..ETH + 24].copy_from_slice(&to.dport.to_be_bytes());
}

/// DR's frame as it goes on (xmit::dr): as it came, one hop older, for
/// Ethernet addresses `eth` (`apply` without the rewrite). In line: kept
/// out of it for the rewriting modes' registers, it cost DR four
/// instructions a packet once the rewrite took UDP's header whole and the
/// others nothing.
#[inline(always)]
fn hop_only(b: &mut [u8], eth: &[u8; 12]) {
    apply(b, 0, None, [(TTL_DELTA as u16).to_be(), 0], eth);
}

/// TUN's IPIP encapsulation of a plain IPv4 frame that arrived as the
/// conn's client side, as xmit::tun builds it: the inner packet one hop
/// older (its IP checksum changed by `ttl_sum`), then a new Ethernet
/// header of `eth` and an IPv4 header `src` → `rs` (protocol 4,
/// TTL 64, the inner DS field and DF, the inner ID mixed with the flow's
/// `ident`). The caller made sure of 20 bytes of headroom. Out of line:
/// the other modes' lane stays as short as it was.
#[inline(never)]
fn tunnel<P: Packet>(pkt: &mut P, ttl_sum: u16, ident: u16, src: u32, rs: u32, eth: &[u8; 12]) {
    if !pkt.prepend(20) {
        return;
    }
    // The new Ethernet and outer IP headers, then the inner IP header: one
    // view of fixed size, so nothing in it is checked again.
    const IN: usize = ETH + 20;
    let total = pkt.len() - ETH;
    let Some(Ok(f)) = pkt
        .data_mut()
        .get_mut(..IN + 20)
        .map(<&mut [u8; IN + 20]>::try_from)
    else {
        return;
    };
    f[IN + 8] -= 1;
    let c = changed(field(f, IN + 10), ttl_sum);
    f[IN + 10..IN + 12].copy_from_slice(&c.to_ne_bytes());
    f[..12].copy_from_slice(eth);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let outer = tun::OuterV4 {
        tos: f[IN + 1],
        total: total as u16,
        ident: u16::from_be_bytes([f[IN + 4], f[IN + 5]]) ^ ident,
        df: f[IN + 6] & 0x40 != 0,
        proto: tun::PROTO_IPIP,
        src: src.to_be_bytes(),
        dst: rs.to_be_bytes(),
    };
    outer.write(&mut f[ETH..IN]);
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
    /// Restarted with its protocol's steady timeout (`Express::steady_ms`,
    /// read as the timer is: kept from the start, the timeout was spilled
    /// across the lane; `Conn::touch`).
    Touch,
    /// Moved by the segment's TCP flags (`ConnTable::on_packet`), which
    /// sets the timer of the state it moves to.
    Moves(u8),
}

/// A frame stage one parsed: plain IPv4 TCP or UDP that the port's filter
/// passes (the first parse's checks, the header checksum unless the device
/// checked it) with a TTL above 1, no TCP segment with SYN, FIN or RST
/// (which may change a conn's state: the full path's), its tuple and where
/// the tuple's lookup reads.
#[derive(Debug, Clone, Copy)]
pub(super) struct Head {
    data: usize,
    at: Spot,
    proto: u8,
    sport: u16,
    dport: u16,
    src: u32,
    dst: u32,
    end: u32,
    /// Its conn is looked for in an index line it spilled into
    /// (`ConnTable::ask_conn`).
    spilled: bool,
    /// The conn asked for, compared first (`ConnTable::lookup_v4_hinted`).
    hint: u32,
}

/// A frame `Head` accepted, of a conn.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lane {
    id: ConnId,
    /// Whether it is the conn's reply.
    out: bool,
    /// Where the IP datagram ends in the frame.
    end: u32,
}

impl Head {
    /// The frame of `pkt`, the header checksum summed unless the device
    /// found it right (one it found wrong takes the full path, which sums
    /// it again and counts the drop).
    #[inline(always)]
    fn of<P: Packet>(conns: &ConnTable, net: &NetConfig, pkt: &P) -> Option<Head> {
        let data = pkt.data();
        let f = PlainFrame::new(data)?;
        // A segment that may change its conn's state is the full path's:
        // no filter, sum or lookup here for a SYN flood's packets.
        let state_flags = tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST;
        if f.tcp_flags_early().is_some_and(|f| f & state_flags != 0) {
            return None;
        }
        if net.rx_check(pkt.rx_port(), data) != RxVerdict::Pass {
            return None;
        }
        let checked = match pkt.rx_ipv4_checksum() {
            Some(true) => true,
            Some(false) => return None,
            None => false,
        };
        let ip = f.ipv4(checked)?;
        // A TTL that runs out here: the full path's (time exceeded).
        if ip.ttl() <= 1 {
            return None;
        }
        let proto = ip.protocol();
        let (sport, dport, _) = ip.ports()?;
        let (src, dst) = (ip.src(), ip.dst());
        // Hashed as the bytes lie (`ConnTable::hash_v4_wire`).
        let h = conns.hash_v4_wire(
            proto,
            u64::from_le_bytes(*ip.addr_bytes()?),
            u32::from_le_bytes(*ip.port_bytes()?),
        );
        Some(Head {
            data: data.as_ptr() as usize,
            at: conns.spot(h),
            proto,
            sport,
            dport,
            src,
            dst,
            // From the header's total length (`ipv4` held the frame to
            // it), not the L4 slice's: from that the compiler kept the
            // length in three forms, on the stack.
            end: ETH as u32 + u32::from(ip.total_len()),
            spilled: false,
            hint: NO_HINT,
        })
    }

    /// Its lane, if it is of a conn.
    #[inline(always)]
    fn lane(&self, conns: &ConnTable) -> Option<Lane> {
        let (id, out) = conns.lookup_v4_probed(
            self.at, self.proto, self.src, self.sport, self.dst, self.dport,
        )?;
        Some(Lane {
            id,
            out,
            end: self.end,
        })
    }

    /// The same, past the prefetch size: the conn asked for first.
    #[inline(always)]
    fn lane_hinted(&self, conns: &ConnTable) -> Option<Lane> {
        let (id, out) = conns.lookup_v4_hinted(
            self.hint, self.at, self.proto, self.src, self.sport, self.dst, self.dport,
        )?;
        Some(Lane {
            id,
            out,
            end: self.end,
        })
    }
}

/// Conns from which on stage one prefetches: a table this full no longer
/// fits the processor's own caches, and its lookups miss. Below, the
/// passes would cost more instructions than they save waiting, and each
/// packet's lookup is left to stage two (one pass over the burst).
pub(super) const PREFETCH_FROM: usize = 16 * 1024;

/// How far ahead of the packet stage two is at it asks for a packet's
/// index lines, and for its conn (whose index line has come by then). Far
/// enough that a miss is served while the packets in between are worked
/// on, near enough that a few misses are out at a time (fnat-est-1m ran
/// fastest from about 8 and 4 to 12 and 6 on the bench's machine; a
/// burst's worth at once, as before, ran 15 % slower).
const INDEX_AHEAD: usize = 10;
const CONN_AHEAD: usize = 5;
/// How far ahead it asks for a conn whose index line spilled (an index
/// nearly full spills some lines: a lookup in a table of 1M conns at its
/// size read a second line for one packet in eight). The other line was
/// asked for at `CONN_AHEAD`, as the first line came.
const SPILL_AHEAD: usize = 2;

/// A conn's express counts into its dest's, the director's and its
/// service's stats (`count_stats`, as the full path counts each packet);
/// the counts are then zero.
pub(super) fn fold_counts(
    c: &Conn,
    e: &mut ConnExpress,
    svc: Option<&Service>,
    svcs: &ServiceSet,
    worker: usize,
) {
    for s in 0..2 {
        let (pkts, bytes) = (u64::from(e.pkts[s]), u64::from(e.bytes[s]));
        if pkts != 0 {
            super::count_stats(c.dest(), svc, svcs, worker, s == 1, pkts, bytes);
        }
    }
    (e.pkts, e.bytes) = ([0; 2], [0; 2]);
}

impl Lb {
    /// Stage one of a burst (see the module's comment). In a table too big
    /// for the caches it parses and hashes every frame and asks for the
    /// first packets' index lines and conns; stage two asks for the rest
    /// as it goes (`lane`). In a smaller table nothing would overlap: each
    /// packet is parsed and looked up when stage two comes to it.
    /// `timeouts` are those the burst's packets are handed to `input` with.
    pub fn prepare<'a, P: Packet + 'a>(
        &mut self,
        net: &NetConfig,
        svcs: &ServiceSet,
        timeouts: &Timeouts,
        burst: impl Iterator<Item = &'a P>,
    ) {
        let steady = self.conns.steady_ms(timeouts);
        self.express.begin(net, svcs.generation(), steady);
        let conns = &self.conns;
        let x = &mut self.express;
        if conns.len() < x.two_pass_from {
            x.one_pass = true;
            return;
        }
        for p in burst {
            x.heads.push(Head::of(conns, net, p));
        }
        for h in x.heads.iter().take(INDEX_AHEAD).flatten() {
            conns.ask_lines(h.at);
        }
        for h in x.heads.iter_mut().take(CONN_AHEAD).flatten() {
            let a = conns.ask_conn(h.at);
            (h.spilled, h.hint) = (a.spilled, a.hint);
        }
    }

    /// The end of the burst `prepare` began: packets handed to `input` from
    /// now on until the next `prepare` are the full path's.
    pub fn end_burst(&mut self) {
        self.express.one_pass = false;
        self.express.heads.clear();
    }

    /// The lane of the packet stage two has come to, if it may take one:
    /// its conn looked up now, from the frame stage one parsed (or, in one
    /// pass, parsed now). A packet that is not the one stage one parsed
    /// next (a caller out of step) takes the full path, and so do the
    /// rest of the burst.
    #[inline(always)]
    pub(super) fn lane<P: Packet>(&mut self, net: &NetConfig, pkt: &P) -> Option<Lane> {
        let x = &mut self.express;
        let conns = &self.conns;
        if x.one_pass {
            return Head::of(conns, net, pkt).and_then(|h| h.lane(conns));
        }
        self.lane_ahead(pkt.data().as_ptr() as usize)
    }

    /// `lane` past the prefetch size: the frame stage one parsed for the
    /// packet at `data`, and the asks for the packets ahead. In line: out
    /// of it (once measured as keeping the small table's lane's registers)
    /// it came to cost every case, the small table's too, nine
    /// instructions a packet or more.
    #[inline(always)]
    fn lane_ahead(&mut self, data: usize) -> Option<Lane> {
        let x = &mut self.express;
        let conns = &self.conns;
        let i = x.next;
        x.next += 1;
        if let Some(Some(h)) = x.heads.get(i + INDEX_AHEAD) {
            conns.ask_lines(h.at);
        }
        if let Some(Some(h)) = x.heads.get_mut(i + CONN_AHEAD) {
            let a = conns.ask_conn(h.at);
            (h.spilled, h.hint) = (a.spilled, a.hint);
        }
        if let Some(Some(h)) = x.heads.get_mut(i + SPILL_AHEAD) {
            if h.spilled {
                h.hint = conns.ask_spilled(h.at);
            }
        }
        // Read in place: a frame stage one passed over (a SYN flood's) is
        // not copied out first.
        let h = x.heads.get(i)?.as_ref()?;
        if h.data != data {
            x.heads.clear();
            return None;
        }
        h.lane_hinted(conns)
    }

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
        let x = &mut self.express;
        let Some(c) = self.conns.get_mut(id) else {
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
        let timer = match c.proto() {
            IPPROTO_TCP | IPPROTO_UDP if open.is_some() => Timer::Opened,
            IPPROTO_TCP
                if c.state() == TcpState::Established as u8
                    && !(reply && c.flags() & conn_flags::NOOUTPUT != 0) =>
            {
                Timer::Touch
            }
            IPPROTO_UDP => Timer::Touch,
            // The client's answer to the handshake (its ACK; stage one
            // passed no SYN, FIN or RST), in SYN_RECV or, under secure_tcp,
            // whose table moves a conn there on the server's SYN-ACK,
            // SYN_ACK: moved by the full path's state move, not the rest of
            // the full path. Not where TOA rides on it (the service's, as
            // the forward reads it). The two states as one bit test:
            // compared one by one, the compiler may test them before
            // ESTABLISHED, on every packet.
            IPPROTO_TCP
                if !reply
                    && 1u32.wrapping_shl(u32::from(c.state()))
                        & (1 << TcpState::SynRecv as u8 | 1 << TcpState::SynAck as u8)
                        != 0 =>
            {
                match handshake_answer(&mut self.svc_cache, svcs, c, pkt.data()) {
                    Some(f) => Timer::Moves(f),
                    None => return Err(pkt),
                }
            }
            _ => return Err(pkt),
        };
        // An IPv6 conn has no block; a mode or side the lane does not
        // carry has its side off (`work_out`).
        let Some(mut c) = c.as_v4() else {
            return Err(pkt);
        };
        let mut b = c.express_side(s);
        if b.0 != x.epoch {
            b = match work_out(&mut c, x, net, s) {
                Some(b) => b,
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
        let tunnelled = fwd == FwdMethod::Tunnel;
        if hop == OFF {
            return Err(pkt);
        }
        // The kept next hop while the neighbour table vouches for it (a
        // side not yet looked up, hop 0, wraps to no hop); else looked up.
        let kept = match x.hops.get(usize::from(hop).wrapping_sub(1)) {
            Some(h) => h.kept(stack, now),
            None => None,
        };
        // Read in place: copied out, the header went through the stack
        // twice.
        let h = match kept {
            Some(h) => h,
            None => {
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
        // Over the MTU: the full path's (need-frag, too big, fragments).
        let end = lane.end as usize;
        let outer = if tunnelled { 20 } else { 0 };
        if end + outer > max_end as usize || (tunnelled && (pkt.headroom() < outer || src == 0)) {
            return Err(pkt);
        }
        // The IP packet's bytes, as the stats count them (`ip_len`): its
        // total length, which a u16 holds. The end is past the Ethernet
        // header (`Head`'s, `plain_v4_end`): nothing wraps.
        let len = end.wrapping_sub(ETH) as u16;
        if pkt.len() > end {
            pkt.trim(pkt.len() - end);
        }
        // A SYN's MSS as the full path clamps it (xmit::to_real): in the
        // modes that rewrite the segment, to what IPv4 leaves of the MTU.
        let syn = open.filter(|f| f.proto == IPPROTO_TCP && f.tcp_flags & tcp_flags::SYN != 0);
        if let Some(ip) = syn.and_then(Flow::ip) {
            if matches!(fwd, FwdMethod::FullNat | FwdMethod::Masq) {
                crate::xmit::clamp_mss(pkt.data_mut(), &ip, h.mtu().saturating_sub(40));
            }
        }
        if tunnelled {
            tunnel(&mut pkt, sums[0], sums[1], src, rs, eth);
        } else if fwd != FwdMethod::DirectRoute {
            // Read where the rewrite writes them, not earlier (kept across
            // the next hop's checks they spill).
            let v = c.words();
            let to = leaves_as(&v, fwd, rs, reply);
            apply(pkt.data_mut(), v.proto, Some(&to), sums, eth);
        } else {
            hop_only(pkt.data_mut(), eth);
        }
        let port = h.hop.port;
        let fold = match c.express_count(s, len) {
            Some(true) => {
                x.dirty.push(id.index() as u32);
                false
            }
            Some(false) => false,
            None => true,
        };
        let dir = if reply {
            Direction::Output
        } else {
            Direction::Input
        };
        match timer {
            Timer::Opened => self.express.opens += 1,
            Timer::Touch => {
                let t = self.express.steady_ms[usize::from(c.proto() == IPPROTO_UDP)];
                if !c.touch(dir, t, now) {
                    self.conns.repost(id, dir, now, timeouts);
                }
            }
            // (A conn that expects no reply, DR's, is moved by the
            // input-only table: `Conn::step` sees to it.)
            Timer::Moves(f) => _ = self.conns.on_packet(id, dir, f, now, timeouts),
        }
        if fold {
            self.fold_now(id, svcs);
            if let Some(c) = self.conns.get_mut(id) {
                c.express_count(s, len);
            }
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

/// The TCP flags of the client's answer to conn `c`'s handshake in frame
/// `data`, which the lane moves the conn by; None where the conn's service
/// inserts TOA into it (the forward's way, `svc_cache` as it finds the
/// service). Out of line, as it runs once a conn: inlined, its service
/// lookup cost fnat-est-1m an eighth of its rate, though it never ran
/// there.
#[cold]
#[inline(never)]
fn handshake_answer(
    svc_cache: &mut SvcCache,
    svcs: &ServiceSet,
    c: &Conn,
    data: &[u8],
) -> Option<u8> {
    let svc = svc_cache.lookup(svcs, c.proto(), c.vaddr(), c.vport());
    if svc.is_some_and(|s| s.toa()) {
        return None;
    }
    PlainFrame::new(data)?.tcp_flags_early()
}

/// Works out a conn's express block for `x`'s epoch (once per conn and
/// configuration): the real server, both sides' sums, the next hop toward
/// the server where another conn's has been looked up (`servers`), none
/// yet back to the client; a side the mode has not, or whose packets go
/// to an address a VRRP backup holds in standby (the full path drops
/// them), is off, as is TUN's toward a dest that encapsulates otherwise
/// than in IPIP. What side `s` reads of it, as `V4Conn::express_side`
/// gives it.
#[cold]
#[inline(never)]
fn work_out(
    c: &mut V4Conn,
    x: &Express,
    net: &NetConfig,
    s: usize,
) -> Option<(u32, u32, [u16; 2], u16)> {
    let fwd = c.fwd();
    let v = &c.words();
    let dest = c.dest()?;
    let IpAddr::V4(rs) = dest.addr() else {
        return None;
    };
    let rs = u32::from(rs);
    let mut delta = [[0u16; 2]; 2];
    let mut hop = [OFF; 2];
    let ahead = side(v, fwd, rs, false);
    let sums0 = ahead.map(|(from, to)| sums(&from, &to));
    // A mode with replies (FULLNAT, NAT) rewrites them back: their sums
    // are the client side's, negated.
    let both = [
        (ahead, sums0),
        (side(v, fwd, rs, true), sums0.map(reversed)),
    ];
    for (i, (side, sums)) in both.into_iter().enumerate() {
        match (side, sums) {
            (Some((from, _)), Some(sums))
                if !net.is_standby(IpAddr::V4(Ipv4Addr::from(from.dst))) =>
            {
                delta[i] = sums.map(u16::to_be);
                hop[i] = 0;
            }
            _ => {}
        }
    }
    if fwd == FwdMethod::Tunnel {
        // IPIP only: another encapsulation is the full path's.
        if dest.tunnel() != Tunnel::Ipip {
            hop[0] = OFF;
        }
        // The L4 sum's slot (TUN leaves L4 alone) keeps what the outer
        // ID is mixed with (host order).
        let ports = [v.cport.to_be_bytes(), v.vport.to_be_bytes()].concat();
        delta[0][1] = tun::ident_mix(&v.caddr.to_be_bytes(), &ports);
    }
    if hop[0] == 0 {
        hop[0] = x.server_hop(rs);
    }
    // The counts stay: a block worked out again (a new epoch) keeps what
    // it has not yet folded.
    c.set_express_route(x.epoch, rs, delta, hop);
    Some((x.epoch, rs, delta[s], hop[s]))
}

/// The next hop of conn `c`'s side (`reply`) whose real server is `rs`
/// (routed to the server, or back to the client; its neighbour known),
/// kept in `x.hops` (the server's, in `x.servers` as well, for the
/// server's next conns) with its Ethernet header: its index + 1; None
/// while the neighbour is not known (the full path resolves it) or no
/// room is left for another next hop. It takes the conn rather than the
/// lane's `V4Conn`: a reference to the borrow would keep the borrow in
/// memory all along the lane (six instructions a packet).
#[cold]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn hop_lookup<P: Packet>(
    x: &mut Express,
    routes: &mut RouteCache,
    c: &Conn,
    rs: u32,
    reply: bool,
    net: &NetConfig,
    stack: &Stack<P>,
    now: Millis,
) -> Option<u16> {
    let via = if reply { c.v4()?.caddr } else { rs };
    let dst = IpAddr::V4(Ipv4Addr::from(via));
    let r = routes.lookup(net, dst);
    let hop = r.hop?;
    let known = x.hops.iter().position(|h| h.hop == hop);
    let got = 'got: {
        // A hop other conns go through (a router, a server with many
        // conns): its Ethernet header while the neighbour table still
        // vouches for it.
        if let Some((i, h)) = known.and_then(|i| Some((i, x.hops.get_mut(i)?))) {
            h.max_end = max_end(r.mtu);
            if h.kept(stack, now).is_some() {
                break 'got i as u16 + 1;
            }
        }
        let l2 = stack.l2_for(net, hop, now)?;
        let i = match known {
            Some(i) => i,
            None if x.hops.len() < MAX_HOPS => {
                let src = match net.source_for(hop.port, dst) {
                    Some(IpAddr::V4(a)) => u32::from(a),
                    _ => 0,
                };
                x.hops.push(Hop {
                    hop,
                    max_end: max_end(r.mtu),
                    l2,
                    eth: [0; 12],
                    src,
                });
                x.hops.len() - 1
            }
            None => return None,
        };
        let h = x.hops.get_mut(i)?;
        h.l2 = l2;
        h.eth[..6].copy_from_slice(&l2.dst.0);
        h.eth[6..].copy_from_slice(&l2.src.0);
        h.max_end = max_end(r.mtu);
        i as u16 + 1
    };
    if !reply {
        x.servers[server_slot(rs)] = (rs, got);
    }
    Some(got)
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
    /// the forward would look up per packet; the block worked out here is
    /// the one the conn's later packets use.
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
            || (f.proto == IPPROTO_TCP && (toa || f.tcp_flags & state_flags != tcp_flags::SYN))
            || pkt.data().get(ETH + 8).is_none_or(|&ttl| ttl <= 1)
        {
            return Err(pkt);
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
        fold_counts(c, &mut e, svc.map(|s| &**s), svcs, self.worker);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::XorShift;

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

    /// A reply's sums worked out from the client side's are those summed
    /// from its own addresses and ports, for random ones and for changes
    /// that sum to zero. (Only a change from all-zero words to all-one
    /// words, martian addresses, would have `sums` give 0 where `reversed`
    /// gives 0xffff: both one's-complement zero.)
    #[test]
    fn a_replys_sums_are_the_client_sides_reversed() {
        let back = |a: &Addrs| Addrs {
            src: a.dst,
            dst: a.src,
            sport: a.dport,
            dport: a.sport,
        };
        let mut r = XorShift(0x5eed_1624);
        let mut cases: Vec<(Addrs, Addrs)> = (0..100_000)
            .map(|_| {
                let mut a = || Addrs {
                    src: r.next() as u32,
                    dst: r.next() as u32,
                    sport: r.next() as u16,
                    dport: r.next() as u16,
                };
                (a(), a())
            })
            .collect();
        // Changes that sum to zero, one way and the other, and none.
        let x = Addrs {
            src: 0x0a00_0001,
            dst: 0xc0a8_0101,
            sport: 80,
            dport: 40_000,
        };
        cases.push((x, x));
        let y = Addrs {
            src: 0x0001_0a00,
            dst: 0x0101_c0a8,
            sport: 40_000,
            dport: 80,
        };
        cases.push((x, y));
        for (from, to) in cases {
            let want = sums(&back(&to), &back(&from));
            assert_eq!(reversed(sums(&from, &to)), want, "{from:?} -> {to:?}");
        }
    }
}
