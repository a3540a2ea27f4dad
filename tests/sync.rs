//! The connection sync daemon end to end, on tests/common/pair.rs's lab:
//! gwa runs the master, gwb the backup, FULLNAT (TCP 80 → rs1) and NAT
//! (TCP 81 → rs2) services on both. Two rate-limited downloads start
//! through gwa; the backup lists their conns (FULLNAT with its local
//! address and port) from the sync messages; a Python reader written from
//! the kernel's struct layout reads what gwa sends, field by field; then
//! gwa is killed with SIGKILL, the test moves the next hops to gwb (the
//! router's neighbour for the VIP, rs1's for the local address, rs2's
//! default route: VRRP's part, done by hand here), and both downloads end
//! through gwb with every byte.
mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::lab::{http_server, serial, StartOpts, VIP4};
use common::netns::Netns;
use common::pair::{pair, start_director, PAIR_CLI4, SRV4};
use common::{wait_until, TempDir};

const LIP: &str = "198.19.0.200";
const RS1: &str = "198.19.0.11";
const RS2: &str = "198.19.0.12";
const DECODER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sync/decode.py");
/// The downloads' size and pace: about 12 s each.
const SIZE: usize = 3 << 20;
const RATE: &str = "256k";

fn rules() -> String {
    format!(
        "-A -t {VIP4}:80 -s rr\n-a -t {VIP4}:80 -r {RS1}:8000 -b -w 1\n\
         -P -t {VIP4}:80 -z {LIP} -F servers\n\
         -A -t {VIP4}:81 -s rr\n-a -t {VIP4}:81 -r {RS2}:8000 -m -w 1\n"
    )
}

fn mac(net: &Netns, role: &str, ifc: &str) -> String {
    net.ok(role, &["cat", &format!("/sys/class/net/{ifc}/address")])
        .trim()
        .to_string()
}

/// The next hops towards director `gw` (0 or 1): the router's neighbour
/// for the VIP, rs1's for the local address, rs2's default route.
fn point_at(net: &Netns, gw: usize) {
    let role = ["gwa", "gwb"][gw];
    let (cmac, smac) = (mac(net, role, "gwc"), mac(net, role, "gws"));
    net.ok(
        "rt",
        &[
            "ip",
            "neigh",
            "replace",
            VIP4,
            "lladdr",
            &cmac,
            "dev",
            "eth1",
            "nud",
            "permanent",
        ],
    );
    net.ok(
        "rs1",
        &[
            "ip",
            "neigh",
            "replace",
            LIP,
            "lladdr",
            &smac,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ],
    );
    net.ok(
        "rs2",
        &["ip", "route", "replace", "default", "via", SRV4[gw]],
    );
}

/// `-Lnc` rows (words) for `vip:port`.
fn rows(listing: &str, vport: u16) -> Vec<Vec<String>> {
    let v = format!("{VIP4}:{vport}");
    listing
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
        .filter(|w| w.len() >= 6 && w[4] == v)
        .collect()
}

fn download(net: &Netns, dir: &TempDir, port: u16) -> (std::path::PathBuf, std::path::PathBuf) {
    let out = dir.path(&format!("got-{port}"));
    let log = dir.path(&format!("curl-{port}.log"));
    let cmd = format!(
        "curl -sS --noproxy '*' --limit-rate {RATE} --max-time 120 -o {} http://{VIP4}:{port}/big.bin; echo curl-exit=$?",
        out.display()
    );
    net.spawn("cli", &["sh", "-c", &cmd], &log);
    (out, log)
}

fn curl_done(log: &Path) -> Option<String> {
    let t = fs::read_to_string(log).unwrap_or_default();
    t.lines()
        .find_map(|l| l.strip_prefix("curl-exit="))
        .map(|s| s.trim().to_string())
}

#[test]
fn a_backup_takes_over_established_fullnat_and_nat_downloads_from_a_killed_master() {
    takeover("sync1", 1);
}

/// The same with two workers on each director: the backup's datagrams
/// land on either worker, and each conn is installed by the worker that
/// owns its client (and, for FULLNAT, its local port's slice).
#[test]
fn two_workers_each_take_over_their_own_conns() {
    takeover("sync2", 2);
}

fn takeover(test: &str, workers: usize) {
    let _g = serial();
    let net = pair(test);
    let dir = TempDir::new(test);
    let big: Vec<u8> = (0..SIZE).map(|i| (i * 7 + i / 251) as u8).collect();
    for (rs, addr) in [("rs1", RS1), ("rs2", RS2)] {
        let www = dir.path(&format!("www-{rs}"));
        fs::create_dir_all(&www).unwrap();
        fs::write(www.join("big.bin"), &big).unwrap();
        http_server(&net, &dir, rs, addr, 8000);
    }
    point_at(&net, 0);
    let dirs = [
        TempDir::new(&format!("{test}-gwa")),
        TempDir::new(&format!("{test}-gwb")),
    ];
    let opts = StartOpts::default();
    let gwa = start_director(&net, &dirs[0], 0, workers, &rules(), "", &opts);
    let gwb = start_director(&net, &dirs[1], 1, workers, &rules(), "", &opts);

    // The kernel's defaults show in the listing, as ipvsadm prints them.
    gwa.ok("--start-daemon master --mcast-interface servers --syncid 9");
    gwb.ok("--start-daemon backup --mcast-interface servers --syncid 9");
    assert_eq!(
        gwa.ok("-L --daemon"),
        "master sync daemon (mcast=servers, syncid=9, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
    );
    assert_eq!(
        gwb.ok("-L --daemon"),
        "backup sync daemon (mcast=servers, syncid=9, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
    );
    let o = gwa.adm("--start-daemon master --mcast-interface servers");
    assert_eq!(o.status.code(), Some(255));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "Daemon has already run\n"
    );
    let o = gwb.adm("--stop-daemon master");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "No daemon is running\n");
    let o = gwb.adm("--start-daemon master --mcast-interface eth7");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "No such device\n");

    // The independent reader, on the servers' LAN.
    let dec_log = dir.path("decoder.log");
    net.spawn(
        "rs2",
        &["python3", "-u", DECODER, "224.0.0.81", "8848", RS2],
        &dec_log,
    );
    assert!(wait_until(Duration::from_secs(10), || fs::read_to_string(
        &dec_log
    )
    .unwrap_or_default()
    .contains("ready")));

    // curl's rate limit paces its reads, not the transfer: with the
    // kernel's default receive buffer (up to 6 MiB) the servers push all
    // of big.bin into the client at once and send their FIN, and the conns
    // are past ESTABLISHED before the takeover this test is about. A
    // small buffer in the client's namespace makes the servers wait on
    // curl, so the downloads last SIZE / RATE (12 s).
    net.ok(
        "cli",
        &["sysctl", "-qw", "net.ipv4.tcp_rmem=4096 32768 65536"],
    );
    let (got80, log80) = download(&net, &dir, 80);
    let (got81, log81) = download(&net, &dir, 81);

    // The backup lists both conns from the sync messages (sent 2 s after
    // their first entry at the latest).
    let mut master_rows = Vec::new();
    let synced = wait_until(Duration::from_secs(10), || {
        let m = gwa.ok("-Lnc");
        let b = gwb.ok("-Lnc");
        let (m80, b80, b81) = (rows(&m, 80), rows(&b, 80), rows(&b, 81));
        master_rows = m80.clone();
        m80.len() == 1 && b80.len() == 1 && b81.len() == 1 && b80[0][3..] == m80[0][3..]
    });
    let backup_listing = gwb.ok("-Lnc");
    assert!(
        synced,
        "the backup lists the conns:\nmaster:\n{}\nbackup:\n{backup_listing}\ndecoder:\n{}",
        gwa.ok("-Lnc"),
        fs::read_to_string(&dec_log).unwrap_or_default()
    );
    // FULLNAT: source, virtual, local address:port, destination.
    let m = &master_rows[0];
    assert_eq!(m.len(), 7, "{m:?}");
    // Should the download have ended already, say how far it got.
    assert_eq!(
        m[2],
        "ESTABLISHED",
        "{m:?}; curl on 80: {:?}, on 81: {:?}; master now:\n{}",
        fs::read_to_string(&log80),
        fs::read_to_string(&log81),
        gwa.ok("-Lnc")
    );
    assert!(m[3].starts_with(&format!("{PAIR_CLI4}:")));
    assert!(m[5].starts_with(&format!("{LIP}:")), "{m:?}");
    assert_eq!(m[6], format!("{RS1}:8000"));
    let cport: u16 = m[3].rsplit(':').next().unwrap().parse().unwrap();
    let lport: u16 = m[5].rsplit(':').next().unwrap().parse().unwrap();
    let b80 = &rows(&backup_listing, 80)[0];
    assert_eq!(b80[2], "ESTABLISHED");
    assert_eq!(b80[5], m[5], "the backup holds the master's local port");
    let b81 = &rows(&backup_listing, 81)[0];
    assert_eq!((b81.len(), b81[5].as_str()), (6, "198.19.0.12:8000"));

    // What the master sent, read by the independent decoder.
    let lines = fs::read_to_string(&dec_log).unwrap();
    let json: Vec<serde_json::Value> = lines
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let msg = json
        .iter()
        .find_map(|j| j.get("message"))
        .expect("a message");
    assert_eq!(msg["src"], SRV4[0], "from the master's servers address");
    assert_eq!(msg["reserved"], 0);
    assert_eq!(msg["version"], 1);
    assert_eq!(msg["syncid"], 9);
    assert_eq!(msg["spare"], 0);
    assert_eq!(msg["size"], msg["len"]);
    let entry = json
        .iter()
        .filter_map(|j| j.get("entry"))
        .find(|e| e["vport"] == 80 && e["cport"] == cport)
        .expect("the FULLNAT conn's entry");
    assert_eq!(entry["type"], 0);
    assert_eq!(entry["protocol"], 6);
    assert_eq!(entry["version"], 0);
    assert_eq!(entry["size"], 36 + 8);
    assert_eq!(entry["flags"], 5, "FULLNAT (DPVS's 5), active");
    assert_eq!(entry["state"], 1, "IP_VS_TCP_S_ESTABLISHED");
    assert_eq!(entry["dport"], 8000);
    assert_eq!(entry["fwmark"], 0);
    assert_eq!(entry["timeout"], 900);
    assert_eq!(entry["caddr"], PAIR_CLI4);
    assert_eq!(entry["vaddr"], VIP4);
    assert_eq!(entry["daddr"], RS1);
    // The local address travels as an option with IPVS_OPT_F_PARAM (0x40).
    let opt = &entry["options"][0];
    assert_eq!(opt["type"], 0x50);
    let want = format!("{}{lport:04x}", hex_v4(LIP));
    assert_eq!(opt["data"], want.as_str());
    let nat = json
        .iter()
        .filter_map(|j| j.get("entry"))
        .find(|e| e["vport"] == 81)
        .expect("the NAT conn's entry");
    assert_eq!(
        (nat["size"].as_u64(), nat["flags"].as_u64()),
        (Some(36), Some(0))
    );
    assert_eq!(nat["daddr"], RS2);

    // Neither download is done yet: the master dies under them.
    assert!(curl_done(&log80).is_none() && curl_done(&log81).is_none());
    gwa.daemon.kill();
    point_at(&net, 1);
    let done = wait_until(Duration::from_secs(60), || {
        curl_done(&log80).is_some() && curl_done(&log81).is_some()
    });
    assert!(done, "the downloads did not end:\n{}", gwb.ok("-Lnc"));
    for (got, log) in [(&got80, &log80), (&got81, &log81)] {
        assert_eq!(
            curl_done(log).as_deref(),
            Some("0"),
            "{}",
            fs::read_to_string(log).unwrap_or_default()
        );
        let bytes = fs::read(got).unwrap();
        assert_eq!(bytes.len(), SIZE);
        assert!(bytes == big, "every byte");
    }
    gwb.stop();
}

fn hex_v4(a: &str) -> String {
    a.split('.')
        .map(|o| format!("{:02x}", o.parse::<u8>().unwrap()))
        .collect()
}
