//! rvsd under real EAL (no hugepages) with a net_pcap port: frames crafted
//! into a pcap go in, and the pcap rvsd writes holds the expected answers.
mod common;

use std::fs::File;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use common::{counter, drops, ones_sum, wait_until, Daemon, TempDir};
use etherparse::{IcmpEchoHeader, Icmpv4Type, Icmpv6Type, PacketBuilder};
use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};

const OUR_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
const CLIENT_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
const STRANGER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x03];
const OUR_V4: [u8; 4] = [198, 18, 0, 1];
const CLIENT_V4: [u8; 4] = [198, 18, 0, 2];
const STRANGER_V4: [u8; 4] = [198, 18, 0, 3];

fn our_v6() -> Ipv6Addr {
    "fd00:1::1".parse().unwrap()
}
fn client_v6() -> Ipv6Addr {
    "fd00:1::2".parse().unwrap()
}

fn arp(
    op: u16,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    sender: [u8; 4],
    target_mac: [u8; 6],
    target: [u8; 4],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&sender);
    f.extend_from_slice(&target_mac);
    f.extend_from_slice(&target);
    f
}

fn echo4(src_mac: [u8; 6], src: [u8; 4], seq: u16) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(src_mac, OUR_MAC)
        .ipv4(src, OUR_V4, 64)
        .icmpv4_echo_request(0x1234, seq)
        .write(&mut f, b"rvs-pcap-test")
        .unwrap();
    f
}

fn icmp6(dst_mac: [u8; 6], dst: Ipv6Addr, hop: u8, t: Icmpv6Type, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, dst_mac)
        .ipv6(client_v6().octets(), dst.octets(), hop)
        .icmpv6(t)
        .write(&mut f, body)
        .unwrap();
    f
}

fn neighbour_solicit() -> Vec<u8> {
    let group: Ipv6Addr = "ff02::1:ff00:1".parse().unwrap();
    let mut body = our_v6().octets().to_vec();
    body.extend_from_slice(&[1, 1]);
    body.extend_from_slice(&CLIENT_MAC);
    let t = Icmpv6Type::Unknown {
        type_u8: 135,
        code_u8: 0,
        bytes5to8: [0; 4],
    };
    icmp6([0x33, 0x33, 0xff, 0, 0, 1], group, 255, t, &body)
}

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut w = PcapWriter::new(File::create(path).unwrap()).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write_packet(&PcapPacket::new(
            Duration::from_millis(i as u64),
            f.len() as u32,
            f,
        ))
        .unwrap();
    }
}

/// Every whole frame in a pcap that may still be being written.
fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let Ok(file) = File::open(path) else {
        return vec![];
    };
    let Ok(mut r) = PcapReader::new(file) else {
        return vec![];
    };
    let mut out = vec![];
    while let Some(Ok(p)) = r.next_packet() {
        out.push(p.data.into_owned());
    }
    out
}

fn is_arp(f: &[u8], op: u16, sender: [u8; 4], target: [u8; 4]) -> bool {
    f.len() >= 42
        && f[12..14] == [0x08, 0x06]
        && f[20..22] == op.to_be_bytes()
        && f[28..32] == sender
        && f[38..42] == target
}

#[test]
fn pcap_frames_get_the_answers_a_director_owes() {
    let dir = TempDir::new("pcap");
    let (input, output) = (dir.path("in.pcap"), dir.path("out.pcap"));
    let mut bad_checksum = echo4(CLIENT_MAC, CLIENT_V4, 9);
    bad_checksum[24] ^= 0xff; // IPv4 header checksum
    let mut to_other_mac = echo4(CLIENT_MAC, CLIENT_V4, 10);
    to_other_mac[..6].copy_from_slice(&[0x02, 9, 9, 9, 9, 9]);
    let mut udp = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, OUR_MAC)
        .ipv4(CLIENT_V4, OUR_V4, 64)
        .udp(5000, 53)
        .write(&mut udp, b"x")
        .unwrap();
    let truncated = echo4(CLIENT_MAC, CLIENT_V4, 11)[..24].to_vec();
    let frames = vec![
        arp(1, CLIENT_MAC, [0xff; 6], CLIENT_V4, [0; 6], OUR_V4),
        echo4(CLIENT_MAC, CLIENT_V4, 1),
        neighbour_solicit(),
        icmp6(
            OUR_MAC,
            our_v6(),
            64,
            Icmpv6Type::EchoRequest(IcmpEchoHeader { id: 0x77, seq: 5 }),
            b"v6-ping",
        ),
        echo4(STRANGER_MAC, STRANGER_V4, 2),
        bad_checksum,
        to_other_mac,
        udp,
        truncated,
    ];
    write_pcap(&input, &frames);
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
addresses = ["198.18.0.1/24", "fd00:1::1/64"]
# No fixed metrics port: tests run side by side (tests/metrics.rs scrapes).
[metrics]
listen = "off"
[log]
level = "debug"
"#,
            input.display(),
            output.display()
        ),
    )
    .unwrap();

    let mut rvsd = Daemon::start(&dir, &[], &config);
    // The stranger never answers: rvsd asks at once and retries each second.
    let asked_three_times = wait_until(Duration::from_secs(20), || {
        read_pcap(&output)
            .iter()
            .filter(|f| is_arp(f, 1, OUR_V4, STRANGER_V4))
            .count()
            >= 3
            || rvsd.has_exited()
    });
    let done = rvsd.stop();
    assert!(
        asked_three_times,
        "no 3 ARP requests for the stranger; log:\n{}",
        done.stderr
    );
    assert!(
        done.status.success(),
        "rvsd exit {:?}; log:\n{}",
        done.status,
        done.stderr
    );
    let out = read_pcap(&output);

    // Gratuitous ARP for the IPv4 address, unsolicited NA for the IPv6 one.
    assert!(out
        .iter()
        .any(|f| is_arp(f, 1, OUR_V4, OUR_V4) && f[..6] == [0xff; 6] && f[6..12] == OUR_MAC));
    let na_to_all = out.iter().any(|f| {
        f[..6] == [0x33, 0x33, 0, 0, 0, 1]
            && f.len() >= 86
            && f[54] == 136
            && f[58] & 0x60 == 0x20
            && f[62..78] == our_v6().octets()
    });
    assert!(na_to_all, "no unsolicited NA for fd00:1::1");

    // The ARP reply to the client.
    let reply = out
        .iter()
        .find(|f| is_arp(f, 2, OUR_V4, CLIENT_V4))
        .expect("ARP reply");
    assert_eq!(
        (&reply[..6], &reply[6..12], &reply[22..28], &reply[32..38]),
        (&CLIENT_MAC[..], &OUR_MAC[..], &OUR_MAC[..], &CLIENT_MAC[..])
    );

    // The IPv4 echo reply: addresses swapped, same id/seq/data, checksums right.
    let echo = out
        .iter()
        .find(|f| f.len() > 34 && f[12..14] == [8, 0] && f[30..34] == CLIENT_V4 && f[34] == 0)
        .expect("echo reply to the client");
    assert_eq!(&echo[..6], &CLIENT_MAC);
    let s = etherparse::SlicedPacket::from_ethernet(echo).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = &s.net else {
        panic!("not IPv4")
    };
    assert_eq!(ip.header().source(), OUR_V4);
    assert_eq!(ip.header().ttl(), 64);
    assert_eq!(
        ones_sum(&[ip.header().slice()]),
        0xffff,
        "IPv4 header checksum"
    );
    let Some(etherparse::TransportSlice::Icmpv4(icmp)) = &s.transport else {
        panic!("not ICMP")
    };
    assert_eq!(
        icmp.icmp_type(),
        Icmpv4Type::EchoReply(IcmpEchoHeader { id: 0x1234, seq: 1 })
    );
    assert_eq!(icmp.payload(), b"rvs-pcap-test");
    assert_eq!(ones_sum(&[icmp.slice()]), 0xffff, "ICMP checksum");

    // The neighbour advertisement answering the solicitation.
    let na = out
        .iter()
        .find(|f| {
            f[..6] == CLIENT_MAC && f.len() >= 86 && f[12..14] == [0x86, 0xdd] && f[54] == 136
        })
        .expect("NA to the client");
    assert_eq!(na[21], 255, "hop limit");
    assert_eq!(na[58] & 0xe0, 0x60, "solicited and override");
    assert_eq!(&na[62..78], &our_v6().octets());
    assert_eq!(
        &na[78..86],
        &[2, 1, 2, 0, 0, 0, 0, 1],
        "target link-layer address option"
    );
    let pseudo_v6 = |f: &[u8]| -> u16 {
        let len = (f.len() - 54) as u32;
        ones_sum(&[&f[22..54], &len.to_be_bytes(), &[0, 0, 0, 58], &f[54..]])
    };
    assert_eq!(pseudo_v6(na), 0xffff, "NA checksum");

    // The ICMPv6 echo reply, routed on the neighbour learned from the NS.
    let echo6 = out
        .iter()
        .find(|f| f[..6] == CLIENT_MAC && f.len() > 54 && f[12..14] == [0x86, 0xdd] && f[54] == 129)
        .expect("ICMPv6 echo reply");
    assert_eq!(
        (&echo6[22..38], &echo6[38..54]),
        (&our_v6().octets()[..], &client_v6().octets()[..])
    );
    assert_eq!(&echo6[58..62], &[0, 0x77, 0, 5]);
    assert_eq!(&echo6[62..], b"v6-ping");
    assert_eq!(pseudo_v6(echo6), 0xffff, "ICMPv6 checksum");

    // Nothing was sent to the stranger, and every bad frame was counted.
    assert!(!out.iter().any(|f| f[..6] == STRANGER_MAC));
    assert_eq!(
        counter(&done.stdout, "rx"),
        Some(frames.len() as u64),
        "{}",
        done.stdout
    );
    assert_eq!(
        counter(&done.stdout, "echo replies"),
        Some(3),
        "{}",
        done.stdout
    );
    assert_eq!(counter(&done.stdout, "arp replies"), Some(1));
    assert_eq!(counter(&done.stdout, "nd adverts"), Some(1));
    assert_eq!(counter(&done.stdout, "gratuitous"), Some(2));
    assert_eq!(drops(&done.stdout, "bad_header"), 2, "{}", done.stdout);
    assert_eq!(drops(&done.stdout, "other_host"), 1, "{}", done.stdout);
    assert_eq!(drops(&done.stdout, "unsupported"), 1, "{}", done.stdout);
    let ports_line = done
        .stdout
        .lines()
        .find(|l| l.starts_with("port pcap"))
        .expect("port summary");
    assert!(
        ports_line.contains(&format!("rx {} packets", frames.len())),
        "{ports_line}"
    );
    let _ = Ipv4Addr::LOCALHOST;
}
