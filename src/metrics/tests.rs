use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use prometheus_client::registry::Registry;

use super::http::{
    openmetrics_to_text, parse_request, render_openmetrics, response, MetricsServer, Request,
    CONTENT_TYPE_OPENMETRICS, CONTENT_TYPE_TEXT, MAX_REQUEST,
};
use super::*;
use crate::counters::{DropReason, WorkerCounters};
use crate::dpdk::{LinkState, PortStats};
use crate::ipvs::{
    DestConfig, FwdMethod, Protocol, ServiceConfig, ServiceKey, ServiceSet, ServiceTable,
};

/// One parsed family of the classic text format.
#[derive(Debug, Default)]
struct Fam {
    help: Option<String>,
    kind: Option<String>,
    samples: Vec<(BTreeMap<String, String>, f64)>,
}

/// A strict reader of the text format 0.0.4, written here so the tests do
/// not trust the exporter's own idea of its output.
fn parse_text(text: &str) -> BTreeMap<String, Fam> {
    let mut fams: BTreeMap<String, Fam> = BTreeMap::new();
    let mut seen_series = HashSet::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has a name and text");
            let f = fams.entry(name.to_owned()).or_default();
            assert!(f.help.is_none(), "second HELP for {name}");
            assert!(f.samples.is_empty(), "HELP for {name} after its samples");
            f.help = Some(help.to_owned());
            current = Some(name.to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a name and type");
            let f = fams.entry(name.to_owned()).or_default();
            assert!(f.kind.is_none(), "second TYPE for {name}");
            assert!(f.samples.is_empty(), "TYPE for {name} after its samples");
            assert!(
                ["counter", "gauge", "untyped", "summary", "histogram"].contains(&kind),
                "{line}"
            );
            f.kind = Some(kind.to_owned());
            current = Some(name.to_owned());
        } else if line.starts_with('#') {
            panic!("unexpected comment line {line:?}");
        } else {
            let (name, labels, value) = parse_sample(line);
            assert_eq!(
                current.as_deref(),
                Some(name.as_str()),
                "sample {line:?} outside its family's block"
            );
            assert!(
                seen_series.insert((name.clone(), labels.clone())),
                "duplicate series {line}"
            );
            fams.get_mut(&name)
                .expect("family")
                .samples
                .push((labels, value));
        }
    }
    fams
}

fn parse_sample(line: &str) -> (String, BTreeMap<String, String>, f64) {
    let name_end = line.find(['{', ' ']).expect("sample has a value");
    let name = &line[..name_end];
    assert!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !name.starts_with(|c: char| c.is_ascii_digit()),
        "bad metric name in {line:?}"
    );
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        let end;
        loop {
            // label name
            let start = chars.peek().map(|&(i, _)| i).expect("label");
            if r[start..].starts_with('}') {
                end = start + 1;
                break;
            }
            let eq = r[start..].find('=').expect("label =") + start;
            let key = &r[start..eq];
            assert!(
                key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "bad label name {key:?} in {line:?}"
            );
            while chars.peek().is_some_and(|&(i, _)| i <= eq) {
                chars.next();
            }
            assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
            let mut value = String::new();
            loop {
                match chars.next().expect("closing quote") {
                    (_, '\\') => match chars.next().expect("escape").1 {
                        'n' => value.push('\n'),
                        c @ ('\\' | '"') => value.push(c),
                        c => panic!("bad escape \\{c} in {line:?}"),
                    },
                    (_, '"') => break,
                    (_, c) => value.push(c),
                }
            }
            assert!(
                labels.insert(key.to_owned(), value).is_none(),
                "label {key} twice in {line:?}"
            );
            match chars.next().expect("label separator") {
                (_, ',') => continue,
                (i, '}') => {
                    end = i + 1;
                    break;
                }
                (_, c) => panic!("unexpected {c:?} in {line:?}"),
            }
        }
        rest = &r[end..];
    }
    let value = rest.strip_prefix(' ').expect("space before value");
    let value: f64 = match value {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}")),
    };
    (name.to_owned(), labels, value)
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn value(fams: &BTreeMap<String, Fam>, name: &str, pairs: &[(&str, &str)]) -> f64 {
    let want = labels(pairs);
    let f = fams.get(name).unwrap_or_else(|| panic!("no family {name}"));
    f.samples
        .iter()
        .find(|(l, _)| *l == want)
        .unwrap_or_else(|| panic!("no {name}{want:?} in {:?}", f.samples))
        .1
}

fn tcp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: addr.parse().unwrap(),
        port,
    }
}

struct Fixture {
    workers: Vec<Arc<WorkerCounters>>,
    table: ServiceTable,
    services: Arc<ArcSwap<ServiceSet>>,
}

fn fixture() -> (Fixture, MetricsSources) {
    let workers: Vec<Arc<WorkerCounters>> = (0..2)
        .map(|_| Arc::new(WorkerCounters::default()))
        .collect();
    workers[0].rx_packets.add(10);
    workers[0].tx_packets.add(4);
    workers[0].dropped(DropReason::BadHeader);
    workers[0].dropped(DropReason::BadHeader);
    workers[0].dropped(DropReason::NotForUs);
    workers[0].busy_polls.add(3);
    workers[0].idle_polls.add(1);
    workers[0].arp_replies.inc();
    workers[0].icmp_limited_global.add(3);
    workers[0].icmp_limited_host.add(2);
    workers[0].frag_ok.add(4);
    workers[0].frag_creates.add(9);
    workers[0].icmp_errors.add(6);
    workers[1].rx_packets.add(5);
    workers[1].address_conflicts.inc();
    workers[1].dropped(DropReason::SourceRateLimit);
    workers[1].pressure.evicted.add(7);
    workers[1].pressure.dropped_entries.add(2);
    workers[1].pressure.drop_entry.set(2);
    workers[1].pressure.secure_tcp.set(3);

    let mut table = ServiceTable::new(2);
    let web = tcp("10.0.0.1", 80);
    table.add_service(ServiceConfig::new(web)).unwrap();
    for (ip, w) in [("192.168.1.2", 3), ("192.168.1.3", 1)] {
        let mut d = DestConfig::new(ip.parse().unwrap(), 8080);
        d.fwd = FwdMethod::Masq;
        d.weight = w;
        table.add_dest(&web, d).unwrap();
    }
    let v6 = ServiceKey::Addr {
        proto: Protocol::Udp,
        addr: "2001:db8::1".parse().unwrap(),
        port: 53,
    };
    table.add_service(ServiceConfig::new(v6)).unwrap();
    let mark = ServiceKey::Fwmark {
        mark: 7,
        ipv6: false,
    };
    let mut mc = ServiceConfig::new(mark);
    mc.persistent = Some(300);
    table.add_service(mc).unwrap();
    table
        .add_dest(&mark, DestConfig::new("192.168.1.9".parse().unwrap(), 0))
        .unwrap();
    let svc = table.get(&web).unwrap().clone();
    svc.stats.worker(0).conns.add(2);
    svc.stats.worker(1).conns.add(1);
    svc.stats.worker(0).inpkts.add(30);
    svc.stats.worker(1).inbytes.add(4500);
    let d = svc
        .dests()
        .iter()
        .find(|d| d.addr() == "192.168.1.2".parse::<IpAddr>().unwrap())
        .unwrap();
    d.stats.worker(1).outpkts.add(12);
    d.set_conns(2, 1);
    let services = Arc::new(ArcSwap::from_pointee(table.snapshot()));

    let sources = MetricsSources {
        workers: workers
            .iter()
            .enumerate()
            .map(|(i, c)| WorkerSource {
                index: i,
                lcore: i as u32 + 1,
                counters: c.clone(),
            })
            .collect(),
        ports: vec![PortSource {
            name: "wan".into(),
            device: "net_pcap0".into(),
            driver: "net_pcap".into(),
            mac: "02:00:00:00:00:01".into(),
            read: Box::new(|| PortReading {
                stats: PortStats {
                    ipackets: 15,
                    opackets: 4,
                    ibytes: 900,
                    obytes: 240,
                    imissed: 1,
                    ierrors: 0,
                    oerrors: 0,
                    rx_nombuf: 2,
                },
                link: LinkState {
                    up: true,
                    speed_mbps: 10_000,
                },
                xstats: vec![
                    ("rx_good_packets".into(), 15),
                    ("rx_q0_errors".into(), 0),
                    ("rx_good_packets".into(), 99),
                ],
            }),
            flow_rules: Some(Arc::new(std::sync::atomic::AtomicU64::new(12))),
        }],
        pools: vec![PoolSource {
            name: "rvs_pkt".into(),
            read: Box::new(|| PoolReading {
                in_use: 1100,
                available: 7091,
            }),
        }],
        services: services.clone(),
        dpdk_version: "22.11.4".into(),
        session_log: None,
        announce: None,
        vrrp: None,
    };
    (
        Fixture {
            workers,
            table,
            services,
        },
        sources,
    )
}

fn registry(sources: MetricsSources) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(RvsCollector::new(sources)));
    r
}

#[test]
fn every_family_is_declared_named_and_labelled_as_documented() {
    let (_fx, sources) = fixture();
    let reg = registry(sources);
    let text = openmetrics_to_text(&render_openmetrics(&reg).unwrap());
    assert!(!text.contains("{}"), "unlabelled series are written bare");
    let fams = parse_text(&text);
    for (name, f) in &fams {
        let help = f
            .help
            .as_deref()
            .unwrap_or_else(|| panic!("{name}: no HELP"));
        assert!(!help.is_empty(), "{name}: empty HELP");
        assert!(
            !help.contains(['"', '\\']),
            "{name}: HELP must need no escaping in either format"
        );
        let kind = f
            .kind
            .as_deref()
            .unwrap_or_else(|| panic!("{name}: no TYPE"));
        assert!(
            name.starts_with("rvs_") || name.starts_with("node_ipvs_"),
            "{name}"
        );
        assert_eq!(
            kind == "counter",
            name.ends_with("_total"),
            "{name} is a {kind}: counters and only counters end in _total"
        );
        assert!(!f.samples.is_empty(), "{name}: a family without samples");
        for (l, v) in &f.samples {
            assert!(v.is_finite(), "{name}{l:?} = {v}");
        }
    }

    // Build info.
    assert_eq!(
        value(
            &fams,
            "rvs_build_info",
            &[
                ("version", crate::version::VERSION),
                ("git_revision", crate::version::GIT_REV),
                ("dpdk_version", "22.11.4")
            ]
        ),
        1.0
    );
    assert!(value(&fams, "rvs_start_time_seconds", &[]) > 1.6e9);

    // Workers.
    let w0 = [("worker", "0"), ("lcore", "1")];
    let w1 = [("worker", "1"), ("lcore", "2")];
    assert_eq!(value(&fams, "rvs_worker_rx_packets_total", &w0), 10.0);
    assert_eq!(value(&fams, "rvs_worker_rx_packets_total", &w1), 5.0);
    assert_eq!(value(&fams, "rvs_worker_tx_packets_total", &w0), 4.0);
    let drops = &fams["rvs_worker_dropped_packets_total"];
    assert_eq!(drops.samples.len(), 2 * DropReason::ALL.len());
    for r in DropReason::ALL {
        let want = match r {
            DropReason::BadHeader => 2.0,
            DropReason::NotForUs => 1.0,
            _ => 0.0,
        };
        let want1 = if r == DropReason::SourceRateLimit {
            1.0
        } else {
            0.0
        };
        assert_eq!(
            value(
                &fams,
                "rvs_worker_dropped_packets_total",
                &[("worker", "0"), ("lcore", "1"), ("reason", r.name())]
            ),
            want,
            "{}",
            r.name()
        );
        assert_eq!(
            value(
                &fams,
                "rvs_worker_dropped_packets_total",
                &[("worker", "1"), ("lcore", "2"), ("reason", r.name())]
            ),
            want1
        );
    }
    // Conn-table pressure.
    let w1_with = |k, v| [("worker", "1"), ("lcore", "2"), (k, v)];
    for (reason, want) in [("table_full", 7.0), ("drop_entry", 2.0)] {
        assert_eq!(
            value(
                &fams,
                "rvs_worker_conns_evicted_total",
                &w1_with("reason", reason)
            ),
            want
        );
    }
    for (strategy, want) in [
        ("drop_entry", 2.0),
        ("drop_packet", 0.0),
        ("secure_tcp", 3.0),
    ] {
        assert_eq!(
            value(
                &fams,
                "rvs_worker_defense_level",
                &w1_with("strategy", strategy)
            ),
            want
        );
    }
    assert_eq!(fams["rvs_worker_defense_level"].samples.len(), 6);
    let polls = |kind| {
        value(
            &fams,
            "rvs_worker_polls_total",
            &[("worker", "0"), ("lcore", "1"), ("kind", kind)],
        )
    };
    assert_eq!((polls("busy"), polls("idle")), (3.0, 1.0));
    assert_eq!(value(&fams, "rvs_worker_busy_ratio", &w0), 0.75);
    assert_eq!(value(&fams, "rvs_worker_busy_ratio", &w1), 0.0);
    assert_eq!(
        value(
            &fams,
            "rvs_worker_netstack_sent_packets_total",
            &[("worker", "0"), ("lcore", "1"), ("kind", "arp_reply")]
        ),
        1.0
    );
    assert_eq!(value(&fams, "rvs_worker_address_conflicts_total", &w1), 1.0);
    let limited = |limit| {
        value(
            &fams,
            "rvs_worker_icmp_rate_limited_total",
            &[("worker", "0"), ("lcore", "1"), ("limit", limit)],
        )
    };
    assert_eq!((limited("global"), limited("host")), (3.0, 2.0));
    assert_eq!(
        value(&fams, "rvs_worker_fragmented_datagrams_total", &w0),
        4.0
    );
    assert_eq!(value(&fams, "rvs_worker_fragments_created_total", &w0), 9.0);
    assert_eq!(
        value(
            &fams,
            "rvs_worker_netstack_sent_packets_total",
            &[("worker", "0"), ("lcore", "1"), ("kind", "icmp_error")]
        ),
        6.0
    );

    // Ports.
    let p = [("port", "wan"), ("device", "net_pcap0")];
    for (name, v) in [
        ("rvs_port_rx_packets_total", 15.0),
        ("rvs_port_tx_packets_total", 4.0),
        ("rvs_port_rx_bytes_total", 900.0),
        ("rvs_port_tx_bytes_total", 240.0),
        ("rvs_port_rx_missed_packets_total", 1.0),
        ("rvs_port_rx_errors_total", 0.0),
        ("rvs_port_tx_errors_total", 0.0),
        ("rvs_port_rx_nombuf_total", 2.0),
        ("rvs_port_up", 1.0),
        ("rvs_port_speed_mbps", 10_000.0),
        ("rvs_port_flow_rules", 12.0),
    ] {
        assert_eq!(value(&fams, name, &p), v, "{name}");
    }
    assert_eq!(
        value(
            &fams,
            "rvs_port_info",
            &[
                ("port", "wan"),
                ("device", "net_pcap0"),
                ("driver", "net_pcap"),
                ("mac", "02:00:00:00:00:01")
            ]
        ),
        1.0
    );
    let xstat = |n| {
        value(
            &fams,
            "rvs_port_xstat_total",
            &[("port", "wan"), ("device", "net_pcap0"), ("name", n)],
        )
    };
    assert_eq!(
        xstat("rx_good_packets"),
        15.0,
        "the first of a repeated name"
    );
    assert_eq!(xstat("rx_q0_errors"), 0.0);
    assert_eq!(fams["rvs_port_xstat_total"].samples.len(), 2);

    // Mempool.
    let pool = |state| {
        value(
            &fams,
            "rvs_mempool_mbufs",
            &[("pool", "rvs_pkt"), ("state", state)],
        )
    };
    assert_eq!((pool("in_use"), pool("available")), (1100.0, 7091.0));

    // Services and real servers.
    let web = [("protocol", "tcp"), ("vip", "10.0.0.1"), ("port", "80")];
    assert_eq!(value(&fams, "rvs_service_connections_total", &web), 3.0);
    assert_eq!(value(&fams, "rvs_service_in_packets_total", &web), 30.0);
    assert_eq!(value(&fams, "rvs_service_in_bytes_total", &web), 4500.0);
    assert_eq!(value(&fams, "rvs_service_active_connections", &web), 2.0);
    assert_eq!(value(&fams, "rvs_service_inactive_connections", &web), 1.0);
    assert_eq!(
        value(&fams, "rvs_service_connections_per_second", &web),
        0.0
    );
    assert_eq!(value(&fams, "rvs_service_reals", &web), 2.0);
    let dns = [("protocol", "udp"), ("vip", "2001:db8::1"), ("port", "53")];
    assert_eq!(value(&fams, "rvs_service_in_packets_total", &dns), 0.0);
    let fwm = [("fwmark", "7"), ("family", "ipv4")];
    assert_eq!(value(&fams, "rvs_service_reals", &fwm), 1.0);
    let real = |ip, fwd| {
        let mut l = web.to_vec();
        l.extend([("real", ip), ("real_port", "8080"), ("forward", fwd)]);
        l
    };
    let r2 = real("192.168.1.2", "masq");
    assert_eq!(value(&fams, "rvs_real_weight", &r2), 3.0);
    assert_eq!(value(&fams, "rvs_real_out_packets_total", &r2), 12.0);
    assert_eq!(value(&fams, "rvs_real_active_connections", &r2), 2.0);
    assert_eq!(value(&fams, "rvs_real_inactive_connections", &r2), 1.0);
    assert_eq!(value(&fams, "rvs_real_overloaded", &r2), 0.0);
    assert_eq!(
        value(&fams, "rvs_real_weight", &real("192.168.1.3", "masq")),
        1.0
    );
    assert_eq!(
        value(
            &fams,
            "rvs_real_persistent_connections",
            &[
                ("fwmark", "7"),
                ("family", "ipv4"),
                ("real", "192.168.1.9"),
                ("real_port", "0"),
                ("forward", "route")
            ]
        ),
        0.0
    );
    for name in [
        "rvs_service_out_bytes_per_second",
        "rvs_real_in_packets_per_second",
        "rvs_real_connections_total",
    ] {
        assert!(fams.contains_key(name), "{name}");
    }
}

#[test]
fn openmetrics_and_text_carry_the_same_samples() {
    let (_fx, sources) = fixture();
    let reg = registry(sources);
    let om = render_openmetrics(&reg).unwrap();
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# TYPE rvs_worker_rx_packets counter\n"));
    assert!(om.contains("# TYPE rvs_build info\n"));
    let text = openmetrics_to_text(&om);
    assert!(text.contains("# TYPE rvs_worker_rx_packets_total counter\n"));
    assert!(text.contains("# HELP rvs_build_info "));
    assert!(text.contains("# TYPE rvs_build_info gauge\n"));
    assert!(!text.contains("# EOF"));
    let samples = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                // The busy ratio moves between the two renderings.
                if l.starts_with("rvs_worker_busy_ratio") {
                    l.rsplit_once(' ').unwrap().0.to_owned()
                } else {
                    l.to_owned()
                }
            })
            .collect()
    };
    let om2 = render_openmetrics(&reg).unwrap();
    assert_eq!(samples(&om2), samples(&text));
}

#[test]
fn families_without_series_are_left_out() {
    let sources = MetricsSources {
        workers: vec![],
        ports: vec![],
        pools: vec![],
        services: Arc::new(ArcSwap::from_pointee(ServiceSet::default())),
        dpdk_version: "x".into(),
        session_log: None,
        announce: None,
        vrrp: None,
    };
    let text = openmetrics_to_text(&render_openmetrics(&registry(sources)).unwrap());
    let fams = parse_text(&text);
    // node_exporter writes the totals whenever the kernel has IPVS, with
    // or without services.
    assert_eq!(
        fams.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "node_ipvs_connections_total",
            "node_ipvs_incoming_bytes_total",
            "node_ipvs_incoming_packets_total",
            "node_ipvs_outgoing_bytes_total",
            "node_ipvs_outgoing_packets_total",
            "rvs_build_info",
            "rvs_start_time_seconds",
        ]
    );
}

#[test]
fn busy_ratio_covers_the_polls_since_the_previous_scrape() {
    let (fx, sources) = fixture();
    let reg = registry(sources);
    let ratio = |reg: &Registry| {
        let fams = parse_text(&openmetrics_to_text(&render_openmetrics(reg).unwrap()));
        value(
            &fams,
            "rvs_worker_busy_ratio",
            &[("worker", "0"), ("lcore", "1")],
        )
    };
    assert_eq!(ratio(&reg), 0.75, "since start: 3 busy of 4");
    fx.workers[0].busy_polls.add(1);
    fx.workers[0].idle_polls.add(9);
    assert_eq!(ratio(&reg), 0.1, "since the previous scrape: 1 of 10");
    assert_eq!(ratio(&reg), 0.1, "no polls in between: unchanged");
}

#[test]
fn services_come_and_go_with_the_published_snapshot() {
    let (mut fx, sources) = fixture();
    let reg = registry(sources);
    let text = openmetrics_to_text(&render_openmetrics(&reg).unwrap());
    assert!(text.contains("vip=\"10.0.0.1\""));
    fx.table.delete_service(&tcp("10.0.0.1", 80)).unwrap();
    fx.services.store(Arc::new(fx.table.snapshot()));
    let text = openmetrics_to_text(&render_openmetrics(&reg).unwrap());
    assert!(!text.contains("vip=\"10.0.0.1\""), "no stale series");
    assert!(text.contains("vip=\"2001:db8::1\""));
}

#[test]
fn requests_are_parsed_without_trusting_them() {
    let m = |head: bool, openmetrics: bool| Request::Metrics { head, openmetrics };
    let cases: &[(&[u8], Request)] = &[
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", m(false, false)),
        (b"GET /metrics HTTP/1.0\n\n", m(false, false)),
        (b"HEAD /metrics HTTP/1.1\r\n\r\n", m(true, false)),
        (b"GET /metrics?x=1 HTTP/1.1\r\n\r\n", m(false, false)),
        (
            b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n\r\n",
            m(false, true),
        ),
        (
            b"GET /metrics HTTP/1.1\r\naccept: Application/OpenMetrics-Text; q=0\r\n\r\n",
            m(false, false),
        ),
        (
            b"GET /metrics HTTP/1.1\r\nAccept: text/plain\r\n\r\n",
            m(false, false),
        ),
        (b"GET / HTTP/1.1\r\n\r\n", Request::Refuse(404, "Not Found")),
        (
            b"GET /metricsx HTTP/1.1\r\n\r\n",
            Request::Refuse(404, "Not Found"),
        ),
        (
            b"POST /metrics HTTP/1.1\r\n\r\n",
            Request::Refuse(405, "Method Not Allowed"),
        ),
        (b"GET /metrics\r\n\r\n", Request::Refuse(400, "Bad Request")),
        (
            b"GET /metrics HTTP/2.0\r\n\r\n",
            Request::Refuse(400, "Bad Request"),
        ),
        (
            b"GET  /metrics HTTP/1.1\r\n\r\n",
            Request::Refuse(400, "Bad Request"),
        ),
        (
            b"GET /metrics HTTP/1.1 extra\r\n\r\n",
            Request::Refuse(400, "Bad Request"),
        ),
        (
            b"GET /metrics HTTP/1.1\r\nno colon\r\n\r\n",
            Request::Refuse(400, "Bad Request"),
        ),
        (
            b"get /metrics HTTP/1.1\r\n\r\n",
            Request::Refuse(400, "Bad Request"),
        ),
        (
            b"GET /m\xffetrics HTTP/1.1\r\n\r\n",
            Request::Refuse(400, "Bad Request"),
        ),
        (b"", Request::Refuse(400, "Bad Request")),
        (b"\r\n\r\n", Request::Refuse(400, "Bad Request")),
    ];
    for (raw, want) in cases {
        assert_eq!(
            &parse_request(raw),
            want,
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
    // Arbitrary bytes never panic.
    let mut x: u32 = 0x1234_5678;
    for len in 0..400 {
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect();
        let _ = parse_request(&junk);
        let mut prefixed = b"GET /metrics HTTP/1.1\r\n".to_vec();
        prefixed.extend_from_slice(&junk);
        let _ = parse_request(&prefixed);
    }
}

#[test]
fn responses_carry_status_type_and_length() {
    let (_fx, sources) = fixture();
    let reg = registry(sources);
    let split = |raw: Vec<u8>| {
        let s = String::from_utf8(raw).unwrap();
        let (head, body) = s.split_once("\r\n\r\n").unwrap();
        (head.to_owned(), body.to_owned())
    };
    let (head, body) = split(response(
        &Request::Metrics {
            head: false,
            openmetrics: false,
        },
        &reg,
    ));
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains(&format!("Content-Type: {CONTENT_TYPE_TEXT}\r\n")));
    assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
    assert!(body.contains("rvs_worker_rx_packets_total{"));
    let (head, body) = split(response(
        &Request::Metrics {
            head: false,
            openmetrics: true,
        },
        &reg,
    ));
    assert!(head.contains(&format!("Content-Type: {CONTENT_TYPE_OPENMETRICS}\r\n")));
    assert!(body.ends_with("# EOF\n"));
    let (head, body) = split(response(
        &Request::Metrics {
            head: true,
            openmetrics: false,
        },
        &reg,
    ));
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && body.is_empty());
    let (head, _) = split(response(&Request::Refuse(405, "Method Not Allowed"), &reg));
    assert!(head.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
    assert!(head.contains("Allow: GET, HEAD\r\n"));
    let (head, body) = split(response(&Request::Refuse(404, "Not Found"), &reg));
    assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"));
    assert!(body.contains("/metrics"));
}

/// Sends `raw` (then half-closes when asked) and returns the status line.
fn exchange(addr: SocketAddr, raw: &[u8], half_close: bool) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer and close before it has read everything (431):
    // a failed write is part of the exchange, not a test failure.
    let _ = s.write_all(raw);
    if half_close {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[test]
fn the_server_answers_bad_clients_and_keeps_serving() {
    let (_fx, sources) = fixture();
    let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), sources).unwrap();
    let addr = server.local_addr();
    let get = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(exchange(addr, get, false), "HTTP/1.1 200 OK");
    assert_eq!(
        exchange(addr, b"GET /nope HTTP/1.1\r\n\r\n", false),
        "HTTP/1.1 404 Not Found"
    );
    assert_eq!(
        exchange(addr, b"DELETE /metrics HTTP/1.1\r\n\r\n", false),
        "HTTP/1.1 405 Method Not Allowed"
    );
    assert_eq!(
        exchange(
            addr,
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
            false
        ),
        "HTTP/1.1 400 Bad Request"
    );
    let mut big = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
    big.resize(MAX_REQUEST * 4, b'a');
    assert_eq!(
        exchange(addr, &big, false),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    assert_eq!(
        exchange(addr, b"GET /metrics HTTP/1.1\r\n", true),
        "HTTP/1.1 400 Bad Request",
        "a head cut short"
    );
    // Connect and leave at once.
    drop(TcpStream::connect(addr).unwrap());
    // A client that never finishes its head is cut off.
    let t = Instant::now();
    assert_eq!(
        exchange(addr, b"GET /metr", false),
        "HTTP/1.1 408 Request Timeout"
    );
    assert!(t.elapsed() < Duration::from_secs(8));
    assert_eq!(exchange(addr, get, false), "HTTP/1.1 200 OK");
    let t = Instant::now();
    server.stop();
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "stopping took {:?}",
        t.elapsed()
    );
    assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
}

#[test]
fn a_taken_address_is_an_error() {
    let (_fx, a) = fixture();
    let first = MetricsServer::start("127.0.0.1:0".parse().unwrap(), a).unwrap();
    let (_fx2, b) = fixture();
    assert!(MetricsServer::start(first.local_addr(), b).is_err());
}

/// The backend series of one scrape, keyed by their labels in
/// node_exporter's order (local_address, local_port, remote_address,
/// remote_port, proto, local_mark).
fn backends(fams: &BTreeMap<String, Fam>, name: &str) -> BTreeMap<[String; 6], f64> {
    fams.get(name)
        .unwrap_or_else(|| panic!("no family {name}"))
        .samples
        .iter()
        .map(|(l, v)| {
            let keys: Vec<&String> = l.keys().collect();
            assert_eq!(
                keys,
                [
                    "local_address",
                    "local_mark",
                    "local_port",
                    "proto",
                    "remote_address",
                    "remote_port"
                ],
                "{name}: node_exporter's six labels, no more"
            );
            let get = |k: &str| l[k].clone();
            (
                [
                    get("local_address"),
                    get("local_port"),
                    get("remote_address"),
                    get("remote_port"),
                    get("proto"),
                    get("local_mark"),
                ],
                *v,
            )
        })
        .collect()
}

fn row(v: [&str; 6]) -> [String; 6] {
    v.map(str::to_owned)
}

#[test]
fn node_ipvs_backends_are_spelled_as_node_exporter_reads_the_kernel() {
    let (mut fx, sources) = fixture();
    let v6 = ServiceKey::Addr {
        proto: Protocol::Udp,
        addr: "2001:db8::1".parse().unwrap(),
        port: 53,
    };
    let mut d = DestConfig::new("2001:db8:0:0:1::53".parse().unwrap(), 5353);
    d.fwd = FwdMethod::Masq;
    d.weight = 2;
    fx.table.add_dest(&v6, d).unwrap();
    let sctp = ServiceKey::Addr {
        proto: Protocol::Sctp,
        addr: "10.0.0.2".parse().unwrap(),
        port: 3868,
    };
    fx.table.add_service(ServiceConfig::new(sctp)).unwrap();
    fx.table
        .add_dest(&sctp, DestConfig::new("192.168.1.4".parse().unwrap(), 3868))
        .unwrap();
    // Go writes an IPv4-mapped IPv6 address dotted.
    let mapped = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: "::ffff:10.0.0.3".parse().unwrap(),
        port: 443,
    };
    fx.table.add_service(ServiceConfig::new(mapped)).unwrap();
    fx.table
        .add_dest(
            &mapped,
            DestConfig::new("2001:db8::443".parse().unwrap(), 443),
        )
        .unwrap();
    // The same mark as an IPv6 fwmark service: the kernel writes both
    // `FWM  0000000A`, big marks in full.
    for (mark, ipv6, real) in [
        (0xa, true, "2001:db8::9"),
        (0xdead_beef, false, "192.168.1.10"),
    ] {
        let key = ServiceKey::Fwmark { mark, ipv6 };
        fx.table.add_service(ServiceConfig::new(key)).unwrap();
        fx.table
            .add_dest(&key, DestConfig::new(real.parse().unwrap(), 0))
            .unwrap();
    }
    fx.services.store(Arc::new(fx.table.snapshot()));
    let text = openmetrics_to_text(&render_openmetrics(&registry(sources)).unwrap());
    let fams = parse_text(&text);
    for (name, kind, help) in [
        (
            "node_ipvs_backend_connections_active",
            "gauge",
            "The current active connections by local and remote address.",
        ),
        (
            "node_ipvs_backend_connections_inactive",
            "gauge",
            "The current inactive connections by local and remote address.",
        ),
        (
            "node_ipvs_backend_weight",
            "gauge",
            "The current backend weight by local and remote address.",
        ),
        (
            "node_ipvs_connections_total",
            "counter",
            "The total number of connections made.",
        ),
        (
            "node_ipvs_incoming_packets_total",
            "counter",
            "The total number of incoming packets.",
        ),
        (
            "node_ipvs_outgoing_packets_total",
            "counter",
            "The total number of outgoing packets.",
        ),
        (
            "node_ipvs_incoming_bytes_total",
            "counter",
            "The total amount of incoming data.",
        ),
        (
            "node_ipvs_outgoing_bytes_total",
            "counter",
            "The total amount of outgoing data.",
        ),
    ] {
        let f = &fams[name];
        assert_eq!(
            (f.kind.as_deref(), f.help.as_deref()),
            (Some(kind), Some(help)),
            "{name}"
        );
    }
    let weight = backends(&fams, "node_ipvs_backend_weight");
    let want: BTreeMap<[String; 6], f64> = [
        (["10.0.0.1", "80", "192.168.1.2", "8080", "TCP", ""], 3.0),
        (["10.0.0.1", "80", "192.168.1.3", "8080", "TCP", ""], 1.0),
        (
            ["2001:db8::1", "53", "2001:db8::1:0:0:53", "5353", "UDP", ""],
            2.0,
        ),
        (["10.0.0.2", "3868", "192.168.1.4", "3868", "SCTP", ""], 1.0),
        (["10.0.0.3", "443", "2001:db8::443", "443", "TCP", ""], 1.0),
        (["", "0", "192.168.1.9", "0", "FWM", "00000007"], 1.0),
        (["", "0", "2001:db8::9", "0", "FWM", "0000000A"], 1.0),
        (["", "0", "192.168.1.10", "0", "FWM", "DEADBEEF"], 1.0),
    ]
    .into_iter()
    .map(|(k, v)| (row(k), v))
    .collect();
    assert_eq!(weight, want);
    let active = backends(&fams, "node_ipvs_backend_connections_active");
    let inactive = backends(&fams, "node_ipvs_backend_connections_inactive");
    let r2 = row(["10.0.0.1", "80", "192.168.1.2", "8080", "TCP", ""]);
    assert_eq!((active[&r2], inactive[&r2]), (2.0, 1.0));
    assert_eq!(active.values().sum::<f64>(), 2.0);
    assert_eq!(inactive.values().sum::<f64>(), 1.0);
    // Rust prints an address as Go does but for the mapped form.
    for (ip, go) in [
        ("2001:db8:0:0:1::53", "2001:db8::1:0:0:53"),
        ("2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("::192.0.2.1", "::c000:201"),
        ("::", "::"),
        ("fe80::1", "fe80::1"),
    ] {
        assert_eq!(super::collector::go_ip(ip.parse().unwrap()), go, "{ip}");
    }
}

#[test]
fn node_ipvs_totals_are_the_directors_and_outlive_services() {
    let (mut fx, sources) = fixture();
    let reg = registry(sources);
    let totals = |reg: &Registry| {
        let fams = parse_text(&openmetrics_to_text(&render_openmetrics(reg).unwrap()));
        [
            "node_ipvs_connections_total",
            "node_ipvs_incoming_packets_total",
            "node_ipvs_outgoing_packets_total",
            "node_ipvs_incoming_bytes_total",
            "node_ipvs_outgoing_bytes_total",
        ]
        .map(|n| value(&fams, n, &[]))
    };
    // The fixture counted into services only, as no scheduler does.
    assert_eq!(totals(&reg), [0.0; 5]);
    let set = fx.services.load();
    let t = set.total();
    t.worker(0).conns.add(3);
    t.worker(1).conns.add(1);
    t.worker(0).inpkts.add(10);
    t.worker(1).outpkts.add(7);
    t.worker(0).inbytes.add(600);
    t.worker(1).outbytes.add(9000);
    assert_eq!(totals(&reg), [4.0, 10.0, 7.0, 600.0, 9000.0]);
    // -D, -C and -Z of one service take nothing off; the next snapshot
    // carries the same counters.
    fx.table.zero(Some(&tcp("10.0.0.1", 80))).unwrap();
    fx.table.delete_service(&tcp("10.0.0.1", 80)).unwrap();
    fx.services.store(Arc::new(fx.table.snapshot()));
    assert_eq!(totals(&reg), [4.0, 10.0, 7.0, 600.0, 9000.0]);
    fx.table.clear();
    fx.services.store(Arc::new(fx.table.snapshot()));
    assert_eq!(totals(&reg), [4.0, 10.0, 7.0, 600.0, 9000.0]);
    // -Z of everything zeroes them, as ip_vs_zero_all does tot_stats.
    fx.table.zero(None).unwrap();
    assert_eq!(totals(&reg), [0.0; 5]);
}

#[test]
fn session_log_lines_and_drops_by_reason() {
    use crate::sessionlog::writer::{SessionLog, Sink, WriterConfig};
    use crate::sessionlog::{Event, Session, SessionRing};
    let path = std::env::temp_dir().join(format!("rvs-metrics-slog-{}.log", std::process::id()));
    let ring = Arc::new(SessionRing::new(3));
    let s = Session {
        event: Event::Start,
        at: 0,
        worker: 0,
        proto: 6,
        fwd: crate::ipvs::FwdMethod::FullNat,
        client: "198.51.100.7:40000".parse().unwrap(),
        vip: "198.18.0.100:80".parse().unwrap(),
        local: Some("198.19.0.1:1029".parse().unwrap()),
        real: "198.19.0.11:80".parse().unwrap(),
        state: "NONE",
    };
    // Five into a ring of three: two ring_full. Of the three, a rate of
    // one a second writes one and limits two.
    for _ in 0..5 {
        ring.push(s);
    }
    let cfg = WriterConfig {
        sink: Sink::File(path.clone()),
        rate: 1,
    };
    let log = SessionLog::start(&cfg, vec![ring], std::time::Instant::now()).unwrap();
    let counters = log.counters();
    log.stop();
    let sources = MetricsSources {
        workers: vec![],
        ports: vec![],
        pools: vec![],
        services: Arc::new(ArcSwap::from_pointee(ServiceSet::default())),
        dpdk_version: "x".into(),
        session_log: Some(counters),
        announce: None,
        vrrp: None,
    };
    let text = openmetrics_to_text(&render_openmetrics(&registry(sources)).unwrap());
    let fams = parse_text(&text);
    assert_eq!(value(&fams, "rvs_session_log_lines_total", &[]), 1.0);
    for (reason, n) in [
        ("ring_full", 2.0),
        ("rate_limit", 2.0),
        ("write_error", 0.0),
    ] {
        assert_eq!(
            value(
                &fams,
                "rvs_session_log_dropped_total",
                &[("reason", reason)]
            ),
            n,
            "{reason}"
        );
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn vip_announced_says_which_vip_routes_are_in_the_table() {
    use crate::announce::{Announcer, RouteTable};
    use crate::ipvs::{DestConfig, ServiceConfig, ServiceKey, ServiceTable};
    struct Accept;
    impl RouteTable for Accept {
        fn add(&mut self, _: IpAddr) -> Result<(), String> {
            Ok(())
        }
        fn remove(&mut self, _: IpAddr) -> Result<(), String> {
            Ok(())
        }
        fn refuses(&self, _: IpAddr) -> Option<String> {
            None
        }
    }
    let mut t = ServiceTable::new(1);
    for vip in ["198.18.0.100", "198.18.0.101"] {
        let key = ServiceKey::Addr {
            proto: crate::ipvs::Protocol::Tcp,
            addr: vip.parse().unwrap(),
            port: 80,
        };
        t.add_service(ServiceConfig::new(key)).unwrap();
        if vip.ends_with("100") {
            t.add_dest(&key, DestConfig::new("198.19.0.11".parse().unwrap(), 80))
                .unwrap();
        }
    }
    let mut a = Announcer::new(Accept, "lan");
    a.update(&t.snapshot(), true, |_| false);
    let sources = MetricsSources {
        workers: vec![],
        ports: vec![],
        pools: vec![],
        services: Arc::new(ArcSwap::from_pointee(ServiceSet::default())),
        dpdk_version: "x".into(),
        session_log: None,
        announce: Some(a.status()),
        vrrp: None,
    };
    let text = openmetrics_to_text(&render_openmetrics(&registry(sources)).unwrap());
    let fams = parse_text(&text);
    assert_eq!(
        value(&fams, "rvs_vip_announced", &[("vip", "198.18.0.100")]),
        1.0
    );
    assert_eq!(
        value(&fams, "rvs_vip_announced", &[("vip", "198.18.0.101")]),
        0.0
    );
}
