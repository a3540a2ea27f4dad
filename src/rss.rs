//! RSS as a NIC computes it: the Toeplitz hash of a packet's addresses and
//! ports under the port's key, then the redirection table (RETA) from the
//! hash's low bits to an rx queue.
//!
//! rvs needs it to know, without asking the NIC, on which queue a packet
//! that does not exist yet will arrive: a FULLNAT worker picks a local port
//! whose reply tuple lands on its own queue (DESIGN.md, "Per-lcore
//! ownership"), and a fragment or an ICMP error, which the NIC hashes by
//! other fields than its flow's packets, is handed to the worker its flow's
//! packets reach. A `Spread` is read from the device at start
//! (`dpdk::ethdev`), or is rvs's own for a peer that spreads in software
//! (a test or bench generator on a virtual device): `Spread::software`.
use std::net::IpAddr;

/// The symmetric key (0x6d5a repeated): a flow and its reverse hash alike.
/// rvs configures it where the device takes a 40-byte key, so that the
/// network stack's own conversations stay on one queue both ways.
pub const SYMMETRIC_KEY: [u8; 40] = {
    let mut k = [0u8; 40];
    let mut i = 0;
    while i < 40 {
        k[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    k
};

/// Entries in the redirection table of `Spread::software` (a common size:
/// ixgbe's and virtio-net's 128).
pub const SOFTWARE_RETA: usize = 128;

const TCP: u8 = 6;
const UDP: u8 = 17;

/// Which packet types the device hashes, and over what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HashTypes {
    /// Addresses only, for IPv4 packets without a hashed L4 type (and
    /// every fragment).
    pub ipv4: bool,
    pub ipv4_tcp: bool,
    pub ipv4_udp: bool,
    pub ipv6: bool,
    pub ipv6_tcp: bool,
    pub ipv6_udp: bool,
}

impl HashTypes {
    pub const ALL: HashTypes = HashTypes {
        ipv4: true,
        ipv4_tcp: true,
        ipv4_udp: true,
        ipv6: true,
        ipv6_tcp: true,
        ipv6_udp: true,
    };

    /// Whether an unfragmented packet of `proto` is hashed with its ports.
    pub fn with_ports(&self, v6: bool, proto: u8) -> bool {
        match (v6, proto) {
            (false, TCP) => self.ipv4_tcp,
            (false, UDP) => self.ipv4_udp,
            (true, TCP) => self.ipv6_tcp,
            (true, UDP) => self.ipv6_udp,
            _ => false,
        }
    }

    fn addresses(&self, v6: bool) -> bool {
        if v6 {
            self.ipv6
        } else {
            self.ipv4
        }
    }
}

/// The flow fields RSS reads, as the packet carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RssTuple {
    pub proto: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
}

/// A port's RSS: key, hashed types and redirection table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spread {
    key: Vec<u8>,
    types: HashTypes,
    /// Queue per RETA entry; a power of two long.
    reta: Vec<u16>,
    /// Toeplitz contributions of the destination port's high and low byte,
    /// for IPv4 and IPv6 tuples: a candidate local port costs two lookups.
    dport4: [[u32; 256]; 2],
    dport6: [[u32; 256]; 2],
}

/// Why a device's RSS cannot be modelled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpreadError {
    #[error("RSS key of {0} bytes: rvs needs at least 40 to hash IPv6 ports")]
    ShortKey(usize),
    #[error("redirection table of {0} entries: not a power of two")]
    BadReta(usize),
}

impl Spread {
    pub fn new(key: &[u8], types: HashTypes, reta: Vec<u16>) -> Result<Spread, SpreadError> {
        if key.len() < 40 {
            return Err(SpreadError::ShortKey(key.len()));
        }
        if reta.is_empty() || !reta.len().is_power_of_two() {
            return Err(SpreadError::BadReta(reta.len()));
        }
        Ok(Spread::build(key, types, reta))
    }

    /// `new` of a key and table already known to fit.
    fn build(key: &[u8], types: HashTypes, reta: Vec<u16>) -> Spread {
        let mut s = Spread {
            key: key.to_vec(),
            types,
            reta,
            dport4: [[0; 256]; 2],
            dport6: [[0; 256]; 2],
        };
        // The destination port follows the addresses and the source port.
        for (table, at) in [(0usize, 8 * 10), (1, 8 * 34)] {
            for half in 0..2 {
                for byte in 0..256usize {
                    let mut h = 0u32;
                    for bit in 0..8 {
                        if byte & (0x80 >> bit) != 0 {
                            h ^= s.window(at + 8 * half + bit);
                        }
                    }
                    if table == 0 {
                        s.dport4[half][byte] = h;
                    } else {
                        s.dport6[half][byte] = h;
                    }
                }
            }
        }
        s
    }

    /// What rvs's software peers do: the symmetric key, every type hashed,
    /// a `SOFTWARE_RETA`-entry table filled round robin over `queues`.
    pub fn software(queues: u16) -> Spread {
        let q = queues.max(1);
        let reta = (0..SOFTWARE_RETA).map(|i| i as u16 % q).collect();
        // A 40-byte key and a 128-entry table: what `new` checks holds.
        Spread::build(&SYMMETRIC_KEY, HashTypes::ALL, reta)
    }

    pub fn key(&self) -> &[u8] {
        &self.key
    }

    pub fn types(&self) -> HashTypes {
        self.types
    }

    pub fn reta(&self) -> &[u16] {
        &self.reta
    }

    /// The 32 key bits starting at bit `at`.
    fn window(&self, at: usize) -> u32 {
        let byte = at / 8;
        let mut w = 0u64;
        for i in 0..5 {
            w = (w << 8) | u64::from(*self.key.get(byte + i).unwrap_or(&0));
        }
        (w >> (8 - at % 8)) as u32
    }

    /// The Toeplitz hash of `input` under this key.
    pub fn toeplitz(&self, input: &[u8]) -> u32 {
        let mut h = 0u32;
        for (i, &b) in input.iter().enumerate() {
            for bit in 0..8 {
                if b & (0x80 >> bit) != 0 {
                    h ^= self.window(8 * i + bit);
                }
            }
        }
        h
    }

    /// The hash the device gives a packet of `t` (`fragment`: a fragment,
    /// hashed by its addresses), or None where it hashes no such packet
    /// (such packets go to queue 0).
    pub fn hash(&self, t: &RssTuple, fragment: bool) -> Option<u32> {
        let mut buf = [0u8; 36];
        let n = match (t.src, t.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                buf[..4].copy_from_slice(&s.octets());
                buf[4..8].copy_from_slice(&d.octets());
                8
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                buf[..16].copy_from_slice(&s.octets());
                buf[16..32].copy_from_slice(&d.octets());
                32
            }
            _ => return None,
        };
        let v6 = n == 32;
        if !fragment && self.types.with_ports(v6, t.proto) {
            buf[n..n + 2].copy_from_slice(&t.sport.to_be_bytes());
            buf[n + 2..n + 4].copy_from_slice(&t.dport.to_be_bytes());
            return Some(self.toeplitz(&buf[..n + 4]));
        }
        self.types.addresses(v6).then(|| self.toeplitz(&buf[..n]))
    }

    /// The queue a hash selects.
    pub fn queue_of_hash(&self, h: u32) -> u16 {
        self.reta[h as usize & (self.reta.len() - 1)]
    }

    /// The queue the device puts a packet of `t` on.
    pub fn queue(&self, t: &RssTuple, fragment: bool) -> u16 {
        self.hash(t, fragment).map_or(0, |h| self.queue_of_hash(h))
    }

    /// Whether the queue of a `proto` packet depends on its ports, so that
    /// a local port can be chosen for it.
    pub fn steers(&self, v6: bool, proto: u8) -> bool {
        self.types.with_ports(v6, proto)
    }

    /// The queues of the packets `src:sport → dst:<any port>` as a
    /// function of the destination port: what a FULLNAT worker asks of
    /// each candidate local port. None where the ports are not hashed.
    pub fn aim(&self, proto: u8, src: (IpAddr, u16), dst: IpAddr) -> Option<Aim<'_>> {
        let v6 = src.0.is_ipv6();
        if !self.steers(v6, proto) || v6 != dst.is_ipv6() {
            return None;
        }
        let fixed = self.hash(
            &RssTuple {
                proto,
                src: src.0,
                dst,
                sport: src.1,
                dport: 0,
            },
            false,
        )?;
        Some(Aim {
            spread: self,
            fixed,
            v6,
        })
    }
}

/// `Spread::aim`'s answer: a flow's hash with the destination port left
/// open (Toeplitz is linear: the port's bits add their key windows).
pub struct Aim<'a> {
    spread: &'a Spread,
    fixed: u32,
    v6: bool,
}

impl Aim<'_> {
    /// The queue of the flow with destination port `dport`.
    pub fn queue(&self, dport: u16) -> u16 {
        let t = if self.v6 {
            &self.spread.dport6
        } else {
            &self.spread.dport4
        };
        let [hi, lo] = dport.to_be_bytes();
        let h = self.fixed ^ t[0][usize::from(hi)] ^ t[1][usize::from(lo)];
        self.spread.queue_of_hash(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The key of Microsoft's RSS verification suite (and DPDK's default).
    const MS_KEY: [u8; 40] = [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f,
        0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
        0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ];

    fn ms() -> Spread {
        Spread::new(&MS_KEY, HashTypes::ALL, vec![0; 128]).unwrap()
    }

    fn t4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> RssTuple {
        RssTuple {
            proto: TCP,
            src: IpAddr::V4(Ipv4Addr::from(src)),
            dst: IpAddr::V4(Ipv4Addr::from(dst)),
            sport,
            dport,
        }
    }

    /// Microsoft's "Verifying the RSS Hash Calculation" table (IPv4).
    #[test]
    fn ipv4_hashes_match_the_verification_suite() {
        let cases = [
            (
                t4([66, 9, 149, 187], 2794, [161, 142, 100, 80], 1766),
                0x323e_8fc2,
                0x51cc_c178,
            ),
            (
                t4([199, 92, 111, 2], 14230, [65, 69, 140, 83], 4739),
                0xd718_262a,
                0xc626_b0ea,
            ),
            (
                t4([24, 19, 198, 95], 12898, [12, 22, 207, 184], 38024),
                0xd2d0_a5de,
                0x5c2b_394a,
            ),
            (
                t4([38, 27, 205, 30], 48228, [209, 142, 163, 6], 2217),
                0x8298_9176,
                0xafc7_327f,
            ),
            (
                t4([153, 39, 163, 191], 44251, [202, 188, 127, 2], 1303),
                0x5d18_09c5,
                0x10e8_28a2,
            ),
        ];
        let s = ms();
        for (t, ip_only, with_tcp) in cases {
            assert_eq!(s.hash(&t, true), Some(ip_only), "{t:?} addresses");
            assert_eq!(s.hash(&t, false), Some(with_tcp), "{t:?} with ports");
        }
    }

    /// The same table's IPv6 rows.
    #[test]
    fn ipv6_hashes_match_the_verification_suite() {
        let v6 = |s: &str| IpAddr::V6(s.parse::<Ipv6Addr>().unwrap());
        let cases = [
            (
                v6("3ffe:2501:200:1fff::7"),
                2794,
                v6("3ffe:2501:200:3::1"),
                1766,
                0x2cc1_8cd5,
                0x4020_7d3d,
            ),
            (
                v6("3ffe:501:8::260:97ff:fe40:efab"),
                14230,
                v6("ff02::1"),
                4739,
                0x0f0c_461c,
                0xdde5_1bbf,
            ),
            (
                v6("3ffe:1900:4545:3:200:f8ff:fe21:67cf"),
                44251,
                v6("fe80::200:f8ff:fe21:67cf"),
                38024,
                0x4b61_e985,
                0x02d1_feef,
            ),
        ];
        let s = ms();
        for (src, sport, dst, dport, ip_only, with_tcp) in cases {
            let t = RssTuple {
                proto: TCP,
                src,
                dst,
                sport,
                dport,
            };
            assert_eq!(s.hash(&t, true), Some(ip_only), "{t:?} addresses");
            assert_eq!(s.hash(&t, false), Some(with_tcp), "{t:?} with ports");
        }
    }

    #[test]
    fn the_symmetric_key_hashes_a_flow_and_its_reverse_alike() {
        let s = Spread::software(4);
        for k in 0..200u16 {
            let a = t4(
                [10, 0, (k >> 8) as u8, k as u8],
                1000 + k,
                [192, 0, 2, 1],
                80,
            );
            let b = t4(
                [192, 0, 2, 1],
                80,
                [10, 0, (k >> 8) as u8, k as u8],
                1000 + k,
            );
            assert_eq!(s.hash(&a, false), s.hash(&b, false));
        }
    }

    #[test]
    fn aiming_a_port_gives_the_queue_of_the_whole_tuple() {
        let s = Spread::software(4);
        let rs = IpAddr::V4(Ipv4Addr::new(10, 1, 0, 7));
        let lip = IpAddr::V4(Ipv4Addr::new(198, 19, 0, 1));
        let a = s.aim(TCP, (rs, 8080), lip).unwrap();
        let mut seen = [0u32; 4];
        for lport in (1024..65535u16).step_by(7) {
            let t = RssTuple {
                proto: TCP,
                src: rs,
                dst: lip,
                sport: 8080,
                dport: lport,
            };
            assert_eq!(a.queue(lport), s.queue(&t, false), "{lport}");
            seen[usize::from(a.queue(lport))] += 1;
        }
        // Every queue gets a fair share of the ports.
        assert!(seen.iter().all(|&n| n > 1500), "{seen:?}");
        let rs6 = IpAddr::V6("2001:db8::7".parse().unwrap());
        let lip6 = IpAddr::V6("2001:db8:1::1".parse().unwrap());
        let a6 = s.aim(UDP, (rs6, 53), lip6).unwrap();
        for lport in (1024..65535u16).step_by(101) {
            let t = RssTuple {
                proto: UDP,
                src: rs6,
                dst: lip6,
                sport: 53,
                dport: lport,
            };
            assert_eq!(a6.queue(lport), s.queue(&t, false));
        }
    }

    #[test]
    fn unhashed_types_go_to_queue_zero_and_cannot_be_aimed() {
        let types = HashTypes {
            ipv4_tcp: true,
            ..HashTypes::default()
        };
        let s = Spread::new(&SYMMETRIC_KEY, types, vec![1; 64]).unwrap();
        let mut t = t4([10, 0, 0, 1], 1, [10, 0, 0, 2], 2);
        assert_eq!(s.queue(&t, false), 1);
        assert_eq!(s.queue(&t, true), 0, "fragments: addresses not hashed");
        t.proto = 132;
        assert_eq!(s.queue(&t, false), 0);
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        assert!(s.aim(132, (a, 1), a).is_none());
        assert!(s.aim(UDP, (a, 1), a).is_none());
    }

    #[test]
    fn short_keys_and_odd_tables_are_refused() {
        assert_eq!(
            Spread::new(&[0; 16], HashTypes::ALL, vec![0; 8]),
            Err(SpreadError::ShortKey(16))
        );
        assert_eq!(
            Spread::new(&SYMMETRIC_KEY, HashTypes::ALL, vec![0; 100]),
            Err(SpreadError::BadReta(100))
        );
    }
}
