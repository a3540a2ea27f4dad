//! A packet's 5-tuple: what a conn is looked up by and what a scheduler
//! may look at in the packet that opens one.

use std::net::IpAddr;

/// A packet's 5-tuple. As a lookup key, for `lookup_in` the client is the
/// source and the VIP the destination; for `lookup_out` the real server
/// (or the VIP, for DR/TUN) is the source and the client (or, for FULLNAT,
/// the local address) the destination. As a scheduler's input, the opening
/// packet's: the client and the virtual address and port it asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub proto: u8,
    pub saddr: IpAddr,
    pub sport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
}
