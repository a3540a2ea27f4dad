//! rvsd under hostile input, end to end: the corpus of tests/hostile/corpus.py
//! (malformed and hostile frames built with Python's standard library,
//! each with the outcome the RFCs and the kernel give it) is sent class by
//! class into rvsd's client port (net_pcap, which hands rvsd IP fragments as
//! they come) while a real client fetches pages through a FULLNAT VIP from
//! real servers. Every frame must be accounted for exactly: each class moves
//! the drop counters (and the address-conflict counter) by what the corpus
//! says and nothing else; the configuration is unchanged; no client request
//! fails; rvsd stops cleanly.
//!
//! Also: FULLNAT local ports are not the same from one start to the next.
mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::lab::{
    http_server, routed, serial, start_rvsd, start_rvsd_with, Pmd, Rvsd, StartOpts, GWS4,
    ROUTED_PORTS, RS4, SERVERS, VIP4,
};
use common::netns::{text, Netns};
use common::{wait_until, TempDir};

const CORPUS: &str = include_str!("hostile/corpus.py");
const METRICS: &str = "127.0.0.1:9360";

/// What the corpus says one class comes to.
struct Class {
    name: String,
    frames: u64,
    /// Drop reason (or "conflict") → frames.
    expect: BTreeMap<String, u64>,
}

fn plan(script: &Path, mac: &str) -> Vec<Class> {
    let out = common::sh(&["python3", script.to_str().unwrap(), "plan", mac]);
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("plan line");
            Class {
                name: v["class"].as_str().unwrap().to_string(),
                frames: v["frames"].as_u64().unwrap(),
                expect: v["expect"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
                    .collect(),
            }
        })
        .collect()
}

/// The counters that account for hostile frames, summed over workers:
/// drops by reason, and address conflicts under "conflict".
type Counts = BTreeMap<String, u64>;

fn scrape(net: &Netns) -> Option<(Counts, String)> {
    let o = net.run(
        "gw",
        &[
            "curl",
            "-fsS",
            "--noproxy",
            "*",
            "-m",
            "2",
            &format!("http://{METRICS}/metrics"),
        ],
    );
    if !o.status.success() {
        return None;
    }
    let body = text(&o.stdout);
    let mut c = Counts::new();
    for line in body.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        let key = if series.starts_with("rvs_worker_dropped_packets_total{") {
            match series.split_once("reason=\"") {
                Some((_, r)) => r.split('"').next().unwrap_or_default().to_string(),
                None => continue,
            }
        } else if series.starts_with("rvs_worker_address_conflicts_total{") {
            "conflict".to_string()
        } else {
            continue;
        };
        *c.entry(key).or_default() += v as u64;
    }
    Some((c, body))
}

fn total(c: &Counts) -> u64 {
    c.values().sum()
}

/// What moved from `a` to `b`, reasons that did not move left out.
fn delta(a: &Counts, b: &Counts) -> Counts {
    b.iter()
        .map(|(k, v)| (k.clone(), v - a.get(k).copied().unwrap_or(0)))
        .filter(|(_, d)| *d > 0)
        .collect()
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A client fetching the VIP's page in a loop until `stop` exists; one
/// line per request in `log`: curl's HTTP code.
fn curl_loop(net: &Netns, stop: &Path, log: &Path) -> Child {
    let script = format!(
        "while [ ! -e {} ]; do curl -s --noproxy '*' -m 5 -o /dev/null -w '%{{http_code}}\\n' http://{VIP4}/; done",
        stop.display()
    );
    net.cmd("cli", &["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(fs::File::create(log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("curl loop")
}

fn diag(rvsd: &Rvsd, last: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "---- rvsd log\n{}", rvsd.daemon.log());
    let _ = writeln!(s, "---- last scrape (drops)");
    for l in last.lines().filter(|l| {
        l.starts_with("rvs_worker_dropped") || l.starts_with("rvs_worker_address_conflicts")
    }) {
        let _ = writeln!(s, "{l}");
    }
    s
}

#[test]
fn a_hostile_corpus_is_all_accounted_for_while_real_clients_are_served() {
    let _serial = serial();
    let net = routed("hostile", 2);
    let dir = TempDir::new("hostile");
    // Only rvsd and the corpus speak on the links: no IPv6 chatter (MLD,
    // router solicitations) from the client or the servers to count.
    for role in ["cli", "rs1", "rs2"] {
        net.ok(role, &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
    }
    for (rs, addr) in SERVERS.iter().zip(RS4) {
        http_server(&net, &dir, rs, addr, 80);
    }
    let mut rules = format!("-A -t {VIP4}:80 -s rr\n-A -u {VIP4}:53 -s rr\n");
    for rs in RS4 {
        let _ = writeln!(rules, "-a -t {VIP4}:80 -r {rs}:80 -b");
    }
    let _ = writeln!(rules, "-a -u {VIP4}:53 -r {}:53 -b", RS4[0]);
    rules.push_str(
        "-A -t [fd00:18::100]:80 -s rr\n-a -t [fd00:18::100]:80 -r [fd00:19::11]:80 -b\n",
    );
    let opts = StartOpts {
        metrics: Some(METRICS),
        ..StartOpts::default()
    };
    let rvsd = start_rvsd_with(Pmd::Pcap, &net, &dir, 1, &ROUTED_PORTS, &rules, "", &opts);
    let saved = rvsd.ok("-S -n");

    // rvsd's MAC, as the client learned it (start_rvsd pinged).
    let neigh = net.ok("cli", &["ip", "-4", "neigh", "show", "198.18.0.1"]);
    let mac = neigh
        .split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .unwrap_or_else(|| panic!("no MAC for 198.18.0.1: {neigh}"))
        .to_string();
    let script = dir.path("corpus.py");
    fs::write(&script, CORPUS).unwrap();
    let classes = plan(&script, &mac);
    let sent: u64 = classes.iter().map(|c| c.frames).sum();
    assert!(sent >= 300, "the corpus has {sent} frames");

    let (stop, log) = (dir.path("stop"), dir.path("curls.log"));
    let mut client = curl_loop(&net, &stop, &log);
    let ok_lines = |n: usize| wait_until(Duration::from_secs(20), || lines(&log).len() >= n);
    assert!(ok_lines(3), "the client loop runs: {:?}", lines(&log));

    // The links settle: nothing counted for two seconds.
    let mut last = scrape(&net).map(|s| s.0).unwrap_or_default();
    let mut still = 0;
    let settled = wait_until(Duration::from_secs(30), || {
        std::thread::sleep(Duration::from_millis(500));
        let Some((now, _)) = scrape(&net) else {
            return false;
        };
        still = if now == last { still + 1 } else { 0 };
        last = now;
        still >= 4
    });
    assert!(settled, "drops keep moving without the corpus: {last:?}");

    let during = lines(&log).len();
    let (mut body, mut before) = (String::new(), last);
    for class in &classes {
        let out = net.ok(
            "cli",
            &[
                "python3",
                script.to_str().unwrap(),
                "send",
                &mac,
                "eth0",
                &class.name,
            ],
        );
        assert_eq!(out.trim(), format!("sent {}", class.frames));
        let mut after = before.clone();
        let arrived = wait_until(Duration::from_secs(15), || {
            if let Some((c, b)) = scrape(&net) {
                (after, body) = (c, b);
            }
            total(&after) - total(&before) >= class.frames
        });
        let moved = delta(&before, &after);
        assert!(
            arrived,
            "{}: {} frames sent, counted {moved:?}\n{}",
            class.name,
            class.frames,
            diag(&rvsd, &body)
        );
        assert_eq!(
            moved,
            class.expect,
            "{}: counted {moved:?}, the corpus says {:?}\n{}",
            class.name,
            class.expect,
            diag(&rvsd, &body)
        );
        before = after;
    }

    // The client kept being served during the corpus and after it.
    let after_corpus = lines(&log).len();
    assert!(
        after_corpus >= during + 5,
        "only {} requests during the corpus",
        after_corpus - during
    );
    assert!(ok_lines(after_corpus + 5), "the client loop stalled");
    fs::write(&stop, "").unwrap();
    let ended = wait_until(Duration::from_secs(15), || {
        matches!(client.try_wait(), Ok(Some(_)))
    });
    assert!(ended, "the client loop did not end");
    let results = lines(&log);
    let failed: Vec<&String> = results.iter().filter(|l| *l != "200").collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {failed:?}\n{}",
        failed.len(),
        results.len(),
        diag(&rvsd, &body)
    );

    assert_eq!(rvsd.ok("-S -n"), saved, "the configuration changed");
    let log = rvsd.daemon.log();
    assert!(!log.contains("panicked"), "{log}");
    let summary = rvsd.stop();
    eprintln!(
        "{sent} hostile frames in {} classes; {} client requests, all answered\n{summary}",
        classes.len(),
        results.len()
    );
}

/// The FULLNAT local port of the one conn to `rs` in `-Lnc`.
fn local_port(listing: &str) -> Option<u16> {
    listing.lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.len() == 7 && w[0] == "TCP" && w[4] == format!("{VIP4}:80") {
            w[5].strip_prefix(&format!("{GWS4}:"))?.parse().ok()
        } else {
            None
        }
    })
}

/// Two starts of rvsd, one request each through the same FULLNAT service:
/// the local ports differ (each start seeds its cursors from the OS; both
/// equal by chance once in 64 511).
#[test]
fn fullnat_local_ports_differ_from_one_start_to_the_next() {
    let _serial = serial();
    let net = routed("lports", 1);
    let files = TempDir::new("lports");
    http_server(&net, &files, SERVERS[0], RS4[0], 80);
    let rules = format!(
        "-A -t {VIP4}:80 -s rr\n-a -t {VIP4}:80 -r {}:80 -b\n",
        RS4[0]
    );
    let mut ports = Vec::new();
    for start in 0..2 {
        let dir = TempDir::new(&format!("lports{start}"));
        let rvsd = start_rvsd(&net, &dir, 1, &ROUTED_PORTS, &rules);
        let o = net.run(
            "cli",
            &[
                "curl",
                "-fsS",
                "--noproxy",
                "*",
                "-m",
                "5",
                &format!("http://{VIP4}/"),
            ],
        );
        assert!(o.status.success(), "{}", text(&o.stderr));
        let listing = rvsd.ok("-Lnc");
        ports.push(local_port(&listing).unwrap_or_else(|| panic!("no conn in:\n{listing}")));
        rvsd.stop();
    }
    eprintln!("first local ports of two starts: {ports:?}");
    assert_ne!(ports[0], ports[1], "the same first local port twice");
}

/// `accept_other_mac`: the client sends to the VIP through a MAC that is
/// not the port's (as a VRRP virtual MAC would be). Without the option
/// those frames are other_host drops and the request fails; with it on
/// the client port, the request is served.
#[test]
fn accept_other_mac_serves_frames_for_another_mac() {
    let _serial = serial();
    let net = routed("vmac", 1);
    let files = TempDir::new("vmac");
    http_server(&net, &files, SERVERS[0], RS4[0], 80);
    let rules = format!(
        "-A -t {VIP4}:80 -s rr\n-a -t {VIP4}:80 -r {}:80 -b\n",
        RS4[0]
    );
    let fetch = |secs: &str| {
        net.run(
            "cli",
            &[
                "curl",
                "-fsS",
                "--noproxy",
                "*",
                "-m",
                secs,
                &format!("http://{VIP4}/"),
            ],
        )
    };
    for accept in [false, true] {
        let dir = TempDir::new(&format!("vmac-{accept}"));
        let line = format!("accept_other_mac = {accept}");
        let opts = StartOpts {
            port_lines: &[("client", &line)],
            ..StartOpts::default()
        };
        let rvsd = start_rvsd_with(
            Pmd::AfPacket,
            &net,
            &dir,
            1,
            &ROUTED_PORTS,
            &rules,
            "",
            &opts,
        );
        // The client reaches the VIP (on its link) at another MAC.
        let vmac = [
            "ip",
            "neigh",
            "replace",
            VIP4,
            "lladdr",
            "02:00:5e:00:01:07",
            "dev",
            "eth0",
            "nud",
            "permanent",
        ];
        net.ok("cli", &vmac);
        let o = fetch(if accept { "5" } else { "2" });
        net.ok("cli", &["ip", "neigh", "del", VIP4, "dev", "eth0"]);
        let summary = rvsd.stop();
        let other_host = common::drops(&summary, "other_host");
        if accept {
            assert!(o.status.success(), "{}\n{summary}", text(&o.stderr));
            assert_eq!(other_host, 0, "{summary}");
        } else {
            assert!(
                !o.status.success(),
                "served without accept_other_mac: {summary}"
            );
            assert!(other_host >= 1, "{summary}");
        }
    }
}
