//! IPv4 delivery to our own addresses: ICMP echo, everything else counted.
use std::net::IpAddr;

use super::addr::{AddrKind, NetConfig};
use super::stack::{Action, ETH};
use crate::counters::{DropReason, WorkerCounters};
use crate::packet::Packet;
use crate::wire::{icmpv4, Icmpv4Packet, IpProtocol, Ipv4Packet};

/// TTL of packets rvs originates (Linux's default).
pub(super) const TTL: u8 = 64;

/// `allow`: whether the ICMP rate limits let an echo reply go to the
/// address given.
pub(super) fn ipv4_local<P: Packet>(
    cfg: &NetConfig,
    pkt: &mut P,
    counters: &WorkerCounters,
    allow: impl FnOnce(IpAddr) -> bool,
) -> Action {
    let Some(Ok(ip)) = pkt.data().get(ETH..).map(Ipv4Packet::new_checked) else {
        return Action::Drop(DropReason::BadHeader);
    };
    if !ip.verify_checksum() {
        return Action::Drop(DropReason::BadHeader);
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    match cfg.owner(IpAddr::V4(dst)) {
        None => return Action::Drop(DropReason::NotForUs),
        Some(o) if o.kind == AddrKind::Health => return Action::ToHost,
        Some(_) => {}
    }
    // RFC 1122 3.2.1.3: a datagram from a broadcast, multicast or unspecified
    // source is not answered.
    if src.is_broadcast() || src.is_multicast() || src.is_unspecified() {
        return Action::Drop(DropReason::BadHeader);
    }
    if ip.is_fragment() {
        return Action::Drop(DropReason::Unsupported);
    }
    if ip.protocol() != IpProtocol::ICMP {
        return Action::Drop(DropReason::Unsupported);
    }
    let Ok(icmp) = Icmpv4Packet::new_checked(ip.payload()) else {
        return Action::Drop(DropReason::BadHeader);
    };
    if !icmp.verify_checksum() {
        return Action::Drop(DropReason::BadHeader);
    }
    if icmp.msg_type() != icmpv4::ECHO_REQUEST || icmp.msg_code() != 0 {
        return Action::Drop(DropReason::Unsupported);
    }
    // Held back by the rate limits: the request is used up unanswered.
    if !allow(IpAddr::V4(src)) {
        return Action::Consumed;
    }
    let (hl, total) = (ip.header_len(), usize::from(ip.total_len()));
    // Drop Ethernet padding so the reply is exactly the request's datagram.
    if !pkt.set_len(ETH + total) {
        return Action::Drop(DropReason::BadHeader);
    }
    let d = pkt.data_mut();
    let mut ip = Ipv4Packet::new_unchecked(&mut d[ETH..]);
    ip.set_src_addr(dst);
    ip.set_dst_addr(src);
    ip.set_ttl(TTL);
    ip.fill_checksum();
    let mut icmp = Icmpv4Packet::new_unchecked(&mut d[ETH + hl..ETH + total]);
    icmp.set_msg_type(icmpv4::ECHO_REPLY);
    icmp.fill_checksum();
    counters.echo_replies.inc();
    Action::Route(IpAddr::V4(src))
}
