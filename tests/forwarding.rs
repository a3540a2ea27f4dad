//! Forwarding end to end, per mode, with real programs: curl in a client
//! namespace reaches python3 HTTP (and UDP echo) servers in two real-server
//! namespaces through rvsd, which owns its ports in a gateway namespace via
//! net_af_packet. Every test builds its own namespaces (prefix: process id
//! and test name) and removes them however it ends.
//!
//! Two topologies (tests/common/lab.rs, with both real servers):
//! - routed (FULLNAT, NAT): client 198.18.0.2 | rvsd 198.18.0.1 "client",
//!   198.19.0.1 "servers" | bridge | rs1 198.19.0.11, rs2 198.19.0.12
//!   (and fd00:18::/64, fd00:19::/64 alike);
//! - flat (DR, TUN): client, rvsd's one port and both servers on one bridge
//!   in 198.18.0.0/24 and fd00:18::/64, so the servers answer the client
//!   directly.
//!
//! The tests take turns (a lock): rvsd's workers poll, and the machine may
//! have two CPUs for all of them.
mod common;

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use common::lab::{
    assert_ring_path, await_ready, flat, host, http_server, routed, serial, servers_route_via_rvsd,
    start_rvsd, start_rvsd_on, start_rvsd_with, worker_counter, Pmd, PortConf, Rvsd, StartOpts,
    CLI4, CLI6, FLAT4, FLAT6, FLAT_PORTS, GWS4, GWS6, ROUTED_PORTS, RS4, RS6, SERVERS, VIP4, VIP6,
};
use common::netns::{text, Netns};
use common::{wait_until, TempDir};

/// The source addresses of the client requests (`GET / `, not the
/// readiness probes) in a python http.server log.
fn request_sources(log: &Path) -> Vec<String> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"GET / HTTP"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// `n` sequential curls from the client to `url`; every one must succeed.
/// The bodies (the answering servers' names).
fn curls(net: &Netns, url: &str, n: usize, ctx: &dyn Fn() -> String) -> Vec<String> {
    (0..n)
        .map(|i| {
            let o = net.run(
                "cli",
                &["curl", "-sS", "--noproxy", "*", "--max-time", "5", url],
            );
            assert!(
                o.status.success(),
                "curl {url} #{i} failed: {}\n{}",
                text(&o.stderr),
                ctx()
            );
            text(&o.stdout).trim().to_string()
        })
        .collect()
}

fn count(bodies: &[String], name: &str) -> usize {
    bodies.iter().filter(|b| *b == name).count()
}

/// Both servers answered, in rr's alternation (each half of an even `n`).
fn assert_rr(bodies: &[String], what: &str) {
    let n = bodies.len();
    for rs in SERVERS {
        assert_eq!(count(bodies, rs), n / 2, "{what}: answers {bodies:?}");
    }
}

/// Everything worth seeing when an assertion fails.
fn diag(dir: &TempDir, rvsd: Option<&Rvsd>) -> String {
    let mut s = String::new();
    if let Some(r) = rvsd {
        let _ = writeln!(s, "---- rvsd log\n{}", r.daemon.log());
        let _ = writeln!(s, "---- rvsadm -Ln\n{}", text(&r.adm("-Ln").stdout));
        let _ = writeln!(s, "---- rvsadm -Lnc\n{}", text(&r.adm("-Lnc").stdout));
    }
    if let Ok(rd) = fs::read_dir(&dir.0) {
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "log") {
                let t = fs::read_to_string(&p).unwrap_or_default();
                let tail: Vec<&str> = t.lines().rev().take(20).collect();
                let _ = writeln!(s, "---- {}", p.display());
                for l in tail.iter().rev() {
                    let _ = writeln!(s, "{l}");
                }
            }
        }
    }
    s
}

/// The `-Lnc` rows of FULLNAT conns: VIP:vport, then local address, then
/// the real server (the local-address column is FULLNAT's alone).
fn fullnat_rows<'a>(listing: &'a str, vip: &str, laddr: &str) -> Vec<&'a str> {
    let v = format!("{}:80", host(vip));
    let l = format!("{}:", host(laddr));
    listing
        .lines()
        .filter(|line| {
            let w: Vec<&str> = line.split_whitespace().collect();
            w.len() == 7 && w[4] == v && w[5].starts_with(&l)
        })
        .collect()
}

fn fullnat_rules() -> String {
    let mut r = format!("-A -t {VIP4}:80 -s rr\n-A -t [{VIP6}]:80 -s rr\n");
    for i in 0..2 {
        let _ = writeln!(r, "-a -t {VIP4}:80 -r {}:80 -b -w 1", RS4[i]);
        let _ = writeln!(r, "-a -t [{VIP6}]:80 -r [{}]:80 -b -w 1", RS6[i]);
    }
    r
}

/// FULLNAT IPv4 and IPv6 through `workers` workers: every request
/// succeeds, rr spreads them over both servers, and the servers see rvsd's
/// server-side address, never the client's. Returns rvsd's summary.
fn fullnat_through(test: &str, workers: usize, n: usize) -> String {
    let net = routed(test, 2);
    let dir = TempDir::new(test);
    let mut logs4 = Vec::new();
    let mut logs6 = Vec::new();
    for (i, rs) in SERVERS.iter().enumerate() {
        logs4.push(http_server(&net, &dir, rs, RS4[i], 80));
        logs6.push(http_server(&net, &dir, rs, RS6[i], 80));
    }
    let rvsd = start_rvsd(&net, &dir, workers, &ROUTED_PORTS, &fullnat_rules());
    let ctx = || diag(&dir, Some(&rvsd));

    for (vip, lip, logs) in [(VIP4, GWS4, &logs4), (VIP6, GWS6, &logs6)] {
        let bodies = curls(&net, &format!("http://{}/", host(vip)), n, &ctx);
        if workers == 1 {
            assert_rr(&bodies, vip);
        } else {
            // rr runs per worker; each worker's turn starts anywhere.
            for rs in SERVERS {
                assert!(count(&bodies, rs) > 0, "{vip}: {bodies:?}\n{}", ctx());
            }
        }
        for (i, log) in logs.iter().enumerate() {
            let srcs = request_sources(log);
            assert_eq!(
                srcs.len(),
                count(&bodies, SERVERS[i]),
                "{}: {srcs:?}",
                log.display()
            );
            assert!(
                srcs.iter().all(|s| s == lip),
                "{}: sources {srcs:?}, want only the local address {lip}",
                log.display()
            );
        }
        let listing = rvsd.ok("-Lnc");
        let rows = fullnat_rows(&listing, vip, lip);
        assert!(
            !rows.is_empty(),
            "no FULLNAT conn {vip} via {lip} in:\n{listing}"
        );
        let cli = if vip == VIP4 { CLI4 } else { CLI6 };
        assert!(
            rows.iter().all(|r| r.contains(&format!("{}:", host(cli)))),
            "{rows:?}"
        );
    }
    rvsd.stop()
}

#[test]
fn fullnat_ipv4_and_ipv6_one_worker() {
    let _serial = serial();
    let summary = fullnat_through("fnat", 1, 10);
    assert_eq!(common::drops(&summary, "no_local_addr"), 0, "{summary}");
}

#[test]
fn fullnat_with_an_explicit_local_address_added_at_run_time() {
    let _serial = serial();
    let net = routed("laddr", 2);
    let dir = TempDir::new("laddr");
    let mut logs = Vec::new();
    for (i, rs) in SERVERS.iter().enumerate() {
        logs.push((
            http_server(&net, &dir, rs, RS4[i], 80),
            http_server(&net, &dir, rs, RS6[i], 80),
        ));
    }
    let rvsd = start_rvsd(&net, &dir, 1, &ROUTED_PORTS, "");
    let ctx = || diag(&dir, Some(&rvsd));
    const LIP4: &str = "198.19.0.100";
    const LIP6: &str = "fd00:19::100";
    for (vip, lip, rs) in [(VIP4, LIP4, RS4), (VIP6, LIP6, RS6)] {
        let v = format!("{}:80", host(vip));
        rvsd.ok(&format!("-A -t {v} -s rr"));
        for r in rs {
            rvsd.ok(&format!("-a -t {v} -r {}:80 -b", host(r)));
        }
        rvsd.ok(&format!("-P -t {v} -z {lip} -F servers"));
        let listed = rvsd.ok(&format!("-G -t {v}"));
        assert!(listed.contains(lip), "-G: {listed}");
    }

    for (k, (vip, lip)) in [(VIP4, LIP4), (VIP6, LIP6)].into_iter().enumerate() {
        let bodies = curls(&net, &format!("http://{}/", host(vip)), 6, &ctx);
        assert_rr(&bodies, vip);
        for (i, pair) in logs.iter().enumerate() {
            let log = if k == 0 { &pair.0 } else { &pair.1 };
            let srcs = request_sources(log);
            assert_eq!(srcs.len(), 3, "{}: {srcs:?}", log.display());
            assert!(
                srcs.iter().all(|s| s == lip),
                "{}: sources {srcs:?}, want only {lip}\n{}",
                log.display(),
                ctx()
            );
            // rvsd answered ARP / ND for the local address.
            let neigh = net.ok(SERVERS[i], &["ip", "neigh", "show", lip]);
            assert!(neigh.contains("lladdr"), "{}: {neigh}", SERVERS[i]);
        }
        let listing = rvsd.ok("-Lnc");
        assert!(
            !fullnat_rows(&listing, vip, lip).is_empty(),
            "no FULLNAT conn via {lip}:\n{listing}"
        );
    }
    let summary = rvsd.stop();
    assert_eq!(common::drops(&summary, "no_local_addr"), 0, "{summary}");
}

/// FULLNAT from an IPv6 VIP to IPv4 real servers (DPVS's NAT64): curl -6
/// reaches both IPv4-only http.servers under rr, a download of BIG bytes
/// comes through whole, the servers see rvsd's IPv4 local address (the
/// servers port's own, then one added with -P), and the listings show the
/// IPv6 service with IPv4 real servers as ipvsadm prints mixed families;
/// then the reverse, an IPv4 VIP over the servers' IPv6 addresses.
#[test]
fn fullnat_nat64_ipv6_vip_to_ipv4_real_servers() {
    let _serial = serial();
    let net = routed("nat64", 2);
    let dir = TempDir::new("nat64");
    big_file_servers(&net, &dir);
    let logs: Vec<PathBuf> = SERVERS
        .iter()
        .enumerate()
        .map(|(i, rs)| dir.path(&format!("http-{rs}-{}-80.log", RS4[i])))
        .collect();
    let v = format!("[{VIP6}]:80");
    let mut rules = format!("-A -t {v} -s rr\n");
    for rs in RS4 {
        let _ = writeln!(rules, "-a -t {v} -r {rs}:80 -b -w 1");
    }
    let rvsd = start_rvsd(&net, &dir, 1, &ROUTED_PORTS, &rules);
    let ctx = || diag(&dir, Some(&rvsd));

    let url = format!("http://[{VIP6}]/");
    let bodies = curls(&net, &url, 6, &ctx);
    assert_rr(&bodies, "nat64");
    for log in &logs {
        let srcs = request_sources(log);
        assert_eq!(srcs.len(), 3, "{}: {srcs:?}\n{}", log.display(), ctx());
        assert!(srcs.iter().all(|s| s == GWS4), "{srcs:?}");
    }

    // A download of BIG bytes, segments at full size both ways.
    let got = dir.path("big.out");
    let o = net.run(
        "cli",
        &[
            "curl",
            "-6",
            "-sS",
            "--noproxy",
            "*",
            "--max-time",
            "30",
            "-o",
            got.to_str().unwrap(),
            &format!("{url}big"),
        ],
    );
    assert!(o.status.success(), "{}\n{}", text(&o.stderr), ctx());
    let body = fs::read(&got).unwrap();
    assert_eq!(body.len(), BIG, "{}", ctx());
    let name = SERVERS
        .iter()
        .find(|rs| body.starts_with(format!("{rs}\n").as_bytes()))
        .expect("a server's file");
    assert!(body[name.len() + 1..].iter().all(|&b| b == b'x'));

    // ipvsadm prints each real server in its own family.
    let listing = rvsd.ok("-Ln");
    let lines: Vec<&str> = listing.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == format!("TCP  {v} rr"))
        .unwrap_or_else(|| panic!("{listing}"));
    for (i, rs) in RS4.iter().enumerate() {
        let w: Vec<&str> = lines[at + 1 + i].split_whitespace().collect();
        assert_eq!(
            &w[..4],
            ["->", &format!("{rs}:80"), "FullNat", "1"],
            "{listing}"
        );
    }
    let conns = rvsd.ok("-Lnc");
    let rows = fullnat_rows(&conns, VIP6, GWS4);
    assert!(!rows.is_empty(), "{conns}");
    for r in &rows {
        let w: Vec<&str> = r.split_whitespace().collect();
        assert!(w[3].starts_with(&format!("[{CLI6}]:")), "{r}");
        assert!(RS4.iter().any(|rs| w[6] == format!("{rs}:80")), "{r}");
    }

    // The reverse: an IPv4 VIP over IPv6 real servers.
    let logs6: Vec<PathBuf> = SERVERS
        .iter()
        .enumerate()
        .map(|(i, rs)| http_server(&net, &dir, rs, RS6[i], 80))
        .collect();
    rvsd.ok(&format!("-A -t {VIP4}:80 -s rr"));
    for rs in RS6 {
        rvsd.ok(&format!("-a -t {VIP4}:80 -r [{rs}]:80 -b -w 1"));
    }
    let bodies = curls(&net, &format!("http://{VIP4}/"), 4, &ctx);
    assert_rr(&bodies, "IPv4 VIP over IPv6 servers");
    for log in &logs6 {
        let srcs = request_sources(log);
        assert_eq!(srcs, [GWS6, GWS6], "{}", ctx());
    }
    let conns = rvsd.ok("-Lnc");
    assert!(!fullnat_rows(&conns, VIP4, GWS6).is_empty(), "{conns}");

    // An IPv4 local address of the IPv6 service's own.
    const LIP4: &str = "198.19.0.100";
    rvsd.ok(&format!("-P -t {v} -z {LIP4} -F servers"));
    let bodies = curls(&net, &url, 4, &ctx);
    assert_rr(&bodies, "nat64 with -P");
    for log in &logs {
        let srcs = request_sources(log);
        assert_eq!(srcs.len(), 5, "{srcs:?}");
        assert_eq!(&srcs[3..], [LIP4, LIP4], "{}", ctx());
    }
    let summary = rvsd.stop();
    assert_eq!(common::drops(&summary, "no_local_addr"), 0, "{summary}");
    assert_eq!(common::drops(&summary, "unsupported"), 0, "{summary}");
}

/// NAT64 with two workers: the IPv6 client's packets go to the worker
/// its address hashes to, the IPv4 replies to the local port's owner, and
/// the two meet on the conn's worker (through a redirect ring when RSS put
/// them elsewhere).
#[test]
fn fullnat_nat64_two_workers() {
    let _serial = serial();
    let net = routed("nat64w2", 2);
    let dir = TempDir::new("nat64w2");
    let logs: Vec<PathBuf> = SERVERS
        .iter()
        .enumerate()
        .map(|(i, rs)| http_server(&net, &dir, rs, RS4[i], 80))
        .collect();
    let v = format!("[{VIP6}]:80");
    let mut rules = format!("-A -t {v} -s rr\n");
    for rs in RS4 {
        let _ = writeln!(rules, "-a -t {v} -r {rs}:80 -b -w 1");
    }
    let rvsd = start_rvsd(&net, &dir, 2, &ROUTED_PORTS, &rules);
    let ctx = || diag(&dir, Some(&rvsd));
    let bodies = curls(&net, &format!("http://{}/", host(VIP6)), 10, &ctx);
    for (i, rs) in SERVERS.iter().enumerate() {
        assert!(count(&bodies, rs) > 0, "{bodies:?}\n{}", ctx());
        let srcs = request_sources(&logs[i]);
        assert_eq!(srcs.len(), count(&bodies, rs), "{srcs:?}");
        assert!(srcs.iter().all(|s| s == GWS4), "{srcs:?}");
    }
    let conns = rvsd.ok("-Lnc");
    assert!(!fullnat_rows(&conns, VIP6, GWS4).is_empty(), "{conns}");
    let summary = rvsd.stop();
    assert_eq!(common::drops(&summary, "unsupported"), 0, "{summary}");
    assert_eq!(common::drops(&summary, "no_conn"), 0, "{summary}");
}

/// A UDP server for the NAT64 MTU test: it answers the first datagram
/// with one that fits the IPv4 side but not, grown by 20 bytes, rvsd's
/// IPv6 client port, waits (with a deadline) for the path MTU to the peer
/// to drop, as the fragmentation-needed rvsd sends makes the kernel do,
/// prints it and answers again at that size.
const PMTU_SERVER: &str = r#"
import socket, sys, time
addr, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER: IP_PMTUDISC_DO
s.bind((addr, port))
print("ready", flush=True)
data, peer = s.recvfrom(2048)
print("from", peer[0], peer[1], flush=True)
s.sendto(b"x" * size, peer)
def path_mtu():
    # A fresh socket each time: a connected one keeps the route it got.
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.connect(peer)
    mtu = probe.getsockopt(socket.IPPROTO_IP, 14)  # IP_MTU
    probe.close()
    return mtu
deadline = time.time() + 10
mtu = path_mtu()
while mtu >= 28 + size and time.time() < deadline:
    time.sleep(0.05)
    mtu = path_mtu()
print("pmtu", mtu, flush=True)
s.sendto(b"y" * (mtu - 28), peer)
"#;

/// Sends one datagram and prints the size and first byte of each answer
/// until one starts with "y".
const PMTU_CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(15)
s.sendto(b"hello", (sys.argv[1], int(sys.argv[2])))
while True:
    data, peer = s.recvfrom(4096)
    print("got", len(data), data[:1].decode(), flush=True)
    if data[:1] == b"y":
        break
"#;

/// NAT64's growth by 20 bytes against the client side's MTU: rvsd's
/// client port has MTU 1400, the IPv4 server sends a 1400-byte datagram
/// (1420 as IPv6). rvsd drops it and answers the server with ICMP
/// fragmentation needed, MTU 1380; the server's kernel takes that as the
/// path MTU, and its next datagram, 1380 bytes, reaches the client as
/// exactly 1400 bytes of IPv6.
#[test]
fn fullnat_nat64_answers_a_reply_too_big_for_the_ipv6_side_with_frag_needed() {
    let _serial = serial();
    let net = routed("nat64mtu", 2);
    let dir = TempDir::new("nat64mtu");
    let server = dir.path("pmtu_server.py");
    fs::write(&server, PMTU_SERVER).unwrap();
    let log = dir.path("pmtu-rs1.log");
    net.spawn(
        "rs1",
        &[
            "python3",
            "-u",
            server.to_str().unwrap(),
            RS4[0],
            "9000",
            "1372",
        ],
        &log,
    );
    await_ready(&log, 10, "PMTU server in rs1");
    let ports = [
        PortConf {
            mtu: Some(1400),
            ..ROUTED_PORTS[0]
        },
        PortConf { ..ROUTED_PORTS[1] },
    ];
    let rules = format!(
        "-A -u [{VIP6}]:9000 -s rr\n-a -u [{VIP6}]:9000 -r {}:9000 -b\n",
        RS4[0]
    );
    let rvsd = start_rvsd(&net, &dir, 1, &ports, &rules);
    let ctx = || diag(&dir, Some(&rvsd));
    let client = dir.path("pmtu_client.py");
    fs::write(&client, PMTU_CLIENT).unwrap();
    let o = net.run(
        "cli",
        &["python3", "-u", client.to_str().unwrap(), VIP6, "9000"],
    );
    let rs_log = fs::read_to_string(&log).unwrap_or_default();
    assert!(
        o.status.success(),
        "{}{}\n{rs_log}\n{}",
        text(&o.stdout),
        text(&o.stderr),
        ctx()
    );
    assert_eq!(text(&o.stdout).trim(), "got 1352 y", "{rs_log}\n{}", ctx());
    assert!(
        rs_log.contains(&format!("from {GWS4} ")),
        "the server saw {rs_log}"
    );
    assert!(rs_log.contains("pmtu 1380"), "{rs_log}");
    let summary = rvsd.stop();
    // The datagram too big for the IPv6 side, and only it.
    assert_eq!(common::drops(&summary, "too_big"), 1, "{summary}");
    assert_eq!(common::drops(&summary, "unsupported"), 0, "{summary}");
}

/// The real server's side of the NAT64 ICMP test: answers the first
/// datagram ("hello", from the client's socket A), and on the second
/// ("go", from socket B, which A has been closed before) sends "late" to
/// A's conn, then waits (with a deadline) for the error that brings on its
/// error queue (IP_RECVERR), prints it and answers B.
const ICMP_SERVER: &str = r#"
import socket, struct, sys, time
addr, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 11, 1)  # IP_RECVERR
s.bind((addr, port))
print("ready", flush=True)
data, a = s.recvfrom(2048)
s.sendto(b"first", a)
data, b = s.recvfrom(2048)
print("go from", b[0], b[1], flush=True)
s.sendto(b"late", a)
deadline = time.time() + 10
err = None
while err is None and time.time() < deadline:
    try:
        _, anc, _, _ = s.recvmsg(2048, 512, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
    except BlockingIOError:
        time.sleep(0.05)
        continue
    for level, kind, raw in anc:
        if level == socket.IPPROTO_IP and kind == 11:
            eno, origin, t, code, _, _, _ = struct.unpack("=IBBBBII", raw[:16])
            offender = socket.inet_ntoa(raw[20:24])
            err = "errno %d origin %d type %d code %d from %s" % (eno, origin, t, code, offender)
print("error:", err, flush=True)
s.sendto(b"done", b)
"#;

/// The client's side: a connected socket A gets "first", and its next
/// receive must fail with ECONNREFUSED if nothing else comes first: the
/// second datagram went to a closed port, see below. Then socket B's "go"
/// and its answer.
const ICMP_CLIENT: &str = r#"
import socket, sys
vip, port, dead = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
# To a port with no server: the server's kernel answers port unreachable.
d = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
d.settimeout(10)
d.connect((vip, dead))
d.send(b"anyone?")
try:
    d.recv(2048)
    print("dead port: an answer")
except ConnectionRefusedError:
    print("dead port: refused")
except socket.timeout:
    print("dead port: timeout")
a = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
a.settimeout(10)
a.connect((vip, port))
a.send(b"hello")
print("a got", a.recv(2048).decode(), flush=True)
a.close()
b = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
b.settimeout(15)
b.connect((vip, port))
b.send(b"go")
print("b got", b.recv(2048).decode(), flush=True)
"#;

/// ICMP errors across NAT64, from real kernels both ways: the IPv4
/// server's port unreachable reaches the IPv6 client as ICMPv6 port
/// unreachable about its own datagram (its socket gets ECONNREFUSED, which
/// takes the quote's addresses and ports translated right), and the IPv6
/// client's port unreachable about a late reply reaches the IPv4 server as
/// ICMP port unreachable from the local address, on its error queue.
#[test]
fn fullnat_nat64_icmp_errors_reach_both_sides() {
    let _serial = serial();
    let net = routed("nat64icmp", 2);
    let dir = TempDir::new("nat64icmp");
    let server = dir.path("icmp_server.py");
    fs::write(&server, ICMP_SERVER).unwrap();
    let log = dir.path("icmp-rs1.log");
    net.spawn(
        "rs1",
        &["python3", "-u", server.to_str().unwrap(), RS4[0], "9000"],
        &log,
    );
    await_ready(&log, 10, "ICMP server in rs1");
    let mut rules = String::new();
    for port in [9000, 9001] {
        let _ = writeln!(
            rules,
            "-A -u [{VIP6}]:{port} -s rr\n-a -u [{VIP6}]:{port} -r {}:{port} -b",
            RS4[0]
        );
    }
    let rvsd = start_rvsd(&net, &dir, 1, &ROUTED_PORTS, &rules);
    let ctx = || diag(&dir, Some(&rvsd));
    let client = dir.path("icmp_client.py");
    fs::write(&client, ICMP_CLIENT).unwrap();
    let o = net.run(
        "cli",
        &[
            "python3",
            "-u",
            client.to_str().unwrap(),
            VIP6,
            "9000",
            "9001",
        ],
    );
    let rs_log = fs::read_to_string(&log).unwrap_or_default();
    let out = text(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}\n{rs_log}\n{}",
        text(&o.stderr),
        ctx()
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["dead port: refused", "a got first", "b got done"],
        "{rs_log}\n{}",
        ctx()
    );
    // ECONNREFUSED (111), from an ICMP message (origin 2), type 3 code 3,
    // sent from the local address the server knows.
    assert!(
        rs_log.contains(&format!(
            "error: errno 111 origin 2 type 3 code 3 from {GWS4}"
        )),
        "{rs_log}\n{}",
        ctx()
    );
    rvsd.stop();
}

fn nat_through(test: &str, workers: usize) {
    let net = routed(test, 2);
    let dir = TempDir::new(test);
    let mut logs4 = Vec::new();
    let mut logs6 = Vec::new();
    for (i, rs) in SERVERS.iter().enumerate() {
        logs4.push(http_server(&net, &dir, rs, RS4[i], 8080));
        logs6.push(http_server(&net, &dir, rs, RS6[i], 8080));
    }
    servers_route_via_rvsd(&net, 2);
    let mut rules = format!("-A -t {VIP4}:80 -s rr\n-A -t [{VIP6}]:80 -s rr\n");
    for i in 0..2 {
        let _ = writeln!(rules, "-a -t {VIP4}:80 -r {}:8080 -m -w 1", RS4[i]);
        let _ = writeln!(rules, "-a -t [{VIP6}]:80 -r [{}]:8080 -m -w 1", RS6[i]);
    }
    let rvsd = start_rvsd(&net, &dir, workers, &ROUTED_PORTS, &rules);
    let ctx = || diag(&dir, Some(&rvsd));
    for (vip, cli, logs) in [(VIP4, CLI4, &logs4), (VIP6, CLI6, &logs6)] {
        let bodies = curls(&net, &format!("http://{}/", host(vip)), 6, &ctx);
        assert_rr(&bodies, vip);
        for log in logs {
            let srcs = request_sources(log);
            assert_eq!(srcs.len(), 3, "{}: {srcs:?}", log.display());
            // NAT keeps the client's address.
            assert!(srcs.iter().all(|s| s == cli), "{srcs:?}");
        }
    }
    let listing = rvsd.ok("-Lnc");
    assert!(listing.contains(&format!("{}:8080", RS4[0])), "{listing}");
    rvsd.stop();
}

#[test]
fn nat_ipv4_and_ipv6_with_port_mapping() {
    let _serial = serial();
    nat_through("nat", 1);
}

/// The same with two workers: replies and later packets that land on the
/// other worker reach the flow's owner through its redirect ring.
#[test]
fn nat_ipv4_and_ipv6_with_port_mapping_two_workers() {
    let _serial = serial();
    nat_through("nat2", 2);
}

/// DR and TUN over the flat topology: every request succeeds, both servers
/// answer, they see the client's own address, and they answered the
/// client directly (they resolved its MAC themselves; they have no route
/// but their subnet).
fn direct_answers(net: &Netns, dir: &TempDir, rvsd: &Rvsd, logs4: &[PathBuf], logs6: &[PathBuf]) {
    let ctx = || diag(dir, Some(rvsd));
    for (vip, cli, logs) in [(VIP4, CLI4, logs4), (VIP6, CLI6, logs6)] {
        let bodies = curls(net, &format!("http://{}/", host(vip)), 6, &ctx);
        assert_rr(&bodies, vip);
        for log in logs {
            let srcs = request_sources(log);
            assert_eq!(srcs.len(), 3, "{}: {srcs:?}", log.display());
            assert!(srcs.iter().all(|s| s == cli), "{srcs:?}");
        }
        for rs in SERVERS {
            let neigh = net.ok(rs, &["ip", "neigh", "show", cli]);
            assert!(
                neigh.contains("lladdr"),
                "{rs} never resolved {cli}: {neigh}"
            );
        }
    }
}

fn dr_through(test: &str, workers: usize) {
    let net = flat(test, 2);
    let dir = TempDir::new(test);
    let mut logs4 = Vec::new();
    let mut logs6 = Vec::new();
    for rs in SERVERS {
        logs4.push(http_server(&net, &dir, rs, VIP4, 80));
        logs6.push(http_server(&net, &dir, rs, VIP6, 80));
    }
    let mut rules = format!("-A -t {VIP4}:80 -s rr\n-A -t [{VIP6}]:80 -s rr\n");
    for i in 0..2 {
        let _ = writeln!(rules, "-a -t {VIP4}:80 -r {}:80 -g -w 1", FLAT4[i]);
        let _ = writeln!(rules, "-a -t [{VIP6}]:80 -r [{}]:80 -g -w 1", FLAT6[i]);
    }
    let rvsd = start_rvsd(&net, &dir, workers, &FLAT_PORTS, &rules);
    direct_answers(&net, &dir, &rvsd, &logs4, &logs6);
    rvsd.stop();
}

#[test]
fn dr_ipv4_and_ipv6() {
    let _serial = serial();
    dr_through("dr", 1);
}

/// The same with two workers: replies and later packets that land on the
/// other worker reach the flow's owner through its redirect ring.
#[test]
fn dr_ipv4_and_ipv6_two_workers() {
    let _serial = serial();
    dr_through("dr2", 2);
}

/// IP-in-IP (protocol 4) and IPv6-in-IPv6 (41) decapsulation in user space,
/// for kernels built without ipip / ip6_tunnel: the outer header is
/// dropped and the inner packet enters the server's stack through a tun
/// device, as the kernel's tunl0 / ip6tnl0 would hand it over.
const DECAP: &str = r#"
import fcntl, os, select, socket, struct, subprocess, sys
name, families = sys.argv[1], sys.argv[2].split(",")
tun = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(tun, 0x400454CA, struct.pack("16sH", name.encode(), 0x0001 | 0x1000))
subprocess.run(["ip", "link", "set", name, "up"], check=True)
socks = []
if "4" in families:
    socks.append(socket.socket(socket.AF_INET, socket.SOCK_RAW, 4))
if "6" in families:
    socks.append(socket.socket(socket.AF_INET6, socket.SOCK_RAW, 41))
print("ready", flush=True)
while True:
    for s in select.select(socks, [], [])[0]:
        pkt = s.recv(65535)
        if s.family == socket.AF_INET:
            # IPv4 raw sockets hand over the outer header, IPv6 ones do not.
            pkt = pkt[(pkt[0] & 15) * 4:]
        os.write(tun, pkt)
"#;

/// Makes `rs` a TUN real server: the kernel's tunl0 / ip6tnl0 where the
/// kernel has them, else the user-space decapsulator above. Returns how,
/// and the devices the inner packets come in on.
fn tunnel_endpoint(net: &Netns, dir: &TempDir, rs: &str) -> (String, Vec<&'static str>) {
    let exists = |dev: &str| net.run(rs, &["ip", "link", "show", dev]).status.success();
    let mut devs = Vec::new();
    let mut user = Vec::new();
    for (fam, dev, kind) in [("4", "tunl0", "ipip"), ("6", "ip6tnl0", "ip6tnl")] {
        // Adding loads the module, which creates the fallback device itself
        // (and then the add fails: it exists), so look again either way.
        if !exists(dev) {
            let _ = net.run(rs, &["ip", "link", "add", dev, "type", kind]);
        }
        if exists(dev) {
            net.up(rs, dev);
            devs.push(dev);
        } else {
            user.push(fam);
        }
    }
    let mut how = format!("{rs}: kernel {devs:?}");
    if !user.is_empty() {
        let script = dir.path("decap.py");
        fs::write(&script, DECAP).unwrap();
        let log = dir.path(&format!("decap-{rs}.log"));
        net.spawn(
            rs,
            &[
                "python3",
                "-u",
                script.to_str().unwrap(),
                "decap0",
                &user.join(","),
            ],
            &log,
        );
        await_ready(&log, 10, &format!("decapsulator in {rs}"));
        devs.push("decap0");
        let _ = write!(how, ", user space for IPv{}", user.join(" and IPv"));
    }
    // The inner packets come from the client, whose route is eth0: strict
    // reverse-path filtering would drop them.
    for key in ["all", "default"]
        .into_iter()
        .chain(devs.iter().copied().filter(|d| *d != "ip6tnl0"))
    {
        net.ok(
            rs,
            &["sysctl", "-qw", &format!("net.ipv4.conf.{key}.rp_filter=0")],
        );
    }
    (how, devs)
}

/// Packets a device of `rs` has received.
fn rx_packets(net: &Netns, rs: &str, dev: &str) -> u64 {
    net.ok(
        rs,
        &[
            "cat",
            &format!("/sys/class/net/{dev}/statistics/rx_packets"),
        ],
    )
    .trim()
    .parse()
    .unwrap()
}

fn tun_through(test: &str, workers: usize) {
    let net = flat(test, 2);
    let dir = TempDir::new(test);
    let mut logs4 = Vec::new();
    let mut logs6 = Vec::new();
    let mut how = Vec::new();
    let mut devs = Vec::new();
    for rs in SERVERS {
        let (h, d) = tunnel_endpoint(&net, &dir, rs);
        how.push(h);
        devs.push(d);
        logs4.push(http_server(&net, &dir, rs, VIP4, 80));
        logs6.push(http_server(&net, &dir, rs, VIP6, 80));
    }
    eprintln!("TUN decapsulation: {how:?}");
    let mut rules = format!("-A -t {VIP4}:80 -s rr\n-A -t [{VIP6}]:80 -s rr\n");
    for i in 0..2 {
        let _ = writeln!(rules, "-a -t {VIP4}:80 -r {}:80 -i -w 1", FLAT4[i]);
        let _ = writeln!(rules, "-a -t [{VIP6}]:80 -r [{}]:80 -i -w 1", FLAT6[i]);
    }
    let rvsd = start_rvsd(&net, &dir, workers, &FLAT_PORTS, &rules);
    direct_answers(&net, &dir, &rvsd, &logs4, &logs6);
    // The requests came out of a tunnel, not straight off eth0.
    for (rs, devs) in SERVERS.iter().zip(&devs) {
        let n: u64 = devs.iter().map(|d| rx_packets(&net, rs, d)).sum();
        assert!(n >= 12, "{rs}: {n} packets decapsulated on {devs:?}");
    }
    rvsd.stop();
}

#[test]
fn tun_ipv4_and_ipv6() {
    let _serial = serial();
    tun_through("tun", 1);
}

/// The same with two workers: replies and later packets that land on the
/// other worker reach the flow's owner through its redirect ring.
#[test]
fn tun_ipv4_and_ipv6_two_workers() {
    let _serial = serial();
    tun_through("tun2", 2);
}

/// A UDP echo server that prefixes its name and logs each peer address.
const UDP_ECHO: &str = r#"
import socket, sys
addr, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((addr, port))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(2048)
    print("from", peer[0], peer[1], flush=True)
    s.sendto(name.encode() + b" " + data, peer)
"#;

/// Sends `n` datagrams, each from its own source port (a new conn: a
/// random ephemeral port could repeat one and land on its server again),
/// waiting for each answer (resending on a timeout); prints the answers.
const UDP_CLIENT: &str = r#"
import socket, sys
addr, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    v6 = ":" in addr
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("::" if v6 else "0.0.0.0", 41000 + i))
    s.settimeout(1)
    msg = ("ping %d" % i).encode()
    for attempt in range(3):
        s.sendto(msg, (addr, port))
        try:
            data, peer = s.recvfrom(2048)
            break
        except socket.timeout:
            continue
    else:
        sys.exit("no answer to datagram %d" % i)
    name, _, echo = data.decode().partition(" ")
    if echo != msg.decode() or peer[0] != addr:
        sys.exit("bad answer %r from %r" % (data, peer))
    print(name, flush=True)
    s.close()
"#;

#[test]
fn udp_through_fullnat_ipv4_and_ipv6() {
    let _serial = serial();
    let net = routed("udp", 2);
    let dir = TempDir::new("udp");
    let echo = dir.path("echo.py");
    fs::write(&echo, UDP_ECHO).unwrap();
    let client = dir.path("client.py");
    fs::write(&client, UDP_CLIENT).unwrap();
    let mut logs = Vec::new();
    for (i, rs) in SERVERS.iter().enumerate() {
        for addr in [RS4[i], RS6[i]] {
            logs.push((addr, udp_echo(&net, &dir, &echo, rs, addr)));
        }
    }
    let mut rules = format!("-A -u {VIP4}:53 -s rr\n-A -u [{VIP6}]:53 -s rr\n");
    for i in 0..2 {
        let _ = writeln!(rules, "-a -u {VIP4}:53 -r {}:5353 -b", RS4[i]);
        let _ = writeln!(rules, "-a -u [{VIP6}]:53 -r [{}]:5353 -b", RS6[i]);
    }
    let rvsd = start_rvsd(&net, &dir, 1, &ROUTED_PORTS, &rules);
    for vip in [VIP4, VIP6] {
        let o = net.run(
            "cli",
            &["python3", client.to_str().unwrap(), vip, "53", "4"],
        );
        assert!(
            o.status.success(),
            "UDP via {vip}: {}{}\n{}",
            text(&o.stdout),
            text(&o.stderr),
            diag(&dir, Some(&rvsd))
        );
        let names: Vec<String> = text(&o.stdout).lines().map(str::to_string).collect();
        assert_rr(&names, vip);
    }
    for (addr, log) in &logs {
        let lip = if addr.contains(':') { GWS6 } else { GWS4 };
        let t = fs::read_to_string(log).unwrap();
        let froms: Vec<&str> = t
            .lines()
            .filter_map(|l| l.strip_prefix("from ")?.split(' ').next())
            .collect();
        assert!(!froms.is_empty(), "{}: {t}", log.display());
        assert!(froms.iter().all(|f| *f == lip), "{}: {t}", log.display());
    }
    let listing = rvsd.ok("-Lnc");
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("UDP") && l.contains(GWS4)),
        "{listing}"
    );
    rvsd.stop();
}

/// Fetches a large file and stops reading after the first bytes until a
/// line arrives on stdin, so its conn stays open mid-transfer (the small
/// receive buffer keeps the server blocked in its send); then reads the
/// rest and prints the server's name and the body's length.
const HELD_CLIENT: &str = r#"
import socket, sys
addr = sys.argv[1]
s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
s.settimeout(30)
s.connect((addr, 80))
s.sendall(b"GET /big HTTP/1.0\r\nHost: vip\r\n\r\n")
got = s.recv(4096)
while b"\r\n\r\n" not in got or got.split(b"\r\n\r\n", 1)[1].count(b"\n") < 1:
    got += s.recv(4096)
name = got.split(b"\r\n\r\n", 1)[1].split(b"\n", 1)[0].decode()
print("open", name, flush=True)
sys.stdin.readline()
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    got += chunk
print("done", name, len(got.split(b"\r\n\r\n", 1)[1]), flush=True)
"#;

/// The held client: its stdin (the go signal) and its stdout lines.
struct Held {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Held {
    fn line(&mut self) -> String {
        let mut l = String::new();
        let _ = self.stdout.read_line(&mut l);
        l.trim().to_string()
    }
}

/// The size of the file a held download fetches.
const BIG: usize = 8 << 20;

/// FULLNAT, rr, VIP4:80 over both real servers with weight 1.
const FULLNAT4_RR: &str = "-A -t 198.18.0.100:80 -s rr\n\
                           -a -t 198.18.0.100:80 -r 198.19.0.11:80 -b -w 1\n\
                           -a -t 198.18.0.100:80 -r 198.19.0.12:80 -b -w 1\n";

/// HTTP servers on both real servers' IPv4 addresses, each with a file
/// `big` of BIG bytes that starts with the server's name.
fn big_file_servers(net: &Netns, dir: &TempDir) {
    for (i, rs) in SERVERS.iter().enumerate() {
        http_server(net, dir, rs, RS4[i], 80);
        let mut body = format!("{rs}\n").into_bytes();
        body.resize(BIG, b'x');
        fs::write(dir.path(&format!("www-{rs}")).join("big"), body).unwrap();
    }
}

impl Held {
    /// Starts the held client against VIP4 and waits until its download is
    /// open mid-transfer; gives the name of the server it reached.
    fn open(net: &Netns, dir: &TempDir, ctx: &dyn Fn() -> String) -> (Held, String) {
        let script = dir.path("held.py");
        fs::write(&script, HELD_CLIENT).unwrap();
        let mut child = net
            .cmd("cli", &["python3", "-u", script.to_str().unwrap(), VIP4])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("held client");
        let mut held = Held {
            stdin: child.stdin.take(),
            stdout: BufReader::new(child.stdout.take().unwrap()),
            child,
        };
        let first = held.line();
        let busy = first
            .strip_prefix("open ")
            .unwrap_or_else(|| panic!("held client: {first:?}\n{}", ctx()))
            .to_string();
        (held, busy)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn weight_zero_stops_new_conns_while_open_ones_finish() {
    let _serial = serial();
    let net = routed("wzero", 2);
    let dir = TempDir::new("wzero");
    big_file_servers(&net, &dir);
    let rvsd = start_rvsd(&net, &dir, 1, &ROUTED_PORTS, FULLNAT4_RR);
    let ctx = || diag(&dir, Some(&rvsd));

    let (mut held, busy) = Held::open(&net, &dir, &ctx);
    let i = SERVERS.iter().position(|s| *s == busy).expect("a server");
    let other = SERVERS[1 - i];

    rvsd.ok(&format!("-e -t {VIP4}:80 -r {}:80 -b -w 0", RS4[i]));
    let listing = rvsd.ok("-Ln");
    assert!(
        listing
            .lines()
            .any(|l| l.contains(&format!("{}:80", RS4[i]))
                && l.split_whitespace().nth(3) == Some("0")),
        "{listing}"
    );
    let bodies = curls(&net, &format!("http://{VIP4}/"), 6, &ctx);
    assert_eq!(
        count(&bodies, other),
        6,
        "weight 0 on {busy}, yet: {bodies:?}"
    );
    // The held conn is still open, mid-transfer, to the drained server.
    let conns = rvsd.ok("-Lnc");
    assert!(
        conns
            .lines()
            .any(|l| l.contains("ESTABLISHED") && l.contains(&format!("{}:80", RS4[i]))),
        "{conns}"
    );

    writeln!(held.stdin.as_mut().unwrap(), "go").unwrap();
    let last = held.line();
    assert_eq!(
        last,
        format!("done {busy} {BIG}"),
        "the open conn did not finish\n{}",
        ctx()
    );
    assert!(held.child.wait().unwrap().success());
    rvsd.stop();
}

#[test]
fn fullnat_with_two_workers_on_the_ring_path() {
    let _serial = serial();
    let summary = fullnat_through("fnat2w", 2, 16);
    assert_ring_path(&summary);
}

/// Services and weights change while traffic flows (the management
/// issue's test): a run of new connections and one long transfer keep going
/// through a FULLNAT service while other services come and go, the
/// service's scheduler is replaced with -E and its weights with -e. Not one
/// request fails and the open conn delivers every byte.
#[test]
fn changing_services_and_weights_under_traffic_loses_nothing() {
    let _serial = serial();
    let net = routed("chg", 2);
    let dir = TempDir::new("chg");
    big_file_servers(&net, &dir);
    let rvsd = start_rvsd(&net, &dir, 1, &ROUTED_PORTS, FULLNAT4_RR);
    let ctx = || diag(&dir, Some(&rvsd));

    let (mut held, busy) = Held::open(&net, &dir, &ctx);

    const REQUESTS: usize = 40;
    let loop_cmd = format!(
        "for i in $(seq {REQUESTS}); do curl -s -m 5 -o /dev/null -w '%{{http_code}}\\n' http://{VIP4}/ || echo failed; done"
    );
    let traffic = net
        .cmd("cli", &["sh", "-c", &loop_cmd])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("curl loop");
    for round in 0..10u32 {
        let other = format!("198.18.0.{}:80", 150 + round);
        rvsd.ok(&format!("-A -t {other} -s wlc"));
        rvsd.ok(&format!("-a -t {other} -r {}:80 -m", RS4[0]));
        rvsd.ok(&format!(
            "-e -t {VIP4}:80 -r {}:80 -b -w {}",
            RS4[round as usize % 2],
            1 + round % 3
        ));
        let sched = if round % 2 == 0 { "wrr" } else { "rr" };
        rvsd.ok(&format!("-E -t {VIP4}:80 -s {sched}"));
        rvsd.ok(&format!("-D -t {other}"));
    }
    let out = traffic.wait_with_output().expect("curl loop");
    let codes: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(codes.len(), REQUESTS, "{codes:?}\n{}", ctx());
    assert!(
        codes.iter().all(|c| c == "200"),
        "lost requests: {codes:?}\n{}",
        ctx()
    );

    writeln!(held.stdin.as_mut().unwrap(), "go").unwrap();
    let last = held.line();
    assert_eq!(
        last,
        format!("done {busy} {BIG}"),
        "the open conn lost data\n{}",
        ctx()
    );
    assert!(held.child.wait().unwrap().success());
    let summary = rvsd.stop();
    assert_eq!(common::drops(&summary, "no_conn"), 0, "{summary}");
}

/// Fails the test, naming where to get it, when a load tool is not on PATH:
/// `ip netns exec` would only say that exec failed.
fn require_tool(tool: &str) {
    let found = Command::new(tool)
        .arg("-v")
        .stdin(Stdio::null())
        .output()
        .is_ok();
    assert!(
        found,
        "{tool} not found on PATH: scripts/setup.sh installs it (apt-get install {tool})"
    );
}

/// The number after `key` in wrk's report, or 0 when the line is absent
/// (wrk prints the error and non-2xx lines only when they are not zero).
fn wrk_field(report: &str, key: &str) -> u64 {
    report
        .find(key)
        .map(|at| {
            report[at + key.len()..]
                .trim_start()
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|d| d.parse().ok())
                .unwrap_or_else(|| panic!("bad {key:?} in wrk's report:\n{report}"))
        })
        .unwrap_or(0)
}

/// The issue's load test: wrk keeps eight connections busy against a FULLNAT
/// VIP for two seconds. http.server answers HTTP/1.0 and closes, so every
/// request is a new conn through rvsd: this exercises conn setup, local
/// port allocation and teardown at a rate curl loops never reach.
#[test]
fn a_short_burst_of_real_load_through_fullnat() {
    let _serial = serial();
    require_tool("wrk");
    let net = routed("load", 2);
    let dir = TempDir::new("load");
    let mut logs = Vec::new();
    for (i, rs) in SERVERS.iter().enumerate() {
        logs.push(http_server(&net, &dir, rs, RS4[i], 80));
    }
    let mut rules = format!("-A -t {VIP4}:80 -s rr\n");
    for rs in RS4 {
        let _ = writeln!(rules, "-a -t {VIP4}:80 -r {rs}:80 -b -w 1");
    }
    let rvsd = start_rvsd(&net, &dir, 1, &ROUTED_PORTS, &rules);
    let ctx = || diag(&dir, Some(&rvsd));

    let out = net.run(
        "cli",
        &[
            "wrk",
            "-t1",
            "-c8",
            "-d2s",
            "--timeout",
            "2s",
            &format!("http://{VIP4}/"),
        ],
    );
    let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "wrk failed:\n{report}\n{}", ctx());
    let requests: u64 = report
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count in wrk's report:\n{report}"));
    eprintln!("wrk through FULLNAT:\n{report}");
    assert!(requests > 0, "wrk made no request:\n{report}\n{}", ctx());
    for key in ["connect", "read", "write", "timeout"] {
        let n = wrk_field(
            report.split("Socket errors:").nth(1).unwrap_or_default(),
            key,
        );
        assert_eq!(n, 0, "wrk socket errors ({key}):\n{report}\n{}", ctx());
    }
    assert_eq!(
        wrk_field(&report, "Non-2xx or 3xx responses:"),
        0,
        "{report}\n{}",
        ctx()
    );

    // Both servers carried part of the load, and all of it came from rvsd.
    let stats = rvsd.ok("-Ln --stats");
    eprintln!("{stats}");
    for (i, log) in logs.iter().enumerate() {
        // Under load the threaded python server's log lines can run into
        // each other; a line whose first word is no address is such a
        // splice, not a request from elsewhere. Every address must be rvsd's.
        let srcs: Vec<String> = request_sources(log)
            .into_iter()
            .filter(|s| s.parse::<std::net::IpAddr>().is_ok())
            .collect();
        assert!(
            !srcs.is_empty() && srcs.iter().all(|s| s == GWS4),
            "{}: {} requests, sources not only {GWS4}: {:?}\n{}",
            log.display(),
            srcs.len(),
            srcs.iter()
                .filter(|s| *s != GWS4)
                .take(5)
                .collect::<Vec<_>>(),
            ctx()
        );
        let row = stats
            .lines()
            .find(|l| l.contains(&format!("{}:80", RS4[i])))
            .unwrap_or_else(|| panic!("no {} in --stats:\n{stats}", RS4[i]));
        let inpkts: u64 = row
            .split_whitespace()
            .nth(3)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no InPkts in {row:?}"));
        assert!(inpkts > 0, "no packets to {}:\n{stats}", RS4[i]);
    }
    let summary = rvsd.stop();
    for reason in ["no_conn", "no_local_addr", "conn_table_full"] {
        assert_eq!(common::drops(&summary, reason), 0, "{reason}:\n{summary}");
    }
}

/// The UDP echo server (`echo`: UDP_ECHO's file) in role `rs` on
/// `addr`:5353; its log, once it says it is ready.
fn udp_echo(net: &Netns, dir: &TempDir, echo: &Path, rs: &str, addr: &str) -> PathBuf {
    let log = dir.path(&format!("udp-{rs}-{addr}.log"));
    net.spawn(
        rs,
        &["python3", "-u", echo.to_str().unwrap(), addr, "5353", rs],
        &log,
    );
    await_ready(&log, 10, &format!("UDP echo in {rs}"));
    log
}

#[test]
fn session_log_traces_each_client_to_the_local_port_its_real_server_saw() {
    let _serial = serial();
    let net = routed("slog", 2);
    let dir = TempDir::new("slog");
    let echo = dir.path("echo.py");
    fs::write(&echo, UDP_ECHO).unwrap();
    let echo_logs: Vec<PathBuf> = SERVERS
        .iter()
        .zip(RS4)
        .map(|(rs, addr)| udp_echo(&net, &dir, &echo, rs, addr))
        .collect();
    let client = dir.path("client.py");
    fs::write(&client, UDP_CLIENT).unwrap();
    let mut rules = format!("-A -u {VIP4}:53 -s rr\n");
    for rs in RS4 {
        let _ = writeln!(rules, "-a -u {VIP4}:53 -r {rs}:5353 -b");
    }
    // UDP conns end 2 s after their last datagram, so the test sees ends.
    rules.push_str("--set 0 0 2\n");
    let sessions = dir.path("sessions.log");
    let extra = format!("[session_log]\nfile = \"{}\"\n", sessions.display());
    let rvsd = start_rvsd_on(Pmd::AfPacket, &net, &dir, 1, &ROUTED_PORTS, &rules, &extra);
    let ctx = || diag(&dir, Some(&rvsd));
    let o = net.run(
        "cli",
        &["python3", client.to_str().unwrap(), VIP4, "53", "4"],
    );
    assert!(o.status.success(), "{}{}", text(&o.stderr), ctx());

    let lines = || -> Vec<serde_json::Value> {
        fs::read_to_string(&sessions)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };
    let ended = wait_until(Duration::from_secs(20), || {
        lines().iter().filter(|v| v["event"] == "end").count() >= 4
    });
    assert!(ended, "{:?}\n{}", lines(), ctx());
    let all = lines();
    assert_eq!(all.len(), 8, "{all:?}");
    // The real servers' own record of who sent them what.
    let seen: Vec<(String, String)> = echo_logs
        .iter()
        .zip(RS4)
        .flat_map(|(log, rs)| {
            fs::read_to_string(log)
                .unwrap()
                .lines()
                .filter_map(|l| l.strip_prefix("from "))
                .map(|l| (l.replacen(' ', ":", 1), format!("{rs}:5353")))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(seen.len(), 4, "{seen:?}");
    let today = net.ok("cli", &["date", "-u", "+%Y-%m-%dT"]);
    for i in 0..4 {
        let client = format!("{CLI4}:{}", 41000 + i);
        let of_client: Vec<&serde_json::Value> = all
            .iter()
            .filter(|v| v["client"] == client.as_str())
            .collect();
        assert_eq!(of_client.len(), 2, "{client}: {all:?}");
        assert_eq!(of_client[0]["event"], "start", "{of_client:?}");
        assert_eq!(of_client[1]["event"], "end", "{of_client:?}");
        for v in &of_client {
            assert_eq!(v["proto"], "udp");
            assert_eq!(v["vip"], format!("{VIP4}:53").as_str());
            assert_eq!(v["fwd"], "fullnat");
            assert!(v["time"].as_str().unwrap().starts_with(today.trim()), "{v}");
        }
        let local = of_client[0]["local"].as_str().unwrap().to_string();
        let real = of_client[0]["real"].as_str().unwrap().to_string();
        assert!(local.starts_with(&format!("{GWS4}:")), "{local}");
        assert_eq!(of_client[1]["local"], local.as_str());
        assert_eq!(of_client[1]["real"], real.as_str());
        assert!(
            seen.contains(&(local.clone(), real.clone())),
            "{client} logged via {local} to {real}; the servers saw {seen:?}"
        );
    }
    rvsd.stop();
}

// ---- IP options, IPv6 extension headers and fragments (issue 17) ----

/// A UDP echo server that reports, per datagram, its length, its SHA-256
/// and the IPv4 options / IPv6 hop-by-hop and destination options headers
/// its kernel parsed out of the packet (ancillary data), then echoes it.
/// With "opts" its own replies carry options too: IPv4 NOP NOP NOP EOL, an
/// IPv6 destination options header.
const OPTS_ECHO: &str = r#"
import hashlib, socket, sys
addr, port, name, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
v6 = ":" in addr
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
if v6:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVDSTOPTS, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPOPTS, 1)
    if mode == "opts":
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_DSTOPTS, bytes([0, 0, 1, 4, 0, 0, 0, 0]))
else:
    s.setsockopt(socket.IPPROTO_IP, socket.IP_RECVOPTS, 1)
    if mode == "opts":
        s.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, bytes([1, 1, 1, 0]))
s.bind((addr, port))
print("ready", flush=True)
names = {(socket.IPPROTO_IP, socket.IP_RECVOPTS): "ipopts",
         (socket.IPPROTO_IPV6, socket.IPV6_DSTOPTS): "dstopts",
         (socket.IPPROTO_IPV6, socket.IPV6_HOPOPTS): "hopopts"}
while True:
    data, anc, _, peer = s.recvmsg(65535, 4096)
    got = ["%s=%s" % (names.get((l, t), "%d/%d" % (l, t)), d.hex()) for l, t, d in anc]
    print("from", peer[0], len(data), hashlib.sha256(data).hexdigest(), *got, flush=True)
    s.sendto(data, peer)
"#;

/// Sends one datagram of `size` bytes to addr:port with the named options
/// (none, ipopts, dstopts, hopopts) and checks that the very same bytes
/// come back from addr; prints the answer's length, SHA-256 and the
/// options headers the client's kernel found on it.
const OPTS_CLIENT: &str = r#"
import hashlib, socket, sys
addr, port, size, opt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
v6 = ":" in addr
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
if len(sys.argv) > 5:
    s.bind((sys.argv[5], 0))
pad = bytes([0, 0, 1, 4, 0, 0, 0, 0])
if v6:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVDSTOPTS, 1)
    if opt == "dstopts":
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_DSTOPTS, pad)
    elif opt == "hopopts":
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_HOPOPTS, pad)
else:
    s.setsockopt(socket.IPPROTO_IP, socket.IP_RECVOPTS, 1)
    if opt == "ipopts":
        s.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, bytes([1, 1, 1, 0]))
s.settimeout(2)
msg = bytes((i * 7 + size) % 251 for i in range(size))
for attempt in range(3):
    s.sendto(msg, (addr, port))
    try:
        data, anc, _, peer = s.recvmsg(65535, 4096)
        break
    except socket.timeout:
        continue
else:
    sys.exit("no answer to %d bytes" % size)
if data != msg or peer[0] != addr:
    sys.exit("bad answer: %d bytes from %r" % (len(data), peer))
kinds = sorted({"opts" for l, t, d in anc})
print(len(data), hashlib.sha256(msg).hexdigest(), *kinds, flush=True)
"#;

/// The SHA-256 of the client's datagram of `size` bytes, by Python's
/// hashlib as the scripts compute it.
fn datagram_sha(net: &Netns, size: usize) -> String {
    let code = format!(
        "import hashlib; print(hashlib.sha256(bytes((i * 7 + {size}) % 251 for i in range({size}))).hexdigest())"
    );
    net.ok("cli", &["python3", "-c", &code]).trim().to_string()
}

/// Echo servers on both real servers, both families: port 5353 plain,
/// 5354 answering with options. Returns their logs by (port, address).
fn opts_echoes(net: &Netns, dir: &TempDir, echo: &Path) -> Vec<((u16, &'static str), PathBuf)> {
    let mut logs = Vec::new();
    for (i, rs) in SERVERS.iter().enumerate() {
        for addr in [RS4[i], RS6[i]] {
            for (port, mode) in [(5353u16, "plain"), (5354, "opts")] {
                let log = dir.path(&format!("echo-{rs}-{addr}-{port}.log"));
                net.spawn(
                    rs,
                    &[
                        "python3",
                        "-u",
                        echo.to_str().unwrap(),
                        addr,
                        &port.to_string(),
                        rs,
                        mode,
                    ],
                    &log,
                );
                await_ready(&log, 10, &format!("UDP echo in {rs}"));
                logs.push(((port, addr), log));
            }
        }
    }
    logs
}

/// Routed topology with FULLNAT on VIP:53 and NAT on VIP:54, both
/// families, to the plain echo (5353) on both real servers, and FULLNAT
/// VIP:55 / NAT VIP:56 to the echo that answers with options (5354).
/// The UDP options and fragments set-up: topology, rvsd, the echo
/// servers' logs by (port, address), the client script.
struct OptsRig {
    net: Netns,
    dir: TempDir,
    rvsd: Rvsd,
    logs: Vec<((u16, &'static str), PathBuf)>,
    client: PathBuf,
}

fn udp_opts_setup(test: &str, workers: usize) -> OptsRig {
    let net = routed(test, 2);
    let dir = TempDir::new(test);
    let echo = dir.path("echo.py");
    fs::write(&echo, OPTS_ECHO).unwrap();
    let client = dir.path("client.py");
    fs::write(&client, OPTS_CLIENT).unwrap();
    let logs = opts_echoes(&net, &dir, &echo);
    servers_route_via_rvsd(&net, 2);
    let mut rules = String::new();
    for (vport, rport, fwd) in [
        (53, 5353, "-b"),
        (54, 5353, "-m"),
        (55, 5354, "-b"),
        (56, 5354, "-m"),
    ] {
        let _ = writeln!(
            rules,
            "-A -u {VIP4}:{vport} -s rr\n-A -u [{VIP6}]:{vport} -s rr"
        );
        for i in 0..2 {
            let _ = writeln!(rules, "-a -u {VIP4}:{vport} -r {}:{rport} {fwd}", RS4[i]);
            let _ = writeln!(
                rules,
                "-a -u [{VIP6}]:{vport} -r [{}]:{rport} {fwd}",
                RS6[i]
            );
        }
    }
    let mut extra = String::new();
    if workers > 1 {
        net.addr("cli", "eth0", &format!("{FAR4}/32"));
        net.addr("cli", "eth0", &format!("{FAR6}/128"));
        extra = format!(
            "[[route]]\nprefix = \"198.18.17.0/24\"\nvia = \"{CLI4}\"\n\
             [[route]]\nprefix = \"fd00:10::/64\"\nvia = \"{CLI6}\"\n"
        );
    }
    let rvsd = start_rvsd_on(
        Pmd::Pcap,
        &net,
        &dir,
        workers,
        &ROUTED_PORTS,
        &rules,
        &extra,
    );
    OptsRig {
        net,
        dir,
        rvsd,
        logs,
        client,
    }
}

/// Client addresses in nets whose flows the second of two workers owns
/// (client_owner: the hash of 198.18.17.0/24 and of fd00:10::/64), on the
/// client behind rvsd's client port.
const FAR4: &str = "198.18.17.2";
const FAR6: &str = "fd00:10::2";

impl OptsRig {
    /// One client datagram of `size` bytes with options `opt`, from `src`
    /// or the client's own address: must come back whole; returns the
    /// client's line.
    fn roundtrip(
        &self,
        vip: &str,
        vport: u16,
        size: usize,
        opt: &str,
        src: Option<&str>,
    ) -> String {
        let (port, len) = (vport.to_string(), size.to_string());
        let mut args = vec![
            "python3",
            self.client.to_str().unwrap(),
            vip,
            &port,
            &len,
            opt,
        ];
        args.extend(src);
        let o = self.net.run("cli", &args);
        assert!(
            o.status.success(),
            "{size} bytes ({opt}) via {vip}:{vport}: {}{}\n{}",
            text(&o.stdout),
            text(&o.stderr),
            diag(&self.dir, Some(&self.rvsd))
        );
        text(&o.stdout).trim().to_string()
    }
}

/// The echo servers' lines for datagrams of `size` bytes with `sha`.
fn echo_lines(
    logs: &[((u16, &'static str), PathBuf)],
    port: u16,
    size: usize,
    sha: &str,
) -> Vec<String> {
    let tail = format!(" {size} {sha}");
    logs.iter()
        .filter(|((p, _), _)| *p == port)
        .flat_map(|(_, log)| {
            fs::read_to_string(log)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains(&tail))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Datagrams larger than the 1500-byte MTU, fragmented by the client's
/// kernel, through FULLNAT and NAT, IPv4 and IPv6: the real server's
/// kernel reassembles each (so every fragment reached the same server with
/// consistent addresses, and the first fragment's port and checksum
/// rewrite held for the whole datagram), and the echo, fragmented by the
/// server's kernel, comes back whole to the client through rvsd.
fn udp_fragments_through(test: &str, workers: usize) {
    let _serial = serial();
    let rig = udp_opts_setup(test, workers);
    let (net, dir, logs) = (&rig.net, &rig.dir, &rig.logs);
    let far = workers > 1;
    for size in [3000usize, 9000] {
        let sha = datagram_sha(net, size);
        for (vip, lip, cli) in [(VIP4, GWS4, CLI4), (VIP6, GWS6, CLI6)] {
            let cli = match (far, vip == VIP4) {
                (false, _) => cli,
                (true, true) => FAR4,
                (true, false) => FAR6,
            };
            let bind = far.then_some(cli);
            for (vport, src) in [(53u16, lip), (54, cli)] {
                let line = rig.roundtrip(vip, vport, size, "none", bind);
                assert_eq!(line, format!("{size} {sha}"), "via {vip}:{vport}");
                let seen = echo_lines(logs, 5353, size, &sha);
                assert!(
                    seen.iter().any(|l| l.starts_with(&format!("from {src} "))),
                    "no server saw {size} bytes from {src} via {vip}:{vport}: {seen:?}\n{}",
                    diag(dir, Some(&rig.rvsd))
                );
            }
        }
    }
    let summary = rig.rvsd.stop();
    assert_eq!(common::drops(&summary, "frag_no_first"), 0, "{summary}");
    if far {
        // Worker 0 polls both ports; every fragment went to worker 1.
        assert!(worker_counter(&summary, 0, "redirected") > 0, "{summary}");
    }
}

#[test]
fn udp_datagrams_bigger_than_the_mtu_reach_the_real_server_whole_fullnat_and_nat() {
    udp_fragments_through("frag", 1);
}

/// The same with two workers: a datagram's fragments meet its conn's owner.
#[test]
fn udp_datagrams_bigger_than_the_mtu_reach_the_real_server_whole_two_workers() {
    udp_fragments_through("frag2", 2);
}

/// IPv4 options and IPv6 hop-by-hop and destination options headers on
/// UDP, through FULLNAT and NAT, both ways: the real server's kernel finds
/// the client's options on the datagram (ancillary data), and the client's
/// kernel finds the server's on the answer. A fragmented datagram with
/// options too.
#[test]
fn ip_options_and_ipv6_extension_headers_go_through_fullnat_and_nat_both_ways() {
    let _serial = serial();
    let rig = udp_opts_setup("ipopts", 1);
    let (net, logs) = (&rig.net, &rig.logs);
    for (vip, opts, want) in [
        (VIP4, &["ipopts"][..], "ipopts=01010100"),
        (VIP6, &["dstopts", "hopopts"][..], ""),
    ] {
        for &opt in opts {
            // The kernel hands the whole header over, its next-header byte
            // UDP's 17 (after reassembly, for a fragmented datagram).
            let want = if want.is_empty() {
                format!("{opt}=1100010400000000")
            } else {
                want.to_string()
            };
            for size in [100usize, 4000] {
                let sha = datagram_sha(net, size);
                for vport in [55u16, 56] {
                    let line = rig.roundtrip(vip, vport, size, opt, None);
                    // The answer carried the server's options.
                    assert_eq!(
                        line,
                        format!("{size} {sha} opts"),
                        "{opt} via {vip}:{vport}"
                    );
                    let seen = echo_lines(logs, 5354, size, &sha);
                    assert!(
                        seen.iter().any(|l| l.ends_with(&format!(" {want}"))),
                        "{opt} via {vip}:{vport}: no server saw {want}: {seen:?}"
                    );
                }
            }
        }
    }
    let summary = rig.rvsd.stop();
    for reason in [
        "unsupported",
        "bad_header",
        "ip_ext_header",
        "frag_no_first",
    ] {
        assert_eq!(common::drops(&summary, reason), 0, "{reason}: {summary}");
    }
}

/// A TCP client whose every segment carries IPv4 options (NOP NOP NOP
/// EOL, set with IP_OPTIONS on the socket) fetches / from addr:80 and
/// prints the body.
const OPTS_TCP_CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, bytes([1, 1, 1, 0]))
s.settimeout(5)
s.connect((sys.argv[1], 80))
s.sendall(b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n")
got = b""
while True:
    c = s.recv(4096)
    if not c:
        break
    got += c
print(got.split(b"\r\n\r\n", 1)[1].decode().strip())
"#;

/// tshark on `rs`'s eth0, catching the first SYN to port `port` and
/// printing its IP header length and options as tshark decodes them.
fn syn_sniffer(net: &Netns, dir: &TempDir, rs: &str, port: u16) -> PathBuf {
    require_tool("tshark");
    let log = dir.path(&format!("tshark-{rs}.log"));
    net.spawn(
        rs,
        &[
            "tshark",
            "-l",
            "-n",
            "-i",
            "eth0",
            "-c",
            "1",
            "-f",
            &format!("tcp dst port {port} and tcp[tcpflags] & tcp-syn != 0"),
            "-T",
            "fields",
            "-e",
            "ip.hdr_len",
            "-e",
            "ip.opt.type",
            "-e",
            "ip.dst",
        ],
        &log,
    );
    let ready = wait_until(Duration::from_secs(20), || {
        fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("Capturing on")
    });
    assert!(
        ready,
        "tshark: {}",
        fs::read_to_string(&log).unwrap_or_default()
    );
    log
}

/// What tshark printed for the SYN: header length, option types, dst.
fn sniffed(log: &Path) -> Vec<String> {
    let mut line = String::new();
    wait_until(Duration::from_secs(10), || {
        line = fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .find(|l| l.split('\t').count() == 3)
            .unwrap_or_default()
            .to_string();
        !line.is_empty()
    });
    line.split('\t').map(str::to_string).collect()
}

/// A TCP connection whose SYN (and every other segment) carries IPv4
/// options, through FULLNAT (routed) and DR (flat): the page comes back,
/// and tshark on the real server sees the SYN with its 24-byte header and
/// the three NOPs and the EOL still in it.
#[test]
fn a_tcp_connection_with_ipv4_options_through_fullnat_and_dr() {
    let _serial = serial();
    for (mode, test) in [("-b", "optsfnat"), ("-g", "optsdr")] {
        let dr = mode == "-g";
        let net = if dr { flat(test, 2) } else { routed(test, 2) };
        let dir = TempDir::new(test);
        let client = dir.path("client.py");
        fs::write(&client, OPTS_TCP_CLIENT).unwrap();
        let (rs_addr, bind) = if dr {
            (FLAT4[0], VIP4)
        } else {
            (RS4[0], RS4[0])
        };
        http_server(&net, &dir, "rs1", bind, 80);
        let rules = format!("-A -t {VIP4}:80 -s rr\n-a -t {VIP4}:80 -r {rs_addr}:80 {mode}\n");
        let ports: &[PortConf] = if dr { &FLAT_PORTS } else { &ROUTED_PORTS };
        let rvsd = start_rvsd(&net, &dir, 1, ports, &rules);
        let sniff = syn_sniffer(&net, &dir, "rs1", 80);
        let o = net.run("cli", &["python3", client.to_str().unwrap(), VIP4]);
        assert!(
            o.status.success() && text(&o.stdout).trim() == "rs1",
            "{mode}: {}{}\n{}",
            text(&o.stdout),
            text(&o.stderr),
            diag(&dir, Some(&rvsd))
        );
        let f = sniffed(&sniff);
        let want_dst = if dr { VIP4 } else { RS4[0] };
        assert_eq!(
            f,
            vec!["24", "1,1,1,0", want_dst],
            "{mode}: tshark saw {f:?}"
        );
        let summary = rvsd.stop();
        assert_eq!(common::drops(&summary, "unsupported"), 0, "{summary}");
    }
}

/// DR and TUN (flat topology, rvsd on net_pcap): datagrams larger than
/// the client's MTU, fragmented by its kernel, reach one real server (the
/// echo on the VIP there reassembles them; rr over two servers would split
/// a datagram whose fragments were scheduled one by one) and its answer,
/// sent straight to the client, comes back whole. The client's path MTU to
/// the VIPs is 1400 so that a fragment with TUN's outer header fits the
/// 1500 of the link: rvs does not fragment the tunnel packet.
fn udp_fragments_direct(test: &str, tunnel: bool) {
    let _serial = serial();
    let net = flat(test, 2);
    let dir = TempDir::new(test);
    // The path MTU to the VIPs only: the servers' answers come straight
    // back at the link's 1500.
    net.ok(
        "cli",
        &[
            "ip",
            "route",
            "add",
            &format!("{VIP4}/32"),
            "dev",
            "eth0",
            "mtu",
            "1400",
        ],
    );
    net.ok(
        "cli",
        &[
            "ip",
            "-6",
            "route",
            "add",
            &format!("{VIP6}/128"),
            "dev",
            "eth0",
            "mtu",
            "1400",
        ],
    );
    let echo = dir.path("echo.py");
    fs::write(&echo, OPTS_ECHO).unwrap();
    let client = dir.path("client.py");
    fs::write(&client, OPTS_CLIENT).unwrap();
    let mut logs = Vec::new();
    for rs in SERVERS {
        if tunnel {
            tunnel_endpoint(&net, &dir, rs);
        }
        for vip in [VIP4, VIP6] {
            let log = dir.path(&format!("echo-{rs}-{vip}.log"));
            let args = [
                "python3",
                "-u",
                echo.to_str().unwrap(),
                vip,
                "53",
                rs,
                "plain",
            ];
            net.spawn(rs, &args, &log);
            await_ready(&log, 10, &format!("UDP echo in {rs}"));
            logs.push(((53u16, vip), log));
        }
    }
    let fwd = if tunnel { "-i" } else { "-g" };
    let mut rules = format!("-A -u {VIP4}:53 -s rr\n-A -u [{VIP6}]:53 -s rr\n");
    for i in 0..2 {
        let _ = writeln!(rules, "-a -u {VIP4}:53 -r {}:53 {fwd}", FLAT4[i]);
        let _ = writeln!(rules, "-a -u [{VIP6}]:53 -r [{}]:53 {fwd}", FLAT6[i]);
    }
    let rvsd = start_rvsd_on(Pmd::Pcap, &net, &dir, 1, &FLAT_PORTS, &rules, "");
    let c = client.to_str().unwrap();
    for size in [3000usize, 9000] {
        let sha = datagram_sha(&net, size);
        for (vip, cli) in [(VIP4, CLI4), (VIP6, CLI6)] {
            // Twice: rr sends the second datagram to the other server.
            for _ in 0..2 {
                let o = net.run("cli", &["python3", c, vip, "53", &size.to_string(), "none"]);
                assert!(
                    o.status.success() && text(&o.stdout).trim() == format!("{size} {sha}"),
                    "{fwd} {size} bytes via {vip}: {}{}\n{}",
                    text(&o.stdout),
                    text(&o.stderr),
                    diag(&dir, Some(&rvsd))
                );
            }
            let seen = echo_lines(&logs, 53, size, &sha);
            let from_cli = seen
                .iter()
                .filter(|l| l.starts_with(&format!("from {cli} ")))
                .count();
            assert_eq!(from_cli, 2, "{fwd} {size} bytes via {vip}: {seen:?}");
        }
    }
    let summary = rvsd.stop();
    for reason in ["unsupported", "frag_no_first"] {
        assert_eq!(common::drops(&summary, reason), 0, "{reason}: {summary}");
    }
}

#[test]
fn udp_datagrams_bigger_than_the_mtu_through_dr() {
    udp_fragments_direct("fragdr", false);
}

#[test]
fn udp_datagrams_bigger_than_the_mtu_through_tun() {
    udp_fragments_direct("fragtun", true);
}

/// A SIP endpoint standing in for a proxy behind the VIP: logs the
/// Call-ID (full or compact header) and source of every message and
/// answers 200 OK naming itself. "OUT HOST PORT CALLID" on 127.0.0.1:9999
/// makes it start a call itself: an INVITE from its SIP socket.
const SIP_SERVER: &str = r#"
import select, socket, sys
addr, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((addr, port))
ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ctl.bind(("127.0.0.1", 9999))
print("ready", flush=True)
while True:
    ready, _, _ = select.select([s, ctl], [], [])
    if ctl in ready:
        _, host, hport, cid = ctl.recv(1024).decode().split()
        s.sendto(("INVITE sip:alice@%s SIP/2.0\r\n"
                  "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bKnashds8\r\n"
                  "Max-Forwards: 70\r\n"
                  "To: Alice <sip:alice@atlanta.example.com>\r\n"
                  "From: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
                  "Call-ID: %s\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
                  % (host, addr, port, cid)).encode(), (host, int(hport)))
        print("sent", cid, flush=True)
        continue
    data, peer = s.recvfrom(65535)
    lines = data.split(b"\r\n")
    cid = "-"
    for l in lines[1:]:
        k, _, v = l.partition(b":")
        if k.strip().lower() in (b"call-id", b"i"):
            cid = v.strip().decode()
    print("call", cid, "from", peer[0], peer[1], flush=True)
    reply = b"SIP/2.0 200 OK\r\n" + b"\r\n".join(
        l for l in lines[1:] if l.split(b":")[0].lower() in (b"via", b"call-id", b"i", b"cseq")
    ) + b"\r\nServer: " + name.encode() + b"\r\nContent-Length: 0\r\n\r\n"
    s.sendto(reply, peer)
"#;

/// Sends one SIP OPTIONS from each `SRC:SPORT:CALLID` argument (CALLID
/// "none": a message without one) to VIP:5060; prints the answering
/// server's name, or "none" when no answer comes within a second.
const SIP_CLIENT: &str = r#"
import socket, sys
vip = sys.argv[1]
for arg in sys.argv[2:]:
    src, sport, cid = arg.split(":", 2)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, int(sport)))
    s.settimeout(1)
    hdr = "" if cid == "none" else ("i: %s\r\n" % cid if cid.startswith("c") else "Call-ID: %s\r\n" % cid)
    msg = ("OPTIONS sip:carol@chicago.example.com SIP/2.0\r\n"
           "Via: SIP/2.0/UDP %s:%s;branch=z9hG4bKhjhs8ass877\r\n"
           "Max-Forwards: 70\r\n"
           "To: <sip:carol@chicago.example.com>\r\n"
           "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
           "%sCSeq: 63104 OPTIONS\r\n"
           "Accept: application/sdp\r\n"
           "Content-Length: 0\r\n\r\n") % (src, sport, hdr)
    name = "none"
    for attempt in range(2 if cid != "none" else 1):
        s.sendto(msg.encode(), (vip, 5060))
        try:
            data, peer = s.recvfrom(65535)
        except socket.timeout:
            continue
        for l in data.split(b"\r\n"):
            if l.startswith(b"Server: "):
                name = l[8:].decode()
        break
    print(name, flush=True)
    s.close()
"#;

/// `--pe sip` end to end: a persistent UDP FULLNAT service with netmask
/// 0.0.0.0 sends every message of one call (one Call-ID, long or compact
/// header) to one real server whatever address and port it comes from, a
/// second call to the other server (rr), drops a message without a
/// Call-ID, and lists its templates with their Call-ID.
/// A SIP server on each real server (UDP 5060, answering with its name
/// and logging the Call-IDs it got), and the client script: the client's
/// path and the servers' logs.
fn sip_lab(net: &Netns, dir: &TempDir) -> (PathBuf, Vec<PathBuf>) {
    let server = dir.path("sip_server.py");
    fs::write(&server, SIP_SERVER).unwrap();
    let client = dir.path("sip_client.py");
    fs::write(&client, SIP_CLIENT).unwrap();
    let mut logs = Vec::new();
    for (i, rs) in SERVERS.iter().enumerate() {
        let log = dir.path(&format!("sip-{rs}.log"));
        let argv = [
            "python3",
            "-u",
            server.to_str().unwrap(),
            RS4[i],
            "5060",
            rs,
        ];
        net.spawn(rs, &argv, &log);
        await_ready(&log, 10, &format!("SIP server in {rs}"));
        logs.push(log);
    }
    (client, logs)
}

/// SIP requests to the VIP from the client, one per `SRC:PORT:CALL-ID`
/// argument: the names of the servers that answered, in order.
fn sip_send(net: &Netns, client: &Path, args: &[&str], ctx: &dyn Fn() -> String) -> Vec<String> {
    let mut a = vec!["python3", client.to_str().unwrap(), VIP4];
    a.extend_from_slice(args);
    let o = net.run("cli", &a);
    assert!(
        o.status.success(),
        "{}{}\n{}",
        text(&o.stdout),
        text(&o.stderr),
        ctx()
    );
    text(&o.stdout).lines().map(str::to_string).collect()
}

#[test]
fn sip_persistence_engine_keeps_a_call_on_one_server() {
    let _serial = serial();
    let net = routed("sip", 2);
    let dir = TempDir::new("sip");
    for extra in ["198.18.0.3/24", "198.18.0.4/24"] {
        net.addr("cli", "eth0", extra);
    }
    let (client, logs) = sip_lab(&net, &dir);
    let mut rules = format!("-A -u {VIP4}:5060 -s rr -p 120 -M 0.0.0.0 --pe sip\n");
    for rs in RS4 {
        let _ = writeln!(rules, "-a -u {VIP4}:5060 -r {rs}:5060 -b");
    }
    let rvsd = start_rvsd(&net, &dir, 1, &ROUTED_PORTS, &rules);
    let ctx = || diag(&dir, Some(&rvsd));
    let send = |args: &[&str]| sip_send(&net, &client, args, &ctx);
    const CALL_A: &str = "a84b4c76e66710@pc33.atlanta.example.com";
    const CALL_B: &str = "c3x9-77d1@biloxi.example.com";
    let a = send(&[
        &format!("198.18.0.2:5061:{CALL_A}"),
        &format!("198.18.0.3:5062:{CALL_A}"),
        &format!("198.18.0.4:40000:{CALL_A}"),
        &format!("198.18.0.2:5070:{CALL_A}"),
    ]);
    assert_eq!(a.len(), 4, "{a:?}");
    assert!(
        SERVERS.contains(&a[0].as_str()) && a.iter().all(|n| *n == a[0]),
        "one call, one server: {a:?}\n{}",
        ctx()
    );
    // CALL_B goes in the compact form (the client writes `i:` for it).
    let b = send(&[
        &format!("198.18.0.3:5063:{CALL_B}"),
        &format!("198.18.0.2:5064:{CALL_B}"),
        &format!("198.18.0.4:5065:{CALL_B}"),
    ]);
    assert!(
        SERVERS.contains(&b[0].as_str()) && b.iter().all(|n| *n == b[0]),
        "{b:?}"
    );
    assert_ne!(a[0], b[0], "the second call goes to the other server (rr)");
    // What the servers got: each call's messages, all at one of them.
    for (i, log) in logs.iter().enumerate() {
        let t = fs::read_to_string(log).unwrap();
        let calls: Vec<&str> = t
            .lines()
            .filter_map(|l| l.strip_prefix("call ")?.split(' ').next())
            .collect();
        let want = if a[0] == SERVERS[i] { CALL_A } else { CALL_B };
        let n = if want == CALL_A { 4 } else { 3 };
        assert_eq!(calls, vec![want; n], "{}: {t}", log.display());
    }
    // No Call-ID: dropped, as the kernel drops it.
    assert_eq!(send(&["198.18.0.2:5090:none"]), vec!["none"]);
    let listing = rvsd.ok("-Lnc --persistent-conn");
    for (call, rs) in [(CALL_A, &a[0]), (CALL_B, &b[0])] {
        let i = SERVERS.iter().position(|s| s == rs).unwrap();
        let want = [
            "UDP",
            "0.0.0.0:0",
            &format!("{VIP4}:5060"),
            &format!("{}:5060", RS4[i]),
            "sip",
            call,
        ];
        assert!(
            listing.lines().any(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.len() == 8 && w[0] == want[0] && w[3..] == want[1..]
            }),
            "no template for {call}:\n{listing}"
        );
    }
    assert!(
        !rvsd.ok("-Lnc").contains(CALL_A),
        "pe data only with --persistent-conn"
    );
    let summary = rvsd.stop();
    assert_eq!(common::drops(&summary, "no_call_id"), 1, "{summary}");
}

/// Opens TCP conns to each `ADDR:PORT:N` argument (N of them), prints
/// "open" once all are established and waits for a line on stdin; then
/// resets them all (SO_LINGER 0) and prints "reset".
const CONN_HOLDER: &str = r#"
import socket, struct, sys
socks = []
for arg in sys.argv[1:]:
    addr, port, n = arg.rsplit(":", 2)
    for _ in range(int(n)):
        s = socket.create_connection((addr, int(port)), timeout=5)
        socks.append(s)
print("open", len(socks), flush=True)
sys.stdin.readline()
for s in socks:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
print("reset", flush=True)
"#;

/// `-G`'s row for `vip` and `laddr`: (CONFLICTS, CONNS).
fn get_laddr_row(listing: &str, vip: &str, laddr: &str) -> Option<(u64, u64)> {
    listing.lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        (w.len() == 5 && w[0] == vip && w[2] == laddr)
            .then(|| (w[3].parse().ok(), w[4].parse().ok()))
            .and_then(|(c, n)| Some((c?, n?)))
    })
}

/// DPVS's `-P ... -F PORT` and `-G`: a local address outside every
/// connected subnet, bound by -F to the servers' port, is answered for
/// there and used for the servers behind it; one bound to the client port
/// is never used for them; an unknown port is refused. `-G` counts each
/// service's conns on its address while they are open and none once they
/// are reset, and the candidate ports a second service found taken by the
/// first's conns to the same real server (CONFLICTS). Without a local
/// address on the servers' port a new conn is a no_local_addr drop.
#[test]
fn local_addresses_bind_to_their_port_and_get_laddr_counts_their_conns() {
    let _serial = serial();
    let net = routed("getladdr", 2);
    let dir = TempDir::new("getladdr");
    let log = http_server(&net, &dir, "rs1", RS4[0], 80);
    const LIP: &str = "10.77.0.1";
    const WRONG: &str = "10.88.0.1";
    // The servers reach the local address on their link (ARP for it).
    net.ok(
        "rs1",
        &["ip", "route", "add", "10.77.0.0/24", "dev", "eth0"],
    );
    // Every allocator's cursor at the first port (a debug build's knob;
    // rvsd otherwise starts each service's cursor at a random point, where
    // two services would seldom meet on a port).
    let opts = StartOpts {
        env: &[("RVS_LADDR_SEED", "0")],
        ..StartOpts::default()
    };
    let rvsd = start_rvsd_with(Pmd::AfPacket, &net, &dir, 1, &ROUTED_PORTS, "", "", &opts);
    let ctx = || diag(&dir, Some(&rvsd));
    let (web, alt) = (format!("{VIP4}:80"), format!("{VIP4}:8080"));
    for v in [&web, &alt] {
        rvsd.ok(&format!("-A -t {v} -s rr"));
        rvsd.ok(&format!("-a -t {v} -r {}:80 -b", RS4[0]));
        rvsd.ok(&format!("-P -t {v} -z {LIP} -F servers"));
    }
    rvsd.ok(&format!("-P -t {web} -z {WRONG} -F client"));
    let bad = rvsd.adm(&format!("-P -t {web} -z 10.99.0.1 -F dpdk0"));
    assert_eq!(bad.status.code(), Some(255));
    assert_eq!(
        text(&bad.stderr),
        "No such port \"dpdk0\": -F names one of rvsd's ports (client, servers)\n"
    );

    let holder = dir.path("holder.py");
    fs::write(&holder, CONN_HOLDER).unwrap();
    let mut child = net
        .cmd(
            "cli",
            &[
                "python3",
                holder.to_str().unwrap(),
                &format!("{VIP4}:80:3"),
                &format!("{VIP4}:8080:2"),
            ],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "open 5\n", "{}", ctx());
    // The workers publish once a second; a reset conn lives out TCP's
    // CLOSE timeout (10 s) before it lets its port go.
    let want = |v: &str, l: &str, row: (u64, u64)| {
        wait_until(Duration::from_secs(20), || {
            get_laddr_row(&rvsd.ok(&format!("-G -t {v}")), v, l) == Some(row)
        })
    };
    // Service 80 took ports 1025..=1027 of the address toward rs1:80;
    // service 8080's own allocator starts at 1025 too and finds those
    // three taken before 1028 and 1029 (one worker, cursors from the
    // first port).
    assert!(want(&web, LIP, (0, 3)), "{}\n{}", rvsd.ok("-G"), ctx());
    assert!(want(&web, WRONG, (0, 0)), "{}", rvsd.ok("-G"));
    assert!(want(&alt, LIP, (3, 2)), "{}", rvsd.ok("-G"));
    let listing = rvsd.ok("-Lnc");
    let rows: Vec<&str> = listing
        .lines()
        .filter(|l| l.starts_with("TCP") && l.contains(&format!("{LIP}:")))
        .collect();
    assert_eq!(rows.len(), 5, "{listing}");
    let neigh = net.ok("rs1", &["ip", "neigh", "show", LIP]);
    assert!(neigh.contains("lladdr"), "ARP for {LIP} answered: {neigh}");

    writeln!(child.stdin.as_mut().unwrap()).unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "reset\n");
    let _ = child.wait();
    assert!(want(&web, LIP, (0, 0)), "{}", rvsd.ok("-G"));
    assert!(want(&alt, LIP, (3, 0)), "{}", rvsd.ok("-G"));

    // Only the client-side address left: no local address for rs1.
    rvsd.ok(&format!("-Q -t {web} -z {LIP} -F servers"));
    let o = net.run(
        "cli",
        &[
            "curl",
            "-s",
            "-m",
            "2",
            "-o",
            "/dev/null",
            &format!("http://{VIP4}/"),
        ],
    );
    assert!(!o.status.success(), "reached rs1 without a local address");
    assert_eq!(request_sources(&log).len(), 0, "no request ever completed");
    let summary = rvsd.stop();
    assert!(common::drops(&summary, "no_local_addr") >= 1, "{summary}");
}

/// A SIP user agent on CLI4:5080 waiting for one request: logs its
/// Call-ID and source, answers 200 OK to it, and exits.
const SIP_UAS: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.18.0.2", 5080))
s.settimeout(20)
print("ready", flush=True)
data, peer = s.recvfrom(65535)
cid = [l.split(b":", 1)[1].strip() for l in data.split(b"\r\n") if l.lower().startswith(b"call-id:")][0]
print("got", cid.decode(), "from", peer[0], peer[1], flush=True)
s.sendto(b"SIP/2.0 200 OK\r\nCall-ID: " + cid + b"\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n", peer)
"#;

/// sip's conn_out end to end (NAT): a real server starts a call to a
/// client; the client sees it come from the VIP, its answer reaches that
/// server, and its next request of the call (a new conn, from another
/// port) goes there too although rr would pick the other server.
#[test]
fn sip_calls_a_real_server_starts_are_followed_by_the_client() {
    let _serial = serial();
    let net = routed("sipout", 2);
    let dir = TempDir::new("sipout");
    let (client, logs) = sip_lab(&net, &dir);
    let uas = dir.path("sip_uas.py");
    fs::write(&uas, SIP_UAS).unwrap();
    servers_route_via_rvsd(&net, 2);
    let mut rules = format!("-A -u {VIP4}:5060 -s rr -p 120 --pe sip\n");
    for rs in RS4 {
        let _ = writeln!(rules, "-a -u {VIP4}:5060 -r {rs}:5060 -m");
    }
    let rvsd = start_rvsd(&net, &dir, 1, &ROUTED_PORTS, &rules);
    let ctx = || diag(&dir, Some(&rvsd));
    let send = |args: &[&str]| sip_send(&net, &client, args, &ctx);
    // Two calls from the client: rr gives one to each server, and would
    // give the next new call to the first again.
    let first = send(&[
        &format!("{CLI4}:5061:y1@atlanta.example.com"),
        &format!("{CLI4}:5062:z2@atlanta.example.com"),
    ]);
    assert!(
        first[0] != first[1] && first.iter().all(|n| SERVERS.contains(&n.as_str())),
        "{first:?}"
    );
    let q = SERVERS.iter().position(|s| *s == first[1]).unwrap();

    const CALL: &str = "rs-started-77@biloxi.example.com";
    let uas_log = dir.path("uas.log");
    net.spawn("cli", &["python3", "-u", uas.to_str().unwrap()], &uas_log);
    await_ready(&uas_log, 10, "SIP UAS in the client");
    let trigger = format!(
        "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'OUT {CLI4} 5080 {CALL}', ('127.0.0.1', 9999))"
    );
    net.ok(SERVERS[q], &["python3", "-c", &trigger]);
    let got = format!("got {CALL} from {VIP4} 5060");
    assert!(
        wait_until(Duration::from_secs(10), || fs::read_to_string(&uas_log)
            .unwrap_or_default()
            .contains(&got)),
        "the client saw: {}\n{}",
        fs::read_to_string(&uas_log).unwrap_or_default(),
        ctx()
    );
    let answered = format!("call {CALL} from {CLI4} 5080");
    assert!(
        wait_until(Duration::from_secs(10), || fs::read_to_string(&logs[q])
            .unwrap_or_default()
            .contains(&answered)),
        "{}: {}",
        SERVERS[q],
        fs::read_to_string(&logs[q]).unwrap_or_default()
    );
    // The client's next request of that call, a new conn.
    assert_eq!(
        send(&[&format!("{CLI4}:5063:{CALL}")]),
        vec![SERVERS[q].to_string()],
        "{}",
        ctx()
    );
    let listing = rvsd.ok("-Lnc --persistent-conn");
    assert!(
        listing.lines().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.len() == 8
                && w[3] == format!("{CLI4}:0")
                && w[5] == format!("{}:5060", RS4[q])
                && w[6..] == ["sip", CALL]
        }),
        "{listing}"
    );
    rvsd.stop();
}
