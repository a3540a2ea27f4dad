//! ARP: answer for addresses we own on the port asked, learn senders.
use std::net::{IpAddr, Ipv4Addr};

use super::addr::NetConfig;
use super::stack::{sized, Action, Output, Stack, ETH};
use super::Millis;
use crate::counters::DropReason;
use crate::packet::Packet;
use crate::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, EthernetRepr, MacAddr,
};

const ARP_FRAME: usize = ETH + ArpPacket::<&[u8]>::LEN;

impl<P: Packet> Stack<P> {
    pub(super) fn arp_input(
        &mut self,
        cfg: &NetConfig,
        pkt: &mut P,
        port: u16,
        mac: MacAddr,
        now: Millis,
        out: &mut impl Output<P>,
    ) -> Action {
        let Some(Ok(arp)) = pkt.data().get(ETH..).map(ArpPacket::new_checked) else {
            return Action::Drop(DropReason::BadHeader);
        };
        let Ok(repr) = ArpRepr::parse(&arp) else {
            return Action::Drop(DropReason::BadHeader);
        };
        if martian_sender(cfg, port, repr.sender_hw_addr, repr.sender_proto_addr) {
            return Action::Drop(DropReason::Martian);
        }
        let sender = IpAddr::V4(repr.sender_proto_addr);
        let target = repr.target_proto_addr;
        let ours = cfg
            .owner(IpAddr::V4(target))
            .is_some_and(|o| o.port == port);
        // Another host using one of our addresses (RFC 5227 2.4), whatever it
        // asks: a conflict to count, never a neighbour to learn. Our own
        // announcements looped back by a switch are not for us either.
        if cfg.owner(sender).is_some() {
            if repr.sender_hw_addr == mac {
                return Action::Drop(DropReason::NotForUs);
            }
            self.counters.address_conflicts.inc();
            return Action::Consumed;
        }
        // As Linux's arp_process: a request to us makes an entry for its
        // sender, a reply only one a worker asked for; neighbours already
        // known are refreshed by anything they send.
        let known = self.neigh.contains(port, sender);
        let learn = !repr.sender_proto_addr.is_unspecified()
            && (known
                || match repr.operation {
                    ArpOperation::Request => ours,
                    ArpOperation::Reply => self.was_asked(port, sender, now),
                    ArpOperation::Unknown(_) => false,
                });
        // A probe (RFC 5227: sender 0.0.0.0) is answered, never learned.
        if learn {
            self.learn_local(cfg, port, sender, repr.sender_hw_addr, now, out);
        }
        match (ours, repr.operation) {
            (true, ArpOperation::Request) => {
                let reply = ArpRepr {
                    operation: ArpOperation::Reply,
                    sender_hw_addr: mac,
                    sender_proto_addr: target,
                    target_hw_addr: repr.sender_hw_addr,
                    target_proto_addr: repr.sender_proto_addr,
                };
                if !write_arp(pkt, mac, repr.sender_hw_addr, &reply) {
                    return Action::Drop(DropReason::BadHeader);
                }
                self.counters.arp_replies.inc();
                Action::SendBack
            }
            (true, ArpOperation::Reply) if learn => Action::Consumed,
            (true, ArpOperation::Reply) => Action::Drop(DropReason::Unsolicited),
            (true, ArpOperation::Unknown(_)) => Action::Drop(DropReason::Unsupported),
            (false, _) if learn => Action::Consumed,
            (false, _) => Action::Drop(DropReason::NotForUs),
        }
    }
}

/// A sender no host may be, as Linux's arp_process refuses them: a
/// broadcast, multicast or zero MAC; a broadcast (limited, or of one of
/// the port's subnets), multicast or loopback address. 0.0.0.0 is a probe's
/// and allowed.
fn martian_sender(cfg: &NetConfig, port: u16, mac: MacAddr, ip: Ipv4Addr) -> bool {
    if mac.is_multicast() || mac.0 == [0; 6] {
        return true;
    }
    if ip.is_broadcast() || ip.is_multicast() || ip.is_loopback() {
        return true;
    }
    cfg.iface(port).is_some_and(|i| {
        i.addrs.iter().any(|a| match a.addr {
            IpAddr::V4(net) if a.prefix_len < 31 => {
                let host = u32::MAX >> a.prefix_len;
                u32::from(ip) == u32::from(net) | host
            }
            _ => false,
        })
    })
}

pub(super) fn write_arp<P: Packet>(
    pkt: &mut P,
    src: MacAddr,
    dst: MacAddr,
    repr: &ArpRepr,
) -> bool {
    if !sized(pkt, ARP_FRAME) {
        return false;
    }
    let d = pkt.data_mut();
    EthernetRepr {
        src,
        dst,
        ethertype: EtherType::ARP,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut d[..]));
    repr.emit(&mut ArpPacket::new_unchecked(&mut d[ETH..]));
    true
}

/// An ARP request for `target` from `sender`; with sender == target it is
/// the gratuitous ARP that announces an address.
pub(super) fn build_request<P: Packet>(
    pkt: &mut P,
    mac: MacAddr,
    sender: Ipv4Addr,
    target: Ipv4Addr,
    dst: MacAddr,
) -> bool {
    let req = ArpRepr {
        operation: ArpOperation::Request,
        sender_hw_addr: mac,
        sender_proto_addr: sender,
        target_hw_addr: MacAddr::ZERO,
        target_proto_addr: target,
    };
    write_arp(pkt, mac, dst, &req)
}
