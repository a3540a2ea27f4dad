//! The pair, end to end: two directors run VRRP for their addresses and the
//! connection sync daemon (master on gwa, backup on gwb), two nginx real
//! servers behind them (tests/common/pair.rs). Long downloads through a
//! FULLNAT and a NAT VIP and a loop of short requests run while the master
//! is killed with SIGKILL: the backup takes over within VRRP's
//! Master_Down_Interval, every download ends with every byte and no reset,
//! and the short requests fail only inside the failover window.
mod common;

use std::fs;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::lab::{serial, Rvsd, StartOpts, RS4, SERVERS, VIP4};
use common::netns::{curl_in, text, Netns};
use common::nginx::start_nginx;
use common::pair::{pair, start_director, DIRECTORS};
use common::requests::RequestLoop;
use common::{wait_until, TempDir};

/// VRRP's advertisement interval in the test, in seconds.
const ADVERT: f64 = 0.3;
/// The directors' priorities: gwa is the master while it lives.
const PRIORITY: [u32; 2] = [150, 100];
/// The FULLNAT local address both directors share (VRRP moves it).
const LIP: &str = "198.19.0.10";
/// The real servers' default gateway for NAT, owned by the VRRP master.
const NAT_GW: &str = "198.19.0.1";
/// The download: large enough at RATE to run for 20 s.
const BIG: usize = 4 << 20;
const RATE: &str = "200k";

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// rvsd.toml's VRRP part for director `i`, its notify hook writing
/// "TIME ARGS..." lines to `notify_log`.
fn vrrp_conf(i: usize, dir: &TempDir) -> String {
    let hook = dir.path("notify.sh");
    fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"$(date +%s.%N) $*\" >> {}\n",
            dir.path("notify.log").display()
        ),
    )
    .unwrap();
    common::sh(&["chmod", "+x", hook.to_str().unwrap()]);
    format!(
        "[[vrrp]]\nname = \"VI_1\"\nport = \"client\"\nvrid = 51\npriority = {}\n\
         advert_int = {ADVERT}\npreempt = true\n\
         addresses = [\"services\", \"{NAT_GW} on servers\"]\nnotify = \"{}\"\n",
        PRIORITY[i],
        hook.display()
    )
}

/// When the notify hook of `dir` last said the instance became `state`.
fn became(dir: &TempDir, state: &str) -> Option<f64> {
    fs::read_to_string(dir.path("notify.log"))
        .unwrap_or_default()
        .lines()
        .rev()
        .filter(|l| l.split_whitespace().any(|w| w == state))
        .find_map(|l| l.split_whitespace().next()?.parse().ok())
}

/// The `-Lnc` lines of `rvsd` for client port `cport`.
fn conn_lines(rvsd: &Rvsd, cport: &str) -> Vec<String> {
    text(&rvsd.adm("-Lnc").stdout)
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(3)
                .is_some_and(|s| s.ends_with(&format!(":{cport}")))
        })
        .map(|l| l.split_whitespace().skip(3).collect::<Vec<_>>().join(" "))
        .collect()
}

/// A rate-limited download from the client, in the background.
fn download(net: &Netns, url: &str, out: &Path, cport: u16) -> Child {
    let cport = cport.to_string();
    let args = [
        "--limit-rate",
        RATE,
        "--local-port",
        &cport,
        "-o",
        out.to_str().unwrap(),
        url,
    ];
    curl_in(&net.name("cli"), "90", &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl")
}

#[test]
fn pair_fails_over_without_losing_a_connection() {
    let _serial = serial();
    let net = pair("ha");
    let rs_dir = TempDir::new("ha-rs");
    // The same page and file on both servers.
    let body: Vec<u8> = (0..BIG).map(|i| (i * 7919 % 251) as u8).collect();
    for (i, rs) in SERVERS.iter().enumerate() {
        let n = start_nginx(&net, &rs_dir, rs, &[RS4[i]], 80, "", "", "");
        fs::write(n.www.join("big"), &body).unwrap();
        fs::write(n.www.join("index.html"), format!("{rs}\n")).unwrap();
        // NAT: the replies go back through whichever director is master.
        net.ok(rs, &["ip", "route", "add", "default", "via", NAT_GW]);
    }
    let want = {
        let f = rs_dir.path("big");
        fs::write(&f, &body).unwrap();
        common::sha256(&f)
    };

    let rules = format!(
        "-A -t {VIP4}:80 -s rr\n-a -t {VIP4}:80 -r {r0}:80 -b\n-a -t {VIP4}:80 -r {r1}:80 -b\n\
         -P -t {VIP4}:80 -z {LIP} -F servers\n\
         -A -t {VIP4}:8080 -s rr\n-a -t {VIP4}:8080 -r {r0}:80 -m\n-a -t {VIP4}:8080 -r {r1}:80 -m\n",
        r0 = RS4[0],
        r1 = RS4[1],
    );
    let dirs = [TempDir::new("ha-a"), TempDir::new("ha-b")];
    let start = |i: usize| {
        let extra = vrrp_conf(i, &dirs[i]);
        start_director(&net, &dirs[i], i, 1, &rules, &extra, &StartOpts::default())
    };
    let master = start(0);
    let backup = start(1);
    let logs = || {
        let mut s = String::new();
        for (i, d) in dirs.iter().enumerate() {
            s += &format!(
                "--- {} log:\n{}\n--- notify:\n{}\n",
                DIRECTORS[i],
                fs::read_to_string(d.path("rvsd.stderr")).unwrap_or_default(),
                fs::read_to_string(d.path("notify.log")).unwrap_or_default()
            );
        }
        s
    };
    assert!(
        wait_until(Duration::from_secs(10), || became(&dirs[0], "MASTER")
            .is_some()
            && became(&dirs[1], "BACKUP").is_some()),
        "gwa did not become master and gwb backup:\n{}",
        logs()
    );
    master.ok("--start-daemon master --mcast-interface servers --syncid 7");
    backup.ok("--start-daemon backup --mcast-interface servers --syncid 7");
    assert_eq!(
        backup.ok("-L --daemon"),
        // ipvsadm 1.31 with a kernel that reports the defaults it filled in.
        "backup sync daemon (mcast=servers, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
    );

    // A short request answers through the master before anything else.
    let short = |timeout: &str| net.curl("cli", timeout, &[&format!("http://{VIP4}/")]);
    let first = short("5");
    assert!(
        first.status.success(),
        "{}\n{}",
        text(&first.stderr),
        logs()
    );

    let out = TempDir::new("ha-out");
    let (fn_out, nat_out) = (out.path("fullnat"), out.path("nat"));
    let mut fullnat = download(&net, &format!("http://{VIP4}/big"), &fn_out, 40001);
    let mut nat = download(&net, &format!("http://{VIP4}:8080/big"), &nat_out, 40002);

    // The loop of short requests.
    let vip_url = format!("http://{VIP4}/");
    let looper = RequestLoop::start(
        net.name("cli"),
        "2",
        &[&vip_url],
        Duration::from_millis(100),
    );

    // The backup learns both downloads' conns, FULLNAT's local address and
    // port included, before the master fails: its -Lnc lines for each
    // client port are the master's.
    for cport in ["40001", "40002"] {
        let same = wait_until(Duration::from_secs(10), || {
            let m = conn_lines(&master, cport);
            !m.is_empty() && m == conn_lines(&backup, cport)
        });
        assert!(
            same,
            "conn of client port {cport} not synced:\nmaster:\n{}\nbackup:\n{}\n{}",
            text(&master.adm("-Lnc").stdout),
            text(&backup.adm("-Lnc").stdout),
            logs()
        );
    }
    let synced = conn_lines(&backup, "40001");
    assert!(
        synced[0].contains(&format!(" {LIP}:")),
        "the synced FULLNAT conn lacks its local address: {synced:?}"
    );

    std::thread::sleep(Duration::from_secs(3));
    let (killed, killed_at) = (Instant::now(), now());
    master.daemon.kill();
    let taken = wait_until(Duration::from_secs(10), || {
        became(&dirs[1], "MASTER").is_some_and(|t| t > killed_at)
    });
    assert!(taken, "gwb did not take over:\n{}", logs());
    let failover = became(&dirs[1], "MASTER").unwrap() - killed_at;
    // RFC 5798: Master_Down_Interval = 3 x advert + (256 - priority) / 256 x advert.
    let down_interval = 3.0 * ADVERT + (256.0 - f64::from(PRIORITY[1])) / 256.0 * ADVERT;
    eprintln!("failover: {failover:.3} s (Master_Down_Interval {down_interval:.3} s)");
    assert!(
        failover <= down_interval + 0.25,
        "gwb took {failover:.3} s to take over; Master_Down_Interval is {down_interval:.3} s\n{}",
        logs()
    );

    // Both downloads end with every byte and no reset.
    let deadline = Instant::now() + Duration::from_secs(90);
    for (name, child, path) in [
        ("FULLNAT", &mut fullnat, &fn_out),
        ("NAT", &mut nat, &nat_out),
    ] {
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "{name} download hangs\n{}",
                logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        assert!(
            status.success(),
            "{name} download failed ({status}): {err}\nbackup -Lnc:\n{}\n{}",
            text(&backup.adm("-Lnc").stdout),
            logs()
        );
        assert_eq!(common::sha256(path), want, "{name} download's bytes differ");
    }
    // The downloads can end before a short request has started after the
    // takeover (one that started before it may hang for its --max-time):
    // the loop goes on until one that did has come back, or for at most
    // 15 s, and is held to it below.
    let took_over = killed + Duration::from_secs_f64(failover);
    wait_until(Duration::from_secs(15), || {
        looper.since(took_over).iter().any(|r| r.page.is_some())
    });
    let tries = looper.finish();

    // The short requests failed only inside the failover window: from the
    // last try that could still be waiting for the master when it died
    // (started up to --max-time earlier) to shortly after the takeover.
    let secs = |t: Instant| {
        if t >= killed {
            (t - killed).as_secs_f64()
        } else {
            -(killed - t).as_secs_f64()
        }
    };
    let outside: Vec<f64> = tries
        .iter()
        .filter(|r| {
            r.page.is_none()
                && (secs(r.start) < -2.0 || r.start > took_over + Duration::from_secs(1))
        })
        .map(|r| secs(r.start))
        .collect();
    let failed = tries.iter().filter(|r| r.page.is_none()).count();
    eprintln!(
        "short requests: {} tries, {failed} failed, all within the failover window: {}",
        tries.len(),
        outside.is_empty()
    );
    assert!(
        outside.is_empty(),
        "short requests failed outside the failover window (seconds after the kill): {outside:?}\n{}",
        logs()
    );
    assert!(
        tries
            .iter()
            .any(|r| r.page.is_some() && r.start > took_over),
        "no short request succeeded after the takeover\n{}",
        logs()
    );
    let after = short("5");
    assert!(after.status.success(), "{}", text(&after.stderr));
}
