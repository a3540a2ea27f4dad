//! Zero-copy packet views and builders.
//!
//! Every protocol has a typed view `Foo<T: AsRef<[u8]>>` over a byte buffer.
//! `Foo::new_checked` validates every length the getters rely on, so after it
//! succeeds no getter can panic, whatever the bytes are. `Foo::new_unchecked`
//! skips that validation; its getters may panic on a short buffer and it is
//! meant for buffers the caller has sized itself (emitting). Where a protocol
//! has a natural high-level form there is a `FooRepr` with `parse` and `emit`.
//! The fast path reads the common frame (IPv4 without options, TCP or UDP)
//! through `plain`'s fixed-offset views, which check what those views
//! would.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipext;
pub mod ipv4;
pub mod ipv6;
pub mod plain;
pub mod sctp;
pub mod tcp;
pub mod udp;
pub mod vrrp;

use core::fmt;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use ethernet::{EthernetFrame, EthernetRepr, MacAddr};
pub use icmpv4::{EmbeddedIpv4, Icmpv4Packet};
pub use icmpv6::{EmbeddedIpv6, Icmpv6Packet, NdOptions, NdRepr};
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::{solicited_node, Ipv6Packet, Ipv6Repr};
pub use plain::{PlainFrame, PlainIpv4};
pub use sctp::SctpPacket;
pub use tcp::{TcpOptions, TcpPacket};
pub use udp::{UdpPacket, UdpRepr};

/// Why a buffer could not be viewed as a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the header or a length field says.
    Truncated,
    /// A field holds a value the protocol does not allow.
    Malformed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => f.write_str("truncated packet"),
            Error::Malformed => f.write_str("malformed packet"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;

/// The Ethernet II type field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EtherType(pub u16);

impl EtherType {
    pub const IPV4: EtherType = EtherType(0x0800);
    pub const ARP: EtherType = EtherType(0x0806);
    pub const VLAN: EtherType = EtherType(0x8100);
    pub const IPV6: EtherType = EtherType(0x86DD);
}

impl From<u16> for EtherType {
    fn from(v: u16) -> Self {
        EtherType(v)
    }
}

impl From<EtherType> for u16 {
    fn from(v: EtherType) -> Self {
        v.0
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:04x}", self.0)
    }
}

/// The IPv4 protocol / IPv6 next header field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    pub const ICMP: IpProtocol = IpProtocol(1);
    pub const IPIP: IpProtocol = IpProtocol(4);
    pub const TCP: IpProtocol = IpProtocol(6);
    pub const UDP: IpProtocol = IpProtocol(17);
    pub const IPV6: IpProtocol = IpProtocol(41);
    pub const ICMPV6: IpProtocol = IpProtocol(58);
    pub const SCTP: IpProtocol = IpProtocol(132);
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        IpProtocol(v)
    }
}

impl From<IpProtocol> for u8 {
    fn from(v: IpProtocol) -> Self {
        v.0
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

// Field accessors shared by the views. They index directly: callers only use
// them on ranges that `check_len` has proven to exist (or on `new_unchecked`
// views, whose getters are documented to panic on short buffers).

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
fn set_be16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
fn set_be32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[inline]
fn ipv4_at(b: &[u8], at: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

#[inline]
fn ipv6_at(b: &[u8], at: usize) -> std::net::Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[at..at + 16]);
    std::net::Ipv6Addr::from(o)
}

#[cfg(test)]
pub(crate) mod testutil {
    /// Deterministic xorshift so tests are reproducible without `rand`.
    pub struct XorShift(pub u64);

    impl XorShift {
        pub fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        pub fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
    use std::net::IpAddr;

    #[derive(Debug, PartialEq)]
    struct Summary {
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        ports: Option<(u16, u16)>,
        payload: Vec<u8>,
        checksum_ok: bool,
    }

    // The way the stack is expected to walk a frame with these views.
    fn dissect(frame: &[u8]) -> Result<Summary> {
        let eth = EthernetFrame::new_checked(frame)?;
        let (src, dst, proto, l4): (IpAddr, IpAddr, u8, &[u8]) = match eth.ethertype() {
            EtherType::IPV4 => {
                let ip = Ipv4Packet::new_checked(eth.into_payload())?;
                if !ip.verify_checksum() {
                    return Err(Error::Malformed);
                }
                let p = ip.protocol().0;
                (
                    ip.src_addr().into(),
                    ip.dst_addr().into(),
                    p,
                    ip.into_payload(),
                )
            }
            EtherType::IPV6 => {
                let ip = Ipv6Packet::new_checked(eth.into_payload())?;
                let p = ip.next_header().0;
                (
                    ip.src_addr().into(),
                    ip.dst_addr().into(),
                    p,
                    ip.into_payload(),
                )
            }
            _ => return Err(Error::Malformed),
        };
        let (ports, payload, checksum_ok) = match (IpProtocol(proto), src, dst) {
            (IpProtocol::TCP, IpAddr::V4(s), IpAddr::V4(d)) => {
                let t = TcpPacket::new_checked(l4)?;
                let ok = t.verify_checksum_v4(s, d);
                (Some((t.src_port(), t.dst_port())), t.into_payload(), ok)
            }
            (IpProtocol::TCP, IpAddr::V6(s), IpAddr::V6(d)) => {
                let t = TcpPacket::new_checked(l4)?;
                let ok = t.verify_checksum_v6(&s, &d);
                (Some((t.src_port(), t.dst_port())), t.into_payload(), ok)
            }
            (IpProtocol::UDP, IpAddr::V4(s), IpAddr::V4(d)) => {
                let u = UdpPacket::new_checked(l4)?;
                let ok = u.verify_checksum_v4(s, d);
                (Some((u.src_port(), u.dst_port())), u.into_payload(), ok)
            }
            (IpProtocol::UDP, IpAddr::V6(s), IpAddr::V6(d)) => {
                let u = UdpPacket::new_checked(l4)?;
                let ok = u.verify_checksum_v6(&s, &d);
                (Some((u.src_port(), u.dst_port())), u.into_payload(), ok)
            }
            (IpProtocol::ICMP, _, _) => {
                let i = Icmpv4Packet::new_checked(l4)?;
                (None, i.into_payload(), i.verify_checksum())
            }
            (IpProtocol::ICMPV6, IpAddr::V6(s), IpAddr::V6(d)) => {
                let i = Icmpv6Packet::new_checked(l4)?;
                (None, i.into_payload(), i.verify_checksum(&s, &d))
            }
            _ => return Err(Error::Malformed),
        };
        Ok(Summary {
            src,
            dst,
            proto,
            ports,
            payload: payload.to_vec(),
            checksum_ok,
        })
    }

    fn etherparse_summary(frame: &[u8]) -> Option<Summary> {
        let sp = SlicedPacket::from_ethernet(frame).ok()?;
        let (src, dst, proto): (IpAddr, IpAddr, u8) = match sp.net? {
            NetSlice::Ipv4(ip) => {
                let h = ip.header();
                (
                    h.source_addr().into(),
                    h.destination_addr().into(),
                    h.protocol().0,
                )
            }
            NetSlice::Ipv6(ip) => {
                let h = ip.header();
                (
                    h.source_addr().into(),
                    h.destination_addr().into(),
                    h.next_header().0,
                )
            }
        };
        let (ports, payload) = match sp.transport? {
            TransportSlice::Tcp(t) => (
                Some((t.source_port(), t.destination_port())),
                t.payload().to_vec(),
            ),
            TransportSlice::Udp(u) => (
                Some((u.source_port(), u.destination_port())),
                u.payload().to_vec(),
            ),
            TransportSlice::Icmpv4(i) => (None, i.payload().to_vec()),
            TransportSlice::Icmpv6(i) => (None, i.payload().to_vec()),
        };
        Some(Summary {
            src,
            dst,
            proto,
            ports,
            payload,
            checksum_ok: true,
        })
    }

    fn frames() -> Vec<Vec<u8>> {
        let mac = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let v4 = ([192, 0, 2, 1], [198, 51, 100, 7]);
        let v6 = (
            "2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
            "2001:db8::2"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        let payload = b"payload bytes";
        let mut out = Vec::new();
        let mut push = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut v = Vec::new();
            f(&mut v);
            out.push(v);
        };
        push(&|v| {
            PacketBuilder::ethernet2(mac.0, mac.1)
                .ipv4(v4.0, v4.1, 64)
                .tcp(1000, 80, 5, 100)
                .syn()
                .write(v, payload)
                .unwrap()
        });
        push(&|v| {
            PacketBuilder::ethernet2(mac.0, mac.1)
                .ipv4(v4.0, v4.1, 64)
                .udp(53, 5353)
                .write(v, payload)
                .unwrap()
        });
        push(&|v| {
            PacketBuilder::ethernet2(mac.0, mac.1)
                .ipv4(v4.0, v4.1, 64)
                .icmpv4_echo_request(1, 2)
                .write(v, payload)
                .unwrap()
        });
        push(&|v| {
            PacketBuilder::ethernet2(mac.0, mac.1)
                .ipv6(v6.0, v6.1, 64)
                .tcp(1000, 443, 5, 100)
                .ack(9)
                .write(v, payload)
                .unwrap()
        });
        push(&|v| {
            PacketBuilder::ethernet2(mac.0, mac.1)
                .ipv6(v6.0, v6.1, 64)
                .udp(53, 5353)
                .write(v, payload)
                .unwrap()
        });
        push(&|v| {
            PacketBuilder::ethernet2(mac.0, mac.1)
                .ipv6(v6.0, v6.1, 64)
                .icmpv6_echo_request(1, 2)
                .write(v, payload)
                .unwrap()
        });
        out
    }

    #[test]
    fn whole_frames_agree_with_etherparse() {
        for f in frames() {
            let ours = dissect(&f).unwrap();
            assert!(ours.checksum_ok, "{ours:?}");
            assert_eq!(Some(ours), etherparse_summary(&f));
            // Minimum-frame padding changes nothing above Ethernet.
            let mut padded = f.clone();
            padded.resize(f.len().max(60) + 4, 0);
            let ours = dissect(&padded).unwrap();
            assert!(ours.checksum_ok);
            assert_eq!(Some(ours), etherparse_summary(&padded));
        }
    }

    #[test]
    fn truncated_frames_fail_cleanly() {
        for f in frames() {
            for n in 0..f.len() {
                assert!(dissect(&f[..n]).is_err(), "len {n} of {}", f.len());
                assert!(etherparse_summary(&f[..n]).is_none());
            }
        }
    }

    #[test]
    fn corrupted_frames_never_panic() {
        let mut rng = testutil::XorShift(0xabad_1dea);
        for f in frames() {
            for _ in 0..3000 {
                let mut g = f.clone();
                for _ in 0..1 + rng.next() % 4 {
                    let at = rng.next() as usize % g.len();
                    g[at] = rng.next() as u8;
                }
                let cut = g.len() - rng.next() as usize % 8;
                let _ = dissect(&g[..cut]);
            }
        }
    }

    #[test]
    fn error_display() {
        assert_eq!(Error::Truncated.to_string(), "truncated packet");
        assert_eq!(Error::Malformed.to_string(), "malformed packet");
        let e: Box<dyn std::error::Error> = Box::new(Error::Malformed);
        assert!(e.source().is_none());
        assert_eq!(EtherType::IPV6.to_string(), "0x86dd");
        assert_eq!(u16::from(EtherType::ARP), 0x0806);
        assert_eq!(u8::from(IpProtocol::SCTP), 132);
    }
}
