//! ECMP scale-out end to end (scenario 10 of operator-scenarios.md): two
//! rvsd directors announce a DR VIP by BGP through BIRD, each BIRD speaking
//! from its director's [health] source over rvs's own dataplane, to a
//! router namespace whose BIRD installs both routes as one multipath route
//! (`merge paths on`). What is checked is the router's kernel table, the
//! client's requests and the pages that answer them.
//!
//! The pair lab (tests/common/pair.rs), plus: the router's leg on the
//! servers' bridge (198.19.0.254; DR real servers answer the client through
//! it), the VIP on the real servers' lo, and the VIP outside every subnet
//! (198.51.100.100) so the router reaches it only by the routes BGP gives.
//!
//! ```text
//! cli 203.0.113.2, .10-.25 ── rt ── lan ─┬─ gwa 198.18.0.2, BGP from 198.18.0.12 (tap)
//!                             │          └─ gwb 198.18.0.3, BGP from 198.18.0.13 (tap)
//!                             └ 198.19.0.254 ── sw ─┬─ gwa, gwb "servers"
//!                                                   └─ rs1 .11, rs2 .12 (VIP on lo)
//! ```
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::lab::{serial, Rvsd, StartOpts, RS4, SERVERS};
use common::netns::{body, text, Netns};
use common::nginx::{start_nginx, Nginx};
use common::pair::{pair, start_director, DIRECTORS, PAIR_CLI4, RT_LAN4};
use common::requests::RequestLoop;
use common::{wait_until, TempDir};

const VIP: &str = "198.51.100.100";
/// Each director's health-check source: its BGP session's address, and the
/// next hop the router installs for it.
const SOURCES: [&str; 2] = ["198.18.0.12", "198.18.0.13"];
const RT_SW4: &str = "198.19.0.254";
const TABLE: u32 = 3261;
const TAP: &str = "rvsbgp";
/// More client addresses: the router's L3 hash spreads them over both
/// directors.
const CLIENTS: std::ops::RangeInclusive<u8> = 10..=25;

fn bird_bin() -> &'static str {
    let ok = Command::new("bird")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() || !o.stderr.is_empty());
    assert!(
        ok,
        "bird (BIRD 2) not found: scripts/setup.sh installs bird2"
    );
    "bird"
}

/// BGP timers short enough for a test: a dead peer is dropped after 3 s,
/// a failed session retried after 1 s.
const TIMERS: &str = "hold time 3; keepalive time 1; connect retry time 1; \
                      start delay time 1; error wait time 1, 5;";

/// A director's BIRD: learns table TABLE, exports it to the router.
fn director_bird(i: usize) -> String {
    format!(
        "router id {src};\n\
         protocol device {{ scan time 1; }}\n\
         protocol kernel vips {{\n\
           kernel table {TABLE};\n\
           learn;\n\
           scan time 1;\n\
           ipv4 {{ import all; export none; }};\n\
         }}\n\
         protocol bgp uplink {{\n\
           local {src} as 65001;\n\
           neighbor {RT_LAN4} as 65000;\n\
           multihop;\n\
           {TIMERS}\n\
           ipv4 {{ import none; export where proto = \"vips\"; next hop self; }};\n\
         }}\n",
        src = SOURCES[i]
    )
}

/// The router's BIRD: both directors, their routes merged into one
/// multipath route in the kernel.
fn router_bird() -> String {
    let mut c = format!(
        "router id {RT_LAN4};\n\
         protocol device {{ scan time 1; }}\n\
         protocol kernel {{\n\
           merge paths on;\n\
           ipv4 {{ import none; export all; }};\n\
         }}\n\
         template bgp director {{\n\
           local {RT_LAN4} as 65000;\n\
           {TIMERS}\n\
           ipv4 {{ import all; export none; }};\n\
         }}\n"
    );
    for (i, d) in DIRECTORS.iter().enumerate() {
        c.push_str(&format!(
            "protocol bgp {d} from director {{ neighbor {} as 65001; }}\n",
            SOURCES[i]
        ));
    }
    c
}

struct Ecmp {
    net: Netns,
    dir: TempDir,
    dirs: [TempDir; 2],
    nginx: Vec<Nginx>,
}

impl Ecmp {
    fn new(test: &str) -> Ecmp {
        bird_bin();
        let net = pair(test);
        net.veth("rt", "eth2", "sw", "pr");
        net.bridge_port("sw", "pr");
        net.up("rt", "eth2");
        net.addr("rt", "eth2", &format!("{RT_SW4}/24"));
        // DR: replies come back from the VIP on the servers' leg.
        for k in ["all", "default", "eth0", "eth1", "eth2"] {
            net.ok(
                "rt",
                &["sysctl", "-qw", &format!("net.ipv4.conf.{k}.rp_filter=0")],
            );
        }
        for c in CLIENTS {
            net.addr("cli", "eth0", &format!("203.0.113.{c}/24"));
        }
        for rs in SERVERS {
            for key in ["all", "eth0"] {
                for (k, v) in [("arp_ignore", 1), ("arp_announce", 2)] {
                    net.ok(
                        rs,
                        &["sysctl", "-qw", &format!("net.ipv4.conf.{key}.{k}={v}")],
                    );
                }
            }
            net.addr(rs, "lo", &format!("{VIP}/32"));
            net.ok(rs, &["ip", "route", "add", "default", "via", RT_SW4]);
        }
        let dir = TempDir::new("ecmp");
        let ecmp = Ecmp {
            net,
            dir,
            dirs: [TempDir::new("ecmp-gwa"), TempDir::new("ecmp-gwb")],
            nginx: Vec::new(),
        };
        let conf = ecmp.dir.path("bird-rt.conf");
        fs::write(&conf, router_bird()).unwrap();
        ecmp.bird("rt", "rt", &conf);
        ecmp
    }

    /// BIRD in the foreground in `role`, with its socket and log in the
    /// test's directory.
    fn bird(&self, role: &str, name: &str, conf: &std::path::Path) {
        let sock = self.dir.path(&format!("bird-{name}.ctl"));
        self.net.spawn(
            role,
            &[
                bird_bin(),
                "-f",
                "-c",
                conf.to_str().unwrap(),
                "-s",
                sock.to_str().unwrap(),
                "-P",
                self.dir.path(&format!("bird-{name}.pid")).to_str().unwrap(),
            ],
            &self.dir.path(&format!("bird-{name}.log")),
        );
    }

    fn birdc(&self, name: &str, what: &str) -> String {
        let sock = self.dir.path(&format!("bird-{name}.ctl"));
        let o = Command::new("birdc")
            .args(["-s", sock.to_str().unwrap()])
            .args(what.split_whitespace())
            .stdin(Stdio::null())
            .output();
        o.map(|o| text(&o.stdout)).unwrap_or_default()
    }

    /// nginx on real server `i`, on its own address and the VIP, serving
    /// a page with its name.
    fn start_server(&mut self, i: usize) {
        let n = start_nginx(
            &self.net,
            &self.dir,
            SERVERS[i],
            &[RS4[i], VIP],
            80,
            "",
            "",
            "",
        );
        fs::write(n.www.join("index.html"), format!("{}\n", SERVERS[i])).unwrap();
        if self.nginx.len() <= i {
            self.nginx.push(n);
        } else {
            self.nginx[i] = n;
        }
    }

    fn stop_server(&self, i: usize) {
        let pid = fs::read_to_string(self.nginx[i].root.join("nginx.pid")).unwrap();
        let rs = SERVERS[i];
        self.net.ok(rs, &["kill", "-TERM", pid.trim()]);
        let gone = wait_until(Duration::from_secs(10), || {
            let o = self.net.run(rs, &["ss", "-Htln", "sport = :80"]);
            text(&o.stdout).trim().is_empty()
        });
        assert!(gone, "nginx in {rs} did not stop");
    }

    /// Director `i` with `rules`, announcing from its source, and its BIRD.
    fn start_director(&self, i: usize, rules: &str) -> Rvsd {
        let extra = format!(
            "[health]\nsources = [\"{}\"]\ntap = \"{TAP}\"\n\
             [announce]\nport = \"client\"\ntable = {TABLE}\nwithdraw_wait_ms = 1000\n",
            SOURCES[i]
        );
        let r = start_director(
            &self.net,
            &self.dirs[i],
            i,
            1,
            rules,
            &extra,
            &StartOpts {
                dataplane: "conns = 65536\n",
                ..Default::default()
            },
        );
        let conf = self.dir.path(&format!("bird-{}.conf", DIRECTORS[i]));
        if !conf.exists() {
            fs::write(&conf, director_bird(i)).unwrap();
            self.bird(DIRECTORS[i], DIRECTORS[i], &conf);
        }
        r
    }

    /// The next hops of the router's route to the VIP (none: no route).
    fn next_hops(&self) -> BTreeSet<String> {
        let o = self.net.run("rt", &["ip", "-4", "route", "show", VIP]);
        let out = text(&o.stdout);
        let w: Vec<&str> = out.split_whitespace().collect();
        w.windows(2)
            .filter(|p| p[0] == "via")
            .map(|p| p[1].to_string())
            .collect()
    }

    fn wait_next_hops(&self, want: &[&str], within: Duration, rvsd: &[&Rvsd]) -> Duration {
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        let t0 = Instant::now();
        let ok = wait_until(within, || self.next_hops() == want);
        assert!(
            ok,
            "router's next hops for {VIP}: want {want:?}, have {:?}\n{}",
            self.next_hops(),
            self.diag(rvsd)
        );
        t0.elapsed()
    }

    /// The VIP routes in director `i`'s table.
    fn table(&self, i: usize) -> String {
        text(
            &self
                .net
                .run(
                    DIRECTORS[i],
                    &["ip", "-4", "route", "show", "table", &TABLE.to_string()],
                )
                .stdout,
        )
    }

    fn diag(&self, rvsd: &[&Rvsd]) -> String {
        let mut s = format!(
            "---- rt: ip route\n{}\n---- rt bird\n{}{}",
            text(&self.net.run("rt", &["ip", "route"]).stdout),
            self.birdc("rt", "show protocols"),
            self.birdc("rt", "show route all"),
        );
        for (i, d) in DIRECTORS.iter().enumerate() {
            s += &format!(
                "---- {d} table {TABLE}\n{}---- {d} bird\n{}{}\n",
                self.table(i),
                self.birdc(d, "show protocols"),
                fs::read_to_string(self.dir.path(&format!("bird-{d}.log"))).unwrap_or_default()
            );
        }
        for r in rvsd {
            s += &format!("---- rvsd\n{}\n", r.daemon.log());
        }
        s
    }

    /// One request from client address `from`: the page, or None.
    fn fetch(&self, from: &str) -> Option<String> {
        let url = format!("http://{VIP}/");
        body(&self.net.curl("cli", "1", &["--interface", from, &url]))
    }
}

/// The rules of both directors: the same list in the same order, so `mh`
/// builds the same table on both; each real server checked by connect.
fn rules(servers: &[usize]) -> String {
    let mut r = format!("-A -t {VIP}:80 -s mh\n");
    for &i in servers {
        r += &format!("-a -t {VIP}:80 -r {}:80 -g -w 1\n", RS4[i]);
    }
    r += &format!(
        "--check-set -t {VIP}:80 checktype=connect checkinterval=0.3 checktimeout=0.5 fall=2\n"
    );
    r
}

#[test]
fn both_directors_announce_and_one_whose_last_server_fails_withdraws() {
    let _g = serial();
    let mut lab = Ecmp::new("ecmph");
    lab.start_server(0);
    lab.start_server(1);
    // Each director has one real server of its own.
    let a = lab.start_director(0, &rules(&[0]));
    let b = lab.start_director(1, &rules(&[1]));
    let t = lab.wait_next_hops(&SOURCES, Duration::from_secs(30), &[&a, &b]);
    eprintln!("both routes at the router {t:?} after the directors started");
    assert!(lab
        .table(0)
        .contains(&format!("{VIP} dev {TAP} proto static")));
    // Each client address goes through one director, whose server answers.
    let pages: BTreeSet<String> = CLIENTS
        .filter_map(|c| lab.fetch(&format!("203.0.113.{c}")))
        .collect();
    assert_eq!(
        pages,
        ["rs1".to_string(), "rs2".to_string()].into(),
        "16 clients over two next hops reach both directors' servers"
    );

    // gwa's only real server stops: its checks fail, its route goes, gwb's stays.
    let t0 = Instant::now();
    lab.stop_server(0);
    let t = lab.wait_next_hops(&[SOURCES[1]], Duration::from_secs(15), &[&a, &b]);
    eprintln!("gwa's route withdrawn {t:?} after its last server stopped");
    assert!(t0.elapsed() < Duration::from_secs(15));
    assert!(lab.table(0).trim().is_empty(), "{}", lab.table(0));
    // rvsd logs the withdrawal once the route is out of the table, so the
    // line may land a moment after the router saw the route go.
    let line = format!("VIP {VIP} withdrawn: no real server available");
    assert!(
        wait_until(Duration::from_secs(2), || a.daemon.log().contains(&line)),
        "{}",
        a.daemon.log()
    );
    // Every client now reaches rs2 through gwb.
    for c in CLIENTS {
        assert_eq!(
            lab.fetch(&format!("203.0.113.{c}")).as_deref(),
            Some("rs2"),
            "client 203.0.113.{c}\n{}",
            lab.diag(&[&a, &b])
        );
    }

    // The server comes back: gwa announces again.
    lab.start_server(0);
    let t = lab.wait_next_hops(&SOURCES, Duration::from_secs(15), &[&a, &b]);
    eprintln!("gwa's route back {t:?} after its server restarted");
    a.stop();
    b.stop();
}

/// Which director the router sends each client address through, and the
/// page that answers it.
fn spread(lab: &Ecmp) -> BTreeMap<String, (String, String)> {
    let mut m = BTreeMap::new();
    for c in CLIENTS {
        let from = format!("203.0.113.{c}");
        let route = lab.net.ok(
            "rt",
            &["ip", "route", "get", VIP, "from", &from, "iif", "eth0"],
        );
        let via = route
            .split_whitespace()
            .skip_while(|w| *w != "via")
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let page = lab
            .fetch(&from)
            .unwrap_or_else(|| panic!("no answer to {from}\n{}", lab.diag(&[])));
        m.insert(from, (via, page));
    }
    m
}

/// Both directors balance both real servers with `mh`; the one the main
/// client's flows go through stops (SIGTERM or SIGKILL). Its route is
/// withdrawn, the request loop carries on through the other director, and
/// every client address is answered by the real server that answered it
/// before: both directors pick the same server for the same flow.
fn a_director_stops(test: &str, kill: bool) {
    let _g = serial();
    let mut lab = Ecmp::new(test);
    lab.start_server(0);
    lab.start_server(1);
    let mut rvsd = [
        Some(lab.start_director(0, &rules(&[0, 1]))),
        Some(lab.start_director(1, &rules(&[0, 1]))),
    ];
    let all: Vec<&Rvsd> = rvsd.iter().flatten().collect();
    lab.wait_next_hops(&SOURCES, Duration::from_secs(30), &all);
    let before = spread(&lab);
    let vias: BTreeSet<&String> = before.values().map(|(v, _)| v).collect();
    assert_eq!(
        vias.len(),
        2,
        "16 client addresses all hashed to one director: {before:?}"
    );
    let servers: BTreeSet<&String> = before.values().map(|(_, p)| p).collect();
    assert_eq!(
        servers.len(),
        2,
        "mh sent 16 client addresses to one real server: {before:?}"
    );
    // The director the main client's flows go through is the one to stop.
    let route = lab.net.ok(
        "rt",
        &["ip", "route", "get", VIP, "from", PAIR_CLI4, "iif", "eth0"],
    );
    let x = SOURCES
        .iter()
        .position(|s| route.contains(&format!("via {s} ")))
        .unwrap_or_else(|| panic!("{route}"));
    let y = 1 - x;
    let first = lab.fetch(PAIR_CLI4).expect("the main client is answered");

    let url = format!("http://{VIP}/");
    let traffic = RequestLoop::start(
        lab.net.name("cli"),
        "1",
        &["--interface", PAIR_CLI4, &url],
        Duration::from_millis(50),
    );
    let began = Instant::now();
    wait_until(Duration::from_secs(5), || traffic.since(began).len() >= 5);
    let stopped = Instant::now();
    let mut gone = rvsd[x].take();
    if kill {
        gone.take().unwrap().daemon.kill();
        // The tap went with the process, and every route through it.
        let vanished = wait_until(Duration::from_secs(5), || {
            !lab.net
                .run(DIRECTORS[x], &["ip", "link", "show", TAP])
                .status
                .success()
        });
        assert!(vanished, "the tap outlived rvsd");
        assert!(
            lab.table(x).trim().is_empty(),
            "table {TABLE} after SIGKILL: {}",
            lab.table(x)
        );
    } else {
        let pid = gone.as_ref().unwrap().daemon.pid().unwrap().to_string();
        lab.net.ok("rt", &["kill", "-TERM", &pid]);
    }
    let left: Vec<&Rvsd> = rvsd.iter().flatten().collect();
    lab.wait_next_hops(&[SOURCES[y]], Duration::from_secs(10), &left);
    let withdrawn = stopped.elapsed();
    eprintln!(
        "{}: the router had one next hop {withdrawn:?} after the signal",
        if kill { "SIGKILL" } else { "SIGTERM" }
    );
    if let Some(gone) = gone {
        gone.stop();
        let log = fs::read_to_string(lab.dirs[x].path("rvsd.stderr")).unwrap();
        assert!(
            log.contains(&format!("VIP {VIP} withdrawn: rvsd is stopping")),
            "{log}"
        );
    }
    // The loop carries on through the other director, to the same server.
    let settled = stopped + withdrawn;
    wait_until(Duration::from_secs(10), || {
        traffic.since(settled).len() >= 10
    });
    let log = traffic.finish();
    let after: Vec<(Duration, &Option<String>)> = log
        .iter()
        .filter(|r| r.start > settled)
        .map(|r| (r.start.duration_since(stopped), &r.page))
        .collect();
    assert!(
        after.len() >= 10,
        "too few requests after the withdrawal: {after:?}"
    );
    assert!(
        after
            .iter()
            .all(|(_, p)| p.as_deref() == Some(first.as_str())),
        "after the withdrawal every request is answered by {first}: {after:?}"
    );
    let failed: Vec<Duration> = log
        .iter()
        .filter(|r| r.page.is_none())
        .map(|r| r.start.saturating_duration_since(stopped))
        .collect();
    eprintln!(
        "{} requests, {} failed (at {failed:?} after the stop)",
        log.len(),
        failed.len()
    );
    if !kill {
        // The route went before the dataplane: at most the request in
        // flight when the router switched is lost.
        assert!(failed.len() <= 1, "failed requests: {failed:?}");
    } else {
        // Lost only until the router gave up on the dead session.
        assert!(
            failed
                .iter()
                .all(|d| *d < withdrawn + Duration::from_secs(1)),
            "failures after the withdrawal: {failed:?} (withdrawn at {withdrawn:?})"
        );
    }
    // Every client address: the same real server as before, through the
    // director left.
    let now = spread(&lab);
    for (from, (via, page)) in &now {
        assert_eq!(via, SOURCES[y], "{from}");
        assert_eq!(
            page, &before[from].1,
            "{from} moved from {} to {via}: mh picks the same real server on both",
            before[from].0
        );
    }
    rvsd[y].take().unwrap().stop();
}

#[test]
fn a_director_stopped_by_sigterm_withdraws_and_mh_flows_carry_on_through_the_other() {
    a_director_stops("ecmpt", false);
}

#[test]
fn a_killed_directors_routes_vanish_with_its_tap_and_mh_flows_carry_on() {
    a_director_stops("ecmpk", true);
}

/// The announce port's link: net_tap reports the kernel side's state
/// (af_packet always says up), so here rvsd's one port is a net_tap whose
/// interface the test takes down and up. No router: the table is what the
/// routing daemon reads.
#[test]
fn a_port_whose_link_goes_down_withdraws_the_vips_until_it_comes_back() {
    let _g = serial();
    let mut net = Netns::new("ecmpl");
    net.add("gw");
    let dir = TempDir::new("ecmp-link");
    let (socket, rules, config) = (
        dir.path("rvsd.sock"),
        dir.path("rules"),
        dir.path("rvsd.toml"),
    );
    fs::write(
        &rules,
        format!("-A -t {VIP}:80 -s mh\n-a -t {VIP}:80 -r 198.18.0.11:80 -g -w 1\n"),
    )
    .unwrap();
    let metrics = "127.0.0.1:9361";
    fs::write(
        &config,
        format!(
            r#"[eal]
args = ["--no-huge", "--no-shconf", "--no-telemetry", "-m", "256", "--lcores=0@0,1@0"]
[dataplane]
workers = [1]
conns = 65536
[[port]]
name = "lan"
devargs = "net_tap0,iface=dp0"
addresses = ["198.18.0.1/24"]
[ctl]
socket = "{socket}"
rules = "{rules}"
[metrics]
listen = "{metrics}"
[health]
sources = ["{src}"]
tap = "{TAP}"
[announce]
table = {TABLE}
withdraw_wait_ms = 0
"#,
            socket = socket.display(),
            rules = rules.display(),
            src = SOURCES[0],
        ),
    )
    .unwrap();
    let rvsd = common::Daemon::start(&dir, &["ip", "netns", "exec", &net.name("gw")], &config);
    let table = || {
        text(
            &net.run(
                "gw",
                &["ip", "-4", "route", "show", "table", &TABLE.to_string()],
            )
            .stdout,
        )
    };
    let announced = || {
        let o = net.curl("gw", "5", &[&format!("http://{metrics}/metrics")]);
        let want = format!("rvs_vip_announced{{vip=\"{VIP}\"}} ");
        text(&o.stdout)
            .lines()
            .find_map(|l| l.strip_prefix(&want).map(str::to_string))
    };
    let route = format!("{VIP} dev {TAP} proto static");
    assert!(
        wait_until(Duration::from_secs(30), || table().contains(&route)),
        "no route in table {TABLE}: {}\n{}",
        table(),
        rvsd.log()
    );
    assert!(
        wait_until(Duration::from_secs(5), || announced().as_deref()
            == Some("1")),
        "rvs_vip_announced: {:?}",
        announced()
    );

    net.ok("gw", &["ip", "link", "set", "dp0", "down"]);
    assert!(
        wait_until(Duration::from_secs(5), || table().trim().is_empty()),
        "route still there with the link down: {}\n{}",
        table(),
        rvsd.log()
    );
    // The log line and the gauge follow the route out of the table.
    let line = format!("VIP {VIP} withdrawn: port lan link down");
    assert!(
        wait_until(Duration::from_secs(2), || rvsd.log().contains(&line)),
        "{}",
        rvsd.log()
    );
    assert!(
        wait_until(Duration::from_secs(2), || announced().as_deref()
            == Some("0")),
        "{:?}",
        announced()
    );

    net.ok("gw", &["ip", "link", "set", "dp0", "up"]);
    assert!(
        wait_until(Duration::from_secs(5), || table().contains(&route)),
        "no route back with the link up: {}\n{}",
        table(),
        rvsd.log()
    );
    let done = rvsd.stop();
    assert!(done.status.success(), "{}", done.stderr);
    // An orderly stop takes the route out (the tap goes too; the log says
    // the route went first).
    assert!(
        done.stderr
            .contains(&format!("VIP {VIP} withdrawn: rvsd is stopping")),
        "{}",
        done.stderr
    );
    assert!(table().trim().is_empty());
}
