//! The host side of the exception path: frames the host's kernel sends
//! through its tap. rvs is the kernel's only neighbour there: it answers
//! every ARP request and neighbour solicitation with its own MAC (the
//! kernel routes everything from a health-check source straight onto the
//! tap), and routes the kernel's packets out of the dataplane as its own.
use std::net::IpAddr;

use super::addr::{AddrKind, HostPath, NetConfig};
use super::arp::write_arp;
use super::nd::write_nd;
use super::stack::{Action, Stack, ETH};
use crate::counters::DropReason;
use crate::packet::Packet;
use crate::wire::{
    icmpv6, ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, Icmpv6Packet, IpProtocol,
    Ipv4Packet, Ipv6Packet, NdRepr,
};

impl<P: Packet> Stack<P> {
    pub(super) fn host_input(&mut self, cfg: &NetConfig, pkt: &mut P, h: HostPath) -> Action {
        self.counters.from_host.inc();
        let Ok(eth) = EthernetFrame::new_checked(pkt.data()) else {
            return Action::Drop(DropReason::BadHeader);
        };
        let (ethertype, src_mac) = (eth.ethertype(), eth.src_addr());
        let Some(l3) = pkt.data().get(ETH..) else {
            return Action::Drop(DropReason::BadHeader);
        };
        // Only what a health-check source sends may leave by the dataplane.
        let from_source = |a: IpAddr| cfg.owner(a).is_some_and(|o| o.kind == AddrKind::Health);
        let routable = |src: IpAddr, dst: IpAddr| {
            if !from_source(src) {
                Action::Drop(DropReason::NotForUs)
            } else if cfg.owner(dst).is_some() || dst.is_multicast() {
                Action::Drop(DropReason::Unsupported)
            } else {
                Action::Route(dst)
            }
        };
        match ethertype {
            EtherType::ARP => {
                let Ok(repr) = ArpPacket::new_checked(l3).and_then(|a| ArpRepr::parse(&a)) else {
                    return Action::Drop(DropReason::BadHeader);
                };
                if repr.operation != ArpOperation::Request {
                    return Action::Consumed;
                }
                let reply = ArpRepr {
                    operation: ArpOperation::Reply,
                    sender_hw_addr: h.mac,
                    sender_proto_addr: repr.target_proto_addr,
                    target_hw_addr: repr.sender_hw_addr,
                    target_proto_addr: repr.sender_proto_addr,
                };
                if !write_arp(pkt, h.mac, repr.sender_hw_addr, &reply) {
                    return Action::Drop(DropReason::BadHeader);
                }
                self.counters.arp_replies.inc();
                Action::SendBack
            }
            EtherType::IPV4 => {
                let Ok(ip) = Ipv4Packet::new_checked(l3) else {
                    return Action::Drop(DropReason::BadHeader);
                };
                routable(IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()))
            }
            EtherType::IPV6 => {
                let Ok(ip) = Ipv6Packet::new_checked(l3) else {
                    return Action::Drop(DropReason::BadHeader);
                };
                let (src, dst) = (ip.src_addr(), ip.dst_addr());
                if ip.next_header() == IpProtocol::ICMPV6 {
                    if let Ok(icmp) = Icmpv6Packet::new_checked(ip.payload()) {
                        if icmp.msg_type() == icmpv6::NEIGHBOR_SOLICIT {
                            return self.host_solicit(pkt, &icmp_repr(&icmp), src, src_mac, h);
                        }
                        if icmp.msg_type() == icmpv6::NEIGHBOR_ADVERT {
                            return Action::Consumed;
                        }
                    }
                }
                routable(IpAddr::V6(src), IpAddr::V6(dst))
            }
            _ => Action::Drop(DropReason::Unsupported),
        }
    }

    /// Answers the kernel's solicitation for any target with rvs's MAC.
    fn host_solicit(
        &mut self,
        pkt: &mut P,
        nd: &Option<NdRepr>,
        src: std::net::Ipv6Addr,
        src_mac: crate::wire::MacAddr,
        h: HostPath,
    ) -> Action {
        let Some(NdRepr::NeighborSolicit { target, source_lla }) = *nd else {
            return Action::Drop(DropReason::BadHeader);
        };
        // The kernel's duplicate-address probes get no answer: its
        // addresses are its own.
        if src.is_unspecified() {
            return Action::Consumed;
        }
        let na = NdRepr::NeighborAdvert {
            router: false,
            solicited: true,
            override_: true,
            target,
            target_lla: Some(h.mac),
        };
        if !write_nd(pkt, h.mac, source_lla.unwrap_or(src_mac), target, src, &na) {
            return Action::Drop(DropReason::NoBuffer);
        }
        self.counters.nd_adverts.inc();
        Action::SendBack
    }
}

fn icmp_repr(icmp: &Icmpv6Packet<&[u8]>) -> Option<NdRepr> {
    NdRepr::parse(icmp).ok()
}
