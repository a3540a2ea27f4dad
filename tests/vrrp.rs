//! VIP failover with VRRP version 3 spoken by rvsd itself (real EAL,
//! net_af_packet in namespaces): tests/common/pair.rs's two directors on
//! one LAN, a client behind a router, python http.server real servers
//! behind a FULLNAT VIP. tests/vrrp_peer.py decodes the adverts on the LAN
//! from RFC 5798's layout (its own checksum over the IPv4 pseudo header)
//! and asks, as the router would, who answers ARP for the VIP. Each
//! director's notify script appends "ARGS TIMESTAMP" to a file: the
//! failover time is the backup's MASTER line minus the moment of the kill.
mod common;

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::lab::{http_server, serial, Rvsd, StartOpts, RS4, SERVERS, VIP4};
use common::netns::{text, Netns};
use common::pair::{pair, start_director, LAN4, RT_LAN4};
use common::{wait_until, TempDir};

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vrrp_peer.py");
const METRICS: &str = "127.0.0.1:9117";
/// The advertisement interval: 0.2 s, 20 centiseconds.
const ADVERT_MS: u64 = 200;
/// The NAT real servers' gateway, owned by the master only.
const GW_ADDR: &str = "198.19.0.1";

/// RFC 5798's Master_Down_Interval for `priority` at `ADVERT_MS`.
fn master_down_ms(priority: u64) -> u64 {
    3 * ADVERT_MS + (256 - priority) * ADVERT_MS / 256
}

fn rules() -> String {
    let mut r = format!("-A -t {VIP4}:80 -s rr\n");
    for rs in RS4 {
        let _ = writeln!(r, "-a -t {VIP4}:80 -r {rs}:80 -b -w 1");
    }
    r
}

/// A notify script that appends its arguments and the time to `out`.
fn notify_script(dir: &TempDir, out: &Path) -> PathBuf {
    let p = dir.path("notify.sh");
    fs::write(
        &p,
        format!(
            "#!/bin/sh\necho \"$* $(date +%s.%N)\" >>{}\n",
            out.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn vrrp_conf(priority: u8, peers: &[&str], notify: &Path) -> String {
    let peers: Vec<String> = peers.iter().map(|p| format!("\"{p}\"")).collect();
    let peers = if peers.is_empty() {
        String::new()
    } else {
        format!("unicast_peers = [{}]\n", peers.join(", "))
    };
    format!(
        "[[vrrp]]\nname = \"VI_1\"\nport = \"client\"\nvrid = 51\npriority = {priority}\n\
         advert_int = 0.2\n{peers}addresses = [\"services\", \"{GW_ADDR} on servers\"]\n\
         notify = \"{}\"\n",
        notify.display()
    )
}

/// Director `i` with `priority`; its notify lines go to `notes`.
fn director(
    net: &Netns,
    dir: &TempDir,
    i: usize,
    priority: u8,
    peers: &[&str],
    notes: &Path,
) -> Rvsd {
    let script = notify_script(dir, notes);
    let opts = StartOpts {
        metrics: Some(METRICS),
        ..StartOpts::default()
    };
    let extra = vrrp_conf(priority, peers, &script);
    start_director(net, dir, i, 1, &rules(), &extra, &opts)
}

/// The notify lines: (arguments, time in seconds since the epoch).
fn notes(path: &Path) -> Vec<(String, f64)> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (args, ts) = l.rsplit_once(' ')?;
            Some((args.to_string(), ts.parse().ok()?))
        })
        .collect()
}

fn note_args(path: &Path) -> Vec<String> {
    notes(path).into_iter().map(|(a, _)| a).collect()
}

/// Waits for the `n`th notify line (1-based) and returns its time.
fn await_note(path: &Path, n: usize, want: &str, ctx: &dyn Fn() -> String) -> f64 {
    let ok = wait_until(Duration::from_secs(15), || notes(path).len() >= n);
    let got = notes(path);
    assert!(
        ok,
        "no notify line {n} in {}: {got:?}\n{}",
        path.display(),
        ctx()
    );
    assert_eq!(got[n - 1].0, want, "{got:?}\n{}", ctx());
    got[n - 1].1
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn both_logs(gwa: &Rvsd, gwb: &Rvsd) -> String {
    format!(
        "---- gwa\n{}\n---- gwb\n{}",
        gwa.daemon.log(),
        gwb.daemon.log()
    )
}

fn metrics(net: &Netns, role: &str) -> String {
    let o = net.curl(role, "5", &[&format!("http://{METRICS}/metrics")]);
    assert!(o.status.success(), "metrics of {role}: {}", text(&o.stderr));
    text(&o.stdout)
}

/// The value of the metric line that starts with `prefix`.
fn metric(body: &str, prefix: &str) -> Option<u64> {
    body.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn vrrp_state(net: &Netns, role: &str) -> Option<u64> {
    metric(
        &metrics(net, role),
        "rvs_vrrp_state{instance=\"VI_1\",vrid=\"51\"}",
    )
}

fn mac_of(net: &Netns, role: &str, iface: &str) -> String {
    net.ok(role, &["cat", &format!("/sys/class/net/{iface}/address")])
        .trim()
        .to_string()
}

/// Up to `count` VRRP frames seen on `iface` of `role` within `secs`.
fn capture(
    net: &Netns,
    role: &str,
    iface: &str,
    secs: f64,
    count: usize,
) -> Vec<serde_json::Value> {
    let o = net.run(
        role,
        &[
            "python3",
            PEER,
            "capture",
            iface,
            &secs.to_string(),
            &count.to_string(),
        ],
    );
    assert!(o.status.success(), "capture: {}", text(&o.stderr));
    text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The MACs that answer the router's ARP request for the VIP; asked
/// again (up to three times) while no one answers, as a loaded machine may
/// answer late.
fn arp_answers(net: &Netns) -> Vec<String> {
    let mut macs = Vec::new();
    for _ in 0..3 {
        let o = net.run(
            "rt",
            &["python3", PEER, "arp", "eth1", RT_LAN4, VIP4, "1.0"],
        );
        assert!(o.status.success(), "arp: {}", text(&o.stderr));
        macs = serde_json::from_str(text(&o.stdout).trim()).unwrap();
        if !macs.is_empty() {
            break;
        }
    }
    macs
}

/// One GET of the VIP from the client; the body (the server's name).
fn get(net: &Netns, secs: u32) -> Option<String> {
    net.get("cli", &secs.to_string(), &format!("http://{VIP4}/"))
}

/// The source addresses of the GETs the real servers logged since `from`
/// lines into each log.
fn sources(logs: &[PathBuf], from: &[usize]) -> Vec<String> {
    logs.iter()
        .zip(from)
        .flat_map(|(l, &n)| {
            fs::read_to_string(l)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("\"GET / HTTP"))
                .skip(n)
                .filter_map(|l| l.split_whitespace().next().map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn gets_so_far(logs: &[PathBuf]) -> Vec<usize> {
    logs.iter()
        .map(|l| sources(std::slice::from_ref(l), &[0]).len())
        .collect()
}

/// Requests through the VIP succeed again (within a deadline) and reach
/// the servers from director `i`'s FULLNAT source address.
fn served_by(net: &Netns, logs: &[PathBuf], i: usize, ctx: &dyn Fn() -> String) {
    let ok = wait_until(Duration::from_secs(15), || get(net, 2).is_some());
    assert!(ok, "the VIP does not answer\n{}", ctx());
    let before = gets_so_far(logs);
    for _ in 0..4 {
        let body = get(net, 5);
        assert!(
            body.as_deref().is_some_and(|b| SERVERS.contains(&b)),
            "GET: {body:?}\n{}",
            ctx()
        );
    }
    let src = sources(logs, &before);
    let want = ["198.19.0.2", "198.19.0.3"][i];
    assert_eq!(src.len(), 4, "{src:?}");
    assert!(
        src.iter().all(|s| s == want),
        "want all from {want}: {src:?}"
    );
}

#[test]
fn vrrp_pair_fails_over_on_sigkill_and_the_old_master_preempts_back() {
    let _serial = serial();
    let net = pair("vrrp");
    let dir = TempDir::new("vrrp");
    let logs: Vec<PathBuf> = SERVERS
        .iter()
        .enumerate()
        .map(|(i, rs)| http_server(&net, &dir, rs, RS4[i], 80))
        .collect();
    let (da, db) = (TempDir::new("vrrp-a"), TempDir::new("vrrp-b"));
    let (na, nb) = (da.path("notes"), db.path("notes"));
    let gwa = director(&net, &da, 0, 150, &[], &na);
    let ctx_a = || format!("---- gwa\n{}", gwa.daemon.log());
    await_note(&na, 2, "INSTANCE VI_1 MASTER 150", &ctx_a);
    let gwb = director(&net, &db, 1, 100, &[], &nb);
    let ctx = || both_logs(&gwa, &gwb);
    await_note(&nb, 1, "INSTANCE VI_1 BACKUP 100", &ctx);
    let (mac_a, mac_b) = (mac_of(&net, "gwa", "gwc"), mac_of(&net, "gwb", "gwc"));

    // The master's adverts on the LAN, as the router sees them.
    let adverts = capture(&net, "rt", "eth1", 5.0, 4);
    assert_eq!(adverts.len(), 4, "{adverts:?}\n{}", ctx());
    for a in &adverts {
        assert_eq!(a["src"], LAN4[0], "only the master advertises: {a}");
        assert_eq!(a["src_mac"], mac_a.as_str());
        assert_eq!(a["dst"], "224.0.0.18");
        assert_eq!(a["dst_mac"], "01:00:5e:00:00:12");
        assert_eq!(a["ttl"], 255);
        assert_eq!(a["ip_header_ok"], true);
        assert_eq!(a["version"], 3);
        assert_eq!(a["type"], 1);
        assert_eq!(a["vrid"], 51);
        assert_eq!(a["priority"], 150);
        assert_eq!(a["max_adver_int"], 20, "centiseconds");
        assert_eq!(a["checksum_ok"], true, "{a}");
        assert_eq!(a["count"], 2);
        let addrs: Vec<&str> = a["addrs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        assert!(
            addrs.contains(&VIP4) && addrs.contains(&GW_ADDR),
            "{addrs:?}"
        );
    }
    let t: Vec<f64> = adverts
        .iter()
        .map(|a| a["time"].as_f64().unwrap())
        .collect();
    let mean_ms = (t[3] - t[0]) / 3.0 * 1000.0;
    assert!(
        (150.0..=350.0).contains(&mean_ms),
        "adverts every {mean_ms} ms"
    );

    // Only the master answers ARP for the VIP; the servers' gateway
    // answers ping from the master alone.
    assert_eq!(arp_answers(&net), vec![mac_a.clone()], "{}", ctx());
    net.ok("rs1", &["ping", "-n", "-c", "1", "-W", "2", GW_ADDR]);
    let neigh = net.ok("rs1", &["ip", "neigh", "show", GW_ADDR]);
    assert!(neigh.contains(&mac_of(&net, "gwa", "gws")), "{neigh}");
    served_by(&net, &logs, 0, &ctx);

    // A packet that reaches the backup for the VIP anyway is dropped and
    // counted: the router is made to send to gwb's MAC for a moment.
    let vip_at_b = [
        "ip",
        "neigh",
        "replace",
        VIP4,
        "lladdr",
        &mac_b,
        "dev",
        "eth1",
        "nud",
        "permanent",
    ];
    net.ok("rt", &vip_at_b);
    assert_eq!(get(&net, 1), None, "the backup must not answer for the VIP");
    net.ok("rt", &["ip", "neigh", "del", VIP4, "dev", "eth1"]);
    let m = metrics(&net, "gwb");
    let dropped = m
        .lines()
        .filter(|l| {
            l.starts_with("rvs_worker_dropped_packets_total")
                && l.contains("reason=\"vrrp_backup\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum::<u64>();
    assert!(
        dropped >= 1,
        "vrrp_backup drops on gwb: {dropped}\n{m}\n{}",
        ctx()
    );

    // SIGKILL the master: the backup takes over within its
    // Master_Down_Interval (3 × 200 ms + skew), give or take scheduling.
    let killed = now();
    gwa.daemon.kill();
    let took = await_note(&nb, 2, "INSTANCE VI_1 MASTER 100", &|| gwb.daemon.log()) - killed;
    let bound = master_down_ms(100);
    println!(
        "vrrp failover after SIGKILL: {:.0} ms (Master_Down_Interval {bound} ms)",
        took * 1000.0
    );
    assert!(
        took * 1000.0 <= (bound + 300) as f64,
        "failover took {took} s, Master_Down_Interval is {bound} ms"
    );
    // It waited for the missed adverts, not less.
    assert!(
        took * 1000.0 >= (bound - ADVERT_MS - 50) as f64,
        "took {took} s: {:?}\n---- gwb\n{}",
        notes(&nb),
        gwb.daemon.log()
    );
    assert_eq!(arp_answers(&net), vec![mac_b.clone()]);
    let ctx_b = || format!("---- gwb\n{}", gwb.daemon.log());
    served_by(&net, &logs, 1, &ctx_b);
    let gw_now = wait_until(Duration::from_secs(5), || {
        net.run("rs1", &["ping", "-n", "-c", "1", "-W", "1", GW_ADDR])
            .status
            .success()
            && net
                .ok("rs1", &["ip", "neigh", "show", GW_ADDR])
                .contains(&mac_of(&net, "gwb", "gws"))
    });
    assert!(gw_now, "{}", net.ok("rs1", &["ip", "neigh"]));

    // The old master comes back with a higher priority and preempts.
    let da2 = TempDir::new("vrrp-a2");
    let na2 = da2.path("notes");
    let gwa = director(&net, &da2, 0, 200, &[], &na2);
    let ctx = || both_logs(&gwa, &gwb);
    await_note(&na2, 2, "INSTANCE VI_1 MASTER 200", &ctx);
    await_note(&nb, 3, "INSTANCE VI_1 BACKUP 100", &ctx);
    served_by(&net, &logs, 0, &ctx);
    assert_eq!(arp_answers(&net), vec![mac_a.clone()]);
    let m = metrics(&net, "gwb");
    let l = "rvs_vrrp_transitions_total{instance=\"VI_1\",vrid=\"51\",to=";
    assert_eq!(metric(&m, &format!("{l}\"MASTER\"}}")), Some(1), "{m}");
    assert_eq!(metric(&m, &format!("{l}\"BACKUP\"}}")), Some(2), "{m}");
    assert_eq!(vrrp_state(&net, "gwb"), Some(1));
    assert_eq!(vrrp_state(&net, "gwa"), Some(2));

    // A clean stop sends priority 0: the backup takes over after its skew
    // time, well before a Master_Down_Interval.
    let stopping = now();
    gwa.stop();
    let took = await_note(&nb, 4, "INSTANCE VI_1 MASTER 100", &ctx_b) - stopping;
    println!(
        "vrrp takeover after SIGTERM (priority 0): {:.0} ms",
        took * 1000.0
    );
    assert!(took * 1000.0 < (3 * ADVERT_MS) as f64, "took {took} s");
    assert_eq!(
        note_args(&na2),
        [
            "INSTANCE VI_1 BACKUP 200",
            "INSTANCE VI_1 MASTER 200",
            "INSTANCE VI_1 STOP 200"
        ]
    );
    assert_eq!(
        note_args(&na),
        ["INSTANCE VI_1 BACKUP 150", "INSTANCE VI_1 MASTER 150"]
    );
    served_by(&net, &logs, 1, &ctx_b);
    gwb.stop();
}

#[test]
fn vrrp_unicast_peers_get_the_adverts_and_no_group_does() {
    let _serial = serial();
    let net = pair("vrrpu");
    let (da, db) = (TempDir::new("vrrpu-a"), TempDir::new("vrrpu-b"));
    let (na, nb) = (da.path("notes"), db.path("notes"));
    let gwa = director(&net, &da, 0, 150, &[LAN4[1]], &na);
    let ctx_a = || format!("---- gwa\n{}", gwa.daemon.log());
    await_note(&na, 2, "INSTANCE VI_1 MASTER 150", &ctx_a);
    let gwb = director(&net, &db, 1, 100, &[LAN4[0]], &nb);
    let ctx = || both_logs(&gwa, &gwb);
    await_note(&nb, 1, "INSTANCE VI_1 BACKUP 100", &ctx);
    let mac_b = mac_of(&net, "gwb", "gwc");

    // On the bridge port towards gwb: adverts to gwb's address and MAC.
    let adverts = capture(&net, "lan", "g1", 5.0, 4);
    assert_eq!(adverts.len(), 4, "{adverts:?}\n{}", ctx());
    for a in &adverts {
        assert_eq!(a["src"], LAN4[0]);
        assert_eq!(a["dst"], LAN4[1], "{a}");
        assert_eq!(a["dst_mac"], mac_b.as_str());
        assert_eq!(a["ttl"], 255);
        assert_eq!(
            (a["version"].as_u64(), a["vrid"].as_u64()),
            (Some(3), Some(51))
        );
        assert_eq!(
            a["checksum_ok"], true,
            "the pseudo header holds the peer: {a}"
        );
    }
    // Nothing to the group: the router hears no VRRP at all.
    let heard = capture(&net, "rt", "eth1", 1.5, 1);
    assert!(heard.is_empty(), "{heard:?}");
    // Once gwb hears gwa (gwa resolves gwb's MAC first: ARP is retried
    // once a second, longer than gwb's 721 ms Master_Down_Interval, so
    // gwb may have been master for a moment at start, and gwa then
    // answered its lower advert at once), it stays backup: three
    // Master_Down_Intervals later nothing has changed.
    let settled = wait_until(Duration::from_secs(10), || {
        vrrp_state(&net, "gwb") == Some(1)
            && note_args(&nb).last().map(String::as_str) == Some("INSTANCE VI_1 BACKUP 100")
    });
    assert!(settled, "{:?}\n{}", note_args(&nb), ctx());
    let seen = note_args(&nb);
    let received = |net: &Netns| {
        metric(
            &metrics(net, "gwb"),
            "rvs_vrrp_adverts_total{instance=\"VI_1\",vrid=\"51\",direction=\"received\"}",
        )
        .unwrap_or(0)
    };
    let before = received(&net);
    std::thread::sleep(Duration::from_millis(3 * master_down_ms(100)));
    assert_eq!(note_args(&nb), seen, "{}", ctx());
    assert_eq!(vrrp_state(&net, "gwb"), Some(1));
    assert_eq!(vrrp_state(&net, "gwa"), Some(2));
    let heard = received(&net) - before;
    assert!(
        heard >= 5,
        "gwb heard {heard} adverts in {} ms",
        3 * master_down_ms(100)
    );
    assert_eq!(arp_answers(&net), vec![mac_of(&net, "gwa", "gwc")]);

    let killed = now();
    gwa.daemon.kill();
    let took = await_note(&nb, 2, "INSTANCE VI_1 MASTER 100", &|| gwb.daemon.log()) - killed;
    println!(
        "vrrp failover (unicast) after SIGKILL: {:.0} ms",
        took * 1000.0
    );
    assert!(
        took * 1000.0 <= (master_down_ms(100) + 300) as f64,
        "took {took} s"
    );
    gwb.stop();
}
