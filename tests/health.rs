//! Health checks end to end (scenario 9 of operator-scenarios.md): curl in
//! a client namespace reaches two python HTTP servers through rvsd's FULLNAT
//! VIP while rvsd checks them over its exception path (a net_tap whose
//! kernel side carries the check source). Servers are stopped and started;
//! the VIP keeps answering, and the sorry server in a third namespace
//! answers when both are down.
//!
//! Topology: cli 198.18.0.2 | rvsd 198.18.0.1 "client", 198.19.0.1
//! "servers", check source 198.19.0.250 | bridge | rs1 .11, rs2 .12,
//! sorry .13.
mod common;

use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::netns::{text, Netns};
use common::requests::RequestLoop;
use common::{wait_until, Daemon, TempDir};

const RVSADM: &str = env!("CARGO_BIN_EXE_rvsadm");
/// The ldirectord-style service: HTTP check, quiescent=no, a fallback.
const VIP: &str = "198.18.0.100";
/// The shell-loop style service: connect check, quiescent=yes (weight 0).
const VIP_Q: &str = "198.18.0.101";
const RS: [&str; 2] = ["198.19.0.11", "198.19.0.12"];
const SORRY: &str = "198.19.0.13";
const SOURCE: &str = "198.19.0.250";
const METRICS: &str = "127.0.0.1:9360";
/// IPv6: a ping-checked service, so checks cross the exception path with
/// neighbour discovery on both sides.
const VIP6: &str = "fd00:18::100";
const RS6: [&str; 2] = ["fd00:19::11", "fd00:19::12"];
const SOURCE6: &str = "fd00:19::250";

struct Lab {
    net: Netns,
    dir: TempDir,
    servers: Vec<Option<Child>>,
    socket: PathBuf,
}

impl Lab {
    fn new() -> Lab {
        let mut net = Netns::new("health");
        for role in ["cli", "gw", "sw", "rs1", "rs2", "sorry"] {
            net.add(role);
        }
        for role in ["gw", "sw"] {
            net.ok(
                role,
                &["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"],
            );
        }
        net.veth("gw", "gwc", "cli", "eth0");
        net.veth("gw", "gws", "sw", "p0");
        net.rvsd_port("gw", "gwc");
        net.rvsd_port("gw", "gws");
        net.bridge("sw");
        net.bridge_port("sw", "p0");
        net.up("cli", "eth0");
        net.addr("cli", "eth0", "198.18.0.2/24");
        net.ok(
            "cli",
            &["ip", "route", "add", "default", "via", "198.18.0.1"],
        );
        for (i, (role, addr)) in [("rs1", RS[0]), ("rs2", RS[1]), ("sorry", SORRY)]
            .into_iter()
            .enumerate()
        {
            let port = format!("p{}", i + 1);
            net.veth(role, "eth0", "sw", &port);
            net.bridge_port("sw", &port);
            net.up(role, "eth0");
            net.addr(role, "eth0", &format!("{addr}/24"));
            if let Some(a6) = RS6.get(i) {
                net.addr(role, "eth0", &format!("{a6}/64"));
            }
        }
        let dir = TempDir::new("health");
        let socket = dir.path("rvsd.sock");
        Lab {
            net,
            dir,
            servers: vec![None, None, None],
            socket,
        }
    }

    fn role(i: usize) -> (&'static str, &'static str) {
        [("rs1", RS[0]), ("rs2", RS[1]), ("sorry", SORRY)][i]
    }

    /// python3 -m http.server for server `i` (0, 1: real, 2: sorry),
    /// serving a page with its name; returns once it answers locally.
    fn start_server(&mut self, i: usize) {
        let (role, addr) = Lab::role(i);
        let www = self.dir.path(&format!("www-{role}"));
        fs::create_dir_all(&www).unwrap();
        fs::write(www.join("index.html"), format!("{role}\n")).unwrap();
        let log = fs::File::create(self.dir.path(&format!("http-{role}.log"))).unwrap();
        let child = self
            .net
            .cmd(
                role,
                &[
                    "python3",
                    "-u",
                    "-m",
                    "http.server",
                    "--bind",
                    addr,
                    "--directory",
                    www.to_str().unwrap(),
                    "80",
                ],
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn http.server");
        self.servers[i] = Some(child);
        let url = format!("http://{addr}/");
        let ready = wait_until(Duration::from_secs(15), || {
            self.net
                .curl(role, "1", &["-f", "-o", "/dev/null", &url])
                .status
                .success()
        });
        assert!(ready, "http.server in {role} did not come up");
    }

    fn stop_server(&mut self, i: usize) {
        if let Some(mut c) = self.servers[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn adm(&self, args: &[&str]) -> Output {
        Command::new(RVSADM)
            .args(args)
            .env("RVS_SOCKET", &self.socket)
            .stdin(Stdio::null())
            .output()
            .expect("run rvsadm")
    }

    fn ok(&self, line: &str) -> String {
        let o = self.adm(&line.split_whitespace().collect::<Vec<_>>());
        assert!(
            o.status.success(),
            "rvsadm {line}: {}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        text(&o.stdout)
    }

    /// One scrape of the exporter, however it went.
    fn scrape(&self) -> Output {
        self.net
            .curl("gw", "2", &["-f", &format!("http://{METRICS}/metrics")])
    }

    fn metrics(&self) -> String {
        let o = self.scrape();
        assert!(o.status.success(), "scrape: {}", text(&o.stderr));
        text(&o.stdout)
    }

    fn start_rvsd(&self) -> Daemon {
        let rules = self.dir.path("rules");
        let mut r = format!("-A -t {VIP}:80 -s rr\n-A -t {VIP_Q}:80 -s rr\n");
        for rs in RS {
            let _ = writeln!(r, "-a -t {VIP}:80 -r {rs}:80 -b -w 1");
            let _ = writeln!(r, "-a -t {VIP_Q}:80 -r {rs}:80 -b -w 2");
        }
        let _ = writeln!(r, "-A -t [{VIP6}]:80 -s rr");
        for rs in RS6 {
            let _ = writeln!(r, "-a -t [{VIP6}]:80 -r [{rs}]:80 -b -w 1");
        }
        let _ = writeln!(
            r,
            "--check-set -t [{VIP6}]:80 checktype=ping checkinterval=0.3 checktimeout=0.5"
        );
        fs::write(&rules, r).unwrap();
        // The ldirectord example of scenario 9, in rvsd's config.
        let cfg = format!(
            r#"[eal]
args = ["--no-huge", "--no-shconf", "--no-telemetry", "-m", "256", "--lcores=0@0,1@0"]
[dataplane]
workers = [1]
[[port]]
name = "client"
devargs = "net_af_packet0,iface=gwc"
addresses = ["198.18.0.1/24"]
[[port]]
name = "servers"
devargs = "net_af_packet1,iface=gws"
addresses = ["198.19.0.1/24", "fd00:19::1/64"]
[ctl]
socket = "{socket}"
rules = "{rules}"
[metrics]
listen = "{METRICS}"
[health]
sources = ["{SOURCE}", "{SOURCE6}"]
tap = "rvshc"
[[health.check]]
virtual = "-t {VIP}:80"
checktype = "negotiate"
service = "http"
checkport = 80
request = "index.html"
receive = "rs"
checkinterval = 0.3
checktimeout = 0.5
quiescent = "no"
fallback = "{SORRY}:80 fullnat"
"#,
            socket = self.socket.display(),
            rules = rules.display(),
        );
        let config = self.dir.path("rvsd.toml");
        fs::write(&config, cfg).unwrap();
        let mut daemon = Daemon::start(
            &self.dir,
            &["ip", "netns", "exec", &self.net.name("gw")],
            &config,
        );
        let up = wait_until(Duration::from_secs(30), || {
            daemon.has_exited()
                || (self.socket.exists()
                    && self
                        .net
                        .run("cli", &["ping", "-n", "-c", "1", "-W", "1", "198.18.0.1"])
                        .status
                        .success())
        });
        assert!(
            up && !daemon.has_exited(),
            "rvsd did not come up:\n{}",
            daemon.log()
        );
        daemon
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            self.stop_server(i);
        }
    }
}

/// The real servers `-Ln` lists for a service, with their weights.
fn listed(listing: &str, vip: &str) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in listing.lines() {
        if line.starts_with("TCP ") {
            inside = line.contains(&format!("{vip}:80 "));
            continue;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        if inside && w.first() == Some(&"->") && w.len() >= 4 && w[1] != "RemoteAddress:Port" {
            out.push((w[1].to_string(), w[3].parse().unwrap_or(-1)));
        }
    }
    out.sort();
    out
}

/// The value of a metric series whose line contains every one of `parts`.
fn metric(text: &str, name: &str, parts: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| parts.iter().all(|p| l.contains(p)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn checks_take_servers_out_and_back_and_the_sorry_server_answers_when_all_are_down() {
    let mut lab = Lab::new();
    for i in 0..3 {
        lab.start_server(i);
    }
    let rvsd = lab.start_rvsd();
    let diag = |lab: &Lab| {
        // Not `metrics()`, which asserts: a dead rvsd must not hide the rest.
        let drops: String = text(&lab.scrape().stdout)
            .lines()
            .filter(|l| l.starts_with("rvs_worker_dropped_packets_total{") && !l.ends_with(" 0"))
            .map(|l| format!("{l}\n"))
            .collect();
        format!(
            "---- rvsd log\n{}\n---- -Ln\n{}\n---- --check-list\n{}\n---- drops\n{drops}---- rs2's server\n{}",
            rvsd.log(),
            text(&lab.adm(&["-Ln"]).stdout),
            text(&lab.adm(&["--check-list"]).stdout),
            fs::read_to_string(lab.dir.path("http-rs2.log")).unwrap_or_default()
        )
    };
    // The shell loop's check (connect, weight 0 on failure), by rvsadm.
    lab.ok(&format!(
        "--check-set -t {VIP_Q}:80 checktype=connect checkinterval=0.3 checktimeout=0.5 fall=3 rise=1 quiescent=yes"
    ));
    // Checks pass through the exception path: both servers up, checked.
    let passed = wait_until(Duration::from_secs(10), || {
        let l = text(&lab.adm(&["--check-list"]).stdout);
        RS.iter().all(|rs| {
            l.lines()
                .any(|x| x.contains(&format!("-> {rs}:80 up passed")) && !x.contains("passed 0 "))
        })
    });
    assert!(passed, "checks never passed\n{}", diag(&lab));
    let passed6 = wait_until(Duration::from_secs(10), || {
        let l = text(&lab.adm(&["--check-list"]).stdout);
        RS6.iter().all(|rs| {
            l.lines()
                .any(|x| x.contains(&format!("-> [{rs}]:80 up passed")) && !x.contains("passed 0 "))
        })
    });
    assert!(passed6, "IPv6 pings never passed\n{}", diag(&lab));
    let both = vec![(format!("{}:80", RS[0]), 1), (format!("{}:80", RS[1]), 1)];
    assert_eq!(listed(&lab.ok("-Ln"), VIP), both);

    let started = Instant::now();
    let url = format!("http://{VIP}/");
    let traffic = RequestLoop::start(lab.net.name("cli"), "2", &[&url], Duration::ZERO);
    // rs1 dies: within fall × interval it leaves the list of the
    // quiescent=no service and goes to weight 0 in the other.
    std::thread::sleep(Duration::from_millis(500));
    let killed = Instant::now();
    lab.stop_server(0);
    let gone = wait_until(Duration::from_secs(10), || {
        let l = lab.ok("-Ln");
        listed(&l, VIP) == [(format!("{}:80", RS[1]), 1)]
            && listed(&l, VIP_Q).contains(&(format!("{}:80", RS[0]), 0))
    });
    assert!(gone, "rs1 never went down\n{}", diag(&lab));
    let detected = Instant::now();
    assert!(detected - killed < Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(1500));
    let after = traffic.since(detected + Duration::from_millis(300));
    assert!(
        after.len() >= 3,
        "too few requests after detection: {after:?}"
    );
    assert!(
        after.iter().all(|r| r.page.as_deref() == Some("rs2")),
        "after detection every request must reach rs2: {after:?}\n{}",
        diag(&lab)
    );
    let failed: Vec<_> = traffic
        .since(started)
        .into_iter()
        .filter(|r| r.page.is_none())
        .collect();
    // Only requests under way between the kill and the detection (plus a
    // scheduling slack) may fail.
    assert!(
        failed
            .iter()
            .all(|r| r.end >= killed && r.start < detected + Duration::from_millis(300)),
        "requests failed outside the detection window {killed:?}..{detected:?}: {failed:?}"
    );

    // rs1 comes back: up after one passed check, taking traffic again; the
    // quiesced service gives it its weight back.
    lab.start_server(0);
    let back = wait_until(Duration::from_secs(10), || {
        let l = lab.ok("-Ln");
        listed(&l, VIP) == both && listed(&l, VIP_Q).contains(&(format!("{}:80", RS[0]), 2))
    });
    assert!(back, "rs1 never came back\n{}", diag(&lab));
    let t = Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || {
            traffic
                .since(t)
                .iter()
                .filter(|r| r.page.as_deref() == Some("rs1"))
                .count()
                >= 2
        }),
        "rs1 takes no traffic after coming back\n{}",
        diag(&lab)
    );
    drop(traffic);

    // An operator's drain is not undone by passing checks.
    lab.ok(&format!("-e -t {VIP_Q}:80 -r {}:80 -b -w 0", RS[1]));
    std::thread::sleep(Duration::from_millis(1200));
    assert!(listed(&lab.ok("-Ln"), VIP_Q).contains(&(format!("{}:80", RS[1]), 0)));

    // Both die: the sorry server stands in; one returns: it steps back.
    lab.stop_server(0);
    lab.stop_server(1);
    let sorry = wait_until(Duration::from_secs(10), || {
        listed(&lab.ok("-Ln"), VIP) == [(format!("{SORRY}:80"), 1)]
    });
    assert!(sorry, "the sorry server never stood in\n{}", diag(&lab));
    for _ in 0..3 {
        assert_eq!(
            lab.net
                .fetch("cli", "2", &format!("http://{VIP}/"))
                .as_deref(),
            Ok("sorry"),
            "{}",
            diag(&lab)
        );
    }
    lab.start_server(1);
    let stepped_back = wait_until(Duration::from_secs(10), || {
        listed(&lab.ok("-Ln"), VIP) == [(format!("{}:80", RS[1]), 1)]
    });
    assert!(
        stepped_back,
        "the sorry server never stepped back\n{}",
        diag(&lab)
    );
    for _ in 0..3 {
        assert_eq!(
            lab.net
                .fetch("cli", "2", &format!("http://{VIP}/"))
                .as_deref(),
            Ok("rs2"),
            "{}",
            diag(&lab)
        );
    }

    // Metrics and the log show each transition.
    let m = lab.metrics();
    let rs1 = format!("real=\"{}\"", RS[0]);
    let svc = format!("vip=\"{VIP}\"");
    assert_eq!(
        metric(
            &m,
            "rvs_dest_health_transitions_total",
            &[&svc, &rs1, "to=\"down\""]
        ),
        Some(2.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "rvs_dest_health_transitions_total",
            &[&svc, &rs1, "to=\"up\""]
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(metric(&m, "rvs_dest_up", &[&svc, &rs1]), Some(0.0), "{m}");
    assert_eq!(
        metric(&m, "rvs_dest_up", &[&svc, &format!("real=\"{}\"", RS[1])]),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "rvs_service_sorry_in_use", &[&svc]),
        Some(0.0),
        "{m}"
    );
    let log = rvsd.log();
    for want in [
        format!(
            "real server {}:80 is gone: down after 3 failed check(s)",
            RS[0]
        ),
        format!(
            "real server {}:80 is back: up after 1 passed check(s)",
            RS[0]
        ),
        format!("no real server is up; sorry server {SORRY}:80 takes new connections"),
        "a real server is up; the sorry server takes no new connections".to_string(),
    ] {
        assert!(log.contains(&want), "log lacks {want:?}:\n{log}");
    }
    let done = rvsd.stop();
    assert!(
        done.status.success(),
        "rvsd exit: {}\n{}",
        done.stdout,
        done.stderr
    );
    // The checks crossed the exception path both ways.
    for dir in ["to host", "from host"] {
        let n = common::counter(&done.stdout, dir);
        assert!(n.is_some_and(|n| n > 0), "{dir}: {n:?}\n{}", done.stdout);
    }
}
