//! Ethernet II frames. 802.1Q tags are not parsed: a tagged frame simply
//! reports `EtherType::VLAN`.

use core::fmt;
use std::net::Ipv6Addr;

use super::{be16, set_be16, Error, EtherType, Result};

/// A 48-bit Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    pub const fn new(bytes: [u8; 6]) -> MacAddr {
        MacAddr(bytes)
    }

    /// `None` unless `b` is exactly six bytes.
    pub fn from_slice(b: &[u8]) -> Option<MacAddr> {
        <[u8; 6]>::try_from(b).ok().map(MacAddr)
    }

    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn is_broadcast(&self) -> bool {
        self.0 == [0xff; 6]
    }

    /// Group bit set; broadcast counts as multicast.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    pub fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// The Ethernet group address an IPv6 multicast address maps to
    /// (RFC 2464 section 7): 33:33 followed by its last four bytes.
    pub fn ipv6_multicast(addr: Ipv6Addr) -> MacAddr {
        let o = addr.octets();
        MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(b: [u8; 6]) -> Self {
        MacAddr(b)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// A view of an Ethernet II frame (without FCS).
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    pub const HEADER_LEN: usize = 14;

    /// No validation; getters panic if the buffer is shorter than 14 bytes.
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < Self::HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub const fn header_len() -> usize {
        Self::HEADER_LEN
    }

    pub fn dst_addr(&self) -> MacAddr {
        mac_at(self.buffer.as_ref(), 0)
    }

    pub fn src_addr(&self) -> MacAddr {
        mac_at(self.buffer.as_ref(), 6)
    }

    pub fn ethertype(&self) -> EtherType {
        EtherType(be16(self.buffer.as_ref(), 12))
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[Self::HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    pub fn set_dst_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[0..6].copy_from_slice(&a.0);
    }

    pub fn set_src_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[6..12].copy_from_slice(&a.0);
    }

    pub fn set_ethertype(&mut self, t: EtherType) {
        set_be16(self.buffer.as_mut(), 12, t.0);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[Self::HEADER_LEN..]
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> EthernetFrame<&'a T> {
    /// As `payload()`, but borrowing the underlying buffer rather than the
    /// view, so the next layer's view can outlive this one.
    pub fn into_payload(self) -> &'a [u8] {
        let b: &'a [u8] = self.buffer.as_ref();
        &b[Self::HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for EthernetFrame<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

fn mac_at(b: &[u8], at: usize) -> MacAddr {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[at..at + 6]);
    MacAddr(m)
}

/// The Ethernet header in high-level form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    pub src: MacAddr,
    pub dst: MacAddr,
    pub ethertype: EtherType,
}

impl EthernetRepr {
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<EthernetRepr> {
        frame.check_len()?;
        Ok(EthernetRepr {
            src: frame.src_addr(),
            dst: frame.dst_addr(),
            ethertype: frame.ethertype(),
        })
    }

    pub const fn header_len(&self) -> usize {
        14
    }

    /// Frame length for a payload of `payload_len` bytes.
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        14 + payload_len
    }

    /// Writes the header; the buffer must be at least 14 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        frame.set_dst_addr(self.dst);
        frame.set_src_addr(self.src);
        frame.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{EtherType as EpType, Ethernet2Header, PacketBuilder};

    const SRC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
    const DST: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(SRC, DST)
            .ipv4([1, 2, 3, 4], [5, 6, 7, 8], 64)
            .udp(1, 2)
            .write(&mut v, b"hello")
            .unwrap();
        v
    }

    #[test]
    fn parse_etherparse_frame() {
        let v = sample();
        let f = EthernetFrame::new_checked(&v[..]).unwrap();
        assert_eq!(f.src_addr(), MacAddr(SRC));
        assert_eq!(f.dst_addr(), MacAddr(DST));
        assert_eq!(f.ethertype(), EtherType::IPV4);
        assert_eq!(f.payload(), &v[14..]);
        let r = EthernetRepr::parse(&f).unwrap();
        assert_eq!(r.src, MacAddr(SRC));
        assert_eq!(r.ethertype, EtherType::IPV4);
    }

    #[test]
    fn emit_parsed_by_etherparse() {
        let r = EthernetRepr {
            src: MacAddr(SRC),
            dst: MacAddr::BROADCAST,
            ethertype: EtherType::ARP,
        };
        let mut buf = vec![0u8; r.buffer_len(4)];
        let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
        r.emit(&mut f);
        f.payload_mut().copy_from_slice(&[1, 2, 3, 4]);
        let (h, rest) = Ethernet2Header::from_slice(&buf).unwrap();
        assert_eq!(h.source, SRC);
        assert_eq!(h.destination, [0xff; 6]);
        assert_eq!(h.ether_type, EpType::ARP);
        assert_eq!(rest, &[1, 2, 3, 4]);
    }

    #[test]
    fn truncation_never_panics() {
        let v = sample();
        for n in 0..=v.len() {
            match EthernetFrame::new_checked(&v[..n]) {
                Ok(f) => {
                    assert!(n >= 14);
                    assert_eq!(f.payload().len(), n - 14);
                    let _ = (f.src_addr(), f.dst_addr(), f.ethertype());
                }
                Err(e) => {
                    assert!(n < 14);
                    assert_eq!(e, Error::Truncated);
                }
            }
        }
    }

    #[test]
    fn mac_addr() {
        assert_eq!(
            MacAddr([0xaa, 0xbb, 0xcc, 0x0d, 0x0e, 0xf0]).to_string(),
            "aa:bb:cc:0d:0e:f0"
        );
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr(DST).is_unicast());
        assert!(!MacAddr(DST).is_multicast());
        let a: Ipv6Addr = "ff02::1:ff12:3456".parse().unwrap();
        assert_eq!(
            MacAddr::ipv6_multicast(a),
            MacAddr([0x33, 0x33, 0xff, 0x12, 0x34, 0x56])
        );
        assert!(MacAddr::ipv6_multicast(a).is_multicast());
        assert_eq!(MacAddr::from_slice(&SRC), Some(MacAddr(SRC)));
        assert_eq!(MacAddr::from_slice(&SRC[..5]), None);
    }
}
