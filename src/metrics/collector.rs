//! The collector: reads every source at scrape time and writes the metric
//! families.
//!
//! | family | type | labels |
//! | --- | --- | --- |
//! | `rvs_build_info` | info (gauge 1) | `version`, `git_revision`, `dpdk_version` |
//! | `rvs_start_time_seconds` | gauge | |
//! | `rvs_worker_rx_packets_total` | counter | `worker`, `lcore` |
//! | `rvs_worker_tx_packets_total` | counter | `worker`, `lcore` |
//! | `rvs_worker_consumed_packets_total` | counter | `worker`, `lcore` |
//! | `rvs_worker_dropped_packets_total` | counter | `worker`, `lcore`, `reason` |
//! | `rvs_worker_polls_total` | counter | `worker`, `lcore`, `kind` (`busy`, `idle`) |
//! | `rvs_worker_busy_ratio` | gauge | `worker`, `lcore` |
//! | `rvs_worker_netstack_sent_packets_total` | counter | `worker`, `lcore`, `kind` |
//! | `rvs_worker_address_conflicts_total` | counter | `worker`, `lcore` |
//! | `rvs_worker_conns`, `rvs_worker_conn_capacity` | gauge | `worker`, `lcore` |
//! | `rvs_worker_conns_evicted_total` | counter | `worker`, `lcore`, `reason` (`table_full`, `local_ports`, `drop_entry`) |
//! | `rvs_worker_defense_level` | gauge | `worker`, `lcore`, `strategy` (`drop_entry`, `drop_packet`, `secure_tcp`) |
//! | `rvs_worker_redirected_packets_total` | counter | `worker`, `lcore`, `reason` (`no_rss`, `client_owned`, `derived`, `sync`, `nat_reply`) |
//! | `rvs_worker_express_packets_total` | counter | `worker`, `lcore` |
//! | `rvs_worker_icmp_rate_limited_total` | counter | `worker`, `lcore`, `limit` (`global`, `host`) |
//! | `rvs_worker_fragmented_datagrams_total`, `rvs_worker_fragments_created_total` | counter | `worker`, `lcore` |
//! | `rvs_worker_sync_messages_total`, `rvs_worker_sync_conns_total` | counter | `worker`, `lcore`, `direction` (`sent`, `received`) |
//! | `rvs_worker_sync_sent_bytes_total` | counter | `worker`, `lcore` |
//! | `rvs_laddr_ports_in_use`, `rvs_laddr_ports` | gauge | `worker`, `lcore`, `laddr` |
//! | `rvs_port_info` | gauge 1 | `port`, `device`, `driver`, `mac` |
//! | `rvs_port_{rx,tx}_{packets,bytes}_total` | counter | `port`, `device` |
//! | `rvs_port_rx_missed_packets_total`, `rvs_port_{rx,tx}_errors_total`, `rvs_port_rx_nombuf_total` | counter | `port`, `device` |
//! | `rvs_port_up`, `rvs_port_speed_mbps` | gauge | `port`, `device` |
//! | `rvs_port_flow_rules` | gauge | `port`, `device` (ports with `flow_steering`) |
//! | `rvs_port_xstat_total` | counter | `port`, `device`, `name` |
//! | `rvs_mempool_mbufs` | gauge | `pool`, `state` (`in_use`, `available`) |
//! | `rvs_service_`/`rvs_real_` + `connections_total`, `{in,out}_{packets,bytes}_total` | counter | service labels (+ real labels) |
//! | `rvs_service_`/`rvs_real_` + `{active,inactive}_connections`, `connections_per_second`, `{in,out}_{packets,bytes}_per_second` | gauge | service labels (+ real labels) |
//! | `rvs_service_reals` | gauge | service labels |
//! | `rvs_real_weight`, `rvs_real_persistent_connections`, `rvs_real_overloaded` | gauge | service and real labels |
//! | `rvs_session_log_lines_total` | counter | (only with `[session_log]`) |
//! | `rvs_session_log_dropped_total` | counter | `reason` (`ring_full`, `rate_limit`, `write_error`) |
//! | `rvs_vrrp_state` | gauge (0 `INIT`, 1 `BACKUP`, 2 `MASTER`) | `instance`, `vrid` (only with `[[vrrp]]`) |
//! | `rvs_vrrp_transitions_total` | counter | `instance`, `vrid`, `to` (`INIT`, `BACKUP`, `MASTER`) |
//! | `rvs_vrrp_adverts_total` | counter | `instance`, `vrid`, `direction` (`sent`, `received`) |
//! | `rvs_vrrp_adverts_refused_total` | counter | `reason` (`ttl`, `version`, `type`, `length`, `checksum`, `vrid`) |
//! | `rvs_dest_up` | gauge | service and real labels (checked real servers only) |
//! | `rvs_dest_health_transitions_total` | counter | service and real labels, `to` (`down`, `up`) |
//! | `rvs_service_sorry_in_use` | gauge | service labels |
//! | `rvs_vip_announced` | gauge | `vip` (only with `[announce]`) |
//! | `node_ipvs_connections_total`, `node_ipvs_{incoming,outgoing}_{packets,bytes}_total` | counter | |
//! | `node_ipvs_backend_connections_{active,inactive}`, `node_ipvs_backend_weight` | gauge | `local_address`, `local_port`, `remote_address`, `remote_port`, `proto`, `local_mark` |
//!
//! Service labels are `protocol` (`tcp`, `udp`, `sctp`), `vip` and `port`,
//! or `fwmark` and `family` (`ipv4`, `ipv6`) for a firewall-mark service;
//! a real server adds `real`, `real_port` and `forward` (`masq`, `route`,
//! `tunnel`, `fullnat`, `local`). A service's active and inactive
//! connections are the sums over its real servers.
//!
//! The `node_ipvs_*` families are node_exporter's IPVS collector's, with its
//! names, types, HELP texts and label spelling, so that dashboards and
//! alerts written for a kernel IPVS director work on rvs unchanged; see
//! [`RvsCollector::node_ipvs`].
use std::fmt;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::MetricsSources;
use crate::counters::{DropReason, RedirectReason, WorkerCounters};
use crate::ipvs::{Dest, Rates, Service, ServiceKey, StatsSnapshot};

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone, Copy)]
enum Value {
    Count(u64),
    Int(i64),
    Real(f64),
}

/// One metric family before encoding, so that a family without series is
/// left out instead of written as a bare HELP/TYPE pair.
struct Family<'a> {
    name: &'a str,
    help: &'a str,
    kind: MetricType,
    series: Vec<(Labels, Value)>,
}

impl<'a> Family<'a> {
    fn counter(name: &'a str, help: &'a str) -> Family<'a> {
        Family {
            name,
            help,
            kind: MetricType::Counter,
            series: Vec::new(),
        }
    }
    fn gauge(name: &'a str, help: &'a str) -> Family<'a> {
        Family {
            name,
            help,
            kind: MetricType::Gauge,
            series: Vec::new(),
        }
    }
    fn push(&mut self, labels: Labels, v: Value) {
        self.series.push((labels, v));
    }

    fn encode(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let mut m = match self.series.as_slice() {
            [] => return Ok(()),
            // An unlabelled series is written `name value`, not `name{} value`.
            [(labels, v)] if labels.is_empty() => {
                let m = enc.encode_descriptor(self.name, self.help, None, self.kind)?;
                return encode_value(self.kind, *v, m);
            }
            _ => enc.encode_descriptor(self.name, self.help, None, self.kind)?,
        };
        for (labels, v) in &self.series {
            encode_value(self.kind, *v, m.encode_family(labels)?)?;
        }
        Ok(())
    }
}

fn encode_value(kind: MetricType, v: Value, e: MetricEncoder<'_>) -> fmt::Result {
    match (kind, v) {
        (MetricType::Counter, Value::Count(n)) => ConstCounter::new(n).encode(e),
        (MetricType::Counter, Value::Real(x)) => ConstCounter::new(x).encode(e),
        (MetricType::Counter, Value::Int(i)) => {
            ConstCounter::new(u64::try_from(i).unwrap_or(0)).encode(e)
        }
        (_, Value::Count(n)) => ConstGauge::new(n).encode(e),
        (_, Value::Int(i)) => ConstGauge::new(i).encode(e),
        (_, Value::Real(x)) => ConstGauge::new(x).encode(e),
    }
}

/// Busy and idle polls of one worker at the previous scrape.
#[derive(Debug, Clone, Copy, Default)]
struct PollMark {
    busy: u64,
    idle: u64,
    ratio: f64,
}

/// Reads [`MetricsSources`] on every scrape.
#[derive(Debug)]
pub struct RvsCollector {
    sources: MetricsSources,
    started: f64,
    /// Only the metrics thread scrapes, so this lock is never contended; it
    /// is there because `Collector::encode` takes `&self`.
    polls: Mutex<Vec<PollMark>>,
}

/// Worker-originated packets, as `kind` label values.
type WorkerGetter = fn(&WorkerCounters) -> u64;

const NETSTACK_SENT: [(&str, WorkerGetter); 7] = [
    ("arp_reply", |c| c.arp_replies.get()),
    ("arp_request", |c| c.arp_requests.get()),
    ("nd_advert", |c| c.nd_adverts.get()),
    ("nd_solicit", |c| c.nd_solicits.get()),
    ("echo_reply", |c| c.echo_replies.get()),
    ("announce", |c| c.gratuitous.get()),
    ("icmp_error", |c| c.icmp_errors.get()),
];

/// A service's or a real server's numbers at one moment.
struct StatsRow {
    labels: Labels,
    snap: StatsSnapshot,
    rates: Rates,
    active: u64,
    inactive: u64,
}

type StatsGetter = fn(&StatsRow) -> Value;

/// The families services and real servers share: (name after
/// `rvs_service_`/`rvs_real_`, help, kind, value).
const STATS_FAMILIES: [(&str, &str, MetricType, StatsGetter); 12] = [
    (
        "connections",
        "Connections scheduled since it was added or last zeroed",
        MetricType::Counter,
        |r| Value::Count(r.snap.conns),
    ),
    (
        "in_packets",
        "Packets from clients since it was added or last zeroed",
        MetricType::Counter,
        |r| Value::Count(r.snap.inpkts),
    ),
    (
        "out_packets",
        "Packets to clients since it was added or last zeroed",
        MetricType::Counter,
        |r| Value::Count(r.snap.outpkts),
    ),
    (
        "in_bytes",
        "Bytes from clients since it was added or last zeroed",
        MetricType::Counter,
        |r| Value::Count(r.snap.inbytes),
    ),
    (
        "out_bytes",
        "Bytes to clients since it was added or last zeroed",
        MetricType::Counter,
        |r| Value::Count(r.snap.outbytes),
    ),
    (
        "active_connections",
        "Connections in an active state (TCP established) now",
        MetricType::Gauge,
        |r| Value::Count(r.active),
    ),
    (
        "inactive_connections",
        "Connections in any other state now",
        MetricType::Gauge,
        |r| Value::Count(r.inactive),
    ),
    (
        "connections_per_second",
        "New connections per second, the IPVS rate estimator's 2-second EWMA",
        MetricType::Gauge,
        |r| Value::Count(r.rates.cps),
    ),
    (
        "in_packets_per_second",
        "Packets per second from clients, the IPVS rate estimator's EWMA",
        MetricType::Gauge,
        |r| Value::Count(r.rates.inpps),
    ),
    (
        "out_packets_per_second",
        "Packets per second to clients, the IPVS rate estimator's EWMA",
        MetricType::Gauge,
        |r| Value::Count(r.rates.outpps),
    ),
    (
        "in_bytes_per_second",
        "Bytes per second from clients, the IPVS rate estimator's EWMA",
        MetricType::Gauge,
        |r| Value::Count(r.rates.inbps),
    ),
    (
        "out_bytes_per_second",
        "Bytes per second to clients, the IPVS rate estimator's EWMA",
        MetricType::Gauge,
        |r| Value::Count(r.rates.outbps),
    ),
];

fn service_labels(key: &ServiceKey) -> Labels {
    match *key {
        ServiceKey::Addr { proto, addr, port } => vec![
            ("protocol", proto.name().to_ascii_lowercase()),
            ("vip", addr.to_string()),
            ("port", port.to_string()),
        ],
        ServiceKey::Fwmark { mark, ipv6 } => vec![
            ("fwmark", mark.to_string()),
            ("family", if ipv6 { "ipv6" } else { "ipv4" }.to_owned()),
        ],
    }
}

fn real_labels(service: &Labels, d: &Dest) -> Labels {
    let mut l = service.clone();
    l.push(("real", d.addr().to_string()));
    l.push(("real_port", d.port().to_string()));
    l.push(("forward", d.fwd().name().to_ascii_lowercase()));
    l
}

/// An address as node_exporter writes it: Go's `net.IP.String()`, which is
/// RFC 5952 like Rust's except that an IPv4-mapped IPv6 address comes out
/// dotted, as plain IPv4.
pub(super) fn go_ip(addr: IpAddr) -> String {
    match addr {
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => a.to_string(),
        },
        IpAddr::V4(a) => a.to_string(),
    }
}

/// node_exporter's backend labels of a service, in its order, without the
/// real server's: (`local_address`, `local_port`, `proto`, `local_mark`).
///
/// procfs reads them from /proc/net/ip_vs, where the kernel writes an
/// address service as `TCP  0A000001:0050` and a firewall-mark service as
/// `FWM  00000007`: so `proto` is the kernel's upper-case name and
/// `local_mark` empty for the former, and for the latter `proto` is `FWM`,
/// the address empty, the port `0` and the mark eight upper-case hex
/// digits, the same for an IPv4 and an IPv6 fwmark service. procfs knows
/// no `SCTP` line (it would file an SCTP service's real servers under the
/// service before it); rvs writes `SCTP` as the kernel does, which is what
/// procfs would give if it read that line as it reads `TCP` and `UDP`.
pub(super) fn node_ipvs_service_labels(key: &ServiceKey) -> [String; 4] {
    match *key {
        ServiceKey::Addr { proto, addr, port } => [
            go_ip(addr),
            port.to_string(),
            proto.name().to_owned(),
            String::new(),
        ],
        ServiceKey::Fwmark { mark, .. } => [
            String::new(),
            "0".to_owned(),
            "FWM".to_owned(),
            format!("{mark:08X}"),
        ],
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl RvsCollector {
    pub fn new(sources: MetricsSources) -> RvsCollector {
        let polls = vec![PollMark::default(); sources.workers.len()];
        RvsCollector {
            sources,
            started: unix_now(),
            polls: Mutex::new(polls),
        }
    }

    /// busy / (busy + idle) over the polls since the previous scrape (by any
    /// client), or since start for the first one. A window rather than the
    /// lifetime ratio, which would barely move after a day of uptime. A
    /// window without polls (two scrapes within one poll) keeps the last
    /// value.
    fn busy_ratios(&self) -> Vec<f64> {
        let mut marks = self.polls.lock().unwrap_or_else(|e| e.into_inner());
        self.sources
            .workers
            .iter()
            .zip(marks.iter_mut())
            .map(|(w, m)| {
                let (busy, idle) = (w.counters.busy_polls.get(), w.counters.idle_polls.get());
                let (db, di) = (busy.wrapping_sub(m.busy), idle.wrapping_sub(m.idle));
                let total = db.saturating_add(di);
                if total > 0 {
                    m.ratio = db as f64 / total as f64;
                }
                m.busy = busy;
                m.idle = idle;
                m.ratio
            })
            .collect()
    }

    fn build_info(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let mut m = enc.encode_descriptor(
            "rvs_build",
            "The rvs version, its git revision and the DPDK version it runs with",
            None,
            MetricType::Info,
        )?;
        let labels: Labels = vec![
            ("version", crate::version::VERSION.to_owned()),
            ("git_revision", crate::version::GIT_REV.to_owned()),
            ("dpdk_version", self.sources.dpdk_version.clone()),
        ];
        m.encode_info(&labels)?;
        let mut start = Family::gauge(
            "rvs_start_time_seconds",
            "When the metrics server started, in seconds since the Unix epoch",
        );
        start.push(Vec::new(), Value::Real(self.started));
        start.encode(enc)
    }

    fn workers(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let mut rx = Family::counter(
            "rvs_worker_rx_packets",
            "Packets the worker received from its rx queues",
        );
        let mut tx = Family::counter(
            "rvs_worker_tx_packets",
            "Packets the worker handed to its tx queues",
        );
        let mut consumed = Family::counter(
            "rvs_worker_consumed_packets",
            "Packets the worker used up without a drop (ARP and ND answers it learned from)",
        );
        let mut dropped = Family::counter(
            "rvs_worker_dropped_packets",
            "Packets the worker dropped, by reason",
        );
        let mut polls = Family::counter(
            "rvs_worker_polls",
            "Rx polls of the worker: busy ones received at least one packet, idle ones none",
        );
        let mut busy = Family::gauge(
            "rvs_worker_busy_ratio",
            "Share of the worker's polls that received packets, since the previous scrape",
        );
        let mut sent = Family::counter(
            "rvs_worker_netstack_sent_packets",
            "Packets the worker's network stack originated, by kind",
        );
        let mut conflicts = Family::counter(
            "rvs_worker_address_conflicts",
            "ARP or NA packets from other hosts that claimed an address rvs owns",
        );
        let mut conns = Family::gauge(
            "rvs_worker_conns",
            "Conns and persistence templates in the worker's table",
        );
        let mut capacity = Family::gauge(
            "rvs_worker_conn_capacity",
            "Capacity of the worker's conn table (new conns are dropped when full)",
        );
        let mut evicted = Family::counter(
            "rvs_worker_conns_evicted",
            "Conns removed before their time: the oldest embryonic ones when the table was full (table_full) or FULLNAT local ports ran out (local_ports), those the drop_entry defence chose (drop_entry)",
        );
        let mut defense = Family::gauge(
            "rvs_worker_defense_level",
            "The worker's defence sysctls: 0 off, 1 automatic and off now, 2 automatic and on now, 3 always on",
        );
        let mut redirected = Family::counter(
            "rvs_worker_redirected_packets",
            "Packets the worker handed over a ring to the worker that owns their flow, by why they landed elsewhere: the port has no RSS rvs follows (no_rss), a persistent service's conns live on the client's worker (client_owned), a fragment or ICMP error hashed by other fields (derived), a sync message relayed (sync), a NAT reply to the worker that made its conn (nat_reply)",
        );
        let mut express = Family::counter(
            "rvs_worker_express_packets",
            "Packets of established IPv4 conns, and clients' answers to TCP handshakes, the worker forwarded by their conn's precomputed rewrite (the express lane), counted once a second",
        );
        let mut icmp_limited = Family::counter(
            "rvs_worker_icmp_rate_limited",
            "ICMP messages rvs did not send for the rate limits: the global budget or the destination's",
        );
        let mut sync_msgs = Family::counter(
            "rvs_worker_sync_messages",
            "Connection sync messages the worker sent (master) or took off its port (backup)",
        );
        let mut sync_conns = Family::counter(
            "rvs_worker_sync_conns",
            "Conns and templates the worker put into sync messages (sent) or installed from them (received)",
        );
        let mut sync_bytes = Family::counter(
            "rvs_worker_sync_sent_bytes",
            "Bytes of the sync messages the worker sent (UDP payload)",
        );
        let mut fragmented = Family::counter(
            "rvs_worker_fragmented_datagrams",
            "IPv4 datagrams over the egress MTU sent on in fragments",
        );
        let mut fragments = Family::counter(
            "rvs_worker_fragments_created",
            "Fragments made of datagrams over the egress MTU",
        );
        let mut lports_used = Family::gauge(
            "rvs_laddr_ports_in_use",
            "FULLNAT local ports of the worker's slice held by conns, per local address",
        );
        let mut lports = Family::gauge(
            "rvs_laddr_ports",
            "FULLNAT local ports in the worker's slice of the local address",
        );
        let ratios = self.busy_ratios();
        for (w, ratio) in self.sources.workers.iter().zip(ratios) {
            let c = &w.counters;
            let base: Labels = vec![
                ("worker", w.index.to_string()),
                ("lcore", w.lcore.to_string()),
            ];
            let with = |k: &'static str, v: &str| {
                let mut l = base.clone();
                l.push((k, v.to_owned()));
                l
            };
            rx.push(base.clone(), Value::Count(c.rx_packets.get()));
            tx.push(base.clone(), Value::Count(c.tx_packets.get()));
            consumed.push(base.clone(), Value::Count(c.consumed.get()));
            for r in DropReason::ALL {
                dropped.push(with("reason", r.name()), Value::Count(c.drops(r)));
            }
            polls.push(with("kind", "busy"), Value::Count(c.busy_polls.get()));
            polls.push(with("kind", "idle"), Value::Count(c.idle_polls.get()));
            busy.push(base.clone(), Value::Real(ratio));
            for (kind, get) in NETSTACK_SENT {
                sent.push(with("kind", kind), Value::Count(get(c)));
            }
            conns.push(base.clone(), Value::Count(c.conns.get()));
            capacity.push(base.clone(), Value::Count(c.conn_capacity.get()));
            let p = &c.pressure;
            evicted.push(with("reason", "table_full"), Value::Count(p.evicted.get()));
            evicted.push(
                with("reason", "local_ports"),
                Value::Count(p.evicted_ports.get()),
            );
            evicted.push(
                with("reason", "drop_entry"),
                Value::Count(p.dropped_entries.get()),
            );
            for (strategy, level) in [
                ("drop_entry", &p.drop_entry),
                ("drop_packet", &p.drop_packet),
                ("secure_tcp", &p.secure_tcp),
            ] {
                defense.push(with("strategy", strategy), Value::Count(level.get()));
            }
            for r in RedirectReason::ALL {
                redirected.push(with("reason", r.name()), Value::Count(c.redirects(r)));
            }
            express.push(base.clone(), Value::Count(c.express.get()));
            for (limit, n) in [
                ("global", c.icmp_limited_global.get()),
                ("host", c.icmp_limited_host.get()),
            ] {
                icmp_limited.push(with("limit", limit), Value::Count(n));
            }
            fragmented.push(base.clone(), Value::Count(c.frag_ok.get()));
            let sc = &c.sync;
            for (dir, msgs, conns) in [
                ("sent", &sc.msgs_sent, &sc.conns_sent),
                ("received", &sc.msgs_received, &sc.conns_received),
            ] {
                sync_msgs.push(with("direction", dir), Value::Count(msgs.get()));
                sync_conns.push(with("direction", dir), Value::Count(conns.get()));
            }
            sync_bytes.push(base.clone(), Value::Count(sc.bytes_sent.get()));
            fragments.push(base.clone(), Value::Count(c.frag_creates.get()));
            // Published per service: one series per address, summed.
            let mut per_laddr: Vec<(std::net::IpAddr, u64, u32)> = Vec::new();
            for u in c.laddr.load().iter() {
                match per_laddr.iter_mut().find(|p| p.0 == u.laddr) {
                    Some(p) => p.1 += u64::from(u.in_use),
                    None => per_laddr.push((u.laddr, u64::from(u.in_use), u.ports)),
                }
            }
            for (laddr, in_use, ports) in per_laddr {
                let l = with("laddr", &laddr.to_string());
                lports_used.push(l.clone(), Value::Count(in_use));
                lports.push(l, Value::Count(u64::from(ports)));
            }
            conflicts.push(base, Value::Count(c.address_conflicts.get()));
        }
        for f in [
            rx,
            tx,
            consumed,
            dropped,
            polls,
            busy,
            sent,
            conflicts,
            conns,
            capacity,
            evicted,
            defense,
            redirected,
            express,
            icmp_limited,
            fragmented,
            fragments,
            sync_msgs,
            sync_conns,
            sync_bytes,
            lports_used,
            lports,
        ] {
            f.encode(enc)?;
        }
        Ok(())
    }

    fn ports(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let mut info = Family::gauge(
            "rvs_port_info",
            "Always 1: the port's configured name, ethdev name, driver and MAC address",
        );
        let c = Family::counter;
        let mut rx_packets = c("rvs_port_rx_packets", "Packets the port received");
        let mut tx_packets = c("rvs_port_tx_packets", "Packets the port sent");
        let mut rx_bytes = c("rvs_port_rx_bytes", "Bytes the port received");
        let mut tx_bytes = c("rvs_port_tx_bytes", "Bytes the port sent");
        let mut rx_missed = c(
            "rvs_port_rx_missed_packets",
            "Packets the NIC dropped because the rx queues were full (imissed)",
        );
        let mut rx_errors = c(
            "rvs_port_rx_errors",
            "Erroneous packets the port received (ierrors)",
        );
        let mut tx_errors = c("rvs_port_tx_errors", "Packets the port failed to send");
        let mut rx_nombuf = c(
            "rvs_port_rx_nombuf",
            "Rx mbuf allocation failures: the pool ran dry under the port",
        );
        let mut up = Family::gauge("rvs_port_up", "1 when the port's link is up, 0 when down");
        let mut speed = Family::gauge(
            "rvs_port_speed_mbps",
            "The port's link speed in Mbit/s (0 when down or unknown)",
        );
        let mut flow_rules = Family::gauge(
            "rvs_port_flow_rules",
            "rte_flow rules installed to queue FULLNAT replies by local port ([[port]] flow_steering; only ports with it on)",
        );
        let mut xstat = c(
            "rvs_port_xstat",
            "The port driver's extended statistics (rte_eth_xstats), by name",
        );
        for p in &self.sources.ports {
            let r = (p.read)();
            let base: Labels = vec![("port", p.name.clone()), ("device", p.device.clone())];
            let mut l = base.clone();
            l.push(("driver", p.driver.clone()));
            l.push(("mac", p.mac.clone()));
            info.push(l, Value::Count(1));
            let s = r.stats;
            for (f, v) in [
                (&mut rx_packets, s.ipackets),
                (&mut tx_packets, s.opackets),
                (&mut rx_bytes, s.ibytes),
                (&mut tx_bytes, s.obytes),
                (&mut rx_missed, s.imissed),
                (&mut rx_errors, s.ierrors),
                (&mut tx_errors, s.oerrors),
                (&mut rx_nombuf, s.rx_nombuf),
            ] {
                f.push(base.clone(), Value::Count(v));
            }
            up.push(base.clone(), Value::Count(u64::from(r.link.up)));
            // DPDK reports an unknown speed as UINT32_MAX.
            let mbps = if r.link.up && r.link.speed_mbps != u32::MAX {
                r.link.speed_mbps
            } else {
                0
            };
            speed.push(base.clone(), Value::Count(u64::from(mbps)));
            if let Some(n) = &p.flow_rules {
                flow_rules.push(
                    base.clone(),
                    Value::Count(n.load(std::sync::atomic::Ordering::Relaxed)),
                );
            }
            let mut seen = std::collections::HashSet::new();
            for (name, v) in r.xstats {
                // Two equal names would make two identical series, which
                // Prometheus rejects with the whole scrape.
                if seen.insert(name.clone()) {
                    let mut l = base.clone();
                    l.push(("name", name));
                    xstat.push(l, Value::Count(v));
                }
            }
        }
        for f in [
            info, rx_packets, tx_packets, rx_bytes, tx_bytes, rx_missed, rx_errors, tx_errors,
            rx_nombuf, up, speed, flow_rules, xstat,
        ] {
            f.encode(enc)?;
        }
        Ok(())
    }

    fn pools(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let mut mbufs = Family::gauge(
            "rvs_mempool_mbufs",
            "Mbufs of the packet pool, in use (rings, caches, packets in flight) and available",
        );
        for p in &self.sources.pools {
            let r = (p.read)();
            for (state, n) in [("in_use", r.in_use), ("available", r.available)] {
                mbufs.push(
                    vec![("pool", p.name.clone()), ("state", state.to_owned())],
                    Value::Count(u64::from(n)),
                );
            }
        }
        mbufs.encode(enc)
    }

    fn session_log(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let Some(c) = &self.sources.session_log else {
            return Ok(());
        };
        let mut lines = Family::counter(
            "rvs_session_log_lines",
            "NAT session log lines written (conn starts and ends)",
        );
        lines.push(Vec::new(), Value::Count(c.lines()));
        lines.encode(enc)?;
        let mut dropped = Family::counter(
            "rvs_session_log_dropped",
            "NAT session log records lost: a worker's ring full, past the rate, or a failed write",
        );
        for (reason, n) in c.dropped() {
            dropped.push(vec![("reason", reason.to_owned())], Value::Count(n));
        }
        dropped.encode(enc)
    }

    fn announce(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let Some(status) = &self.sources.announce else {
            return Ok(());
        };
        let mut announced = Family::gauge(
            "rvs_vip_announced",
            "1 while the VIP's route is in the [announce] table for the routing daemon (a real server available, the port's link up)",
        );
        for (vip, on) in status.snapshot() {
            announced.push(vec![("vip", vip.to_string())], Value::Int(i64::from(on)));
        }
        announced.encode(enc)
    }

    fn vrrp(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        use crate::vrrp::status::{RxDrop, STATES};
        let Some(v) = &self.sources.vrrp else {
            return Ok(());
        };
        let mut state = Family::gauge(
            "rvs_vrrp_state",
            "The VRRP instance's state: 0 INIT, 1 BACKUP, 2 MASTER",
        );
        let mut moves = Family::counter(
            "rvs_vrrp_transitions",
            "VRRP state transitions, by the state entered",
        );
        let mut adverts = Family::counter("rvs_vrrp_adverts", "VRRP adverts sent and received");
        for i in &v.instances {
            let l = || vec![("instance", i.name.clone()), ("vrid", i.vrid.to_string())];
            let n = STATES.iter().position(|s| *s == i.state()).unwrap_or(0);
            state.push(l(), Value::Count(n as u64));
            for s in STATES {
                let mut labels = l();
                labels.push(("to", s.name().to_owned()));
                moves.push(labels, Value::Count(i.transitions(s)));
            }
            for (dir, c) in [("sent", &i.adverts_sent), ("received", &i.adverts_received)] {
                let mut labels = l();
                labels.push(("direction", dir.to_owned()));
                let n = c.load(std::sync::atomic::Ordering::Relaxed);
                adverts.push(labels, Value::Count(n));
            }
        }
        state.encode(enc)?;
        moves.encode(enc)?;
        adverts.encode(enc)?;
        let mut refused = Family::counter(
            "rvs_vrrp_adverts_refused",
            "VRRP messages refused (RFC 5798 section 7.1), by reason",
        );
        for r in RxDrop::ALL {
            refused.push(
                vec![("reason", r.name().to_owned())],
                Value::Count(v.dropped(r)),
            );
        }
        refused.encode(enc)
    }

    fn services(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let set = self.sources.services.load();
        let mut services = Vec::new();
        let mut reals = Vec::new();
        let mut weight = Family::gauge(
            "rvs_real_weight",
            "The real server's scheduling weight (0: quiesced, takes no new connections)",
        );
        let mut persistent = Family::gauge(
            "rvs_real_persistent_connections",
            "Persistence templates that point at the real server",
        );
        let mut overloaded = Family::gauge(
            "rvs_real_overloaded",
            "1 while the real server is over its upper connection threshold",
        );
        let mut count = Family::gauge(
            "rvs_service_reals",
            "Real servers configured for the service",
        );
        let mut up = Family::gauge(
            "rvs_dest_up",
            "1 while the real server passes its health check, 0 while it is down (checked real servers only)",
        );
        let mut went = Family::counter(
            "rvs_dest_health_transitions",
            "Times the real server's health check took it down (to=\"down\") or brought it back (to=\"up\")",
        );
        let mut sorry = Family::gauge(
            "rvs_service_sorry_in_use",
            "1 while the service's sorry server stands in for real servers that are all down",
        );
        for s in set.services() {
            let svc: &Service = s;
            let labels = service_labels(&svc.key());
            let (mut active, mut inactive) = (0u64, 0u64);
            for d in svc.dests() {
                let l = real_labels(&labels, d);
                weight.push(l.clone(), Value::Int(i64::from(d.weight())));
                persistent.push(l.clone(), Value::Count(u64::from(d.persistconns())));
                overloaded.push(l.clone(), Value::Count(u64::from(d.is_overloaded())));
                active += u64::from(d.activeconns());
                inactive += u64::from(d.inactconns());
                reals.push(StatsRow {
                    labels: l,
                    snap: d.stats.snapshot(),
                    rates: d.stats.rates(),
                    active: u64::from(d.activeconns()),
                    inactive: u64::from(d.inactconns()),
                });
            }
            count.push(labels.clone(), Value::Count(svc.dests().len() as u64));
            // Health: real servers a check took out of the list included.
            for d in svc.configured_dests() {
                let Some(is_up) = d.health() else { continue };
                let l = real_labels(&labels, d);
                up.push(l.clone(), Value::Count(u64::from(is_up)));
                let (down, back) = d.transitions();
                for (to, n) in [("down", down), ("up", back)] {
                    let mut l = l.clone();
                    l.push(("to", to.to_string()));
                    went.push(l, Value::Count(n));
                }
            }
            sorry.push(
                labels.clone(),
                Value::Count(u64::from(svc.sorry().is_some())),
            );
            services.push(StatsRow {
                labels,
                snap: svc.stats.snapshot(),
                rates: svc.stats.rates(),
                active,
                inactive,
            });
        }
        for (prefix, what, rows) in [
            ("rvs_service_", "Service", &services),
            ("rvs_real_", "Real server", &reals),
        ] {
            for (name, help, kind, get) in STATS_FAMILIES {
                let name = format!("{prefix}{name}");
                let help = format!("{what}: {help}");
                let mut f = Family {
                    name: &name,
                    help: &help,
                    kind,
                    series: Vec::with_capacity(rows.len()),
                };
                for r in rows.iter() {
                    f.push(r.labels.clone(), get(r));
                }
                f.encode(enc)?;
            }
        }
        for f in [count, weight, persistent, overloaded, up, went, sorry] {
            f.encode(enc)?;
        }
        Ok(())
    }

    /// node_exporter's IPVS collector, as it would read rvs if rvs were
    /// the kernel.
    ///
    /// The totals are /proc/net/ip_vs_stats: the director's own counters,
    /// which outlive deleted services (see `ServiceTable`), not a sum over
    /// the services there are now, which would fall when one is deleted.
    /// node_exporter types them counters, as they are here. Older kernels
    /// kept conns and packets in 32 bits, whose wrap a counter reads as a
    /// reset; rvs's, like today's kernel's, are 64 bits. FULLNAT counts as
    /// NAT does: incoming is client to real server, outgoing the replies
    /// that come back through rvs (DR and TUN have none, as in the kernel).
    ///
    /// The backends are /proc/net/ip_vs: each service's list of real
    /// servers as the workers schedule over it, so a real server a health
    /// check took out is missing, a quiesced one has weight 0, and a sorry
    /// server in use is there (keepalived does the same to the kernel's
    /// list). FULLNAT, which the kernel lacks, changes nothing here: the
    /// forwarding method is no label of node_exporter's, and the local
    /// address is not a real server, so FULLNAT real servers are listed as
    /// any other. Like node_exporter, series with equal labels are summed.
    fn node_ipvs(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let set = self.sources.services.load();
        let t = set.total().snapshot();
        for (name, help, v) in [
            (
                "node_ipvs_connections",
                "The total number of connections made.",
                t.conns,
            ),
            (
                "node_ipvs_incoming_packets",
                "The total number of incoming packets.",
                t.inpkts,
            ),
            (
                "node_ipvs_outgoing_packets",
                "The total number of outgoing packets.",
                t.outpkts,
            ),
            (
                "node_ipvs_incoming_bytes",
                "The total amount of incoming data.",
                t.inbytes,
            ),
            (
                "node_ipvs_outgoing_bytes",
                "The total amount of outgoing data.",
                t.outbytes,
            ),
        ] {
            let mut f = Family::counter(name, help);
            f.push(Vec::new(), Value::Count(v));
            f.encode(enc)?;
        }

        // Keyed by the label values in node_exporter's order; a BTreeMap
        // also gives every scrape the same order.
        let mut backends: std::collections::BTreeMap<[String; 6], (u64, u64, i64)> =
            std::collections::BTreeMap::new();
        for svc in set.services() {
            let [laddr, lport, proto, mark] = node_ipvs_service_labels(&svc.key());
            for d in svc.dests() {
                let key = [
                    laddr.clone(),
                    lport.clone(),
                    go_ip(d.addr()),
                    d.port().to_string(),
                    proto.clone(),
                    mark.clone(),
                ];
                let e = backends.entry(key).or_default();
                e.0 += u64::from(d.activeconns());
                e.1 += u64::from(d.inactconns());
                e.2 += i64::from(d.weight());
            }
        }
        let mut active = Family::gauge(
            "node_ipvs_backend_connections_active",
            "The current active connections by local and remote address.",
        );
        let mut inactive = Family::gauge(
            "node_ipvs_backend_connections_inactive",
            "The current inactive connections by local and remote address.",
        );
        let mut weight = Family::gauge(
            "node_ipvs_backend_weight",
            "The current backend weight by local and remote address.",
        );
        for (values, (a, i, w)) in backends {
            let labels: Labels = NODE_IPVS_BACKEND_LABELS
                .iter()
                .copied()
                .zip(values)
                .collect();
            active.push(labels.clone(), Value::Count(a));
            inactive.push(labels.clone(), Value::Count(i));
            weight.push(labels, Value::Int(w));
        }
        for f in [active, inactive, weight] {
            f.encode(enc)?;
        }
        Ok(())
    }
}

/// node_exporter's `fullIpvsBackendLabels`, in its order.
const NODE_IPVS_BACKEND_LABELS: [&str; 6] = [
    "local_address",
    "local_port",
    "remote_address",
    "remote_port",
    "proto",
    "local_mark",
];

impl Collector for RvsCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        self.build_info(&mut enc)?;
        self.workers(&mut enc)?;
        self.ports(&mut enc)?;
        self.pools(&mut enc)?;
        self.services(&mut enc)?;
        self.node_ipvs(&mut enc)?;
        self.session_log(&mut enc)?;
        self.announce(&mut enc)?;
        self.vrrp(&mut enc)
    }
}
