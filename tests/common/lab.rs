//! The namespace lab the end-to-end forwarding tests share (forwarding.rs,
//! sctp.rs, tunnel_encap.rs): rvsd owns its ports in a gateway namespace
//! through net_af_packet (or net_pcap), a client and real servers sit in
//! namespaces of their own.
//!
//! Two topologies:
//! - routed ([`routed`]): client 198.18.0.2 | rvsd 198.18.0.1 "client",
//!   198.19.0.1 "servers" | bridge | rs1 198.19.0.11, rs2 198.19.0.12
//!   (and fd00:18::/64, fd00:19::/64 alike);
//! - flat ([`flat`]): client, rvsd's one port and the servers on one bridge
//!   in 198.18.0.0/24 and fd00:18::/64, so the servers answer the client
//!   directly (DR, TUN).
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::netns::{text, Netns};
use super::{wait_until, Daemon, TempDir};

pub const RVSADM: &str = env!("CARGO_BIN_EXE_rvsadm");

pub const VIP4: &str = "198.18.0.100";
pub const VIP6: &str = "fd00:18::100";
pub const CLI4: &str = "198.18.0.2";
pub const CLI6: &str = "fd00:18::2";
/// rvsd's server-side addresses in the routed topology: the FULLNAT local
/// addresses when a service names none.
pub const GWS4: &str = "198.19.0.1";
pub const GWS6: &str = "fd00:19::1";
/// The real servers in the routed topology.
pub const RS4: [&str; 2] = ["198.19.0.11", "198.19.0.12"];
pub const RS6: [&str; 2] = ["fd00:19::11", "fd00:19::12"];
/// The real servers in the flat topology.
pub const FLAT4: [&str; 2] = ["198.18.0.11", "198.18.0.12"];
pub const FLAT6: [&str; 2] = ["fd00:18::11", "fd00:18::12"];
/// The real servers' namespaces (roles), in the order of the addresses.
pub const SERVERS: [&str; 2] = ["rs1", "rs2"];

static SERIAL: Mutex<()> = Mutex::new(());

/// The tests of one binary take turns: rvsd's workers poll, and the machine
/// may have two CPUs for all of them.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// python3 -m http.server in role `rs`, bound to `addr:port`, serving a
/// page that holds only the server's name; returns its access log. Ready
/// when it answers on that address from inside its namespace.
pub fn http_server(net: &Netns, dir: &TempDir, rs: &str, addr: &str, port: u16) -> PathBuf {
    let www = dir.path(&format!("www-{rs}"));
    fs::create_dir_all(&www).unwrap();
    fs::write(www.join("index.html"), format!("{rs}\n")).unwrap();
    let log = dir.path(&format!("http-{rs}-{addr}-{port}.log"));
    net.spawn(
        rs,
        &[
            "python3",
            "-u",
            "-m",
            "http.server",
            "--bind",
            addr,
            "--directory",
            www.to_str().unwrap(),
            &port.to_string(),
        ],
        &log,
    );
    let url = format!("http://{}:{port}/?ready", host(addr));
    let ready = wait_until(Duration::from_secs(15), || {
        net.run(
            rs,
            &[
                "curl",
                "-fsS",
                "--noproxy",
                "*",
                "--max-time",
                "1",
                "-o",
                "/dev/null",
                &url,
            ],
        )
        .status
        .success()
    });
    assert!(
        ready,
        "http.server in {rs} on {addr}:{port} not ready:\n{}",
        fs::read_to_string(&log).unwrap_or_default()
    );
    log
}

/// URL host part of an address.
pub fn host(addr: &str) -> String {
    if addr.contains(':') {
        format!("[{addr}]")
    } else {
        addr.to_string()
    }
}

/// Namespaces cli, gw, sw and the first `servers` of [`SERVERS`]; IPv6 off
/// by default in gw and sw (rvsd owns gw's ports, sw only bridges).
fn lab(test: &str, servers: usize) -> Netns {
    let mut n = Netns::new(test);
    for role in ["cli", "gw", "sw"].iter().chain(&SERVERS[..servers]) {
        n.add(role);
    }
    for role in ["gw", "sw"] {
        n.ok(
            role,
            &["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"],
        );
    }
    n
}

/// Waits up to `secs` seconds for the log of a program started with
/// [`Netns::spawn`] to say "ready"; panics, with `what` and the log, if it
/// does not.
pub fn await_ready(log: &Path, secs: u64, what: &str) {
    let ready = wait_until(Duration::from_secs(secs), || {
        fs::read_to_string(log)
            .unwrap_or_default()
            .contains("ready")
    });
    assert!(
        ready,
        "{what} not ready:\n{}",
        fs::read_to_string(log).unwrap_or_default()
    );
}

/// Client, rvsd with ports "client" (gwc) and "servers" (gws), a bridge and
/// the first `servers` (1 or 2) real servers with no route but their subnet
/// (FULLNAT needs none; see [`servers_route_via_rvsd`]).
pub fn routed(test: &str, servers: usize) -> Netns {
    let n = lab(test, servers);
    n.veth("gw", "gwc", "cli", "eth0");
    n.veth("gw", "gws", "sw", "p0");
    n.rvsd_port("gw", "gwc");
    n.rvsd_port("gw", "gws");
    n.bridge("sw");
    n.bridge_port("sw", "p0");

    n.up("cli", "eth0");
    n.addr("cli", "eth0", &format!("{CLI4}/24"));
    n.addr("cli", "eth0", &format!("{CLI6}/64"));
    n.ok(
        "cli",
        &["ip", "route", "add", "default", "via", "198.18.0.1"],
    );
    n.ok(
        "cli",
        &["ip", "-6", "route", "add", "default", "via", "fd00:18::1"],
    );
    for (i, rs) in SERVERS[..servers].iter().enumerate() {
        let port = format!("p{}", i + 1);
        n.veth(rs, "eth0", "sw", &port);
        n.bridge_port("sw", &port);
        n.up(rs, "eth0");
        n.addr(rs, "eth0", &format!("{}/24", RS4[i]));
        n.addr(rs, "eth0", &format!("{}/64", RS6[i]));
    }
    n
}

/// The first `servers` real servers of the routed topology use rvsd as
/// their default gateway (NAT needs it). Where they run python3's
/// http.server, add this once the servers run: http.server resolves its
/// address's name at start (socket.getfqdn), and a resolver reached
/// through rvsd never answers, which costs seconds per server where an
/// unreachable one fails at once.
pub fn servers_route_via_rvsd(n: &Netns, servers: usize) {
    for rs in &SERVERS[..servers] {
        n.ok(rs, &["ip", "route", "add", "default", "via", GWS4]);
        n.ok(rs, &["ip", "-6", "route", "add", "default", "via", GWS6]);
    }
}

/// Client, rvsd's one port "lan" (gwl) and the first `servers` (1 or 2)
/// real servers on one bridge. The servers hold the VIPs on lo and neither
/// answer nor announce them (arp_ignore=1, arp_announce=2; a global IPv6
/// address on lo gets no neighbour advertisement on eth0 anyway), as DR and
/// TUN real servers do.
pub fn flat(test: &str, servers: usize) -> Netns {
    let n = lab(test, servers);
    n.bridge("sw");
    n.veth("gw", "gwl", "sw", "p0");
    n.rvsd_port("gw", "gwl");
    n.bridge_port("sw", "p0");
    n.veth("cli", "eth0", "sw", "pc");
    n.bridge_port("sw", "pc");
    n.up("cli", "eth0");
    n.addr("cli", "eth0", &format!("{CLI4}/24"));
    n.addr("cli", "eth0", &format!("{CLI6}/64"));
    for (i, rs) in SERVERS[..servers].iter().enumerate() {
        let port = format!("p{}", i + 1);
        n.veth(rs, "eth0", "sw", &port);
        n.bridge_port("sw", &port);
        for key in ["all", "eth0"] {
            for (k, v) in [("arp_ignore", 1), ("arp_announce", 2)] {
                n.ok(
                    rs,
                    &["sysctl", "-qw", &format!("net.ipv4.conf.{key}.{k}={v}")],
                );
            }
        }
        n.up(rs, "eth0");
        n.addr(rs, "eth0", &format!("{}/24", FLAT4[i]));
        n.addr(rs, "eth0", &format!("{}/64", FLAT6[i]));
        n.addr(rs, "lo", &format!("{VIP4}/32"));
        n.addr(rs, "lo", &format!("{VIP6}/128"));
    }
    n
}

/// An rvsd port in the configuration.
pub struct PortConf<'a> {
    pub name: &'a str,
    pub iface: &'a str,
    pub addrs: &'a [&'a str],
    /// The port's `mtu`; rvsd's default (1500) when None.
    pub mtu: Option<u16>,
}

/// rvsd's ports in the routed topology.
pub const ROUTED_PORTS: [PortConf<'static>; 2] = [
    PortConf {
        name: "client",
        iface: "gwc",
        addrs: &["198.18.0.1/24", "fd00:18::1/64"],
        mtu: None,
    },
    PortConf {
        name: "servers",
        iface: "gws",
        addrs: &["198.19.0.1/24", "fd00:19::1/64"],
        mtu: None,
    },
];

/// rvsd's port in the flat topology.
pub const FLAT_PORTS: [PortConf<'static>; 1] = [PortConf {
    name: "lan",
    iface: "gwl",
    addrs: &["198.18.0.1/24", "fd00:18::1/64"],
    mtu: None,
}];

/// rvsd running in the gateway namespace, with its management socket.
pub struct Rvsd {
    pub daemon: Daemon,
    pub socket: PathBuf,
}

/// Starts rvsd on net_af_packet with `workers` workers (1 or 2, on lcores
/// mapped onto CPUs 0 and 1), the given ports and a start-up rules file;
/// returns once the client gets an answer to ping and the management socket
/// is there.
pub fn start_rvsd(
    net: &Netns,
    dir: &TempDir,
    workers: usize,
    ports: &[PortConf],
    rules: &str,
) -> Rvsd {
    start_rvsd_on(Pmd::AfPacket, net, dir, workers, ports, rules, "")
}

/// The DPDK driver rvsd's ports use on the veths.
#[derive(Clone, Copy)]
pub enum Pmd {
    /// net_af_packet: a queue per worker.
    AfPacket,
    /// net_pcap rather than net_af_packet: DPDK's af_packet PMD joins a
    /// PACKET_FANOUT group with PACKET_FANOUT_FLAG_DEFRAG, so the kernel
    /// reassembles IP fragments before rvsd sees them (and truncates the
    /// datagram to the ring's frame size); libpcap's socket hands over the
    /// fragments as they came, as a NIC does. One rx queue per port (pcap
    /// has one), polled by the first worker; a second worker gets its flows
    /// over the redirect ring. A tx queue per worker.
    Pcap,
}

/// [`start_rvsd`] on the given driver, with more configuration (whole
/// tables) at the end.
#[allow(clippy::too_many_arguments)]
pub fn start_rvsd_on(
    pmd: Pmd,
    net: &Netns,
    dir: &TempDir,
    workers: usize,
    ports: &[PortConf],
    rules: &str,
    extra: &str,
) -> Rvsd {
    start_rvsd_with(
        pmd,
        net,
        dir,
        workers,
        ports,
        rules,
        extra,
        &StartOpts::default(),
    )
}

/// What else [`start_rvsd_with`] may give rvsd.
#[derive(Default)]
pub struct StartOpts<'a> {
    /// rvsd's environment (debug builds' knobs, e.g. RVS_LADDR_SEED).
    pub env: &'a [(&'a str, &'a str)],
    /// Lines added to the table of the port of that name.
    pub port_lines: &'a [(&'a str, &'a str)],
    /// `[metrics] listen` (in the gateway namespace) instead of "off".
    pub metrics: Option<&'a str>,
    /// Lines added to `[dataplane]` (`conns = 1024`).
    pub dataplane: &'a str,
    /// The namespace role rvsd runs in: "gw" when None (topologies with
    /// two directors name theirs).
    pub ns: Option<&'a str>,
    /// The address the client pings to see rvsd up: 198.18.0.1 when None.
    pub ping: Option<&'a str>,
}

/// [`start_rvsd_on`] with [`StartOpts`].
#[allow(clippy::too_many_arguments)]
pub fn start_rvsd_with(
    pmd: Pmd,
    net: &Netns,
    dir: &TempDir,
    workers: usize,
    ports: &[PortConf],
    rules: &str,
    extra: &str,
    opts: &StartOpts,
) -> Rvsd {
    let socket = dir.path("rvsd.sock");
    let rules_path = dir.path("rules");
    fs::write(&rules_path, rules).unwrap();
    let (lcores, list) = match workers {
        1 => ("0@0,1@0", "[1]"),
        2 => ("0@0,1@0,2@1", "[1, 2]"),
        _ => panic!("1 or 2 workers"),
    };
    let mut cfg = format!(
        "[eal]\nargs = [\"--no-huge\", \"--no-shconf\", \"--no-telemetry\", \"-m\", \"256\", \"--lcores={lcores}\"]\n\
         [dataplane]\nworkers = {list}\n{}",
        opts.dataplane
    );
    for (i, p) in ports.iter().enumerate() {
        let (devargs, queues) = match pmd {
            Pmd::AfPacket if workers > 1 => (
                format!("net_af_packet{i},iface={},qpairs={workers}", p.iface),
                workers,
            ),
            Pmd::AfPacket => (format!("net_af_packet{i},iface={}", p.iface), workers),
            Pmd::Pcap => {
                let tx = vec![format!("tx_iface={}", p.iface); workers].join(",");
                (format!("net_pcap{i},rx_iface_in={},{tx}", p.iface), 1)
            }
        };
        let addrs: Vec<String> = p.addrs.iter().map(|a| format!("\"{a}\"")).collect();
        let _ = write!(
            cfg,
            "[[port]]\nname = \"{}\"\ndevargs = \"{devargs}\"\nqueues = {queues}\naddresses = [{}]\n",
            p.name,
            addrs.join(", ")
        );
        if let Some(mtu) = p.mtu {
            let _ = writeln!(cfg, "mtu = {mtu}");
        }
        for (_, line) in opts.port_lines.iter().filter(|(n, _)| *n == p.name) {
            let _ = writeln!(cfg, "{line}");
        }
    }
    let _ = write!(
        cfg,
        "[ctl]\nsocket = \"{}\"\nrules = \"{}\"\n[metrics]\nlisten = \"{}\"\n{extra}",
        socket.display(),
        rules_path.display(),
        opts.metrics.unwrap_or("off")
    );
    let config = dir.path("rvsd.toml");
    fs::write(&config, cfg).unwrap();
    let gw = net.name(opts.ns.unwrap_or("gw"));
    let env: Vec<String> = opts.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut prefix = vec!["ip", "netns", "exec", gw.as_str()];
    if !env.is_empty() {
        prefix.push("env");
        prefix.extend(env.iter().map(String::as_str));
    }
    let mut daemon = Daemon::start(dir, &prefix, &config);
    let up = wait_until(Duration::from_secs(30), || {
        daemon.has_exited()
            || (socket.exists()
                && net
                    .run(
                        "cli",
                        &[
                            "ping",
                            "-n",
                            "-c",
                            "1",
                            "-W",
                            "1",
                            opts.ping.unwrap_or("198.18.0.1"),
                        ],
                    )
                    .status
                    .success())
    });
    assert!(
        up && !daemon.has_exited(),
        "rvsd did not come up; log:\n{}",
        daemon.log()
    );
    Rvsd { daemon, socket }
}

impl Rvsd {
    /// rvsadm with the words of `line`, on this rvsd's socket.
    pub fn adm(&self, line: &str) -> Output {
        Command::new(RVSADM)
            .args(line.split_whitespace())
            .env("RVS_SOCKET", &self.socket)
            .stdin(Stdio::null())
            .output()
            .expect("run rvsadm")
    }

    /// An rvsadm command that must succeed; its stdout.
    pub fn ok(&self, line: &str) -> String {
        let o = self.adm(line);
        assert!(
            o.status.success(),
            "rvsadm {line}: {}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        text(&o.stdout)
    }

    /// Stops rvsd (SIGTERM), which must exit 0; its counter summary.
    pub fn stop(self) -> String {
        let done = self.daemon.stop();
        assert!(
            done.status.success(),
            "rvsd exit {:?}:\n{}\n{}",
            done.status,
            done.stdout,
            done.stderr
        );
        done.stdout
    }
}

/// Two workers on a device without RSS (af_packet, pcap): packets that
/// landed on the other worker's queue crossed the redirect ring, every one
/// counted as `no_rss`, none lost to a full ring.
pub fn assert_ring_path(summary: &str) {
    let sum = |name: &str| -> u64 { (0..2).map(|w| worker_counter(summary, w, name)).sum() };
    let (redirected, no_rss) = (sum("redirected"), sum("no_rss"));
    eprintln!("two workers: redirected {redirected} (no_rss {no_rss})");
    assert!(redirected > 0, "nothing crossed the ring:\n{summary}");
    assert_eq!(redirected, no_rss, "{summary}");
    assert_eq!(super::drops(summary, "ring_full"), 0, "{summary}");
}

/// The value of `name N` on the summary line of worker `w`.
pub fn worker_counter(summary: &str, w: usize, name: &str) -> u64 {
    let line = summary
        .lines()
        .find(|l| l.starts_with(&format!("worker {w} ")))
        .unwrap_or_else(|| panic!("no worker {w} in summary:\n{summary}"));
    let at = line
        .find(&format!(" {name} "))
        .unwrap_or_else(|| panic!("no {name} in {line}"))
        + name.len()
        + 2;
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("bad {name} in {line}"))
}
