//! How many of the table's FULLNAT conns hold each local address and port
//! (their replies' destination), so that a new conn's local-port bind knows
//! a free port without looking up a reply tuple in the table.
//!
//! The bind wants a port no conn to the same real server uses on that
//! local address (one port serves every real server at once, as in the
//! kernel's and DPVS's tuple check). A port no conn holds at all is free
//! for any server: one read here, where the reply-tuple lookup hashed a
//! key and read an index line and a conn, usually out of the caches. Only
//! a port some conn holds is looked up by its tuple, as before. A NAT
//! conn's reply goes to its client, never one of the director's own
//! addresses (their packets are martian), so FULLNAT conns are all that
//! can hold a local address's port.
use std::net::IpAddr;

use hashbrown::HashMap;

/// Per local address, a count per port. The address is one word, an IPv4
/// one in its IPv4-mapped IPv6 form (no IPv6 address of its own is that),
/// so that hashing it costs little.
#[derive(Debug, Default)]
pub(super) struct LocalPorts {
    by_addr: HashMap<u128, Held>,
}

#[derive(Debug)]
struct Held {
    /// Conns per port. A count that reached `u16::MAX` stays there: the
    /// port reads as held from then on, which only ever costs a lookup.
    ports: Box<[u16]>,
    /// Conns on the address; at 0 its counts go.
    conns: u32,
}

const PORTS: usize = 1 << 16;

impl LocalPorts {
    /// A conn now holds `port` on `addr`.
    pub(super) fn add(&mut self, addr: u128, port: u16) {
        let h = self.by_addr.entry(addr).or_insert_with(|| Held {
            ports: vec![0; PORTS].into_boxed_slice(),
            conns: 0,
        });
        if let Some(n) = h.ports.get_mut(usize::from(port)) {
            *n = n.saturating_add(1);
        }
        h.conns = h.conns.saturating_add(1);
    }

    /// A conn holding `port` on `addr` is gone.
    pub(super) fn sub(&mut self, addr: u128, port: u16) {
        let Some(h) = self.by_addr.get_mut(&addr) else {
            return;
        };
        if let Some(n) = h.ports.get_mut(usize::from(port)) {
            if *n != u16::MAX {
                *n = n.saturating_sub(1);
            }
        }
        h.conns = h.conns.saturating_sub(1);
        if h.conns == 0 {
            self.by_addr.remove(&addr);
        }
    }

    /// Whether some conn holds `port` on `addr`.
    #[inline]
    pub(super) fn held(&self, addr: u128, port: u16) -> bool {
        self.by_addr
            .get(&addr)
            .is_some_and(|h| h.ports.get(usize::from(port)).is_none_or(|&n| n != 0))
    }

    pub(super) fn memory_bytes(&self) -> usize {
        self.by_addr.len() * PORTS * 2
            + self.by_addr.capacity() * std::mem::size_of::<(u128, Held)>()
    }
}

/// An address as `LocalPorts` keys it: one word, an IPv4 address in its
/// IPv4-mapped IPv6 form (no IPv6 address of its own is that).
#[inline]
pub(super) fn key(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(last: u8) -> u128 {
        key(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn a_port_is_held_while_any_conn_holds_it() {
        let mut p = LocalPorts::default();
        assert!(!p.held(a(1), 5000));
        p.add(a(1), 5000);
        p.add(a(1), 5000);
        assert!(p.held(a(1), 5000));
        assert!(!p.held(a(1), 5001), "another port");
        assert!(!p.held(a(2), 5000), "another address");
        let same_bytes: IpAddr = "a00:1::".parse().unwrap();
        assert!(!p.held(key(same_bytes), 5000), "the same bytes as IPv6");
        p.sub(a(1), 5000);
        assert!(p.held(a(1), 5000), "one conn left");
        p.sub(a(1), 5000);
        assert!(!p.held(a(1), 5000));
        assert!(p.by_addr.is_empty(), "the address's counts went");
        // An IPv4 address and its IPv4-mapped IPv6 form are one address.
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        p.add(key(mapped), 9);
        assert!(p.held(a(1), 9));
    }

    #[test]
    fn a_count_that_saturates_stays_held() {
        let mut p = LocalPorts::default();
        for _ in 0..u32::from(u16::MAX) + 10 {
            p.add(a(1), 7);
        }
        p.add(a(1), 8);
        for _ in 0..u32::from(u16::MAX) + 10 {
            p.sub(a(1), 7);
        }
        assert!(p.held(a(1), 7), "saturated: held for good");
        assert!(p.held(a(1), 8));
    }
}
