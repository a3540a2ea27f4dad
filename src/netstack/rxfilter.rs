//! What the kernel refuses before routing, checked on every received frame
//! before the load balancer or the network stack sees it: unicast frames
//! for another host's MAC (the ports run promiscuous; the kernel drops
//! PACKET_OTHERHOST in ip_rcv / ip6_rcv_core), frames from a group or zero
//! MAC, and martian addresses as ip_route_input_slow (RFC 1812 5.3.7) and
//! ip6_rcv_core (RFC 4291) refuse them.
//!
//! An ordinary unicast IPv4 source costs a few compares and one probe of a
//! 16384-bit filter of rvs's own addresses and subnet broadcasts; only a hit
//! there looks the address up.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashbrown::HashSet;

use super::addr::Iface;
use crate::dataplane::DropReason;

const ETH: usize = 14;
const ICMPV6: u8 = 58;
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
    known: bool,
    mac: [u8; 6],
    /// `accept_other_mac`: frames for any unicast MAC are this port's.
    any_unicast: bool,
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
}

impl Default for RxFilter {
    fn default() -> Self {
        RxFilter {
            ports: Vec::new(),
            bits: [0; FILTER_WORDS],
            sources: HashSet::new(),
        }
    }
}

#[inline]
fn bit_of(a: IpAddr) -> usize {
    let x = match a {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        IpAddr::V6(a) => {
            let v = u128::from(a);
            (v as u64) ^ ((v >> 64) as u64).rotate_left(17)
        }
    };
    (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 50) as usize
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
            f.ports[i] = PortRx {
                known: true,
                mac: ifc.mac.0,
                any_unicast: false,
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
            p.any_unicast = true;
        }
    }

    /// Whether `port` takes frames for any unicast MAC.
    pub fn accepts_other_mac(&self, port: u16) -> bool {
        self.ports
            .get(usize::from(port))
            .is_some_and(|p| p.any_unicast)
    }

    #[inline]
    fn is_own_source(&self, a: IpAddr) -> bool {
        let b = bit_of(a);
        self.bits[b / 64] & (1 << (b % 64)) != 0 && self.sources.contains(&a)
    }

    /// The verdict on a frame received on `port`. Frames too short to hold
    /// the headers looked at pass: the parsers count them.
    #[inline]
    pub fn check(&self, port: u16, d: &[u8]) -> RxVerdict {
        if d.len() < ETH {
            return RxVerdict::Pass;
        }
        let group = d[0] & 1 != 0;
        if !group {
            if let Some(p) = self.ports.get(usize::from(port)).filter(|p| p.known) {
                if d[..6] != p.mac && !p.any_unicast {
                    return RxVerdict::Drop(DropReason::OtherHost);
                }
            }
        }
        // No station sends from a group or all-zero address (IEEE 802).
        if d[6] & 1 != 0 || d[6..12] == [0; 6] {
            return RxVerdict::Drop(DropReason::Martian);
        }
        let martian = match (d[12], d[13]) {
            (0x08, 0x00) if d.len() >= ETH + 20 && d[ETH] >> 4 == 4 => {
                let s = u32::from_be_bytes([d[26], d[27], d[28], d[29]]);
                let t = u32::from_be_bytes([d[30], d[31], d[32], d[33]]);
                self.martian_v4(s, t)
            }
            (0x86, 0xdd) if d.len() >= ETH + 40 && d[ETH] >> 4 == 6 => self.martian_v6(d),
            _ => false,
        };
        if martian {
            RxVerdict::Drop(DropReason::Martian)
        } else if group {
            RxVerdict::Group
        } else {
            RxVerdict::Pass
        }
    }

    /// ip_route_input_slow's order: a multicast or limited-broadcast
    /// source; then anything to the limited broadcast (0.0.0.0 → 0.0.0.0
    /// too) is broadcast input, where a 0/8 source (DHCP) is allowed; a 0/8
    /// source or destination otherwise; loopback either way; finally
    /// fib_validate_source: a source that is one of rvs's addresses or a
    /// broadcast of its subnets. 240/4 sources are refused as RFC 1812
    /// 5.3.7 says (Linux routes class E as unicast).
    #[inline]
    fn martian_v4(&self, s: u32, t: u32) -> bool {
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
        self.is_own_source(IpAddr::V4(Ipv4Addr::from(s)))
    }

    /// ip6_rcv_core's checks (a multicast source, loopback either way, a
    /// multicast destination of reserved or interface-local scope), an
    /// IPv4-mapped source (RFC 4291 2.5.5.2; the kernel refuses it in
    /// TCP), and sources no host uses: the unspecified address except in
    /// ICMPv6 (duplicate address detection, MLD: the stack decides), and
    /// one of rvs's own addresses except in neighbour discovery, which
    /// counts that as an address conflict.
    fn martian_v6(&self, d: &[u8]) -> bool {
        let addr = |at: usize| {
            let mut b = [0u8; 16];
            b.copy_from_slice(&d[at..at + 16]);
            u128::from_be_bytes(b)
        };
        let (s, t) = (addr(ETH + 8), addr(ETH + 24));
        if s >> 120 == 0xff || s == 1 || t == 1 {
            return true;
        }
        if t >> 120 == 0xff && (t >> 112) & 0xf <= 1 {
            return true;
        }
        if s >> 32 == 0xffff {
            return true;
        }
        let nh = d[ETH + 6];
        if s == 0 {
            return nh != ICMPV6;
        }
        if !self.is_own_source(IpAddr::V6(Ipv6Addr::from(s))) {
            return false;
        }
        let nd = nh == ICMPV6 && matches!(d.get(ETH + 40), Some(&(ND_NS | ND_NA)));
        !nd
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netstack::IfaceAddr;
    use crate::wire::MacAddr;

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
            assert_eq!(f.check(0, &v4(MAC0, s, d)), want, "{s} -> {d}");
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
            assert_eq!(f.check(0, &v6(mac, s, d, nh, first)), want, "{s} -> {d}");
        }
    }

    #[test]
    fn frames_for_another_mac_unless_the_port_accepts_them() {
        let mut f = filter();
        let frame = v4(PEER, "198.51.100.7", "198.18.0.100");
        assert_eq!(f.check(0, &frame), RxVerdict::Drop(DropReason::OtherHost));
        // Port 3's MAC on port 0 is another host's too.
        let frame1 = v4(MAC1, "198.51.100.7", "198.18.0.100");
        assert_eq!(f.check(0, &frame1), RxVerdict::Drop(DropReason::OtherHost));
        assert_eq!(f.check(3, &frame1), RxVerdict::Pass);
        // Broadcast and multicast frames are the stack's.
        let bcast = v4([0xff; 6], "198.51.100.7", "198.18.0.100");
        assert_eq!(f.check(0, &bcast), RxVerdict::Group);
        // A port rvs does not know of is not filtered by MAC.
        assert_eq!(f.check(7, &frame), RxVerdict::Pass);
        f.accept_other_mac(0);
        assert!(f.accepts_other_mac(0) && !f.accepts_other_mac(3));
        assert_eq!(f.check(0, &frame), RxVerdict::Pass);
        assert_eq!(f.check(3, &frame), RxVerdict::Drop(DropReason::OtherHost));
        // Martians are martians on such a port too.
        let martian = v4(PEER, "127.0.0.1", "198.18.0.100");
        assert_eq!(f.check(0, &martian), MARTIAN);
    }

    #[test]
    fn group_and_zero_source_macs_are_martian() {
        let f = filter();
        for src in [
            [1, 0, 0x5e, 0, 0, 1],
            [0xff; 6],
            [0; 6],
            [0x33, 0x33, 0, 0, 0, 1],
        ] {
            let mut frame = v4(MAC0, "198.51.100.7", "198.18.0.100");
            frame[6..12].copy_from_slice(&src);
            assert_eq!(f.check(0, &frame), MARTIAN, "{src:x?}");
        }
    }

    #[test]
    fn short_and_non_ip_frames_pass_to_the_parsers() {
        let f = filter();
        assert_eq!(f.check(0, &MAC0[..5]), RxVerdict::Pass);
        let mut arp = v4(MAC0, "0.0.0.0", "0.0.0.0");
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(f.check(0, &arp), RxVerdict::Pass);
        // Truncated IP headers: not read past their end.
        let full = v4(MAC0, "127.0.0.1", "198.18.0.100");
        assert_eq!(f.check(0, &full[..ETH + 19]), RxVerdict::Pass);
        let full6 = v6(MAC0, "::1", "fd00:18::100", 6, 0);
        assert_eq!(f.check(0, &full6[..ETH + 39]), RxVerdict::Pass);
        // A version that does not match the ethertype: the parsers' too.
        let mut wrong = full.clone();
        wrong[ETH] = 0x65;
        assert_eq!(f.check(0, &wrong), RxVerdict::Pass);
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
