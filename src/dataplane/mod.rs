//! The per-lcore worker loop: the load-balancing stage and what it runs.
//! The Packet seam it works on is `crate::packet`, its counters
//! `crate::counters`, both below it.
//!
//! A worker only polls: rx burst, process, tx burst, timers. Control threads
//! talk to it through an `ArcSwap` snapshot of the network configuration and
//! bounded channels it reads between bursts.

pub mod frag;
pub mod lb;
#[cfg(test)]
mod lb_sctp_tests;
pub mod lcore;
mod malformed;
#[cfg(test)]
mod mtu_lb_tests;
#[cfg(test)]
mod nat64_tests;
pub mod nat_replies;
pub mod pressure;
pub mod ratelimit;
#[cfg(test)]
mod rx_lb_tests;
pub mod sync;
#[cfg(test)]
mod sync_lb_tests;
pub mod vrrp;

use crate::netstack::NeighUpdate;

/// From a worker to the control thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToControl {
    /// The worker learned a neighbour; others should know it too.
    Learned { worker: usize, update: NeighUpdate },
    /// A VRRP message received (`vrrp`).
    Vrrp(vrrp::RxAdvert),
}

/// From the control thread to a worker.
#[derive(Debug, Clone)]
pub enum ToWorker {
    Neighbour(NeighUpdate),
    /// A configured neighbour (`[[neighbour]]`): permanent.
    StaticNeighbour(NeighUpdate),
    /// `ipvsadm -c`: the worker answers with at most `max` of its conns
    /// and templates from slot `from` on, and the slot to ask from next
    /// (None: that was the last).
    ListConns {
        from: u32,
        max: usize,
        reply: crossbeam_channel::Sender<(Vec<crate::ipvs::ConnRow>, Option<u32>)>,
    },
    /// A frame the control thread built (a VRRP advert) to send on `port`:
    /// as it is, or routed to `via` with the Ethernet header filled in.
    Frame {
        port: u16,
        frame: Box<[u8]>,
        via: Option<std::net::IpAddr>,
    },
    /// Announce these owned addresses (gratuitous ARP, unsolicited NA)
    /// again, though they are not new.
    Announce(Box<[std::net::IpAddr]>),
}
