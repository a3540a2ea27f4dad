//! `-i --tun-type gue|gre` end to end: curl in a client namespace reaches
//! HTTP servers in two real-server namespaces through rvsd (af_packet in a
//! gateway namespace), tunnelled in GUE or GRE, and the servers answer the
//! client directly, as TUN real servers do.
//!
//! This kernel has neither fou nor gre, so each real server decapsulates
//! with an independent Python program: it reads its eth0 (AF_PACKET),
//! checks every GUE/GRE frame addressed to it (outer IPv4 header checksum,
//! UDP checksum when present, GUE version/C/hlen/flags/protocol, GRE
//! flags/version/protocol/checksum, inner length), logs what it saw and
//! writes the inner packet into a TUN device, whence the kernel delivers it
//! to the VIP on lo. It also writes the frames to a pcap that tshark then
//! dissects: no errors or warnings, checksums good where present.
//!
//! Flat topology (tests/common/lab.rs's): client, rvsd's port and both
//! servers on one bridge, 198.18.0.0/24 and fd00:18::/64.
mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::lab::{
    await_ready, flat, host, start_rvsd, CLI4, CLI6, FLAT4, FLAT6, FLAT_PORTS, SERVERS, VIP4, VIP6,
};
use common::netns::{text, Netns};
use common::{wait_until, TempDir};

const GUE_PORT: u16 = 6080;

/// One service per encapsulation, told apart by the virtual port: what
/// `-a` gives, what `-Ln --tun-info` shows, and what must reach the real
/// servers (kind, UDP/GRE checksum present). remcsum sends what csum does
/// for a packet forwarded from the wire, as the kernel does.
const CASES: [(u16, &str, &str, &str, bool); 5] = [
    (
        80,
        "--tun-type gue --tun-port 6080",
        "gue:6080:-c",
        "gue",
        false,
    ),
    (
        81,
        "--tun-type gue --tun-port 6080 --tun-csum",
        "gue:6080:+c",
        "gue",
        true,
    ),
    (82, "--tun-type gre", "gre:-c", "gre", false),
    (83, "--tun-type gre --tun-csum", "gre:+c", "gre", true),
    (
        84,
        "--tun-type gue --tun-port 6080 --tun-remcsum",
        "gue:6080:r+c",
        "gue",
        true,
    ),
];

/// HTTP/1.0 servers on every ADDR PORT pair given, answering their name.
const HTTP: &str = r#"
import http.server, socket, sys, threading
name = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (name + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, fmt, *args):
        print("GET", self.client_address[0], self.server.server_address[1], flush=True)
class S4(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET
class S6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
args = sys.argv[2:]
for addr, port in zip(args[::2], args[1::2]):
    cls = S6 if ":" in addr else S4
    s = cls((addr, int(port)), H)
    threading.Thread(target=s.serve_forever, daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"#;

/// The decapsulator: eth0, this server's IPv4 and IPv6 address, the GUE
/// port, the pcap to write. One log line per tunnelled frame:
/// `KIND outer=4|6 csum=0|1 inner=4|6 dport=N`, or `BAD why`.
const DECAP: &str = r#"
import fcntl, os, select, socket, struct, subprocess, sys
ifname, my4, my6, gue_port, pcap_path = sys.argv[1:6]
gue_port = int(gue_port)
my4 = socket.inet_pton(socket.AF_INET, my4)
my6 = socket.inet_pton(socket.AF_INET6, my6)

def fold(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s > 0xffff:
        s = (s & 0xffff) + (s >> 16)
    return s

tun = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(tun, 0x400454CA, struct.pack("16sH", b"decap0", 0x0001 | 0x1000))
subprocess.run(["ip", "link", "set", "decap0", "up"], check=True)
# Sinks, so that the kernel answers no port / protocol unreachable.
sinks = []
u4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u4.bind(("0.0.0.0", gue_port))
u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
u6.setsockopt(socket.IPPROTO_UDP, 102, 1)  # UDP_NO_CHECK6_RX
u6.bind(("::", gue_port))
sinks += [u4, u6, socket.socket(socket.AF_INET, socket.SOCK_RAW, 47),
          socket.socket(socket.AF_INET6, socket.SOCK_RAW, 47)]
pk = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
pk.bind((ifname, 0))
pcap = open(pcap_path, "wb")
pcap.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
pcap.flush()
print("ready", flush=True)

def check(frame):
    """(kind, outer, csum, inner packet) or raises ValueError; None: not ours."""
    et = struct.unpack("!H", frame[12:14])[0]
    ip = frame[14:]
    if et == 0x0800 and ip[0] >> 4 == 4:
        ihl = (ip[0] & 15) * 4
        if ip[16:20] != my4:
            return None
        if fold(ip[:ihl]) != 0xffff:
            raise ValueError("outer IPv4 header checksum")
        total = struct.unpack("!H", ip[2:4])[0]
        proto, src, dst, l4, outer = ip[9], ip[12:16], ip[16:20], ip[ihl:total], 4
        pseudo = src + dst + struct.pack("!BBH", 0, 17, len(l4))
    elif et == 0x86DD and ip[0] >> 4 == 6:
        if ip[24:40] != my6:
            return None
        plen = struct.unpack("!H", ip[4:6])[0]
        proto, src, dst, l4, outer = ip[6], ip[8:24], ip[24:40], ip[40:40 + plen], 6
        pseudo = src + dst + struct.pack("!I3xB", len(l4), 17)
    else:
        return None
    if proto == 17:
        sport, dport, ulen, usum = struct.unpack("!HHHH", l4[:8])
        if dport != gue_port:
            return None
        if ulen != len(l4):
            raise ValueError("UDP length")
        if not 32768 <= sport < 61000:
            raise ValueError("source port %d outside the local port range" % sport)
        if usum != 0 and fold(pseudo + l4) != 0xffff:
            raise ValueError("UDP checksum")
        g = l4[8:]
        if g[0] >> 6 != 0 or g[0] & 0x20 or g[0] & 0x1f or g[2:4] != b"\0\0":
            raise ValueError("GUE header %s" % g[:4].hex())
        inner = g[4:]
        want = {4: 4, 6: 41}.get(inner[0] >> 4)
        if g[1] != want:
            raise ValueError("GUE protocol %d for IPv%d" % (g[1], inner[0] >> 4))
        kind, csum = "gue", int(usum != 0)
    elif proto == 47:
        flags, ptype = struct.unpack("!HH", l4[:4])
        if flags & ~0x8000:
            raise ValueError("GRE flags/version %04x" % flags)
        csum = int(flags == 0x8000)
        if csum:
            if fold(l4) != 0xffff or l4[6:8] != b"\0\0":
                raise ValueError("GRE checksum")
            inner = l4[8:]
        else:
            inner = l4[4:]
        want = {4: 0x0800, 6: 0x86DD}.get(inner[0] >> 4)
        if ptype != want:
            raise ValueError("GRE protocol %04x for IPv%d" % (ptype, inner[0] >> 4))
        kind = "gre"
    else:
        return None
    v = inner[0] >> 4
    n = struct.unpack("!H", inner[2:4])[0] if v == 4 else 40 + struct.unpack("!H", inner[4:6])[0]
    if n != len(inner):
        raise ValueError("inner length %d of %d" % (n, len(inner)))
    return kind, outer, csum, inner

while True:
    ready = select.select(sinks + [pk], [], [])[0]
    for s in ready:
        if s is not pk:
            s.recv(65535)
            continue
        frame, addr = pk.recvfrom(65535)
        if addr[2] in (3, 4):  # PACKET_OTHERHOST, PACKET_OUTGOING
            continue
        try:
            r = check(frame)
        except (ValueError, IndexError, struct.error) as e:
            print("BAD", e, frame.hex(), flush=True)
            continue
        if r is None:
            continue
        kind, outer, csum, inner = r
        v = inner[0] >> 4
        l4 = inner[20:] if v == 4 else inner[40:]
        dport = struct.unpack("!H", l4[2:4])[0]
        pcap.write(struct.pack("<IIII", 0, 0, len(frame), len(frame)) + frame)
        pcap.flush()
        os.write(tun, inner)
        print("%s outer=%d csum=%d inner=%d dport=%d" % (kind, outer, csum, v, dport), flush=True)
"#;

/// Spawns a Python program in `rs` and waits for its "ready".
fn python(net: &Netns, dir: &TempDir, rs: &str, what: &str, src: &str, args: &[&str]) -> PathBuf {
    let script = dir.path(&format!("{what}.py"));
    fs::write(&script, src).unwrap();
    let log = dir.path(&format!("{what}-{rs}.log"));
    let mut argv = vec!["python3", "-u", script.to_str().unwrap()];
    argv.extend_from_slice(args);
    net.spawn(rs, &argv, &log);
    await_ready(&log, 15, &format!("{what} in {rs}"));
    log
}

fn tshark(args: &[&str]) -> String {
    let o = Command::new("tshark")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("tshark not found: scripts/setup.sh installs it (apt-get install tshark)");
    assert!(o.status.success(), "tshark {args:?}: {}", text(&o.stderr));
    text(&o.stdout)
}

#[test]
fn gue_and_gre_tunnels_reach_user_space_decapsulators() {
    let net = flat("tunenc", 2);
    let dir = TempDir::new("tunenc");
    let mut decap_logs = Vec::new();
    let mut pcaps = Vec::new();
    let mut http_logs = Vec::new();
    let port_s = GUE_PORT.to_string();
    for (i, rs) in SERVERS.iter().enumerate() {
        let pcap = dir.path(&format!("tunnel-{rs}.pcap"));
        decap_logs.push(python(
            &net,
            &dir,
            rs,
            "decap",
            DECAP,
            &["eth0", FLAT4[i], FLAT6[i], &port_s, pcap.to_str().unwrap()],
        ));
        pcaps.push(pcap);
        // The inner packets come from the client, whose route is eth0.
        for key in ["all", "default", "decap0"] {
            net.ok(
                rs,
                &["sysctl", "-qw", &format!("net.ipv4.conf.{key}.rp_filter=0")],
            );
        }
        let ports: Vec<String> = CASES.iter().map(|c| c.0.to_string()).collect();
        let mut args = vec![*rs];
        for vip in [VIP4, VIP6] {
            for p in &ports {
                args.push(vip);
                args.push(p);
            }
        }
        http_logs.push(python(&net, &dir, rs, "websrv", HTTP, &args));
    }
    let mut rules = String::new();
    for (port, opts, ..) in CASES {
        for (vip, rss) in [(VIP4, FLAT4), (VIP6, FLAT6)] {
            let _ = writeln!(rules, "-A -t {}:{port} -s rr", host(vip));
            for r in rss {
                let _ = writeln!(
                    rules,
                    "-a -t {}:{port} -r {}:{port} -i -w 1 {opts}",
                    host(vip),
                    host(r)
                );
            }
        }
    }
    let rvsd = start_rvsd(&net, &dir, 1, &FLAT_PORTS, &rules);
    let ctx = || {
        let mut s = format!("---- rvsd log\n{}\n", rvsd.daemon.log());
        for l in decap_logs.iter().chain(&http_logs) {
            let t = fs::read_to_string(l).unwrap_or_default();
            let tail: Vec<&str> = t.lines().rev().take(20).collect();
            let _ = writeln!(s, "---- {}", l.display());
            for l in tail.iter().rev() {
                let _ = writeln!(s, "{l}");
            }
        }
        s
    };

    // What rvsadm lists for each: ipvsadm's TunnelInfo column.
    let listing = text(&rvsd.adm("-Ln --tun-info").stdout);
    for (port, _, info, ..) in CASES {
        for (vip, rss) in [(VIP4, FLAT4), (VIP6, FLAT6)] {
            for r in rss {
                let row = format!(
                    "  -> {:<28} {:<7} {info:<13} {:<6} ",
                    format!("{}:{port}", host(r)),
                    "Tunnel",
                    1
                );
                assert!(listing.contains(&row), "{vip}: {row:?} in\n{listing}");
            }
        }
    }

    // Two requests per service and family: one to each server (rr).
    for (port, ..) in CASES {
        for vip in [VIP4, VIP6] {
            let url = format!("http://{}:{port}/", host(vip));
            let mut bodies = Vec::new();
            for _ in 0..2 {
                let o = net.run(
                    "cli",
                    &["curl", "-sS", "--noproxy", "*", "--max-time", "5", &url],
                );
                assert!(
                    o.status.success(),
                    "curl {url}: {}\n{}",
                    text(&o.stderr),
                    ctx()
                );
                bodies.push(text(&o.stdout).trim().to_string());
            }
            bodies.sort();
            assert_eq!(bodies, ["rs1", "rs2"], "{url}\n{}", ctx());
        }
    }
    for log in &http_logs {
        let t = fs::read_to_string(log).unwrap();
        let srcs: Vec<&str> = t
            .lines()
            .filter(|l| l.starts_with("GET "))
            .map(|l| l.split_whitespace().nth(1).unwrap())
            .collect();
        assert_eq!(srcs.len(), 2 * CASES.len(), "{}: {t}", log.display());
        assert!(srcs.iter().all(|s| *s == CLI4 || *s == CLI6), "{srcs:?}");
    }

    // Every tunnelled frame checked out and carried what its service says.
    let tally = || {
        let mut seen: BTreeMap<(String, u16, u8), usize> = BTreeMap::new();
        for (rs, log) in SERVERS.iter().zip(&decap_logs) {
            let t = fs::read_to_string(log).unwrap();
            for l in t.lines().filter(|l| *l != "ready") {
                assert!(!l.starts_with("BAD"), "{rs}: {l}\n{}", ctx());
                let f: BTreeMap<&str, &str> = l
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|kv| kv.split_once('='))
                    .collect();
                let kind = l.split_whitespace().next().unwrap();
                let dport: u16 = f["dport"].parse().unwrap();
                let outer: u8 = f["outer"].parse().unwrap();
                let case = CASES.iter().find(|c| c.0 == dport).expect(l);
                assert_eq!(kind, case.3, "{rs}: {l}");
                assert_eq!(f["csum"], if case.4 { "1" } else { "0" }, "{rs}: {l}");
                assert_eq!(f["inner"], f["outer"], "{rs}: {l}");
                *seen.entry((rs.to_string(), dport, outer)).or_default() += 1;
            }
        }
        seen
    };
    // SYN, ACK, request, FIN at least, per server, service and outer
    // family; the client's FIN leaves after curl has its answer, so the
    // last frames may still be on their way.
    let frames = |seen: &BTreeMap<(String, u16, u8), usize>, rs: &str, port: u16, outer: u8| {
        seen.get(&(rs.to_string(), port, outer))
            .copied()
            .unwrap_or(0)
    };
    let all_in = |seen: &BTreeMap<(String, u16, u8), usize>| {
        SERVERS.iter().all(|rs| {
            CASES
                .iter()
                .all(|c| [4, 6].iter().all(|&o| frames(seen, rs, c.0, o) >= 4))
        })
    };
    wait_until(Duration::from_secs(10), || all_in(&tally()));
    let seen = tally();
    for rs in SERVERS {
        for (port, ..) in CASES {
            for outer in [4, 6] {
                let n = frames(&seen, rs, port, outer);
                assert!(n >= 4, "{rs} port {port} IPv{outer}: {n} frames\n{seen:?}");
            }
        }
    }

    // tshark's view of the same frames: no errors or warnings, and the
    // checksums it can check are good. One direction only is captured, so
    // no TCP sequence analysis. GUE over IPv6 without a checksum (RFC 6935,
    // what the kernel sends for --tun-nocsum) is the one thing Wireshark
    // calls illegal; those frames are checked apart.
    let v6_nocsum = "ipv6 && udp && udp.checksum == 0";
    for (pcap, log) in pcaps.iter().zip(&decap_logs) {
        let p = pcap.to_str().unwrap();
        let prefs = [
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "tcp.analyze_sequence_numbers:FALSE",
        ];
        let mut a = vec!["-r", p, "-n"];
        a.extend_from_slice(&prefs);
        // The decapsulator writes a frame to its pcap, then its line to
        // the log; a late frame (a retransmitted FIN) may land between the
        // reads, so the two are compared until they agree.
        let logged = || {
            fs::read_to_string(log)
                .unwrap_or_default()
                .lines()
                .filter(|l| *l != "ready")
                .count()
        };
        let (mut count, mut n) = (0, 0);
        let agree = wait_until(Duration::from_secs(10), || {
            n = logged();
            count = tshark(&[&a[..], &["-T", "fields", "-e", "frame.number"]].concat())
                .lines()
                .count();
            count == n
        });
        assert!(
            agree,
            "{p}: tshark reads {count} frames, the decapsulator checked {n}"
        );
        let filter = format!("expert,warn,!({v6_nocsum})");
        let expert = tshark(&[&a[..], &["-q", "-z", &filter]].concat());
        // Rows under "Errors (n)" / "Warns (n)": FREQ GROUP PROTOCOL
        // SUMMARY. Only the inner TCP conversation's own events (group
        // Sequence, e.g. a D-SACK after a retransmission) are let through.
        let mut section = false;
        for l in expert.lines() {
            if l.starts_with("Errors (") || l.starts_with("Warns (") {
                section = true;
                continue;
            }
            if l.starts_with("Notes (") || l.starts_with("Chats (") {
                section = false;
            }
            let c: Vec<&str> = l.split_whitespace().collect();
            if section && c.first().is_some_and(|f| f.parse::<u32>().is_ok()) {
                assert!(c[1] == "Sequence" && c[2] == "TCP", "{p}: {l}\n{expert}");
            }
        }
        let bad = "_ws.malformed || ip.checksum.status == 0 || udp.checksum.status == 0 \
                   || gre.checksum.status == 0 || tcp.checksum.status == 0";
        let bad = tshark(&[&a[..], &["-Y", bad, "-T", "fields", "-e", "frame.number"]].concat());
        assert_eq!(bad.trim(), "", "{p}: malformed or bad checksum");
        // Checksums: UDP good where present, GRE's good where present.
        let fields = tshark(
            &[
                &a[..],
                &[
                    "-T",
                    "fields",
                    "-e",
                    "ip.version",
                    "-e",
                    "udp.checksum.status",
                    "-e",
                    "gre.flags.checksum",
                    "-e",
                    "gre.checksum.status",
                    "-E",
                    "occurrence=f",
                ],
            ]
            .concat(),
        );
        let mut kinds = BTreeMap::new();
        for l in fields.lines() {
            let c: Vec<&str> = l.split('\t').collect();
            // gre.flags.checksum 0/1 and gre.checksum.status; else
            // udp.checksum.status: 1 good, 3 not present, 4 illegal (0
            // over IPv6).
            let k = match (c[0], c[1], c[2], c[3]) {
                (_, _, "0", "") => "gre none",
                (_, _, "1", "1") => "gre good",
                (_, "1", "", "") => "udp good",
                ("4", "3", "", "") => "udp none v4",
                ("6", "4", "", "") => "udp none v6",
                _ => panic!("{p}: unexpected checksum fields {l:?}"),
            };
            *kinds.entry(k).or_insert(0) += 1;
        }
        for k in [
            "udp good",
            "udp none v4",
            "udp none v6",
            "gre none",
            "gre good",
        ] {
            assert!(
                kinds.get(k).copied().unwrap_or(0) > 0,
                "{p}: no {k}: {kinds:?}"
            );
        }
    }

    rvsd.stop();
}
