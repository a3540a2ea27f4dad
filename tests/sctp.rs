//! SCTP end to end through rvsd (real EAL, net_af_packet in namespaces).
//! This kernel has no sctp module, so both ends are tests/sctp_peer.py on
//! raw IP sockets: it builds every chunk and computes and checks every
//! CRC32c itself. A client walks an association through a FULLNAT VIP and
//! a NAT VIP (with port mapping), IPv4 and IPv6, step by step, while the
//! test reads the conn's state from `rvsadm -Lnc`; the server logs what
//! reached it, which shows the mode's source address and port and a CRC
//! that verifies.
//!
//! A DR VIP, where the real server answers the client itself, shows the
//! states rvsd follows from the client's side alone.
//!
//! Topologies (tests/common/lab.rs's, one real server): routed, client
//! 198.18.0.2 | rvsd 198.18.0.1 "client", 198.19.0.1 "servers" | bridge |
//! rs1 198.19.0.11, default route via rvsd (NAT needs it); flat, client,
//! rvsd's one port and rs1 198.18.0.11 (the VIPs on lo) on one bridge.
//! The tests take turns (a lock), as rvsd's workers poll.
mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::Duration;

use common::lab::{
    self, await_ready, flat, host, routed, serial, servers_route_via_rvsd, start_rvsd, Rvsd, CLI4,
    CLI6, FLAT_PORTS, GWS4, GWS6, ROUTED_PORTS,
};
use common::netns::Netns;
use common::{wait_until, TempDir};

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sctp_peer.py");

/// The routed topology's one real server.
const RS4: &str = lab::RS4[0];
const RS6: &str = lab::RS6[0];
/// FULLNAT VIPs (port 3868 to 3868) and NAT VIPs (3868 to 3869).
const FNAT4: &str = "198.18.0.100";
const FNAT6: &str = "fd00:18::100";
const NAT4: &str = "198.18.0.101";
const NAT6: &str = "fd00:18::101";

/// The states after init, cookie, data, shutdown and complete when rvsd
/// sees both directions (the kernel's INPUT and OUTPUT tables): INIT in
/// and INIT ACK out, COOKIE ECHO in and COOKIE ACK out, DATA and SACK,
/// SHUTDOWN in and SHUTDOWN ACK out, SHUTDOWN COMPLETE in.
const BOTH_WAYS: [&str; 5] = [
    "C-SENT",
    "ESTABLISHED",
    "ESTABLISHED",
    "S-ACK-SENT",
    "CLOSED",
];
/// The same when rvsd sees only the client (DR; INPUT_ONLY table).
const CLIENT_SIDE: [&str; 5] = [
    "INIT1",
    "ESTABLISHED",
    "ESTABLISHED",
    "S-RECEIVED",
    "CLOSED",
];

/// The routed topology with rs1 alone, whose default route is rvsd (NAT
/// needs it).
fn topology(test: &str) -> Netns {
    let n = routed(test, 1);
    servers_route_via_rvsd(&n, 1);
    n
}

/// tests/sctp_peer.py as the server in rs1 on `ports` (comma-separated);
/// its log, once it says it is ready.
fn peer_server(net: &Netns, dir: &TempDir, ports: &str) -> PathBuf {
    let log = dir.path("sctp-server.log");
    net.spawn("rs1", &["python3", "-u", PEER, "server", ports], &log);
    await_ready(&log, 10, "SCTP server in rs1");
    log
}

/// The `-Lnc` row of the conn from `client:cport`, split into columns:
/// pro, expire, state, source, virtual, [local,] destination.
fn conn_row(rvsd: &Rvsd, client: &str, cport: u16) -> Option<Vec<String>> {
    let src = format!("{}:{cport}", host(client));
    rvsd.ok("-Lnc").lines().find_map(|l| {
        let w: Vec<String> = l.split_whitespace().map(str::to_string).collect();
        (w.len() >= 6 && w[0] == "SCTP" && w[3] == src).then_some(w)
    })
}

/// A JSON string field of one of the peer's lines, read without a JSON
/// library: the peer writes `"key": "value"` or `"key": value`.
fn field(line: &str, key: &str) -> Option<String> {
    let at = line.find(&format!("\"{key}\": "))? + key.len() + 4;
    let rest = &line[at..];
    let v = if let Some(r) = rest.strip_prefix('"') {
        &r[..r.find('"')?]
    } else if rest.starts_with('[') {
        &rest[..=rest.find(']')?]
    } else {
        rest.split([',', '}']).next()?
    };
    Some(v.trim().to_string())
}

struct Client {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Client {
    fn start(net: &Netns, vip: &str, cport: u16) -> Client {
        let mut child = net
            .cmd(
                "cli",
                &[
                    "python3",
                    "-u",
                    PEER,
                    "client",
                    vip,
                    "3868",
                    &cport.to_string(),
                ],
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SCTP client");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut l = String::new();
        stdout.read_line(&mut l).unwrap();
        assert_eq!(l.trim(), "\"ready\"");
        Client {
            child,
            stdin,
            stdout,
        }
    }

    /// Sends one step and returns the peer's JSON line about it.
    fn step(&mut self, step: &str) -> String {
        writeln!(self.stdin, "{step}").unwrap();
        self.stdin.flush().unwrap();
        let mut l = String::new();
        self.stdout.read_line(&mut l).unwrap();
        l
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the server logged about packets from `src`: (sport, dport,
/// chunk types, crc_ok) per packet.
fn server_saw(log: &Path, src: &str) -> Vec<(u16, u16, String, bool)> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| field(l, "src").as_deref() == Some(src))
        .map(|l| {
            (
                field(l, "sport").unwrap().parse().unwrap(),
                field(l, "dport").unwrap().parse().unwrap(),
                field(l, "chunks").unwrap(),
                field(l, "crc_ok").as_deref() == Some("true"),
            )
        })
        .collect()
}

/// Walks one association through `vip` and checks, after every step, the
/// answer the client got (from VIP:3868, CRC32c good) and the conn's state
/// in `-Lnc` (`states`, one per step). Returns the conn's last row.
fn association(
    net: &Netns,
    rvsd: &Rvsd,
    vip: &str,
    client: &str,
    cport: u16,
    states: [&str; 5],
) -> Vec<String> {
    let mut c = Client::start(net, vip, cport);
    let mut last = Vec::new();
    let steps = [
        ("init", Some("[2]")),
        ("cookie", Some("[11]")),
        ("data", Some("[3]")),
        ("shutdown", Some("[8]")),
        ("complete", None),
    ];
    for ((step, answer), state) in steps.into_iter().zip(states) {
        let got = c.step(step);
        if let Some(chunks) = answer {
            assert_eq!(
                field(&got, "chunks").as_deref(),
                Some(chunks),
                "{vip} {step}: {got}\n{}",
                rvsd.daemon.log()
            );
            assert_eq!(field(&got, "crc_ok").as_deref(), Some("true"), "{got}");
            assert_eq!(field(&got, "src").as_deref(), Some(vip), "{got}");
            assert_eq!(field(&got, "sport").as_deref(), Some("3868"), "{got}");
            assert_eq!(field(&got, "vtag_ok").as_deref(), Some("true"), "{got}");
        }
        let mut row = None;
        let reached = wait_until(Duration::from_secs(5), || {
            row = conn_row(rvsd, client, cport);
            row.as_ref().is_some_and(|r| r[2] == state)
        });
        assert!(
            reached,
            "{vip} after {step}: want {state}, row {row:?}\n{}",
            rvsd.ok("-Lnc")
        );
        last = row.unwrap();
    }
    last
}

#[test]
fn sctp_associations_through_fullnat_and_nat_ipv4_and_ipv6() {
    let _turn = serial();
    let test = "sctp_assoc";
    let net = topology(test);
    let dir = TempDir::new(test);
    let log = peer_server(&net, &dir, "3868,3869");
    let rules = format!(
        "-A --sctp-service {FNAT4}:3868 -s rr\n-a --sctp-service {FNAT4}:3868 -r {RS4}:3868 -b\n\
         -A --sctp-service [{FNAT6}]:3868 -s rr\n-a --sctp-service [{FNAT6}]:3868 -r [{RS6}]:3868 -b\n\
         -A --sctp-service {NAT4}:3868 -s rr\n-a --sctp-service {NAT4}:3868 -r {RS4}:3869 -m\n\
         -A --sctp-service [{NAT6}]:3868 -s rr\n-a --sctp-service [{NAT6}]:3868 -r [{RS6}]:3869 -m\n"
    );
    let rvsd = start_rvsd(&net, &dir, 1, &ROUTED_PORTS, &rules);

    for (vip, client, gws, rs, cport) in [
        (FNAT4, CLI4, GWS4, RS4, 40001u16),
        (FNAT6, CLI6, GWS6, RS6, 40002),
    ] {
        let row = association(&net, &rvsd, vip, client, cport, BOTH_WAYS);
        // pro expire state source virtual local destination
        assert_eq!(row.len(), 7, "{row:?}");
        assert_eq!(row[4], format!("{}:3868", host(vip)));
        assert_eq!(row[6], format!("{}:3868", host(rs)));
        let local = format!("{}:", host(gws));
        assert!(row[5].starts_with(&local), "{row:?}");
        let lport: u16 = row[5][local.len()..].parse().unwrap();
        // FULLNAT: the server saw rvsd's local address and port, never the
        // client's, with every CRC32c good after the port rewrite.
        let saw = server_saw(&log, gws);
        let want: Vec<(u16, u16, String, bool)> = ["[1]", "[10]", "[0]", "[7]", "[14]"]
            .iter()
            .map(|c| (lport, 3868, c.to_string(), true))
            .collect();
        assert_eq!(saw, want, "{}", fs::read_to_string(&log).unwrap());
        assert!(server_saw(&log, client).is_empty());
    }

    for (vip, client, rs, cport) in [(NAT4, CLI4, RS4, 40003u16), (NAT6, CLI6, RS6, 40004)] {
        let row = association(&net, &rvsd, vip, client, cport, BOTH_WAYS);
        assert_eq!(row.len(), 6, "{row:?}");
        assert_eq!(row[5], format!("{}:3869", host(rs)));
        // NAT: the client's own address and port, the mapped port 3869.
        let saw: Vec<_> = server_saw(&log, client)
            .into_iter()
            .filter(|s| s.0 == cport)
            .collect();
        let want: Vec<(u16, u16, String, bool)> = ["[1]", "[10]", "[0]", "[7]", "[14]"]
            .iter()
            .map(|c| (cport, 3869, c.to_string(), true))
            .collect();
        assert_eq!(saw, want, "{}", fs::read_to_string(&log).unwrap());
    }

    // Anything but an INIT opens nothing (counted no_conn); the packet
    // never reaches the server.
    let mut c = Client::start(&net, FNAT4, 40009);
    let got = c.step("data");
    assert_eq!(field(&got, "chunks").as_deref(), Some("null"), "{got}");
    assert!(conn_row(&rvsd, CLI4, 40009).is_none());
    drop(c);
    let summary = rvsd.stop();
    assert!(common::drops(&summary, "no_conn") >= 1, "{summary}");
    assert_eq!(common::drops(&summary, "bad_header"), 0, "{summary}");
}

/// The flat topology's real server and DR VIPs (held on its lo).
const FLAT_RS4: &str = lab::FLAT4[0];
const FLAT_RS6: &str = lab::FLAT6[0];
const DR4: &str = lab::VIP4;
const DR6: &str = lab::VIP6;

#[test]
fn sctp_associations_through_dr_ipv4_and_ipv6() {
    let _turn = serial();
    let test = "sctp_dr";
    let net = flat(test, 1);
    let dir = TempDir::new(test);
    let log = peer_server(&net, &dir, "3868");
    let rules = format!(
        "-A --sctp-service {DR4}:3868 -s rr\n-a --sctp-service {DR4}:3868 -r {FLAT_RS4}:3868 -g\n\
         -A --sctp-service [{DR6}]:3868 -s rr\n-a --sctp-service [{DR6}]:3868 -r [{FLAT_RS6}]:3868 -g\n"
    );
    let rvsd = start_rvsd(&net, &dir, 1, &FLAT_PORTS, &rules);
    for (vip, client, rs, cport) in [
        (DR4, CLI4, FLAT_RS4, 40011u16),
        (DR6, CLI6, FLAT_RS6, 40012),
    ] {
        // The answers come from the real server straight to the client:
        // rvsd follows the association from the client's side alone.
        let row = association(&net, &rvsd, vip, client, cport, CLIENT_SIDE);
        assert_eq!(row.len(), 6, "{row:?}");
        assert_eq!(row[5], format!("{}:3868", host(rs)));
        // DR changes nothing the server can see: the client's address and
        // port, to the VIP, its CRC32c as the client computed it.
        let text = fs::read_to_string(&log).unwrap();
        let to_vip = format!("\"dst\": \"{vip}\"");
        let saw: Vec<_> = server_saw(&log, client)
            .into_iter()
            .filter(|s| s.0 == cport)
            .collect();
        let want: Vec<(u16, u16, String, bool)> = ["[1]", "[10]", "[0]", "[7]", "[14]"]
            .iter()
            .map(|c| (cport, 3868, c.to_string(), true))
            .collect();
        assert_eq!(saw, want, "{text}");
        assert_eq!(
            text.lines()
                .filter(|l| l.contains(&format!("\"sport\": {cport},")))
                .filter(|l| l.contains(&to_vip))
                .count(),
            5,
            "{text}"
        );
    }
    let summary = rvsd.stop();
    assert_eq!(common::drops(&summary, "bad_header"), 0, "{summary}");
}

#[test]
fn sctp_through_fullnat_with_two_workers() {
    let _turn = serial();
    let test = "sctp_fnat2";
    let net = topology(test);
    let dir = TempDir::new(test);
    let log = peer_server(&net, &dir, "3868");
    let rules = format!(
        "-A --sctp-service {FNAT4}:3868 -s rr\n-a --sctp-service {FNAT4}:3868 -r {RS4}:3868 -b\n"
    );
    let rvsd = start_rvsd(&net, &dir, 2, &ROUTED_PORTS, &rules);
    // Several client ports: the associations spread over both workers'
    // queues, and each reply must find the worker that owns its local port.
    let mut lports = Vec::new();
    for cport in 40021..40025u16 {
        let row = association(&net, &rvsd, FNAT4, CLI4, cport, BOTH_WAYS);
        let local = format!("{GWS4}:");
        assert!(row[5].starts_with(&local), "{row:?}");
        let lport: u16 = row[5][local.len()..].parse().unwrap();
        let saw: Vec<_> = server_saw(&log, GWS4)
            .into_iter()
            .filter(|s| s.0 == lport)
            .collect();
        assert_eq!(saw.len(), 5, "{}", fs::read_to_string(&log).unwrap());
        assert!(saw.iter().all(|s| s.3 && s.1 == 3868), "{saw:?}");
        lports.push(lport);
    }
    lports.sort_unstable();
    lports.dedup();
    assert_eq!(lports.len(), 4, "one local port per association");
    let summary = &rvsd.stop();
    common::lab::assert_ring_path(summary);
}
