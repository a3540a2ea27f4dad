//! The egress MTU and the ICMP rate limits end to end, with the real
//! kernel on both sides (tests/common/lab.rs's routed topology, rvsd on
//! net_pcap, which hands rvsd the 9000-byte frames whole; DPDK 22.11's
//! net_af_packet caps a port's MTU at 1500):
//! - a client on a 9000-byte link sends big UDP datagrams through FULLNAT
//!   and DR to servers behind a 1500-byte link: with DF (IP_PMTUDISC_DO /
//!   IPV6_MTU_DISCOVER) rvsd answers fragmentation needed / packet too big
//!   and the client's kernel takes 1500 as the path MTU (`ip route get`
//!   shows it, the next send fails with EMSGSIZE); without DF the
//!   datagram reaches the server whole (its kernel reassembles rvsd's
//!   fragments);
//! - the reverse: a server on a 9000-byte link answering a client behind
//!   1500 through FULLNAT and NAT, with and without DF;
//! - a ping flood gets at most the global budget's bursts and rate of
//!   replies when echo replies are in icmp_ratemask (the kernel's default
//!   mask leaves them out), and every reply with the default mask.
mod common;

use std::fmt::Write as _;
use std::fs;
use std::time::Duration;

use common::lab::{
    await_ready, routed, serial, servers_route_via_rvsd, start_rvsd_on, worker_counter, Pmd,
    PortConf, Rvsd, CLI4, GWS4, ROUTED_PORTS, RS4, RS6, VIP4, VIP6,
};
use common::netns::{text, Netns};
use common::{wait_until, TempDir};

/// The DR services' VIPs: the client's path MTU is per destination, so DR
/// gets addresses of its own, which the real server holds on lo.
const DR4: &str = "198.18.0.101";
const DR6: &str = "fd00:18::101";

fn set_mtu(net: &Netns, role: &str, ifc: &str, mtu: u16) {
    net.ok(
        role,
        &["ip", "link", "set", "dev", ifc, "mtu", &mtu.to_string()],
    );
}

/// Logs every datagram the server gets: "from ADDR LOCALPORT LEN SUM",
/// on the ports given, IPv4 and IPv6, SUM the sum of its bytes.
const SINK: &str = r#"
import select, socket, sys
socks = []
for port in map(int, sys.argv[1:]):
    for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((addr, port))
        socks.append(s)
print("ready", flush=True)
while True:
    ready, _, _ = select.select(socks, [], [])
    for s in ready:
        data, peer = s.recvfrom(65535)
        print("from", peer[0], s.getsockname()[1], len(data), sum(data), flush=True)
"#;

/// Sends one datagram of SIZE bytes to VIP:PORT: "nodf" with path MTU
/// discovery off (IPv4 DF clear); "df" with it on (DF, or IPv6), then
/// waits (deadline 10 s) for the kernel's path MTU to VIP to drop, prints
/// it, and tries SIZE bytes again: "send EMSGSIZE" when the kernel refuses.
const CLIENT: &str = r#"
import errno, socket, sys, time
vip, port, size, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if ":" in vip:
    fam, lvl, disc, mtu_opt = socket.AF_INET6, socket.IPPROTO_IPV6, 23, 24
else:
    fam, lvl, disc, mtu_opt = socket.AF_INET, socket.IPPROTO_IP, 10, 14
DONT, DO = 0, 2
def sock(pmtud):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(lvl, disc, pmtud)
    s.connect((vip, port))
    return s
data = bytes(i % 251 for i in range(size))
print("sum", sum(data), flush=True)
if mode == "nodf":
    sock(DONT).send(data)
    print("sent", flush=True)
    sys.exit(0)
s = sock(DO)
print("mtu before", s.getsockopt(lvl, mtu_opt), flush=True)
s.send(data)
deadline = time.time() + 10
mtu = s.getsockopt(lvl, mtu_opt)
while mtu >= size and time.time() < deadline:
    time.sleep(0.05)
    mtu = sock(DO).getsockopt(lvl, mtu_opt)
print("pmtu", mtu, flush=True)
try:
    sock(DO).send(data)
    print("sent again", flush=True)
except OSError as e:
    print("send", errno.errorcode[e.errno], flush=True)
"#;

fn diag(dir: &TempDir, rvsd: &Rvsd) -> String {
    let mut s = format!("---- rvsd log\n{}\n", rvsd.daemon.log());
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

/// The sink's lines for datagrams of `len` bytes to `port`.
fn sunk(log: &std::path::Path, port: u16, len: usize) -> Vec<String> {
    let tail = format!(" {port} {len} ");
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&tail))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_9000_byte_client_through_fullnat_and_dr_to_1500_byte_servers() {
    let _serial = serial();
    let net = routed("mtu9k", 1);
    let dir = TempDir::new("mtu9k");
    // The client's link (both ends of the veth) takes 9000 bytes; the
    // servers' stays at 1500.
    set_mtu(&net, "cli", "eth0", 9000);
    set_mtu(&net, "gw", "gwc", 9000);
    servers_route_via_rvsd(&net, 1);
    // DR: the real server holds the DR VIPs on lo and keeps quiet about them.
    for key in ["all", "eth0"] {
        for (k, v) in [("arp_ignore", 1), ("arp_announce", 2)] {
            net.ok(
                "rs1",
                &["sysctl", "-qw", &format!("net.ipv4.conf.{key}.{k}={v}")],
            );
        }
    }
    net.ok(
        "rs1",
        &["ip", "addr", "add", &format!("{DR4}/32"), "dev", "lo"],
    );
    net.ok(
        "rs1",
        &["ip", "addr", "add", &format!("{DR6}/128"), "dev", "lo"],
    );
    let sink = dir.path("sink.py");
    fs::write(&sink, SINK).unwrap();
    let log = dir.path("sink-rs1.log");
    net.spawn(
        "rs1",
        &["python3", "-u", sink.to_str().unwrap(), "9001", "9002"],
        &log,
    );
    await_ready(&log, 10, "UDP sink in rs1");
    let rules = format!(
        "-A -u {VIP4}:9001 -s rr\n-a -u {VIP4}:9001 -r {rs4}:9001 -b\n\
         -A -u {DR4}:9002 -s rr\n-a -u {DR4}:9002 -r {rs4}:9002 -g\n\
         -A -u [{VIP6}]:9001 -s rr\n-a -u [{VIP6}]:9001 -r [{rs6}]:9001 -b\n\
         -A -u [{DR6}]:9002 -s rr\n-a -u [{DR6}]:9002 -r [{rs6}]:9002 -g\n",
        rs4 = RS4[0],
        rs6 = RS6[0]
    );
    let ports = [
        PortConf {
            mtu: Some(9000),
            ..ROUTED_PORTS[0]
        },
        PortConf { ..ROUTED_PORTS[1] },
    ];
    let rvsd = start_rvsd_on(Pmd::Pcap, &net, &dir, 1, &ports, &rules, "");
    let client = dir.path("client.py");
    fs::write(&client, CLIENT).unwrap();
    let send = |vip: &str, port: u16, mode: &str| {
        let port = port.to_string();
        let o = net.run(
            "cli",
            &[
                "python3",
                client.to_str().unwrap(),
                vip,
                &port,
                "8000",
                mode,
            ],
        );
        assert!(
            o.status.success(),
            "{vip}:{port} {mode}: {}{}\n{}",
            text(&o.stdout),
            text(&o.stderr),
            diag(&dir, &rvsd)
        );
        text(&o.stdout)
    };
    let want_sum: u64 = (0..8000u64).map(|i| i % 251).sum();
    for (vip, port, fullnat) in [(VIP4, 9001, true), (DR4, 9002, false)] {
        // Without DF: the datagram arrives whole, from the local address
        // (FULLNAT) or the client (DR).
        let out = send(vip, port, "nodf");
        assert!(out.contains(&format!("sum {want_sum}")), "{out}");
        let from = if fullnat { GWS4 } else { CLI4 };
        let want = format!("from {from} {port} 8000 {want_sum}");
        let arrived = wait_until(Duration::from_secs(10), || {
            sunk(&log, port, 8000).contains(&want)
        });
        assert!(arrived, "no {want:?}\n{}", diag(&dir, &rvsd));
    }
    for (vip, port) in [(VIP4, 9001), (DR4, 9002), (VIP6, 9001), (DR6, 9002)] {
        // With DF (and IPv6): the kernel learns 1500 from rvsd's answer.
        let out = send(vip, port, "df");
        assert!(out.contains("mtu before 9000"), "{vip}: {out}");
        assert!(
            out.contains("pmtu 1500\nsend EMSGSIZE"),
            "{vip}: {out}\n{}",
            diag(&dir, &rvsd)
        );
        let family = if vip.contains(':') { "-6" } else { "-4" };
        let route = net.ok("cli", &["ip", family, "route", "get", vip]);
        assert!(route.contains("mtu 1500"), "{vip}: {route}");
        assert!(
            sunk(&log, port, 8000).len() <= 1,
            "{vip}: a DF datagram got through"
        );
    }
    let summary = rvsd.stop();
    assert_eq!(common::drops(&summary, "too_big"), 4, "{summary}");
    assert_eq!(common::drops(&summary, "unsupported"), 0, "{summary}");
    assert_eq!(worker_counter(&summary, 0, "icmp errors"), 4, "{summary}");
    // Two datagrams of 8008 IP data bytes: 5 x 1480 + 608 each.
    assert_eq!(worker_counter(&summary, 0, "frag ok"), 2, "{summary}");
    assert_eq!(worker_counter(&summary, 0, "frag creates"), 12, "{summary}");
}

/// Answers "nodf" with an 8000-byte datagram without DF; answers "df"
/// with one sent with DF, waits (deadline 10 s) for the path MTU back to
/// the peer to drop, and sends "pmtu N".
const REPLIER: &str = r#"
import socket, sys, time
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", port))
print("ready", flush=True)
data = bytes(i % 251 for i in range(8000))
while True:
    msg, peer = s.recvfrom(2048)
    if msg == b"df":
        s.setsockopt(socket.IPPROTO_IP, 10, 2)
        s.sendto(data, peer)
        def path_mtu():
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            probe.connect(peer)
            return probe.getsockopt(socket.IPPROTO_IP, 14)
        deadline = time.time() + 10
        mtu = path_mtu()
        while mtu >= len(data) and time.time() < deadline:
            time.sleep(0.05)
            mtu = path_mtu()
        print("pmtu", peer[0], mtu, flush=True)
        s.sendto(b"pmtu %d" % mtu, peer)
    elif msg == b"nodf":
        s.setsockopt(socket.IPPROTO_IP, 10, 0)
        s.sendto(data, peer)
"#;

/// Asks VIP:PORT for "nodf" then "df" and prints what comes back. In
/// that order: once the server's kernel has learned the smaller path MTU
/// it fragments even the datagrams it sends without DF itself.
const ASKER: &str = r#"
import socket, sys
vip, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(15)
s.connect((vip, port))
s.send(b"nodf")
got = s.recv(65535)
print("got", len(got), sum(got), flush=True)
s.send(b"df")
print(s.recv(65535).decode(), flush=True)
"#;

#[test]
fn a_9000_byte_server_answering_a_1500_byte_client_through_fullnat_and_nat() {
    let _serial = serial();
    let net = routed("mtu9kr", 1);
    let dir = TempDir::new("mtu9kr");
    // The servers' side takes 9000 bytes: rvsd's port, the bridge's ports
    // and the server's link.
    set_mtu(&net, "gw", "gws", 9000);
    set_mtu(&net, "sw", "p0", 9000);
    set_mtu(&net, "sw", "p1", 9000);
    set_mtu(&net, "rs1", "eth0", 9000);
    servers_route_via_rvsd(&net, 1);
    let replier = dir.path("replier.py");
    fs::write(&replier, REPLIER).unwrap();
    for port in ["9003", "9004"] {
        let log = dir.path(&format!("replier-{port}.log"));
        net.spawn(
            "rs1",
            &["python3", "-u", replier.to_str().unwrap(), port],
            &log,
        );
        await_ready(&log, 10, "UDP replier in rs1");
    }
    let rs = RS4[0];
    let rules = format!(
        "-A -u {VIP4}:9003 -s rr\n-a -u {VIP4}:9003 -r {rs}:9003 -b\n\
         -A -u {VIP4}:9004 -s rr\n-a -u {VIP4}:9004 -r {rs}:9004 -m\n"
    );
    let ports = [
        PortConf { ..ROUTED_PORTS[0] },
        PortConf {
            mtu: Some(9000),
            ..ROUTED_PORTS[1]
        },
    ];
    let rvsd = start_rvsd_on(Pmd::Pcap, &net, &dir, 1, &ports, &rules, "");
    let asker = dir.path("asker.py");
    fs::write(&asker, ASKER).unwrap();
    let want_sum: u64 = (0..8000u64).map(|i| i % 251).sum();
    for (port, peer) in [(9003, GWS4), (9004, CLI4)] {
        let o = net.run(
            "cli",
            &["python3", asker.to_str().unwrap(), VIP4, &port.to_string()],
        );
        let log = fs::read_to_string(dir.path(&format!("replier-{port}.log"))).unwrap_or_default();
        assert!(
            o.status.success(),
            "{port}: {}{}\n{}",
            text(&o.stdout),
            text(&o.stderr),
            diag(&dir, &rvsd)
        );
        // The answer without DF came whole; the one with DF never reached
        // the client: the server learned 1500 towards its peer (the local
        // address, or the client for NAT) from rvsd.
        assert_eq!(
            text(&o.stdout),
            format!("got 8000 {want_sum}\npmtu 1500\n"),
            "{port}: {log}"
        );
        assert!(log.contains(&format!("pmtu {peer} 1500")), "{port}: {log}");
    }
    let summary = rvsd.stop();
    assert_eq!(common::drops(&summary, "too_big"), 2, "{summary}");
    assert_eq!(worker_counter(&summary, 0, "frag ok"), 2, "{summary}");
    assert_eq!(worker_counter(&summary, 0, "frag creates"), 12, "{summary}");
}

/// Sends COUNT echo requests to ADDR as fast as it can (or one every
/// GAP seconds), reading replies as they come and for 0.5 s after the
/// last request; prints "sent N replies M span S": S the time from the
/// first reply to the last, as the kernel stamped their arrival
/// (SO_TIMESTAMPNS), whatever the scheduler did to this process.
const FLOOD: &str = r#"
import os, socket, struct, sys, time
addr, count, gap = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.setsockopt(socket.SOL_SOCKET, 35, 1)  # SO_TIMESTAMPNS
s.setblocking(False)
ident = os.getpid() & 0xffff
def csum(b):
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16:
        t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff
replies, stamps = set(), []
def drain():
    while True:
        try:
            pkt, anc, _, _ = s.recvmsg(2048, 64)
        except BlockingIOError:
            return
        hl = (pkt[0] & 15) * 4
        t, _, _, i, seq = struct.unpack("!BBHHH", pkt[hl:hl + 8])
        if t == 0 and i == ident and seq not in replies:
            replies.add(seq)
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == 35:
                    sec, nsec = struct.unpack("qq", data[:16])
                    stamps.append(sec + nsec / 1e9)
for seq in range(count):
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"rvs-flood-0123456789abcdef"
    body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
    while True:
        try:
            s.sendto(body, (addr, 0))
            break
        except BlockingIOError:
            drain()
    drain()
    if gap:
        time.sleep(gap)
end = time.time() + 0.5
while time.time() < end:
    drain()
    time.sleep(0.01)
span = max(stamps) - min(stamps) if stamps else 0.0
print("sent", count, "replies", len(replies), "span", round(span, 4), flush=True)
"#;

/// (requests sent, replies, seconds from the first reply to the last).
fn flood(net: &Netns, script: &str, count: usize, gap: &str) -> (usize, usize, f64) {
    let o = net.run(
        "cli",
        &["python3", script, "198.18.0.1", &count.to_string(), gap],
    );
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}{}", text(&o.stderr));
    let w: Vec<&str> = out.split_whitespace().collect();
    (
        w[1].parse().unwrap(),
        w[3].parse().unwrap(),
        w[5].parse().unwrap(),
    )
}

#[test]
fn a_ping_flood_gets_the_budgets_burst_and_rate_of_replies() {
    let _serial = serial();
    let dir = TempDir::new("icmpflood");
    let script = dir.path("flood.py");
    fs::write(&script, FLOOD).unwrap();
    let script = script.to_str().unwrap();

    // Echo replies in the mask (6168 + 1), no per-destination limit: the
    // global budget alone, 50 at once and 1000 a second.
    let net = routed("icmpflood", 1);
    let extra = "[icmp]\nicmp_ratemask = 6169\nicmp_ratelimit = 0\n";
    let rvsd = start_rvsd_on(Pmd::AfPacket, &net, &dir, 1, &ROUTED_PORTS, "", extra);
    let (sent, replies, span) = flood(&net, script, 3000, "0");
    let summary = rvsd.stop();
    let limited = worker_counter(&summary, 0, "icmp limited global");
    let answered = worker_counter(&summary, 0, "echo replies");
    eprintln!("flood: {sent} requests, {replies} replies over {span} s, {limited} held back");
    // Over a window of `span` the budget gives its burst (50), refilled
    // when empty (20 ms or more since the last refill) by 1000 a second of
    // that time, at most a second's worth: after rvsd's quiet start the
    // first refill is a whole burst again, as in the kernel. Each reply
    // takes 0, 1 or 2 credits, 1 on average: a tenth more, and a refill's
    // worth, of slack.
    let bound = ((2.0 * 50.0 + 1000.0 * (span + 0.02)) * 1.1) as usize + 10;
    assert!(replies <= bound, "{replies} replies > {bound}\n{summary}");
    assert!(replies >= 20, "{replies} replies\n{summary}");
    assert!(limited > 0, "{summary}");
    assert_eq!(worker_counter(&summary, 0, "icmp limited host"), 0);
    // rvsd's count holds the flood's replies and the start-up check's
    // ping (one, or a few if the first went unanswered).
    assert!(
        (replies as u64..=replies as u64 + 3).contains(&answered),
        "{replies} replies\n{summary}"
    );
    assert!(answered + limited <= sent as u64 + 3, "{summary}");
    drop(net);

    // The kernel's default mask: echo replies are not limited.
    let net = routed("icmpdflt", 1);
    let rvsd = start_rvsd_on(Pmd::AfPacket, &net, &dir, 1, &ROUTED_PORTS, "", "");
    let (sent, replies, _) = flood(&net, script, 300, "0.001");
    let summary = rvsd.stop();
    assert_eq!(replies, sent, "{summary}");
    assert_eq!(worker_counter(&summary, 0, "icmp limited global"), 0);
}
