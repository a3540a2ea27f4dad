//! rvsd's configuration file: TOML parsed into loosely typed raw structs, then
//! validated into the public types below with every problem collected, so an
//! operator fixes a broken file in one pass instead of one error per restart.
//!
//! `conf/rvsd.toml` is the documented sample; its test below keeps the two in
//! step.

mod announce;
mod health;
mod icmp;
mod net;
mod pressure;
mod raw;
#[cfg(test)]
mod tests;
mod vrrp;

pub use announce::AnnounceConfig;
pub use health::{HealthCheck, HealthConfig};
pub use net::{IfAddr, NetParseError, Prefix};
pub use pressure::DEFAULT_SOURCE_TABLE;
pub use vrrp::VrrpConfig;

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use raw::{RawConfig, RawDataplane, RawNeighbour, RawPort, RawRoute, RawSessionLog};

use crate::sessionlog::writer::{Sink, WriterConfig};

pub const DEFAULT_BURST: u16 = 32;
pub const DEFAULT_MBUFS: u32 = 8191;
pub const DEFAULT_MBUF_CACHE: u32 = 256;
pub const DEFAULT_NEIGHBOURS: u32 = 4096;
/// The most conns a worker's table may be given (`dataplane.conns`), and
/// the least.
pub const MAX_CONNS: u32 = 1 << 27;
pub const MIN_CONNS: u32 = 1024;
pub const DEFAULT_DESCRIPTORS: u16 = 1024;
pub const DEFAULT_CTL_SOCKET: &str = "/run/rvsd.sock";
pub const DEFAULT_METRICS_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 9360);

/// Lcore ids must stay below this; it bounds DPDK's per-lcore arrays.
pub const MAX_LCORES: u32 = 1024;

const MIN_MBUFS: u32 = 1023;
const MAX_MBUF_CACHE: u32 = 512;
// DPDK refuses a mempool whose per-lcore cache exceeds n / 1.5; the two
// bounds above make that hold for every accepted pair, so it needs no check.
const _: () = assert!(MAX_MBUF_CACHE * 3 <= MIN_MBUFS * 2);

/// `sun_path` is 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub eal: EalConfig,
    pub dataplane: DataplaneConfig,
    pub ports: Vec<PortConfig>,
    pub routes: Vec<RouteConfig>,
    /// Static neighbours: never resolved, never aged out.
    pub neighbours: Vec<NeighbourConfig>,
    pub ctl: CtlConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub health: HealthConfig,
    /// `[session_log]`: `None` when off (the default).
    pub session_log: Option<SessionLogConfig>,
    pub keepalived: KeepalivedConfig,
    /// `[icmp]`: the ICMP rate limits (the kernel's defaults when absent).
    pub icmp: crate::netstack::IcmpLimits,
    /// `[defense]` and `[limits]`: conn-table pressure.
    pub pressure: crate::dataplane::pressure::PressureConfig,
    /// `[announce]`: health-gated VIP routes for a routing daemon; `None`
    /// when off (the default).
    pub announce: Option<AnnounceConfig>,
    /// `[[vrrp]]`: the virtual routers rvsd runs (none by default).
    pub vrrp: Vec<VrrpConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLogConfig {
    pub writer: WriterConfig,
    /// Records each worker's ring holds until the writer drains it.
    pub ring: usize,
}

/// `[keepalived]`: a keepalived.conf whose LVS part rvsd applies at start
/// and again on SIGHUP (see src/keepalived).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeepalivedConfig {
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EalConfig {
    /// Extra EAL arguments, appended verbatim after the ones rvsd derives.
    pub args: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataplaneConfig {
    pub main_lcore: u32,
    pub workers: Vec<u32>,
    pub burst: u16,
    pub mbufs: u32,
    pub mbuf_cache: u32,
    pub neighbours: u32,
    /// Connection table capacity of each worker (conns and templates);
    /// None: sized from the memory rvsd is given (`crate::memory`).
    pub conns: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    pub name: String,
    pub devargs: String,
    pub queues: u16,
    pub rx_descriptors: u16,
    pub tx_descriptors: u16,
    pub promiscuous: bool,
    pub mtu: Option<u16>,
    /// A MAC address to set on the port instead of the device's own.
    pub mac: Option<[u8; 6]>,
    pub addresses: Vec<IfAddr>,
    /// Unicast frames for other MACs than the port's are the port's too
    /// (else they are dropped as other_host).
    pub accept_other_mac: bool,
    /// How the port's packets are spread over the rx queues, which decides
    /// which worker owns a flow (`dataplane::steer`).
    pub rss: RssMode,
    /// rte_flow rules queue FULLNAT replies by local port (`flowsteer`).
    pub flow_steering: bool,
}

/// `[[port]] rss`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RssMode {
    /// The device's RSS, read back at start; the redirect ring where the
    /// device has none.
    #[default]
    Device,
    /// The peer spreads in software as rvs's `Spread::software` does (a
    /// test or bench generator on a virtual device without RSS).
    Software,
    /// Ownership ignores RSS: the redirect ring for every flow that lands
    /// on another worker's queue.
    Off,
}

impl RssMode {
    /// As the configuration writes it.
    pub fn name(self) -> &'static str {
        match self {
            RssMode::Device => "device",
            RssMode::Software => "software",
            RssMode::Off => "off",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    pub prefix: Prefix,
    /// `None` for an on-link route.
    pub via: Option<IpAddr>,
    /// Name of the egress port, resolved from the gateway's connected subnet
    /// when the file did not name one.
    pub port: String,
}

/// A permanent ARP / ND entry (`ip neigh add ... nud permanent`): for next
/// hops that never answer ARP, such as a traffic sink in a benchmark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighbourConfig {
    pub ip: IpAddr,
    pub mac: [u8; 6],
    /// Name of the port the neighbour is on.
    pub port: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlConfig {
    pub socket: PathBuf,
    /// Rules in ipvsadm-save syntax applied at start (`rvsadm -S > file`).
    pub rules: Option<PathBuf>,
    /// Every accepted change (and the stop) saves the table to `rules`; a
    /// missing file at start is a first start with no services.
    pub persist: bool,
}

impl Default for CtlConfig {
    fn default() -> Self {
        CtlConfig {
            socket: PathBuf::from(DEFAULT_CTL_SOCKET),
            rules: None,
            persist: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// `None` when metrics are disabled.
    pub listen: Option<SocketAddr>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: Some(DEFAULT_METRICS_LISTEN),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogConfig {
    pub level: LogLevel,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub const ALL: [LogLevel; 5] = [
        LogLevel::Error,
        LogLevel::Warn,
        LogLevel::Info,
        LogLevel::Debug,
        LogLevel::Trace,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log level {0:?}, expected one of error, warn, info, debug, trace")]
pub struct UnknownLogLevel(pub String);

impl FromStr for LogLevel {
    type Err = UnknownLogLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LogLevel::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| UnknownLogLevel(s.to_owned()))
    }
}

/// One problem with the file. `key` is the TOML path of the offending value
/// (`port[1].addresses[0]`), empty when the file is not even valid TOML, or
/// the file's path when it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A syntax error has no key; ": message" would look like a typo.
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a file, in file order within each section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    pub fn from_toml_str(s: &str) -> Result<Config, ConfigErrors> {
        let de = toml::Deserializer::new(s);
        let raw: RawConfig = serde_path_to_error::deserialize(de)
            .map_err(|e| ConfigErrors(vec![serde_error(s, e)]))?;
        Validator::default().config(raw)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError::new(
                path.display().to_string(),
                format!("cannot read configuration file: {e}"),
            )])
        })?;
        Config::from_toml_str(&text)
    }
}

fn serde_error(src: &str, e: serde_path_to_error::Error<toml::de::Error>) -> ConfigError {
    let mut key = String::new();
    for seg in e.path().iter() {
        match seg {
            serde_path_to_error::Segment::Seq { index } => {
                key.push_str(&format!("[{index}]"));
            }
            serde_path_to_error::Segment::Map { key: k }
            | serde_path_to_error::Segment::Enum { variant: k } => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(k);
            }
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    let inner = e.into_inner();
    // toml splits some messages over lines; ConfigErrors is one per line.
    let mut message = inner
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
        .replace("expected i64", "expected an integer");
    if message.is_empty() {
        message.push_str("syntax error");
    }
    if (key == "port" || key == "route") && message.contains("expected a sequence") {
        message.push_str(&format!(
            "; write [[{key}]] (an array of tables), not [{key}]"
        ));
    }
    if let Some((line, col)) = inner.span().map(|r| line_col(src, r.start)) {
        message.push_str(&format!(" (line {line}, column {col})"));
    }
    if key.is_empty() {
        message = format!("invalid TOML: {message}");
    }
    ConfigError { key, message }
}

/// 1-based line and column (in characters) of byte offset `at`.
fn line_col(src: &str, at: usize) -> (usize, usize) {
    let bytes = src.as_bytes();
    let before = &bytes[..at.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    // Count UTF-8 lead bytes so a column means a character, not a byte.
    let col = before[line_start..]
        .iter()
        .filter(|&&b| b & 0xC0 != 0x80)
        .count()
        + 1;
    (line, col)
}

fn is_valid_port_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Addresses that can never be one of ours or a next hop.
fn unusable_unicast(ip: IpAddr) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some("the unspecified address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
        Some("the broadcast address")
    } else {
        None
    }
}

fn family_name(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

#[derive(Default)]
struct Validator {
    errors: Vec<ConfigError>,
}

impl Validator {
    fn err(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(key, message));
    }

    /// Range-checks an optional integer; on error records it and returns the
    /// default so validation can carry on and find further problems.
    fn int<T>(&mut self, key: &str, value: Option<i64>, default: T, lo: i64, hi: i64) -> T
    where
        T: TryFrom<i64> + Copy,
    {
        let Some(v) = value else {
            return default;
        };
        if v < lo || v > hi {
            let msg = if v < lo && hi == i64::from(u32::MAX) {
                format!("must be at least {lo}, got {v}")
            } else {
                format!("must be between {lo} and {hi}, got {v}")
            };
            self.err(key, msg);
            return default;
        }
        T::try_from(v).unwrap_or(default)
    }

    fn config(mut self, raw: RawConfig) -> Result<Config, ConfigErrors> {
        let eal = EalConfig {
            args: raw.eal.and_then(|e| e.args).unwrap_or_default(),
        };
        for (i, a) in eal.args.iter().enumerate() {
            if a.contains('\0') {
                self.err(format!("eal.args[{i}]"), "must not contain a NUL character");
            }
        }
        let dataplane = self.dataplane(raw.dataplane.unwrap_or_default());
        let ports = self.ports(raw.port.unwrap_or_default(), dataplane.workers.len());
        let routes = self.routes(raw.route.unwrap_or_default(), &ports);
        let neighbours = self.neighbours(raw.neighbour.unwrap_or_default(), &ports);
        let (socket, rules, persist) = raw
            .ctl
            .map(|c| (c.socket, c.rules, c.persist))
            .unwrap_or_default();
        let mut ctl = self.ctl(socket);
        ctl.rules = self.rules(rules);
        ctl.persist = persist.unwrap_or(false);
        if ctl.persist && ctl.rules.is_none() {
            self.err(
                "ctl.persist",
                "needs ctl.rules: the file the rules are saved to and applied from at start",
            );
        }
        let metrics = self.metrics(raw.metrics.and_then(|m| m.listen));
        let log = self.log(raw.log.and_then(|l| l.level));
        let health = self.health(raw.health.unwrap_or_default(), &ports);
        let session_log = raw.session_log.and_then(|r| self.session_log(r));
        let keepalived = KeepalivedConfig {
            config: self.absolute_path("keepalived.config", raw.keepalived.and_then(|k| k.config)),
        };
        let icmp = self.icmp(raw.icmp.unwrap_or_default());
        let pressure = self.pressure(raw.defense, raw.limits);
        let announce = self.announce(raw.announce, &ports, &health);
        let vrrp = self.vrrp(raw.vrrp.unwrap_or_default(), &ports);
        if self.errors.is_empty() {
            Ok(Config {
                eal,
                dataplane,
                ports,
                routes,
                neighbours,
                ctl,
                metrics,
                log,
                health,
                session_log,
                keepalived,
                icmp,
                pressure,
                announce,
                vrrp,
            })
        } else {
            Err(ConfigErrors(self.errors))
        }
    }

    fn dataplane(&mut self, raw: RawDataplane) -> DataplaneConfig {
        let lcore_max = i64::from(MAX_LCORES) - 1;
        let main_lcore = self.int("dataplane.main_lcore", raw.main_lcore, 0, 0, lcore_max);
        let mut workers: Vec<u32> = Vec::new();
        match raw.workers {
            None => self.err(
                "dataplane.workers",
                "required: list the lcore ids that run workers, e.g. [1]",
            ),
            Some(w) if w.is_empty() => self.err("dataplane.workers", "must not be empty"),
            Some(w) => {
                for (i, &id) in w.iter().enumerate() {
                    let Some(lcore) = u32::try_from(id).ok().filter(|&l| l < MAX_LCORES) else {
                        self.err(
                            "dataplane.workers",
                            format!(
                                "workers[{i}] = {id}: lcore ids must be between 0 and {lcore_max}"
                            ),
                        );
                        continue;
                    };
                    if raw.main_lcore.unwrap_or(0) == id {
                        self.err(
                            "dataplane.workers",
                            format!("workers[{i}] = {id} is the main_lcore, which runs the control threads and cannot also run a worker"),
                        );
                    } else if let Some(j) = w[..i].iter().position(|&x| x == id) {
                        self.err(
                            "dataplane.workers",
                            format!("workers[{i}] = {id} repeats workers[{j}]"),
                        );
                    } else {
                        workers.push(lcore);
                    }
                }
            }
        }
        let burst = self.int("dataplane.burst", raw.burst, DEFAULT_BURST, 1, 256);
        let mbufs = self.int(
            "dataplane.mbufs",
            raw.mbufs,
            DEFAULT_MBUFS,
            i64::from(MIN_MBUFS),
            i64::from(u32::MAX),
        );
        let mbuf_cache = self.int(
            "dataplane.mbuf_cache",
            raw.mbuf_cache,
            DEFAULT_MBUF_CACHE,
            0,
            i64::from(MAX_MBUF_CACHE),
        );
        let neighbours = self.int(
            "dataplane.neighbours",
            raw.neighbours,
            DEFAULT_NEIGHBOURS,
            16,
            1 << 20,
        );
        let conns = raw.conns.map(|n| {
            self.int(
                "dataplane.conns",
                Some(n),
                MIN_CONNS,
                i64::from(MIN_CONNS),
                i64::from(MAX_CONNS),
            )
        });
        DataplaneConfig {
            main_lcore,
            workers,
            burst,
            mbufs,
            mbuf_cache,
            neighbours,
            conns,
        }
    }

    fn ports(&mut self, raw: Vec<RawPort>, n_workers: usize) -> Vec<PortConfig> {
        if raw.is_empty() {
            self.err("port", "at least one [[port]] is required");
        }
        let max_queues = u16::try_from(n_workers).unwrap_or(u16::MAX);
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut devices: HashMap<String, usize> = HashMap::new();
        let mut owners: HashMap<IpAddr, String> = HashMap::new();
        let mut out = Vec::with_capacity(raw.len());
        for (i, p) in raw.into_iter().enumerate() {
            let k = |field: &str| format!("port[{i}].{field}");
            let name = match p.name {
                None => {
                    self.err(k("name"), "required");
                    String::new()
                }
                Some(n) if !is_valid_port_name(&n) => {
                    self.err(
                        k("name"),
                        format!("{n:?} must be 1 to 32 characters from A-Z a-z 0-9 _ . -"),
                    );
                    n
                }
                Some(n) => {
                    if let Some(j) = names.get(&n) {
                        self.err(k("name"), format!("{n:?} is already the name of port[{j}]"));
                    } else {
                        names.insert(n.clone(), i);
                    }
                    n
                }
            };
            let devargs = match p.devargs {
                None => {
                    self.err(k("devargs"), "required: a PCI address or vdev devargs");
                    String::new()
                }
                Some(d) if d.is_empty() => {
                    self.err(k("devargs"), "must not be empty");
                    d
                }
                Some(d) if d.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                    self.err(
                        k("devargs"),
                        format!("{d:?} must not contain whitespace or control characters"),
                    );
                    d
                }
                Some(d) => {
                    // The device name is what precedes the first comma; DPDK
                    // cannot probe the same device twice.
                    let dev = d.split(',').next().unwrap_or_default().to_owned();
                    if let Some(j) = devices.get(&dev) {
                        self.err(
                            k("devargs"),
                            format!("device {dev:?} is already used by port[{j}]"),
                        );
                    } else {
                        devices.insert(dev, i);
                    }
                    d
                }
            };
            let queues = match p.queues {
                None => max_queues.max(1),
                Some(q) if max_queues > 0 && !(1..=i64::from(max_queues)).contains(&q) => {
                    self.err(
                        k("queues"),
                        format!("must be between 1 and {max_queues} (the number of workers, as each rx queue is polled by its own worker), got {q}"),
                    );
                    1
                }
                // Without valid workers only the type's range can be judged.
                Some(q) => self.int(&k("queues"), Some(q), 1, 1, i64::from(u16::MAX)),
            };
            let rx_descriptors = self.int(
                &k("rx_descriptors"),
                p.rx_descriptors,
                DEFAULT_DESCRIPTORS,
                64,
                32768,
            );
            let tx_descriptors = self.int(
                &k("tx_descriptors"),
                p.tx_descriptors,
                DEFAULT_DESCRIPTORS,
                64,
                32768,
            );
            let mtu = p.mtu.map(|m| self.int(&k("mtu"), Some(m), 1500, 68, 9600));
            let mac = match p.mac.as_deref().map(parse_mac) {
                None => None,
                Some(Ok(m)) => Some(m),
                Some(Err(e)) => {
                    self.err(k("mac"), e);
                    None
                }
            };
            let mut addresses = Vec::new();
            for (j, a) in p.addresses.unwrap_or_default().iter().enumerate() {
                let key = format!("port[{i}].addresses[{j}]");
                let ifa = match a.parse::<IfAddr>() {
                    Ok(ifa) => ifa,
                    Err(e) => {
                        self.err(key, e.to_string());
                        continue;
                    }
                };
                if let Some(what) = unusable_unicast(ifa.addr) {
                    self.err(key, format!("{} is {what}", ifa.addr));
                    continue;
                }
                if let Some(other) = owners.get(&ifa.addr) {
                    self.err(key, format!("{} is already assigned at {other}", ifa.addr));
                    continue;
                }
                owners.insert(ifa.addr, key);
                addresses.push(ifa);
            }
            let promiscuous = p.promiscuous.unwrap_or(true);
            let accept_other_mac = p.accept_other_mac.unwrap_or(false);
            if accept_other_mac && !promiscuous {
                self.err(
                    k("accept_other_mac"),
                    "needs promiscuous = true: otherwise the port receives no frame for another MAC",
                );
            }
            let modes = [RssMode::Device, RssMode::Software, RssMode::Off];
            let rss = match p.rss.as_deref() {
                None => RssMode::Device,
                Some(v) => match modes.into_iter().find(|m| m.name() == v) {
                    Some(m) => m,
                    None => {
                        self.err(
                            k("rss"),
                            format!("must be \"device\", \"software\" or \"off\", got {v:?}"),
                        );
                        RssMode::Device
                    }
                },
            };
            let flow_steering = p.flow_steering.unwrap_or(false);
            if flow_steering && (n_workers < 2 || usize::from(queues) != n_workers) {
                self.err(
                    k("flow_steering"),
                    format!("needs two or more workers and queues = the number of workers ({n_workers}), one queue per worker for the rules to name"),
                );
            }
            out.push(PortConfig {
                name,
                devargs,
                queues,
                rss,
                flow_steering,
                rx_descriptors,
                tx_descriptors,
                promiscuous,
                mtu,
                mac,
                addresses,
                accept_other_mac,
            });
        }
        out
    }

    fn routes(&mut self, raw: Vec<RawRoute>, ports: &[PortConfig]) -> Vec<RouteConfig> {
        let mut seen: HashMap<Prefix, usize> = HashMap::new();
        let mut out = Vec::with_capacity(raw.len());
        for (i, r) in raw.into_iter().enumerate() {
            let k = |field: &str| format!("route[{i}].{field}");
            let prefix = match r.prefix.as_deref().map(str::parse::<Prefix>) {
                None => {
                    self.err(k("prefix"), "required, e.g. \"0.0.0.0/0\"");
                    None
                }
                Some(Err(e)) => {
                    self.err(k("prefix"), e.to_string());
                    None
                }
                Some(Ok(p)) => {
                    if let Some(j) = seen.get(&p) {
                        self.err(k("prefix"), format!("{p} is already routed by route[{j}]"));
                    } else {
                        seen.insert(p, i);
                    }
                    Some(p)
                }
            };
            // Outer None: absent. Inner None: present but unusable (reported).
            let via: Option<Option<IpAddr>> = r.via.as_deref().map(|v| {
                let Ok(ip) = v.parse::<IpAddr>() else {
                    self.err(k("via"), format!("{v:?} is not an IPv4 or IPv6 address"));
                    return None;
                };
                if let Some(what) = unusable_unicast(ip) {
                    self.err(k("via"), format!("{ip} is {what}"));
                    return None;
                }
                if let Some(p) = prefix.filter(|p| p.addr.is_ipv4() != ip.is_ipv4()) {
                    self.err(
                        k("via"),
                        format!(
                            "gateway {ip} is {} but prefix {p} is {}",
                            family_name(ip),
                            family_name(p.addr)
                        ),
                    );
                    return None;
                }
                if let Some(port) = ports
                    .iter()
                    .find(|p| p.addresses.iter().any(|a| a.addr == ip))
                {
                    self.err(
                        k("via"),
                        format!("gateway {ip} is our own address on port {:?}", port.name),
                    );
                    return None;
                }
                Some(ip)
            });
            let port = match (r.port, via) {
                (Some(name), _) => {
                    if !ports.iter().any(|p| p.name == name) {
                        self.err(k("port"), format!("no [[port]] is named {name:?}"));
                    }
                    name
                }
                (None, None) => {
                    self.err(k("port"), "required for an on-link route (one without via)");
                    String::new()
                }
                (None, Some(None)) => String::new(),
                (None, Some(Some(ip))) => {
                    let mut matching = ports
                        .iter()
                        .filter(|p| p.addresses.iter().any(|a| a.contains(ip)))
                        .map(|p| p.name.as_str());
                    match (matching.next(), matching.next()) {
                        (Some(only), None) => only.to_owned(),
                        (None, _) => {
                            self.err(
                                k("via"),
                                format!("gateway {ip} is not in the connected subnet of any port's addresses; add port = \"...\" to say where it is"),
                            );
                            String::new()
                        }
                        (Some(a), Some(b)) => {
                            self.err(
                                k("via"),
                                format!("gateway {ip} is in connected subnets of ports {a:?} and {b:?}; add port = \"...\" to choose"),
                            );
                            String::new()
                        }
                    }
                }
            };
            if let Some(prefix) = prefix {
                out.push(RouteConfig {
                    prefix,
                    via: via.flatten(),
                    port,
                });
            }
        }
        out
    }

    fn neighbours(&mut self, raw: Vec<RawNeighbour>, ports: &[PortConfig]) -> Vec<NeighbourConfig> {
        let mut seen: HashMap<(String, IpAddr), usize> = HashMap::new();
        let mut out = Vec::with_capacity(raw.len());
        for (i, n) in raw.into_iter().enumerate() {
            let k = |field: &str| format!("neighbour[{i}].{field}");
            let ip = match n.ip.as_deref().map(str::parse::<IpAddr>) {
                None => {
                    self.err(k("ip"), "required, e.g. \"198.18.0.254\"");
                    None
                }
                Some(Err(_)) => {
                    let v = n.ip.as_deref().unwrap_or_default();
                    self.err(k("ip"), format!("{v:?} is not an IPv4 or IPv6 address"));
                    None
                }
                Some(Ok(ip)) => match unusable_unicast(ip) {
                    Some(what) => {
                        self.err(k("ip"), format!("{ip} is {what}"));
                        None
                    }
                    None => Some(ip),
                },
            };
            let mac = match n.mac.as_deref().map(parse_mac) {
                None => {
                    self.err(k("mac"), "required, e.g. \"02:00:00:00:00:01\"");
                    None
                }
                Some(Err(e)) => {
                    self.err(k("mac"), e);
                    None
                }
                Some(Ok(m)) => Some(m),
            };
            let port = match n.port {
                None => {
                    self.err(
                        k("port"),
                        "required: the name of the port the neighbour is on",
                    );
                    None
                }
                Some(name) if !ports.iter().any(|p| p.name == name) => {
                    self.err(k("port"), format!("no [[port]] is named {name:?}"));
                    None
                }
                Some(name) => Some(name),
            };
            let (Some(ip), Some(mac), Some(port)) = (ip, mac, port) else {
                continue;
            };
            if let Some(j) = seen.get(&(port.clone(), ip)) {
                self.err(
                    k("ip"),
                    format!("{ip} on {port:?} is already neighbour[{j}]"),
                );
                continue;
            }
            seen.insert((port.clone(), ip), i);
            out.push(NeighbourConfig { ip, mac, port });
        }
        out
    }

    fn ctl(&mut self, socket: Option<String>) -> CtlConfig {
        let Some(s) = socket else {
            return CtlConfig::default();
        };
        let path = PathBuf::from(&s);
        if !path.is_absolute() {
            self.err("ctl.socket", format!("{s:?} must be an absolute path"));
        } else if s.contains('\0') {
            self.err("ctl.socket", "must not contain a NUL character");
        } else if s.len() > MAX_SOCKET_PATH {
            self.err(
                "ctl.socket",
                format!(
                    "is {} bytes long; a unix socket path may have at most {MAX_SOCKET_PATH}",
                    s.len()
                ),
            );
        }
        CtlConfig {
            socket: path,
            ..CtlConfig::default()
        }
    }

    fn absolute_path(&mut self, key: &str, s: Option<String>) -> Option<PathBuf> {
        let s = s?;
        let path = PathBuf::from(&s);
        if !path.is_absolute() {
            self.err(key, format!("{s:?} must be an absolute path"));
            return None;
        }
        Some(path)
    }

    fn rules(&mut self, rules: Option<String>) -> Option<PathBuf> {
        let s = rules?;
        let path = PathBuf::from(&s);
        if !path.is_absolute() {
            self.err("ctl.rules", format!("{s:?} must be an absolute path"));
            return None;
        }
        Some(path)
    }

    fn metrics(&mut self, listen: Option<String>) -> MetricsConfig {
        let Some(s) = listen else {
            return MetricsConfig::default();
        };
        if s.is_empty() || s == "off" {
            return MetricsConfig { listen: None };
        }
        match s.parse::<SocketAddr>() {
            Ok(a) if a.port() == 0 => {
                self.err("metrics.listen", format!("{s:?}: port 0 is not allowed"));
                MetricsConfig::default()
            }
            Ok(a) => MetricsConfig { listen: Some(a) },
            Err(_) => {
                self.err(
                    "metrics.listen",
                    format!("{s:?} is not IP:PORT (e.g. 127.0.0.1:9360 or [::1]:9360; host names are not resolved), \"\" or \"off\""),
                );
                MetricsConfig::default()
            }
        }
    }

    fn session_log(&mut self, r: RawSessionLog) -> Option<SessionLogConfig> {
        let rate = self.int("session_log.rate", r.rate, 10_000u32, 1, 10_000_000);
        let ring = self.int("session_log.ring", r.ring, 16_384usize, 64, 1 << 24);
        let absolute = |s: &String| Path::new(s).is_absolute();
        let sink = match (r.file, r.syslog) {
            (Some(f), None) if absolute(&f) => {
                if r.facility.is_some() {
                    self.err(
                        "session_log.facility",
                        "is for syslog; a file has no facility",
                    );
                }
                Sink::File(PathBuf::from(f))
            }
            (None, Some(s)) if absolute(&s) => {
                let name = r.facility.as_deref().unwrap_or("local0");
                let Some(facility) = syslog_facility(name) else {
                    self.err(
                        "session_log.facility",
                        format!("{name:?} is not a syslog facility (kern, user, daemon, auth, authpriv, local0 ... local7, ...)"),
                    );
                    return None;
                };
                Sink::Syslog {
                    socket: PathBuf::from(s),
                    facility,
                }
            }
            (Some(p), None) => {
                self.err(
                    "session_log.file",
                    format!("{p:?} must be an absolute path"),
                );
                return None;
            }
            (None, Some(p)) => {
                self.err(
                    "session_log.syslog",
                    format!("{p:?} must be an absolute path"),
                );
                return None;
            }
            (Some(_), Some(_)) => {
                self.err("session_log", "give file or syslog, not both");
                return None;
            }
            (None, None) => {
                self.err(
                    "session_log",
                    "says where the lines go: file = \"/var/log/rvs/sessions.log\" or syslog = \"/dev/log\"",
                );
                return None;
            }
        };
        Some(SessionLogConfig {
            writer: WriterConfig { sink, rate },
            ring,
        })
    }

    fn log(&mut self, level: Option<String>) -> LogConfig {
        let Some(s) = level else {
            return LogConfig::default();
        };
        match s.parse() {
            Ok(level) => LogConfig { level },
            Err(e) => {
                self.err("log.level", format!("{e}"));
                LogConfig::default()
            }
        }
    }
}

/// syslog(3)'s facility codes (RFC 5424, table 1).
fn syslog_facility(name: &str) -> Option<u8> {
    const NAMES: [&str; 24] = [
        "kern",
        "user",
        "mail",
        "daemon",
        "auth",
        "syslog",
        "lpr",
        "news",
        "uucp",
        "cron",
        "authpriv",
        "ftp",
        "ntp",
        "security",
        "console",
        "solaris-cron",
        "local0",
        "local1",
        "local2",
        "local3",
        "local4",
        "local5",
        "local6",
        "local7",
    ];
    NAMES.iter().position(|n| *n == name).map(|i| i as u8)
}

/// Parses "02:00:00:00:00:01" into a unicast MAC address.
fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let bad = || format!("{s:?} is not a MAC address like \"02:00:00:00:00:01\"");
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in mac.iter_mut() {
        let part = parts.next().ok_or_else(bad)?;
        if part.len() != 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    if mac[0] & 1 == 1 || mac == [0; 6] {
        return Err(format!("{s} is not a unicast address"));
    }
    Ok(mac)
}
