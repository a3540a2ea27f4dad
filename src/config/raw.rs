//! The file exactly as written. Every field is optional and every number is an
//! `i64`, so that serde only rejects what is structurally wrong (unknown keys,
//! wrong types) and all range and cross-field checks happen in validation,
//! where each error can be collected with its key instead of aborting the
//! parse at the first one.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub eal: Option<RawEal>,
    pub dataplane: Option<RawDataplane>,
    pub port: Option<Vec<RawPort>>,
    pub route: Option<Vec<RawRoute>>,
    pub neighbour: Option<Vec<RawNeighbour>>,
    pub ctl: Option<RawCtl>,
    pub metrics: Option<RawMetrics>,
    pub log: Option<RawLog>,
    pub health: Option<RawHealth>,
    pub session_log: Option<RawSessionLog>,
    pub keepalived: Option<RawKeepalived>,
    pub icmp: Option<super::icmp::RawIcmp>,
    pub defense: Option<RawDefense>,
    pub limits: Option<RawLimits>,
    pub announce: Option<super::announce::RawAnnounce>,
    pub vrrp: Option<Vec<super::vrrp::RawVrrp>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefense {
    pub amemthresh: Option<i64>,
    pub am_droprate: Option<i64>,
    pub drop_entry: Option<i64>,
    pub drop_packet: Option<i64>,
    pub secure_tcp: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub source_rate: Option<i64>,
    pub source_burst: Option<i64>,
    pub source_table: Option<i64>,
    pub source_prefix_v4: Option<i64>,
    pub source_prefix_v6: Option<i64>,
    pub service: Option<Vec<RawServiceLimit>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServiceLimit {
    #[serde(rename = "virtual")]
    pub virtual_: Option<String>,
    pub max_conns: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSessionLog {
    pub file: Option<String>,
    pub syslog: Option<String>,
    pub facility: Option<String>,
    pub rate: Option<i64>,
    pub ring: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKeepalived {
    pub config: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealth {
    pub sources: Option<Vec<String>>,
    pub tap: Option<String>,
    pub table: Option<i64>,
    /// ldirectord's keys, checked in validation so each error names its key.
    pub check: Option<Vec<toml::Table>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEal {
    pub args: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDataplane {
    pub main_lcore: Option<i64>,
    pub workers: Option<Vec<i64>>,
    pub burst: Option<i64>,
    pub mbufs: Option<i64>,
    pub mbuf_cache: Option<i64>,
    pub neighbours: Option<i64>,
    pub conns: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPort {
    pub name: Option<String>,
    pub devargs: Option<String>,
    pub queues: Option<i64>,
    pub rx_descriptors: Option<i64>,
    pub tx_descriptors: Option<i64>,
    pub promiscuous: Option<bool>,
    pub mtu: Option<i64>,
    pub mac: Option<String>,
    pub addresses: Option<Vec<String>>,
    pub accept_other_mac: Option<bool>,
    pub rss: Option<String>,
    pub flow_steering: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub prefix: Option<String>,
    pub via: Option<String>,
    pub port: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNeighbour {
    pub ip: Option<String>,
    pub mac: Option<String>,
    pub port: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCtl {
    pub socket: Option<String>,
    pub rules: Option<String>,
    pub persist: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub level: Option<String>,
}
