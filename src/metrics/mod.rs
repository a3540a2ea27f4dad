//! The Prometheus exporter: `/metrics` over plain HTTP, served by one
//! control thread.
//!
//! # Why `prometheus-client`
//!
//! The exposition is built with `prometheus-client`, the Prometheus
//! project's own Rust client (github.com/prometheus/client_rust), rather than
//! the older `prometheus` crate: it is the official, actively maintained one;
//! its registry is typed (a metric's kind and label set are Rust types, so a
//! counter cannot be written as a gauge by mistake); it encodes OpenMetrics,
//! the format Prometheus asks for first; and its `Collector` trait lets an
//! exporter produce values at scrape time without keeping a second copy.
//! What it does not write is the classic text format 0.0.4 that `curl`,
//! `promtool check metrics` and older scrapers read: [`http`] derives that
//! from the OpenMetrics text (see [`http::openmetrics_to_text`]).
//!
//! # Why a collector
//!
//! Workers keep plain single-writer atomics ([`WorkerCounters`], the
//! per-worker slots of [`crate::ipvs::Stats`]) and never learn that anyone
//! reads them. One [`prometheus_client::collector::Collector`] reads and
//! sums them when a scrape comes in. A registry of `Counter`s updated by a
//! poller would hold a second, staler copy of every number, and its label
//! families would keep a series for every service that ever existed; the
//! collector shows exactly what exists at the moment of the scrape, from the
//! published [`ServiceSet`] snapshot, and costs nothing between scrapes.
//! The registry holding it is built once, when the server starts.
//!
//! # What it shows
//!
//! Names start with `rvs_`, carry their unit, and counters end in `_total`.
//! `worker`/`lcore` label per-worker series, `port`/`device` per-port ones,
//! `protocol`/`vip`/`port` (or `fwmark`/`family`) a virtual service, and
//! `real`/`real_port`/`forward` are added for its real servers. Beside them,
//! node_exporter's `node_ipvs_*` families, under node_exporter's names and
//! labels, for the dashboards and alerts written for kernel IPVS. The full
//! list is in [`collector`].
mod collector;
pub mod http;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::counters::WorkerCounters;
use crate::dpdk::{LinkState, PortStats};
use crate::ipvs::ServiceSet;

pub use collector::RvsCollector;
pub use http::MetricsServer;

/// One worker as the exporter sees it.
#[derive(Debug, Clone)]
pub struct WorkerSource {
    /// The worker's index (its rx/tx queue number).
    pub index: usize,
    pub lcore: u32,
    pub counters: Arc<WorkerCounters>,
}

/// What one read of a port gives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortReading {
    pub stats: PortStats,
    pub link: LinkState,
    pub xstats: Vec<(String, u64)>,
}

/// A port: its names, and how to read it (an ethdev read in rvsd, a fake in
/// tests, which is what keeps the exporter testable without EAL).
pub struct PortSource {
    /// The name the configuration gives the port.
    pub name: String,
    /// The ethdev name (the devargs up to the first comma).
    pub device: String,
    pub driver: String,
    pub mac: String,
    pub read: Box<dyn Fn() -> PortReading + Send + Sync>,
    /// `[[port]] flow_steering`'s installed rules; None where it is off.
    pub flow_rules: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl fmt::Debug for PortSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortSource")
            .field("name", &self.name)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

/// Mbufs of a pool at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolReading {
    pub in_use: u32,
    pub available: u32,
}

/// An mbuf pool and how to read it.
pub struct PoolSource {
    pub name: String,
    pub read: Box<dyn Fn() -> PoolReading + Send + Sync>,
}

impl fmt::Debug for PoolSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolSource")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Everything the exporter reads. All of it is shared with the daemon, none
/// of it is written by the exporter.
#[derive(Debug)]
pub struct MetricsSources {
    pub workers: Vec<WorkerSource>,
    pub ports: Vec<PortSource>,
    pub pools: Vec<PoolSource>,
    /// The services as last published to the workers.
    pub services: Arc<ArcSwap<ServiceSet>>,
    /// The DPDK version rvsd runs with (e.g. "22.11.4").
    pub dpdk_version: String,
    /// `[session_log]`'s counters, when it is on.
    pub session_log: Option<crate::sessionlog::writer::Counters>,
    /// `[announce]`'s VIP routes, when it is on.
    pub announce: Option<Arc<crate::announce::Status>>,
    /// `[[vrrp]]`'s instances, when there are any.
    pub vrrp: Option<Arc<crate::vrrp::status::Status>>,
}

/// How rvsd reads a port: by ethdev id, so the metrics thread holds no
/// `Port` (the daemon stops the server before it closes its ports).
pub fn port_source(
    name: &str,
    port: &crate::dpdk::Port,
    flow_rules: Option<Arc<std::sync::atomic::AtomicU64>>,
) -> PortSource {
    let id = port.id();
    PortSource {
        name: name.to_owned(),
        device: port.name().to_owned(),
        driver: port.driver().to_owned(),
        mac: crate::wire::MacAddr(port.mac()).to_string(),
        read: Box::new(move || PortReading {
            stats: crate::dpdk::ethdev::stats(id),
            link: crate::dpdk::ethdev::link(id),
            xstats: crate::dpdk::ethdev::xstats(id),
        }),
        flow_rules,
    }
}

/// How rvsd reads an mbuf pool.
pub fn pool_source(name: &str, pool: Arc<crate::dpdk::Mempool>) -> PoolSource {
    PoolSource {
        name: name.to_owned(),
        read: Box::new(move || PoolReading {
            in_use: pool.in_use(),
            available: pool.available(),
        }),
    }
}

/// The DPDK version rvsd runs with, without the "DPDK " prefix.
pub fn dpdk_version() -> String {
    let v = crate::dpdk::runtime_version();
    v.strip_prefix("DPDK ").unwrap_or(&v).to_owned()
}
