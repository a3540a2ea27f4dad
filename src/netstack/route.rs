//! Connected and static routes with longest-prefix match.
//!
//! A director holds a handful of routes, so the table is a list sorted by
//! prefix length, longest first: the first match is the longest one.
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub prefix: IpAddr,
    pub len: u8,
    pub port: u16,
    /// The gateway; None for an on-link (connected) route.
    pub via: Option<IpAddr>,
}

impl Route {
    /// The connected route of an interface address (host bits cleared).
    pub fn connected(addr: IpAddr, len: u8, port: u16) -> Route {
        Route {
            prefix: mask(addr, len),
            len,
            port,
            via: None,
        }
    }
}

/// Where a packet to some destination goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    pub port: u16,
    /// The address to resolve: the gateway, or the destination itself.
    pub addr: IpAddr,
}

#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Adds a route; one for the same prefix replaces the old one.
    pub fn add(&mut self, r: Route) {
        let r = Route {
            prefix: mask(r.prefix, r.len),
            ..r
        };
        self.routes
            .retain(|x| !(x.prefix == r.prefix && x.len == r.len));
        let at = self.routes.partition_point(|x| x.len >= r.len);
        self.routes.insert(at, r);
    }

    pub fn lookup(&self, dst: IpAddr) -> Option<NextHop> {
        self.routes
            .iter()
            .find(|r| prefix_contains(r.prefix, r.len, dst))
            .map(|r| NextHop {
                port: r.port,
                addr: r.via.unwrap_or(dst),
            })
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

/// Whether `addr` lies in `prefix/len` (false across address families).
pub fn prefix_contains(prefix: IpAddr, len: u8, addr: IpAddr) -> bool {
    prefix.is_ipv4() == addr.is_ipv4() && mask(prefix, len) == mask(addr, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_wins_whatever_the_insertion_order() {
        let mut t = RouteTable::default();
        t.add(Route {
            prefix: ip("0.0.0.0"),
            len: 0,
            port: 1,
            via: Some(ip("198.18.0.254")),
        });
        t.add(Route::connected(ip("198.18.0.1"), 24, 0));
        t.add(Route {
            prefix: ip("198.18.0.128"),
            len: 25,
            port: 2,
            via: Some(ip("198.18.0.9")),
        });
        assert_eq!(
            t.lookup(ip("198.18.0.5")),
            Some(NextHop {
                port: 0,
                addr: ip("198.18.0.5")
            })
        );
        assert_eq!(
            t.lookup(ip("198.18.0.200")),
            Some(NextHop {
                port: 2,
                addr: ip("198.18.0.9")
            })
        );
        assert_eq!(
            t.lookup(ip("203.0.113.7")),
            Some(NextHop {
                port: 1,
                addr: ip("198.18.0.254")
            })
        );
        assert_eq!(t.lookup(ip("fd00::1")), None);
    }

    #[test]
    fn ipv6_prefixes_and_host_routes() {
        let mut t = RouteTable::default();
        t.add(Route::connected(ip("fd00:1::1"), 64, 0));
        t.add(Route {
            prefix: ip("fd00:1::42"),
            len: 128,
            port: 3,
            via: None,
        });
        t.add(Route {
            prefix: ip("::"),
            len: 0,
            port: 1,
            via: Some(ip("fd00:1::fe")),
        });
        assert_eq!(t.lookup(ip("fd00:1::42")).map(|n| n.port), Some(3));
        assert_eq!(t.lookup(ip("fd00:1::43")).map(|n| n.port), Some(0));
        assert_eq!(
            t.lookup(ip("2001:db8::1")),
            Some(NextHop {
                port: 1,
                addr: ip("fd00:1::fe")
            })
        );
        assert_eq!(t.lookup(ip("10.0.0.1")), None);
    }

    #[test]
    fn same_prefix_replaces() {
        let mut t = RouteTable::default();
        t.add(Route {
            prefix: ip("10.1.0.0"),
            len: 16,
            port: 1,
            via: None,
        });
        t.add(Route {
            prefix: ip("10.1.9.9"),
            len: 16,
            port: 2,
            via: None,
        });
        assert_eq!(t.routes().len(), 1);
        assert_eq!(t.lookup(ip("10.1.2.3")).map(|n| n.port), Some(2));
    }

    #[test]
    fn edge_lengths() {
        assert!(prefix_contains(ip("0.0.0.0"), 0, ip("255.1.2.3")));
        assert!(prefix_contains(ip("1.2.3.4"), 32, ip("1.2.3.4")));
        assert!(!prefix_contains(ip("1.2.3.4"), 32, ip("1.2.3.5")));
        assert!(!prefix_contains(ip("::"), 0, ip("1.2.3.5")));
    }
}
