//! The Packet seam: one packet buffer with headroom.
//!
//! Everything from `wire` to `xmit` works on this trait. `src/dpdk` implements
//! it over an mbuf; `VecPacket` implements it over a `Vec<u8>` so the whole
//! pipeline runs in unit tests and fuzzers without EAL.

/// Checksum work a packet asks the NIC to do on transmit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxOffload {
    pub l2_len: u16,
    pub l3_len: u16,
    pub l4_len: u16,
    pub ipv4: bool,
    pub ip_checksum: bool,
    pub l4: L4Checksum,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum L4Checksum {
    #[default]
    None,
    Tcp,
    Udp,
}

pub trait Packet {
    /// The packet's bytes (the first segment; see `is_contiguous`).
    fn data(&self) -> &[u8];
    fn data_mut(&mut self) -> &mut [u8];
    fn len(&self) -> usize {
        self.data().len()
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn headroom(&self) -> usize;
    fn tailroom(&self) -> usize;
    /// Grows the packet by `n` bytes at the front; false (and unchanged) when
    /// the headroom is too small.
    fn prepend(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the front; false (and unchanged) when too short.
    fn adj(&mut self, n: usize) -> bool;
    /// Grows the packet by `n` bytes at the end; false when the tailroom is short.
    fn append(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the end; false (and unchanged) when too short.
    fn trim(&mut self, n: usize) -> bool;
    /// Whether all of the packet is in `data()` (one segment).
    fn is_contiguous(&self) -> bool;
    /// The port the packet arrived on.
    fn rx_port(&self) -> u16;
    fn rss_hash(&self) -> u32;
    /// What the device found of the IPv4 header checksum of the packet
    /// it received: Some(true) right, Some(false) wrong, None when it did
    /// not look (no offload, not IPv4, or a packet rvs made).
    fn rx_ipv4_checksum(&self) -> Option<bool> {
        None
    }
    fn request_tx_offload(&mut self, offload: TxOffload);
    /// Sets the packet's length to `len`, growing or shrinking at the end.
    fn set_len(&mut self, len: usize) -> bool {
        let cur = self.len();
        if len >= cur {
            self.append(len - cur)
        } else {
            self.trim(cur - len)
        }
    }
}

/// Where new packets (ARP requests, gratuitous ARP) come from.
pub trait PacketSource {
    type P: Packet;
    /// An empty packet with default headroom, or None when the pool is dry.
    fn alloc(&mut self) -> Option<Self::P>;
}

/// A `Packet` over a `Vec<u8>` for tests, fuzzing and benchmarks without EAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VecPacket {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    port: u16,
    rss: u32,
    /// `rx_ipv4_checksum`, as a test's device says.
    pub rx_ipv4_checksum: Option<bool>,
    pub offload: Option<TxOffload>,
}

impl VecPacket {
    /// Matches RTE_PKTMBUF_HEADROOM and the default mbuf data room.
    pub const HEADROOM: usize = 128;
    pub const CAPACITY: usize = 2048 + Self::HEADROOM;

    pub fn new() -> Self {
        VecPacket {
            buf: vec![0; Self::CAPACITY],
            start: Self::HEADROOM,
            end: Self::HEADROOM,
            port: 0,
            rss: 0,
            rx_ipv4_checksum: None,
            offload: None,
        }
    }

    /// A packet holding a copy of `bytes` as if received on `port`.
    pub fn from_bytes(bytes: &[u8], port: u16) -> Self {
        let mut p = VecPacket::new();
        if bytes.len() > Self::CAPACITY - Self::HEADROOM {
            p.buf.resize(Self::HEADROOM + bytes.len(), 0);
        }
        p.buf[Self::HEADROOM..Self::HEADROOM + bytes.len()].copy_from_slice(bytes);
        p.end = Self::HEADROOM + bytes.len();
        p.port = port;
        p
    }

    pub fn set_rx_port(&mut self, port: u16) {
        self.port = port;
    }

    pub fn set_rss_hash(&mut self, rss: u32) {
        self.rss = rss;
    }
}

impl Default for VecPacket {
    fn default() -> Self {
        Self::new()
    }
}

impl Packet for VecPacket {
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }
    fn headroom(&self) -> usize {
        self.start
    }
    fn tailroom(&self) -> usize {
        self.buf.len() - self.end
    }
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        true
    }
    fn adj(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.start += n;
        true
    }
    fn append(&mut self, n: usize) -> bool {
        if n > self.tailroom() {
            return false;
        }
        self.end += n;
        true
    }
    fn trim(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.end -= n;
        true
    }
    fn is_contiguous(&self) -> bool {
        true
    }
    fn rx_port(&self) -> u16 {
        self.port
    }
    fn rss_hash(&self) -> u32 {
        self.rss
    }
    fn rx_ipv4_checksum(&self) -> Option<bool> {
        self.rx_ipv4_checksum
    }
    fn request_tx_offload(&mut self, offload: TxOffload) {
        self.offload = Some(offload);
    }
}

/// Allocates `VecPacket`s without limit, or up to `limit` when set.
#[derive(Debug, Default)]
pub struct VecSource {
    pub limit: Option<usize>,
    pub allocated: usize,
}

impl PacketSource for VecSource {
    type P = VecPacket;
    fn alloc(&mut self) -> Option<VecPacket> {
        if self.limit.is_some_and(|l| self.allocated >= l) {
            return None;
        }
        self.allocated += 1;
        Some(VecPacket::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_adj_append_trim_respect_bounds() {
        let mut p = VecPacket::from_bytes(&[1, 2, 3, 4], 7);
        assert_eq!(p.rx_port(), 7);
        assert!(p.prepend(2));
        assert_eq!(p.len(), 6);
        assert_eq!(&p.data()[2..], &[1, 2, 3, 4]);
        assert!(!p.prepend(VecPacket::HEADROOM));
        assert!(p.adj(3));
        assert_eq!(p.data(), &[2, 3, 4]);
        assert!(!p.adj(4));
        assert!(p.trim(1));
        assert_eq!(p.data(), &[2, 3]);
        assert!(!p.trim(3));
        assert!(p.set_len(5));
        assert_eq!(p.len(), 5);
        assert!(!p.append(p.tailroom() + 1));
    }
}
