//! `[defense]` (the kernel's defence sysctls, against a conn table running
//! out of room) and `[limits]` (per-source new-conn rates, per-service conn
//! limits).
use std::net::SocketAddr;

use super::raw::{RawDefense, RawLimits};
use super::Validator;
use crate::dataplane::pressure::PressureConfig;
use crate::dataplane::ratelimit::SourceLimitConfig;
use crate::ipvs::defense::{DefenseConfig, DEFAULT_AMEMTHRESH, DEFAULT_AM_DROPRATE};
use crate::ipvs::{Protocol, ServiceKey};

/// Sources each worker tracks for `source_rate` unless told.
pub const DEFAULT_SOURCE_TABLE: u32 = 65_536;

const I32_MAX: i64 = i32::MAX as i64;

impl Validator {
    pub(super) fn pressure(
        &mut self,
        defense: Option<RawDefense>,
        limits: Option<RawLimits>,
    ) -> PressureConfig {
        let d = defense.unwrap_or_default();
        let mut level =
            |key: &str, v: Option<i64>| -> u8 { self.int(&format!("defense.{key}"), v, 0, 0, 3) };
        let drop_entry = level("drop_entry", d.drop_entry);
        let drop_packet = level("drop_packet", d.drop_packet);
        let secure_tcp = level("secure_tcp", d.secure_tcp);
        let defense = DefenseConfig {
            amemthresh: self.int(
                "defense.amemthresh",
                d.amemthresh,
                DEFAULT_AMEMTHRESH,
                0,
                I32_MAX,
            ),
            am_droprate: self.int(
                "defense.am_droprate",
                d.am_droprate,
                DEFAULT_AM_DROPRATE,
                1,
                I32_MAX,
            ),
            drop_entry,
            drop_packet,
            secure_tcp,
        };

        let l = limits.unwrap_or_default();
        let source = match l.source_rate {
            None => {
                for (key, v) in [
                    ("source_burst", l.source_burst),
                    ("source_table", l.source_table),
                    ("source_prefix_v4", l.source_prefix_v4),
                    ("source_prefix_v6", l.source_prefix_v6),
                ] {
                    if v.is_some() {
                        self.err(
                            format!("limits.{key}"),
                            "needs limits.source_rate, the new conns a second each source may open",
                        );
                    }
                }
                None
            }
            Some(r) => {
                let rate = self.int("limits.source_rate", Some(r), 1, 1, 1_000_000);
                Some(SourceLimitConfig {
                    rate,
                    burst: self.int("limits.source_burst", l.source_burst, rate, 1, 1_000_000),
                    table: self.int(
                        "limits.source_table",
                        l.source_table,
                        DEFAULT_SOURCE_TABLE,
                        64,
                        1 << 24,
                    ),
                    prefix_v4: self.int("limits.source_prefix_v4", l.source_prefix_v4, 32, 1, 32),
                    prefix_v6: self.int("limits.source_prefix_v6", l.source_prefix_v6, 64, 1, 128),
                })
            }
        };

        let mut service_limits: Vec<(ServiceKey, u64)> = Vec::new();
        for (i, s) in l.service.unwrap_or_default().into_iter().enumerate() {
            let key = |k: &str| format!("limits.service[{i}].{k}");
            let max = match s.max_conns {
                None => {
                    self.err(
                        key("max_conns"),
                        "required: the most conns the service may hold",
                    );
                    None
                }
                Some(m) => {
                    let v: u64 = self.int(&key("max_conns"), Some(m), 0, 1, i64::MAX);
                    (v > 0).then_some(v)
                }
            };
            let svc = match s.virtual_ {
                None => {
                    self.err(
                        key("virtual"),
                        "required: the service in ipvsadm's words, e.g. \"-t 198.18.0.100:80\"",
                    );
                    None
                }
                Some(v) => match service_words(&v) {
                    Ok(k) => Some(k),
                    Err(e) => {
                        self.err(key("virtual"), format!("{v:?}: {e}"));
                        None
                    }
                },
            };
            if let Some(k) = svc {
                if let Some(j) = service_limits.iter().position(|(x, _)| *x == k) {
                    self.err(
                        key("virtual"),
                        format!("{} already has a limit in limits.service[{j}]", k.words()),
                    );
                    continue;
                }
                if let Some(m) = max {
                    service_limits.push((k, m));
                }
            }
        }
        PressureConfig {
            defense,
            source,
            service_limits,
        }
    }
}

/// A service in ipvsadm's words, addresses as numbers: `-t ADDR:PORT`,
/// `-u ADDR:PORT`, `--sctp-service ADDR:PORT` (`[V6]:PORT`), `-f MARK`
/// or `-f MARK -6`.
fn service_words(s: &str) -> Result<ServiceKey, String> {
    const WANT: &str =
        "want -t|-u|--sctp-service ADDR:PORT or -f MARK [-6], with a numeric address";
    let w: Vec<&str> = s.split_whitespace().collect();
    let proto = match w.first().copied() {
        Some("-t") => Some(Protocol::Tcp),
        Some("-u") => Some(Protocol::Udp),
        Some("--sctp-service") => Some(Protocol::Sctp),
        Some("-f") => None,
        _ => return Err(WANT.into()),
    };
    match (proto, &w[1..]) {
        (Some(proto), [addr]) => {
            let a: SocketAddr = addr.parse().map_err(|_| WANT.to_string())?;
            Ok(ServiceKey::Addr {
                proto,
                addr: a.ip(),
                port: a.port(),
            })
        }
        (None, [mark, rest @ ..]) if rest.is_empty() || rest == ["-6"] => {
            let mark: u32 = mark
                .parse()
                .ok()
                .filter(|&m| m > 0)
                .ok_or_else(|| format!("{mark:?} is not a firewall mark (1..=4294967295)"))?;
            Ok(ServiceKey::Fwmark {
                mark,
                ipv6: !rest.is_empty(),
            })
        }
        _ => Err(WANT.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_words_take_ipvsadms_forms() {
        assert_eq!(
            service_words("-t 198.18.0.100:80"),
            Ok(ServiceKey::Addr {
                proto: Protocol::Tcp,
                addr: "198.18.0.100".parse().unwrap(),
                port: 80
            })
        );
        assert_eq!(
            service_words("--sctp-service [fd00::1]:3868").map(|k| k.words()),
            Ok("--sctp-service [fd00::1]:3868".to_string())
        );
        assert_eq!(
            service_words("-f 7 -6"),
            Ok(ServiceKey::Fwmark {
                mark: 7,
                ipv6: true
            })
        );
        for bad in [
            "",
            "-t",
            "-t web:80",
            "198.18.0.1:80",
            "-f 0",
            "-f 1 -4",
            "-u 1.2.3.4",
        ] {
            assert!(service_words(bad).is_err(), "{bad:?}");
        }
    }
}
