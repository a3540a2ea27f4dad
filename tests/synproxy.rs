//! The SYN proxy end to end: curl and Python sockets in a client namespace
//! reach a Python HTTP server in a real-server namespace through rvsd
//! (net_af_packet in the routed lab of tests/common/lab.rs) with
//! `--synproxy` on the service, FULLNAT and NAT. The server must see the
//! client's stream byte for byte (an upload's and a 50 MiB download's
//! SHA-256 compared with sha256sum's); a 15 s SYN flood from random
//! sources (tests/synflood.py, a raw socket) must leave the conn
//! table without a single conn of the flood while a download keeps going
//! and a curl loop succeeds; a refused server resets the client.
mod common;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::lab::{
    await_ready, host, routed, serial, servers_route_via_rvsd, start_rvsd, Rvsd, CLI4, GWS4, GWS6,
    ROUTED_PORTS, RS4, RS6, VIP4, VIP6,
};
use common::netns::{curl_in, text, Netns};
use common::{wait_until, TempDir};

/// An HTTP server for role rs1: GET serves `dir`'s files, POST answers
/// the SHA-256 and length of the body it read. The access log names each
/// request's peer.
const SERVER_PY: &str = r#"
import hashlib, socket, sys
from functools import partial
from http.server import ThreadingHTTPServer, SimpleHTTPRequestHandler
addr, port, www = sys.argv[1], int(sys.argv[2]), sys.argv[3]
class H(SimpleHTTPRequestHandler):
    def do_POST(self):
        left = int(self.headers["Content-Length"])
        h, n = hashlib.sha256(), 0
        while left > 0:
            c = self.rfile.read(min(left, 1 << 16))
            if not c:
                break
            h.update(c)
            n += len(c)
            left -= len(c)
        body = ("%s %d\n" % (h.hexdigest(), n)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.client_address[0], fmt % args))
class S(ThreadingHTTPServer):
    address_family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    daemon_threads = True
srv = S((addr, port), partial(H, directory=www))
print("ready", flush=True)
srv.serve_forever()
"#;

/// Starts SERVER_PY in rs1 on `addr`:`port` serving `www`; its log.
fn server(net: &Netns, dir: &TempDir, addr: &str, port: u16) -> PathBuf {
    let script = dir.path("server.py");
    fs::write(&script, SERVER_PY).unwrap();
    let www = dir.path("www");
    fs::create_dir_all(&www).unwrap();
    fs::write(www.join("index.html"), "rs1\n").unwrap();
    let log = dir.path(&format!("server-{port}-{}.log", addr.replace(':', "_")));
    net.spawn(
        "rs1",
        &[
            "python3",
            "-u",
            script.to_str().unwrap(),
            addr,
            &port.to_string(),
            www.to_str().unwrap(),
        ],
        &log,
    );
    await_ready(&log, 15, "the HTTP server");
    log
}

/// A file of `len` bytes that no run of a few bytes repeats often, so
/// that a byte out of place changes its digest.
fn write_file(path: &Path, len: usize) {
    let mut x = 0x9e37_79b9u32;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    fs::write(path, v).unwrap();
}

/// The peers the server's log names for requests of `what` ("GET /", ...).
fn peers(log: &Path, what: &str) -> Vec<String> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(what))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn diag(dir: &TempDir, rvsd: &Rvsd) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "---- rvsd log\n{}", rvsd.daemon.log());
    let _ = writeln!(s, "---- rvsadm -Ln\n{}", text(&rvsd.adm("-Ln").stdout));
    let listing = text(&rvsd.adm("-Lnc").stdout);
    let rows: Vec<&str> = listing.lines().take(40).collect();
    let _ = writeln!(s, "---- rvsadm -Lnc (first 40)\n{}", rows.join("\n"));
    if let Ok(rd) = fs::read_dir(&dir.0) {
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "log") {
                let t = fs::read_to_string(&p).unwrap_or_default();
                let tail: Vec<&str> = t.lines().rev().take(15).collect();
                let _ = writeln!(s, "---- {}", p.display());
                for l in tail.iter().rev() {
                    let _ = writeln!(s, "{l}");
                }
            }
        }
    }
    s
}

fn fullnat_rules() -> String {
    format!(
        "-A -t {VIP4}:80 -s rr -j enable\n-a -t {VIP4}:80 -r {}:80 -b\n\
         -A -t [{VIP6}]:80 -s rr -j enable\n-a -t [{VIP6}]:80 -r [{}]:80 -b\n",
        RS4[0], RS6[0]
    )
}

#[test]
fn curl_an_upload_and_a_download_through_a_synproxy_fullnat_vip() {
    let _serial = serial();
    let net = routed("synp", 1);
    let dir = TempDir::new("synp");
    let log4 = server(&net, &dir, RS4[0], 80);
    let log6 = server(&net, &dir, RS6[0], 80);
    let big = dir.path("www").join("big");
    write_file(&big, 50 << 20);
    let up = dir.path("upload");
    write_file(&up, 5 << 20);
    let rvsd = start_rvsd(&net, &dir, 1, &ROUTED_PORTS, &fullnat_rules());
    let ctx = || diag(&dir, &rvsd);
    let listing = rvsd.ok("-Ln");
    assert!(
        listing.contains(&format!("TCP  {VIP4}:80 rr synproxy")),
        "{listing}"
    );
    assert!(rvsd
        .ok("-Sn")
        .contains(&format!("-A -t {VIP4}:80 -s rr -j enable")));

    for (vip, lip, log) in [(VIP4, GWS4, &log4), (VIP6, GWS6, &log6)] {
        let url = format!("http://{}/", host(vip));
        for i in 0..5 {
            let o = net.curl("cli", "5", &[&url]);
            assert!(
                o.status.success() && text(&o.stdout) == "rs1\n",
                "curl {url} #{i}: {}{}\n{}",
                text(&o.stdout),
                text(&o.stderr),
                ctx()
            );
        }
        let seen = peers(log, "\"GET / ");
        assert_eq!(seen.len(), 5, "{seen:?}");
        assert!(seen.iter().all(|p| p == lip), "FULLNAT: {seen:?}");
    }

    // The server reads the client's stream byte for byte: an upload's
    // digest as the server computed it is sha256sum's of the file.
    let o = net.curl(
        "cli",
        "60",
        &[
            "--data-binary",
            &format!("@{}", up.display()),
            &format!("http://{VIP4}/upload"),
        ],
    );
    assert!(o.status.success(), "{}\n{}", text(&o.stderr), ctx());
    assert_eq!(
        text(&o.stdout),
        format!("{} {}\n", common::sha256(&up), 5 << 20),
        "{}",
        ctx()
    );
    // And the client the server's: a 50 MiB download.
    let got = dir.path("got");
    let o = net.curl(
        "cli",
        "120",
        &["-o", got.to_str().unwrap(), &format!("http://{VIP4}/big")],
    );
    assert!(o.status.success(), "{}\n{}", text(&o.stderr), ctx());
    assert_eq!(fs::metadata(&got).unwrap().len(), 50 << 20);
    assert_eq!(
        common::sha256(&got),
        common::sha256(&big),
        "the download's bytes\n{}",
        ctx()
    );

    let summary = rvsd.stop();
    for reason in [
        "synproxy_bad_cookie",
        "synproxy_handshake",
        "synproxy_queue_full",
    ] {
        assert_eq!(common::drops(&summary, reason), 0, "{reason}: {summary}");
    }
}

#[test]
fn curl_through_a_synproxy_vip_with_two_workers() {
    let _serial = serial();
    let net = routed("synp2w", 1);
    let dir = TempDir::new("synp2w");
    server(&net, &dir, RS4[0], 80);
    server(&net, &dir, RS6[0], 80);
    let rvsd = start_rvsd(&net, &dir, 2, &ROUTED_PORTS, &fullnat_rules());
    let ctx = || diag(&dir, &rvsd);
    // Each client port is a new cookie, conn and local port; the replies
    // to a local port go to the worker that owns it.
    for vip in [VIP4, VIP6] {
        let url = format!("http://{}/", host(vip));
        for i in 0..16 {
            let o = net.curl("cli", "5", &[&url]);
            assert!(
                o.status.success() && text(&o.stdout) == "rs1\n",
                "curl {url} #{i}: {}\n{}",
                text(&o.stderr),
                ctx()
            );
        }
    }
    let summary = rvsd.stop();
    common::lab::assert_ring_path(&summary);
    for reason in ["synproxy_bad_cookie", "synproxy_handshake", "ring_full"] {
        assert_eq!(common::drops(&summary, reason), 0, "{reason}: {summary}");
    }
}

/// `-Lnc`'s rows, and those whose client is in the flood's 100.64.0.0/16.
fn conn_rows(rvsd: &Rvsd) -> (usize, usize) {
    let listing = rvsd.ok("-Lnc");
    let rows: Vec<&str> = listing
        .lines()
        .filter(|l| l.starts_with("TCP ") || l.starts_with("UDP "))
        .collect();
    let flood = rows
        .iter()
        .filter(|l| {
            l.split_whitespace()
                .nth(3)
                .is_some_and(|c| c.starts_with("100.64."))
        })
        .count();
    (rows.len(), flood)
}

fn rx_packets(net: &Netns) -> u64 {
    net.ok("cli", &["cat", "/sys/class/net/eth0/statistics/rx_packets"])
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_syn_flood_from_random_sources_costs_no_conn_and_real_clients_get_through() {
    let _serial = serial();
    let net = routed("synflood", 1);
    let dir = TempDir::new("synflood");
    let _log = server(&net, &dir, RS4[0], 80);
    let big = dir.path("www").join("big");
    write_file(&big, 50 << 20);
    let rvsd = start_rvsd(&net, &dir, 1, &ROUTED_PORTS, &fullnat_rules());
    let ctx = || diag(&dir, &rvsd);

    // A download that lasts through the flood: 50 MiB at 2.5 MB/s.
    let got = dir.path("got");
    let dl_log = dir.path("download.log");
    let url = format!("http://{VIP4}/big");
    let download = curl_in(
        &net.name("cli"),
        "120",
        &["--limit-rate", "2500K", "-o", got.to_str().unwrap(), &url],
    )
    .stdout(Stdio::null())
    .stderr(fs::File::create(&dl_log).unwrap())
    .spawn()
    .expect("curl download");
    let size = || fs::metadata(&got).map(|m| m.len()).unwrap_or(0);
    assert!(
        wait_until(Duration::from_secs(10), || size() > 1 << 20),
        "the download did not start\n{}",
        ctx()
    );

    const SECS: u64 = 15;
    let flood_script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/synflood.py");
    let flood_log = dir.path("flood.log");
    let rx_before = rx_packets(&net);
    net.spawn(
        "cli",
        &[
            "python3",
            "-u",
            flood_script.to_str().unwrap(),
            VIP4,
            "80",
            "20000",
            &SECS.to_string(),
            "100.64.0.0/16",
        ],
        &flood_log,
    );
    await_ready(&flood_log, 20, "the flood");
    let flood_start = Instant::now();
    let size_at_start = size();
    let loop_cmd = format!(
        "end=$(($(date +%s) + {SECS})); while [ $(date +%s) -lt $end ]; do \
         curl -s --noproxy '*' -m 5 -o /dev/null -w '%{{http_code}}\\n' http://{VIP4}/ || echo failed; done"
    );
    let curls = net
        .cmd("cli", &["sh", "-c", &loop_cmd])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("curl loop");

    // The conn table while the flood goes on: not one conn of the flood.
    let (mut max_rows, mut flood_rows, mut samples) = (0, 0, 0);
    while flood_start.elapsed() < Duration::from_secs(SECS - 1) {
        let (rows, flood) = conn_rows(&rvsd);
        max_rows = max_rows.max(rows);
        flood_rows += flood;
        samples += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = curls.wait_with_output().expect("curl loop");
    let size_at_end = size();
    assert!(
        wait_until(Duration::from_secs(30), || fs::read_to_string(&flood_log)
            .unwrap_or_default()
            .contains("sent ")),
        "the flood did not end"
    );
    let rx_during = rx_packets(&net) - rx_before;
    let flood_out = fs::read_to_string(&flood_log).unwrap();
    let sent: u64 = flood_out
        .lines()
        .find_map(|l| l.strip_prefix("sent "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    let codes: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    let ok = codes.iter().filter(|c| *c == "200").count();
    eprintln!(
        "flood: {sent} SYNs in {SECS} s, {rx_during} frames back to the client side; \
         curl loop {ok}/{} ok; conn table at most {max_rows} rows over {samples} samples; \
         download {size_at_start} -> {size_at_end} bytes during the flood",
        codes.len()
    );
    // At least the 4.4 K SYNs a second that kept the whole default table
    // full without the proxy, each answered by a SYN-ACK.
    assert!(sent >= 4_400 * SECS, "the flood sent only {sent}");
    assert!(
        rx_during >= sent / 2,
        "{rx_during} frames back for {sent} SYNs: the flood was not answered\n{}",
        ctx()
    );
    assert_eq!(flood_rows, 0, "conns of the flood in the table\n{}", ctx());
    assert!(samples >= 5, "{samples} samples of the table");
    assert!(
        max_rows <= codes.len() + 8,
        "the table grew to {max_rows} rows for {} requests\n{}",
        codes.len(),
        ctx()
    );
    assert!(
        codes.len() >= 20,
        "only {} requests: {codes:?}",
        codes.len()
    );
    assert!(
        ok * 100 >= codes.len() * 99,
        "{ok} of {} requests succeeded: {codes:?}\n{}",
        codes.len(),
        ctx()
    );
    assert!(
        size_at_end > size_at_start + (5 << 20),
        "the download stalled: {size_at_start} -> {size_at_end}\n{}",
        ctx()
    );
    let mut download = download;
    let status = download.wait().expect("download");
    assert!(
        status.success(),
        "download: {}\n{}",
        fs::read_to_string(&dl_log).unwrap_or_default(),
        ctx()
    );
    assert_eq!(
        common::sha256(&got),
        common::sha256(&big),
        "the download's bytes\n{}",
        ctx()
    );
    let summary = rvsd.stop();
    assert_eq!(common::drops(&summary, "conn_table_full"), 0, "{summary}");
    assert_eq!(common::drops(&summary, "no_local_addr"), 0, "{summary}");
}

#[test]
fn nat_through_the_synproxy_and_a_refusing_server_resets_the_client() {
    let _serial = serial();
    let net = routed("synnat", 1);
    let dir = TempDir::new("synnat");
    let log = server(&net, &dir, RS4[0], 8080);
    servers_route_via_rvsd(&net, 1);
    // NAT to 8080, and a second service whose real server port is closed.
    let rules = format!(
        "-A -t {VIP4}:80 -s rr -j enable\n-a -t {VIP4}:80 -r {}:8080 -m\n\
         -A -t {VIP4}:81 -s rr -j enable\n-a -t {VIP4}:81 -r {}:81 -b\n",
        RS4[0], RS4[0]
    );
    let rvsd = start_rvsd(&net, &dir, 1, &ROUTED_PORTS, &rules);
    let ctx = || diag(&dir, &rvsd);
    let o = net.curl("cli", "5", &[&format!("http://{VIP4}/")]);
    assert!(
        o.status.success() && text(&o.stdout) == "rs1\n",
        "{}{}\n{}",
        text(&o.stdout),
        text(&o.stderr),
        ctx()
    );
    assert_eq!(
        peers(&log, "\"GET / "),
        vec![CLI4.to_string()],
        "NAT keeps the client"
    );

    // The client's handshake is the director's, so the server's reset
    // reaches the client as a reset of an open connection (ECONNRESET),
    // at once; without the proxy the client would see its own SYN refused
    // (ECONNREFUSED).
    let probe = format!(
        "import socket\n\
         s = socket.socket()\n\
         s.settimeout(10)\n\
         try:\n    s.connect(('{VIP4}', 81))\n    s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n    \
         print('read', len(s.recv(100)))\n\
         except Exception as e:\n    print(type(e).__name__)\n"
    );
    let start = Instant::now();
    let o = net.run("cli", &["python3", "-c", &probe]);
    let took = start.elapsed();
    assert_eq!(
        text(&o.stdout).trim(),
        "ConnectionResetError",
        "{}\n{}",
        text(&o.stderr),
        ctx()
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(
        wait_until(Duration::from_secs(5), || !rvsd
            .ok("-Lnc")
            .lines()
            .any(|l| l.contains(&format!("{VIP4}:81")))),
        "the refused conn stayed\n{}",
        ctx()
    );
    rvsd.stop();
}
