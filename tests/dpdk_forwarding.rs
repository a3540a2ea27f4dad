//! The forwarding modes on the wire: rvsd under real EAL with one net_pcap
//! port, crafted client and real-server packets in, the rewritten packets
//! out. Every output frame is read back with etherparse and its checksums
//! summed here from the raw bytes, then compared whole with the frame an
//! independent builder says rvsd should have sent.
//!
//! The pcap PMD reads its input file once, so replies must be written before
//! rvsd runs, and FULLNAT replies must name the local port rvsd is going to
//! pick. With one worker and RVS_LADDR_SEED=0 (a debug build's knob; rvsd
//! otherwise starts its cursors at random points) that choice is
//! deterministic (src/dataplane/lb.rs): port mask 0, so each local address
//! has one cursor starting at 1025 that moves one port per new conn,
//! whatever the service or real server. The n-th conn made on a local
//! address therefore gets port 1024 + n.
mod common;

use std::fs::{self, File};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use common::{counter, drops, ones_sum, wait_until, Daemon, TempDir};
use etherparse::{
    EtherType, Ethernet2Header, Icmpv6Type, IpNumber, Ipv4Dscp, Ipv4Ecn, Ipv4Header, Ipv6FlowLabel,
    Ipv6Header, NetSlice, PacketBuilder, SlicedPacket, TcpHeader, TcpOptionElement, TransportSlice,
    UdpHeader,
};
use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};

const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const RS1_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];
const RS2_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x12];

const CLIENT: [u8; 4] = [198, 18, 0, 2];
const RS1: [u8; 4] = [198, 19, 0, 11];
const RS2: [u8; 4] = [198, 19, 0, 12];
/// rvsd's own address on the real servers' subnet: the TUN outer source
/// and the FULLNAT local address when a service has no `-P` pool.
const SERVER_SIDE: [u8; 4] = [198, 19, 0, 1];

/// rvsd's first FULLNAT local port on a local address (see the module doc).
const LPORT: u16 = 1025;

fn v4(a: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), port)
}

fn v6(a: &str, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(a.parse().unwrap()), port)
}

// ---- frames in ----

#[derive(Clone, Debug)]
enum L4 {
    Tcp(Box<TcpHeader>),
    /// With `zero` the IPv4 datagram carries no checksum.
    Udp {
        zero: bool,
    },
}

/// One TCP or UDP packet; `bytes` builds it with etherparse, checksums
/// included, and `fwd` gives the packet rvsd should make of it.
#[derive(Clone, Debug)]
struct Pkt {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: SocketAddr,
    dst: SocketAddr,
    ttl: u8,
    /// IPv4 identification, or the IPv6 flow label: copied by every mode,
    /// so a distinct one per packet catches a mixed-up rewrite.
    ident: u16,
    l4: L4,
    payload: Vec<u8>,
}

/// `mss` is what a host on a 1500-byte link offers: 1460 over IPv4, 1440
/// over IPv6 (rvsd clamps a SYN's MSS to what the egress MTU carries).
fn tcp_header(flags: &str, seq: u32, ack: u32, mss: u16) -> TcpHeader {
    let mut h = TcpHeader::new(0, 0, seq, 64240);
    for f in flags.chars() {
        match f {
            'S' => h.syn = true,
            'A' => {
                h.ack = true;
                h.acknowledgment_number = ack;
            }
            'F' => h.fin = true,
            'R' => h.rst = true,
            'P' => h.psh = true,
            _ => panic!("flag {f}"),
        }
    }
    if h.syn {
        h.set_options(&[
            TcpOptionElement::MaximumSegmentSize(mss),
            TcpOptionElement::SelectiveAcknowledgementPermitted,
            TcpOptionElement::Timestamp(0x0102_0304, 0),
            TcpOptionElement::Noop,
            TcpOptionElement::WindowScale(7),
        ])
        .unwrap();
    } else {
        h.set_options(&[
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::Timestamp(0x0a0b_0c0d, 0x0102_0304),
        ])
        .unwrap();
    }
    h
}

impl Pkt {
    fn new(src_mac: [u8; 6], src: SocketAddr, dst: SocketAddr, ident: u16, l4: L4) -> Pkt {
        Pkt {
            src_mac,
            dst_mac: OUR_MAC,
            src,
            dst,
            ttl: 64,
            ident,
            l4,
            payload: vec![],
        }
    }

    fn tcp(
        src_mac: [u8; 6],
        src: SocketAddr,
        dst: SocketAddr,
        flags: &str,
        seq: u32,
        ack: u32,
    ) -> Pkt {
        let ident = (seq as u16) ^ src.port();
        let mss = if src.is_ipv6() { 1440 } else { 1460 };
        let l4 = L4::Tcp(Box::new(tcp_header(flags, seq, ack, mss)));
        Pkt::new(src_mac, src, dst, ident, l4)
    }

    fn udp(src_mac: [u8; 6], src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Pkt {
        let ident = src.port() ^ 0x5a5a ^ payload.len() as u16;
        Pkt::new(src_mac, src, dst, ident, L4::Udp { zero: false }).data(payload)
    }

    fn data(mut self, payload: &[u8]) -> Pkt {
        self.payload = payload.to_vec();
        self
    }

    fn ttl(mut self, ttl: u8) -> Pkt {
        self.ttl = ttl;
        self
    }

    fn no_udp_checksum(mut self) -> Pkt {
        self.l4 = L4::Udp { zero: true };
        self
    }

    /// What rvsd sends for this packet: from our MAC to `mac`, addresses
    /// and ports as given, one hop less, everything else as it came.
    fn fwd(&self, mac: [u8; 6], src: SocketAddr, dst: SocketAddr) -> Pkt {
        Pkt {
            src_mac: OUR_MAC,
            dst_mac: mac,
            src,
            dst,
            ttl: self.ttl - 1,
            ..self.clone()
        }
    }

    fn l4_bytes(&self) -> (u8, Vec<u8>) {
        let (s, d) = (self.src.ip(), self.dst.ip());
        match &self.l4 {
            L4::Tcp(h) => {
                let mut h = (**h).clone();
                h.source_port = self.src.port();
                h.destination_port = self.dst.port();
                h.checksum = match (s, d) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => h
                        .calc_checksum_ipv4_raw(s.octets(), d.octets(), &self.payload)
                        .unwrap(),
                    (IpAddr::V6(s), IpAddr::V6(d)) => h
                        .calc_checksum_ipv6_raw(s.octets(), d.octets(), &self.payload)
                        .unwrap(),
                    _ => panic!("mixed families"),
                };
                let mut v = h.to_bytes().to_vec();
                v.extend_from_slice(&self.payload);
                (6, v)
            }
            L4::Udp { zero } => {
                let mut h = UdpHeader {
                    source_port: self.src.port(),
                    destination_port: self.dst.port(),
                    length: (8 + self.payload.len()) as u16,
                    checksum: 0,
                };
                if !zero {
                    h.checksum = match (s, d) {
                        (IpAddr::V4(s), IpAddr::V4(d)) => h
                            .calc_checksum_ipv4_raw(s.octets(), d.octets(), &self.payload)
                            .unwrap(),
                        (IpAddr::V6(s), IpAddr::V6(d)) => h
                            .calc_checksum_ipv6_raw(s.octets(), d.octets(), &self.payload)
                            .unwrap(),
                        _ => panic!("mixed families"),
                    };
                }
                let mut v = h.to_bytes().to_vec();
                v.extend_from_slice(&self.payload);
                (17, v)
            }
        }
    }

    /// The IP datagram, without the Ethernet header.
    fn ip_bytes(&self) -> Vec<u8> {
        let (proto, body) = self.l4_bytes();
        let mut out = Vec::new();
        match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut h = Ipv4Header::new(
                    body.len() as u16,
                    self.ttl,
                    IpNumber(proto),
                    s.octets(),
                    d.octets(),
                )
                .unwrap();
                h.dscp = Ipv4Dscp::try_new(10).unwrap();
                h.ecn = Ipv4Ecn::ONE;
                h.identification = self.ident;
                h.header_checksum = h.calc_header_checksum();
                h.write(&mut out).unwrap();
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                Ipv6Header {
                    traffic_class: 0xb9,
                    flow_label: Ipv6FlowLabel::try_new(u32::from(self.ident)).unwrap(),
                    payload_length: body.len() as u16,
                    next_header: IpNumber(proto),
                    hop_limit: self.ttl,
                    source: s.octets(),
                    destination: d.octets(),
                }
                .write(&mut out)
                .unwrap();
            }
            _ => panic!("mixed families"),
        }
        out.extend_from_slice(&body);
        out
    }

    fn bytes(&self) -> Vec<u8> {
        let ip = self.ip_bytes();
        let mut out = Vec::new();
        Ethernet2Header {
            source: self.src_mac,
            destination: self.dst_mac,
            ether_type: if self.src.is_ipv4() {
                EtherType::IPV4
            } else {
                EtherType::IPV6
            },
        }
        .write(&mut out)
        .unwrap();
        out.extend_from_slice(&ip);
        out
    }
}

/// An ARP request for one of rvsd's addresses: rvsd learns the sender.
fn arp_request(mac: [u8; 6], sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&sender);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f
}

/// A neighbour solicitation for one of rvsd's IPv6 addresses, carrying the
/// sender's link-layer address: rvsd learns the sender.
fn neighbour_solicit(mac: [u8; 6], src: &str, target: &str) -> Vec<u8> {
    let target: Ipv6Addr = target.parse().unwrap();
    let t = target.octets();
    let group = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(t[13]),
        u16::from_be_bytes([t[14], t[15]]),
    );
    let mut body = t.to_vec();
    body.extend_from_slice(&[1, 1]);
    body.extend_from_slice(&mac);
    let mut f = Vec::new();
    PacketBuilder::ethernet2(mac, [0x33, 0x33, 0xff, t[13], t[14], t[15]])
        .ipv6(
            src.parse::<Ipv6Addr>().unwrap().octets(),
            group.octets(),
            255,
        )
        .icmpv6(Icmpv6Type::Unknown {
            type_u8: 135,
            code_u8: 0,
            bytes5to8: [0; 4],
        })
        .write(&mut f, &body)
        .unwrap();
    f
}

/// The frames that make the client and both real servers known neighbours.
fn neighbours() -> Vec<Vec<u8>> {
    vec![
        arp_request(CLIENT_MAC, CLIENT, [198, 18, 0, 1]),
        arp_request(RS1_MAC, RS1, SERVER_SIDE),
        arp_request(RS2_MAC, RS2, SERVER_SIDE),
        neighbour_solicit(CLIENT_MAC, "fd00:18::2", "fd00:18::1"),
        neighbour_solicit(RS1_MAC, "fd00:19::11", "fd00:19::1"),
    ]
}

// ---- running rvsd ----

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

/// The IP frames rvsd sent, less its own neighbour discovery (the NA
/// answers and announcements of its addresses).
fn forwarded(frames: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    frames
        .into_iter()
        .filter(|f| match f.get(12..14) {
            Some([0x08, 0x00]) => true,
            Some([0x86, 0xdd]) => !(f.len() > 54 && f[20] == 58 && (133..=137).contains(&f[54])),
            _ => false,
        })
        .collect()
}

struct Run {
    /// The frames `forwarded` keeps, in the order rvsd sent them.
    out: Vec<Vec<u8>>,
    /// rvsd's shutdown summary.
    summary: String,
    log: String,
}

/// Runs one rvsd with `rules` on `input` until `expect` frames came out
/// (each test ends its input with a packet that is forwarded, and rvsd
/// handles a port's packets in order, so by then every frame was seen),
/// then stops it and checks it exits 0.
fn run(tag: &str, rules: &str, input: &[Vec<u8>], expect: usize) -> Run {
    let dir = TempDir::new(tag);
    let (in_pcap, out_pcap) = (dir.path("in.pcap"), dir.path("out.pcap"));
    write_pcap(&in_pcap, input);
    let rules_path = dir.path("rules");
    fs::write(&rules_path, rules).unwrap();
    let config = dir.path("rvsd.toml");
    fs::write(
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
addresses = ["198.18.0.1/24", "198.19.0.1/24", "fd00:18::1/64", "fd00:19::1/64"]
[ctl]
socket = "{}"
rules = "{}"
[metrics]
listen = "off"
[log]
level = "debug"
"#,
            in_pcap.display(),
            out_pcap.display(),
            dir.path("rvsd.sock").display(),
            rules_path.display(),
        ),
    )
    .unwrap();
    // Local ports from the first one up, not from a random point (a
    // debug build's knob; src/laddr/seed.rs).
    let mut rvsd = Daemon::start(&dir, &["env", "RVS_LADDR_SEED=0"], &config);
    let arrived = wait_until(Duration::from_secs(20), || {
        forwarded(read_pcap(&out_pcap)).len() >= expect || rvsd.has_exited()
    });
    let done = rvsd.stop();
    assert!(
        done.status.success(),
        "rvsd exit {:?}; log:\n{}",
        done.status,
        done.stderr
    );
    let out = forwarded(read_pcap(&out_pcap));
    assert!(
        arrived,
        "{} of {expect} frames came out: {:?}; summary:\n{}log:\n{}",
        out.len(),
        out.iter().map(|f| ip_fields(&f[14..])).collect::<Vec<_>>(),
        done.stdout,
        done.stderr
    );
    assert_eq!(
        counter(&done.stdout, "rx"),
        Some(input.len() as u64),
        "{}",
        done.stdout
    );
    Run {
        out,
        summary: done.stdout,
        log: done.stderr,
    }
}

// ---- checks, independent of rvs's own parser and checksum code ----

#[derive(Debug, PartialEq)]
enum L4Fields {
    Tcp {
        sport: u16,
        dport: u16,
        seq: u32,
        ack: u32,
        flags: String,
        window: u16,
        options: Vec<u8>,
    },
    Udp {
        sport: u16,
        dport: u16,
        len: u16,
        no_checksum: bool,
    },
    Other,
}

#[derive(Debug, PartialEq)]
struct IpFields {
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    proto: u8,
    /// IPv4 ToS or IPv6 traffic class.
    tos: u8,
    /// IPv4 identification or IPv6 flow label.
    ident: u32,
    /// IPv4 DF, MF and fragment offset.
    frag: u16,
    len: usize,
    l4: L4Fields,
    payload: Vec<u8>,
}

/// An IP datagram's fields as etherparse reads them.
fn ip_fields(l3: &[u8]) -> IpFields {
    let s = SlicedPacket::from_ip(l3).unwrap_or_else(|e| panic!("unparsable: {e:?}"));
    let mut f = match &s.net {
        Some(NetSlice::Ipv4(ip)) => {
            let h = ip.header();
            IpFields {
                src: IpAddr::V4(h.source_addr()),
                dst: IpAddr::V4(h.destination_addr()),
                ttl: h.ttl(),
                proto: h.protocol().0,
                tos: h.dcp().value() << 2 | h.ecn().value(),
                ident: u32::from(h.identification()),
                frag: u16::from_be_bytes([h.slice()[6], h.slice()[7]]),
                len: usize::from(h.total_len()),
                l4: L4Fields::Other,
                payload: ip.payload().payload.to_vec(),
            }
        }
        Some(NetSlice::Ipv6(ip)) => {
            let h = ip.header();
            IpFields {
                src: IpAddr::V6(h.source_addr()),
                dst: IpAddr::V6(h.destination_addr()),
                ttl: h.hop_limit(),
                proto: h.next_header().0,
                tos: h.traffic_class(),
                ident: h.flow_label().value(),
                frag: 0,
                len: 40 + usize::from(h.payload_length()),
                l4: L4Fields::Other,
                payload: ip.payload().payload.to_vec(),
            }
        }
        _ => panic!("not IP"),
    };
    match &s.transport {
        Some(TransportSlice::Tcp(t)) => {
            let flags = [
                (t.syn(), 'S'),
                (t.ack(), 'A'),
                (t.fin(), 'F'),
                (t.rst(), 'R'),
                (t.psh(), 'P'),
            ];
            f.l4 = L4Fields::Tcp {
                sport: t.source_port(),
                dport: t.destination_port(),
                seq: t.sequence_number(),
                ack: t.acknowledgment_number(),
                flags: flags.iter().filter(|x| x.0).map(|x| x.1).collect(),
                window: t.window_size(),
                options: t.options().to_vec(),
            };
            f.payload = t.payload().to_vec();
        }
        Some(TransportSlice::Udp(u)) => {
            f.l4 = L4Fields::Udp {
                sport: u.source_port(),
                dport: u.destination_port(),
                len: u.length(),
                no_checksum: u.checksum() == 0,
            };
            f.payload = u.payload().to_vec();
        }
        _ => {}
    }
    f
}

/// Sums the IPv4 header and the TCP/UDP checksum of a datagram from its raw
/// bytes, recursing into IP-in-IP. An IPv4 UDP datagram with a zero
/// checksum has none to check; whether it should is the caller's question.
fn assert_checksums(l3: &[u8], what: &str) {
    let (proto, pseudo, l4) = match l3[0] >> 4 {
        4 => {
            let ihl = usize::from(l3[0] & 0x0f) * 4;
            assert_eq!(
                ones_sum(&[&l3[..ihl]]),
                0xffff,
                "{what}: IPv4 header checksum"
            );
            let total = usize::from(u16::from_be_bytes([l3[2], l3[3]]));
            let l4 = &l3[ihl..total];
            let mut p = l3[12..20].to_vec();
            p.extend_from_slice(&[0, l3[9]]);
            p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            (l3[9], p, l4)
        }
        6 => {
            let end = 40 + usize::from(u16::from_be_bytes([l3[4], l3[5]]));
            let l4 = &l3[40..end];
            let mut p = l3[8..40].to_vec();
            p.extend_from_slice(&(l4.len() as u32).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, l3[6]]);
            (l3[6], p, l4)
        }
        v => panic!("{what}: IP version {v}"),
    };
    match proto {
        4 => assert_checksums(l4, what),
        6 => assert_eq!(ones_sum(&[&pseudo, l4]), 0xffff, "{what}: TCP checksum"),
        17 if l3[0] >> 4 == 4 && l4[6..8] == [0, 0] => {}
        17 => assert_eq!(ones_sum(&[&pseudo, l4]), 0xffff, "{what}: UDP checksum"),
        _ => {}
    }
}

/// One frame rvsd sent against the one it should have: Ethernet, IP and
/// L4 fields one by one, checksums summed from scratch, then the bytes.
fn assert_frame(got: &[u8], want: &Pkt, what: &str) {
    let want = want.bytes();
    assert_eq!(&got[..6], &want[..6], "{what}: destination MAC");
    assert_eq!(&got[6..12], &want[6..12], "{what}: source MAC");
    assert_eq!(&got[12..14], &want[12..14], "{what}: ethertype");
    assert_eq!(ip_fields(&got[14..]), ip_fields(&want[14..]), "{what}");
    assert_checksums(&got[14..], what);
    assert_eq!(got, &want[..], "{what}: bytes");
}

fn assert_frames(run: &Run, want: &[(&str, Pkt)]) {
    assert_eq!(
        run.out.len(),
        want.len(),
        "forwarded {} frames, wanted {}: {:?}\n{}",
        run.out.len(),
        want.len(),
        run.out
            .iter()
            .map(|f| ip_fields(&f[14..]))
            .collect::<Vec<_>>(),
        run.summary
    );
    for (got, (what, p)) in run.out.iter().zip(want) {
        assert_frame(got, p, what);
    }
}

/// Each reason in `expected` counted that often, and nothing else dropped.
fn assert_drops(run: &Run, expected: &[(&str, u64)]) {
    for (reason, n) in expected {
        assert_eq!(
            drops(&run.summary, reason),
            *n,
            "{reason}: {}log:\n{}",
            run.summary,
            run.log
        );
    }
    let total: u64 = expected.iter().map(|(_, n)| n).sum();
    assert_eq!(
        counter(&run.summary, "drops"),
        Some(total),
        "{}",
        run.summary
    );
}

// ---- the modes ----

#[test]
fn fullnat_tcp_v4_rewrites_both_directions_through_a_local_address_pool() {
    let vip = v4([198, 18, 0, 100], 80);
    let lip = [198, 19, 0, 50];
    // As in the kernel, -a puts a dest at the head of the list, so rr's
    // first pick is the dest added last: RS1, then RS2.
    let rules = "-A -t 198.18.0.100:80 -s rr\n\
                 -a -t 198.18.0.100:80 -r 198.19.0.12:8080 -b\n\
                 -a -t 198.18.0.100:80 -r 198.19.0.11:8080 -b\n\
                 -P -t 198.18.0.100:80 -z 198.19.0.50 -F pcap\n";
    let (c1, c2) = (v4(CLIENT, 40000), v4(CLIENT, 40001));
    let (r1, r2) = (v4(RS1, 8080), v4(RS2, 8080));
    // Both conns take the next port of the one local address.
    let (l1, l2) = (v4(lip, LPORT), v4(lip, LPORT + 1));
    let cl = |src, flags, seq, ack| Pkt::tcp(CLIENT_MAC, src, vip, flags, seq, ack).ttl(57);
    let rs = |mac, src, dst, flags, seq, ack| Pkt::tcp(mac, src, dst, flags, seq, ack);

    let stray = cl(v4(CLIENT, 40009), "A", 7, 7);
    let syn1 = cl(c1, "S", 1000, 0);
    let syn2 = cl(c2, "S", 5000, 0);
    let synack1 = rs(RS1_MAC, r1, l1, "SA", 9000, 1001);
    let ack1 = cl(c1, "A", 1001, 9001);
    let get = cl(c1, "PA", 1001, 9001).data(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n");
    let page = rs(RS1_MAC, r1, l1, "PA", 9001, 1029).data(b"HTTP/1.1 200 OK\r\n\r\nhello");
    let fin1 = cl(c1, "FA", 1029, 9026);
    let fin2 = rs(RS1_MAC, r1, l1, "FA", 9026, 1030);
    let last_ack = cl(c1, "A", 1030, 9027);
    let synack2 = rs(RS2_MAC, r2, l2, "SA", 7000, 5001);
    let rst = cl(c2, "R", 5001, 0);

    let mut input = neighbours();
    for p in [
        &stray, &syn1, &syn2, &synack1, &ack1, &get, &page, &fin1, &fin2, &last_ack, &synack2, &rst,
    ] {
        input.push(p.bytes());
    }
    let want = [
        ("SYN 1", syn1.fwd(RS1_MAC, l1, r1)),
        ("SYN 2", syn2.fwd(RS2_MAC, l2, r2)),
        ("SYN-ACK 1", synack1.fwd(CLIENT_MAC, vip, c1)),
        ("ACK", ack1.fwd(RS1_MAC, l1, r1)),
        ("request", get.fwd(RS1_MAC, l1, r1)),
        ("response", page.fwd(CLIENT_MAC, vip, c1)),
        ("client FIN", fin1.fwd(RS1_MAC, l1, r1)),
        ("server FIN", fin2.fwd(CLIENT_MAC, vip, c1)),
        ("last ACK", last_ack.fwd(RS1_MAC, l1, r1)),
        ("SYN-ACK 2", synack2.fwd(CLIENT_MAC, vip, c2)),
        ("RST", rst.fwd(RS2_MAC, l2, r2)),
    ];
    let run = run("fnat-tcp", rules, &input, want.len());
    assert_frames(&run, &want);
    assert_drops(&run, &[("no_conn", 1)]);
}

#[test]
fn nat_dr_and_tun_rewrite_what_each_mode_owes() {
    let (nat_vip, dr_vip, tun_vip) = (
        v4([198, 18, 0, 100], 80),
        v4([198, 18, 0, 101], 80),
        v4([198, 18, 0, 102], 80),
    );
    // The DR dest names port 8080: as ipvsadm does, DR keeps the service
    // port, so nothing but MACs and TTL may change.
    let rules = "-A -t 198.18.0.100:80 -s rr\n\
                 -a -t 198.18.0.100:80 -r 198.19.0.11:8080 -m\n\
                 -A -t 198.18.0.101:80 -s rr\n\
                 -a -t 198.18.0.101:80 -r 198.19.0.12:8080 -g\n\
                 -A -t 198.18.0.102:80 -s rr\n\
                 -a -t 198.18.0.102:80 -r 198.19.0.11 -i\n";
    let c = v4(CLIENT, 42000);
    let r1 = v4(RS1, 8080);
    let cl = |dst, flags, seq, ack| Pkt::tcp(CLIENT_MAC, c, dst, flags, seq, ack).ttl(50);

    // NAT: the server routes its replies through rvsd to the client itself.
    let syn = cl(nat_vip, "S", 100, 0);
    let synack = Pkt::tcp(RS1_MAC, r1, c, "SA", 800, 101);
    let get = cl(nat_vip, "PA", 101, 801).data(b"GET /nat HTTP/1.1\r\n\r\n");
    let page = Pkt::tcp(RS1_MAC, r1, c, "PA", 801, 122).data(b"nat page");
    let fin = cl(nat_vip, "FA", 122, 809);
    let rst = Pkt::tcp(RS1_MAC, r1, c, "RA", 809, 123).ttl(3);
    // DR and TUN: only client-to-server packets pass rvsd.
    let dr_syn = cl(dr_vip, "S", 200, 0);
    let dr_get = cl(dr_vip, "PA", 201, 901).data(b"GET /dr HTTP/1.1\r\n\r\n");
    let tun_syn = cl(tun_vip, "S", 300, 0);
    let tun_get = cl(tun_vip, "PA", 301, 701).data(b"GET /tun HTTP/1.1\r\n\r\n");

    let mut input = neighbours();
    for p in [
        &syn, &synack, &get, &page, &fin, &rst, &dr_syn, &dr_get, &tun_syn, &tun_get,
    ] {
        input.push(p.bytes());
    }
    let want = [
        ("NAT SYN", syn.fwd(RS1_MAC, c, r1)),
        ("NAT SYN-ACK", synack.fwd(CLIENT_MAC, nat_vip, c)),
        ("NAT request", get.fwd(RS1_MAC, c, r1)),
        ("NAT response", page.fwd(CLIENT_MAC, nat_vip, c)),
        ("NAT FIN", fin.fwd(RS1_MAC, c, r1)),
        ("NAT RST", rst.fwd(CLIENT_MAC, nat_vip, c)),
        ("DR SYN", dr_syn.fwd(RS2_MAC, c, dr_vip)),
        ("DR request", dr_get.fwd(RS2_MAC, c, dr_vip)),
    ];
    let run = run("nat-dr-tun", rules, &input, want.len() + 2);
    let (plain, tunnelled) = run.out.split_at(want.len());
    assert_frames(
        &Run {
            out: plain.to_vec(),
            summary: run.summary.clone(),
            log: String::new(),
        },
        &want,
    );
    for (got, (what, inner)) in tunnelled
        .iter()
        .zip([("TUN SYN", &tun_syn), ("TUN request", &tun_get)])
    {
        assert_eq!(&got[..6], &RS1_MAC, "{what}: destination MAC");
        assert_eq!(&got[6..12], &OUR_MAC, "{what}: source MAC");
        assert_eq!(&got[12..14], &[0x08, 0x00], "{what}: ethertype");
        let outer = ip_fields(&got[14..]);
        let inner_want = inner.fwd(OUR_MAC, c, tun_vip).ip_bytes();
        let want_outer = IpFields {
            src: IpAddr::V4(SERVER_SIDE.into()),
            dst: IpAddr::V4(RS1.into()),
            ttl: 64,
            proto: 4,
            tos: ip_fields(&inner_want).tos,
            // The outer ID is rvsd's choice; DF is copied from the inner.
            ident: outer.ident,
            frag: 0x4000,
            len: 20 + inner_want.len(),
            l4: L4Fields::Other,
            payload: inner_want.clone(),
        };
        assert_eq!(outer, want_outer, "{what}");
        assert_eq!(got.len(), 14 + 20 + inner_want.len(), "{what}: length");
        assert_checksums(&got[14..], what);
        assert_eq!(
            ip_fields(&got[34..]),
            ip_fields(&inner_want),
            "{what}: inner"
        );
        assert_eq!(&got[34..], &inner_want[..], "{what}: inner bytes");
    }
    assert_drops(&run, &[]);
}

#[test]
fn udp_through_fullnat_and_nat_keeps_a_missing_checksum_missing() {
    let (fnat_vip, nat_vip) = (v4([198, 18, 0, 100], 53), v4([198, 18, 0, 101], 53));
    let rules = "-A -u 198.18.0.100:53 -s rr\n\
                 -a -u 198.18.0.100:53 -r 198.19.0.11:5353 -b\n\
                 -A -u 198.18.0.101:53 -s rr\n\
                 -a -u 198.18.0.101:53 -r 198.19.0.12:53 -m\n";
    let r1 = v4(RS1, 5353);
    let r2 = v4(RS2, 53);
    let (c1, c2, c3, c4) = (
        v4(CLIENT, 43000),
        v4(CLIENT, 43001),
        v4(CLIENT, 43002),
        v4(CLIENT, 43003),
    );
    // No -P pool: the local address is rvsd's own on the servers' subnet.
    let (l1, l2) = (v4(SERVER_SIDE, LPORT), v4(SERVER_SIDE, LPORT + 1));

    let q1 = Pkt::udp(CLIENT_MAC, c1, fnat_vip, b"query one");
    let a1 = Pkt::udp(RS1_MAC, r1, l1, b"answer one");
    let q1b = Pkt::udp(CLIENT_MAC, c1, fnat_vip, b"query one again");
    let q2 = Pkt::udp(CLIENT_MAC, c2, fnat_vip, b"no checksum").no_udp_checksum();
    let a2 = Pkt::udp(RS1_MAC, r1, l2, b"none back").no_udp_checksum();
    let q3 = Pkt::udp(CLIENT_MAC, c3, nat_vip, b"nat query").ttl(2);
    let a3 = Pkt::udp(RS2_MAC, r2, c3, b"nat answer");
    let q4 = Pkt::udp(CLIENT_MAC, c4, nat_vip, b"nat, no checksum").no_udp_checksum();
    let a4 = Pkt::udp(RS2_MAC, r2, c4, b"").no_udp_checksum();

    let mut input = neighbours();
    for p in [&q1, &a1, &q1b, &q2, &a2, &q3, &a3, &q4] {
        input.push(p.bytes());
    }
    // 42 bytes: the wire pads it to Ethernet's 60, and the padding must
    // neither reach the checksum nor go out with the rewritten datagram.
    let mut padded = a4.bytes();
    padded.resize(60, 0);
    input.push(padded);
    let want = [
        ("FULLNAT query", q1.fwd(RS1_MAC, l1, r1)),
        ("FULLNAT answer", a1.fwd(CLIENT_MAC, fnat_vip, c1)),
        ("FULLNAT query on the same conn", q1b.fwd(RS1_MAC, l1, r1)),
        ("FULLNAT query without checksum", q2.fwd(RS1_MAC, l2, r1)),
        (
            "FULLNAT answer without checksum",
            a2.fwd(CLIENT_MAC, fnat_vip, c2),
        ),
        ("NAT query", q3.fwd(RS2_MAC, c3, r2)),
        ("NAT answer", a3.fwd(CLIENT_MAC, nat_vip, c3)),
        ("NAT query without checksum", q4.fwd(RS2_MAC, c4, r2)),
        (
            "NAT answer without checksum",
            a4.fwd(CLIENT_MAC, nat_vip, c4),
        ),
    ];
    let run = run("udp", rules, &input, want.len());
    assert_frames(&run, &want);
    for (f, (what, p)) in run.out.iter().zip(&want) {
        let zero = f[14 + 20 + 6..14 + 20 + 8] == [0, 0];
        assert_eq!(zero, matches!(p.l4, L4::Udp { zero: true }), "{what}");
    }
    assert_drops(&run, &[]);
}

#[test]
fn fullnat_v6_tcp_and_udp_each_take_a_local_address_port() {
    let vip = v6("fd00:18::100", 80);
    let dns_vip = v6("fd00:18::100", 53);
    let rules = "-A -t [fd00:18::100]:80 -s rr\n\
                 -a -t [fd00:18::100]:80 -r [fd00:19::11]:8080 -b\n\
                 -A -u [fd00:18::100]:53 -s rr\n\
                 -a -u [fd00:18::100]:53 -r [fd00:19::11]:5353 -b\n";
    let c = v6("fd00:18::2", 44000);
    let r = v6("fd00:19::11", 8080);
    let dns = v6("fd00:19::11", 5353);
    // TCP and UDP ports are separate namespaces, so the allocator keeps a
    // cursor for each: both conns take the first port of the address.
    let l = v6("fd00:19::1", LPORT);
    let ldns = v6("fd00:19::1", LPORT);
    let cl = |flags, seq, ack| Pkt::tcp(CLIENT_MAC, c, vip, flags, seq, ack).ttl(33);
    let rs = |flags, seq, ack| Pkt::tcp(RS1_MAC, r, l, flags, seq, ack);

    let syn = cl("S", 1, 0);
    let synack = rs("SA", 50, 2);
    let get = cl("PA", 2, 51).data(b"GET /v6 HTTP/1.1\r\n\r\n");
    let page = rs("PA", 51, 23).data(b"v6 page");
    let fin = cl("FA", 23, 58);
    let rst = rs("R", 58, 0);
    let q = Pkt::udp(CLIENT_MAC, v6("fd00:18::2", 44001), dns_vip, b"v6 query");
    let a = Pkt::udp(RS1_MAC, dns, ldns, b"v6 answer");
    // RFC 8200 forbids a zero UDP checksum over IPv6: dropped as a bad
    // header, not forwarded with the zero rewritten.
    let zero = Pkt::udp(CLIENT_MAC, v6("fd00:18::2", 44002), dns_vip, b"zero").no_udp_checksum();
    let q_again = Pkt::udp(CLIENT_MAC, v6("fd00:18::2", 44001), dns_vip, b"again");

    let mut input = neighbours();
    for p in [
        &syn, &synack, &get, &page, &fin, &rst, &q, &a, &zero, &q_again,
    ] {
        input.push(p.bytes());
    }
    let want = [
        ("SYN", syn.fwd(RS1_MAC, l, r)),
        ("SYN-ACK", synack.fwd(CLIENT_MAC, vip, c)),
        ("request", get.fwd(RS1_MAC, l, r)),
        ("response", page.fwd(CLIENT_MAC, vip, c)),
        ("FIN", fin.fwd(RS1_MAC, l, r)),
        ("RST", rst.fwd(CLIENT_MAC, vip, c)),
        ("UDP query", q.fwd(RS1_MAC, ldns, dns)),
        ("UDP answer", a.fwd(CLIENT_MAC, dns_vip, q.src)),
        ("UDP query again", q_again.fwd(RS1_MAC, ldns, dns)),
    ];
    let run = run("fnat-v6", rules, &input, want.len());
    assert_frames(&run, &want);
    assert_drops(&run, &[("bad_header", 1)]);
}

/// Sets an IPv4 frame's header checksum right after the header was edited.
fn fix_ip_checksum(f: &mut [u8]) {
    let ihl = usize::from(f[14] & 0x0f) * 4;
    f[24..26].copy_from_slice(&[0, 0]);
    let end = (14 + ihl).min(f.len());
    let c = !ones_sum(&[&f[14..end]]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

fn edited(f: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut f = f.to_vec();
    edit(&mut f);
    f
}

#[test]
fn malformed_packets_to_a_vip_are_dropped_and_counted() {
    let vip = v4([198, 18, 0, 100], 80);
    let dns_vip = v4([198, 18, 0, 100], 53);
    let rules = "-A -t 198.18.0.100:80 -s rr\n\
                 -a -t 198.18.0.100:80 -r 198.19.0.11:8080 -m\n\
                 -A -u 198.18.0.100:53 -s rr\n\
                 -a -u 198.18.0.100:53 -r 198.19.0.11:53 -m\n";
    // A SYN without TCP options: 20 + 20 bytes of IP.
    let syn = |port| {
        let mut p = Pkt::tcp(CLIENT_MAC, v4(CLIENT, port), vip, "S", 1, 0);
        if let L4::Tcp(h) = &mut p.l4 {
            h.set_options(&[]).unwrap();
        }
        p.bytes()
    };
    let set_total = |f: &mut Vec<u8>, n: u16| {
        f[16..18].copy_from_slice(&n.to_be_bytes());
        fix_ip_checksum(f);
    };
    let v6_syn = Pkt::tcp(
        CLIENT_MAC,
        v6("fd00:18::2", 45000),
        v6("fd00:18::1", 80),
        "S",
        1,
        0,
    )
    .bytes();
    let udp = Pkt::udp(CLIENT_MAC, v4(CLIENT, 45100), dns_vip, b"abcd").bytes();

    // Which reason each gets: a frame whose IP header, or whose TCP or UDP
    // header, does not add up is a bad header, whichever stage finds it; a
    // later fragment whose first fragment never came has no ports to find
    // a conn by (frag_no_first). IP options and
    // fragments with their first are forwarded (tests/forwarding.rs,
    // src/xmit/opts_tests.rs).
    let bad: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "shorter than Ethernet",
            "bad_header",
            syn(45001)[..10].to_vec(),
        ),
        ("IP cut short", "bad_header", syn(45002)[..14 + 30].to_vec()),
        (
            "IHL 4",
            "bad_header",
            edited(&syn(45003), |f| {
                f[14] = 0x44;
                fix_ip_checksum(f);
            }),
        ),
        (
            "IHL past the datagram",
            "bad_header",
            edited(&syn(45004), |f| {
                f[14] = 0x4f;
                fix_ip_checksum(f);
            }),
        ),
        (
            "total length past the frame",
            "bad_header",
            edited(&syn(45005), |f| set_total(f, 1000)),
        ),
        (
            "total length below the header",
            "bad_header",
            edited(&syn(45006), |f| set_total(f, 19)),
        ),
        (
            "bad IP checksum",
            "bad_header",
            edited(&syn(45007), |f| f[24] ^= 0x5a),
        ),
        (
            "version 6 in an IPv4 frame",
            "bad_header",
            edited(&syn(45008), |f| {
                f[14] = 0x65;
            }),
        ),
        (
            "IPv6 payload length past the frame",
            "bad_header",
            edited(&v6_syn, |f| {
                f[18..20].copy_from_slice(&200u16.to_be_bytes());
            }),
        ),
        (
            "total length cutting the TCP header",
            "bad_header",
            edited(&syn(45009), |f| set_total(f, 30)),
        ),
        (
            "TCP data offset past the segment",
            "bad_header",
            edited(&syn(45010), |f| {
                f[14 + 20 + 12] = 0xf0;
            }),
        ),
        (
            "UDP length past the datagram",
            "bad_header",
            edited(&udp, |f| {
                f[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&100u16.to_be_bytes());
            }),
        ),
        (
            "later fragment",
            "frag_no_first",
            edited(&syn(45013), |f| {
                f[20..22].copy_from_slice(&[0x00, 0x08]);
                fix_ip_checksum(f);
            }),
        ),
    ];

    let good = Pkt::tcp(CLIENT_MAC, v4(CLIENT, 45999), vip, "S", 1, 0);
    let mut input = neighbours();
    input.extend(bad.iter().map(|(_, _, f)| f.clone()));
    // Forwarded only if the worker came through all of the above.
    input.push(good.bytes());
    let run = run("malformed", rules, &input, 1);
    assert_frames(
        &run,
        &[("SYN after them", good.fwd(RS1_MAC, good.src, v4(RS1, 8080)))],
    );
    let count = |reason| bad.iter().filter(|(_, r, _)| *r == reason).count() as u64;
    assert_drops(
        &run,
        &[
            ("bad_header", count("bad_header")),
            ("frag_no_first", count("frag_no_first")),
        ],
    );
}

/// `--toa on`: the SYN to the real server carries DPVS's TOA option (kind
/// 254, length 8: the client's port and IPv4 address) right after the fixed
/// TCP header, and so does the ACK that completes the handshake, which is
/// where the Linux toa module reads it. Everything else is unchanged.
#[test]
fn toa_carries_the_client_address_to_the_real_server() {
    let vip = v4([198, 18, 0, 100], 80);
    let rules = "-A -t 198.18.0.100:80 -s rr\n\
                 -a -t 198.18.0.100:80 -r 198.19.0.11:8080 -b\n\
                 --toa on -t 198.18.0.100:80\n";
    let c = v4(CLIENT, 40000);
    let (r, l) = (v4(RS1, 8080), v4(SERVER_SIDE, LPORT));
    let syn = Pkt::tcp(CLIENT_MAC, c, vip, "S", 1000, 0);
    let synack = Pkt::tcp(RS1_MAC, r, l, "SA", 9000, 1001);
    let ack = Pkt::tcp(CLIENT_MAC, c, vip, "A", 1001, 9001);
    let mut input = neighbours();
    for p in [&syn, &synack, &ack] {
        input.push(p.bytes());
    }
    let run = run("toa", rules, &input, 3);
    assert_eq!(run.out.len(), 3, "{}", run.log);
    let toa = [254u8, 8, 0x9c, 0x40, 198, 18, 0, 2];
    for (i, what) in [(0, "SYN"), (2, "handshake ACK")] {
        let l3 = &run.out[i][14..];
        assert_checksums(l3, what);
        let ihl = usize::from(l3[0] & 0x0f) * 4;
        let tcp = &l3[ihl..];
        let sent = &input[input.len() - 3 + i][14 + 20..];
        let sent_off = usize::from(sent[12] >> 4) * 4;
        assert_eq!(
            usize::from(tcp[12] >> 4) * 4,
            sent_off + 8,
            "{what}: data offset grew by the option"
        );
        assert_eq!(
            &tcp[20..28],
            &toa,
            "{what}: TOA right after the fixed header"
        );
        assert_eq!(
            &tcp[28..sent_off + 8],
            &sent[20..sent_off],
            "{what}: the client's options follow unchanged"
        );
        assert_eq!(
            (&l3[12..16], &l3[16..20]),
            (&[198, 19, 0, 1][..], &RS1[..]),
            "{what}: LIP -> RIP"
        );
    }
    // The reply direction carries no option.
    let back = &run.out[1][14..];
    let tcp = &back[usize::from(back[0] & 0x0f) * 4..];
    assert!(
        !tcp[20..usize::from(tcp[12] >> 4) * 4].contains(&254),
        "no TOA toward the client"
    );
    assert_drops(&run, &[]);
}

// ---- ICMP ----

/// An Ethernet frame carrying an IPv4 ICMP message: `ip` gives the outer
/// header's fields (its length and checksum are filled in here), the ICMP
/// checksum is summed with `ones_sum`.
fn icmp4_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    mut ip: Ipv4Header,
    (msg_type, code): (u8, u8),
    quote: &[u8],
) -> Vec<u8> {
    let mut msg = vec![msg_type, code, 0, 0, 0, 0, 0, 0];
    msg.extend_from_slice(quote);
    let c = !ones_sum(&[&msg]);
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    ip.protocol = IpNumber::ICMP;
    ip.set_payload_len(msg.len()).unwrap();
    ip.header_checksum = ip.calc_header_checksum();
    let mut f = Vec::new();
    Ethernet2Header {
        source: src_mac,
        destination: dst_mac,
        ether_type: EtherType::IPV4,
    }
    .write(&mut f)
    .unwrap();
    ip.write(&mut f).unwrap();
    f.extend_from_slice(&msg);
    f
}

/// An outer IPv4 header as the sender of an ICMP error might write it.
fn icmp4_ip(src: [u8; 4], dst: [u8; 4], ttl: u8, tos: u8, ident: u16, df: bool) -> Ipv4Header {
    let mut h = Ipv4Header::new(0, ttl, IpNumber::ICMP, src, dst).unwrap();
    h.dscp = Ipv4Dscp::try_new(tos >> 2).unwrap();
    h.ecn = Ipv4Ecn::try_new(tos & 3).unwrap();
    h.identification = ident;
    h.dont_fragment = df;
    h
}

/// An ICMP frame rvsd sent against the one it should have: etherparse reads
/// the type and the quote, every checksum (outer IPv4, ICMP, and the quoted
/// IPv4 and L4 ones, the quote being whole) is summed from the raw bytes,
/// then the frames are compared byte for byte.
fn assert_icmp_frame(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(&got[..14], &want[..14], "{what}: Ethernet header");
    let (g, w) = (ip_fields(&got[14..]), ip_fields(&want[14..]));
    assert_eq!(
        (g.src, g.dst, g.ttl, g.proto, g.tos, g.ident, g.frag, g.len),
        (w.src, w.dst, w.ttl, w.proto, w.tos, w.ident, w.frag, w.len),
        "{what}: outer IPv4"
    );
    let s = SlicedPacket::from_ethernet(got).unwrap();
    let Some(TransportSlice::Icmpv4(icmp)) = &s.transport else {
        panic!("{what}: not ICMP: {:?}", s.transport);
    };
    let (want_type, want_code) = (want[14 + 20], want[14 + 20 + 1]);
    assert_eq!(
        (icmp.type_u8(), icmp.code_u8()),
        (want_type, want_code),
        "{what}: ICMP type and code"
    );
    let quote = icmp.payload();
    assert_eq!(
        ip_fields(quote),
        ip_fields(&want[14 + 20 + 8..]),
        "{what}: quoted datagram"
    );
    assert_checksums(&got[14..], what);
    assert_eq!(
        ones_sum(&[&got[14 + 20..]]),
        0xffff,
        "{what}: ICMP checksum"
    );
    assert_checksums(quote, &format!("{what}: quote"));
    assert_eq!(got, want, "{what}: bytes");
}

/// ICMP errors about a conn cross rvsd the way the conn's packets do: an
/// error from the real server's side about a packet rvsd forwarded reaches
/// the client as if about the client's own packet, and one from the
/// client's side about a reply reaches the real server as if about the
/// server's own packet (ip_vs_out_icmp / ip_vs_in_icmp; DPVS for FULLNAT).
/// The outer header loses a hop and nothing else but its addresses; the
/// quote comes back exactly as the other side sent it, one hop down.
#[test]
fn icmp_errors_about_a_conn_reach_the_other_side_rewritten() {
    let (fnat_vip, nat_vip) = (v4([198, 18, 0, 100], 80), v4([198, 18, 0, 101], 80));
    let rules = "-A -t 198.18.0.100:80 -s rr\n\
                 -a -t 198.18.0.100:80 -r 198.19.0.11:8080 -b\n\
                 -A -t 198.18.0.101:80 -s rr\n\
                 -a -t 198.18.0.101:80 -r 198.19.0.12:8080 -m\n";
    let unreach = (3, 3);
    let (c1, c2) = (v4(CLIENT, 41000), v4(CLIENT, 41001));
    let (r1, r2) = (v4(RS1, 8080), v4(RS2, 8080));
    let l = v4(SERVER_SIDE, LPORT);
    let ip = |a: SocketAddr| match a.ip() {
        IpAddr::V4(v) => v.octets(),
        IpAddr::V6(_) => unreachable!(),
    };

    let syn1 = Pkt::tcp(CLIENT_MAC, c1, fnat_vip, "S", 1000, 0);
    let synack1 = Pkt::tcp(RS1_MAC, r1, l, "SA", 9000, 1001);
    let syn2 = Pkt::tcp(CLIENT_MAC, c2, nat_vip, "S", 2000, 0);
    let synack2 = Pkt::tcp(RS2_MAC, r2, c2, "SA", 8000, 2001);

    // Each error quotes the packet as its sender received it from rvsd.
    let from_client = |dst, ident, quote: &Pkt| {
        let h = icmp4_ip(CLIENT, ip(dst), 64, 0, ident, false);
        icmp4_frame(CLIENT_MAC, OUR_MAC, h, unreach, &quote.ip_bytes())
    };
    let from_server = |mac, src, dst, ident, quote: &Pkt| {
        let h = icmp4_ip(src, dst, 64, 0, ident, false);
        icmp4_frame(mac, OUR_MAC, h, unreach, &quote.ip_bytes())
    };
    let fnat_client_err = from_client(fnat_vip, 0x1111, &synack1.fwd(CLIENT_MAC, fnat_vip, c1));
    let fnat_server_err = from_server(RS1_MAC, RS1, SERVER_SIDE, 0x2222, &syn1.fwd(RS1_MAC, l, r1));
    let nat_client_err = from_client(nat_vip, 0x3333, &synack2.fwd(CLIENT_MAC, nat_vip, c2));
    // A NAT server answers the client itself, through rvsd.
    let nat_server_err = from_server(RS2_MAC, RS2, CLIENT, 0x4444, &syn2.fwd(RS2_MAC, c2, r2));

    // The relayed errors: the quote is what the receiver itself sent, with
    // the TTL it had after rvsd's hop.
    let relayed = |mac, src, dst, ident, quote: Pkt| {
        let h = icmp4_ip(src, dst, 63, 0, ident, false);
        icmp4_frame(OUR_MAC, mac, h, unreach, &quote.ip_bytes())
    };
    let fnat_to_server = relayed(
        RS1_MAC,
        SERVER_SIDE,
        RS1,
        0x1111,
        synack1.fwd(OUR_MAC, r1, l),
    );
    let fnat_to_client = relayed(
        CLIENT_MAC,
        ip(fnat_vip),
        CLIENT,
        0x2222,
        syn1.fwd(OUR_MAC, c1, fnat_vip),
    );
    // NAT leaves the client's address alone on both sides.
    let nat_to_server = relayed(RS2_MAC, CLIENT, RS2, 0x3333, synack2.fwd(OUR_MAC, r2, c2));
    let nat_to_client = relayed(
        CLIENT_MAC,
        ip(nat_vip),
        CLIENT,
        0x4444,
        syn2.fwd(OUR_MAC, c2, nat_vip),
    );

    let mut input = neighbours();
    input.extend([
        syn1.bytes(),
        synack1.bytes(),
        fnat_client_err,
        fnat_server_err,
        syn2.bytes(),
        synack2.bytes(),
        nat_client_err,
        nat_server_err,
    ]);
    let run = run("icmp-relay", rules, &input, 8);
    assert_eq!(run.out.len(), 8, "{}", run.log);
    let packets = [
        ("FULLNAT SYN", 0, syn1.fwd(RS1_MAC, l, r1)),
        ("FULLNAT SYN-ACK", 1, synack1.fwd(CLIENT_MAC, fnat_vip, c1)),
        ("NAT SYN", 4, syn2.fwd(RS2_MAC, c2, r2)),
        ("NAT SYN-ACK", 5, synack2.fwd(CLIENT_MAC, nat_vip, c2)),
    ];
    for (what, i, p) in &packets {
        assert_frame(&run.out[*i], p, what);
    }
    let errors = [
        ("FULLNAT client's error to the server", 2, &fnat_to_server),
        ("FULLNAT server's error to the client", 3, &fnat_to_client),
        ("NAT client's error to the server", 6, &nat_to_server),
        ("NAT server's error to the client", 7, &nat_to_client),
    ];
    for (what, i, want) in errors {
        assert_icmp_frame(&run.out[i], want, what);
    }
    assert_drops(&run, &[]);
}

/// rvs's mark rules stand in for iptables' MARK: one rule covering ports
/// 80 to 443 of a VIP feeds a `-f` service whose FULLNAT dests name port 0,
/// so each conn goes to the port the client asked for. A port outside the
/// rule meets no service.
#[test]
fn firewall_mark_rules_send_two_ports_to_one_service() {
    let rules = "--mark-add 198.18.0.100 tcp 80:443 10\n\
                 -A -f 10 -s rr\n\
                 -a -f 10 -r 198.19.0.12:0 -b\n\
                 -a -f 10 -r 198.19.0.11:0 -b\n";
    let vip = |port| v4([198, 18, 0, 100], port);
    let (c1, c2, c3) = (v4(CLIENT, 46000), v4(CLIENT, 46001), v4(CLIENT, 46002));
    let (l1, l2) = (v4(SERVER_SIDE, LPORT), v4(SERVER_SIDE, LPORT + 1));
    let http = Pkt::tcp(CLIENT_MAC, c1, vip(80), "S", 100, 0);
    let https = Pkt::tcp(CLIENT_MAC, c2, vip(443), "S", 200, 0);
    let ssh = Pkt::tcp(CLIENT_MAC, c3, vip(22), "S", 300, 0);
    let synack = Pkt::tcp(RS1_MAC, v4(RS1, 80), l1, "SA", 900, 101);
    let mut input = neighbours();
    for p in [&http, &ssh, &synack, &https] {
        input.push(p.bytes());
    }
    let want = [
        ("SYN to port 80", http.fwd(RS1_MAC, l1, v4(RS1, 80))),
        ("SYN-ACK", synack.fwd(CLIENT_MAC, vip(80), c1)),
        ("SYN to port 443", https.fwd(RS2_MAC, l2, v4(RS2, 443))),
    ];
    let run = run("fwmark", rules, &input, want.len());
    assert_frames(&run, &want);
    // A host mark rule's address is a VIP rvsd owns (it answers ARP and
    // ping for it), so the port-22 SYN reaches the network stack as TCP to
    // one of its own addresses, which it does not serve.
    assert_drops(&run, &[("unsupported", 1)]);
    assert!(
        run.out.len() >= want.len(),
        "the mark rule's VIP was announced too: {}",
        run.log
    );
}

/// A client packet that would leave rvsd with TTL 0 is not forwarded:
/// rvsd answers with time exceeded in transit from its own address on the
/// client's subnet, quoting the datagram as the client sent it, as a
/// router does (RFC 1812 5.3.1), and counts the drop.
#[test]
fn ttl_one_gets_time_exceeded_back() {
    let vip = v4([198, 18, 0, 100], 80);
    let rules = "-A -t 198.18.0.100:80 -s rr\n\
                 -a -t 198.18.0.100:80 -r 198.19.0.11:8080 -b\n";
    let (c1, c2) = (v4(CLIENT, 47000), v4(CLIENT, 47001));
    let dying = Pkt::tcp(CLIENT_MAC, c1, vip, "S", 100, 0).ttl(1);
    let next = Pkt::tcp(CLIENT_MAC, c2, vip, "S", 200, 0);
    let mut input = neighbours();
    input.extend([dying.bytes(), next.bytes()]);
    let run = run("ttl-one", rules, &input, 2);
    assert_eq!(run.out.len(), 2, "{}", run.log);
    // Linux's marks on the errors it originates: precedence "internetwork
    // control", ID 0, no DF; a fresh TTL.
    let want = icmp4_frame(
        OUR_MAC,
        CLIENT_MAC,
        icmp4_ip([198, 18, 0, 1], CLIENT, 64, 0xc0, 0, false),
        (11, 0),
        &dying.ip_bytes(),
    );
    assert_icmp_frame(&run.out[0], &want, "time exceeded");
    assert_eq!(
        &run.out[0][14 + 20 + 8..14 + 20 + 8 + 20],
        &dying.ip_bytes()[..20],
        "the quote starts with the IP header as sent"
    );
    // The dying SYN was scheduled, and so took the first local port,
    // before the rewrite refused it.
    assert_frame(
        &run.out[1],
        &next.fwd(RS1_MAC, v4(SERVER_SIDE, LPORT + 1), v4(RS1, 8080)),
        "SYN after it",
    );
    assert_drops(&run, &[("unsupported", 1)]);
}

/// The kernel's conn_reuse_mode=1: when a client reuses its source port and
/// the old conn is in TIME_WAIT, the new SYN is scheduled afresh (rr moves
/// on to the other server, a new local port is taken) instead of riding the
/// old conn to the old server.
#[test]
fn a_syn_on_a_time_wait_conn_is_scheduled_anew() {
    let vip = v4([198, 18, 0, 100], 80);
    let rules = "-A -t 198.18.0.100:80 -s rr\n\
                 -a -t 198.18.0.100:80 -r 198.19.0.12:8080 -b\n\
                 -a -t 198.18.0.100:80 -r 198.19.0.11:8080 -b\n";
    let c = v4(CLIENT, 40000);
    let (r1, r2) = (v4(RS1, 8080), v4(RS2, 8080));
    let (l1, l2) = (v4(SERVER_SIDE, LPORT), v4(SERVER_SIDE, LPORT + 1));
    let cl = |flags, seq, ack| Pkt::tcp(CLIENT_MAC, c, vip, flags, seq, ack);
    // The server closes first, so the client's FIN puts the conn in
    // TIME_WAIT (OUTPUT fin ES->FW, INPUT fin FW->TW).
    let syn = cl("S", 1000, 0);
    let synack = Pkt::tcp(RS1_MAC, r1, l1, "SA", 9000, 1001);
    let ack = cl("A", 1001, 9001);
    let server_fin = Pkt::tcp(RS1_MAC, r1, l1, "FA", 9001, 1001);
    let client_fin = cl("FA", 1001, 9002);
    let again = cl("S", 7000, 0);
    let mut input = neighbours();
    for p in [&syn, &synack, &ack, &server_fin, &client_fin, &again] {
        input.push(p.bytes());
    }
    let want = [
        ("SYN", syn.fwd(RS1_MAC, l1, r1)),
        ("SYN-ACK", synack.fwd(CLIENT_MAC, vip, c)),
        ("ACK", ack.fwd(RS1_MAC, l1, r1)),
        ("server FIN", server_fin.fwd(CLIENT_MAC, vip, c)),
        ("client FIN", client_fin.fwd(RS1_MAC, l1, r1)),
        (
            "reused port's SYN, scheduled anew",
            again.fwd(RS2_MAC, l2, r2),
        ),
    ];
    let run = run("reuse", rules, &input, want.len());
    assert_frames(&run, &want);
    assert_drops(&run, &[]);
}
