//! Firewall marks without iptables: rvs's own mark rules, so `-f MARK`
//! services work on a DPDK port. A rule matches a destination prefix, an
//! optional protocol and an optional destination port range, and gives the
//! packet a mark, as `iptables -t mangle ... -j MARK --set-mark` does in
//! front of IPVS. The first matching rule wins, in the order they were added.
use std::fmt;
use std::net::IpAddr;

use super::error::IpvsError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkRule {
    pub dst: IpAddr,
    pub prefix_len: u8,
    /// IP protocol number; None matches any.
    pub proto: Option<u8>,
    /// Inclusive destination port range; None matches any port.
    pub ports: Option<(u16, u16)>,
    pub mark: u32,
}

fn masked(a: IpAddr, len: u8) -> IpAddr {
    match a {
        IpAddr::V4(v) => IpAddr::V4(
            (u32::from(v)
                & u32::MAX
                    .checked_shl(32 - u32::from(len.min(32)))
                    .unwrap_or(0))
            .into(),
        ),
        IpAddr::V6(v) => IpAddr::V6(
            (u128::from(v)
                & u128::MAX
                    .checked_shl(128 - u32::from(len.min(128)))
                    .unwrap_or(0))
            .into(),
        ),
    }
}

impl MarkRule {
    /// Parses the arguments of `--mark-add`/`--mark-del`:
    /// `ADDR[/LEN] [tcp|udp|sctp|any] [PORT[:PORT]] MARK`.
    pub fn parse(words: &[&str]) -> Result<MarkRule, String> {
        let (first, rest) = words.split_first().ok_or("missing destination")?;
        let (addr, len) = match first.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (*first, None),
        };
        let dst: IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("bad destination {first:?}"))?;
        let max = if dst.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len {
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or(format!("bad prefix length in {first:?}"))?,
            None => max,
        };
        let (mark_word, middle) = rest.split_last().ok_or("missing mark")?;
        let mark: u32 = mark_word
            .parse()
            .ok()
            .filter(|m| *m > 0)
            .ok_or(format!("bad mark {mark_word:?} (1..4294967295)"))?;
        let mut proto = None;
        let mut ports = None;
        for w in middle {
            match *w {
                "tcp" => proto = Some(6),
                "udp" => proto = Some(17),
                "sctp" => proto = Some(132),
                "any" => proto = None,
                p => {
                    let (lo, hi) = p.split_once(':').unwrap_or((p, p));
                    let lo: u16 = lo.parse().map_err(|_| format!("bad port {p:?}"))?;
                    let hi: u16 = hi.parse().map_err(|_| format!("bad port {p:?}"))?;
                    if lo > hi {
                        return Err(format!("bad port range {p:?}"));
                    }
                    ports = Some((lo, hi));
                }
            }
        }
        Ok(MarkRule {
            dst: masked(dst, prefix_len),
            prefix_len,
            proto,
            ports,
            mark,
        })
    }

    #[inline]
    pub fn matches(&self, proto: u8, dst: IpAddr, dport: u16) -> bool {
        dst.is_ipv4() == self.dst.is_ipv4()
            && masked(dst, self.prefix_len) == self.dst
            && self.proto.is_none_or(|p| p == proto)
            && self.ports.is_none_or(|(lo, hi)| (lo..=hi).contains(&dport))
    }
}

impl fmt::Display for MarkRule {
    /// The form `--mark-add` reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.dst, self.prefix_len)?;
        match self.proto {
            Some(6) => write!(f, " tcp")?,
            Some(17) => write!(f, " udp")?,
            Some(132) => write!(f, " sctp")?,
            _ => write!(f, " any")?,
        }
        if let Some((lo, hi)) = self.ports {
            if lo == hi {
                write!(f, " {lo}")?;
            } else {
                write!(f, " {lo}:{hi}")?;
            }
        }
        write!(f, " {}", self.mark)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarkRules {
    rules: Vec<MarkRule>,
}

impl MarkRules {
    pub fn add(&mut self, r: MarkRule) -> Result<(), IpvsError> {
        if self.rules.contains(&r) {
            return Err(IpvsError::InvalidArgument("mark rule exists"));
        }
        self.rules.push(r);
        Ok(())
    }

    pub fn delete(&mut self, r: &MarkRule) -> Result<(), IpvsError> {
        let before = self.rules.len();
        self.rules.retain(|x| x != r);
        if self.rules.len() == before {
            return Err(IpvsError::InvalidArgument("no such mark rule"));
        }
        Ok(())
    }

    pub fn rules(&self) -> &[MarkRule] {
        &self.rules
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// The packet's mark: the first matching rule's, else 0 (no mark).
    #[inline]
    pub fn classify(&self, proto: u8, dst: IpAddr, dport: u16) -> u32 {
        self.rules
            .iter()
            .find(|r| r.matches(proto, dst, dport))
            .map_or(0, |r| r.mark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> MarkRule {
        MarkRule::parse(&s.split_whitespace().collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn scenario_five_http_and_https_of_one_vip_share_a_mark() {
        let mut m = MarkRules::default();
        m.add(rule("10.0.0.1 tcp 80 10")).unwrap();
        m.add(rule("10.0.0.1/32 tcp 443 10")).unwrap();
        m.add(rule("10.0.1.0/24 any 20")).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(m.classify(6, ip("10.0.0.1"), 80), 10);
        assert_eq!(m.classify(6, ip("10.0.0.1"), 443), 10);
        assert_eq!(m.classify(6, ip("10.0.0.1"), 22), 0);
        assert_eq!(m.classify(17, ip("10.0.0.1"), 80), 0, "tcp only");
        assert_eq!(
            m.classify(17, ip("10.0.1.77"), 53),
            20,
            "prefix, any protocol and port"
        );
        assert_eq!(m.classify(6, ip("fd00::1"), 80), 0);
        assert!(m.add(rule("10.0.0.1 tcp 80 10")).is_err(), "duplicate");
        m.delete(&rule("10.0.0.1 tcp 80 10")).unwrap();
        assert_eq!(m.classify(6, ip("10.0.0.1"), 80), 0);
    }

    #[test]
    fn ranges_prefixes_and_round_trip() {
        let r = rule("[fd00:1::5]/64 udp 5000:5010 7");
        assert_eq!(r.to_string(), "fd00:1::/64 udp 5000:5010 7");
        assert_eq!(rule(&r.to_string()), r);
        assert!(r.matches(17, "fd00:1::9".parse().unwrap(), 5010));
        assert!(!r.matches(17, "fd00:1::9".parse().unwrap(), 5011));
        for bad in [
            "",
            "10.0.0.1",
            "10.0.0.1 tcp 80 0",
            "10.0.0.1/33 5",
            "nope 5",
            "10.0.0.1 90:80 5",
            "10.0.0.1 tcp x 5",
        ] {
            assert!(
                MarkRule::parse(&bad.split_whitespace().collect::<Vec<_>>()).is_err(),
                "{bad}"
            );
        }
    }
}
