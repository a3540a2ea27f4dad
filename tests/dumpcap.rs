//! DPDK's own tools against a running rvsd: dpdk-dumpcap (a secondary process
//! talking to rvsd's pdump server) captures the port that a client pings, and
//! dpdk-telemetry.py reads the port's ethdev stats. rvsd runs with a shared
//! EAL config under its own --file-prefix, so it needs hugepages
//! (scripts/setup.sh reserves them). Namespaces, the prefix's runtime dir and
//! its hugepage files are always removed, also when the test fails.
mod common;

use std::fs;
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{wait_until, Daemon, TempDir, Topology};
use etherparse::{Icmpv4Type, NetSlice, SlicedPacket, TransportSlice};
use pcap_file::pcapng::PcapNgReader;
use pcap_file::Endianness;

const PINGS: usize = 5;
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const RVSD_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

/// What EAL leaves under a file prefix when a process dies uncleanly: the
/// runtime dir and hugepage files, which would keep the pages reserved.
struct EalFiles {
    prefix: String,
}

impl Drop for EalFiles {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(format!("/var/run/dpdk/{}", self.prefix));
        let map = format!("{}map_", self.prefix);
        if let Ok(dir) = fs::read_dir("/dev/hugepages") {
            for e in dir.flatten() {
                if e.file_name().to_string_lossy().starts_with(&map) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }
}

/// A tool run in the background; killed if the test ends before it does.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_hugepage_mib() -> u64 {
    let info = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    field("HugePages_Free:") * field("Hugepagesize:") / 1024
}

/// ICMP echo (type, source, destination) of every IPv4 packet in a pcapng file.
///
/// Enhanced packet blocks are decoded here from pcap-file's raw blocks: its
/// block parser rejects options that DPDK's pcapng writer adds ("Invalid
/// option"), and only the packet bytes matter to the test.
fn captured_echoes(path: &std::path::Path) -> Vec<(&'static str, Ipv4Addr, Ipv4Addr)> {
    const ENHANCED_PACKET: u32 = 6;
    let file = fs::File::open(path).expect("open capture");
    let mut reader = PcapNgReader::new(file).expect("capture is not pcapng");
    let big = reader.section().endianness == Endianness::Big;
    let u32_at = |b: &[u8], at: usize| {
        let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if big {
            u32::from_be_bytes(v)
        } else {
            u32::from_le_bytes(v)
        }
    };
    let mut echoes = Vec::new();
    while let Some(block) = reader.next_raw_block() {
        let block = block.expect("pcapng block");
        // Interface id, timestamp (two words), captured and original length.
        if block.type_ != ENHANCED_PACKET || block.body.len() < 20 {
            continue;
        }
        let caplen = u32_at(&block.body, 12) as usize;
        let Some(data) = block.body.get(20..20 + caplen) else {
            panic!("enhanced packet block shorter than its captured length {caplen}");
        };
        let Ok(pkt) = SlicedPacket::from_ethernet(data) else {
            continue;
        };
        let (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Icmpv4(icmp))) =
            (pkt.net, pkt.transport)
        else {
            continue;
        };
        let kind = match icmp.icmp_type() {
            Icmpv4Type::EchoRequest(_) => "request",
            Icmpv4Type::EchoReply(_) => "reply",
            _ => continue,
        };
        echoes.push((
            kind,
            ip.header().source_addr(),
            ip.header().destination_addr(),
        ));
    }
    echoes
}

#[test]
fn dumpcap_captures_and_telemetry_reads_a_running_rvsd() {
    // rvsd's -m 128 plus dpdk-dumpcap's own ring and mbuf pool.
    let free = free_hugepage_mib();
    assert!(
        free >= 160,
        "only {free} MiB of free hugepages; capture needs a shared-config EAL with hugepages \
         (at least 160 MiB free). Run scripts/setup.sh as root, or: \
         echo 256 > /proc/sys/vm/nr_hugepages && mount -t hugetlbfs nodev /dev/hugepages"
    );

    let tag = format!("rvst{}", std::process::id());
    let topo = Topology::new(&tag);
    let prefix = tag.clone();
    let _eal_files = EalFiles {
        prefix: prefix.clone(),
    };
    let dir = TempDir::new("dumpcap");
    let config = dir.path("rvsd.toml");
    fs::write(
        &config,
        format!(
            r#"
[eal]
args = ["--file-prefix={prefix}", "-m", "128", "--lcores=0@0,1@0"]
[dataplane]
workers = [1]
[[port]]
name = "client"
devargs = "net_af_packet0,iface=rvstg0"
addresses = ["198.18.0.1/24"]
[metrics]
listen = "off"
"#
        ),
    )
    .unwrap();
    let mut rvsd = Daemon::start(&dir, &["ip", "netns", "exec", &topo.gw], &config);

    // Readiness: the first answered ping (bounded), which also settles ARP
    // before the capture starts.
    let up = wait_until(Duration::from_secs(30), || {
        rvsd.has_exited()
            || topo
                .in_client(&["ping", "-c", "1", "-W", "1", "198.18.0.1"])
                .status
                .success()
    });
    assert!(
        up && !rvsd.has_exited(),
        "rvsd never answered ping; log:\n{}",
        rvsd.log()
    );
    assert!(
        rvsd.log().contains("packet capture server up"),
        "rvsd did not start its pdump server; log:\n{}",
        rvsd.log()
    );

    // dumpcap runs in the root namespace: it reaches rvsd through the files
    // under /var/run/dpdk/<prefix>, which namespaces do not separate. -p: the
    // port is rvsd's to configure; -f icmp keeps a stray ARP from using up
    // the packet count.
    let cap = dir.path("cap.pcapng");
    let cap_err = dir.path("dumpcap.stderr");
    let mut dumpcap = Background(
        Command::new("dpdk-dumpcap")
            .arg(format!("--file-prefix={prefix}"))
            .args(["-i", "net_af_packet0", "-p", "-f", "icmp"])
            .args(["-c", &(2 * PINGS).to_string()])
            .arg("-w")
            .arg(&cap)
            .stdin(Stdio::null())
            .stdout(fs::File::create(dir.path("dumpcap.stdout")).unwrap())
            .stderr(fs::File::create(&cap_err).unwrap())
            .spawn()
            .expect("spawn dpdk-dumpcap (Debian package dpdk)"),
    );
    let dumpcap_log = || fs::read_to_string(&cap_err).unwrap_or_default();
    // dumpcap prints this count after rvsd has installed its callbacks.
    let capturing = wait_until(Duration::from_secs(30), || {
        dumpcap_log().contains("Packets captured:") || matches!(dumpcap.0.try_wait(), Ok(Some(_)))
    });
    assert!(
        capturing && dumpcap.0.try_wait().ok().flatten().is_none(),
        "dpdk-dumpcap did not start capturing:\n{}\nrvsd log:\n{}",
        dumpcap_log(),
        rvsd.log()
    );

    let count = PINGS.to_string();
    let ping = topo.in_client(&["ping", "-c", &count, "-i", "0.2", "-W", "2", "198.18.0.1"]);
    assert!(
        ping.status.success(),
        "ping: {}",
        String::from_utf8_lossy(&ping.stdout)
    );

    let finished = wait_until(Duration::from_secs(20), || {
        matches!(dumpcap.0.try_wait(), Ok(Some(_)))
    });
    assert!(
        finished,
        "dpdk-dumpcap did not stop after {} packets:\n{}",
        2 * PINGS,
        dumpcap_log()
    );
    let status = dumpcap.0.wait().unwrap();
    assert!(
        status.success(),
        "dpdk-dumpcap: {status}\n{}",
        dumpcap_log()
    );

    let echoes = captured_echoes(&cap);
    let requests = echoes
        .iter()
        .filter(|e| **e == ("request", CLIENT, RVSD_ADDR))
        .count();
    let replies = echoes
        .iter()
        .filter(|e| **e == ("reply", RVSD_ADDR, CLIENT))
        .count();
    assert!(
        requests == PINGS && replies == PINGS,
        "expected {PINGS} echo requests and replies in the capture, got {echoes:?}\n{}",
        dumpcap_log()
    );

    // dpdk-telemetry.py reads commands from stdin and prints one JSON reply
    // per command when stdin is not a terminal.
    let mut tele = Command::new("dpdk-telemetry.py")
        .args(["-f", &prefix])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dpdk-telemetry.py (Debian package dpdk)");
    {
        use std::io::Write;
        let mut stdin = tele.stdin.take().unwrap();
        stdin.write_all(b"/ethdev/stats,0\n").unwrap();
    }
    let out = tele.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let stats = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v.get("/ethdev/stats").cloned());
    let ipackets = stats
        .as_ref()
        .and_then(|s| s.get("ipackets"))
        .and_then(serde_json::Value::as_u64);
    assert!(
        ipackets.is_some_and(|n| n >= PINGS as u64),
        "telemetry ethdev stats: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let done = rvsd.stop();
    assert!(
        done.status.success(),
        "exit {:?}:\n{}",
        done.status,
        done.stderr
    );
}
