//! `[health]`: where health checks leave from (the exception path) and
//! `[[health.check]]`, one per service, in ldirectord's words.
use std::net::IpAddr;

use super::raw::RawHealth;
use super::{PortConfig, Validator};
use crate::health::check::{split_words, CheckConfig, Transport};

/// The kernel side of the exception path when the file names none.
pub const DEFAULT_TAP: &str = "rvs-hc0";
/// The policy-routing table the sources' routes go in.
pub const DEFAULT_TABLE: u32 = 3260;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// Addresses checks leave from: rvs owns them on the dataplane and
    /// hands their traffic to the host's kernel over a tap. Empty: no
    /// exception path (checks use the host's own routes).
    pub sources: Vec<IpAddr>,
    pub tap: String,
    pub table: u32,
    pub checks: Vec<HealthCheck>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            sources: Vec::new(),
            tap: DEFAULT_TAP.into(),
            table: DEFAULT_TABLE,
            checks: Vec::new(),
        }
    }
}

/// One `[[health.check]]`: the words of `rvsadm --check-set` and
/// `--sorry-set` for its service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// ipvsadm's words for the service: `-t 198.18.0.100:80`.
    pub service: Vec<String>,
    /// `key=value` words.
    pub words: Vec<String>,
    /// `-r ADDR:PORT -b` (the words after the service of --sorry-set).
    pub fallback: Option<Vec<String>>,
}

/// ldirectord's forwarding names, and DPVS's fullnat.
fn fwd_switch(name: &str) -> Option<&'static str> {
    Some(match name {
        "gate" | "dr" => "-g",
        "masq" | "nat" => "-m",
        "ipip" | "tun" => "-i",
        "fullnat" => "-b",
        _ => return None,
    })
}

impl Validator {
    pub(super) fn health(&mut self, raw: RawHealth, ports: &[PortConfig]) -> HealthConfig {
        let mut c = HealthConfig::default();
        for (i, s) in raw.sources.unwrap_or_default().iter().enumerate() {
            let key = format!("health.sources[{i}]");
            match s.parse::<IpAddr>() {
                Ok(a) if c.sources.iter().any(|b| b.is_ipv4() == a.is_ipv4()) => {
                    self.err(key, format!("{a}: one source per address family"))
                }
                Ok(a)
                    if ports
                        .iter()
                        .any(|p| p.addresses.iter().any(|x| x.addr == a)) =>
                {
                    self.err(
                        key,
                        format!("{a} is a port's address; checks need one of their own"),
                    )
                }
                Ok(a) => c.sources.push(a),
                Err(_) => self.err(key, format!("{s:?} is not an IP address")),
            }
        }
        if let Some(t) = raw.tap {
            if t.is_empty()
                || t.len() > 15
                || !t
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
            {
                self.err(
                    "health.tap",
                    format!(
                        "{t:?}: want an interface name of 1 to 15 letters, digits, '-', '_' or '.'"
                    ),
                );
            } else {
                c.tap = t;
            }
        }
        c.table = self.int("health.table", raw.table, DEFAULT_TABLE, 1, 0xffff_fff0);
        for (i, t) in raw.check.unwrap_or_default().into_iter().enumerate() {
            if let Some(check) = self.check(i, t) {
                c.checks.push(check);
            }
        }
        c
    }

    fn check(&mut self, i: usize, t: toml::Table) -> Option<HealthCheck> {
        let key = |k: &str| format!("health.check[{i}].{k}");
        let mut service = None;
        let mut fallback = None;
        let mut words = Vec::new();
        for (k, v) in t {
            let text = match &v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => (if *b { "yes" } else { "no" }).to_string(),
                _ => {
                    self.err(key(&k), "want a string, a number or a boolean");
                    continue;
                }
            };
            match k.as_str() {
                "virtual" => service = Some(text),
                "fallback" => fallback = Some(text),
                _ => words.push(format!("{k}={text}")),
            }
        }
        let Some(service) = service else {
            self.err(
                key("virtual"),
                "required: the service in ipvsadm's words, e.g. \"-t 198.18.0.100:80\"",
            );
            return None;
        };
        let service = match split_words(&service) {
            Ok(w)
                if matches!(
                    w.first().map(String::as_str),
                    Some("-t" | "-u" | "-f" | "--sctp-service")
                ) && w.len() >= 2 =>
            {
                w
            }
            _ => {
                self.err(
                    key("virtual"),
                    format!("{service:?}: want -t|-u ADDR:PORT or -f MARK"),
                );
                return None;
            }
        };
        let transport = match service[0].as_str() {
            "-t" => Transport::Tcp,
            "-u" => Transport::Udp,
            _ => Transport::Other,
        };
        if let Err(e) = CheckConfig::parse(words.iter().map(String::as_str), transport) {
            self.err(format!("health.check[{i}]"), e);
            return None;
        }
        let fallback = match fallback {
            None => None,
            Some(f) => {
                let w: Vec<&str> = f.split_whitespace().collect();
                let switch = match w.get(1) {
                    None => Some("-g"),
                    Some(m) => fwd_switch(m),
                };
                match (w.first(), switch, w.len() <= 2) {
                    (Some(addr), Some(sw), true) => {
                        Some(vec!["-r".into(), addr.to_string(), sw.into()])
                    }
                    _ => {
                        self.err(
                            key("fallback"),
                            format!("{f:?}: want ADDR:PORT [gate|masq|ipip|fullnat]"),
                        );
                        return None;
                    }
                }
            }
        };
        Some(HealthCheck {
            service,
            words,
            fallback,
        })
    }
}
