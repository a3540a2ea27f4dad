//! `[announce]`: health-gated routes to the VIPs in a kernel table of the
//! host, for a routing daemon (BIRD, FRR) to announce by BGP. See
//! src/announce for what is announced when.
use std::time::Duration;

use serde::Deserialize;

use super::health::HealthConfig;
use super::{PortConfig, Validator};

/// The table the VIP routes go in when the file names none: the one after
/// the health checks' default.
pub const DEFAULT_TABLE: u32 = 3261;
/// How long rvsd keeps forwarding after it took its routes out at stop.
pub const DEFAULT_WITHDRAW_WAIT_MS: u32 = 1000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAnnounce {
    pub table: Option<i64>,
    pub port: Option<String>,
    pub withdraw_wait_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceConfig {
    /// The kernel routing table the routes go in; nothing looks it up, the
    /// routing daemon only reads it.
    pub table: u32,
    /// The dataplane port the VIPs are reached on: its link going down
    /// withdraws them.
    pub port: String,
    /// At an orderly stop, the time between taking the routes out and
    /// stopping the dataplane, for the routing daemon's withdrawal to
    /// reach its peers while its session still runs.
    pub withdraw_wait: Duration,
}

impl Validator {
    pub(super) fn announce(
        &mut self,
        raw: Option<RawAnnounce>,
        ports: &[PortConfig],
        health: &HealthConfig,
    ) -> Option<AnnounceConfig> {
        let raw = raw?;
        if health.sources.is_empty() {
            self.err(
                "announce",
                "needs [health] sources: the routes go in a table on the exception path's tap, and the routing daemon's BGP session leaves from a source address",
            );
        }
        let table = self.int("announce.table", raw.table, DEFAULT_TABLE, 1, 0xffff_fff0);
        if (252..=255).contains(&table) {
            self.err(
                "announce.table",
                format!("{table} is one of the kernel's own tables (252 compat, 253 default, 254 main, 255 local); the VIP routes need a table of their own"),
            );
        } else if table == health.table && !health.sources.is_empty() {
            self.err(
                "announce.table",
                format!("{table} is health.table, which routes the checks' traffic; the VIP routes need a table of their own"),
            );
        }
        let port = match raw.port {
            Some(p) if ports.iter().any(|c| c.name == p) => p,
            Some(p) => {
                self.err("announce.port", format!("no port named {p:?}"));
                String::new()
            }
            None if ports.len() == 1 => ports[0].name.clone(),
            None => {
                self.err(
                    "announce.port",
                    "required with more than one port: the port the VIPs are reached on (its link going down withdraws them)",
                );
                String::new()
            }
        };
        let wait: u32 = self.int(
            "announce.withdraw_wait_ms",
            raw.withdraw_wait_ms,
            DEFAULT_WITHDRAW_WAIT_MS,
            0,
            60_000,
        );
        Some(AnnounceConfig {
            table,
            port,
            withdraw_wait: Duration::from_millis(u64::from(wait)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    use super::super::tests::LAN_AND_SERVERS as TWO_PORTS;
    const SOURCES: &str = "[health]\nsources = [\"198.18.0.12\"]\n";

    fn only_error(extra: &str) -> (String, String) {
        let errs = Config::from_toml_str(&format!("{TWO_PORTS}\n{extra}"))
            .expect_err("want an error")
            .0;
        assert_eq!(errs.len(), 1, "want one error, got {errs:#?}");
        (errs[0].key.clone(), errs[0].message.clone())
    }

    #[test]
    fn announce_is_off_unless_asked_and_has_defaults() {
        let c = Config::from_toml_str(TWO_PORTS).unwrap();
        assert_eq!(c.announce, None);
        let c = Config::from_toml_str(&format!(
            "{TWO_PORTS}\n{SOURCES}\n[announce]\nport = \"lan\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.announce,
            Some(AnnounceConfig {
                table: 3261,
                port: "lan".into(),
                withdraw_wait: Duration::from_secs(1),
            })
        );
        let c = Config::from_toml_str(&format!(
            "{TWO_PORTS}\n{SOURCES}\n[announce]\nport = \"servers\"\ntable = 100\nwithdraw_wait_ms = 0\n"
        ))
        .unwrap();
        let a = c.announce.unwrap();
        assert_eq!(
            (a.table, a.port.as_str(), a.withdraw_wait),
            (100, "servers", Duration::ZERO)
        );
    }

    #[test]
    fn the_sample_file_documents_announce() {
        let sample = include_str!("../../conf/rvsd.toml");
        for key in [
            "# [announce]",
            "# port =",
            "# table = 3261",
            "# withdraw_wait_ms =",
        ] {
            assert!(sample.contains(key), "conf/rvsd.toml lacks {key}");
        }
    }

    #[test]
    fn one_port_is_the_announce_port_unless_named() {
        let one = "[dataplane]\nworkers = [1]\n[[port]]\nname = \"p0\"\ndevargs = \"net_null0\"\n";
        let c = Config::from_toml_str(&format!("{one}\n{SOURCES}\n[announce]\n")).unwrap();
        assert_eq!(c.announce.unwrap().port, "p0");
    }

    #[test]
    fn misconfigured_announce_is_refused_with_its_key() {
        for (extra, key, needle) in [
            (
                "[announce]\nport = \"lan\"",
                "announce",
                "needs [health] sources",
            ),
            (
                &format!("{SOURCES}[announce]\n") as &str,
                "announce.port",
                "required with more than one port",
            ),
            (
                &format!("{SOURCES}[announce]\nport = \"wan\""),
                "announce.port",
                "no port named \"wan\"",
            ),
            (
                &format!("{SOURCES}[announce]\nport = \"lan\"\ntable = 254"),
                "announce.table",
                "254 main",
            ),
            (
                &format!("{SOURCES}[announce]\nport = \"lan\"\ntable = 0"),
                "announce.table",
                "between 1 and",
            ),
            (
                &format!("{SOURCES}[announce]\nport = \"lan\"\ntable = 3260"),
                "announce.table",
                "is health.table",
            ),
            (
                &format!("{SOURCES}[announce]\nport = \"lan\"\nwithdraw_wait_ms = 60001"),
                "announce.withdraw_wait_ms",
                "between 0 and 60000",
            ),
            (
                &format!("{SOURCES}[announce]\nport = \"lan\"\nrouter = \"bird\""),
                "announce.router",
                "unknown field `router`",
            ),
        ] {
            let (k, m) = only_error(extra);
            assert_eq!(k, key, "{extra}: {m}");
            assert!(m.contains(needle), "{extra}: {m:?} lacks {needle:?}");
        }
    }
}
