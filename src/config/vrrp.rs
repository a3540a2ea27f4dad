//! `[[vrrp]]`: virtual routers rvsd runs itself (VRRP version 3, RFC 5798,
//! over IPv4) to move its addresses between two directors.
//!
//! ```toml
//! [[vrrp]]
//! name = "VI_1"                 # what notify and /metrics call it (default "VI_<vrid>")
//! port = "lan"                  # the rvs port adverts leave and arrive on
//! vrid = 51
//! priority = 150                # 1..=255, 255 = the address owner (default 100)
//! advert_int = 1                # seconds, in steps of 0.01 (default 1)
//! preempt = true                # default true
//! unicast_peers = ["198.18.0.3"]  # optional: adverts go to these instead of 224.0.0.18
//! addresses = ["services", "198.19.0.1 on servers"]  # default ["services"]
//! notify = "/usr/local/bin/vrrp-notify"  # run as: notify INSTANCE NAME STATE PRIORITY
//! ```
//!
//! `services` stands for every VIP and FULLNAT local address of the
//! services, as they change; `ADDR on PORT` is an address rvs owns on PORT
//! only while master (e.g. the NAT real servers' default gateway).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use serde::Deserialize;

use super::{PortConfig, Validator};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVrrp {
    pub name: Option<String>,
    pub port: Option<String>,
    pub vrid: Option<i64>,
    pub priority: Option<i64>,
    /// Seconds, an integer or a float.
    pub advert_int: Option<toml::Value>,
    pub preempt: Option<bool>,
    pub unicast_peers: Option<Vec<String>>,
    pub addresses: Option<Vec<String>>,
    pub notify: Option<String>,
}

/// One virtual router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpConfig {
    pub name: String,
    /// The rvs port's name.
    pub port: String,
    pub vrid: u8,
    pub priority: u8,
    /// Centiseconds (RFC 5798's unit), 1..=4095.
    pub advert_int: u16,
    pub preempt: bool,
    /// Empty: adverts go to 224.0.0.18.
    pub unicast_peers: Vec<Ipv4Addr>,
    /// The instance moves every VIP and FULLNAT local address.
    pub services: bool,
    /// Addresses owned on the named port only while master.
    pub extra: Vec<(IpAddr, String)>,
    /// A shell command line; the instance name, state and priority follow
    /// it as arguments.
    pub notify: Option<String>,
}

/// The keyword for every service address in `addresses`.
const SERVICES: &str = "services";

impl Validator {
    pub(super) fn vrrp(&mut self, raw: Vec<RawVrrp>, ports: &[PortConfig]) -> Vec<VrrpConfig> {
        let mut out: Vec<VrrpConfig> = Vec::new();
        let mut names = HashSet::new();
        let mut vrids = HashSet::new();
        let mut moved: HashSet<IpAddr> = HashSet::new();
        let mut services_by: Option<String> = None;
        for (i, r) in raw.into_iter().enumerate() {
            let key = |k: &str| format!("vrrp[{i}].{k}");
            let vrid = match r.vrid {
                None => {
                    self.err(key("vrid"), "required: the virtual router id, 1 to 255");
                    0
                }
                Some(v) => self.int(&key("vrid"), Some(v), 0u8, 1, 255),
            };
            let name = match r.name {
                Some(n) if n.trim().is_empty() || n.contains(char::is_whitespace) => {
                    self.err(key("name"), format!("{n:?}: must be one word"));
                    n
                }
                Some(n) => n,
                None => format!("VI_{vrid}"),
            };
            if !names.insert(name.clone()) {
                self.err(key("name"), format!("{name:?} names another instance too"));
            }
            let port = match r.port {
                None => {
                    self.err(
                        key("port"),
                        "required: the port adverts leave and arrive on",
                    );
                    None
                }
                Some(p) => match ports.iter().find(|pc| pc.name == p) {
                    None => {
                        self.err(key("port"), format!("no port named {p:?}"));
                        None
                    }
                    Some(pc) => Some(pc),
                },
            };
            let primary = port.and_then(|pc| {
                pc.addresses.iter().find_map(|a| match a.addr {
                    IpAddr::V4(v4) => Some(v4),
                    IpAddr::V6(_) => None,
                })
            });
            if let (Some(pc), None) = (port, primary) {
                self.err(
                    key("port"),
                    format!(
                        "port {:?} has no IPv4 address: rvs speaks VRRP over IPv4 only (IPv6 addresses can still be moved by an IPv4 instance)",
                        pc.name
                    ),
                );
            }
            if let Some(pc) = port {
                if vrid != 0 && !vrids.insert((pc.name.clone(), vrid)) {
                    self.err(
                        key("vrid"),
                        format!("{vrid} is used by another instance on port {:?}", pc.name),
                    );
                }
            }
            let priority = self.int(&key("priority"), r.priority, 100u8, 1, 255);
            let preempt = r.preempt.unwrap_or(true);
            if priority == 255 && !preempt {
                self.err(
                    key("preempt"),
                    "priority 255 is the address owner, which always preempts (RFC 5798 §6.1): drop preempt = false or lower the priority",
                );
            }
            let advert_int = match r.advert_int {
                None => 100,
                Some(v) => self.advert_int(&key("advert_int"), &v),
            };
            let mut unicast_peers = Vec::new();
            for (j, s) in r.unicast_peers.unwrap_or_default().iter().enumerate() {
                let k = format!("vrrp[{i}].unicast_peers[{j}]");
                match s.trim().parse::<IpAddr>() {
                    Ok(IpAddr::V4(a))
                        if a.is_unspecified() || a.is_multicast() || a.is_broadcast() =>
                    {
                        self.err(k, format!("{a}: must be a unicast address"))
                    }
                    Ok(IpAddr::V4(a)) if Some(a) == primary => {
                        self.err(k, format!("{a} is this port's own address"))
                    }
                    Ok(IpAddr::V4(a)) => unicast_peers.push(a),
                    Ok(IpAddr::V6(a)) => self.err(
                        k,
                        format!("{a}: rvs speaks VRRP over IPv4 only; peers are IPv4 addresses"),
                    ),
                    Err(_) => self.err(k, format!("{s:?} is not an IP address")),
                }
            }
            let mut services = false;
            let mut extra = Vec::new();
            let addresses = r.addresses.unwrap_or_else(|| vec![SERVICES.to_owned()]);
            if addresses.is_empty() {
                self.err(
                    key("addresses"),
                    format!(
                        "must not be empty: list \"{SERVICES}\" and/or \"ADDR on PORT\" entries"
                    ),
                );
            }
            for (j, s) in addresses.iter().enumerate() {
                let k = format!("vrrp[{i}].addresses[{j}]");
                if s.trim() == SERVICES {
                    if let Some(other) = &services_by {
                        self.err(
                            k,
                            format!("\"{SERVICES}\" is moved by instance {other:?} already; one instance moves the service addresses"),
                        );
                    } else {
                        services_by = Some(name.clone());
                    }
                    services = true;
                    continue;
                }
                match self.extra_address(&k, s, ports) {
                    Some((a, _)) if !moved.insert(a) => self.err(k, format!("{a} is listed twice")),
                    Some(x) => extra.push(x),
                    None => {}
                }
            }
            let notify = match r.notify {
                Some(n) if n.trim().is_empty() => {
                    self.err(key("notify"), "must not be empty");
                    None
                }
                Some(n) if n.contains('\0') => {
                    self.err(key("notify"), "must not contain a NUL character");
                    None
                }
                n => n,
            };
            out.push(VrrpConfig {
                name,
                port: port.map(|p| p.name.clone()).unwrap_or_default(),
                vrid,
                priority,
                advert_int,
                preempt,
                unicast_peers,
                services,
                extra,
                notify,
            });
        }
        out
    }

    /// Seconds in steps of 0.01, 0.01 to 40.95 (the field's 12 bits of
    /// centiseconds).
    fn advert_int(&mut self, key: &str, v: &toml::Value) -> u16 {
        let secs = match v {
            toml::Value::Integer(i) => *i as f64,
            toml::Value::Float(f) => *f,
            _ => {
                self.err(key, "must be a number of seconds, e.g. 1 or 0.1");
                return 100;
            }
        };
        let cs = (secs * 100.0).round();
        if !(1.0..=4095.0).contains(&cs) || ((secs * 100.0) - cs).abs() > 1e-6 {
            self.err(
                key,
                format!("must be between 0.01 and 40.95 seconds in steps of 0.01 (VRRPv3 counts centiseconds), got {secs}"),
            );
            return 100;
        }
        cs as u16
    }

    /// "ADDR on PORT": an address that is not a port's own, in a subnet of PORT.
    fn extra_address(
        &mut self,
        key: &str,
        s: &str,
        ports: &[PortConfig],
    ) -> Option<(IpAddr, String)> {
        let mut words = s.split_whitespace();
        let (Some(addr), Some("on"), Some(port), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            self.err(
                key,
                format!("{s:?}: write \"{SERVICES}\" or \"ADDR on PORT\" (e.g. \"198.19.0.1 on servers\")"),
            );
            return None;
        };
        let Ok(a) = addr.parse::<IpAddr>() else {
            let hint = if addr.contains('/') {
                " (without a prefix length: the address takes its port's subnet)"
            } else {
                ""
            };
            self.err(key, format!("{addr:?} is not an IP address{hint}"));
            return None;
        };
        let Some(pc) = ports.iter().find(|p| p.name == port) else {
            self.err(key, format!("no port named {port:?}"));
            return None;
        };
        if ports.iter().flat_map(|p| &p.addresses).any(|i| i.addr == a) {
            self.err(
                key,
                format!("{a} is a port's own address, which rvs always owns"),
            );
            return None;
        }
        if !pc.addresses.iter().any(|i| i.contains(a)) {
            self.err(
                key,
                format!(
                    "{a} is in no subnet of port {port:?}: give the port an address in its subnet"
                ),
            );
            return None;
        }
        Some((a, port.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Config, ConfigErrors};
    use super::*;

    use super::super::tests::LAN_AND_SERVERS as BASE;

    fn parse(vrrp: &str) -> Result<Config, ConfigErrors> {
        Config::from_toml_str(&format!("{BASE}\n{vrrp}"))
    }

    /// The messages at `key`.
    fn errs_at(vrrp: &str, key: &str) -> Vec<String> {
        match parse(vrrp) {
            Ok(c) => panic!("expected errors, got {:#?}", c.vrrp),
            Err(ConfigErrors(v)) => v
                .into_iter()
                .filter(|e| e.key == key)
                .map(|e| e.message)
                .collect(),
        }
    }

    #[track_caller]
    fn assert_err(vrrp: &str, key: &str, needle: &str) {
        let m = errs_at(vrrp, key);
        assert_eq!(m.len(), 1, "want one error at {key}: {m:?}");
        assert!(
            m[0].contains(needle),
            "{:?} should mention {needle:?}",
            m[0]
        );
    }

    #[test]
    fn a_full_instance_and_the_defaults() {
        let c = parse(
            r#"
[[vrrp]]
name = "VI_1"
port = "lan"
vrid = 51
priority = 150
advert_int = 0.1
preempt = false
unicast_peers = ["198.18.0.3"]
addresses = ["services", "198.19.0.1 on servers", "fd00:19::1 on servers"]
notify = "/usr/local/bin/n --flag"

[[vrrp]]
port = "servers"
vrid = 7
addresses = ["198.19.0.100 on servers"]
"#,
        )
        .unwrap();
        assert_eq!(
            c.vrrp[0],
            VrrpConfig {
                name: "VI_1".into(),
                port: "lan".into(),
                vrid: 51,
                priority: 150,
                advert_int: 10,
                preempt: false,
                unicast_peers: vec![Ipv4Addr::new(198, 18, 0, 3)],
                services: true,
                extra: vec![
                    ("198.19.0.1".parse().unwrap(), "servers".into()),
                    ("fd00:19::1".parse().unwrap(), "servers".into()),
                ],
                notify: Some("/usr/local/bin/n --flag".into()),
            }
        );
        let d = &c.vrrp[1];
        assert_eq!(d.name, "VI_7");
        assert_eq!((d.priority, d.advert_int, d.preempt), (100, 100, true));
        assert!(!d.services && d.unicast_peers.is_empty() && d.notify.is_none());
        // Whole seconds as an integer; the default list is the services.
        let c = parse("[[vrrp]]\nport = \"lan\"\nvrid = 1\nadvert_int = 3\n").unwrap();
        assert_eq!(c.vrrp[0].advert_int, 300);
        assert!(c.vrrp[0].services && c.vrrp[0].extra.is_empty());
        assert!(parse("").unwrap().vrrp.is_empty());
    }

    #[test]
    fn bad_values_get_clear_errors() {
        assert_err("[[vrrp]]\nport = \"lan\"\n", "vrrp[0].vrid", "required");
        assert_err(
            "[[vrrp]]\nport = \"lan\"\nvrid = 0\n",
            "vrrp[0].vrid",
            "between 1 and 255",
        );
        assert_err(
            "[[vrrp]]\nport = \"lan\"\nvrid = 256\n",
            "vrrp[0].vrid",
            "between 1 and 255",
        );
        assert_err("[[vrrp]]\nvrid = 1\n", "vrrp[0].port", "required");
        assert_err(
            "[[vrrp]]\nport = \"x\"\nvrid = 1\n",
            "vrrp[0].port",
            "no port named \"x\"",
        );
        assert_err(
            "[[vrrp]]\nport = \"v6only\"\nvrid = 1\n",
            "vrrp[0].port",
            "IPv4 only",
        );
        let p = "[[vrrp]]\nport = \"lan\"\nvrid = 1\n";
        assert_err(
            &format!("{p}priority = 0\n"),
            "vrrp[0].priority",
            "between 1 and 255",
        );
        assert_err(
            &format!("{p}priority = 255\npreempt = false\n"),
            "vrrp[0].preempt",
            "always preempts",
        );
        for bad in ["0", "0.005", "41", "0.123", "-1", "\"1s\""] {
            assert_err(
                &format!("{p}advert_int = {bad}\n"),
                "vrrp[0].advert_int",
                "seconds",
            );
        }
        assert_err(
            &format!("{p}unicast_peers = [\"fd00::3\"]\n"),
            "vrrp[0].unicast_peers[0]",
            "IPv4 only",
        );
        assert_err(
            &format!("{p}unicast_peers = [\"198.18.0.2\"]\n"),
            "vrrp[0].unicast_peers[0]",
            "own address",
        );
        assert_err(
            &format!("{p}unicast_peers = [\"224.0.0.18\"]\n"),
            "vrrp[0].unicast_peers[0]",
            "unicast",
        );
        assert_err(
            &format!("{p}unicast_peers = [\"peer\"]\n"),
            "vrrp[0].unicast_peers[0]",
            "not an IP address",
        );
        assert_err(
            &format!("{p}addresses = []\n"),
            "vrrp[0].addresses",
            "must not be empty",
        );
        assert_err(
            &format!("{p}addresses = [\"198.19.0.1\"]\n"),
            "vrrp[0].addresses[0]",
            "ADDR on PORT",
        );
        assert_err(
            &format!("{p}addresses = [\"198.19.0.1/24 on servers\"]\n"),
            "vrrp[0].addresses[0]",
            "without a prefix length",
        );
        assert_err(
            &format!("{p}addresses = [\"198.19.0.1 on nowhere\"]\n"),
            "vrrp[0].addresses[0]",
            "no port named",
        );
        assert_err(
            &format!("{p}addresses = [\"10.0.0.1 on servers\"]\n"),
            "vrrp[0].addresses[0]",
            "no subnet of port",
        );
        assert_err(
            &format!("{p}addresses = [\"198.19.0.2 on servers\"]\n"),
            "vrrp[0].addresses[0]",
            "own address",
        );
        assert_err(
            &format!("{p}notify = \" \"\n"),
            "vrrp[0].notify",
            "must not be empty",
        );
        assert_err(&format!("{p}name = \"a b\"\n"), "vrrp[0].name", "one word");
    }

    #[test]
    fn instances_do_not_share_a_vrid_a_name_the_services_or_an_address() {
        let one = "[[vrrp]]\nport = \"lan\"\nvrid = 1\n";
        assert_err(
            &format!("{one}{one}"),
            "vrrp[1].vrid",
            "used by another instance",
        );
        assert_err(&format!("{one}{one}"), "vrrp[1].name", "another instance");
        assert_err(
            &format!("{one}[[vrrp]]\nport = \"lan\"\nvrid = 2\n"),
            "vrrp[1].addresses[0]",
            "one instance moves the service addresses",
        );
        // The same VRID on another port is another virtual router.
        let c = parse(&format!(
            "{one}[[vrrp]]\nname = \"other\"\nport = \"servers\"\nvrid = 1\naddresses = [\"198.19.0.1 on servers\"]\n"
        ))
        .unwrap();
        assert_eq!(c.vrrp.len(), 2);
        let x = "addresses = [\"198.19.0.1 on servers\"]\n";
        assert_err(
            &format!(
                "[[vrrp]]\nport = \"lan\"\nvrid = 1\n{x}[[vrrp]]\nport = \"lan\"\nvrid = 2\n{x}"
            ),
            "vrrp[1].addresses[0]",
            "listed twice",
        );
        // Unknown keys are refused by name.
        let e = parse(&format!("{one}advert = 1\n")).unwrap_err();
        assert!(e.to_string().contains("advert"), "{e}");
    }
}
