//! The Prometheus exporter from the outside: scrapes over plain TCP,
//! Debian's `promtool check metrics` on what comes back, rvsd's counters
//! against the frames a test fed it through a net_pcap port, and a real
//! Prometheus server scraping rvsd with conf/prometheus.yml. rvsd runs a
//! FULLNAT service with two real servers and the frames include two conns
//! through it, so the per-service and per-real series are there and move.
//!
//! promtool and prometheus come with Debian's `prometheus` package, which
//! scripts/setup.sh installs; without them these tests fail, they do not skip.
mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use common::{wait_until, Daemon, TempDir};
use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapPacket, PcapWriter};
use rvs::dataplane::WorkerCounters;
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
/// The local address of the service's pool; rvsd hands out its ports from
/// 1025 up, one per conn, as tests/dpdk_forwarding.rs relies on too.
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

    /// Asserts the `prefix` families under `labels` hold exactly this.
    fn assert_in(&self, scrape: &str, prefix: &str, labels: &str) {
        let get = |name: &str| {
            sample(scrape, &format!("{prefix}{name}{{{labels}}}"))
                .unwrap_or_else(|| panic!("no {prefix}{name}{{{labels}}} in\n{scrape}"))
        };
        let got = Moved {
            conns: get("connections_total") as u64,
            in_packets: get("in_packets_total") as u64,
            in_bytes: get("in_bytes_total") as u64,
            out_packets: get("out_packets_total") as u64,
            out_bytes: get("out_bytes_total") as u64,
        };
        assert_eq!(&got, self, "{prefix}*{{{labels}}}");
    }
}

/// Two conns through the FULLNAT service: a handshake and a request on
/// the first (to RS1), a lone SYN on the second (to RS2). Returns the
/// frames and what they add to the service, RS1 and RS2.
fn fullnat_traffic() -> (Vec<Vec<u8>>, [Moved; 3]) {
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
    let mut moved: [Moved; 3] = Default::default();
    for (f, rs1, inbound, new_conn) in &traffic {
        moved[0].count(f, *inbound, *new_conn);
        moved[if *rs1 { 1 } else { 2 }].count(f, *inbound, *new_conn);
    }
    (traffic.into_iter().map(|t| t.0).collect(), moved)
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
        [("bad_header", 2), ("not_for_us", 1), ("unsupported", 2)],
    )
}

/// rvsd on a net_pcap port that reads `frames`, metrics on `metrics`.
fn start_rvsd(dir: &TempDir, frames: &[Vec<u8>], metrics: SocketAddr) -> Daemon {
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
    let rules = dir.path("rules");
    std::fs::write(&rules, RULES).unwrap();
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
"#,
            input.display(),
            output.display(),
            dir.path("rvsd.sock").display(),
            rules.display(),
        ),
    )
    .unwrap();
    Daemon::start(dir, &[], &config)
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
    let mut rvsd = start_rvsd(&dir, &frames, addr);
    let w0 = r#"{worker="0",lcore="1"}"#;
    let rx = format!("rvs_worker_rx_packets_total{w0}");
    let scrape = scrape_until(&mut rvsd, addr, |s| sample(s, &rx) == Some(n));

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
    let [svc, rs1, rs2] = fullnat_traffic().1;
    svc.assert_in(&scrape2, "rvs_service_", SVC);
    let real = |ip: &str| format!(r#"{SVC},real="{ip}",real_port="8080",forward="fullnat""#);
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
    assert_eq!(
        sample(&scrape2, &format!("rvs_worker_conn_capacity{w}")),
        Some(262_144.0)
    );
    assert_eq!(
        sample(&scrape2, &format!("rvs_worker_redirected_packets_total{w}")),
        Some(0.0),
        "one worker redirects nothing"
    );
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
    let rvsd = start_rvsd(&dir, &frames, metrics);

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
    // The alerting rules loaded beside the scrape config.
    let rules = http_get(web, "/api/v1/rules", None).unwrap().body;
    assert!(
        rules.contains("RvsWorkerBusy") && rules.contains("RvsPortDown"),
        "{rules}"
    );
    drop(server);
    let done = rvsd.stop();
    assert!(done.status.success(), "{}", done.stderr);
}
