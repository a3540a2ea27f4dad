//! What the kernel refuses before routing. On every received frame, before
//! the load balancer or the network stack sees it (`check`): unicast
//! frames for another host's MAC (the ports run promiscuous; the kernel
//! drops PACKET_OTHERHOST in ip_rcv / ip6_rcv_core) and frames from a
//! group or zero MAC. On every packet no conn holds (`martian_flow`,
//! `martian_frame`): martian addresses as ip_route_input_slow (RFC 1812
//! 5.3.7) and ip6_rcv_core (RFC 4291) refuse them. A conn is made only
//! from a packet that passed, so packets of established flows skip them.
//!
//! An ordinary unicast IPv4 source costs a few compares and one probe of a
//! 16384-bit filter of rvs's own addresses and subnet broadcasts; only a hit
//! there looks the address up.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashbrown::HashSet;

use super::addr::Iface;
use crate::counters::DropReason;
use crate::wire::{IpProtocol, Ipv4Packet, Ipv6Packet};

const ETH: usize = 14;
const ND_NS: u8 = 135;
const ND_NA: u8 = 136;
const FILTER_WORDS: usize = 256;

/// What to do with a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxVerdict {
    /// A unicast frame for this port: the load balancer's, then the stack's.
    Pass,
    /// A broadcast or multicast frame: only the network stack's (ARP, ND).
    /// IPVS too balances only PACKET_HOST frames.
    Group,
    Drop(DropReason),
}

#[derive(Debug, Clone, Copy, Default)]
struct PortRx {
    /// A port rvs knows of that takes only frames for its own MAC (and
    /// group frames); false for ports without `accept_other_mac`.
    filter: bool,
    /// The port's MAC, as `dst_mac` reads one.
    mac: u64,
}

/// Equal to no word `dst_mac` reads (whose low 16 bits are clear).
const NO_MAC: u64 = u64::MAX;
/// The group bit of a MAC `dst_mac` reads (its first byte's lowest).
const DST_GROUP: u64 = 1 << 16;

/// The destination MAC as one word: the header's first eight bytes read
/// little-endian, the two past the MAC shifted out (no mask to load).
#[inline(always)]
fn dst_mac(e: &[u8; ETH]) -> u64 {
    let (w, _) = e.split_first_chunk::<8>().unwrap_or((&[0; 8], &[]));
    u64::from_le_bytes(*w) << 16
}

/// Whether the source MAC is a group's or all zeros, which no station
/// sends from (IEEE 802): the eight bytes that end with it read
/// little-endian, the two before it shifted out, so that its group bit is
/// the lowest; turned right by one, that bit is the sign, and a MAC of
/// neither kind is a number above zero.
#[inline(always)]
fn src_mac_refused(e: &[u8; ETH]) -> bool {
    let (w, _) = e[4..].split_first_chunk::<8>().unwrap_or((&[0; 8], &[]));
    ((u64::from_le_bytes(*w) >> 16).rotate_right(1) as i64) <= 0
}

/// First octets of IPv4 addresses that need a closer look: 0, 127 and
/// 224..=255 as sources, 0 and 127 as destinations (one bit per octet).
const fn octet_set(martian_above_224: bool) -> [u64; 4] {
    let mut t = [0u64; 4];
    t[0] |= 1;
    t[1] |= 1 << 63;
    if martian_above_224 {
        t[3] = u64::MAX << 32;
    }
    t
}
const CLOSER_SRC: [u64; 4] = octet_set(true);
const CLOSER_DST: [u64; 4] = octet_set(false);

#[inline(always)]
fn in_octets(set: &[u64; 4], a: u32) -> bool {
    let o = (a >> 24) as usize;
    set[o >> 6] >> (o & 63) & 1 != 0
}

/// The per-port MACs and the addresses no packet may come from, rebuilt
/// with every `NetConfig`.
#[derive(Debug, Clone)]
pub struct RxFilter {
    /// By DPDK port id.
    ports: Vec<PortRx>,
    /// One bit per hash of each address in `sources` (a one-hash Bloom filter).
    bits: [u64; FILTER_WORDS],
    /// rvs's own addresses (interfaces, VIPs, local addresses, health
    /// sources) and the broadcast address of each of its IPv4 subnets.
    sources: HashSet<IpAddr>,
    /// Ports with `accept_other_mac`.
    any_unicast: Vec<u16>,
}

impl Default for RxFilter {
    fn default() -> Self {
        RxFilter {
            ports: Vec::new(),
            bits: [0; FILTER_WORDS],
            sources: HashSet::new(),
            any_unicast: Vec::new(),
        }
    }
}

#[inline(always)]
fn bit_of_v4(a: u32) -> usize {
    (u64::from(a).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 50) as usize
}

fn bit_of(a: IpAddr) -> usize {
    match a {
        IpAddr::V4(a) => bit_of_v4(u32::from(a)),
        IpAddr::V6(a) => {
            let v = u128::from(a);
            let x = (v as u64) ^ ((v >> 64) as u64).rotate_left(17);
            (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 50) as usize
        }
    }
}

impl RxFilter {
    /// The filter for `ifaces`: their MACs, their addresses and the
    /// broadcast address of each IPv4 subnet shorter than /31.
    pub fn new(ifaces: &[Iface]) -> RxFilter {
        let mut f = RxFilter::default();
        for ifc in ifaces {
            let i = usize::from(ifc.port);
            if f.ports.len() <= i {
                f.ports.resize(i + 1, PortRx::default());
            }
            let mut e = [0u8; ETH];
            e[..6].copy_from_slice(&ifc.mac.0);
            f.ports[i] = PortRx {
                filter: true,
                mac: dst_mac(&e),
            };
            for a in &ifc.addrs {
                f.add_source(a.addr);
                if let IpAddr::V4(net) = a.addr {
                    if a.prefix_len < 31 {
                        let host = u32::MAX >> a.prefix_len;
                        f.add_source(IpAddr::V4(Ipv4Addr::from(u32::from(net) | host)));
                    }
                }
            }
        }
        f
    }

    /// One more address no packet may come from (an address rvs owns).
    pub fn add_source(&mut self, a: IpAddr) {
        let b = bit_of(a);
        self.bits[b / 64] |= 1 << (b % 64);
        self.sources.insert(a);
    }

    /// Port `port` takes frames for any unicast MAC.
    pub fn accept_other_mac(&mut self, port: u16) {
        if let Some(p) = self.ports.get_mut(usize::from(port)) {
            p.filter = false;
            self.any_unicast.push(port);
        }
    }

    /// Whether `port` takes frames for any unicast MAC.
    pub fn accepts_other_mac(&self, port: u16) -> bool {
        self.any_unicast.contains(&port)
    }

    #[inline]
    fn is_own_source(&self, a: IpAddr) -> bool {
        let b = bit_of(a);
        self.bits[b / 64] & (1 << (b % 64)) != 0 && self.sources.contains(&a)
    }

    /// `is_own_source` for IPv4, the filter probed without building the
    /// address first.
    #[inline(always)]
    fn is_own_v4(&self, a: u32) -> bool {
        let b = bit_of_v4(a);
        self.bits[b / 64] & (1 << (b % 64)) != 0
            && self.sources.contains(&IpAddr::V4(Ipv4Addr::from(a)))
    }

    /// The verdict on a frame's Ethernet header, received on `port`:
    /// another host's MAC, a group or zero source MAC, a group frame. The
    /// addresses inside are judged by `martian_frame` / `martian_flow`,
    /// which a worker asks only of packets that no conn holds (a conn is
    /// made only from a packet that passed them). Frames too short for the
    /// header pass: the parsers count them.
    #[inline]
    pub fn check(&self, port: u16, d: &[u8]) -> RxVerdict {
        let Some(e) = d.first_chunk::<ETH>() else {
            return RxVerdict::Pass;
        };
        let dst = dst_mac(e);
        // The commonest frame first: to the port's own MAC, which is no
        // group's (a station's address is not; the configuration refuses
        // one). A port rvs does not know has none (`NO_MAC` is no MAC's
        // word): the MAC is the one word read and compared.
        let own = self.ports.get(usize::from(port)).map_or(NO_MAC, |p| p.mac);
        let group = dst != own && {
            let group = dst & DST_GROUP != 0;
            if !group && self.ports.get(usize::from(port)).is_some_and(|p| p.filter) {
                return RxVerdict::Drop(DropReason::OtherHost);
            }
            group
        };
        if src_mac_refused(e) {
            return RxVerdict::Drop(DropReason::Martian);
        }
        if group {
            RxVerdict::Group
        } else {
            RxVerdict::Pass
        }
    }

    /// Whether the IPv4 or IPv6 packet in frame `d` has martian addresses
    /// (any protocol; ICMPv6 keeps its exceptions for neighbour
    /// discovery). IP headers too short to hold them are the parsers'.
    pub fn martian_frame(&self, d: &[u8]) -> bool {
        // The views without their length checks: the header's addresses
        // are within the bytes checked here.
        match d.get(12..14) {
            Some([0x08, 0x00]) => match d.first_chunk::<{ ETH + 20 }>() {
                Some(h) if h[ETH] >> 4 == 4 => {
                    let ip = Ipv4Packet::new_unchecked(&h[ETH..]);
                    self.martian_v4(u32::from(ip.src_addr()), u32::from(ip.dst_addr()))
                }
                _ => false,
            },
            Some([0x86, 0xdd]) if d.len() >= ETH + 40 && d[ETH] >> 4 == 6 => {
                let ip = Ipv6Packet::new_unchecked(&d[ETH..]);
                let icmpv6 = ip.next_header() == IpProtocol::ICMPV6;
                let nd = icmpv6 && matches!(d.get(ETH + 40), Some(&(ND_NS | ND_NA)));
                let (s, t) = (u128::from(ip.src_addr()), u128::from(ip.dst_addr()));
                self.martian_v6(s, t, icmpv6, nd)
            }
            _ => false,
        }
    }

    /// `martian_frame` for a TCP, UDP or SCTP packet's addresses.
    #[inline]
    pub fn martian_flow(&self, src: IpAddr, dst: IpAddr) -> bool {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(t)) => self.martian_v4(u32::from(s), u32::from(t)),
            (IpAddr::V6(s), IpAddr::V6(t)) => {
                self.martian_v6(u128::from(s), u128::from(t), false, false)
            }
            _ => false,
        }
    }

    /// A source or destination whose first octet needs the kernel's full
    /// order of checks (`martian_v4_closer`), else a source that is one of
    /// rvs's addresses or subnet broadcasts.
    #[inline(always)]
    fn martian_v4(&self, s: u32, t: u32) -> bool {
        if in_octets(&CLOSER_SRC, s) || in_octets(&CLOSER_DST, t) {
            return self.martian_v4_closer(s, t);
        }
        self.is_own_v4(s)
    }

    /// ip_route_input_slow's order: a multicast or limited-broadcast
    /// source; then anything to the limited broadcast (0.0.0.0 → 0.0.0.0
    /// too) is broadcast input, where a 0/8 source (DHCP) is allowed; a 0/8
    /// source or destination otherwise; loopback either way; finally
    /// fib_validate_source: a source that is one of rvs's addresses or a
    /// broadcast of its subnets. 240/4 sources are refused as RFC 1812
    /// 5.3.7 says (Linux routes class E as unicast).
    #[cold]
    fn martian_v4_closer(&self, s: u32, t: u32) -> bool {
        let (s8, t8) = (s >> 24, t >> 24);
        if s8 >= 224 || s8 == 127 {
            return true;
        }
        if s8 == 0 {
            return !(t == u32::MAX || (s == 0 && t == 0));
        }
        if t8 == 0 || t8 == 127 {
            return true;
        }
        self.is_own_v4(s)
    }

    /// ip6_rcv_core's checks (a multicast source, loopback either way, a
    /// multicast destination of reserved or interface-local scope), an
    /// IPv4-mapped source (RFC 4291 2.5.5.2; the kernel refuses it in
    /// TCP), and sources no host uses: the unspecified address except in
    /// ICMPv6 (duplicate address detection, MLD: the stack decides), and
    /// one of rvs's own addresses except in neighbour discovery, which
    /// counts that as an address conflict.
    fn martian_v6(&self, s: u128, t: u128, icmpv6: bool, nd: bool) -> bool {
        if s >> 120 == 0xff || s == 1 || t == 1 {
            return true;
        }
        if t >> 120 == 0xff && (t >> 112) & 0xf <= 1 {
            return true;
        }
        if s >> 32 == 0xffff {
            return true;
        }
        if s == 0 {
            return !icmpv6;
        }
        !nd && self.is_own_source(IpAddr::V6(Ipv6Addr::from(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netstack::IfaceAddr;
    use crate::wire::MacAddr;

    const ICMPV6: u8 = IpProtocol::ICMPV6.0;

    const MAC0: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const MAC1: [u8; 6] = [2, 0, 0, 0, 0, 0x11];
    const PEER: [u8; 6] = [2, 0, 0, 0, 0, 0x42];

    fn filter() -> RxFilter {
        let a = |s: &str, p| IfaceAddr {
            addr: s.parse().unwrap(),
            prefix_len: p,
        };
        let mut f = RxFilter::new(&[
            Iface {
                port: 0,
                name: "client".into(),
                mac: MacAddr(MAC0),
                addrs: vec![a("198.18.0.1", 24), a("fd00:18::1", 64)],
                mtu: 1500,
                tx_checksum: false,
            },
            Iface {
                port: 3,
                name: "servers".into(),
                mac: MacAddr(MAC1),
                addrs: vec![a("198.19.0.1", 16), a("10.9.9.1", 31)],
                mtu: 1500,
                tx_checksum: false,
            },
        ]);
        f.add_source("198.18.0.100".parse().unwrap());
        f.add_source("fd00:18::100".parse().unwrap());
        f
    }

    /// An Ethernet + IPv4 header (the rest zero: only addresses matter).
    fn v4(dst_mac: [u8; 6], src: &str, dst: &str) -> Vec<u8> {
        let mut f = vec![0u8; ETH + 20 + 20];
        f[..6].copy_from_slice(&dst_mac);
        f[6..12].copy_from_slice(&PEER);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[ETH] = 0x45;
        f[ETH + 9] = 6;
        let (s, d): (Ipv4Addr, Ipv4Addr) = (src.parse().unwrap(), dst.parse().unwrap());
        f[ETH + 12..ETH + 16].copy_from_slice(&s.octets());
        f[ETH + 16..ETH + 20].copy_from_slice(&d.octets());
        f
    }

    fn v6(dst_mac: [u8; 6], src: &str, dst: &str, nh: u8, first: u8) -> Vec<u8> {
        let mut f = vec![0u8; ETH + 40 + 24];
        f[..6].copy_from_slice(&dst_mac);
        f[6..12].copy_from_slice(&PEER);
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[ETH] = 0x60;
        f[ETH + 6] = nh;
        let (s, d): (Ipv6Addr, Ipv6Addr) = (src.parse().unwrap(), dst.parse().unwrap());
        f[ETH + 8..ETH + 24].copy_from_slice(&s.octets());
        f[ETH + 24..ETH + 40].copy_from_slice(&d.octets());
        f[ETH + 40] = first;
        f
    }

    const MARTIAN: RxVerdict = RxVerdict::Drop(DropReason::Martian);

    /// The Ethernet verdict, then the addresses' (as a worker asks both of
    /// a packet no conn holds).
    fn verdict(f: &RxFilter, port: u16, frame: &[u8]) -> RxVerdict {
        match f.check(port, frame) {
            RxVerdict::Drop(r) => RxVerdict::Drop(r),
            _ if f.martian_frame(frame) => MARTIAN,
            v => v,
        }
    }

    #[test]
    fn ipv4_martians_as_ip_route_input_slow_and_rfc_1812() {
        let f = filter();
        // (source, destination, martian), worked from RFC 1812 5.3.7 and
        // the kernel's order of checks.
        let cases = [
            ("198.51.100.7", "198.18.0.100", false),
            ("203.0.113.250", "198.18.0.1", false),
            ("1.0.0.1", "198.18.0.100", false),
            ("223.255.255.254", "198.18.0.100", false),
            ("0.0.0.0", "198.18.0.100", true),
            ("0.1.2.3", "198.18.0.100", true),
            // DHCP: a zero source only to the limited broadcast.
            ("0.0.0.0", "255.255.255.255", false),
            ("0.1.2.3", "255.255.255.255", false),
            ("0.0.0.0", "0.0.0.0", false),
            ("127.0.0.1", "198.18.0.100", true),
            ("127.255.255.254", "255.255.255.255", true),
            ("255.255.255.255", "198.18.0.100", true),
            ("224.0.0.1", "198.18.0.100", true),
            ("239.255.255.250", "198.18.0.100", true),
            ("240.0.0.1", "198.18.0.100", true),
            ("250.1.2.3", "198.18.0.100", true),
            // Broadcasts of rvs's subnets, on any port; not of a /31.
            ("198.18.0.255", "198.18.0.100", true),
            ("198.19.255.255", "198.18.0.100", true),
            ("198.18.0.255", "255.255.255.255", true),
            ("10.9.9.1", "198.18.0.100", true),
            ("10.9.9.0", "198.18.0.100", false),
            // rvs's own addresses: interfaces, a VIP.
            ("198.18.0.1", "198.18.0.100", true),
            ("198.19.0.1", "198.18.0.100", true),
            ("198.18.0.100", "198.18.0.100", true),
            // Martian destinations.
            ("198.51.100.7", "127.0.0.1", true),
            ("198.51.100.7", "0.0.0.9", true),
            ("198.51.100.7", "0.0.0.0", true),
            // Broadcast and multicast destinations are not martian.
            ("198.51.100.7", "255.255.255.255", false),
            ("198.51.100.7", "198.18.0.255", false),
            ("198.51.100.7", "224.0.0.1", false),
        ];
        for (s, d, martian) in cases {
            let want = if martian { MARTIAN } else { RxVerdict::Pass };
            assert_eq!(verdict(&f, 0, &v4(MAC0, s, d)), want, "{s} -> {d}");
            let (sa, da) = (s.parse().unwrap(), d.parse().unwrap());
            assert_eq!(f.martian_flow(sa, da), martian, "flow {s} -> {d}");
        }
    }

    #[test]
    fn ipv6_martians_as_ip6_rcv_core_and_rfc_4291() {
        let f = filter();
        let tcp = 6;
        let cases = [
            ("2001:db8::7", "fd00:18::100", tcp, 0, false),
            ("fe80::7", "fd00:18::1", ICMPV6, 128, false),
            ("ff02::1", "fd00:18::100", tcp, 0, true),
            ("ff05::2", "fd00:18::100", ICMPV6, 128, true),
            ("::1", "fd00:18::100", tcp, 0, true),
            ("2001:db8::7", "::1", tcp, 0, true),
            // Interface-local (1) and reserved (0) multicast scopes.
            ("2001:db8::7", "ff01::1", ICMPV6, 128, true),
            ("2001:db8::7", "ff00::1", ICMPV6, 128, true),
            ("2001:db8::7", "ff02::1", ICMPV6, 128, false),
            ("::ffff:198.51.100.7", "fd00:18::100", tcp, 0, true),
            // Unspecified: ICMPv6 (DAD) is the stack's to judge.
            ("::", "fd00:18::100", tcp, 0, true),
            ("::", "ff02::1:ff00:1", ICMPV6, ND_NS, false),
            // Our own addresses, but in ND (a conflict, counted there).
            ("fd00:18::100", "fd00:18::100", tcp, 0, true),
            ("fd00:18::1", "fd00:18::1", ICMPV6, 128, true),
            ("fd00:18::1", "ff02::1", ICMPV6, ND_NA, false),
            ("fd00:18::1", "ff02::1:ff00:1", ICMPV6, ND_NS, false),
        ];
        for (s, d, nh, first, martian) in cases {
            let want = match (martian, d.starts_with("ff")) {
                (true, _) => MARTIAN,
                (false, true) => RxVerdict::Group,
                (false, false) => RxVerdict::Pass,
            };
            let mac = if d.starts_with("ff") {
                [0x33, 0x33, 0, 0, 0, 1]
            } else {
                MAC0
            };
            assert_eq!(
                verdict(&f, 0, &v6(mac, s, d, nh, first)),
                want,
                "{s} -> {d}"
            );
            if nh == tcp {
                let (sa, da) = (s.parse().unwrap(), d.parse().unwrap());
                assert_eq!(f.martian_flow(sa, da), martian, "flow {s} -> {d}");
            }
        }
    }

    #[test]
    fn frames_for_another_mac_unless_the_port_accepts_them() {
        let mut f = filter();
        let frame = v4(PEER, "198.51.100.7", "198.18.0.100");
        assert_eq!(
            verdict(&f, 0, &frame),
            RxVerdict::Drop(DropReason::OtherHost)
        );
        // Port 3's MAC on port 0 is another host's too.
        let frame1 = v4(MAC1, "198.51.100.7", "198.18.0.100");
        assert_eq!(
            verdict(&f, 0, &frame1),
            RxVerdict::Drop(DropReason::OtherHost)
        );
        assert_eq!(verdict(&f, 3, &frame1), RxVerdict::Pass);
        // Broadcast and multicast frames are the stack's.
        let bcast = v4([0xff; 6], "198.51.100.7", "198.18.0.100");
        assert_eq!(verdict(&f, 0, &bcast), RxVerdict::Group);
        // A port rvs does not know of is not filtered by MAC.
        assert_eq!(verdict(&f, 7, &frame), RxVerdict::Pass);
        f.accept_other_mac(0);
        assert!(f.accepts_other_mac(0) && !f.accepts_other_mac(3));
        assert_eq!(verdict(&f, 0, &frame), RxVerdict::Pass);
        assert_eq!(
            verdict(&f, 3, &frame),
            RxVerdict::Drop(DropReason::OtherHost)
        );
        // Martians are martians on such a port too.
        let martian = v4(PEER, "127.0.0.1", "198.18.0.100");
        assert_eq!(verdict(&f, 0, &martian), MARTIAN);
    }

    /// Group and all-zero sources are refused, and no station's address
    /// with them: those with a single bit at either end of the word the
    /// check turns, the highest there is, and a group bit's neighbours.
    #[test]
    fn group_and_zero_source_macs_are_martian() {
        let f = filter();
        let from = |src: [u8; 6]| {
            let mut frame = v4(MAC0, "198.51.100.7", "198.18.0.100");
            frame[6..12].copy_from_slice(&src);
            verdict(&f, 0, &frame)
        };
        for src in [
            [1, 0, 0x5e, 0, 0, 1],
            [0xff; 6],
            [0; 6],
            [0x33, 0x33, 0, 0, 0, 1],
            [1, 0, 0, 0, 0, 0],
            [0x81, 0, 0, 0, 0, 0x80],
        ] {
            assert_eq!(from(src), MARTIAN, "{src:x?}");
        }
        for src in [
            [2, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0x80],
            [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff],
            [0x80, 0, 0, 0, 0, 0],
            [0x52, 0x54, 0, 0x12, 0x34, 0x56],
        ] {
            assert_eq!(from(src), RxVerdict::Pass, "{src:x?}");
        }
    }

    #[test]
    fn short_and_non_ip_frames_pass_to_the_parsers() {
        let f = filter();
        assert_eq!(verdict(&f, 0, &MAC0[..5]), RxVerdict::Pass);
        let mut arp = v4(MAC0, "0.0.0.0", "0.0.0.0");
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(verdict(&f, 0, &arp), RxVerdict::Pass);
        // Truncated IP headers: not read past their end.
        let full = v4(MAC0, "127.0.0.1", "198.18.0.100");
        assert_eq!(verdict(&f, 0, &full[..ETH + 19]), RxVerdict::Pass);
        let full6 = v6(MAC0, "::1", "fd00:18::100", 6, 0);
        assert_eq!(verdict(&f, 0, &full6[..ETH + 39]), RxVerdict::Pass);
        // A version that does not match the ethertype: the parsers' too.
        let mut wrong = full.clone();
        wrong[ETH] = 0x65;
        assert_eq!(verdict(&f, 0, &wrong), RxVerdict::Pass);
    }

    #[test]
    fn the_octets_looked_at_closer_are_exactly_the_martian_ones() {
        for o in 0..=255u32 {
            let a = o << 24 | 0x0001_0203;
            let src = o == 0 || o == 127 || o >= 224;
            assert_eq!(in_octets(&CLOSER_SRC, a), src, "source {o}");
            assert_eq!(
                in_octets(&CLOSER_DST, a),
                o == 0 || o == 127,
                "destination {o}"
            );
        }
    }

    #[test]
    fn the_source_filter_finds_every_address_it_holds() {
        let mut f = RxFilter::default();
        let addrs: Vec<IpAddr> = (0..2000u32)
            .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i * 7919)))
            .chain((0..500u128).map(|i| IpAddr::V6(Ipv6Addr::from((0xfd00u128 << 112) | i))))
            .collect();
        for a in &addrs {
            f.add_source(*a);
        }
        assert!(addrs.iter().all(|a| f.is_own_source(*a)));
        assert!(!f.is_own_source(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7))));
    }
}
