//! The Prometheus exporter from the outside: scrapes over plain TCP,
//! Debian's `promtool check metrics` on what comes back, rvsd's counters
//! against the frames a test fed it through a net_pcap port, and a real
//! Prometheus server scraping rvsd with conf/prometheus.yml. rvsd runs a
//! FULLNAT service with two real servers and the frames include two conns
//! through it, so the per-service and per-real series are there and move.
//! node_exporter's `node_ipvs_*` series are checked against the same
//! frames, and every query of conf/grafana/rvs-dashboard.json against the
//! series a live rvsd exports (with a failing health check and a sorry
//! server in use, so the health series are there too), through promtool,
//! and on the real Prometheus, where each must find series.
//!
//! promtool and prometheus come with Debian's `prometheus` package, which
//! scripts/setup.sh installs; without them these tests fail, they do not skip.
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use common::{wait_until, Daemon, TempDir};
use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use pcap_file::pcap::{PcapPacket, PcapWriter};
use rvs::counters::WorkerCounters;
use rvs::ipvs::{DestConfig, FwdMethod, Protocol, ServiceConfig, ServiceKey, ServiceTable};
use rvs::metrics::{MetricsServer, MetricsSources, WorkerSource};

const OUR_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
const CLIENT_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
const OUR_V4: [u8; 4] = [198, 18, 0, 1];
const CLIENT_V4: [u8; 4] = [198, 18, 0, 2];
const RS1_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];
const RS2_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x12];
const RS1: [u8; 4] = [198, 19, 0, 11];
const RS2: [u8; 4] = [198, 19, 0, 12];
/// rvsd's address on the real servers' subnet.
const SERVER_SIDE: [u8; 4] = [198, 19, 0, 1];
const VIP: [u8; 4] = [198, 18, 0, 100];
/// The local address of the service's pool; rvsd started with
/// RVS_LADDR_SEED=0 hands out its ports from 1025 up, one per conn, as
/// tests/dpdk_forwarding.rs relies on too.
const LIP: [u8; 4] = [198, 19, 0, 50];
const LPORT: u16 = 1025;
/// As in the kernel, `-a` puts a real server at the head of the list, so
/// rr's first pick is the one added last: RS1, then RS2.
const RULES: &str = "-A -t 198.18.0.100:80 -s rr\n\
                     -a -t 198.18.0.100:80 -r 198.19.0.12:8080 -b\n\
                     -a -t 198.18.0.100:80 -r 198.19.0.11:8080 -b\n\
                     -P -t 198.18.0.100:80 -z 198.19.0.50 -F pcap\n";
/// The service's labels as the exporter writes them.
const SVC: &str = r#"protocol="tcp",vip="198.18.0.100",port="80""#;
/// A firewall-mark service for port 8000 of another address, NAT to RS3.
const FWM_RULES: &str = "--mark-add 198.18.0.102 tcp 8000 10\n\
                         -A -f 10 -s rr\n\
                         -a -f 10 -r 198.19.0.31:0 -m\n";
const FWM_VIP: [u8; 4] = [198, 18, 0, 102];
const RS3_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x13];
const RS3: [u8; 4] = [198, 19, 0, 31];
/// A service whose one real server fails its check at once (an external
/// check of `false`), so its sorry server stands in: the health series
/// exist and have moved.
const HEALTH_RULES: &str = "-A -t 198.18.0.101:80 -s rr\n\
                            -a -t 198.18.0.101:80 -r 198.19.0.21:80 -m\n\
                            --check-set -t 198.18.0.101:80 checktype=external checkcommand=false checkinterval=0.1 checktimeout=2 fall=1 quiescent=no\n\
                            --sorry-set -t 198.18.0.101:80 -r 198.19.0.13:80 -m\n";
const HEALTH_SVC: &str = r#"protocol="tcp",vip="198.18.0.101",port="80""#;

/// A tool from Debian's prometheus package, or a failure that says how to
/// get it.
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} not found in PATH: install Debian's prometheus package (scripts/setup.sh does: apt-get install prometheus)"
            )
        })
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

struct Reply {
    status: String,
    headers: String,
    body: String,
}

/// One HTTP/1.0 GET over a plain TcpStream (HTTP/1.0, so the answer is
/// never chunked and ends when the server closes).
fn http_get(addr: SocketAddr, target: &str, accept: Option<&str>) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(s, "GET {target} HTTP/1.0\r\nHost: {addr}\r\n{accept}\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    Ok(Reply {
        status: status.to_owned(),
        headers: headers.to_owned(),
        body: body.to_owned(),
    })
}

/// The value of the sample `name{labels}` exactly as written (labels in the
/// exporter's order), from a text-format scrape.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `promtool check metrics` on a scrape; panics with promtool's words.
fn promtool_check_metrics(scrape: &str) {
    let mut child = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(scrape.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool output");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics failed ({:?}):\n{}{}\nscrape:\n{scrape}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn exposition_with_services_passes_promtool() {
    let workers: Vec<Arc<WorkerCounters>> = (0..2)
        .map(|_| Arc::new(WorkerCounters::default()))
        .collect();
    workers[0].rx_packets.add(7);
    let mut table = ServiceTable::new(2);
    let web = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: "10.0.0.1".parse().unwrap(),
        port: 80,
    };
    table.add_service(ServiceConfig::new(web)).unwrap();
    let mut d = DestConfig::new("192.168.1.2".parse().unwrap(), 8080);
    d.fwd = FwdMethod::FullNat;
    table.add_dest(&web, d).unwrap();
    let v6 = ServiceKey::Addr {
        proto: Protocol::Udp,
        addr: "2001:db8::53".parse().unwrap(),
        port: 53,
    };
    table.add_service(ServiceConfig::new(v6)).unwrap();
    table
        .add_dest(&v6, DestConfig::new("2001:db8::2".parse().unwrap(), 53))
        .unwrap();
    let mark = ServiceKey::Fwmark {
        mark: 1,
        ipv6: false,
    };
    table.add_service(ServiceConfig::new(mark)).unwrap();
    table.get(&web).unwrap().stats.worker(1).inpkts.add(42);
    let sources = MetricsSources {
        workers: workers
            .iter()
            .enumerate()
            .map(|(index, c)| WorkerSource {
                index,
                lcore: index as u32 + 1,
                counters: c.clone(),
            })
            .collect(),
        ports: vec![],
        pools: vec![],
        services: Arc::new(ArcSwap::from_pointee(table.snapshot())),
        dpdk_version: "22.11.4".into(),
        session_log: None,
        announce: None,
        vrrp: None,
    };
    let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), sources).unwrap();
    let r = http_get(server.local_addr(), "/metrics", None).unwrap();
    assert_eq!(r.status, "HTTP/1.1 200 OK");
    assert!(
        r.headers
            .contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{}",
        r.headers
    );
    assert_eq!(
        sample(
            &r.body,
            r#"rvs_service_in_packets_total{protocol="tcp",vip="10.0.0.1",port="80"}"#
        ),
        Some(42.0),
        "{}",
        r.body
    );
    assert!(r
        .body
        .contains(r#"real="192.168.1.2",real_port="8080",forward="fullnat""#));
    promtool_check_metrics(&r.body);

    let om = http_get(
        server.local_addr(),
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    )
    .unwrap();
    assert!(om
        .headers
        .contains("Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8"));
    assert!(om.body.ends_with("# EOF\n"));
    server.stop();
}

fn echo4(seq: u16) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, OUR_MAC)
        .ipv4(CLIENT_V4, OUR_V4, 64)
        .icmpv4_echo_request(0x4242, seq)
        .write(&mut f, b"rvs-metrics-test")
        .unwrap();
    f
}

/// An ARP request for one of rvsd's addresses: rvsd learns the sender.
fn arp_request(mac: [u8; 6], sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&sender);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f
}

/// One TCP segment to rvsd; `flags` as in tcpdump (S, A, P).
#[allow(clippy::too_many_arguments)]
fn tcp(
    mac: [u8; 6],
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    flags: &str,
    seq: u32,
    ack: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(mac, OUR_MAC)
        .ipv4(src.0, dst.0, 64)
        .tcp(src.1, dst.1, seq, 64240);
    for f in flags.chars() {
        b = match f {
            'S' => b.syn(),
            'A' => b.ack(ack),
            'P' => b.psh(),
            'F' => b.fin(),
            _ => panic!("flag {f}"),
        };
    }
    let mut f = Vec::new();
    b.write(&mut f, payload).unwrap();
    f
}

/// What the FULLNAT conns must add to a service's or real's counters.
#[derive(Default, Debug, PartialEq)]
struct Moved {
    conns: u64,
    in_packets: u64,
    in_bytes: u64,
    out_packets: u64,
    out_bytes: u64,
}

impl Moved {
    /// Counts one frame the way IPVS does: IP datagram bytes, no Ethernet.
    fn count(&mut self, frame: &[u8], inbound: bool, new_conn: bool) {
        let bytes = (frame.len() - 14) as u64;
        self.conns += u64::from(new_conn);
        if inbound {
            self.in_packets += 1;
            self.in_bytes += bytes;
        } else {
            self.out_packets += 1;
            self.out_bytes += bytes;
        }
    }

    /// What the `prefix` families under `labels` hold; None while one is
    /// missing.
    fn read(scrape: &str, prefix: &str, labels: &str) -> Option<Moved> {
        let get = |name: &str| sample(scrape, &format!("{prefix}{name}{{{labels}}}"));
        Some(Moved {
            conns: get("connections_total")? as u64,
            in_packets: get("in_packets_total")? as u64,
            in_bytes: get("in_bytes_total")? as u64,
            out_packets: get("out_packets_total")? as u64,
            out_bytes: get("out_bytes_total")? as u64,
        })
    }

    /// Asserts the `prefix` families under `labels` hold exactly this.
    fn assert_in(&self, scrape: &str, prefix: &str, labels: &str) {
        let got = Moved::read(scrape, prefix, labels)
            .unwrap_or_else(|| panic!("no {prefix}*{{{labels}}} in\n{scrape}"));
        assert_eq!(&got, self, "{prefix}*{{{labels}}}");
    }
}

/// One frame of a conn, as the test means it.
struct Sent {
    frame: Vec<u8>,
    /// The real server the conn goes to, by the test's own numbering.
    rs: usize,
    /// From the client (rather than from the real server).
    inbound: bool,
    /// Opens a conn.
    new_conn: bool,
}

/// Two conns through the FULLNAT service: a handshake and a request on
/// the first (to RS1), a lone SYN on the second (to RS2). Returns the
/// frames and what they add to the service, RS1 and RS2.
fn fullnat_traffic() -> (Vec<Vec<u8>>, [Moved; 3]) {
    let sent = fullnat_sent();
    let mut moved: [Moved; 3] = Default::default();
    for s in &sent {
        moved[0].count(&s.frame, s.inbound, s.new_conn);
        moved[s.rs].count(&s.frame, s.inbound, s.new_conn);
    }
    (sent.into_iter().map(|s| s.frame).collect(), moved)
}

/// The frames of [`fullnat_traffic`], with what each means: real server 1
/// is RS1, 2 is RS2.
fn fullnat_sent() -> Vec<Sent> {
    let (c1, c2) = ((CLIENT_V4, 40000), (CLIENT_V4, 40001));
    let (vip, r1) = ((VIP, 80), (RS1, 8080));
    let l1 = (LIP, LPORT);
    // (frame, to RS1 rather than RS2, inbound, opens a conn)
    let traffic = [
        (
            tcp(CLIENT_MAC, c1, vip, "S", 1000, 0, b""),
            true,
            true,
            true,
        ),
        (
            tcp(CLIENT_MAC, c2, vip, "S", 5000, 0, b""),
            false,
            true,
            true,
        ),
        (
            tcp(RS1_MAC, r1, l1, "SA", 9000, 1001, b""),
            true,
            false,
            false,
        ),
        (
            tcp(CLIENT_MAC, c1, vip, "A", 1001, 9001, b""),
            true,
            true,
            false,
        ),
        (
            tcp(
                CLIENT_MAC,
                c1,
                vip,
                "PA",
                1001,
                9001,
                b"GET / HTTP/1.1\r\n\r\n",
            ),
            true,
            true,
            false,
        ),
    ];
    traffic
        .into_iter()
        .map(|(frame, rs1, inbound, new_conn)| Sent {
            frame,
            rs: if rs1 { 1 } else { 2 },
            inbound,
            new_conn,
        })
        .collect()
}

/// A SYN to the firewall-mark service, which goes to RS3 (real server 3),
/// and the client's FIN that closes the conn, after the ARP request that
/// lets rvsd reach RS3.
fn fwmark_sent() -> (Vec<u8>, Vec<Sent>) {
    let (client, vip) = ((CLIENT_V4, 40002), (FWM_VIP, 8000));
    let sent = [("S", 7000), ("F", 7001)].map(|(flags, seq)| Sent {
        frame: tcp(CLIENT_MAC, client, vip, flags, seq, 0, b""),
        rs: 3,
        inbound: true,
        new_conn: flags == "S",
    });
    (arp_request(RS3_MAC, RS3, SERVER_SIDE), sent.into())
}

/// The frames fed to rvsd, and the drops by reason they must cause.
fn frames() -> (Vec<Vec<u8>>, [(&'static str, u64); 3]) {
    let mut bad_checksum = echo4(2);
    bad_checksum[24] ^= 0xff; // IPv4 header checksum
    let mut to_other_mac = echo4(3);
    to_other_mac[..6].copy_from_slice(&[0x02, 9, 9, 9, 9, 9]);
    let truncated = echo4(4)[..24].to_vec();
    let mut udp = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, OUR_MAC)
        .ipv4(CLIENT_V4, OUR_V4, 64)
        .udp(5000, 53)
        .write(&mut udp, b"x")
        .unwrap();
    // Neighbours first: rvsd forwards only to MACs it has learned.
    let mut frames = vec![
        arp_request(CLIENT_MAC, CLIENT_V4, OUR_V4),
        arp_request(RS1_MAC, RS1, SERVER_SIDE),
        arp_request(RS2_MAC, RS2, SERVER_SIDE),
        echo4(1),
        bad_checksum,
        to_other_mac,
        truncated,
        udp.clone(),
        udp,
    ];
    frames.extend(fullnat_traffic().0);
    (
        frames,
        [("bad_header", 2), ("other_host", 1), ("unsupported", 2)],
    )
}

/// rvsd on a net_pcap port that reads `frames`, metrics on `metrics`,
/// configured by `rules` (ipvsadm-save lines).
fn start_rvsd(dir: &TempDir, frames: &[Vec<u8>], metrics: SocketAddr, rules: &str) -> Daemon {
    let (input, output) = (dir.path("in.pcap"), dir.path("out.pcap"));
    let mut w = PcapWriter::new(File::create(&input).unwrap()).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write_packet(&PcapPacket::new(
            Duration::from_millis(i as u64),
            f.len() as u32,
            f,
        ))
        .unwrap();
    }
    drop(w);
    let rules_file = dir.path("rules");
    std::fs::write(&rules_file, rules).unwrap();
    let config = dir.path("rvsd.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[eal]
args = ["--no-huge", "--no-shconf", "--no-telemetry", "-m", "256", "--lcores=0@0,1@0"]
[dataplane]
workers = [1]
[[port]]
name = "pcap"
devargs = "net_pcap0,rx_pcap={},tx_pcap={}"
mac = "02:00:00:00:00:01"
addresses = ["198.18.0.1/24", "198.19.0.1/24"]
[ctl]
socket = "{}"
rules = "{}"
[metrics]
listen = "{metrics}"
[session_log]
file = "{}"
"#,
            input.display(),
            output.display(),
            dir.path("rvsd.sock").display(),
            rules_file.display(),
            dir.path("sessions.log").display(),
        ),
    )
    .unwrap();
    // Local ports from 1025 up (a debug build's knob; src/laddr/seed.rs).
    Daemon::start(dir, &["env", "RVS_LADDR_SEED=0"], &config)
}

/// Scrapes until `done` holds for the text exposition (bounded).
fn scrape_until(rvsd: &mut Daemon, addr: SocketAddr, mut done: impl FnMut(&str) -> bool) -> String {
    let mut last = String::new();
    let ok = wait_until(Duration::from_secs(30), || {
        if let Ok(r) = http_get(addr, "/metrics", None) {
            last = r.body;
            if done(&last) {
                return true;
            }
        }
        rvsd.has_exited()
    });
    assert!(
        ok && !rvsd.has_exited(),
        "no scrape as expected within 30 s; rvsd log:\n{}\nlast scrape:\n{last}",
        rvsd.log()
    );
    last
}

#[test]
fn a_live_scrape_counts_exactly_the_frames_sent() {
    let dir = TempDir::new("metrics-live");
    let (frames, drops) = frames();
    let n = frames.len() as f64;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut rvsd = start_rvsd(&dir, &frames, addr, RULES);
    let w0 = r#"{worker="0",lcore="1"}"#;
    let rx = format!("rvs_worker_rx_packets_total{w0}");
    // Every frame read, and the service's and real servers' counters
    // where the frames put them: a packet the express lane sent is counted
    // in its conn and reaches them within a second (`Lb::poll` folds the
    // counts), so they may trail the rx counter by that much.
    let [svc, rs1, rs2] = fullnat_traffic().1;
    let real = |ip: &str| format!(r#"{SVC},real="{ip}",real_port="8080",forward="fullnat""#);
    let scrape = scrape_until(&mut rvsd, addr, |s| {
        sample(s, &rx) == Some(n)
            && Moved::read(s, "rvs_service_", SVC).as_ref() == Some(&svc)
            && Moved::read(s, "rvs_real_", &real("198.19.0.11")).as_ref() == Some(&rs1)
            && Moved::read(s, "rvs_real_", &real("198.19.0.12")).as_ref() == Some(&rs2)
    });

    // A moment later nothing has moved: the counters hold what was sent.
    std::thread::sleep(Duration::from_millis(300));
    let r = http_get(addr, "/metrics", None).unwrap();
    assert_eq!(r.status, "HTTP/1.1 200 OK");
    let scrape2 = r.body;
    assert_eq!(sample(&scrape2, &rx), Some(n), "{scrape2}");
    for (reason, want) in drops {
        let series = format!(
            r#"rvs_worker_dropped_packets_total{{worker="0",lcore="1",reason="{reason}"}}"#
        );
        assert_eq!(sample(&scrape2, &series), Some(want as f64), "{series}");
    }
    let counted: f64 = scrape2
        .lines()
        .filter(|l| l.starts_with("rvs_worker_dropped_packets_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    let expected_drops: u64 = drops.iter().map(|(_, n)| n).sum();
    assert_eq!(counted, expected_drops as f64, "no other drop reason moved");
    let sent = |kind: &str| {
        sample(
            &scrape2,
            &format!(
                r#"rvs_worker_netstack_sent_packets_total{{worker="0",lcore="1",kind="{kind}"}}"#
            ),
        )
    };
    assert_eq!(sent("arp_reply"), Some(3.0));
    assert_eq!(sent("echo_reply"), Some(1.0));
    let port = r#"{port="pcap",device="net_pcap0"}"#;
    assert_eq!(
        sample(&scrape2, &format!("rvs_port_rx_packets_total{port}")),
        Some(n)
    );
    let bytes: usize = frames.iter().map(Vec::len).sum();
    assert_eq!(
        sample(&scrape2, &format!("rvs_port_rx_bytes_total{port}")),
        Some(bytes as f64)
    );
    assert_eq!(sample(&scrape2, &format!("rvs_port_up{port}")), Some(1.0));
    assert!(
        scrape2.contains(
            r#"rvs_port_xstat_total{port="pcap",device="net_pcap0",name="rx_good_packets"} "#
        ),
        "the PMD's xstats are there:\n{scrape2}"
    );
    let in_use = sample(
        &scrape2,
        r#"rvs_mempool_mbufs{pool="rvs_pkt",state="in_use"}"#,
    )
    .expect("in-use mbufs");
    let available = sample(
        &scrape2,
        r#"rvs_mempool_mbufs{pool="rvs_pkt",state="available"}"#,
    )
    .expect("available mbufs");
    assert_eq!(in_use + available, 8191.0, "the default pool size");
    assert!(scrape2.contains("rvs_build_info{version=\""));
    svc.assert_in(&scrape2, "rvs_service_", SVC);
    rs1.assert_in(&scrape2, "rvs_real_", &real("198.19.0.11"));
    rs2.assert_in(&scrape2, "rvs_real_", &real("198.19.0.12"));
    assert_eq!(
        sample(&scrape2, &format!("rvs_service_reals{{{SVC}}}")),
        Some(2.0)
    );

    // The worker's table holds the two conns; both took a port of the -P
    // local address, which the worker publishes once a second.
    let w = r#"{worker="0",lcore="1"}"#;
    assert_eq!(
        sample(&scrape2, &format!("rvs_worker_conns{w}")),
        Some(2.0),
        "{scrape2}"
    );
    // The default size, from the memory rvsd is given, as its log says.
    let log = rvsd.log();
    let slots: f64 = log
        .split("conn table: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no conn table size in the log:\n{log}"));
    assert_eq!(
        sample(&scrape2, &format!("rvs_worker_conn_capacity{w}")),
        Some(slots)
    );
    assert!(slots >= 1024.0, "{slots}");
    // Nothing was evicted; no defence is configured.
    assert_eq!(
        sample(
            &scrape2,
            r#"rvs_worker_conns_evicted_total{worker="0",lcore="1",reason="table_full"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &scrape2,
            r#"rvs_worker_defense_level{worker="0",lcore="1",strategy="secure_tcp"}"#
        ),
        Some(0.0)
    );
    for reason in ["no_rss", "client_owned", "derived", "sync", "nat_reply"] {
        assert_eq!(
            sample(
                &scrape2,
                &format!(
                    r#"rvs_worker_redirected_packets_total{{worker="0",lcore="1",reason="{reason}"}}"#
                )
            ),
            Some(0.0),
            "one worker redirects nothing"
        );
    }
    let lip = r#"{worker="0",lcore="1",laddr="198.19.0.50"}"#;
    let scrape3 = scrape_until(&mut rvsd, addr, |s| {
        sample(s, &format!("rvs_laddr_ports_in_use{lip}")).is_some()
    });
    assert_eq!(
        sample(&scrape3, &format!("rvs_laddr_ports_in_use{lip}")),
        Some(2.0),
        "{scrape3}"
    );
    assert_eq!(
        sample(&scrape3, &format!("rvs_laddr_ports{lip}")),
        Some(f64::from(65535 - 1025 + 1)),
        "one worker owns every port of 1025..=65535"
    );

    promtool_check_metrics(&scrape);
    promtool_check_metrics(&scrape2);
    promtool_check_metrics(&scrape3);

    let r = http_get(addr, "/", None).unwrap();
    assert_eq!(r.status, "HTTP/1.1 404 Not Found");

    let done = rvsd.stop();
    assert!(done.status.success(), "{}", done.stderr);
    assert!(
        done.stderr
            .contains(&format!("metrics at http://{addr}/metrics")),
        "the log gives the URL:\n{}",
        done.stderr
    );
    assert!(
        TcpStream::connect(addr).is_err(),
        "the listener is gone with rvsd"
    );
}

/// A child process killed and reaped however the test ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `s` as a URL query value: everything but RFC 3986's unreserved
/// characters percent-encoded.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every `"value":[time,"v"]` in a Prometheus API answer, as v.
fn api_values(json: &str) -> Vec<String> {
    json.match_indices("\"value\":[")
        .filter_map(|(i, m)| {
            let rest = &json[i + m.len()..];
            let rest = &rest[rest.find(",\"")? + 2..];
            Some(rest[..rest.find('"')?].to_owned())
        })
        .collect()
}

fn conf(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("conf")
        .join(name)
}

#[test]
fn a_prometheus_server_scrapes_rvsd() {
    let prometheus = tool("prometheus");
    let dir = TempDir::new("metrics-prometheus");
    let (frames, _) = frames();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // The health-checked service too, so that the dashboard's health
    // panels have series to find below.
    let rvsd = start_rvsd(
        &dir,
        &frames,
        metrics,
        &format!("{RULES}{FWM_RULES}{HEALTH_RULES}"),
    );

    // conf/prometheus.yml itself, pointed at this rvsd and scraping every second.
    let mut yml = std::fs::read_to_string(conf("prometheus.yml")).unwrap();
    for (from, to) in [
        ("\"127.0.0.1:9360\"", format!("\"{metrics}\"")),
        ("scrape_interval: 5s", "scrape_interval: 1s".to_owned()),
        ("scrape_timeout: 4s", "scrape_timeout: 1s".to_owned()),
    ] {
        assert!(yml.contains(from), "conf/prometheus.yml lost {from:?}");
        yml = yml.replace(from, &to);
    }
    std::fs::write(dir.path("prometheus.yml"), yml).unwrap();
    std::fs::copy(conf("rvs-alerts.yml"), dir.path("rvs-alerts.yml")).unwrap();
    std::fs::create_dir_all(dir.path("data")).unwrap();
    let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log = dir.path("prometheus.log");
    let server = Reaped(
        Command::new(prometheus)
            .arg(format!(
                "--config.file={}",
                dir.path("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdin(Stdio::null())
            .stdout(File::create(dir.path("prometheus.out")).unwrap())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("start prometheus"),
    );
    let query = |q: &str| -> String {
        http_get(web, &format!("/api/v1/query?query={q}"), None)
            .map(|r| r.body)
            .unwrap_or_default()
    };
    let want = frames.len().to_string();
    let mut last = String::new();
    let scraped = wait_until(Duration::from_secs(60), || {
        last = query("rvs_worker_rx_packets_total");
        api_values(&last) == [want.clone()]
    });
    let diagnose = || {
        format!(
            "last answer: {last}\ntargets: {}\nprometheus log:\n{}\nrvsd log:\n{}",
            http_get(web, "/api/v1/targets", None)
                .map(|r| r.body)
                .unwrap_or_default(),
            std::fs::read_to_string(&log).unwrap_or_default(),
            rvsd.log()
        )
    };
    assert!(
        scraped,
        "Prometheus has no rvs_worker_rx_packets_total of {want} within 60 s\n{}",
        diagnose()
    );
    assert!(last.contains(r#""job":"rvs""#) && last.contains(r#""worker":"0""#));
    assert_eq!(
        api_values(&query("up%7Bjob%3D%22rvs%22%7D")),
        ["1"],
        "{}",
        diagnose()
    );
    assert_eq!(
        api_values(&query("rvs_port_rx_packets_total%7Bport%3D%22pcap%22%7D")),
        [want]
    );
    assert_eq!(
        api_values(&query(
            "rvs_worker_dropped_packets_total%7Breason%3D%22bad_header%22%7D"
        )),
        ["2"]
    );
    // The worker counts a burst's rx before it handles it, so one scrape
    // may see all frames received but not yet every conn's packets.
    let svc_in = [fullnat_traffic().1[0].in_packets.to_string()];
    let mut svc_answer = String::new();
    let svc_seen = wait_until(Duration::from_secs(30), || {
        svc_answer = query(
            "rvs_service_in_packets_total%7Bvip%3D%22198.18.0.100%22%2Cport%3D%2280%22%2Cprotocol%3D%22tcp%22%7D",
        );
        api_values(&svc_answer) == svc_in
    });
    assert!(
        svc_seen && svc_answer.contains(r#""vip":"198.18.0.100""#),
        "rvs_service_in_packets_total is not {svc_in:?}: {svc_answer}\n{}",
        diagnose()
    );
    // node_exporter's names survive the OpenMetrics Prometheus reads: the
    // counter family node_ipvs_connections is the series
    // node_ipvs_connections_total, as node_exporter's is.
    let conns = [fullnat_traffic().1[0].conns.to_string()];
    let mut ipvs_answer = String::new();
    let ipvs_seen = wait_until(Duration::from_secs(30), || {
        ipvs_answer = query("node_ipvs_connections_total");
        api_values(&ipvs_answer) == conns
    });
    assert!(
        ipvs_seen && ipvs_answer.contains(r#""job":"rvs""#),
        "node_ipvs_connections_total is not {conns:?}: {ipvs_answer}\n{}",
        diagnose()
    );
    // The alerting rules loaded beside the scrape config.
    let rules = http_get(web, "/api/v1/rules", None).unwrap().body;
    assert!(
        rules.contains("RvsWorkerBusy") && rules.contains("RvsPortDown"),
        "{rules}"
    );

    // Every query of the Grafana dashboard, with its variables at "all",
    // runs on this Prometheus and finds series: a query can parse and
    // name only exported families and still match nothing (labels that
    // do not line up in a division, a misspelt label value). Queries that
    // end in a `> 0` filter may rightly find nothing once traffic stopped.
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(conf("grafana/rvs-dashboard.json")).unwrap())
            .unwrap();
    let mut vars: Vec<String> = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str().map(str::to_owned))
        .collect();
    vars.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let mut pending: Vec<(String, String)> = dashboard_queries(&dash)
        .into_iter()
        .map(|(at, q)| {
            let mut q = q.replace("$__rate_interval", "1m");
            for v in &vars {
                q = q
                    .replace(&format!("${{{v}}}"), ".*")
                    .replace(&format!("${v}"), ".*");
            }
            (at, q)
        })
        .collect();
    let mut last = String::new();
    let all_found = wait_until(Duration::from_secs(60), || {
        pending.retain(|(at, q)| {
            let r = query(&url_encode(q));
            assert!(
                !r.contains(r#""status":"error""#),
                "Prometheus rejects the dashboard's {at}: {q}\n{r}"
            );
            let found = r.contains(r#""status":"success""#)
                && (q.trim_end().ends_with("> 0") || !r.contains(r#""result":[]"#));
            if !found {
                last = format!("{at}: {q}\n{r}");
            }
            !found
        });
        pending.is_empty()
    });
    assert!(
        all_found,
        "dashboard queries find nothing within 60 s: {pending:?}\nlast: {last}\n{}",
        diagnose()
    );
    drop(server);
    let done = rvsd.stop();
    assert!(done.status.success(), "{}", done.stderr);
}

/// Per real server (by the test's numbering): (active, inactive) conns
/// after `sent`. The kernel's tcp_state_active_table (since Linux 4.10)
/// counts a TCP conn active in the handshake states and ESTABLISHED, and
/// inactive in the closing ones, where a FIN takes a conn from those (a
/// client's FIN in SYN_RECV: TIME_WAIT). An RST is left out: in SYN_RECV
/// the kernel ignores one. Read from the frames with etherparse, not from
/// anything rvs says.
fn conn_states(sent: &[Sent]) -> BTreeMap<usize, (u64, u64)> {
    let (mut conns, mut ended) = (BTreeMap::<usize, u64>::new(), BTreeSet::new());
    for s in sent {
        let p = SlicedPacket::from_ethernet(&s.frame).expect("a frame the test built");
        let Some(TransportSlice::Tcp(t)) = p.transport else {
            panic!("only TCP conns here")
        };
        if s.new_conn {
            *conns.entry(s.rs).or_default() += 1;
        }
        if t.fin() {
            ended.insert(s.rs);
        }
    }
    conns
        .into_iter()
        .map(|(rs, n)| {
            assert_eq!(n, 1, "one conn per real server keeps this simple");
            let inactive = u64::from(ended.contains(&rs));
            (rs, (n - inactive, inactive))
        })
        .collect()
}

#[test]
fn node_ipvs_series_match_the_traffic_sent() {
    let dir = TempDir::new("metrics-node-ipvs");
    let (mut frames, _) = frames();
    let (arp, fwmark) = fwmark_sent();
    frames.push(arp);
    frames.extend(fwmark.iter().map(|s| s.frame.clone()));
    let mut sent = fullnat_sent();
    sent.extend(fwmark);
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut rvsd = start_rvsd(&dir, &frames, addr, &format!("{RULES}{FWM_RULES}"));

    // What node_exporter would show for a kernel that saw these frames:
    // the totals count every frame of a conn, whatever its service, and
    // nothing else (ARP, ping, the dropped frames).
    let mut total = Moved::default();
    for s in &sent {
        total.count(&s.frame, s.inbound, s.new_conn);
    }
    let states = conn_states(&sent);
    let rx = r#"rvs_worker_rx_packets_total{worker="0",lcore="1"}"#;
    let n = frames.len() as f64;
    // Every frame read, and every total where the frames put it: a total
    // that stops short (or overshoots) fails below with the scrape.
    let scrape = scrape_until(&mut rvsd, addr, |s| {
        sample(s, rx) == Some(n)
            && sample(s, "node_ipvs_connections_total") == Some(total.conns as f64)
            && sample(s, "node_ipvs_incoming_packets_total") == Some(total.in_packets as f64)
            && sample(s, "node_ipvs_outgoing_packets_total") == Some(total.out_packets as f64)
    });

    for (name, kind, help) in [
        (
            "node_ipvs_connections_total",
            "counter",
            "The total number of connections made.",
        ),
        (
            "node_ipvs_incoming_packets_total",
            "counter",
            "The total number of incoming packets.",
        ),
        (
            "node_ipvs_outgoing_packets_total",
            "counter",
            "The total number of outgoing packets.",
        ),
        (
            "node_ipvs_incoming_bytes_total",
            "counter",
            "The total amount of incoming data.",
        ),
        (
            "node_ipvs_outgoing_bytes_total",
            "counter",
            "The total amount of outgoing data.",
        ),
        (
            "node_ipvs_backend_connections_active",
            "gauge",
            "The current active connections by local and remote address.",
        ),
        (
            "node_ipvs_backend_connections_inactive",
            "gauge",
            "The current inactive connections by local and remote address.",
        ),
        (
            "node_ipvs_backend_weight",
            "gauge",
            "The current backend weight by local and remote address.",
        ),
    ] {
        assert!(
            scrape.contains(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n")),
            "{name}: node_exporter's HELP and TYPE\n{scrape}"
        );
    }
    let got = Moved {
        conns: sample(&scrape, "node_ipvs_connections_total").unwrap() as u64,
        in_packets: sample(&scrape, "node_ipvs_incoming_packets_total").unwrap() as u64,
        in_bytes: sample(&scrape, "node_ipvs_incoming_bytes_total").unwrap() as u64,
        out_packets: sample(&scrape, "node_ipvs_outgoing_packets_total").unwrap() as u64,
        out_bytes: sample(&scrape, "node_ipvs_outgoing_bytes_total").unwrap() as u64,
    };
    assert_eq!(got, total, "{scrape}");
    assert_eq!(
        (total.conns, total.in_packets, total.out_packets),
        (3, 6, 1)
    );

    // The backends: node_exporter's labels in its order, values as the
    // rules (weight 1, ipvsadm's default) and the frames make them.
    let backend = |vip: &str, port: &str, rs: [u8; 4], rport: &str, proto: &str, mark: &str| {
        format!(
            r#"{{local_address="{vip}",local_port="{port}",remote_address="{}",remote_port="{rport}",proto="{proto}",local_mark="{mark}"}}"#,
            std::net::Ipv4Addr::from(rs)
        )
    };
    let rows = [
        (1, backend("198.18.0.100", "80", RS1, "8080", "TCP", "")),
        (2, backend("198.18.0.100", "80", RS2, "8080", "TCP", "")),
        // The kernel writes a fwmark service `FWM  %08X` with no address.
        (3, backend("", "0", RS3, "0", "FWM", &format!("{:08X}", 10))),
    ];
    for (rs, labels) in &rows {
        let (active, inactive) = states[rs];
        for (family, want) in [
            ("node_ipvs_backend_connections_active", active),
            ("node_ipvs_backend_connections_inactive", inactive),
            ("node_ipvs_backend_weight", 1),
        ] {
            assert_eq!(
                sample(&scrape, &format!("{family}{labels}")),
                Some(want as f64),
                "{family}{labels}\n{scrape}"
            );
        }
    }
    assert_eq!(
        (states[&2], states[&3]),
        ((1, 0), (0, 1)),
        "a lone SYN is active, one closed is not"
    );
    for family in [
        "node_ipvs_backend_connections_active{",
        "node_ipvs_backend_connections_inactive{",
        "node_ipvs_backend_weight{",
    ] {
        assert_eq!(
            scrape.lines().filter(|l| l.starts_with(family)).count(),
            rows.len(),
            "{family}: one series per real server\n{scrape}"
        );
    }
    promtool_check_metrics(&scrape);

    // The NAT session log: a start line per conn the frames made, and the
    // exporter's count of them agrees.
    let conns = total.conns as f64;
    scrape_until(&mut rvsd, addr, |s| {
        sample(s, "rvs_session_log_lines_total") == Some(conns)
    });
    let lines = std::fs::read_to_string(dir.path("sessions.log")).unwrap();
    assert_eq!(lines.lines().count() as u64, total.conns, "{lines}");
    assert!(
        lines.lines().all(|l| l.contains("\"event\":\"start\"")),
        "{lines}"
    );
    let scrape = http_get(addr, "/metrics", None).unwrap().body;
    for reason in ["ring_full", "rate_limit", "write_error"] {
        assert_eq!(
            sample(
                &scrape,
                &format!("rvs_session_log_dropped_total{{reason=\"{reason}\"}}")
            ),
            Some(0.0),
            "{reason}"
        );
    }
    let done = rvsd.stop();
    assert!(done.status.success(), "{}", done.stderr);
}

/// The metric names a PromQL expression reads: its identifiers, less
/// function and aggregation names, keywords, the label lists after
/// by/without/on/ignoring/group_left/group_right, label matchers inside
/// `{}`, ranges and durations inside `[]`, string literals, numbers and
/// Grafana's `$variables`. A small scanner, not a parser: enough for
/// PromQL as dashboards write it, and promtool checks the syntax apart.
fn promql_metric_names(expr: &str) -> BTreeSet<String> {
    const LABEL_LISTS: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const KEYWORDS: [&str; 22] = [
        "offset",
        "bool",
        "and",
        "or",
        "unless",
        "atan2",
        "inf",
        "nan",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ];
    let b = expr.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let next_non_space = |mut j: usize| {
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        j
    };
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => i = skip_string(b, i),
            b'{' => i = skip_group(b, i, b'{', b'}'),
            b'[' => i = skip_group(b, i, b'[', b']'),
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'$' => {
                i += 1;
                if b.get(i) == Some(&b'{') {
                    i = skip_group(b, i, b'{', b'}');
                } else {
                    while i < b.len() && ident(b[i]) {
                        i += 1;
                    }
                }
            }
            c if c.is_ascii_digit() || c == b'.' => {
                while i < b.len() && (ident(b[i]) || b[i] == b'.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let start = i;
                while i < b.len() && ident(b[i]) {
                    i += 1;
                }
                let word = &expr[start..i];
                let lower = word.to_ascii_lowercase();
                let j = next_non_space(i);
                let call = b.get(j) == Some(&b'(');
                if LABEL_LISTS.contains(&lower.as_str()) {
                    if call {
                        i = skip_group(b, j, b'(', b')');
                    }
                } else if !call && !KEYWORDS.contains(&lower.as_str()) {
                    names.insert(word.to_owned());
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// Past the string literal that starts at `i` (escapes honoured; a raw
/// backtick string has none).
fn skip_string(b: &[u8], mut i: usize) -> usize {
    let quote = b[i];
    i += 1;
    while i < b.len() && b[i] != quote {
        i += if b[i] == b'\\' && quote != b'`' { 2 } else { 1 };
    }
    i + 1
}

/// Past the bracketed group that opens at `i`, strings inside included.
fn skip_group(b: &[u8], mut i: usize, open: u8, close: u8) -> usize {
    let mut depth = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => {
                i = skip_string(b, i);
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

#[test]
fn the_promql_scanner_finds_metric_names_and_nothing_else() {
    let names = |e: &str| promql_metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"sum without (kind) (rate(rvs_worker_polls_total{instance=~"$instance",kind="busy"}[$__rate_interval])) / sum without (kind) (rate(rvs_worker_polls_total[5m] offset 1h))"#
        ),
        ["rvs_worker_polls_total"]
    );
    assert_eq!(
        names(
            r#"8 * sum by (instance, port) (rate(a_bytes_total{port=~"x}y\"z"}[1m:30s])) > bool 1e3 and on(instance) group_left(version) b_info or vector(0) unless c:recorded"#
        ),
        ["a_bytes_total", "b_info", "c:recorded"]
    );
    assert_eq!(
        names(r#"count(rvs_dest_up == 0) or absent(x_up) # trailing comment node_y"#),
        ["rvs_dest_up", "x_up"]
    );
    assert_eq!(
        names(
            r#"histogram_quantile(0.9, sum by (le) (rate(h_seconds_bucket[5m]))) + topk(3, m) + ${v} + $w + 0x1F + Inf"#
        ),
        ["h_seconds_bucket", "m"]
    );
    assert_eq!(names(r#"{__name__="hidden"}"#), Vec::<String>::new());
}

/// Every PromQL query of a Grafana dashboard: each `expr` anywhere in it
/// (panels, rows' panels, library panels alike), and the PromQL inside
/// each query variable (`label_values(SELECTOR, label)`,
/// `query_result(QUERY)`), with where it is.
fn dashboard_queries(dash: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(v: &serde_json::Value, at: &str, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                let here = match (m.get("title"), m.get("refId")) {
                    (Some(t), _) => format!("{at} / {}", t.as_str().unwrap_or("?")),
                    (_, Some(r)) => format!("{at} / {}", r.as_str().unwrap_or("?")),
                    _ => at.to_owned(),
                };
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr", serde_json::Value::String(e)) => {
                            out.push((here.clone(), e.clone()))
                        }
                        _ => walk(v, &here, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, at, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], "panels", &mut out);
    let vars = dash["templating"]["list"]
        .as_array()
        .expect("templating.list");
    for v in vars.iter().filter(|v| v["type"] == "query") {
        let name = v["name"].as_str().unwrap_or("?");
        // Grafana 9 stores a string, 10 an object with the string inside.
        let q = v["query"]
            .as_str()
            .or_else(|| v["query"]["query"].as_str())
            .unwrap_or_else(|| panic!("variable {name}: no query"))
            .trim();
        let inner = |f: &str| {
            q.strip_prefix(f)
                .and_then(|r| r.trim_start().strip_prefix('('))
                .and_then(|r| r.strip_suffix(')'))
        };
        let promql = if let Some(args) = inner("label_values") {
            // The last argument is a label name; with one argument there is
            // no selector at all.
            match args.rsplit_once(',') {
                Some((sel, _label)) => sel.trim().to_owned(),
                None => continue,
            }
        } else if let Some(query) = inner("query_result") {
            query.to_owned()
        } else {
            assert!(
                inner("label_names").is_some() || inner("metrics").is_some(),
                "variable {name}: a query the test does not know: {q}"
            );
            continue;
        };
        out.push((format!("variable {name}"), promql));
    }
    out
}

/// `promtool check rules` on one recording rule per query (Grafana's
/// `$__interval`-style ranges made a plain duration), which parses each
/// as Prometheus itself does.
fn promtool_check_queries(dir: &TempDir, queries: &[(String, String)]) {
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, q)) in queries.iter().enumerate() {
        let mut q = q.clone();
        for v in [
            "$__rate_interval",
            "$__interval",
            "$__range",
            "${__rate_interval}",
            "${__interval}",
            "${__range}",
        ] {
            q = q.replace(v, "5m");
        }
        // A JSON string is a YAML double-quoted scalar.
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::Value::String(q)
        ));
    }
    let file = dir.path("dashboard-rules.yml");
    std::fs::write(&file, &rules).unwrap();
    let out = Command::new(tool("promtool"))
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool check rules rejects a dashboard query:\n{}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        queries
            .iter()
            .enumerate()
            .map(|(i, (at, q))| format!("dashboard:query_{i} ({at}): {q}\n"))
            .collect::<String>()
    );
}

/// The names of every sample in a text-format scrape.
fn exported_names(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// The queries (where, name) that read a series not in `exported`.
fn unknown_series(
    queries: &[(String, String)],
    exported: &BTreeSet<String>,
) -> Vec<(String, String)> {
    queries
        .iter()
        .flat_map(|(at, q)| {
            promql_metric_names(q)
                .into_iter()
                .filter(|n| !exported.contains(n))
                .map(move |n| (at.clone(), n))
        })
        .collect()
}

#[test]
fn the_grafana_dashboard_reads_only_series_a_live_rvsd_exports() {
    let path = conf("grafana/rvs-dashboard.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");

    // Importable as it is: a datasource variable every query goes through,
    // no unresolved import inputs, unique panel ids.
    let vars = dash["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter().any(|v| v["type"] == "datasource"
            && v["name"] == "datasource"
            && v["query"] == "prometheus"),
        "a Prometheus datasource variable"
    );
    assert!(dash.get("__inputs").is_none() && !text.contains("${DS_"));
    assert!(dash["uid"].is_string() && dash["schemaVersion"].as_u64() >= Some(36));
    let mut ids = BTreeSet::new();
    let mut panels: Vec<&serde_json::Value> = dash["panels"].as_array().unwrap().iter().collect();
    while let Some(p) = panels.pop() {
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "id twice: {p}"
        );
        assert!(p["gridPos"]["w"].is_u64(), "{}", p["title"]);
        if p["type"] != "row" {
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "panel {} reads the chosen datasource",
                p["title"]
            );
            for t in p["targets"].as_array().expect("targets") {
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            }
        }
        panels.extend(p["panels"].as_array().into_iter().flatten());
    }

    let queries = dashboard_queries(&dash);
    assert!(queries.len() > 40, "{} queries", queries.len());
    let read: BTreeSet<String> = queries
        .iter()
        .flat_map(|(_, q)| promql_metric_names(q))
        .collect();
    for family in [
        "rvs_dest_up",
        "rvs_service_sorry_in_use",
        "rvs_dest_health_transitions_total",
        "rvs_worker_busy_ratio",
        "rvs_mempool_mbufs",
        "node_ipvs_backend_weight",
        "node_ipvs_connections_total",
        "rvs_session_log_lines_total",
        "rvs_session_log_dropped_total",
    ] {
        assert!(read.contains(family), "the dashboard shows {family}");
    }
    let dir = TempDir::new("metrics-dashboard");
    promtool_check_queries(&dir, &queries);

    // A live rvsd with every kind of series: traffic through a FULLNAT and
    // a firewall-mark service, and a real server that fails its check so
    // its sorry server stands in.
    let (mut frames, _) = frames();
    let (arp, fwmark) = fwmark_sent();
    frames.push(arp);
    frames.extend(fwmark.into_iter().map(|s| s.frame));
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut rvsd = start_rvsd(
        &dir,
        &frames,
        addr,
        &format!("{RULES}{FWM_RULES}{HEALTH_RULES}"),
    );
    let down = format!(
        r#"rvs_dest_health_transitions_total{{{HEALTH_SVC},real="198.19.0.21",real_port="80",forward="masq",to="down"}}"#
    );
    let scrape = scrape_until(&mut rvsd, addr, |s| {
        sample(s, &format!("rvs_service_sorry_in_use{{{HEALTH_SVC}}}")) == Some(1.0)
            && sample(s, &down) == Some(1.0)
            && s.contains("\nrvs_laddr_ports_in_use{")
            && sample(s, "node_ipvs_connections_total") == Some(3.0)
    });
    let exported = exported_names(&scrape);
    let unknown = unknown_series(&queries, &exported);
    assert!(
        unknown.is_empty(),
        "dashboard queries read series rvsd does not export: {unknown:?}\nexported: {exported:?}"
    );
    // The check has teeth: a misspelt family is caught.
    assert_eq!(
        unknown_series(
            &[(
                "test".into(),
                "rate(rvs_worker_rx_packet_total[5m]) / rvs_worker_conns".into()
            )],
            &exported
        ),
        [("test".to_owned(), "rvs_worker_rx_packet_total".to_owned())]
    );
    promtool_check_metrics(&scrape);
    let done = rvsd.stop();
    assert!(done.status.success(), "{}", done.stderr);
}
