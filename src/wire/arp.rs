//! ARP for IPv4 over Ethernet (RFC 826). Any other hardware or protocol
//! type is rejected as malformed.

use std::net::Ipv4Addr;

use super::ethernet::MacAddr;
use super::{be16, ipv4_at, set_be16, Error, Result};

const HTYPE_ETHERNET: u16 = 1;
const PTYPE_IPV4: u16 = 0x0800;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    Request,
    Reply,
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(v: u16) -> Self {
        match v {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            o => ArpOperation::Unknown(o),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(v: ArpOperation) -> Self {
        match v {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(o) => o,
        }
    }
}

/// A view of an Ethernet/IPv4 ARP packet (28 bytes; trailing padding ignored).
#[derive(Debug, Clone, Copy)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    pub const LEN: usize = 28;

    /// No validation; getters panic if the buffer is shorter than 28 bytes.
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Truncated below 28 bytes; Malformed unless Ethernet/IPv4 with 6/4
    /// byte addresses.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < Self::LEN {
            return Err(Error::Truncated);
        }
        if be16(b, 0) != HTYPE_ETHERNET || be16(b, 2) != PTYPE_IPV4 || b[4] != 6 || b[5] != 4 {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn hardware_type(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }

    pub fn protocol_type(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[4]
    }

    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[5]
    }

    pub fn operation(&self) -> ArpOperation {
        be16(self.buffer.as_ref(), 6).into()
    }

    pub fn sender_hw_addr(&self) -> MacAddr {
        mac_at(self.buffer.as_ref(), 8)
    }

    pub fn sender_proto_addr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), 14)
    }

    pub fn target_hw_addr(&self) -> MacAddr {
        mac_at(self.buffer.as_ref(), 18)
    }

    pub fn target_proto_addr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), 24)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Writes htype/ptype/hlen/plen for Ethernet/IPv4.
    pub fn set_fixed_fields(&mut self) {
        let b = self.buffer.as_mut();
        set_be16(b, 0, HTYPE_ETHERNET);
        set_be16(b, 2, PTYPE_IPV4);
        b[4] = 6;
        b[5] = 4;
    }

    pub fn set_operation(&mut self, op: ArpOperation) {
        set_be16(self.buffer.as_mut(), 6, op.into());
    }

    pub fn set_sender_hw_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[8..14].copy_from_slice(&a.0);
    }

    pub fn set_sender_proto_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[14..18].copy_from_slice(&a.octets());
    }

    pub fn set_target_hw_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[18..24].copy_from_slice(&a.0);
    }

    pub fn set_target_proto_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[24..28].copy_from_slice(&a.octets());
    }
}

fn mac_at(b: &[u8], at: usize) -> MacAddr {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[at..at + 6]);
    MacAddr(m)
}

/// An Ethernet/IPv4 ARP request or reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    pub operation: ArpOperation,
    pub sender_hw_addr: MacAddr,
    pub sender_proto_addr: Ipv4Addr,
    pub target_hw_addr: MacAddr,
    pub target_proto_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Malformed for operations other than request and reply.
    pub fn parse<T: AsRef<[u8]>>(p: &ArpPacket<T>) -> Result<ArpRepr> {
        p.check_len()?;
        let operation = p.operation();
        if let ArpOperation::Unknown(_) = operation {
            return Err(Error::Malformed);
        }
        Ok(ArpRepr {
            operation,
            sender_hw_addr: p.sender_hw_addr(),
            sender_proto_addr: p.sender_proto_addr(),
            target_hw_addr: p.target_hw_addr(),
            target_proto_addr: p.target_proto_addr(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        28
    }

    /// The buffer must be at least 28 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut ArpPacket<T>) {
        p.set_fixed_fields();
        p.set_operation(self.operation);
        p.set_sender_hw_addr(self.sender_hw_addr);
        p.set_sender_proto_addr(self.sender_proto_addr);
        p.set_target_hw_addr(self.target_hw_addr);
        p.set_target_proto_addr(self.target_proto_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // An ARP request as captured on the wire (who-has 192.168.1.1 tell
    // 192.168.1.100), followed by Ethernet padding.
    const REQUEST: [u8; 46] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x00, 0x0c, 0x29, 0x3e, 0x5f, 0x4a, 0xc0,
        0xa8, 0x01, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xa8, 0x01, 0x01, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn parse_captured_request() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.protocol_type(), 0x0800);
        assert_eq!(p.operation(), ArpOperation::Request);
        assert_eq!(
            p.sender_hw_addr(),
            MacAddr([0x00, 0x0c, 0x29, 0x3e, 0x5f, 0x4a])
        );
        assert_eq!(p.sender_proto_addr(), Ipv4Addr::new(192, 168, 1, 100));
        assert_eq!(p.target_hw_addr(), MacAddr::ZERO);
        assert_eq!(p.target_proto_addr(), Ipv4Addr::new(192, 168, 1, 1));
        let r = ArpRepr::parse(&p).unwrap();
        assert_eq!(r.operation, ArpOperation::Request);
    }

    #[test]
    fn emit_matches_wire_bytes() {
        let r = ArpRepr {
            operation: ArpOperation::Request,
            sender_hw_addr: MacAddr([0x00, 0x0c, 0x29, 0x3e, 0x5f, 0x4a]),
            sender_proto_addr: Ipv4Addr::new(192, 168, 1, 100),
            target_hw_addr: MacAddr::ZERO,
            target_proto_addr: Ipv4Addr::new(192, 168, 1, 1),
        };
        let mut buf = [0xaau8; 28];
        r.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..], &REQUEST[..28]);

        let reply = ArpRepr {
            operation: ArpOperation::Reply,
            ..r
        };
        reply.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[6..8], &[0, 2]);
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_checked(&buf[..]).unwrap()).unwrap(),
            reply
        );
    }

    #[test]
    fn rejects_other_types() {
        for (at, v) in [(1usize, 6u8), (2, 0x86), (4, 8), (5, 16)] {
            let mut b = REQUEST;
            b[at] = v;
            assert_eq!(
                ArpPacket::new_checked(&b[..]).unwrap_err(),
                Error::Malformed
            );
        }
        let mut b = REQUEST;
        b[7] = 9;
        let p = ArpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.operation(), ArpOperation::Unknown(9));
        assert_eq!(ArpRepr::parse(&p).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn truncation_never_panics() {
        for n in 0..=REQUEST.len() {
            match ArpPacket::new_checked(&REQUEST[..n]) {
                Ok(p) => {
                    assert!(n >= 28);
                    ArpRepr::parse(&p).unwrap();
                }
                Err(e) => {
                    assert!(n < 28);
                    assert_eq!(e, Error::Truncated);
                }
            }
        }
    }
}
