//! What the express lane works out once a conn (see the lane's comment
//! in `express.rs`): the conn's block (its real server, each side's sums
//! and next hop, a side at its first packet; `work_out`) and the next hops
//! the conns' sides go through, kept with their Ethernet headers (`Hop`,
//! `hop_lookup`).
use std::net::{IpAddr, Ipv4Addr};

use super::super::caches::RouteCache;
use super::super::ETH;
use super::rewrite::{reversed, side, sums};
use super::Express;
use crate::ipvs::conn::{Conn, ConnId, ConnTable, V4Conn};
use crate::ipvs::{Dest, FwdMethod, Tunnel};
use crate::netstack::{Millis, NetConfig, NextHop, Stack, L2};
use crate::packet::Packet;
use crate::xmit::tun;

/// At most this many next hops are kept; a side whose next hop finds no
/// room takes the full path.
const MAX_HOPS: usize = 1024;

/// A side's `ConnExpress::hop` when the side is not the express lane's:
/// past any kept next hop, so the lane finds none kept by it.
pub(super) const OFF: u16 = u16::MAX;
const _: () = assert!(OFF as usize > MAX_HOPS);

/// Real servers whose next hop is kept by address (`Express::servers`);
/// two that share a slot take turns.
pub(super) const SERVER_SLOTS: usize = 256;

/// Real server `rs`'s slot in `Express::servers`.
#[inline(always)]
pub(super) fn server_slot(rs: u32) -> usize {
    (rs.wrapping_mul(0x9e37_79b1) >> 24) as usize % SERVER_SLOTS
}

/// `Hop::max_end` of an MTU.
pub(super) fn max_end(mtu: u16) -> u32 {
    ETH as u32 + u32::from(mtu)
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Hop {
    pub(super) hop: NextHop,
    /// The longest frame the hop's MTU lets through: the MTU and the
    /// Ethernet header, one compare with a packet's end.
    pub(super) max_end: u32,
    /// The neighbour's resolution the Ethernet header is of; always one:
    /// a hop is kept once its neighbour is known.
    pub(super) l2: L2,
    /// `l2`'s addresses as a frame starts: the hop's MAC, then the port's
    /// (one 12-byte copy; two MACs apart were four moves more).
    pub(super) eth: [u8; 12],
    /// The port's address a tunnel to a real server through this hop
    /// leaves from (`NetConfig::source_for`: the address of the server's
    /// subnet where the hop is the server itself, else the port's first).
    pub(super) src: u32,
}

impl Hop {
    /// The hop's MTU.
    pub(super) fn mtu(&self) -> u16 {
        self.max_end.saturating_sub(ETH as u32) as u16
    }

    /// The hop while the neighbour table vouches for its Ethernet header.
    #[inline(always)]
    pub(super) fn kept<P: Packet>(&self, stack: &Stack<P>, now: Millis) -> Option<&Hop> {
        stack.l2_fresh(&self.l2, now).then_some(self)
    }
}

/// Works out side `s` of conn `id`'s express block for `x`'s epoch (once
/// per conn, side and configuration), where the side's packet finds it
/// stale: the real server, the side's sums, its next hop toward the
/// server where another conn's has been looked up (`servers`), none yet
/// back to the client. The side is off where the mode has no such side,
/// where its packets go to an address a VRRP backup holds in standby (the
/// full path drops them), and for TUN toward a dest that encapsulates
/// otherwise than in IPIP. The other side is left as it is: it is worked
/// out when its own packet comes (a new conn's reply side a round trip
/// later, a SYN flood's never). What side `s` reads of it, as
/// `V4Conn::express_side` gives it.
#[cold]
#[inline(never)]
pub(super) fn work_out(
    conns: &mut ConnTable,
    id: ConnId,
    x: &Express,
    net: &NetConfig,
    s: usize,
) -> Option<(u32, u32, [u16; 2], u16)> {
    let (mut c, dest) = conns.v4_with_dest(id)?;
    work_out_in_line(&mut c, dest, x, net, s)
}

/// `work_out` in its caller: a new conn's first packet, which always
/// works its side out.
#[inline(always)]
pub(super) fn work_out_in_line(
    c: &mut V4Conn,
    dest: Option<&Dest>,
    x: &Express,
    net: &NetConfig,
    s: usize,
) -> Option<(u32, u32, [u16; 2], u16)> {
    let fwd = c.fwd();
    let v = &c.words();
    let dest = dest?;
    // The dest's IPv4 address as the conn keeps it; 0 for an IPv6 one.
    let rs = c.express_side(s).1;
    if rs == 0 {
        return None;
    }
    let ahead = side(v, fwd, rs, false);
    let sums0 = ahead.map(|(from, to)| sums(&from, &to));
    // A mode with replies (FULLNAT, NAT) rewrites them back: their sums
    // are the client side's, negated.
    let (this, sums) = match s {
        0 => (ahead, sums0),
        _ => (side(v, fwd, rs, true), sums0.map(reversed)),
    };
    let (mut delta, mut hop) = ([0u16; 2], OFF);
    if let (Some((from, _)), Some(sums)) = (this, sums) {
        if !net.is_standby(IpAddr::V4(Ipv4Addr::from(from.dst))) {
            (delta, hop) = (sums.map(u16::to_be), 0);
        }
    }
    if s == 0 && fwd == FwdMethod::Tunnel {
        // IPIP only: another encapsulation is the full path's.
        if dest.tunnel() != Tunnel::Ipip {
            hop = OFF;
        }
        // The L4 sum's slot (TUN leaves L4 alone) keeps what the outer
        // ID is mixed with (host order).
        let ports = [v.cport.to_be_bytes(), v.vport.to_be_bytes()].concat();
        delta[1] = tun::ident_mix(&v.caddr.to_be_bytes(), &ports);
    }
    if s == 0 && hop == 0 {
        hop = x.server_hop(rs);
    }
    // The counts stay: a side worked out again (a new epoch) keeps what
    // it has not yet folded.
    c.set_express_route(s, x.epoch, delta, hop);
    Some((x.epoch, rs, delta, hop))
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
pub(super) fn hop_lookup<P: Packet>(
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
