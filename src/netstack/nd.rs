//! IPv6 delivery to our own addresses: neighbour discovery (RFC 4861) and
//! ICMPv6 echo.
use std::net::{IpAddr, Ipv6Addr};

use super::addr::{AddrKind, NetConfig};
use super::icmp::TTL;
use super::stack::{sized, Action, Output, Stack, ETH};
use super::Millis;
use crate::counters::DropReason;
use crate::packet::Packet;
use crate::wire::{
    icmpv6, solicited_node, EtherType, EthernetFrame, EthernetRepr, Icmpv6Packet, IpProtocol,
    Ipv6Packet, Ipv6Repr, MacAddr, NdRepr,
};

const IP6: usize = 40;
/// NS and NA with one link-layer address option.
const ND_LEN: usize = 32;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

fn is_solicited_node(a: &Ipv6Addr) -> bool {
    let s = a.segments();
    s[..5] == [0xff02, 0, 0, 0, 0] && s[5] == 1 && s[6] & 0xff00 == 0xff00
}

impl<P: Packet> Stack<P> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ipv6_input(
        &mut self,
        cfg: &NetConfig,
        pkt: &mut P,
        port: u16,
        mac: MacAddr,
        src_mac: MacAddr,
        now: Millis,
        out: &mut impl Output<P>,
    ) -> Action {
        let Some(Ok(ip)) = pkt.data().get(ETH..).map(Ipv6Packet::new_checked) else {
            return Action::Drop(DropReason::BadHeader);
        };
        let (src, dst, hop_limit) = (ip.src_addr(), ip.dst_addr(), ip.hop_limit());
        let ours = cfg.owner(IpAddr::V6(dst)).is_some_and(|o| o.port == port);
        let for_us = ours
            || dst == ALL_NODES
            || (is_solicited_node(&dst)
                && cfg.owned().any(|(a, o)| {
                    o.port == port && matches!(a, IpAddr::V6(a) if solicited_node(a) == dst)
                }));
        if !for_us {
            return Action::Drop(DropReason::NotForUs);
        }
        let to_host = ours
            && cfg
                .owner(IpAddr::V6(dst))
                .is_some_and(|o| o.kind == AddrKind::Health);
        let is_nd = ip.next_header() == IpProtocol::ICMPV6
            && matches!(
                ip.payload().first().copied(),
                Some(icmpv6::NEIGHBOR_SOLICIT | icmpv6::NEIGHBOR_ADVERT)
            );
        // ND for a health-check source is rvs's to answer on the dataplane;
        // the rest is the host's.
        if to_host && !is_nd {
            return Action::ToHost;
        }
        if ip.next_header() != IpProtocol::ICMPV6 {
            return Action::Drop(DropReason::Unsupported);
        }
        let Ok(icmp) = Icmpv6Packet::new_checked(ip.payload()) else {
            return Action::Drop(DropReason::BadHeader);
        };
        if !icmp.verify_checksum(&src, &dst) {
            return Action::Drop(DropReason::BadHeader);
        }
        match icmp.msg_type() {
            // Nobody to answer: the unspecified address is only a
            // duplicate-address probe's source.
            icmpv6::ECHO_REQUEST if src.is_unspecified() => Action::Drop(DropReason::Martian),
            icmpv6::ECHO_REQUEST if icmp.msg_code() == 0 => {
                let reply_src = if ours {
                    Some(dst)
                } else {
                    match cfg.source_for(port, IpAddr::V6(src)) {
                        Some(IpAddr::V6(a)) => Some(a),
                        _ => None,
                    }
                };
                let Some(reply_src) = reply_src else {
                    return Action::Drop(DropReason::NoRoute);
                };
                if !self.icmp_allow(IpAddr::V6(src), icmpv6::ECHO_REPLY, 0, now) {
                    return Action::Consumed;
                }
                self.echo6(pkt, reply_src, src)
            }
            icmpv6::NEIGHBOR_SOLICIT | icmpv6::NEIGHBOR_ADVERT => {
                // RFC 4861 7.1: only packets that cannot have been forwarded.
                if hop_limit != 255 {
                    return Action::Drop(DropReason::BadHeader);
                }
                let Ok(nd) = NdRepr::parse(&icmp) else {
                    return Action::Drop(DropReason::BadHeader);
                };
                // RFC 4861 7.1: a source that is unspecified or unicast, a
                // target that is not multicast; and no multicast or zero
                // link-layer address to learn.
                let (target, lla) = match nd {
                    NdRepr::NeighborSolicit { target, source_lla } => (target, source_lla),
                    NdRepr::NeighborAdvert {
                        target, target_lla, ..
                    } => (target, target_lla),
                };
                if src.is_multicast()
                    || src.is_loopback()
                    || target.is_multicast()
                    || lla.is_some_and(|m| m.is_multicast() || m.0 == [0; 6])
                {
                    return Action::Drop(DropReason::Martian);
                }
                match nd {
                    NdRepr::NeighborSolicit { target, source_lla } => self.solicited(
                        cfg, pkt, port, mac, src_mac, src, dst, target, source_lla, now, out,
                    ),
                    NdRepr::NeighborAdvert {
                        target,
                        target_lla,
                        override_,
                        ..
                    } => {
                        let lla = target_lla.unwrap_or(src_mac);
                        let t = IpAddr::V6(target);
                        if cfg.owner(t).is_some() {
                            self.counters.address_conflicts.inc();
                            return Action::Consumed;
                        }
                        // As ndisc_recv_na: an advertisement updates an
                        // entry that exists or that a worker asked for,
                        // and without the override flag it confirms the
                        // address it has but does not change it.
                        match self.neigh.mac_of(port, t) {
                            Some(m) if m != lla && !override_ => Action::Consumed,
                            Some(_) => {
                                self.learn_local(cfg, port, t, lla, now, out);
                                Action::Consumed
                            }
                            None if self.was_asked(port, t, now) => {
                                self.learn_local(cfg, port, t, lla, now, out);
                                Action::Consumed
                            }
                            None => Action::Drop(DropReason::Unsolicited),
                        }
                    }
                }
            }
            _ => Action::Drop(DropReason::Unsupported),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn solicited(
        &mut self,
        cfg: &NetConfig,
        pkt: &mut P,
        port: u16,
        mac: MacAddr,
        src_mac: MacAddr,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        target: Ipv6Addr,
        source_lla: Option<MacAddr>,
        now: Millis,
        out: &mut impl Output<P>,
    ) -> Action {
        if cfg.owner(IpAddr::V6(target)).is_none_or(|o| o.port != port) {
            return Action::Drop(DropReason::NotForUs);
        }
        let dad = src.is_unspecified();
        if dad && (source_lla.is_some() || !is_solicited_node(&dst)) {
            return Action::Drop(DropReason::BadHeader);
        }
        // Another host soliciting from one of our addresses: a conflict to
        // count, never a neighbour to learn or answer.
        if cfg.owner(IpAddr::V6(src)).is_some() {
            self.counters.address_conflicts.inc();
            return Action::Consumed;
        }
        if let (false, Some(lla)) = (dad, source_lla) {
            self.learn_local(cfg, port, IpAddr::V6(src), lla, now, out);
        }
        // A duplicate-address probe is answered to all nodes (RFC 4862 5.4.3).
        let (to, to_mac) = if dad {
            (ALL_NODES, MacAddr::ipv6_multicast(ALL_NODES))
        } else {
            (src, source_lla.unwrap_or(src_mac))
        };
        let na = NdRepr::NeighborAdvert {
            router: false,
            solicited: !dad,
            override_: true,
            target,
            target_lla: Some(mac),
        };
        if !write_nd(pkt, mac, to_mac, target, to, &na) {
            return Action::Drop(DropReason::NoBuffer);
        }
        self.counters.nd_adverts.inc();
        Action::SendBack
    }

    fn echo6(&mut self, pkt: &mut P, src: Ipv6Addr, dst: Ipv6Addr) -> Action {
        let plen = match pkt.data().get(ETH..).map(Ipv6Packet::new_checked) {
            Some(Ok(ip)) => usize::from(ip.payload_len()),
            _ => return Action::Drop(DropReason::BadHeader),
        };
        if !pkt.set_len(ETH + IP6 + plen) {
            return Action::Drop(DropReason::BadHeader);
        }
        let d = pkt.data_mut();
        let mut ip = Ipv6Packet::new_unchecked(&mut d[ETH..]);
        ip.set_src_addr(src);
        ip.set_dst_addr(dst);
        ip.set_hop_limit(TTL);
        let mut icmp = Icmpv6Packet::new_unchecked(&mut d[ETH + IP6..]);
        icmp.set_msg_type(icmpv6::ECHO_REPLY);
        icmp.fill_checksum(&src, &dst);
        self.counters.echo_replies.inc();
        Action::Route(IpAddr::V6(dst))
    }
}

/// Writes a whole ND frame (Ethernet, IPv6 with hop limit 255, ICMPv6).
pub(super) fn write_nd<P: Packet>(
    pkt: &mut P,
    mac: MacAddr,
    to_mac: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    nd: &NdRepr,
) -> bool {
    let len = nd.buffer_len();
    if !sized(pkt, ETH + IP6 + len) {
        return false;
    }
    let d = pkt.data_mut();
    EthernetRepr {
        src: mac,
        dst: to_mac,
        ethertype: EtherType::IPV6,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut d[..]));
    d[ETH..ETH + 4].fill(0);
    Ipv6Repr {
        src,
        dst,
        next_header: IpProtocol::ICMPV6,
        payload_len: len,
        hop_limit: 255,
    }
    .emit(&mut Ipv6Packet::new_unchecked(&mut d[ETH..]));
    nd.emit(
        &src,
        &dst,
        &mut Icmpv6Packet::new_unchecked(&mut d[ETH + IP6..]),
    );
    true
}

/// A neighbour solicitation for `target`, to its solicited-node group.
pub(super) fn build_solicit<P: Packet>(
    pkt: &mut P,
    mac: MacAddr,
    src: Ipv6Addr,
    target: Ipv6Addr,
) -> bool {
    let group = solicited_node(target);
    let ns = NdRepr::NeighborSolicit {
        target,
        source_lla: Some(mac),
    };
    debug_assert_eq!(ns.buffer_len(), ND_LEN);
    write_nd(pkt, mac, MacAddr::ipv6_multicast(group), src, group, &ns)
}

/// An unsolicited advertisement of `addr` to all nodes (RFC 4861 7.2.6).
pub(super) fn build_unsolicited_advert<P: Packet>(
    pkt: &mut P,
    mac: MacAddr,
    addr: Ipv6Addr,
) -> bool {
    let na = NdRepr::NeighborAdvert {
        router: false,
        solicited: false,
        override_: true,
        target: addr,
        target_lla: Some(mac),
    };
    write_nd(
        pkt,
        mac,
        MacAddr::ipv6_multicast(ALL_NODES),
        addr,
        ALL_NODES,
        &na,
    )
}
