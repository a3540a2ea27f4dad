//! SCTP end to end through rvsd (real EAL, net_af_packet in namespaces).
//! This kernel has no sctp module, so both ends are tests/sctp_peer.py on
//! raw IP sockets: it builds every chunk and computes and checks every
//! CRC32c itself. A client walks an association through a FULLNAT VIP and
//! a NAT VIP (with port mapping), IPv4 and IPv6, step by step, while the
//! test reads the conn's state from `rvsadm -Lnc`; the server logs what
//! reached it, which shows the mode's source address and port and a CRC
//! that verifies.
//!
//! A DR VIP, where the real server answers the client itself, shows the
//! states rvsd follows from the client's side alone.
//!
//! Topologies (as tests/forwarding.rs's, one real server): routed, client
//! 198.18.0.2 | rvsd 198.18.0.1 "client", 198.19.0.1 "servers" | bridge |
//! rs1 198.19.0.11, default route via rvsd (NAT needs it); flat, client,
//! rvsd's one port and rs1 198.18.0.11 (the VIPs on lo) on one bridge.
//! The tests take turns (a lock), as rvsd's workers poll.
mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use common::netns::{text, Netns};
use common::{wait_until, Daemon, TempDir};

const RVSADM: &str = env!("CARGO_BIN_EXE_rvsadm");
const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sctp_peer.py");

const CLI4: &str = "198.18.0.2";
const CLI6: &str = "fd00:18::2";
const GWS4: &str = "198.19.0.1";
const GWS6: &str = "fd00:19::1";
const RS4: &str = "198.19.0.11";
const RS6: &str = "fd00:19::11";
/// FULLNAT VIPs (port 3868 to 3868) and NAT VIPs (3868 to 3869).
const FNAT4: &str = "198.18.0.100";
const FNAT6: &str = "fd00:18::100";
const NAT4: &str = "198.18.0.101";
const NAT6: &str = "fd00:18::101";

/// The states after init, cookie, data, shutdown and complete when rvsd
/// sees both directions (the kernel's INPUT and OUTPUT tables): INIT in
/// and INIT ACK out, COOKIE ECHO in and COOKIE ACK out, DATA and SACK,
/// SHUTDOWN in and SHUTDOWN ACK out, SHUTDOWN COMPLETE in.
const BOTH_WAYS: [&str; 5] = [
    "C-SENT",
    "ESTABLISHED",
    "ESTABLISHED",
    "S-ACK-SENT",
    "CLOSED",
];
/// The same when rvsd sees only the client (DR; INPUT_ONLY table).
const CLIENT_SIDE: [&str; 5] = [
    "INIT1",
    "ESTABLISHED",
    "ESTABLISHED",
    "S-RECEIVED",
    "CLOSED",
];

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn topology(test: &str) -> Netns {
    let mut n = Netns::new(test);
    for role in ["cli", "gw", "sw", "rs1"] {
        n.add(role);
    }
    for role in ["gw", "sw"] {
        n.ok(
            role,
            &["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"],
        );
    }
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
    n.veth("rs1", "eth0", "sw", "p1");
    n.bridge_port("sw", "p1");
    n.up("rs1", "eth0");
    n.addr("rs1", "eth0", &format!("{RS4}/24"));
    n.addr("rs1", "eth0", &format!("{RS6}/64"));
    n.ok("rs1", &["ip", "route", "add", "default", "via", GWS4]);
    n.ok("rs1", &["ip", "-6", "route", "add", "default", "via", GWS6]);
    n
}

struct Rvsd {
    daemon: Daemon,
    socket: PathBuf,
}

impl Rvsd {
    /// rvsd with the routed topology's two ports, or (`flat`) with one
    /// port "lan" on the flat topology's bridge.
    fn start(net: &Netns, dir: &TempDir, rules: &str, flat: bool) -> Rvsd {
        Rvsd::start_with(net, dir, rules, flat, 1)
    }

    /// [`Rvsd::start`] with 1 or 2 workers (on lcores mapped onto CPUs 0
    /// and 1, each port with a queue per worker).
    fn start_with(net: &Netns, dir: &TempDir, rules: &str, flat: bool, workers: usize) -> Rvsd {
        let socket = dir.path("rvsd.sock");
        let rules_path = dir.path("rules");
        fs::write(&rules_path, rules).unwrap();
        let (lcores, list, qpairs) = match workers {
            1 => ("0@0,1@0", "[1]", String::new()),
            2 => ("0@0,1@0,2@1", "[1, 2]", ",qpairs=2".to_string()),
            _ => panic!("1 or 2 workers"),
        };
        let port = |i: usize, name: &str, iface: &str, net: &str| {
            format!(
                "[[port]]\nname = \"{name}\"\ndevargs = \"net_af_packet{i},iface={iface}{qpairs}\"\nqueues = {workers}\naddresses = [{net}]\n"
            )
        };
        let ports = if flat {
            port(0, "lan", "gwl", "\"198.18.0.1/24\", \"fd00:18::1/64\"")
        } else {
            port(0, "client", "gwc", "\"198.18.0.1/24\", \"fd00:18::1/64\"")
                + &port(1, "servers", "gws", "\"198.19.0.1/24\", \"fd00:19::1/64\"")
        };
        let cfg = format!(
            "[eal]\nargs = [\"--no-huge\", \"--no-shconf\", \"--no-telemetry\", \"-m\", \"256\", \"--lcores={lcores}\"]\n\
             [dataplane]\nworkers = {list}\n{ports}\
             [ctl]\nsocket = \"{}\"\nrules = \"{}\"\n[metrics]\nlisten = \"off\"\n",
            socket.display(),
            rules_path.display()
        );
        let config = dir.path("rvsd.toml");
        fs::write(&config, cfg).unwrap();
        let mut daemon = Daemon::start(dir, &["ip", "netns", "exec", &net.name("gw")], &config);
        let up = wait_until(Duration::from_secs(30), || {
            daemon.has_exited()
                || (socket.exists()
                    && net
                        .run("cli", &["ping", "-n", "-c", "1", "-W", "1", "198.18.0.1"])
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

    fn adm(&self, line: &str) -> Output {
        Command::new(RVSADM)
            .args(line.split_whitespace())
            .env("RVS_SOCKET", &self.socket)
            .stdin(Stdio::null())
            .output()
            .expect("run rvsadm")
    }

    fn ok(&self, line: &str) -> String {
        let o = self.adm(line);
        assert!(
            o.status.success(),
            "rvsadm {line}: {}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        text(&o.stdout)
    }
}

fn host(addr: &str) -> String {
    if addr.contains(':') {
        format!("[{addr}]")
    } else {
        addr.to_string()
    }
}

/// The `-Lnc` row of the conn from `client:cport`, split into columns:
/// pro, expire, state, source, virtual, [local,] destination.
fn conn_row(rvsd: &Rvsd, client: &str, cport: u16) -> Option<Vec<String>> {
    let src = format!("{}:{cport}", host(client));
    rvsd.ok("-Lnc").lines().find_map(|l| {
        let w: Vec<String> = l.split_whitespace().map(str::to_string).collect();
        (w.len() >= 6 && w[0] == "SCTP" && w[3] == src).then_some(w)
    })
}

/// A JSON string field of one of the peer's lines, read without a JSON
/// library: the peer writes `"key": "value"` or `"key": value`.
fn field(line: &str, key: &str) -> Option<String> {
    let at = line.find(&format!("\"{key}\": "))? + key.len() + 4;
    let rest = &line[at..];
    let v = if let Some(r) = rest.strip_prefix('"') {
        &r[..r.find('"')?]
    } else if rest.starts_with('[') {
        &rest[..=rest.find(']')?]
    } else {
        rest.split([',', '}']).next()?
    };
    Some(v.trim().to_string())
}

struct Client {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Client {
    fn start(net: &Netns, vip: &str, cport: u16) -> Client {
        let mut child = net
            .cmd(
                "cli",
                &[
                    "python3",
                    "-u",
                    PEER,
                    "client",
                    vip,
                    "3868",
                    &cport.to_string(),
                ],
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SCTP client");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut l = String::new();
        stdout.read_line(&mut l).unwrap();
        assert_eq!(l.trim(), "\"ready\"");
        Client {
            child,
            stdin,
            stdout,
        }
    }

    /// Sends one step and returns the peer's JSON line about it.
    fn step(&mut self, step: &str) -> String {
        writeln!(self.stdin, "{step}").unwrap();
        self.stdin.flush().unwrap();
        let mut l = String::new();
        self.stdout.read_line(&mut l).unwrap();
        l
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the server logged about packets from `src`: (sport, dport,
/// chunk types, crc_ok) per packet.
fn server_saw(log: &Path, src: &str) -> Vec<(u16, u16, String, bool)> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| field(l, "src").as_deref() == Some(src))
        .map(|l| {
            (
                field(l, "sport").unwrap().parse().unwrap(),
                field(l, "dport").unwrap().parse().unwrap(),
                field(l, "chunks").unwrap(),
                field(l, "crc_ok").as_deref() == Some("true"),
            )
        })
        .collect()
}

/// Walks one association through `vip` and checks, after every step, the
/// answer the client got (from VIP:3868, CRC32c good) and the conn's state
/// in `-Lnc` (`states`, one per step). Returns the conn's last row.
fn association(
    net: &Netns,
    rvsd: &Rvsd,
    vip: &str,
    client: &str,
    cport: u16,
    states: [&str; 5],
) -> Vec<String> {
    let mut c = Client::start(net, vip, cport);
    let mut last = Vec::new();
    let steps = [
        ("init", Some("[2]")),
        ("cookie", Some("[11]")),
        ("data", Some("[3]")),
        ("shutdown", Some("[8]")),
        ("complete", None),
    ];
    for ((step, answer), state) in steps.into_iter().zip(states) {
        let got = c.step(step);
        if let Some(chunks) = answer {
            assert_eq!(
                field(&got, "chunks").as_deref(),
                Some(chunks),
                "{vip} {step}: {got}\n{}",
                rvsd.daemon.log()
            );
            assert_eq!(field(&got, "crc_ok").as_deref(), Some("true"), "{got}");
            assert_eq!(field(&got, "src").as_deref(), Some(vip), "{got}");
            assert_eq!(field(&got, "sport").as_deref(), Some("3868"), "{got}");
            assert_eq!(field(&got, "vtag_ok").as_deref(), Some("true"), "{got}");
        }
        let mut row = None;
        let reached = wait_until(Duration::from_secs(5), || {
            row = conn_row(rvsd, client, cport);
            row.as_ref().is_some_and(|r| r[2] == state)
        });
        assert!(
            reached,
            "{vip} after {step}: want {state}, row {row:?}\n{}",
            rvsd.ok("-Lnc")
        );
        last = row.unwrap();
    }
    last
}

#[test]
fn sctp_associations_through_fullnat_and_nat_ipv4_and_ipv6() {
    let _turn = serial();
    let test = "sctp_assoc";
    let net = topology(test);
    let dir = TempDir::new(test);
    let log = dir.path("sctp-server.log");
    net.spawn("rs1", &["python3", "-u", PEER, "server", "3868,3869"], &log);
    assert!(
        wait_until(Duration::from_secs(10), || fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("ready")),
        "server: {}",
        fs::read_to_string(&log).unwrap_or_default()
    );
    let rules = format!(
        "-A --sctp-service {FNAT4}:3868 -s rr\n-a --sctp-service {FNAT4}:3868 -r {RS4}:3868 -b\n\
         -A --sctp-service [{FNAT6}]:3868 -s rr\n-a --sctp-service [{FNAT6}]:3868 -r [{RS6}]:3868 -b\n\
         -A --sctp-service {NAT4}:3868 -s rr\n-a --sctp-service {NAT4}:3868 -r {RS4}:3869 -m\n\
         -A --sctp-service [{NAT6}]:3868 -s rr\n-a --sctp-service [{NAT6}]:3868 -r [{RS6}]:3869 -m\n"
    );
    let rvsd = Rvsd::start(&net, &dir, &rules, false);

    for (vip, client, gws, rs, cport) in [
        (FNAT4, CLI4, GWS4, RS4, 40001u16),
        (FNAT6, CLI6, GWS6, RS6, 40002),
    ] {
        let row = association(&net, &rvsd, vip, client, cport, BOTH_WAYS);
        // pro expire state source virtual local destination
        assert_eq!(row.len(), 7, "{row:?}");
        assert_eq!(row[4], format!("{}:3868", host(vip)));
        assert_eq!(row[6], format!("{}:3868", host(rs)));
        let local = format!("{}:", host(gws));
        assert!(row[5].starts_with(&local), "{row:?}");
        let lport: u16 = row[5][local.len()..].parse().unwrap();
        // FULLNAT: the server saw rvsd's local address and port, never the
        // client's, with every CRC32c good after the port rewrite.
        let saw = server_saw(&log, gws);
        let want: Vec<(u16, u16, String, bool)> = ["[1]", "[10]", "[0]", "[7]", "[14]"]
            .iter()
            .map(|c| (lport, 3868, c.to_string(), true))
            .collect();
        assert_eq!(saw, want, "{}", fs::read_to_string(&log).unwrap());
        assert!(server_saw(&log, client).is_empty());
    }

    for (vip, client, rs, cport) in [(NAT4, CLI4, RS4, 40003u16), (NAT6, CLI6, RS6, 40004)] {
        let row = association(&net, &rvsd, vip, client, cport, BOTH_WAYS);
        assert_eq!(row.len(), 6, "{row:?}");
        assert_eq!(row[5], format!("{}:3869", host(rs)));
        // NAT: the client's own address and port, the mapped port 3869.
        let saw: Vec<_> = server_saw(&log, client)
            .into_iter()
            .filter(|s| s.0 == cport)
            .collect();
        let want: Vec<(u16, u16, String, bool)> = ["[1]", "[10]", "[0]", "[7]", "[14]"]
            .iter()
            .map(|c| (cport, 3869, c.to_string(), true))
            .collect();
        assert_eq!(saw, want, "{}", fs::read_to_string(&log).unwrap());
    }

    // Anything but an INIT opens nothing (counted no_conn); the packet
    // never reaches the server.
    let mut c = Client::start(&net, FNAT4, 40009);
    let got = c.step("data");
    assert_eq!(field(&got, "chunks").as_deref(), Some("null"), "{got}");
    assert!(conn_row(&rvsd, CLI4, 40009).is_none());
    drop(c);
    let done = rvsd.daemon.stop();
    assert!(done.status.success(), "{}\n{}", done.stdout, done.stderr);
    assert!(
        common::drops(&done.stdout, "no_conn") >= 1,
        "{}",
        done.stdout
    );
    assert_eq!(
        common::drops(&done.stdout, "bad_header"),
        0,
        "{}",
        done.stdout
    );
}

/// Client, rvsd's one port "lan" and rs1 on one bridge; rs1 holds the VIPs
/// on lo and neither answers nor announces them (arp_ignore=1,
/// arp_announce=2), as a DR real server does.
fn flat(test: &str) -> Netns {
    let mut n = Netns::new(test);
    for role in ["cli", "gw", "sw", "rs1"] {
        n.add(role);
    }
    for role in ["gw", "sw"] {
        n.ok(
            role,
            &["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"],
        );
    }
    n.bridge("sw");
    n.veth("gw", "gwl", "sw", "p0");
    n.rvsd_port("gw", "gwl");
    n.bridge_port("sw", "p0");
    n.veth("cli", "eth0", "sw", "pc");
    n.bridge_port("sw", "pc");
    n.up("cli", "eth0");
    n.addr("cli", "eth0", &format!("{CLI4}/24"));
    n.addr("cli", "eth0", &format!("{CLI6}/64"));
    n.veth("rs1", "eth0", "sw", "p1");
    n.bridge_port("sw", "p1");
    for key in ["all", "eth0"] {
        for (k, v) in [("arp_ignore", 1), ("arp_announce", 2)] {
            n.ok(
                "rs1",
                &["sysctl", "-qw", &format!("net.ipv4.conf.{key}.{k}={v}")],
            );
        }
    }
    n.up("rs1", "eth0");
    n.addr("rs1", "eth0", &format!("{FLAT_RS4}/24"));
    n.addr("rs1", "eth0", &format!("{FLAT_RS6}/64"));
    n.addr("rs1", "lo", &format!("{DR4}/32"));
    n.addr("rs1", "lo", &format!("{DR6}/128"));
    n
}

/// The flat topology's real server and DR VIPs.
const FLAT_RS4: &str = "198.18.0.11";
const DR4: &str = "198.18.0.100";
const DR6: &str = "fd00:18::100";
const FLAT_RS6: &str = "fd00:18::11";

#[test]
fn sctp_associations_through_dr_ipv4_and_ipv6() {
    let _turn = serial();
    let test = "sctp_dr";
    let net = flat(test);
    let dir = TempDir::new(test);
    let log = dir.path("sctp-server.log");
    net.spawn("rs1", &["python3", "-u", PEER, "server", "3868"], &log);
    assert!(
        wait_until(Duration::from_secs(10), || fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("ready")),
        "server: {}",
        fs::read_to_string(&log).unwrap_or_default()
    );
    let rules = format!(
        "-A --sctp-service {DR4}:3868 -s rr\n-a --sctp-service {DR4}:3868 -r {FLAT_RS4}:3868 -g\n\
         -A --sctp-service [{DR6}]:3868 -s rr\n-a --sctp-service [{DR6}]:3868 -r [{FLAT_RS6}]:3868 -g\n"
    );
    let rvsd = Rvsd::start(&net, &dir, &rules, true);
    for (vip, client, rs, cport) in [
        (DR4, CLI4, FLAT_RS4, 40011u16),
        (DR6, CLI6, FLAT_RS6, 40012),
    ] {
        // The answers come from the real server straight to the client:
        // rvsd follows the association from the client's side alone.
        let row = association(&net, &rvsd, vip, client, cport, CLIENT_SIDE);
        assert_eq!(row.len(), 6, "{row:?}");
        assert_eq!(row[5], format!("{}:3868", host(rs)));
        // DR changes nothing the server can see: the client's address and
        // port, to the VIP, its CRC32c as the client computed it.
        let text = fs::read_to_string(&log).unwrap();
        let to_vip = format!("\"dst\": \"{vip}\"");
        let saw: Vec<_> = server_saw(&log, client)
            .into_iter()
            .filter(|s| s.0 == cport)
            .collect();
        let want: Vec<(u16, u16, String, bool)> = ["[1]", "[10]", "[0]", "[7]", "[14]"]
            .iter()
            .map(|c| (cport, 3868, c.to_string(), true))
            .collect();
        assert_eq!(saw, want, "{text}");
        assert_eq!(
            text.lines()
                .filter(|l| l.contains(&format!("\"sport\": {cport},")))
                .filter(|l| l.contains(&to_vip))
                .count(),
            5,
            "{text}"
        );
    }
    let done = rvsd.daemon.stop();
    assert!(done.status.success(), "{}\n{}", done.stdout, done.stderr);
    assert_eq!(
        common::drops(&done.stdout, "bad_header"),
        0,
        "{}",
        done.stdout
    );
}

#[test]
fn sctp_through_fullnat_with_two_workers() {
    let _turn = serial();
    let test = "sctp_fnat2";
    let net = topology(test);
    let dir = TempDir::new(test);
    let log = dir.path("sctp-server.log");
    net.spawn("rs1", &["python3", "-u", PEER, "server", "3868"], &log);
    assert!(
        wait_until(Duration::from_secs(10), || fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("ready")),
        "server: {}",
        fs::read_to_string(&log).unwrap_or_default()
    );
    let rules = format!(
        "-A --sctp-service {FNAT4}:3868 -s rr\n-a --sctp-service {FNAT4}:3868 -r {RS4}:3868 -b\n"
    );
    let rvsd = Rvsd::start_with(&net, &dir, &rules, false, 2);
    // Several client ports: the associations spread over both workers'
    // queues, and each reply must find the worker that owns its local port.
    let mut lports = Vec::new();
    for cport in 40021..40025u16 {
        let row = association(&net, &rvsd, FNAT4, CLI4, cport, BOTH_WAYS);
        let local = format!("{GWS4}:");
        assert!(row[5].starts_with(&local), "{row:?}");
        let lport: u16 = row[5][local.len()..].parse().unwrap();
        let saw: Vec<_> = server_saw(&log, GWS4)
            .into_iter()
            .filter(|s| s.0 == lport)
            .collect();
        assert_eq!(saw.len(), 5, "{}", fs::read_to_string(&log).unwrap());
        assert!(saw.iter().all(|s| s.3 && s.1 == 3868), "{saw:?}");
        lports.push(lport);
    }
    lports.sort_unstable();
    lports.dedup();
    assert_eq!(lports.len(), 4, "one local port per association");
    let done = rvsd.daemon.stop();
    assert!(done.status.success(), "{}\n{}", done.stdout, done.stderr);
    let summary = &done.stdout;
    let rx: Vec<u64> = (0..2).map(|w| worker_counter(summary, w, "rx")).collect();
    let redirected: u64 = (0..2)
        .map(|w| worker_counter(summary, w, "redirected"))
        .sum();
    eprintln!("two workers: rx {rx:?}, redirected {redirected}");
    assert!(
        redirected > 0 || rx.iter().all(|&r| r > 0),
        "one worker did everything:\n{summary}"
    );
    assert_eq!(common::drops(summary, "ring_full"), 0, "{summary}");
}

/// The value of `name N` on the summary line of worker `w`.
fn worker_counter(summary: &str, w: usize, name: &str) -> u64 {
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
