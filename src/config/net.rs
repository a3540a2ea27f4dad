//! Address-with-prefix types shared by the config and the network stack.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Why an `ADDRESS/LENGTH` string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetParseError {
    #[error("expected ADDRESS/LENGTH (e.g. 198.18.0.1/24 or fd00::1/64), got {0:?}")]
    MissingSlash(String),
    #[error("{0:?} is not an IPv4 or IPv6 address")]
    BadAddress(String),
    #[error("prefix length {0:?} is not a number")]
    BadLength(String),
    #[error("prefix length /{len} is too long for {family} (at most /{max})")]
    LengthOutOfRange {
        len: u32,
        max: u8,
        family: &'static str,
    },
    #[error("{given} has host bits set; the network is {network}")]
    HostBitsSet { given: String, network: Prefix },
}

fn max_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn family(addr: IpAddr) -> &'static str {
    match addr {
        IpAddr::V4(_) => "IPv4",
        IpAddr::V6(_) => "IPv6",
    }
}

/// Zeroes every bit of `addr` past the first `len`; `len` beyond the family
/// width keeps the whole address, so callers need not pre-validate it.
fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if len == 0 {
                0
            } else {
                u32::MAX
                    .checked_shl(32 - u32::from(len.min(32)))
                    .unwrap_or(0)
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if len == 0 {
                0
            } else {
                u128::MAX
                    .checked_shl(128 - u32::from(len.min(128)))
                    .unwrap_or(0)
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

fn same_network(a: IpAddr, b: IpAddr, len: u8) -> bool {
    a.is_ipv4() == b.is_ipv4() && mask(a, len) == mask(b, len)
}

/// Splits and parses `ADDRESS/LENGTH` without judging host bits.
fn parse_addr_len(s: &str) -> Result<(IpAddr, u8), NetParseError> {
    let (a, l) = s
        .split_once('/')
        .ok_or_else(|| NetParseError::MissingSlash(s.to_owned()))?;
    let addr: IpAddr = a
        .parse()
        .map_err(|_| NetParseError::BadAddress(a.to_owned()))?;
    // `u8::from_str` would accept a leading '+', and a long run of digits
    // should say "too long" rather than "not a number".
    if l.is_empty() || l.len() > 9 || !l.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NetParseError::BadLength(l.to_owned()));
    }
    let len: u32 = l
        .parse()
        .map_err(|_| NetParseError::BadLength(l.to_owned()))?;
    let max = max_len(addr);
    match u8::try_from(len) {
        Ok(len) if len <= max => Ok((addr, len)),
        _ => Err(NetParseError::LengthOutOfRange {
            len,
            max,
            family: family(addr),
        }),
    }
}

/// An interface address: one of our own addresses plus the length of the
/// subnet it is connected to, as in `ip addr add 198.18.0.1/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IfAddr {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl IfAddr {
    /// Whether `ip` lies in the connected subnet (same family, same network bits).
    pub fn contains(&self, ip: IpAddr) -> bool {
        same_network(self.addr, ip, self.prefix_len)
    }

    /// The connected subnet as a network prefix.
    pub fn network(&self) -> Prefix {
        Prefix {
            addr: mask(self.addr, self.prefix_len),
            len: self.prefix_len,
        }
    }
}

impl fmt::Display for IfAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for IfAddr {
    type Err = NetParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix_len) = parse_addr_len(s)?;
        Ok(IfAddr { addr, prefix_len })
    }
}

/// A network prefix such as `10.0.0.0/8`; the address never has host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    /// Builds a prefix, refusing host bits and lengths past the family width.
    pub fn new(addr: IpAddr, len: u8) -> Result<Prefix, NetParseError> {
        let max = max_len(addr);
        if len > max {
            return Err(NetParseError::LengthOutOfRange {
                len: u32::from(len),
                max,
                family: family(addr),
            });
        }
        let network = mask(addr, len);
        if network != addr {
            return Err(NetParseError::HostBitsSet {
                given: format!("{addr}/{len}"),
                network: Prefix { addr: network, len },
            });
        }
        Ok(Prefix { addr, len })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        same_network(self.addr, ip, self.len)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Prefix {
    type Err = NetParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = parse_addr_len(s)?;
        Prefix::new(addr, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ifaddr_parses_v4_and_v6() {
        let a: IfAddr = "198.18.0.1/24".parse().unwrap();
        assert_eq!(a.addr, ip("198.18.0.1"));
        assert_eq!(a.prefix_len, 24);
        assert_eq!(a.to_string(), "198.18.0.1/24");
        let b: IfAddr = "fd00:1::1/64".parse().unwrap();
        assert_eq!(b.addr, ip("fd00:1::1"));
        assert_eq!(b.prefix_len, 64);
        assert_eq!(b.to_string(), "fd00:1::1/64");
    }

    #[test]
    fn ifaddr_accepts_extreme_lengths() {
        assert_eq!("10.0.0.1/0".parse::<IfAddr>().unwrap().prefix_len, 0);
        assert_eq!("10.0.0.1/32".parse::<IfAddr>().unwrap().prefix_len, 32);
        assert_eq!("::1/0".parse::<IfAddr>().unwrap().prefix_len, 0);
        assert_eq!("::1/128".parse::<IfAddr>().unwrap().prefix_len, 128);
    }

    #[test]
    fn ifaddr_rejects_too_long_prefix() {
        assert_eq!(
            "10.0.0.1/33".parse::<IfAddr>(),
            Err(NetParseError::LengthOutOfRange {
                len: 33,
                max: 32,
                family: "IPv4"
            })
        );
        assert_eq!(
            "fd00::1/129".parse::<IfAddr>(),
            Err(NetParseError::LengthOutOfRange {
                len: 129,
                max: 128,
                family: "IPv6"
            })
        );
        assert!(matches!(
            "10.0.0.1/4294967296".parse::<IfAddr>(),
            Err(NetParseError::BadLength(_))
        ));
        assert!(matches!(
            "10.0.0.1/256".parse::<IfAddr>(),
            Err(NetParseError::LengthOutOfRange { len: 256, .. })
        ));
    }

    #[test]
    fn ifaddr_rejects_garbage() {
        assert_eq!(
            "10.0.0.1".parse::<IfAddr>(),
            Err(NetParseError::MissingSlash("10.0.0.1".into()))
        );
        assert_eq!(
            "".parse::<IfAddr>(),
            Err(NetParseError::MissingSlash(String::new()))
        );
        assert_eq!(
            "hello/24".parse::<IfAddr>(),
            Err(NetParseError::BadAddress("hello".into()))
        );
        assert_eq!(
            "/24".parse::<IfAddr>(),
            Err(NetParseError::BadAddress(String::new()))
        );
        for bad_len in ["", "+24", "-1", " 24", "24 ", "2a", "24/1"] {
            assert_eq!(
                format!("10.0.0.1/{bad_len}").parse::<IfAddr>(),
                Err(NetParseError::BadLength(bad_len.into())),
                "length {bad_len:?}"
            );
        }
        assert!("10.0.0.256/24".parse::<IfAddr>().is_err());
        assert!("fe80::1%eth0/64".parse::<IfAddr>().is_err());
        assert!(" 10.0.0.1/24".parse::<IfAddr>().is_err());
    }

    #[test]
    fn ifaddr_contains_its_subnet_only() {
        let a: IfAddr = "198.18.0.1/24".parse().unwrap();
        assert!(a.contains(ip("198.18.0.254")));
        assert!(a.contains(ip("198.18.0.0")));
        assert!(!a.contains(ip("198.18.1.1")));
        assert!(!a.contains(ip("::ffff:198.18.0.2")));
        let all: IfAddr = "198.18.0.1/0".parse().unwrap();
        assert!(all.contains(ip("1.2.3.4")));
        assert!(!all.contains(ip("::1")));
        let host: IfAddr = "198.18.0.1/32".parse().unwrap();
        assert!(host.contains(ip("198.18.0.1")));
        assert!(!host.contains(ip("198.18.0.2")));
        let v6: IfAddr = "fd00:1::1/64".parse().unwrap();
        assert!(v6.contains(ip("fd00:1::ffff:1")));
        assert!(!v6.contains(ip("fd00:2::1")));
        let v6host: IfAddr = "fd00:1::1/128".parse().unwrap();
        assert!(!v6host.contains(ip("fd00:1::2")));
        assert_eq!(a.network().to_string(), "198.18.0.0/24");
        assert_eq!(v6.network().to_string(), "fd00:1::/64");
    }

    #[test]
    fn prefix_rejects_host_bits() {
        assert_eq!(
            "10.0.0.1/8".parse::<Prefix>(),
            Err(NetParseError::HostBitsSet {
                given: "10.0.0.1/8".into(),
                network: Prefix {
                    addr: ip("10.0.0.0"),
                    len: 8
                }
            })
        );
        let e = "fd00::1/64".parse::<Prefix>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "fd00::1/64 has host bits set; the network is fd00::/64"
        );
        assert!("0.0.0.1/0".parse::<Prefix>().is_err());
    }

    #[test]
    fn prefix_parses_and_contains() {
        let d: Prefix = "0.0.0.0/0".parse().unwrap();
        assert_eq!(d.addr, ip("0.0.0.0"));
        assert_eq!(d.len, 0);
        assert!(d.contains(ip("203.0.113.9")));
        assert!(!d.contains(ip("2001:db8::1")));
        let d6: Prefix = "::/0".parse().unwrap();
        assert!(d6.contains(ip("2001:db8::1")));
        assert!(!d6.contains(ip("1.1.1.1")));
        let p: Prefix = "10.1.0.0/16".parse().unwrap();
        assert_eq!(p.to_string(), "10.1.0.0/16");
        assert!(p.contains(ip("10.1.255.255")));
        assert!(!p.contains(ip("10.2.0.0")));
        let h: Prefix = "2001:db8::7/128".parse().unwrap();
        assert!(h.contains(ip("2001:db8::7")));
        assert!("10.0.0.0/33".parse::<Prefix>().is_err());
        assert!("::/129".parse::<Prefix>().is_err());
        assert!("10.0.0.0".parse::<Prefix>().is_err());
        assert!("x/8".parse::<Prefix>().is_err());
    }

    #[test]
    fn prefix_new_checks_length() {
        assert!(Prefix::new(ip("10.0.0.0"), 33).is_err());
        assert_eq!(
            Prefix::new(ip("10.0.0.0"), 8),
            Ok(Prefix {
                addr: ip("10.0.0.0"),
                len: 8
            })
        );
    }
}
