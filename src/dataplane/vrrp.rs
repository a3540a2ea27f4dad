//! VRRP on a worker: received adverts go to the control thread (which runs
//! the state machines, `crate::vrrp`) as a small Copy record; frames the
//! control thread built go out; and while this director is a backup,
//! packets to the addresses it holds on standby are dropped. Only frames
//! the load balancer passed on to the network stack (not TCP/UDP/SCTP
//! flows) are looked at, and only when rvsd runs VRRP.
use std::net::{IpAddr, Ipv4Addr};

use crossbeam_channel::Sender;

use super::ToControl;
use crate::counters::{DropReason, WorkerCounters};
use crate::netstack::{Millis, NetConfig, Output, Stack};
use crate::packet::Packet;
use crate::wire::vrrp::{VrrpPacket, PROTO};
use crate::wire::{EtherType, EthernetFrame, IpProtocol, Ipv4Packet, Ipv6Packet};

const ETH: usize = 14;

/// What a worker saw of a received VRRP message; the control thread
/// judges it (TTL, version, VRID, checksum) and counts what it refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxAdvert {
    pub port: u16,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub version: u8,
    pub kind: u8,
    pub vrid: u8,
    pub priority: u8,
    /// Centiseconds.
    pub max_adver_int: u16,
    /// The message holds the addresses it counts.
    pub complete: bool,
    /// The VRRP checksum (with the IPv4 pseudo header) is right.
    pub checksum_ok: bool,
}

/// The VRRP advert in `frame`, an IPv4 packet of protocol 112 whose
/// header checksum is right.
pub fn parse_advert(frame: &[u8], port: u16) -> Option<RxAdvert> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EtherType::IPV4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(frame.get(ETH..)?).ok()?;
    if ip.protocol() != IpProtocol(PROTO) || !ip.verify_checksum() || ip.is_fragment() {
        return None;
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let mut a = RxAdvert {
        port,
        src,
        dst,
        ttl: ip.ttl(),
        version: 0,
        kind: 0,
        vrid: 0,
        priority: 0,
        max_adver_int: 0,
        complete: false,
        checksum_ok: false,
    };
    if let Ok(v) = VrrpPacket::new_checked(ip.payload()) {
        a.version = v.version();
        a.kind = v.kind();
        a.vrid = v.vrid();
        a.priority = v.priority();
        a.max_adver_int = v.max_adver_int();
        a.complete = v.addrs_v4().is_ok();
        a.checksum_ok = v.verify_checksum_v4(src, dst);
    }
    Some(a)
}

/// The IP destination of `frame`, for the standby check.
fn ip_dst(frame: &[u8]) -> Option<IpAddr> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let l3 = frame.get(ETH..)?;
    match eth.ethertype() {
        EtherType::IPV4 => Some(Ipv4Packet::new_checked(l3).ok()?.dst_addr().into()),
        EtherType::IPV6 => Some(Ipv6Packet::new_checked(l3).ok()?.dst_addr().into()),
        _ => None,
    }
}

/// A frame for the network stack, when rvsd runs VRRP: an advert goes to
/// the control thread, a packet to a standby address is dropped; anything
/// else comes back for the stack.
pub fn intercept<P: Packet>(
    cfg: &NetConfig,
    pkt: P,
    to_ctl: &Sender<ToControl>,
    counters: &WorkerCounters,
) -> Option<P> {
    if let Some(a) = parse_advert(pkt.data(), pkt.rx_port()) {
        // A full channel loses one advert; the machines tolerate that
        // (three in a row make a backup take over).
        if to_ctl.try_send(ToControl::Vrrp(a)).is_ok() {
            counters.consumed.inc();
        } else {
            counters.dropped(DropReason::RingFull);
        }
        return None;
    }
    if ip_dst(pkt.data()).is_some_and(|d| cfg.is_standby(d)) {
        counters.dropped(DropReason::VrrpBackup);
        return None;
    }
    Some(pkt)
}

/// Sends a frame the control thread built: as it is, or (`via`) routed to
/// that unicast peer, whose MAC the stack resolves.
#[allow(clippy::too_many_arguments)]
pub fn send_frame<P: Packet>(
    cfg: &NetConfig,
    stack: &mut Stack<P>,
    out: &mut impl Output<P>,
    counters: &WorkerCounters,
    port: u16,
    frame: &[u8],
    via: Option<IpAddr>,
    now: Millis,
) {
    let Some(mut pkt) = out.alloc() else {
        counters.dropped(DropReason::NoBuffer);
        return;
    };
    if !pkt.set_len(frame.len()) || pkt.len() != frame.len() {
        counters.dropped(DropReason::NoBuffer);
        return;
    }
    pkt.data_mut().copy_from_slice(frame);
    match via {
        Some(dst) => stack.route_out(cfg, pkt, dst, port, now, out),
        None => out.send(port, pkt),
    }
}
