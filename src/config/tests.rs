use super::*;

use crate::dataplane::pressure::PressureConfig;
use crate::dataplane::ratelimit::SourceLimitConfig;
use crate::ipvs::defense::DefenseConfig;
use crate::ipvs::{Protocol, ServiceKey};
use crate::sessionlog::writer::Sink;

const SAMPLE: &str = include_str!("../../conf/rvsd.toml");

const MINIMAL: &str = r#"
[dataplane]
workers = [1]

[[port]]
name = "p0"
devargs = "net_null0"
"#;

/// A valid base with addresses on two ports, for route tests to extend.
const TWO_PORTS: &str = r#"
[dataplane]
workers = [1, 2]

[[port]]
name = "wan"
devargs = "net_af_packet0,iface=veth0"
addresses = ["198.18.0.1/24", "fd00:1::1/64"]

[[port]]
name = "lan"
devargs = "0000:01:00.0"
addresses = ["10.0.0.1/24"]
"#;

/// Ports "lan" and "servers" (IPv4 and IPv6) and an IPv6-only one: the
/// base of the [[vrrp]] and [announce] tests.
pub(super) const LAN_AND_SERVERS: &str = r#"
[dataplane]
workers = [1]

[[port]]
name = "lan"
devargs = "net_null0"
addresses = ["198.18.0.2/24"]

[[port]]
name = "servers"
devargs = "net_null1"
addresses = ["198.19.0.2/24", "fd00:19::2/64"]

[[port]]
name = "v6only"
devargs = "net_null2"
addresses = ["fd00:1::2/64"]
"#;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn errors(toml: &str) -> Vec<ConfigError> {
    match Config::from_toml_str(toml) {
        Ok(c) => panic!("expected errors, got {c:#?}"),
        Err(ConfigErrors(v)) => {
            assert!(!v.is_empty(), "Err with no errors");
            v
        }
    }
}

/// Asserts that exactly one error has `key` and that it mentions `needle`.
#[track_caller]
fn assert_error(toml: &str, key: &str, needle: &str) {
    let errs = errors(toml);
    let at_key: Vec<_> = errs.iter().filter(|e| e.key == key).collect();
    assert_eq!(at_key.len(), 1, "want one error at {key:?}, got {errs:#?}");
    assert!(
        at_key[0].message.contains(needle),
        "error at {key:?} should mention {needle:?}: {:?}",
        at_key[0].message
    );
}

#[track_caller]
fn assert_only_error(toml: &str, key: &str, needle: &str) {
    let errs = errors(toml);
    assert_eq!(errs.len(), 1, "want exactly one error, got {errs:#?}");
    assert_error(toml, key, needle);
}

fn with_route(route: &str) -> String {
    format!("{TWO_PORTS}\n[[route]]\n{route}\n")
}

#[test]
fn sample_file_is_valid_and_says_what_it_means() {
    let c = Config::from_toml_str(SAMPLE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.eal.args, ["--no-huge", "--no-shconf", "-m", "256"]);
    assert_eq!(
        c.dataplane,
        DataplaneConfig {
            main_lcore: 0,
            workers: vec![1],
            burst: 32,
            mbufs: 8191,
            mbuf_cache: 256,
            neighbours: 4096,
            conns: None,
        }
    );
    assert_eq!(
        c.ports,
        [PortConfig {
            name: "wan".into(),
            devargs: "net_af_packet0,iface=veth0".into(),
            queues: 1,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            promiscuous: true,
            mtu: Some(1500),
            mac: None,
            accept_other_mac: false,
            rss: RssMode::Device,
            flow_steering: false,
            addresses: vec![
                IfAddr {
                    addr: ip("198.18.0.1"),
                    prefix_len: 24
                },
                IfAddr {
                    addr: ip("fd00:1::1"),
                    prefix_len: 64
                },
            ],
        }]
    );
    assert_eq!(
        c.routes,
        [RouteConfig {
            prefix: "0.0.0.0/0".parse().unwrap(),
            via: Some(ip("198.18.0.254")),
            port: "wan".into(),
        }]
    );
    assert_eq!(c.ctl.socket, Path::new("/run/rvsd/rvsd.sock"));
    assert_eq!(c.metrics.listen, Some("127.0.0.1:9360".parse().unwrap()));
    assert_eq!(c.log.level, LogLevel::Info);
    assert_eq!(c.icmp, crate::netstack::IcmpLimits::default());
}

#[test]
fn sample_file_documents_every_key() {
    // Each key of the schema must appear in the sample, active or commented.
    for key in [
        "[eal]",
        "args =",
        "[dataplane]",
        "main_lcore =",
        "workers =",
        "burst =",
        "mbufs =",
        "mbuf_cache =",
        "neighbours =",
        "conns =",
        "[[port]]",
        "name =",
        "devargs =",
        "queues =",
        "rss =",
        "flow_steering =",
        "rx_descriptors =",
        "tx_descriptors =",
        "promiscuous =",
        "accept_other_mac =",
        "mtu =",
        "mac =",
        "addresses =",
        "[[route]]",
        "prefix =",
        "via =",
        "port =",
        "[[neighbour]]",
        "ip =",
        "[ctl]",
        "socket =",
        "rules =",
        "persist =",
        "[metrics]",
        "listen =",
        "[log]",
        "level =",
        "[health]",
        "sources =",
        "tap =",
        "table =",
        "[[health.check]]",
        "virtual =",
        "fallback =",
        "[session_log]",
        "file =",
        "syslog =",
        "facility =",
        "rate =",
        "ring =",
        "[icmp]",
        "icmp_ratelimit =",
        "icmp_msgs_per_sec =",
        "icmp_msgs_burst =",
        "icmp_ratemask =",
        "icmpv6_ratelimit =",
        "icmpv6_ratemask =",
        "[defense]",
        "amemthresh =",
        "drop_entry =",
        "drop_packet =",
        "am_droprate =",
        "secure_tcp =",
        "[limits]",
        "source_rate =",
        "source_burst =",
        "source_table =",
        "source_prefix_v4 =",
        "source_prefix_v6 =",
        "[[limits.service]]",
        "max_conns =",
        "[[vrrp]]",
        "advert_int =",
        "unicast_peers =",
        "notify =",
    ] {
        assert!(SAMPLE.contains(key), "conf/rvsd.toml lacks {key}");
    }
}

#[test]
fn sample_file_commented_examples_are_valid() {
    // Uncommenting the example blocks must give a valid file too.
    let uncommented: String = SAMPLE
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest.starts_with('[')
                    || rest.split_once(" = ").is_some_and(|(k, _)| {
                        !k.contains(' ') && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    }) =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let c = Config::from_toml_str(&uncommented).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.ports.len(), 2);
    assert_eq!((c.vrrp.len(), c.vrrp[0].advert_int), (1, 100));
    assert_eq!(c.vrrp[0].extra, [(ip("10.0.0.254"), "lan".to_string())]);
    assert_eq!(c.ports[1].devargs, "0000:01:00.0");
    assert_eq!(c.ports[1].mtu, Some(9000));
    assert_eq!(c.routes.len(), 2);
    assert_eq!(c.routes[1].prefix.to_string(), "::/0");
    assert_eq!(c.routes[1].port, "wan");
    assert_eq!(c.health.sources, [ip("198.18.0.250")]);
    assert_eq!(c.health.checks.len(), 1);
    assert_eq!(c.health.checks[0].service, ["-t", "198.18.0.100:80"]);
    let log = c.session_log.as_ref().expect("[session_log]");
    assert_eq!(
        log.writer.sink,
        Sink::File("/var/log/rvs/sessions.log".into())
    );
    assert_eq!((log.writer.rate, log.ring), (10_000, 16_384));
    assert_eq!(
        c.health.checks[0].fallback.as_deref(),
        Some(&["-r".to_string(), "198.18.0.9:80".into(), "-b".into()][..])
    );
    assert!(c.health.checks[0]
        .words
        .contains(&"receive=real server".to_string()));
    assert_eq!(c.dataplane.conns, Some(262_144));
    assert_eq!(c.pressure.defense, DefenseConfig::default());
    assert_eq!(
        c.pressure.source,
        Some(SourceLimitConfig {
            rate: 100,
            burst: 200,
            table: 65_536,
            prefix_v4: 32,
            prefix_v6: 64,
        })
    );
    assert_eq!(
        c.pressure.service_limits,
        [(
            ServiceKey::Addr {
                proto: Protocol::Tcp,
                addr: ip("198.18.0.100"),
                port: 80
            },
            100_000
        )]
    );
}

#[test]
fn defense_and_limits_are_read_with_the_kernels_levels() {
    let c = Config::from_toml_str(&format!(
        "{MINIMAL}\n[defense]\namemthresh = 256\ndrop_entry = 1\ndrop_packet = 3\nam_droprate = 4\nsecure_tcp = 2\n\
         [limits]\nsource_rate = 50\nsource_prefix_v6 = 56\n\
         [[limits.service]]\nvirtual = \"-u [fd00::1]:53\"\nmax_conns = 10\n\
         [[limits.service]]\nvirtual = \"-f 7\"\nmax_conns = 20\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.pressure.defense,
        DefenseConfig {
            amemthresh: 256,
            am_droprate: 4,
            drop_entry: 1,
            drop_packet: 3,
            secure_tcp: 2,
        }
    );
    let s = c.pressure.source.unwrap();
    assert_eq!(
        (s.rate, s.burst, s.table, s.prefix_v4, s.prefix_v6),
        (50, 50, 65_536, 32, 56)
    );
    let keys: Vec<String> = c
        .pressure
        .service_limits
        .iter()
        .map(|(k, m)| format!("{} {m}", k.words()))
        .collect();
    assert_eq!(keys, ["-u [fd00::1]:53 10", "-f 7 20"]);
    // Nothing set: the kernel's defaults, no limits.
    let c = Config::from_toml_str(MINIMAL).unwrap();
    assert_eq!(c.pressure, PressureConfig::default());
    assert_eq!(c.dataplane.conns, None);
}

#[test]
fn defense_and_limits_errors_name_their_keys() {
    for (extra, key, needle) in [
        ("[defense]\ndrop_entry = 4", "defense.drop_entry", "between 0 and 3"),
        ("[defense]\nsecure_tcp = -1", "defense.secure_tcp", "between 0 and 3"),
        ("[defense]\nam_droprate = 0", "defense.am_droprate", "between 1 and"),
        ("[defense]\namemthresh = 3000000000", "defense.amemthresh", "between 0 and"),
        ("[defense]\ndrop_enrty = 1", "defense.drop_enrty", "unknown field"),
        ("[defense]\ndrop_entry = \"yes\"", "defense.drop_entry", "expected an integer"),
        ("[limits]\nsource_burst = 5", "limits.source_burst", "needs limits.source_rate"),
        ("[limits]\nsource_rate = 0", "limits.source_rate", "between 1 and 1000000"),
        ("[limits]\nsource_rate = 5\nsource_prefix_v4 = 33", "limits.source_prefix_v4", "between 1 and 32"),
        ("[limits]\nsource_rate = 5\nsource_table = 10", "limits.source_table", "between 64 and"),
        ("[[limits.service]]\nmax_conns = 5", "limits.service[0].virtual", "required"),
        ("[[limits.service]]\nvirtual = \"-t 10.0.0.1:80\"", "limits.service[0].max_conns", "required"),
        ("[[limits.service]]\nvirtual = \"10.0.0.1:80\"\nmax_conns = 5", "limits.service[0].virtual", "want -t|-u"),
        ("[[limits.service]]\nvirtual = \"-t 10.0.0.1:80\"\nmax_conns = 0", "limits.service[0].max_conns", "between 1 and"),
        (
            "[[limits.service]]\nvirtual = \"-t 10.0.0.1:80\"\nmax_conns = 5\n[[limits.service]]\nvirtual = \"-t 10.0.0.1:80\"\nmax_conns = 6",
            "limits.service[1].virtual",
            "already has a limit in limits.service[0]",
        ),
        ("[dataplane]\nconns = 100", "dataplane.conns", "between 1024 and 134217728"),
    ] {
        let toml = if extra.starts_with("[dataplane]") {
            MINIMAL.replace("[dataplane]", &format!("{extra}\n"))
        } else {
            format!("{MINIMAL}\n{extra}\n")
        };
        assert_error(&toml, key, needle);
    }
}

#[test]
fn health_errors_name_their_keys() {
    let base = MINIMAL;
    for (extra, key, needle) in [
        ("[health]\nsources = [\"nope\"]", "health.sources[0]", "not an IP address"),
        (
            "[health]\nsources = [\"10.0.0.9\", \"10.0.0.8\"]",
            "health.sources[1]",
            "one source per address family",
        ),
        ("[health]\ntap = \"a very long tap name\"", "health.tap", "interface name"),
        ("[[health.check]]\nchecktype = \"connect\"", "health.check[0].virtual", "required"),
        ("[[health.check]]\nvirtual = \"10.0.0.1:80\"", "health.check[0].virtual", "want -t|-u"),
        (
            "[[health.check]]\nvirtual = \"-t 10.0.0.1:80\"\nchecktype = \"smtp\"",
            "health.check[0]",
            "checktype=smtp",
        ),
        (
            "[[health.check]]\nvirtual = \"-t 10.0.0.1:80\"\nfallback = \"10.0.0.9:80 carrier-pigeon\"",
            "health.check[0].fallback",
            "gate|masq|ipip|fullnat",
        ),
        (
            "[[health.check]]\nvirtual = \"-t 10.0.0.1:80\"\nrise = [1]",
            "health.check[0].rise",
            "want a string",
        ),
    ] {
        assert_error(&format!("{base}\n{extra}\n"), key, needle);
    }
}

#[test]
fn minimal_config_gets_defaults() {
    let c = Config::from_toml_str(MINIMAL).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.eal.args.is_empty());
    assert_eq!(
        c.dataplane,
        DataplaneConfig {
            main_lcore: 0,
            workers: vec![1],
            burst: DEFAULT_BURST,
            mbufs: DEFAULT_MBUFS,
            mbuf_cache: DEFAULT_MBUF_CACHE,
            neighbours: DEFAULT_NEIGHBOURS,
            conns: None,
        }
    );
    assert_eq!((c.dataplane.burst, c.dataplane.mbufs), (32, 8191));
    assert_eq!(
        (c.dataplane.mbuf_cache, c.dataplane.neighbours),
        (256, 4096)
    );
    assert_eq!(
        c.ports,
        [PortConfig {
            name: "p0".into(),
            devargs: "net_null0".into(),
            queues: 1,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            promiscuous: true,
            mtu: None,
            mac: None,
            addresses: vec![],
            accept_other_mac: false,
            rss: RssMode::Device,
            flow_steering: false,
        }]
    );
    assert!(c.routes.is_empty());
    assert_eq!(c.ctl.socket, Path::new("/run/rvsd.sock"));
    assert_eq!(c.metrics.listen, Some("127.0.0.1:9360".parse().unwrap()));
    assert_eq!(c.log.level, LogLevel::Info);
}

#[test]
fn queues_default_to_worker_count() {
    let c = Config::from_toml_str(&MINIMAL.replace("[1]", "[1, 2, 5]")).unwrap();
    assert_eq!(c.ports[0].queues, 3);
}

#[test]
fn extreme_valid_values_are_accepted() {
    let c = Config::from_toml_str(
        r#"
[dataplane]
main_lcore = 1023
workers = [0, 1022]
burst = 256
mbufs = 1023
mbuf_cache = 512
neighbours = 1048576
[[port]]
name = "A.b_c-01234567890123456789012345"
devargs = "net_tap0,iface=rvs0"
queues = 2
rx_descriptors = 32768
tx_descriptors = 64
promiscuous = false
mtu = 68
addresses = ["0.0.0.1/0", "::2/0", "192.0.2.1/32"]
[metrics]
listen = "[::1]:1"
[log]
level = "trace"
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.dataplane.main_lcore, 1023);
    assert_eq!(c.dataplane.workers, [0, 1022]);
    assert_eq!(c.dataplane.mbuf_cache, 512);
    assert_eq!(c.ports[0].name.len(), 32);
    assert_eq!(c.ports[0].queues, 2);
    assert!(!c.ports[0].promiscuous);
    assert_eq!(c.ports[0].mtu, Some(68));
    assert_eq!(c.metrics.listen, Some("[::1]:1".parse().unwrap()));
    assert_eq!(c.log.level, LogLevel::Trace);
}

#[test]
fn metrics_can_be_disabled() {
    for off in ["\"\"", "\"off\""] {
        let c = Config::from_toml_str(&format!("{MINIMAL}\n[metrics]\nlisten = {off}\n")).unwrap();
        assert_eq!(c.metrics.listen, None, "listen = {off}");
    }
}

#[test]
fn routes_resolve_port_from_connected_subnet() {
    let c = Config::from_toml_str(&format!(
        "{TWO_PORTS}
[[route]]
prefix = \"0.0.0.0/0\"
via = \"198.18.0.254\"
[[route]]
prefix = \"172.16.0.0/12\"
via = \"10.0.0.254\"
[[route]]
prefix = \"2001:db8::/32\"
via = \"fd00:1::fe\"
[[route]]
prefix = \"192.0.2.0/24\"
port = \"lan\"
[[route]]
prefix = \"203.0.113.0/24\"
via = \"100.64.0.1\"
port = \"lan\"
"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let got: Vec<(String, Option<IpAddr>, &str)> = c
        .routes
        .iter()
        .map(|r| (r.prefix.to_string(), r.via, r.port.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("0.0.0.0/0".into(), Some(ip("198.18.0.254")), "wan"),
            ("172.16.0.0/12".into(), Some(ip("10.0.0.254")), "lan"),
            ("2001:db8::/32".into(), Some(ip("fd00:1::fe")), "wan"),
            ("192.0.2.0/24".into(), None, "lan"),
            ("203.0.113.0/24".into(), Some(ip("100.64.0.1")), "lan"),
        ]
    );
}

#[test]
fn workers_errors() {
    assert_only_error(
        "[[port]]\nname='a'\ndevargs='x'\n",
        "dataplane.workers",
        "required",
    );
    assert_only_error(&MINIMAL.replace("[1]", "[]"), "dataplane.workers", "empty");
    assert_only_error(
        &MINIMAL.replace("[1]", "[1, 2, 1]"),
        "dataplane.workers",
        "workers[2] = 1 repeats workers[0]",
    );
    assert_only_error(
        &MINIMAL.replace("[1]", "[0, 1]"),
        "dataplane.workers",
        "main_lcore",
    );
    assert_only_error(
        &MINIMAL.replace("workers = [1]", "main_lcore = 3\nworkers = [1, 3]"),
        "dataplane.workers",
        "workers[1] = 3 is the main_lcore",
    );
    assert_only_error(
        &MINIMAL.replace("[1]", "[1, 1024]"),
        "dataplane.workers",
        "workers[1] = 1024",
    );
    assert_only_error(
        &MINIMAL.replace("[1]", "[-1]"),
        "dataplane.workers",
        "between 0 and 1023",
    );
}

#[test]
fn dataplane_range_errors() {
    let set = |kv: &str| MINIMAL.replace("workers = [1]", &format!("workers = [1]\n{kv}"));
    assert_only_error(&set("main_lcore = 1024"), "dataplane.main_lcore", "1023");
    assert_only_error(&set("burst = 0"), "dataplane.burst", "between 1 and 256");
    assert_only_error(&set("burst = 257"), "dataplane.burst", "got 257");
    assert_only_error(&set("mbufs = 1022"), "dataplane.mbufs", "at least 1023");
    assert_only_error(
        &set("mbufs = 4294967296"),
        "dataplane.mbufs",
        "between 1023 and 4294967295",
    );
    assert_only_error(
        &set("mbuf_cache = 513"),
        "dataplane.mbuf_cache",
        "between 0 and 512",
    );
    assert_only_error(&set("mbuf_cache = -1"), "dataplane.mbuf_cache", "got -1");
    assert_only_error(&set("neighbours = 15"), "dataplane.neighbours", "16");
    assert_only_error(
        &set("neighbours = 1048577"),
        "dataplane.neighbours",
        "1048576",
    );
}

#[test]
fn port_errors() {
    assert_only_error("[dataplane]\nworkers = [1]\n", "port", "at least one");
    assert_only_error(
        "port = []\n[dataplane]\nworkers = [1]\n",
        "port",
        "at least one",
    );
    let set = |kv: &str| format!("{MINIMAL}{kv}\n");
    assert_only_error(
        &MINIMAL.replace("name = \"p0\"\n", ""),
        "port[0].name",
        "required",
    );
    assert_only_error(
        &MINIMAL.replace("\"p0\"", "\"bad name\""),
        "port[0].name",
        "1 to 32 characters",
    );
    assert_only_error(
        &MINIMAL.replace("\"p0\"", "\"\""),
        "port[0].name",
        "1 to 32 characters",
    );
    assert_only_error(
        &MINIMAL.replace("\"p0\"", &format!("\"{}\"", "x".repeat(33))),
        "port[0].name",
        "1 to 32 characters",
    );
    assert_only_error(
        &MINIMAL.replace("devargs = \"net_null0\"\n", ""),
        "port[0].devargs",
        "required",
    );
    assert_only_error(
        &MINIMAL.replace("\"net_null0\"", "\"\""),
        "port[0].devargs",
        "empty",
    );
    assert_only_error(
        &MINIMAL.replace("\"net_null0\"", "\"net_af_packet0, iface=veth0\""),
        "port[0].devargs",
        "whitespace",
    );
    assert_only_error(&set("queues = 0"), "port[0].queues", "between 1 and 1");
    assert_only_error(
        &set("queues = 2"),
        "port[0].queues",
        "the number of workers",
    );
    assert_only_error(&set("rx_descriptors = 63"), "port[0].rx_descriptors", "64");
    assert_only_error(
        &set("tx_descriptors = 32769"),
        "port[0].tx_descriptors",
        "32768",
    );
    assert_only_error(&set("mtu = 67"), "port[0].mtu", "between 68 and 9600");
    assert_only_error(&set("mtu = 9601"), "port[0].mtu", "got 9601");
}

#[test]
fn duplicate_ports_and_devices() {
    let toml = format!("{MINIMAL}\n[[port]]\nname = \"p0\"\ndevargs = \"net_null0,size=64\"\n");
    let errs = errors(&toml);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_error(&toml, "port[1].name", "already the name of port[0]");
    assert_error(&toml, "port[1].devargs", "already used by port[0]");
}

#[test]
fn address_errors() {
    let addrs = |list: &str| format!("{MINIMAL}addresses = {list}\n");
    assert_only_error(&addrs(r#"["10.0.0.1/33"]"#), "port[0].addresses[0]", "/32");
    assert_only_error(
        &addrs(r#"["10.0.0.1/24", "fd00::1/129"]"#),
        "port[0].addresses[1]",
        "/128",
    );
    assert_only_error(
        &addrs(r#"["10.0.0.1"]"#),
        "port[0].addresses[0]",
        "ADDRESS/LENGTH",
    );
    assert_only_error(
        &addrs(r#"["eth0/24"]"#),
        "port[0].addresses[0]",
        "not an IPv4",
    );
    assert_only_error(
        &addrs(r#"["0.0.0.0/0"]"#),
        "port[0].addresses[0]",
        "unspecified",
    );
    assert_only_error(
        &addrs(r#"["224.0.0.1/4"]"#),
        "port[0].addresses[0]",
        "multicast",
    );
    assert_only_error(
        &addrs(r#"["10.0.0.1/24", "10.0.0.1/16"]"#),
        "port[0].addresses[1]",
        "already assigned at port[0].addresses[0]",
    );
    // Across ports, as in the brief's example key.
    let toml = format!(
        "{TWO_PORTS}\n[[port]]\nname = \"third\"\ndevargs = \"net_null0\"\naddresses = [\"fd00:1::1/64\"]\n"
    );
    assert_only_error(
        &toml,
        "port[2].addresses[0]",
        "already assigned at port[0].addresses[1]",
    );
}

#[test]
fn route_errors() {
    assert_only_error(
        &with_route("prefix = \"10.0.0.1/8\"\nport = \"wan\""),
        "route[0].prefix",
        "host bits set; the network is 10.0.0.0/8",
    );
    assert_only_error(&with_route("port = \"wan\""), "route[0].prefix", "required");
    assert_only_error(
        &with_route("prefix = \"10.0.0.0/33\"\nport = \"wan\""),
        "route[0].prefix",
        "at most /32",
    );
    assert_only_error(
        &with_route("prefix = \"::/0\"\nvia = \"198.18.0.254\""),
        "route[0].via",
        "IPv4 but prefix ::/0 is IPv6",
    );
    assert_only_error(
        &with_route("prefix = \"0.0.0.0/0\"\nvia = \"203.0.113.1\""),
        "route[0].via",
        "not in the connected subnet",
    );
    assert_only_error(
        &with_route("prefix = \"0.0.0.0/0\"\nvia = \"gw\""),
        "route[0].via",
        "not an IPv4 or IPv6 address",
    );
    assert_only_error(
        &with_route("prefix = \"0.0.0.0/0\"\nvia = \"198.18.0.254\"\nport = \"dmz\""),
        "route[0].port",
        "no [[port]] is named \"dmz\"",
    );
    assert_only_error(
        &with_route("prefix = \"0.0.0.0/0\"\nvia = \"10.0.0.1\""),
        "route[0].via",
        "our own address on port \"lan\"",
    );
    assert_only_error(
        &with_route("prefix = \"0.0.0.0/0\"\nvia = \"10.0.0.1\"\nport = \"lan\""),
        "route[0].via",
        "our own address",
    );
    assert_only_error(
        &with_route("prefix = \"192.0.2.0/24\""),
        "route[0].port",
        "on-link",
    );
    assert_only_error(
        &with_route(
            "prefix = \"0.0.0.0/0\"\nvia = \"198.18.0.254\"\n[[route]]\nprefix = \"0.0.0.0/0\"\nvia = \"10.0.0.254\"",
        ),
        "route[1].prefix",
        "already routed by route[0]",
    );
}

#[test]
fn static_neighbours() {
    let c = Config::from_toml_str(&format!(
        "{TWO_PORTS}\n[[neighbour]]\nip = \"10.0.0.9\"\nmac = \"02:00:00:00:00:09\"\nport = \"lan\"\n\
         [[neighbour]]\nip = \"fd00:1::9\"\nmac = \"02:00:00:00:01:09\"\nport = \"wan\"\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.neighbours,
        [
            NeighbourConfig {
                ip: ip("10.0.0.9"),
                mac: [2, 0, 0, 0, 0, 9],
                port: "lan".into()
            },
            NeighbourConfig {
                ip: ip("fd00:1::9"),
                mac: [2, 0, 0, 0, 1, 9],
                port: "wan".into()
            }
        ]
    );
    assert!(Config::from_toml_str(MINIMAL)
        .unwrap()
        .neighbours
        .is_empty());
    let n = |body: &str| format!("{TWO_PORTS}\n[[neighbour]]\n{body}\n");
    assert_only_error(
        &n("mac = \"02:00:00:00:00:09\"\nport = \"lan\""),
        "neighbour[0].ip",
        "required",
    );
    assert_only_error(
        &n("ip = \"host\"\nmac = \"02:00:00:00:00:09\"\nport = \"lan\""),
        "neighbour[0].ip",
        "not an IPv4 or IPv6 address",
    );
    assert_only_error(
        &n("ip = \"224.0.0.1\"\nmac = \"02:00:00:00:00:09\"\nport = \"lan\""),
        "neighbour[0].ip",
        "multicast",
    );
    assert_only_error(
        &n("ip = \"10.0.0.9\"\nmac = \"01:00:5e:00:00:01\"\nport = \"lan\""),
        "neighbour[0].mac",
        "not a unicast address",
    );
    assert_only_error(
        &n("ip = \"10.0.0.9\"\nport = \"lan\""),
        "neighbour[0].mac",
        "required",
    );
    assert_only_error(
        &n("ip = \"10.0.0.9\"\nmac = \"02:00:00:00:00:09\"\nport = \"dmz\""),
        "neighbour[0].port",
        "no [[port]] is named \"dmz\"",
    );
    assert_only_error(
        &n(
            "ip = \"10.0.0.9\"\nmac = \"02:00:00:00:00:09\"\nport = \"lan\"\n\
            [[neighbour]]\nip = \"10.0.0.9\"\nmac = \"02:00:00:00:00:0a\"\nport = \"lan\"",
        ),
        "neighbour[1].ip",
        "already neighbour[0]",
    );
}

#[test]
fn ambiguous_gateway_needs_port() {
    let toml = format!(
        "{MINIMAL}addresses = [\"10.0.0.1/16\"]\n[[port]]\nname = \"p1\"\ndevargs = \"net_null1\"\naddresses = [\"10.0.1.1/24\"]\n[[route]]\nprefix = \"0.0.0.0/0\"\nvia = \"10.0.1.254\"\n"
    );
    assert_only_error(&toml, "route[0].via", "\"p0\" and \"p1\"");
    let fixed = format!("{toml}port = \"p1\"\n");
    assert_eq!(Config::from_toml_str(&fixed).unwrap().routes[0].port, "p1");
}

#[test]
fn ctl_metrics_log_errors() {
    let add = |s: &str| format!("{MINIMAL}{s}\n");
    assert_only_error(
        &add("[ctl]\nsocket = \"rvsd.sock\""),
        "ctl.socket",
        "absolute",
    );
    assert_only_error(
        &add(&format!("[ctl]\nsocket = \"/{}\"", "s".repeat(107))),
        "ctl.socket",
        "at most 107",
    );
    assert_only_error(
        &add("[metrics]\nlisten = \"localhost:9360\""),
        "metrics.listen",
        "not IP:PORT",
    );
    assert_only_error(
        &add("[metrics]\nlisten = \"127.0.0.1\""),
        "metrics.listen",
        "not IP:PORT",
    );
    assert_only_error(
        &add("[metrics]\nlisten = \"0.0.0.0:0\""),
        "metrics.listen",
        "port 0",
    );
    assert_only_error(&add("[log]\nlevel = \"verbose\""), "log.level", "verbose");
    assert_only_error(&add("[log]\nlevel = \"INFO\""), "log.level", "one of error");
    assert_only_error(
        &add("[eal]\nargs = [\"-a\", \"x\\u0000y\"]"),
        "eal.args[1]",
        "NUL",
    );
}

#[test]
fn three_errors_are_all_reported() {
    let toml = r#"
[dataplane]
workers = [1]
burst = 0

[[port]]
name = "wan"
devargs = "net_null0"
addresses = ["198.18.0.1/40"]

[[route]]
prefix = "0.0.0.0/0"
via = "198.18.0.254"
port = "lan"
"#;
    let errs = errors(toml);
    let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        ["dataplane.burst", "port[0].addresses[0]", "route[0].port"]
    );
    let shown = ConfigErrors(errs).to_string();
    assert_eq!(shown.lines().count(), 3, "{shown}");
    assert!(shown.starts_with("dataplane.burst: must be between 1 and 256, got 0\n"));
}

#[test]
fn unknown_key_names_its_path() {
    assert_only_error(
        &MINIMAL.replace("devargs", "devarg"),
        "port[0].devarg",
        "unknown field `devarg`, expected one of",
    );
    assert_only_error(
        &format!("{MINIMAL}[bogus]\n"),
        "bogus",
        "unknown field `bogus`",
    );
    assert_only_error(
        &with_route("prefix = \"0.0.0.0/0\"\ngateway = \"198.18.0.254\""),
        "route[0].gateway",
        "unknown field",
    );
    assert_only_error(
        &MINIMAL.replace("workers = [1]", "workers = [1]\nworker = 2"),
        "dataplane.worker",
        "line 4",
    );
}

#[test]
fn wrong_type_names_its_key() {
    assert_only_error(
        &format!("{MINIMAL}queues = \"2\"\n"),
        "port[0].queues",
        "invalid type: string \"2\", expected an integer",
    );
    assert_only_error(
        &format!("{MINIMAL}addresses = [\"10.0.0.1/8\", 5]\n"),
        "port[0].addresses[1]",
        "expected a string",
    );
    assert_only_error(
        &MINIMAL.replace("[1]", "1"),
        "dataplane.workers",
        "expected a sequence",
    );
    assert_only_error(
        &format!("{MINIMAL}promiscuous = \"yes\"\n"),
        "port[0].promiscuous",
        "expected a boolean",
    );
    assert_only_error(
        &MINIMAL.replace("[[port]]", "[port]"),
        "port",
        "write [[port]] (an array of tables), not [port]",
    );
}

#[test]
fn syntax_error_is_clear() {
    let errs = errors("[dataplane\nworkers = [1]\n");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].key, "");
    assert!(errs[0].message.starts_with("invalid TOML: "), "{errs:?}");
    assert!(errs[0].message.contains("line 1, column 11"), "{errs:?}");
    assert!(!errs[0].to_string().starts_with(':'));

    let errs = errors("[dataplane]\nworkers = [1]\nburst = 32\nburst = 64\n");
    assert_eq!(errs[0].key, "");
    assert!(errs[0].message.contains("duplicate key"), "{errs:?}");
    assert!(errs[0].message.contains("line 4"), "{errs:?}");

    let errs = errors("# comment\nx = ");
    assert!(errs[0].message.contains("line 2, column 5"), "{errs:?}");
}

#[test]
fn line_col_counts_characters() {
    assert_eq!(line_col("", 0), (1, 1));
    assert_eq!(line_col("ab\ncd", 4), (2, 2));
    assert_eq!(line_col("é=1", 2), (1, 2));
    assert_eq!(line_col("ab", 99), (1, 3));
}

#[test]
fn error_display_formats() {
    let e = ConfigError::new("route[0].via", "bad");
    assert_eq!(e.to_string(), "route[0].via: bad");
    let all = ConfigErrors(vec![e, ConfigError::new("log.level", "worse")]);
    assert_eq!(all.to_string(), "route[0].via: bad\nlog.level: worse");
}

#[test]
fn load_reads_a_file_and_reports_unreadable_ones() {
    let dir = std::env::temp_dir().join(format!("rvs-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(&good, MINIMAL).unwrap();
    assert_eq!(
        Config::load(&good).unwrap(),
        Config::from_toml_str(MINIMAL).unwrap()
    );

    let missing = dir.join("missing.toml");
    let ConfigErrors(errs) = Config::load(&missing).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].key, missing.display().to_string());
    assert!(errs[0].message.contains("cannot read"), "{errs:?}");

    let binary = dir.join("binary.toml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
    let ConfigErrors(errs) = Config::load(&binary).unwrap_err();
    assert_eq!(errs[0].key, binary.display().to_string());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn log_level_round_trips() {
    for l in LogLevel::ALL {
        assert_eq!(l.as_str().parse::<LogLevel>(), Ok(l));
        assert_eq!(l.to_string(), l.as_str());
    }
    assert!(LogLevel::Error < LogLevel::Trace);
}

#[test]
fn mangled_sample_never_panics_and_errors_are_one_line() {
    // Every prefix of the sample, and the sample with each line dropped,
    // must give a config or well-formed errors, never a panic.
    let mut inputs: Vec<String> = SAMPLE
        .char_indices()
        .map(|(i, _)| SAMPLE[..i].to_owned())
        .collect();
    let lines: Vec<&str> = SAMPLE.lines().collect();
    for skip in 0..lines.len() {
        let mut v = lines.clone();
        v.remove(skip);
        inputs.push(v.join("\n"));
    }
    let mut failures = 0;
    for input in &inputs {
        if let Err(ConfigErrors(errs)) = Config::from_toml_str(input) {
            failures += 1;
            assert!(!errs.is_empty());
            for e in errs {
                assert!(!e.message.is_empty(), "{input}");
                assert!(!e.message.contains('\n'), "{e:?}");
                assert!(!e.key.contains('\n'), "{e:?}");
            }
        }
    }
    assert!(failures > 0);
}

#[test]
fn port_mac_is_parsed_and_checked() {
    let base = |mac: &str| {
        format!(
            "[dataplane]\nworkers = [1]\n[[port]]\nname = \"p\"\ndevargs = \"net_null0\"\nmac = \"{mac}\"\n"
        )
    };
    let c = Config::from_toml_str(&base("02:70:63:61:70:0a")).unwrap();
    assert_eq!(c.ports[0].mac, Some([0x02, 0x70, 0x63, 0x61, 0x70, 0x0a]));
    for bad in [
        "02:00:00:00:00",
        "02:00:00:00:00:01:02",
        "0g:00:00:00:00:01",
        "2:0:0:0:0:1",
        "01:00:5e:00:00:01",
        "00:00:00:00:00:00",
    ] {
        let errs = Config::from_toml_str(&base(bad)).unwrap_err();
        assert_eq!(errs.0.len(), 1, "{bad}: {errs}");
        assert_eq!(errs.0[0].key, "port[0].mac", "{bad}");
    }
}

#[test]
fn persist_needs_a_rules_file() {
    let e = errors(&format!("{MINIMAL}[ctl]\npersist = true\n"));
    assert!(
        e.iter()
            .any(|e| e.to_string().contains("ctl.persist")
                && e.to_string().contains("needs ctl.rules")),
        "{e:?}"
    );
    let c = Config::from_toml_str(&format!(
        "{MINIMAL}[ctl]\nrules = \"/var/lib/rvs/rules\"\npersist = true\n"
    ))
    .unwrap();
    assert!(c.ctl.persist);
    assert_eq!(
        c.ctl.rules.as_deref(),
        Some(std::path::Path::new("/var/lib/rvs/rules"))
    );
    assert!(!Config::from_toml_str(MINIMAL).unwrap().ctl.persist);
}

#[test]
fn session_log_goes_to_one_place_with_a_facility_only_for_syslog() {
    let c = Config::from_toml_str(&format!(
        "{MINIMAL}[session_log]\nsyslog = \"/dev/log\"\nfacility = \"daemon\"\nrate = 50\n"
    ))
    .unwrap();
    let log = c.session_log.unwrap();
    assert_eq!(
        log.writer.sink,
        Sink::Syslog {
            socket: "/dev/log".into(),
            facility: 3
        }
    );
    assert_eq!(log.writer.rate, 50);
    assert!(Config::from_toml_str(MINIMAL)
        .unwrap()
        .session_log
        .is_none());
    for (body, key, needle) in [
        ("", "session_log", "says where the lines go"),
        (
            "file = \"/a\"\nsyslog = \"/dev/log\"\n",
            "session_log",
            "not both",
        ),
        ("file = \"rel.log\"\n", "session_log.file", "absolute"),
        (
            "syslog = \"/dev/log\"\nfacility = \"local9\"\n",
            "session_log.facility",
            "not a syslog facility",
        ),
        (
            "file = \"/a\"\nfacility = \"local1\"\n",
            "session_log.facility",
            "a file has no facility",
        ),
        ("file = \"/a\"\nrate = 0\n", "session_log.rate", ""),
        ("file = \"/a\"\nring = 8\n", "session_log.ring", ""),
    ] {
        let e = errors(&format!("{MINIMAL}[session_log]\n{body}"));
        assert!(
            e.iter().any(|e| e.key == key && e.message.contains(needle)),
            "{body}: {e:?}"
        );
    }
}

#[test]
fn icmp_limits_take_the_kernels_names_and_refuse_bad_values() {
    let c = Config::from_toml_str(MINIMAL).unwrap();
    assert_eq!(c.icmp, crate::netstack::IcmpLimits::default());
    let c = Config::from_toml_str(&format!(
        "{MINIMAL}\n[icmp]\nicmp_ratelimit = 0\nicmp_msgs_per_sec = 20\nicmp_msgs_burst = 5\n\
         icmp_ratemask = 6169\nicmpv6_ratelimit = 250\nicmpv6_ratemask = \"1,128-129\"\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.icmp,
        crate::netstack::IcmpLimits {
            icmp_ratelimit: 0,
            icmp_msgs_per_sec: 20,
            icmp_msgs_burst: 5,
            icmp_ratemask: 6169,
            icmpv6_ratelimit: 250,
            icmpv6_ratemask: [2, 0, 0b11, 0],
        }
    );
    let set = |kv: &str| format!("{MINIMAL}\n[icmp]\n{kv}\n");
    assert_only_error(
        &set("icmp_ratelimit = -1"),
        "icmp.icmp_ratelimit",
        "between 0 and 2147483647",
    );
    assert_only_error(
        &set("icmp_msgs_per_sec = 2147483648"),
        "icmp.icmp_msgs_per_sec",
        "got 2147483648",
    );
    assert_only_error(
        &set("icmp_msgs_burst = -5"),
        "icmp.icmp_msgs_burst",
        "between 0 and",
    );
    assert_only_error(
        &set("icmp_ratemask = 524288"),
        "icmp.icmp_ratemask",
        "types 0 to 18",
    );
    assert_only_error(
        &set("icmpv6_ratemask = \"0-300\""),
        "icmp.icmpv6_ratemask",
        "not an ICMPv6 type",
    );
    assert_only_error(
        &set("icmpv6_ratemask = \"9-3\""),
        "icmp.icmpv6_ratemask",
        "backwards",
    );
    assert_only_error(&set("ratelimit = 5"), "icmp.ratelimit", "unknown field");
}

#[test]
fn accept_other_mac_is_per_port_and_needs_promiscuous() {
    let c = Config::from_toml_str(&format!("{MINIMAL}accept_other_mac = true\n")).unwrap();
    assert!(c.ports[0].accept_other_mac);
    let c = Config::from_toml_str(MINIMAL).unwrap();
    assert!(!c.ports[0].accept_other_mac);
    assert_only_error(
        &format!("{MINIMAL}accept_other_mac = true\npromiscuous = false\n"),
        "port[0].accept_other_mac",
        "needs promiscuous = true: otherwise the port receives no frame for another MAC",
    );
    assert_only_error(
        &format!("{MINIMAL}accept_other_mac = 1\n"),
        "port[0].accept_other_mac",
        "expected a boolean",
    );
}

#[test]
fn rss_says_whose_spread_decides_ownership() {
    let c = Config::from_toml_str(MINIMAL).unwrap();
    assert_eq!(c.ports[0].rss, RssMode::Device);
    for (v, want) in [
        ("device", RssMode::Device),
        ("software", RssMode::Software),
        ("off", RssMode::Off),
    ] {
        let c = Config::from_toml_str(&format!("{MINIMAL}rss = \"{v}\"\n")).unwrap();
        assert_eq!(c.ports[0].rss, want);
    }
    assert_only_error(
        &format!("{MINIMAL}rss = \"toeplitz\"\n"),
        "port[0].rss",
        "must be \"device\", \"software\" or \"off\", got \"toeplitz\"",
    );
}

#[test]
fn flow_steering_needs_a_queue_per_worker() {
    let two = "[dataplane]\nworkers = [1, 2]\n[[port]]\nname = \"p0\"\ndevargs = \"net_null0\"\n";
    let c = Config::from_toml_str(&format!("{two}flow_steering = true\n")).unwrap();
    assert!(c.ports[0].flow_steering);
    assert!(!Config::from_toml_str(two).unwrap().ports[0].flow_steering);
    let why = "needs two or more workers and queues = the number of workers";
    for bad in [
        format!("{MINIMAL}flow_steering = true\n"),
        format!("{two}flow_steering = true\nqueues = 1\n"),
    ] {
        let e = Config::from_toml_str(&bad).unwrap_err().to_string();
        assert!(
            e.contains("port[0].flow_steering") && e.contains(why),
            "{e}"
        );
    }
}
