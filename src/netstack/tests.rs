//! The stack seen from the wire. Input frames are built with etherparse (ARP
//! by hand) and outputs are read back with etherparse and a checksum written
//! here, so rvs's own parsers never vouch for what rvs sends.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use etherparse::{
    Ethernet2Slice, Icmpv4Type, Icmpv6Type, LinkSlice, NetSlice, PacketBuilder, SlicedPacket,
    TransportSlice,
};

use super::neigh::{PENDING_PER_HOP, RESOLVE_RETRY_MS};
use super::*;
use crate::counters::{DropReason, WorkerCounters};
use crate::packet::{Packet, VecPacket};
use crate::wire::testutil::XorShift;
use crate::wire::MacAddr;

mod host;
mod trust;

const ETH: usize = 14;
const OUR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const P1_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x11];
const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const GW_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
const OTHER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 9];
const BCAST: [u8; 6] = [0xff; 6];
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];

const ME4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const HOST4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const P1_ADDR: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
const GW4: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 254);
const FAR4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 9);
const ME6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 1);
const HOST6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 2);
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

const NS: u8 = 135;
const NA: u8 = 136;
const NA_S: u8 = 0x40;
const NA_O: u8 = 0x20;
const OPT_SLLA: u8 = 1;
const OPT_TLLA: u8 = 2;

fn config_with(statics: Vec<Route>) -> NetConfig {
    let addr = |a: IpAddr, prefix_len| IfaceAddr {
        addr: a,
        prefix_len,
    };
    NetConfig::new(
        vec![
            Iface {
                port: 0,
                name: "p0".into(),
                mac: MacAddr(OUR_MAC),
                addrs: vec![addr(ME4.into(), 24), addr(ME6.into(), 64)],
                mtu: 1500,
                tx_checksum: false,
            },
            Iface {
                port: 1,
                name: "p1".into(),
                mac: MacAddr(P1_MAC),
                addrs: vec![addr(P1_ADDR.into(), 24)],
                mtu: 1500,
                tx_checksum: false,
            },
        ],
        statics,
    )
}

fn config() -> NetConfig {
    config_with(vec![Route {
        prefix: Ipv4Addr::UNSPECIFIED.into(),
        len: 0,
        port: 1,
        via: Some(GW4.into()),
    }])
}

/// Records what the stack sends; `buffers` bounds what it may allocate
/// (None: any number). The dataplane's tests record with it too.
#[derive(Default)]
pub(crate) struct Wire {
    pub(crate) sent: Vec<(u16, Vec<u8>)>,
    pub(crate) buffers: Option<usize>,
}

impl Output<VecPacket> for Wire {
    fn send(&mut self, port: u16, pkt: VecPacket) {
        self.sent.push((port, pkt.data().to_vec()));
    }
    fn alloc(&mut self) -> Option<VecPacket> {
        match &mut self.buffers {
            Some(0) => None,
            Some(n) => {
                *n -= 1;
                Some(VecPacket::new())
            }
            None => Some(VecPacket::new()),
        }
    }
}

struct Net {
    cfg: NetConfig,
    stack: Stack<VecPacket>,
    counters: Arc<WorkerCounters>,
    wire: Wire,
    now: Millis,
}

/// How the stack accounted for one input frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Outcome {
    Dropped(DropReason),
    Consumed,
    Answered,
}

impl Net {
    fn new(cfg: NetConfig) -> Net {
        let counters = Arc::new(WorkerCounters::default());
        Net {
            cfg,
            stack: Stack::new(64, counters.clone()),
            counters,
            wire: Wire::default(),
            now: 1_000,
        }
    }

    fn rx(&mut self, port: u16, frame: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let pkt = VecPacket::from_bytes(frame, port);
        self.stack.input(&self.cfg, pkt, self.now, &mut self.wire);
        std::mem::take(&mut self.wire.sent)
    }

    fn poll_at(&mut self, now: Millis) -> Vec<(u16, Vec<u8>)> {
        self.now = now;
        self.stack.poll(&self.cfg, now, &mut self.wire);
        std::mem::take(&mut self.wire.sent)
    }

    fn announce(&mut self, addr: impl Into<IpAddr>) -> Vec<(u16, Vec<u8>)> {
        self.stack.announce(&self.cfg, addr.into(), &mut self.wire);
        std::mem::take(&mut self.wire.sent)
    }

    /// What another worker learned, as the control thread passes it on.
    fn know(&mut self, port: u16, ip: impl Into<IpAddr>, mac: [u8; 6]) -> Vec<(u16, Vec<u8>)> {
        let u = NeighUpdate {
            port,
            ip: ip.into(),
            mac: MacAddr(mac),
        };
        self.stack.neighbour(&self.cfg, u, self.now, &mut self.wire);
        std::mem::take(&mut self.wire.sent)
    }

    fn learned(&mut self) -> Vec<NeighUpdate> {
        let mut v = vec![];
        self.stack.drain_learned(|u| v.push(u));
        v
    }

    fn drops(&self) -> Vec<(DropReason, u64)> {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.counters.drops(*r)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    fn solicitations(&self) -> u64 {
        self.counters.arp_requests.get() + self.counters.nd_solicits.get()
    }

    /// Feeds one frame and lets whatever it left waiting for a neighbour
    /// expire, then checks it was counted exactly once: one drop, one
    /// consumed, or one answer (solicitations the stack sent on its own
    /// behalf are not answers).
    fn account(&mut self, port: u16, frame: &[u8]) -> Outcome {
        let before: Vec<u64> = DropReason::ALL
            .iter()
            .map(|r| self.counters.drops(*r))
            .collect();
        let (consumed, solicits) = (self.counters.consumed.get(), self.solicitations());
        let mut sent = self.rx(port, frame).len();
        sent += self.poll_at(self.now + PENDING_TIMEOUT_MS).len();
        let mut outcomes = vec![];
        for (r, b) in DropReason::ALL.iter().zip(before) {
            outcomes.extend((b..self.counters.drops(*r)).map(|_| Outcome::Dropped(*r)));
        }
        outcomes.extend((consumed..self.counters.consumed.get()).map(|_| Outcome::Consumed));
        let answers = sent as u64 - (self.solicitations() - solicits);
        outcomes.extend((0..answers).map(|_| Outcome::Answered));
        assert_eq!(outcomes.len(), 1, "{outcomes:?} for {frame:02x?}");
        outcomes[0]
    }
}

/// The only frame sent, asserting it went out `port`.
fn only(sent: Vec<(u16, Vec<u8>)>, port: u16) -> Vec<u8> {
    assert_eq!(sent.len(), 1, "expected one frame, got {sent:02x?}");
    let (p, f) = sent.into_iter().next().unwrap();
    assert_eq!(p, port);
    f
}

/// Ethernet pads short frames to 60 bytes (without FCS).
fn pad(mut f: Vec<u8>) -> Vec<u8> {
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

/// RFC 1071 one's complement sum; a correct checksum sums to 0xffff.
fn ones_sum(parts: &[&[u8]]) -> u16 {
    let bytes = parts.concat();
    let mut s: u64 = bytes
        .chunks(2)
        .map(|c| u64::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

fn icmpv6_sum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    let len = (msg.len() as u32).to_be_bytes();
    ones_sum(&[&src.octets(), &dst.octets(), &len, &[0, 0, 0, 58], msg])
}

fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::from(0xff02_0000_0000_0000_0000_0001_ff00_0000 | u128::from_be_bytes(o) & 0xff_ffff)
}

fn multicast_mac(a: Ipv6Addr) -> [u8; 6] {
    let o = a.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Arp {
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    op: u16,
    sha: [u8; 6],
    spa: Ipv4Addr,
    tha: [u8; 6],
    tpa: Ipv4Addr,
}

impl Arp {
    fn request(mac: [u8; 6], sender: Ipv4Addr, target: Ipv4Addr) -> Arp {
        Arp {
            eth_dst: BCAST,
            eth_src: mac,
            op: 1,
            sha: mac,
            spa: sender,
            tha: [0; 6],
            tpa: target,
        }
    }

    fn reply(mac: [u8; 6], sender: Ipv4Addr, to_mac: [u8; 6], to: Ipv4Addr) -> Arp {
        Arp {
            eth_dst: to_mac,
            op: 2,
            tha: to_mac,
            tpa: to,
            ..Arp::request(mac, sender, to)
        }
    }

    /// Without Ethernet padding, so truncations below it are all short.
    fn frame(&self) -> Vec<u8> {
        let mut f = [&self.eth_dst[..], &self.eth_src, &[0x08, 0x06]].concat();
        f.extend([0, 1, 0x08, 0x00, 6, 4]);
        f.extend(self.op.to_be_bytes());
        f.extend(self.sha);
        f.extend(self.spa.octets());
        f.extend(self.tha);
        f.extend(self.tpa.octets());
        f
    }

    fn parse(frame: &[u8]) -> Arp {
        let eth = Ethernet2Slice::from_slice_without_fcs(frame).expect("ethernet");
        assert_eq!(eth.ether_type(), etherparse::EtherType::ARP);
        let a = &frame[ETH..];
        assert_eq!(a.len(), 28, "an ARP frame is 42 bytes");
        assert_eq!(a[..6], [0, 1, 0x08, 0x00, 6, 4], "Ethernet/IPv4 ARP");
        let mac = |at: usize| <[u8; 6]>::try_from(&a[at..at + 6]).unwrap();
        let ip = |at: usize| Ipv4Addr::new(a[at], a[at + 1], a[at + 2], a[at + 3]);
        Arp {
            eth_dst: eth.destination(),
            eth_src: eth.source(),
            op: u16::from_be_bytes([a[6], a[7]]),
            sha: mac(8),
            spa: ip(14),
            tha: mac(18),
            tpa: ip(24),
        }
    }
}

/// An ICMP or ICMPv6 echo; `request` builds one, `parse_reply` reads a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Echo {
    eth_src: [u8; 6],
    eth_dst: [u8; 6],
    src: IpAddr,
    dst: IpAddr,
    hops: u8,
    id: u16,
    seq: u16,
    payload: Vec<u8>,
}

fn ping(src: impl Into<IpAddr>, dst: impl Into<IpAddr>) -> Echo {
    Echo {
        eth_src: HOST_MAC,
        eth_dst: OUR_MAC,
        src: src.into(),
        dst: dst.into(),
        hops: 17,
        id: 0x1234,
        seq: 1,
        payload: vec![],
    }
}

impl Echo {
    fn with_payload(self, payload: &[u8]) -> Echo {
        Echo {
            payload: payload.to_vec(),
            ..self
        }
    }

    fn request(&self) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(self.eth_src, self.eth_dst);
        let mut v = vec![];
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => b
                .ipv4(s.octets(), d.octets(), self.hops)
                .icmpv4_echo_request(self.id, self.seq)
                .write(&mut v, &self.payload),
            (IpAddr::V6(s), IpAddr::V6(d)) => b
                .ipv6(s.octets(), d.octets(), self.hops)
                .icmpv6_echo_request(self.id, self.seq)
                .write(&mut v, &self.payload),
            _ => unreachable!("mixed families"),
        }
        .unwrap();
        v
    }

    /// The reply rvs should send: addresses swapped, fresh TTL / hop limit.
    fn answered(&self, eth_src: [u8; 6], eth_dst: [u8; 6]) -> Echo {
        Echo {
            eth_src,
            eth_dst,
            src: self.dst,
            dst: self.src,
            hops: 64,
            ..self.clone()
        }
    }

    /// Panics unless `frame` is an echo reply with correct checksums and no
    /// bytes after the IP datagram.
    fn parse_reply(frame: &[u8]) -> Echo {
        let p = SlicedPacket::from_ethernet(frame).expect("parses");
        let Some(LinkSlice::Ethernet2(eth)) = &p.link else {
            panic!("not Ethernet II")
        };
        let (src, dst, hops, ip_len): (IpAddr, IpAddr, u8, usize) = match p.net.as_ref() {
            Some(NetSlice::Ipv4(ip)) => {
                let h = ip.header();
                assert_eq!(ones_sum(&[h.slice()]), 0xffff, "IPv4 header checksum");
                let len = usize::from(h.total_len());
                (
                    h.source_addr().into(),
                    h.destination_addr().into(),
                    h.ttl(),
                    len,
                )
            }
            Some(NetSlice::Ipv6(ip)) => {
                let h = ip.header();
                let len = 40 + usize::from(h.payload_length());
                (
                    h.source_addr().into(),
                    h.destination_addr().into(),
                    h.hop_limit(),
                    len,
                )
            }
            None => panic!("no IP"),
        };
        assert_eq!(frame.len(), ETH + ip_len, "padding left in the reply");
        let (echo, payload) = match (p.transport, src, dst) {
            (Some(TransportSlice::Icmpv4(i)), _, _) => {
                assert_eq!(ones_sum(&[i.slice()]), 0xffff, "ICMP checksum");
                let Icmpv4Type::EchoReply(e) = i.icmp_type() else {
                    panic!("not an echo reply: {:?}", i.icmp_type())
                };
                (e, i.payload())
            }
            (Some(TransportSlice::Icmpv6(i)), IpAddr::V6(s), IpAddr::V6(d)) => {
                assert_eq!(icmpv6_sum(s, d, i.slice()), 0xffff, "ICMPv6 checksum");
                let Icmpv6Type::EchoReply(e) = i.icmp_type() else {
                    panic!("not an echo reply: {:?}", i.icmp_type())
                };
                (e, i.payload())
            }
            _ => panic!("not ICMP"),
        };
        Echo {
            eth_src: eth.source(),
            eth_dst: eth.destination(),
            src,
            dst,
            hops,
            id: echo.id,
            seq: echo.seq,
            payload: payload.to_vec(),
        }
    }
}

/// A neighbour solicitation or advertisement with at most one LLA option.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Nd {
    eth_src: [u8; 6],
    eth_dst: [u8; 6],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    ty: u8,
    flags: u8,
    target: Ipv6Addr,
    lla: Option<(u8, [u8; 6])>,
}

impl Nd {
    /// What a host sends to resolve `target`.
    fn solicit(mac: [u8; 6], src: Ipv6Addr, target: Ipv6Addr) -> Nd {
        let group = solicited_node(target);
        Nd {
            eth_src: mac,
            eth_dst: multicast_mac(group),
            src,
            dst: group,
            hop_limit: 255,
            ty: NS,
            flags: 0,
            target,
            lla: Some((OPT_SLLA, mac)),
        }
    }

    /// A solicited advertisement of `target` from `mac` to us.
    fn advert(mac: [u8; 6], target: Ipv6Addr) -> Nd {
        Nd {
            eth_src: mac,
            eth_dst: OUR_MAC,
            src: target,
            dst: ME6,
            hop_limit: 255,
            ty: NA,
            flags: NA_S | NA_O,
            target,
            lla: Some((OPT_TLLA, mac)),
        }
    }

    fn frame(&self) -> Vec<u8> {
        let mut body = self.target.octets().to_vec();
        if let Some((kind, mac)) = self.lla {
            body.extend([kind, 1]);
            body.extend(mac);
        }
        let mut v = vec![];
        PacketBuilder::ethernet2(self.eth_src, self.eth_dst)
            .ipv6(self.src.octets(), self.dst.octets(), self.hop_limit)
            .icmpv6_raw(self.ty, 0, [self.flags, 0, 0, 0])
            .write(&mut v, &body)
            .unwrap();
        v
    }

    fn parse(frame: &[u8]) -> Nd {
        let p = SlicedPacket::from_ethernet(frame).expect("parses");
        let Some(LinkSlice::Ethernet2(eth)) = &p.link else {
            panic!("not Ethernet II")
        };
        let Some(NetSlice::Ipv6(ip)) = &p.net else {
            panic!("not IPv6")
        };
        let h = ip.header();
        assert_eq!(frame.len(), ETH + 40 + usize::from(h.payload_length()));
        let Some(TransportSlice::Icmpv6(i)) = p.transport else {
            panic!("not ICMPv6")
        };
        let (src, dst) = (h.source_addr(), h.destination_addr());
        assert_eq!(icmpv6_sum(src, dst, i.slice()), 0xffff, "ICMPv6 checksum");
        let m = i.slice();
        assert_eq!(m[1], 0, "code");
        assert_eq!(m[5..8], [0, 0, 0], "reserved");
        let lla = match m.len() {
            24 => None,
            32 => {
                assert_eq!(m[25], 1, "option length");
                Some((m[24], <[u8; 6]>::try_from(&m[26..32]).unwrap()))
            }
            n => panic!("unexpected ND length {n}"),
        };
        Nd {
            eth_src: eth.source(),
            eth_dst: eth.destination(),
            src,
            dst,
            hop_limit: h.hop_limit(),
            ty: m[0],
            flags: m[4],
            target: Ipv6Addr::from(<[u8; 16]>::try_from(&m[8..24]).unwrap()),
            lla,
        }
    }
}

fn udp_to_us() -> Vec<u8> {
    let mut v = vec![];
    PacketBuilder::ethernet2(HOST_MAC, OUR_MAC)
        .ipv4(HOST4.octets(), ME4.octets(), 64)
        .udp(5000, 53)
        .write(&mut v, b"query")
        .unwrap();
    v
}

/// Recomputes the IPv4 header checksum at `ETH + 10`.
fn refresh_ipv4_checksum(f: &mut [u8]) {
    let hl = usize::from(f[ETH] & 0xf) * 4;
    f[ETH + 10..ETH + 12].fill(0);
    let c = !ones_sum(&[&f[ETH..ETH + hl]]);
    f[ETH + 10..ETH + 12].copy_from_slice(&c.to_be_bytes());
}

// --- ARP ---

#[test]
fn arp_request_for_our_address_is_answered_and_the_asker_learned() {
    let mut net = Net::new(config());
    let reply = only(
        net.rx(0, &pad(Arp::request(HOST_MAC, HOST4, ME4).frame())),
        0,
    );
    assert_eq!(
        Arp::parse(&reply),
        Arp::reply(OUR_MAC, ME4, HOST_MAC, HOST4)
    );
    assert_eq!(net.counters.arp_replies.get(), 1);
    assert_eq!(
        net.learned(),
        [NeighUpdate {
            port: 0,
            ip: HOST4.into(),
            mac: MacAddr(HOST_MAC)
        }]
    );
    assert!(net.learned().is_empty(), "reported once");

    let echo = ping(HOST4, ME4);
    let sent = only(net.rx(0, &pad(echo.request())), 0);
    assert_eq!(Echo::parse_reply(&sent), echo.answered(OUR_MAC, HOST_MAC));
    assert_eq!(net.counters.arp_requests.get(), 0);
    assert!(net.drops().is_empty());
}

#[test]
fn arp_for_an_address_we_do_not_own_is_ignored_and_not_learned() {
    let mut net = Net::new(config());
    let other = Ipv4Addr::new(198, 18, 0, 77);
    assert!(net
        .rx(0, &Arp::request(HOST_MAC, HOST4, other).frame())
        .is_empty());
    assert_eq!(net.drops(), [(DropReason::NotForUs, 1)]);
    assert!(net.learned().is_empty());
    // Not learned: answering it needs a resolution first.
    let sent = only(net.rx(0, &ping(HOST4, ME4).request()), 0);
    assert_eq!(Arp::parse(&sent).op, 1);
}

#[test]
fn arp_from_a_known_neighbour_for_someone_else_refreshes_silently() {
    let mut net = Net::new(config());
    net.know(0, HOST4, HOST_MAC);
    let other = Ipv4Addr::new(198, 18, 0, 77);
    assert!(net
        .rx(0, &Arp::request(GW_MAC, HOST4, other).frame())
        .is_empty());
    assert_eq!(net.counters.consumed.get(), 1);
    assert!(net.drops().is_empty());
    let echo = ping(HOST4, ME4);
    let sent = only(net.rx(0, &echo.request()), 0);
    assert_eq!(Echo::parse_reply(&sent).eth_dst, GW_MAC, "MAC change seen");
}

#[test]
fn arp_for_our_address_on_the_other_port_is_not_answered() {
    let mut net = Net::new(config());
    assert!(net
        .rx(1, &Arp::request(HOST_MAC, HOST4, ME4).frame())
        .is_empty());
    assert_eq!(net.drops(), [(DropReason::NotForUs, 1)]);
    assert_eq!(net.counters.arp_replies.get(), 0);

    let reply = only(net.rx(1, &Arp::request(GW_MAC, GW4, P1_ADDR).frame()), 1);
    assert_eq!(Arp::parse(&reply), Arp::reply(P1_MAC, P1_ADDR, GW_MAC, GW4));
}

#[test]
fn gratuitous_arp_claiming_our_address_is_a_conflict() {
    let mut net = Net::new(config());
    assert!(net
        .rx(0, &Arp::request(OTHER_MAC, ME4, ME4).frame())
        .is_empty());
    assert_eq!(net.counters.address_conflicts.get(), 1);
    assert_eq!(net.counters.consumed.get(), 1);
    assert_eq!(net.counters.arp_replies.get(), 0);
    assert!(net.drops().is_empty());
}

#[test]
fn arp_from_senders_no_host_may_be_is_dropped_as_martian_and_not_learned() {
    let cases = [
        ("broadcast MAC", BCAST, HOST4),
        ("multicast MAC", [0x01, 0, 0x5e, 0, 0, 1], HOST4),
        ("zero MAC", [0; 6], HOST4),
        ("limited broadcast", HOST_MAC, Ipv4Addr::BROADCAST),
        (
            "subnet broadcast of 198.18.0.0/24",
            HOST_MAC,
            Ipv4Addr::new(198, 18, 0, 255),
        ),
        ("multicast", HOST_MAC, Ipv4Addr::new(224, 0, 0, 1)),
        ("loopback", HOST_MAC, Ipv4Addr::LOCALHOST),
    ];
    for (what, mac, sender) in cases {
        let mut net = Net::new(config());
        let mut arp = Arp::request(mac, sender, ME4);
        // The frame itself from a station; only the ARP sender is bad.
        arp.eth_src = HOST_MAC;
        assert!(net.rx(0, &arp.frame()).is_empty(), "{what}: answered");
        assert_eq!(net.drops(), [(DropReason::Martian, 1)], "{what}");
        assert!(net.learned().is_empty(), "{what}: learned");
    }
}

#[test]
fn an_arp_probe_is_answered_but_its_zero_sender_not_learned() {
    // RFC 5227: a host checking that ME4 is free asks from 0.0.0.0.
    let mut net = Net::new(config());
    let reply = only(
        net.rx(
            0,
            &Arp::request(HOST_MAC, Ipv4Addr::UNSPECIFIED, ME4).frame(),
        ),
        0,
    );
    assert_eq!(Arp::parse(&reply).spa, ME4);
    assert!(net.learned().is_empty(), "{:?}", net.learned());
}

#[test]
fn frames_from_a_group_or_zero_source_mac_are_martian() {
    for src in [BCAST, [0x01, 0, 0x5e, 0, 0, 1], [0; 6]] {
        let mut net = Net::new(config());
        let mut echo = ping(HOST4, ME4);
        echo.eth_src = src;
        assert!(net.rx(0, &echo.request()).is_empty(), "{src:?}");
        assert_eq!(net.drops(), [(DropReason::Martian, 1)], "{src:?}");
    }
}

#[test]
fn neighbour_discovery_from_a_multicast_source_or_for_a_multicast_target_is_martian() {
    let group = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
    let cases = [
        (
            "NS from a multicast source",
            Nd::solicit(HOST_MAC, group, ME6),
        ),
        (
            "NS with a multicast link-layer address",
            Nd {
                lla: Some((OPT_SLLA, [0x33, 0x33, 0, 0, 0, 2])),
                ..Nd::solicit(HOST_MAC, HOST6, ME6)
            },
        ),
        ("NA for a multicast target", Nd::advert(HOST_MAC, group)),
    ];
    for (what, nd) in cases {
        let mut net = Net::new(config());
        assert!(net.rx(0, &nd.frame()).is_empty(), "{what}: answered");
        assert_eq!(net.drops(), [(DropReason::Martian, 1)], "{what}");
        assert!(net.learned().is_empty(), "{what}: learned");
    }
}

#[test]
fn a_host_claiming_our_address_is_not_learned_as_its_neighbour() {
    let mut net = Net::new(config());
    net.rx(0, &Arp::request(OTHER_MAC, ME4, ME4).frame());
    assert!(net.learned().is_empty(), "{:?}", net.learned());
}

#[test]
fn gratuitous_arp_reply_claiming_our_address_is_a_conflict() {
    let mut net = Net::new(config());
    let claim = Arp::reply(OTHER_MAC, ME4, BCAST, ME4);
    net.rx(0, &claim.frame());
    assert_eq!(net.counters.address_conflicts.get(), 1);
}

#[test]
fn malformed_arp_is_a_bad_header() {
    let good = Arp::request(HOST_MAC, HOST4, ME4).frame();
    let mut wrong_hlen = good.clone();
    wrong_hlen[ETH + 4] = 8;
    let mut wrong_ptype = good.clone();
    wrong_ptype[ETH + 2] = 0x86;
    for f in [
        &good[..good.len() - 1],
        &good[..ETH + 8],
        &wrong_hlen,
        &wrong_ptype,
    ] {
        let mut net = Net::new(config());
        assert!(net.rx(0, f).is_empty());
        assert_eq!(net.drops(), [(DropReason::BadHeader, 1)], "{f:02x?}");
        assert!(net.learned().is_empty());
    }
}

// --- ICMP ---

#[test]
fn echo_request_is_answered_with_swapped_addresses() {
    let long: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    for payload in [&b""[..], b"abcdefgh", &long] {
        let mut net = Net::new(config());
        net.know(0, HOST4, HOST_MAC);
        let echo = ping(HOST4, ME4).with_payload(payload);
        let sent = only(net.rx(0, &pad(echo.request())), 0);
        assert_eq!(Echo::parse_reply(&sent), echo.answered(OUR_MAC, HOST_MAC));
        assert_eq!(net.counters.echo_replies.get(), 1);
        assert!(net.drops().is_empty());
    }
}

#[test]
fn echo_is_answered_from_any_owned_address() {
    let mut net = Net::new(config());
    net.know(0, HOST4, HOST_MAC);
    let echo = ping(HOST4, P1_ADDR);
    let reply = Echo::parse_reply(&only(net.rx(0, &echo.request()), 0));
    assert_eq!(reply, echo.answered(OUR_MAC, HOST_MAC));
}

#[test]
fn echo_from_a_broadcast_or_multicast_source_is_not_answered() {
    for src in [Ipv4Addr::BROADCAST, Ipv4Addr::new(224, 0, 0, 1)] {
        let mut net = Net::new(config());
        net.know(1, GW4, GW_MAC);
        let sent = net.rx(0, &ping(src, ME4).request());
        assert!(sent.is_empty(), "answered {src}: {sent:02x?}");
    }
}

#[test]
fn bad_ipv4_input_is_dropped_for_the_right_reason() {
    let echo = ping(HOST4, ME4).with_payload(b"0123456789");
    let good = echo.request();
    let mut bad_ip_sum = good.clone();
    bad_ip_sum[ETH + 10] ^= 0x40;
    let mut bad_icmp_sum = good.clone();
    bad_icmp_sum[ETH + 20 + 2] ^= 0x01;
    let mut fragment = good.clone();
    fragment[ETH + 6] |= 0x20;
    refresh_ipv4_checksum(&mut fragment);
    let mut later_fragment = good.clone();
    later_fragment[ETH + 7] = 8;
    refresh_ipv4_checksum(&mut later_fragment);
    let mut not_echo = ping(HOST4, ME4).request();
    not_echo[ETH + 20] = 13;
    not_echo[ETH + 22..ETH + 24].fill(0);
    let c = !ones_sum(&[&not_echo[ETH + 20..]]);
    not_echo[ETH + 22..ETH + 24].copy_from_slice(&c.to_be_bytes());
    let mut other_ethertype = good.clone();
    other_ethertype[12..14].copy_from_slice(&[0x81, 0x00]);
    let cases: Vec<(&str, Vec<u8>, DropReason)> = vec![
        ("bad IP checksum", bad_ip_sum, DropReason::BadHeader),
        ("bad ICMP checksum", bad_icmp_sum, DropReason::BadHeader),
        (
            "cut IP payload",
            good[..good.len() - 3].to_vec(),
            DropReason::BadHeader,
        ),
        (
            "cut IP header",
            good[..ETH + 12].to_vec(),
            DropReason::BadHeader,
        ),
        ("runt", good[..10].to_vec(), DropReason::BadHeader),
        ("first fragment", fragment, DropReason::Unsupported),
        ("later fragment", later_fragment, DropReason::Unsupported),
        ("UDP to us", udp_to_us(), DropReason::Unsupported),
        ("ICMP timestamp", not_echo, DropReason::Unsupported),
        ("VLAN tag", other_ethertype, DropReason::Unsupported),
        (
            "echo not for our address",
            ping(HOST4, Ipv4Addr::new(198, 18, 0, 99)).request(),
            DropReason::NotForUs,
        ),
        (
            "frame for another MAC",
            Echo {
                eth_dst: OTHER_MAC,
                ..echo.clone()
            }
            .request(),
            DropReason::NotForUs,
        ),
    ];
    for (what, frame, reason) in cases {
        let mut net = Net::new(config());
        net.know(0, HOST4, HOST_MAC);
        assert!(net.rx(0, &frame).is_empty(), "{what}");
        assert_eq!(net.drops(), [(reason, 1)], "{what}");
        assert_eq!(net.counters.echo_replies.get(), 0, "{what}");
    }
}

// --- Resolution ---

#[test]
fn echo_from_an_unknown_host_waits_for_arp() {
    let mut net = Net::new(config());
    let echo = ping(HOST4, ME4).with_payload(b"wait for me");
    let req = only(net.rx(0, &pad(echo.request())), 0);
    assert_eq!(Arp::parse(&req), Arp::request(OUR_MAC, ME4, HOST4));
    assert_eq!(net.counters.arp_requests.get(), 1);

    let answer = Arp::reply(HOST_MAC, HOST4, OUR_MAC, ME4);
    let sent = only(net.rx(0, &pad(answer.frame())), 0);
    assert_eq!(Echo::parse_reply(&sent), echo.answered(OUR_MAC, HOST_MAC));
    assert_eq!(net.counters.consumed.get(), 1);
    assert!(net.drops().is_empty());
    assert!(net.poll_at(net.now + PENDING_TIMEOUT_MS).is_empty());
    assert!(net.drops().is_empty(), "nothing left waiting");
}

#[test]
fn unanswered_resolution_is_retried_then_dropped() {
    let mut net = Net::new(config());
    let t0 = net.now;
    let req = only(net.rx(0, &ping(HOST4, ME4).request()), 0);
    assert!(net.poll_at(t0 + RESOLVE_RETRY_MS - 1).is_empty());
    assert_eq!(only(net.poll_at(t0 + RESOLVE_RETRY_MS), 0), req);
    assert!(net.poll_at(t0 + RESOLVE_RETRY_MS + 1).is_empty());
    assert_eq!(only(net.poll_at(t0 + 2 * RESOLVE_RETRY_MS), 0), req);
    assert!(net.drops().is_empty());
    assert!(net.poll_at(t0 + PENDING_TIMEOUT_MS).is_empty());
    assert_eq!(net.drops(), [(DropReason::NoNeighbour, 1)]);
    assert!(net.poll_at(t0 + 10 * PENDING_TIMEOUT_MS).is_empty());

    // An answer long after the last request answers nothing: not learned
    // (as Linux forgets a failed resolution), counted; the next echo asks
    // again, and the answer to that is learned.
    let late = Arp::reply(HOST_MAC, HOST4, OUR_MAC, ME4);
    assert!(net.rx(0, &late.frame()).is_empty());
    assert_eq!(
        net.drops(),
        [(DropReason::NoNeighbour, 1), (DropReason::Unsolicited, 1)]
    );
    let echo = ping(HOST4, ME4);
    assert_eq!(only(net.rx(0, &echo.request()), 0), req);
    let sent = only(net.rx(0, &late.frame()), 0);
    assert_eq!(Echo::parse_reply(&sent), echo.answered(OUR_MAC, HOST_MAC));
}

#[test]
fn a_full_queue_for_one_hop_drops_the_excess() {
    let mut net = Net::new(config());
    let n = PENDING_PER_HOP as u16 + 1;
    let mut requests = 0;
    for seq in 0..n {
        let echo = Echo {
            seq,
            ..ping(HOST4, ME4)
        };
        requests += net.rx(0, &echo.request()).len();
    }
    assert_eq!(requests, 1, "one ARP request per hop");
    assert_eq!(net.drops(), [(DropReason::NeighbourQueueFull, 1)]);

    let sent = net.rx(0, &Arp::reply(HOST_MAC, HOST4, OUR_MAC, ME4).frame());
    let seqs: Vec<u16> = sent
        .iter()
        .map(|(p, f)| {
            assert_eq!(*p, 0);
            Echo::parse_reply(f).seq
        })
        .collect();
    assert_eq!(seqs, (0..PENDING_PER_HOP as u16).collect::<Vec<_>>());
}

#[test]
fn a_stale_neighbour_is_used_and_probed_at_most_once_per_retry_period() {
    let mut net = Net::new(config());
    let t0 = net.now;
    net.know(0, HOST4, HOST_MAC);
    let echo = ping(HOST4, ME4);
    net.now = t0 + NEIGH_PROBE_AFTER_MS;
    let sent = net.rx(0, &echo.request());
    assert_eq!(sent.len(), 2, "{sent:02x?}");
    assert_eq!(
        Echo::parse_reply(&sent[0].1),
        echo.answered(OUR_MAC, HOST_MAC)
    );
    assert_eq!(Arp::parse(&sent[1].1), Arp::request(OUR_MAC, ME4, HOST4));
    net.now += RESOLVE_RETRY_MS - 1;
    assert_eq!(net.rx(0, &echo.request()).len(), 1);
    net.now += 1;
    assert_eq!(net.rx(0, &echo.request()).len(), 2);

    net.now = t0 + NEIGH_MAX_AGE_MS;
    let sent = only(net.rx(0, &echo.request()), 0);
    assert_eq!(Arp::parse(&sent).op, 1, "forgotten: resolve again");
}

#[test]
fn without_buffers_the_request_is_lost_but_the_packet_still_waits() {
    let mut net = Net::new(config());
    net.wire.buffers = Some(0);
    let echo = ping(HOST4, ME4);
    assert!(net.rx(0, &echo.request()).is_empty());
    assert_eq!(net.drops(), [(DropReason::NoBuffer, 1)]);
    net.wire.buffers = None;
    let req = only(net.poll_at(net.now + RESOLVE_RETRY_MS), 0);
    assert_eq!(Arp::parse(&req), Arp::request(OUR_MAC, ME4, HOST4));
    let sent = only(net.know(0, HOST4, HOST_MAC), 0);
    assert_eq!(Echo::parse_reply(&sent), echo.answered(OUR_MAC, HOST_MAC));
}

// --- Routing ---

#[test]
fn off_link_echo_is_answered_through_the_gateway() {
    let mut net = Net::new(config());
    let echo = Echo {
        eth_src: GW_MAC,
        eth_dst: P1_MAC,
        ..ping(FAR4, P1_ADDR)
    };
    let req = only(net.rx(1, &echo.request()), 1);
    assert_eq!(Arp::parse(&req), Arp::request(P1_MAC, P1_ADDR, GW4));
    let sent = only(
        net.rx(1, &Arp::reply(GW_MAC, GW4, P1_MAC, P1_ADDR).frame()),
        1,
    );
    assert_eq!(Echo::parse_reply(&sent), echo.answered(P1_MAC, GW_MAC));

    // Known now: the next one goes straight out.
    let sent = only(net.rx(1, &echo.request()), 1);
    assert_eq!(Echo::parse_reply(&sent), echo.answered(P1_MAC, GW_MAC));
}

#[test]
fn off_link_echo_arriving_on_port_0_still_leaves_by_the_route() {
    let mut net = Net::new(config());
    net.know(1, GW4, GW_MAC);
    let echo = ping(FAR4, ME4);
    let sent = only(net.rx(0, &echo.request()), 1);
    assert_eq!(Echo::parse_reply(&sent), echo.answered(P1_MAC, GW_MAC));
}

#[test]
fn without_a_route_the_reply_is_dropped() {
    let mut net = Net::new(config_with(vec![]));
    net.know(1, GW4, GW_MAC);
    let echo = Echo {
        eth_dst: P1_MAC,
        ..ping(FAR4, P1_ADDR)
    };
    assert!(net.rx(1, &echo.request()).is_empty());
    assert_eq!(net.drops(), [(DropReason::NoRoute, 1)]);
    assert_eq!(net.counters.arp_requests.get(), 0);
}

// --- IPv6 ---

#[test]
fn ns_for_our_address_gets_a_solicited_na_and_the_asker_is_learned() {
    let mut net = Net::new(config());
    let ns = Nd::solicit(HOST_MAC, HOST6, ME6);
    assert_eq!(ns.eth_dst, [0x33, 0x33, 0xff, 0, 0, 1]);
    let na = Nd::parse(&only(net.rx(0, &ns.frame()), 0));
    assert_eq!(
        na,
        Nd {
            eth_src: OUR_MAC,
            eth_dst: HOST_MAC,
            src: ME6,
            dst: HOST6,
            hop_limit: 255,
            ty: NA,
            flags: NA_S | NA_O,
            target: ME6,
            lla: Some((OPT_TLLA, OUR_MAC)),
        }
    );
    assert_eq!(net.counters.nd_adverts.get(), 1);
    assert_eq!(
        net.learned(),
        [NeighUpdate {
            port: 0,
            ip: HOST6.into(),
            mac: MacAddr(HOST_MAC)
        }]
    );

    let echo = ping(HOST6, ME6);
    let sent = only(net.rx(0, &echo.request()), 0);
    assert_eq!(Echo::parse_reply(&sent), echo.answered(OUR_MAC, HOST_MAC));
    assert_eq!(net.counters.nd_solicits.get(), 0);
}

#[test]
fn ns_sent_to_our_unicast_address_without_lla_is_answered_to_the_sender_mac() {
    let mut net = Net::new(config());
    let ns = Nd {
        eth_dst: OUR_MAC,
        dst: ME6,
        lla: None,
        ..Nd::solicit(HOST_MAC, HOST6, ME6)
    };
    let na = Nd::parse(&only(net.rx(0, &ns.frame()), 0));
    assert_eq!(
        (na.eth_dst, na.dst, na.flags),
        (HOST_MAC, HOST6, NA_S | NA_O)
    );
}

#[test]
fn nd_that_may_have_been_forwarded_is_a_bad_header() {
    for nd in [
        Nd::solicit(HOST_MAC, HOST6, ME6),
        Nd::advert(HOST_MAC, HOST6),
    ] {
        let mut net = Net::new(config());
        let forwarded = Nd {
            hop_limit: 64,
            ..nd
        };
        assert!(net.rx(0, &forwarded.frame()).is_empty());
        assert_eq!(net.drops(), [(DropReason::BadHeader, 1)]);
        assert!(net.learned().is_empty());
    }
}

#[test]
fn dad_probe_is_answered_to_all_nodes_without_the_solicited_flag() {
    let mut net = Net::new(config());
    let dad = Nd {
        src: Ipv6Addr::UNSPECIFIED,
        lla: None,
        ..Nd::solicit(HOST_MAC, HOST6, ME6)
    };
    let na = Nd::parse(&only(net.rx(0, &dad.frame()), 0));
    assert_eq!(
        na,
        Nd {
            eth_src: OUR_MAC,
            eth_dst: ALL_NODES_MAC,
            src: ME6,
            dst: ALL_NODES,
            hop_limit: 255,
            ty: NA,
            flags: NA_O,
            target: ME6,
            lla: Some((OPT_TLLA, OUR_MAC)),
        }
    );
    assert!(net.learned().is_empty());

    // RFC 4861 7.1.1: a probe from :: carries no source LLA.
    let mut net = Net::new(config());
    let with_lla = Nd {
        lla: Some((OPT_SLLA, HOST_MAC)),
        ..dad
    };
    assert!(net.rx(0, &with_lla.frame()).is_empty());
    assert_eq!(net.drops(), [(DropReason::BadHeader, 1)]);
}

#[test]
fn ns_for_a_target_we_do_not_own_is_not_for_us() {
    let other = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 0x99);
    let to_group = Nd::solicit(HOST_MAC, HOST6, other);
    let to_us = Nd {
        eth_dst: OUR_MAC,
        dst: ME6,
        ..to_group.clone()
    };
    for ns in [to_group, to_us] {
        let mut net = Net::new(config());
        assert!(net.rx(0, &ns.frame()).is_empty());
        assert_eq!(net.drops(), [(DropReason::NotForUs, 1)]);
        assert_eq!(net.counters.nd_adverts.get(), 0);
    }
}

#[test]
fn ns_with_a_bad_checksum_is_a_bad_header() {
    let mut net = Net::new(config());
    let mut f = Nd::solicit(HOST_MAC, HOST6, ME6).frame();
    let last = f.len() - 1;
    f[last] ^= 1;
    assert!(net.rx(0, &f).is_empty());
    assert_eq!(net.drops(), [(DropReason::BadHeader, 1)]);
}

#[test]
fn icmpv6_echo_is_answered() {
    let mut net = Net::new(config());
    net.know(0, HOST6, HOST_MAC);
    let echo = ping(HOST6, ME6).with_payload(b"hello, six");
    let mut frame = echo.request();
    frame.extend([0xee; 6]);
    let sent = only(net.rx(0, &frame), 0);
    assert_eq!(Echo::parse_reply(&sent), echo.answered(OUR_MAC, HOST_MAC));
    assert_eq!(net.counters.echo_replies.get(), 1);
}

#[test]
fn icmpv6_echo_to_all_nodes_is_answered_from_our_address() {
    let mut net = Net::new(config());
    net.know(0, HOST6, HOST_MAC);
    let echo = Echo {
        eth_dst: ALL_NODES_MAC,
        ..ping(HOST6, ALL_NODES)
    };
    let reply = Echo::parse_reply(&only(net.rx(0, &echo.request()), 0));
    assert_eq!(
        reply,
        Echo {
            src: ME6.into(),
            ..echo.answered(OUR_MAC, HOST_MAC)
        }
    );
}

#[test]
fn na_from_the_neighbour_being_resolved_flushes_the_waiting_packet() {
    let mut net = Net::new(config());
    let echo = ping(HOST6, ME6).with_payload(b"pending");
    let ns = Nd::parse(&only(net.rx(0, &echo.request()), 0));
    assert_eq!(ns, Nd::solicit(OUR_MAC, ME6, HOST6));
    assert_eq!(net.counters.nd_solicits.get(), 1);

    let sent = only(net.rx(0, &Nd::advert(HOST_MAC, HOST6).frame()), 0);
    assert_eq!(Echo::parse_reply(&sent), echo.answered(OUR_MAC, HOST_MAC));
    assert_eq!(net.counters.consumed.get(), 1);
    assert_eq!(net.learned().len(), 1);
}

#[test]
fn na_without_target_lla_is_learned_from_the_ethernet_source() {
    let mut net = Net::new(config());
    let echo = ping(HOST6, ME6);
    net.rx(0, &echo.request());
    let na = Nd {
        lla: None,
        ..Nd::advert(HOST_MAC, HOST6)
    };
    let sent = only(net.rx(0, &na.frame()), 0);
    assert_eq!(Echo::parse_reply(&sent).eth_dst, HOST_MAC);
}

#[test]
fn na_claiming_our_address_is_a_conflict_not_a_neighbour() {
    let mut net = Net::new(config());
    let na = Nd {
        flags: NA_O,
        dst: ALL_NODES,
        eth_dst: ALL_NODES_MAC,
        ..Nd::advert(OTHER_MAC, ME6)
    };
    assert!(net.rx(0, &na.frame()).is_empty());
    assert_eq!(net.counters.address_conflicts.get(), 1);
    assert_eq!(net.counters.consumed.get(), 1);
    assert!(net.learned().is_empty());
}

// --- Announcements ---

#[test]
fn announcing_an_ipv4_address_sends_gratuitous_arp_on_its_port() {
    let mut net = Net::new(config());
    let garp = Arp::parse(&only(net.announce(ME4), 0));
    assert_eq!(garp, Arp::request(OUR_MAC, ME4, ME4));
    let garp = Arp::parse(&only(net.announce(P1_ADDR), 1));
    assert_eq!(garp, Arp::request(P1_MAC, P1_ADDR, P1_ADDR));
    assert_eq!(net.counters.gratuitous.get(), 2);
}

#[test]
fn announcing_an_ipv6_address_sends_an_unsolicited_na() {
    let mut net = Net::new(config());
    let na = Nd::parse(&only(net.announce(ME6), 0));
    assert_eq!(
        na,
        Nd {
            eth_src: OUR_MAC,
            eth_dst: ALL_NODES_MAC,
            src: ME6,
            dst: ALL_NODES,
            hop_limit: 255,
            ty: NA,
            flags: NA_O,
            target: ME6,
            lla: Some((OPT_TLLA, OUR_MAC)),
        }
    );
    assert_eq!(net.counters.gratuitous.get(), 1);
}

#[test]
fn announcing_a_vip_uses_its_owner_port() {
    let vip = Ipv4Addr::new(192, 0, 2, 80);
    let owner = OwnedAddr {
        port: 1,
        kind: AddrKind::Vip,
    };
    let mut net = Net::new(config().with_owned(vip.into(), owner));
    let garp = Arp::parse(&only(net.announce(vip), 1));
    assert_eq!(garp, Arp::request(P1_MAC, vip, vip));
}

#[test]
fn announcing_needs_an_owned_address_and_a_buffer() {
    let mut net = Net::new(config());
    assert!(net.announce(HOST4).is_empty());
    assert!(net.drops().is_empty());
    net.wire.buffers = Some(0);
    assert!(net.announce(ME4).is_empty());
    assert_eq!(net.drops(), [(DropReason::NoBuffer, 1)]);
    assert_eq!(net.counters.gratuitous.get(), 0);
}

// --- Neighbours shared between workers ---

#[test]
fn a_neighbour_from_another_worker_flushes_and_is_not_reported_back() {
    let mut net = Net::new(config());
    let echo = ping(HOST4, ME4);
    only(net.rx(0, &echo.request()), 0);
    let sent = only(net.know(0, HOST4, HOST_MAC), 0);
    assert_eq!(Echo::parse_reply(&sent), echo.answered(OUR_MAC, HOST_MAC));
    assert!(net.learned().is_empty());
    assert!(net.know(0, HOST4, HOST_MAC).is_empty());
}

#[test]
fn a_neighbour_on_another_port_does_not_flush() {
    let mut net = Net::new(config());
    only(net.rx(0, &ping(HOST4, ME4).request()), 0);
    assert!(net.know(1, HOST4, HOST_MAC).is_empty());
    assert_eq!(only(net.know(0, HOST4, HOST_MAC), 0).len(), 42);
}

#[test]
fn drain_learned_reports_each_local_discovery() {
    let mut net = Net::new(config());
    net.rx(0, &Arp::request(HOST_MAC, HOST4, ME4).frame());
    net.rx(0, &Nd::solicit(HOST_MAC, HOST6, ME6).frame());
    net.rx(1, &Arp::request(GW_MAC, GW4, P1_ADDR).frame());
    let mut got = net.learned();
    got.sort_by_key(|u| (u.port, u.ip));
    let want = |port, ip: IpAddr, mac| NeighUpdate {
        port,
        ip,
        mac: MacAddr(mac),
    };
    assert_eq!(
        got,
        [
            want(0, HOST4.into(), HOST_MAC),
            want(0, HOST6.into(), HOST_MAC),
            want(1, GW4.into(), GW_MAC),
        ]
    );
    net.rx(0, &Arp::request(HOST_MAC, HOST4, ME4).frame());
    assert!(net.learned().is_empty(), "unchanged and recently reported");
    net.rx(0, &Arp::request(OTHER_MAC, HOST4, ME4).frame());
    assert_eq!(net.learned(), [want(0, HOST4.into(), OTHER_MAC)]);
}

// --- Robustness ---

/// One valid frame of every kind above, each with its rx port.
fn valid_frames() -> Vec<(u16, Vec<u8>)> {
    let far = Echo {
        eth_src: GW_MAC,
        eth_dst: P1_MAC,
        ..ping(FAR4, P1_ADDR)
    };
    vec![
        (0, Arp::request(HOST_MAC, HOST4, ME4).frame()),
        (0, Arp::reply(HOST_MAC, HOST4, OUR_MAC, ME4).frame()),
        (0, Arp::request(OTHER_MAC, ME4, ME4).frame()),
        (1, Arp::request(GW_MAC, GW4, P1_ADDR).frame()),
        (0, ping(HOST4, ME4).with_payload(b"ping payload").request()),
        (1, far.request()),
        (0, udp_to_us()),
        (0, ping(HOST6, ME6).with_payload(b"ping6").request()),
        (0, Nd::solicit(HOST_MAC, HOST6, ME6).frame()),
        (
            0,
            Nd {
                src: Ipv6Addr::UNSPECIFIED,
                lla: None,
                ..Nd::solicit(HOST_MAC, HOST6, ME6)
            }
            .frame(),
        ),
        (0, Nd::advert(HOST_MAC, HOST6).frame()),
    ]
}

fn net_with_neighbours() -> Net {
    let mut net = Net::new(config());
    net.know(0, HOST4, HOST_MAC);
    net.know(0, HOST6, HOST_MAC);
    net.know(1, GW4, GW_MAC);
    net
}

#[test]
fn every_truncation_is_a_bad_header_and_every_frame_is_accounted_for() {
    for (port, frame) in valid_frames() {
        for n in 0..frame.len() {
            let mut net = net_with_neighbours();
            assert_eq!(
                net.account(port, &frame[..n]),
                Outcome::Dropped(DropReason::BadHeader),
                "{n} of {frame:02x?}"
            );
        }
        let mut net = net_with_neighbours();
        let whole = net.account(port, &frame);
        let padded = net_with_neighbours().account(port, &pad(frame.clone()));
        assert_eq!(whole, padded, "{frame:02x?}");
    }
}

/// Makes the IPv4 header and ICMP/ICMPv6 checksums right again, where the
/// lengths allow, so mutated frames get past checksum checks.
fn fix_checksums(f: &mut [u8]) {
    if f.len() < ETH + 1 {
        return;
    }
    match [f[12], f[13]] {
        [0x08, 0x00] => {
            let hl = usize::from(f[ETH] & 0xf) * 4;
            if hl < 20 || f.len() < ETH + hl {
                return;
            }
            refresh_ipv4_checksum(f);
            let total = usize::from(u16::from_be_bytes([f[ETH + 2], f[ETH + 3]]));
            if f[ETH + 9] == 1 && total >= hl + 4 && ETH + total <= f.len() {
                let icmp = &mut f[ETH + hl..ETH + total];
                icmp[2..4].fill(0);
                let c = !ones_sum(&[icmp]);
                icmp[2..4].copy_from_slice(&c.to_be_bytes());
            }
        }
        [0x86, 0xdd] if f.len() >= ETH + 40 && f[ETH + 6] == 58 => {
            let plen = usize::from(u16::from_be_bytes([f[ETH + 4], f[ETH + 5]]));
            if plen < 4 || ETH + 40 + plen > f.len() {
                return;
            }
            let addr = |at: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&f[at..at + 16]).unwrap());
            let (src, dst) = (addr(ETH + 8), addr(ETH + 24));
            let icmp = &mut f[ETH + 40..ETH + 40 + plen];
            icmp[2..4].fill(0);
            let c = !icmpv6_sum(src, dst, icmp);
            icmp[2..4].copy_from_slice(&c.to_be_bytes());
        }
        _ => {}
    }
}

#[test]
fn random_and_mutated_frames_are_each_accounted_for_once() {
    let mut rng = XorShift(0x5eed_1e55);
    let mut net = net_with_neighbours();
    let valid = valid_frames();
    let mut seen = std::collections::HashSet::new();
    for i in 0..6000 {
        let (port, mut frame) = valid[rng.next() as usize % valid.len()].clone();
        match i % 3 {
            0 => {
                let len = rng.next() as usize % 128;
                frame = rng.bytes(len);
                if len >= ETH && rng.next() % 2 == 0 {
                    frame[..6].copy_from_slice(&OUR_MAC);
                    frame[12..14].copy_from_slice(&[0x08, 0x06]);
                }
            }
            _ => {
                for _ in 0..1 + rng.next() % 3 {
                    let at = ETH + rng.next() as usize % (frame.len() - ETH);
                    frame[at] = rng.next() as u8;
                }
                if rng.next() % 4 == 0 {
                    let cut = rng.next() as usize % frame.len();
                    frame.truncate(cut);
                }
                if i % 3 == 2 {
                    fix_checksums(&mut frame);
                }
            }
        }
        seen.insert(net.account(port, &frame));
    }
    // The mutations must reach past the parsers, not only fail them.
    for o in [
        Outcome::Answered,
        Outcome::Consumed,
        Outcome::Dropped(DropReason::BadHeader),
        Outcome::Dropped(DropReason::NotForUs),
        Outcome::Dropped(DropReason::Unsupported),
    ] {
        assert!(seen.contains(&o), "{o:?} never happened: {seen:?}");
    }
}

/// The Ethernet header a route cache keeps for a next hop (`l2_for`) is
/// what a lookup would give, and `l2_fresh` stops vouching for it as soon
/// as a lookup would answer differently.
#[test]
fn a_kept_ethernet_header_holds_until_its_neighbour_changes_goes_or_is_due_a_probe() {
    let mut net = Net::new(config());
    let hop = NextHop {
        port: 1,
        addr: GW4.into(),
    };
    assert_eq!(
        net.stack.l2_for(&net.cfg, hop, net.now),
        None,
        "not resolved yet"
    );
    net.know(1, GW4, GW_MAC);
    let l2 = net.stack.l2_for(&net.cfg, hop, net.now).expect("reachable");
    assert_eq!(
        (l2.port, l2.dst, l2.src),
        (1, MacAddr(GW_MAC), MacAddr(P1_MAC))
    );
    assert!(net.stack.l2_fresh(&l2, net.now));
    // Due a probe: the stack's own path must see the entry again.
    assert!(net.stack.l2_fresh(&l2, net.now + NEIGH_PROBE_AFTER_MS - 1));
    assert!(!net.stack.l2_fresh(&l2, net.now + NEIGH_PROBE_AFTER_MS));
    // Another neighbour learned changes nothing kept.
    net.know(1, Ipv4Addr::new(198, 19, 0, 7), OTHER_MAC);
    assert!(net.stack.l2_fresh(&l2, net.now));
    // The gateway's MAC changes: what was kept is stale at once.
    net.know(1, GW4, OTHER_MAC);
    assert!(!net.stack.l2_fresh(&l2, net.now));
    let l2 = net.stack.l2_for(&net.cfg, hop, net.now).expect("reachable");
    assert_eq!(l2.dst, MacAddr(OTHER_MAC));
    assert!(net.stack.l2_fresh(&l2, net.now));
    // Given up by a full table (64 entries here) for newer neighbours:
    // stale at once, and nothing to keep until it is learned again.
    for i in 0..64u8 {
        net.now += 1;
        net.know(1, Ipv4Addr::new(198, 19, 1, i), OTHER_MAC);
    }
    assert!(!net.stack.neigh.contains(1, GW4.into()));
    assert!(!net.stack.l2_fresh(&l2, net.now));
    assert_eq!(net.stack.l2_for(&net.cfg, hop, net.now), None);
}
