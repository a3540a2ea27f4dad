//! What a director needs below L4: the addresses rvs owns, connected and
//! static routes, ARP and IPv6 neighbour discovery, ICMP/ICMPv6 echo.
//!
//! `NetConfig` is the immutable snapshot control threads publish; `Stack` is
//! one worker's state (its neighbour cache and the packets waiting for one).
//! Nothing here names a DPDK type: packets come through the Packet seam.

mod addr;
mod arp;
mod host;
mod icmp;
pub mod icmp_limit;
mod nd;
mod neigh;
mod route;
mod rxfilter;
mod solicit;
mod stack;

pub use addr::{AddrKind, HostPath, Iface, IfaceAddr, NetConfig, OwnedAddr};
pub use icmp_limit::IcmpLimits;
pub use neigh::{NeighUpdate, NEIGH_MAX_AGE_MS, NEIGH_PROBE_AFTER_MS, PENDING_TIMEOUT_MS};
pub use route::{NextHop, Route, RouteTable};
pub use rxfilter::RxVerdict;
pub use solicit::SolicitLog;
pub use stack::{Output, Stack, L2};

/// Milliseconds on a monotonic clock; the worker supplies it, tests fake it.
pub type Millis = u64;

#[cfg(test)]
pub(crate) mod tests;
