//! A conn table under pressure, end to end: rvsd on net_af_packet in a
//! gateway namespace (tests/common/lab.rs, the routed topology), real
//! clients (curl, python sockets) in the client namespace, python HTTP
//! servers behind a FULLNAT VIP, and a SYN flood from random sources sent
//! by tests/synflood.py through a raw socket.
//!
//! The tests take turns (a lock): rvsd's workers poll, and the machine may
//! have two CPUs for all of them.
mod common;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::lab::{
    await_ready, routed, serial, start_rvsd_with, worker_counter, Pmd, Rvsd, StartOpts, CLI4,
    ROUTED_PORTS, RS4, SERVERS, VIP4,
};
use common::netns::{text, Netns};
use common::{wait_until, TempDir};

/// A threaded python HTTP server in role `rs` on `addr:80` answering
/// "NAME\n", with a listen backlog of 1024 (http.server's is 5, which a
/// flood's half-open conns overrun on the real server itself).
fn http_server(net: &Netns, dir: &TempDir, rs: &str, addr: &str) {
    let script = format!(
        r#"
import http.server, socketserver
class S(socketserver.ThreadingTCPServer):
    request_queue_size = 1024
    allow_reuse_address = True
    daemon_threads = True
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = b"{rs}\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a):
        pass
s = S(("{addr}", 80), H)
print("ready", flush=True)
s.serve_forever()
"#
    );
    let log = dir.path(&format!("http-{rs}.log"));
    net.spawn(rs, &["python3", "-u", "-c", &script], &log);
    await_ready(&log, 15, &format!("http server in {rs}"));
}

/// One curl from the client to the VIP; whether it got the page.
fn curl(net: &Netns, max_time: &str) -> bool {
    net.get("cli", max_time, &format!("http://{VIP4}/"))
        .is_some_and(|page| SERVERS.contains(&page.as_str()))
}

fn diag(dir: &TempDir, rvsd: &Rvsd) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "---- rvsd log\n{}", rvsd.daemon.log());
    let _ = writeln!(s, "---- rvsadm -Ln\n{}", text(&rvsd.adm("-Ln").stdout));
    if let Ok(rd) = fs::read_dir(&dir.0) {
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "log") {
                let _ = writeln!(
                    s,
                    "---- {}\n{}",
                    p.display(),
                    fs::read_to_string(&p).unwrap_or_default()
                );
            }
        }
    }
    s
}

fn synflood() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/synflood.py")
}

/// What the flood sender said it sent, once it is done.
fn flood_sent(log: &Path) -> Option<u64> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("sent ").and_then(|n| n.parse().ok()))
}

#[test]
fn a_syn_flood_from_random_sources_leaves_room_for_real_clients() {
    const RATE: u32 = 5000;
    const SECONDS: u32 = 10;
    let _serial = serial();
    let net = routed("flood", 2);
    let dir = TempDir::new("flood");
    for (i, rs) in SERVERS.iter().enumerate() {
        http_server(&net, &dir, rs, RS4[i]);
    }
    let mut rules = format!("-A -t {VIP4}:80 -s rr\n");
    for rs in RS4 {
        let _ = writeln!(rules, "-a -t {VIP4}:80 -r {rs}:80 -b");
    }
    // A table of 4096 conns: the flood fills it in under a second. Not
    // smaller: each of the ~1000 curls during the flood leaves its conn in
    // TIME_WAIT (2 minutes), which no full table gives up (the kernel's
    // drop_entry keeps them too), so a 1024-slot table fills with the real
    // clients' own closed conns and refuses the next one.
    let rvsd = start_rvsd_with(
        Pmd::AfPacket,
        &net,
        &dir,
        1,
        &ROUTED_PORTS,
        &rules,
        "",
        &StartOpts {
            dataplane: "conns = 4096\n",
            ..StartOpts::default()
        },
    );
    let ctx = || diag(&dir, &rvsd);
    assert!(
        rvsd.daemon
            .log()
            .contains("conn table: 4096 slots per worker"),
        "{}",
        ctx()
    );
    for _ in 0..3 {
        assert!(curl(&net, "3"), "before the flood\n{}", ctx());
    }

    let flood_log = dir.path("flood.log");
    net.spawn(
        "cli",
        &[
            "python3",
            "-u",
            synflood().to_str().unwrap(),
            VIP4,
            "80",
            &RATE.to_string(),
            &SECONDS.to_string(),
        ],
        &flood_log,
    );
    await_ready(&flood_log, 10, "synflood.py");
    // Real clients, one after another, for as long as the flood lasts.
    let (mut tried, mut failed) = (0u32, 0u32);
    let deadline = Instant::now() + Duration::from_secs(u64::from(SECONDS) + 20);
    while flood_sent(&flood_log).is_none() {
        assert!(
            Instant::now() < deadline,
            "the flood never ended\n{}",
            ctx()
        );
        tried += 1;
        if !curl(&net, "3") {
            failed += 1;
        }
    }
    let sent = flood_sent(&flood_log).unwrap_or(0);
    // And at once after it: every new conn gets through.
    let after = Instant::now();
    let late: Vec<usize> = (0..20).filter(|_| !curl(&net, "2")).collect();
    let after = after.elapsed();
    let listing = rvsd.ok("-Lnc");
    let summary = rvsd.stop();
    let evicted = worker_counter(&summary, 0, "evicted");
    eprintln!(
        "flood: {sent} SYNs in {SECONDS} s; curl during it: {tried} tried, {failed} failed; \
         20 curls after it in {after:?}, failed {late:?}; {evicted} conns evicted"
    );
    assert!(
        sent >= u64::from(RATE * SECONDS) * 9 / 10,
        "the flood fell short: {sent}"
    );
    assert!(tried >= 50, "only {tried} curls during the flood");
    assert!(
        failed * 100 <= tried,
        "{failed} of {tried} curls failed during the flood (more than 1%)\n{summary}"
    );
    assert!(
        late.is_empty(),
        "curls {late:?} after the flood failed\n{summary}"
    );
    // The table was full the whole time: the flood's conns made way.
    assert!(
        evicted >= sent / 2,
        "{evicted} evicted of {sent} SYNs\n{summary}\n{listing}"
    );
    assert_eq!(common::drops(&summary, "conn_table_full"), 0, "{summary}");
}

/// `python3 -c SCRIPT` in the client namespace; its stdout.
fn py(net: &Netns, script: &str) -> String {
    let o = net.run("cli", &["python3", "-c", script]);
    text(&o.stdout)
}

/// Whether a TCP connect from `src` to `port` on the VIP succeeds within
/// 0.8 s (before the first SYN retransmission).
fn connects(net: &Netns, src: &str, port: u16) -> bool {
    py(
        net,
        &format!(
            "import socket\ns = socket.socket()\ns.settimeout(0.8)\ns.bind(('{src}', 0))\n\
             try:\n    s.connect(('{VIP4}', {port}))\n    print('yes')\nexcept OSError:\n    print('no')\n"
        ),
    )
    .trim()
        == "yes"
}

#[test]
fn per_source_rates_and_per_service_limits_refuse_and_count() {
    let _serial = serial();
    let net = routed("limits", 1);
    let dir = TempDir::new("limits");
    http_server(&net, &dir, SERVERS[0], RS4[0]);
    // A second client address, with a bucket of its own.
    const CLI4B: &str = "198.18.0.3";
    net.addr("cli", "eth0", &format!("{CLI4B}/24"));
    let rs = RS4[0];
    let rules = format!(
        "-A -t {VIP4}:80 -s rr\n-a -t {VIP4}:80 -r {rs}:80 -b\n\
         -A -t {VIP4}:8080 -s rr\n-a -t {VIP4}:8080 -r {rs}:80 -b\n"
    );
    let limits = format!(
        "[limits]\nsource_rate = 5\nsource_burst = 20\n\
         [[limits.service]]\nvirtual = \"-t {VIP4}:80\"\nmax_conns = 3\n"
    );
    let rvsd = start_rvsd_with(
        Pmd::AfPacket,
        &net,
        &dir,
        1,
        &ROUTED_PORTS,
        &rules,
        &limits,
        &StartOpts::default(),
    );
    let ctx = || diag(&dir, &rvsd);
    // rvsd learns the second address before its replies need it.
    net.ok(
        "cli",
        &[
            "ping",
            "-n",
            "-c",
            "1",
            "-W",
            "1",
            "-I",
            CLI4B,
            "198.18.0.1",
        ],
    );

    // Three conns held open to VIP:80, its limit.
    let hold_log = dir.path("hold.log");
    net.spawn(
        "cli",
        &[
            "python3",
            "-u",
            "-c",
            &format!(
                "import socket, time\nss = []\nfor _ in range(3):\n    s = socket.create_connection(('{VIP4}', 80), timeout=5)\n    ss.append(s)\n\
                 print('ready', flush=True)\ntime.sleep(300)\n"
            ),
        ],
        &hold_log,
    );
    await_ready(&hold_log, 10, "three held conns");
    // -Ln -t VIP:80: the real server's row, ActiveConn 3.
    let active = || {
        rvsd.ok(&format!("-Ln -t {VIP4}:80"))
            .lines()
            .find(|l| l.contains(&format!("-> {rs}:80")))
            .and_then(|l| l.split_whitespace().nth(4).map(str::to_string))
    };
    let held = wait_until(Duration::from_secs(5), || active().as_deref() == Some("3"));
    assert!(held, "three active conns to {VIP4}:80\n{}", ctx());
    assert!(
        !connects(&net, CLI4, 80),
        "a fourth conn to {VIP4}:80 got in"
    );
    assert!(connects(&net, CLI4, 8080), "{VIP4}:8080 has no limit");

    // Forty connects at once from a fresh client: its burst of 20, and a
    // token more per 200 ms they take.
    let ok: usize = py(
        &net,
        &format!(
            "import socket, threading\nok = []\ndef go():\n    s = socket.socket()\n    s.settimeout(0.8)\n    s.bind(('{CLI4B}', 0))\n\
             \x20   try:\n        s.connect(('{VIP4}', 8080))\n        ok.append(s)\n    except OSError:\n        pass\n\
             ts = [threading.Thread(target=go) for _ in range(40)]\n[t.start() for t in ts]\n[t.join() for t in ts]\nprint(len(ok))\n"
        ),
    )
    .trim()
    .parse()
    .unwrap_or_else(|_| panic!("no count\n{}", ctx()));
    assert!(
        (20..=24).contains(&ok),
        "{ok} of 40 connects got in\n{}",
        ctx()
    );
    let summary = rvsd.stop();
    assert!(
        common::drops(&summary, "service_conn_limit") >= 1,
        "{summary}"
    );
    assert!(
        common::drops(&summary, "source_rate_limit") >= 40 - ok as u64,
        "{summary}"
    );
}
