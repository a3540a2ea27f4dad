//! Owned mbufs and bursts of them; `Mbuf` implements the Packet seam.
use std::ptr::NonNull;

use super::Mempool;
use crate::packet::{L4Checksum, Packet, PacketSource, TxOffload};
use dpdk_sys::rte_mbuf;

/// The largest burst rvs asks a queue for.
pub const MAX_BURST: usize = 256;

/// One mbuf (chain) owned by rvs; freed on drop unless handed to a queue.
#[repr(transparent)]
pub struct Mbuf(NonNull<rte_mbuf>);

// SAFETY: an mbuf is plain memory owned by exactly one holder at a time;
// moving that ownership between lcores is how DPDK is used.
unsafe impl Send for Mbuf {}

impl Mbuf {
    pub fn alloc(pool: &Mempool) -> Option<Mbuf> {
        // SAFETY: the pool pointer is valid; a NULL return means no mbuf.
        NonNull::new(unsafe { dpdk_sys::rvs_pktmbuf_alloc(pool.as_ptr()) }).map(Mbuf)
    }

    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `m` must be a valid mbuf that nobody else owns or will free.
    pub(crate) unsafe fn from_raw(m: NonNull<rte_mbuf>) -> Mbuf {
        Mbuf(m)
    }

    pub(crate) fn into_raw(self) -> *mut rte_mbuf {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }

    fn raw(&self) -> *mut rte_mbuf {
        self.0.as_ptr()
    }

    /// The mbuf's header, read in place. The fields rvs reads per packet
    /// (buffer address, data offset and length, port, segments) are plain
    /// fields of `struct rte_mbuf` as bindgen lays it out from DPDK's own
    /// header, so reading them needs no call into C.
    #[inline(always)]
    fn hdr(&self) -> &rte_mbuf {
        // SAFETY: self owns a valid, initialised mbuf for its lifetime.
        unsafe { self.0.as_ref() }
    }

    #[inline(always)]
    fn hdr_mut(&mut self) -> &mut rte_mbuf {
        // SAFETY: as in `hdr`; &mut self gives exclusive access.
        unsafe { self.0.as_mut() }
    }

    #[inline]
    pub fn nb_segs(&self) -> u16 {
        self.hdr().nb_segs
    }

    /// Marks the port the packet came in on (for packets rvs builds itself,
    /// e.g. in benchmarks and tests that feed the pipeline directly).
    #[inline]
    pub fn set_rx_port(&mut self, port: u16) {
        self.hdr_mut().port = port;
    }

    /// Marks what a device that checks IPv4 header checksums on receive
    /// would have found (`Packet::rx_ipv4_checksum`; benchmarks and tests
    /// that model such a device).
    pub fn set_rx_ipv4_checksum(&mut self, found: Option<bool>) {
        let f = match found {
            Some(true) => dpdk_sys::RVS_MBUF_F_RX_IP_CKSUM_GOOD,
            Some(false) => dpdk_sys::RVS_MBUF_F_RX_IP_CKSUM_BAD,
            None => 0,
        };
        let h = self.hdr_mut();
        h.ol_flags = h.ol_flags & !dpdk_sys::RVS_MBUF_F_RX_IP_CKSUM_MASK | f;
    }

    #[inline]
    pub fn pkt_len(&self) -> u32 {
        self.hdr().pkt_len
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and nobody uses it after this.
        unsafe { dpdk_sys::rvs_pktmbuf_free(self.raw()) }
    }
}

impl Packet for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        let h = self.hdr();
        // SAFETY: the first segment's data_len bytes from buf_addr + data_off
        // (what rte_pktmbuf_mtod points at) are initialised packet memory
        // owned by this mbuf, borrowed for &self's lifetime.
        unsafe {
            std::slice::from_raw_parts(
                (h.buf_addr as *const u8).add(usize::from(h.data_off)),
                usize::from(h.data_len),
            )
        }
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let h = self.hdr();
        let (p, n) = (
            (h.buf_addr as *mut u8).wrapping_add(usize::from(h.data_off)),
            usize::from(h.data_len),
        );
        // SAFETY: as in `data`, and &mut self guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(p, n) }
    }
    #[inline]
    fn len(&self) -> usize {
        usize::from(self.hdr().data_len)
    }
    #[inline]
    fn headroom(&self) -> usize {
        usize::from(self.hdr().data_off)
    }
    #[inline]
    fn tailroom(&self) -> usize {
        let h = self.hdr();
        usize::from(h.buf_len).saturating_sub(usize::from(h.data_off) + usize::from(h.data_len))
    }
    fn prepend(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // What rte_pktmbuf_prepend does, without the call (TUN's express
        // lane prepends to every packet): room taken from the headroom of
        // the first segment, which the whole packet's length counts.
        let h = self.hdr_mut();
        if n > h.data_off {
            return false;
        }
        h.data_off -= n;
        h.data_len = h.data_len.wrapping_add(n);
        h.pkt_len = h.pkt_len.wrapping_add(u32::from(n));
        true
    }
    fn adj(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        if n as usize > self.data().len() {
            return false;
        }
        // SAFETY: rte_pktmbuf_adj checks the length and returns NULL when short.
        !unsafe { dpdk_sys::rvs_pktmbuf_adj(self.raw(), n) }.is_null()
    }
    fn append(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: rte_pktmbuf_append checks the last segment's tailroom.
        !unsafe { dpdk_sys::rvs_pktmbuf_append(self.raw(), n) }.is_null()
    }
    fn trim(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // One segment (every received frame rvs trims: Ethernet padding):
        // what rte_pktmbuf_trim does, without the call.
        if self.nb_segs() == 1 {
            let h = self.hdr_mut();
            if n > h.data_len {
                return false;
            }
            h.data_len -= n;
            h.pkt_len -= u32::from(n);
            return true;
        }
        // SAFETY: rte_pktmbuf_trim checks the last segment's length.
        unsafe { dpdk_sys::rvs_pktmbuf_trim(self.raw(), n) == 0 }
    }
    fn is_contiguous(&self) -> bool {
        self.nb_segs() == 1
    }
    #[inline]
    fn rx_port(&self) -> u16 {
        self.hdr().port
    }
    fn rss_hash(&self) -> u32 {
        // SAFETY: self owns a valid mbuf.
        unsafe { dpdk_sys::rvs_mbuf_rss_hash(self.raw()) }
    }
    /// The PMD's RX flags (set where the port has the IPv4 checksum
    /// offload: `Port`), read from the mbuf's header in place.
    #[inline]
    fn rx_ipv4_checksum(&self) -> Option<bool> {
        match self.hdr().ol_flags & dpdk_sys::RVS_MBUF_F_RX_IP_CKSUM_MASK {
            f if f == dpdk_sys::RVS_MBUF_F_RX_IP_CKSUM_GOOD => Some(true),
            f if f == dpdk_sys::RVS_MBUF_F_RX_IP_CKSUM_BAD => Some(false),
            _ => None,
        }
    }
    fn request_tx_offload(&mut self, o: TxOffload) {
        let mut flags = if o.ipv4 {
            dpdk_sys::RTE_MBUF_F_TX_IPV4
        } else {
            dpdk_sys::RTE_MBUF_F_TX_IPV6
        };
        if o.ip_checksum {
            flags |= dpdk_sys::RTE_MBUF_F_TX_IP_CKSUM;
        }
        flags |= match o.l4 {
            L4Checksum::None => 0,
            L4Checksum::Tcp => dpdk_sys::RTE_MBUF_F_TX_TCP_CKSUM,
            L4Checksum::Udp => dpdk_sys::RTE_MBUF_F_TX_UDP_CKSUM,
        };
        // SAFETY: self owns a valid mbuf; only offload metadata is written.
        unsafe {
            dpdk_sys::rvs_mbuf_set_tx_offload(self.raw(), flags, o.l2_len, o.l3_len, o.l4_len)
        }
    }
}

/// Allocates mbufs from a pool for packets rvs originates.
pub struct MbufSource<'a>(pub &'a Mempool);

impl PacketSource for MbufSource<'_> {
    type P = Mbuf;
    fn alloc(&mut self) -> Option<Mbuf> {
        Mbuf::alloc(self.0)
    }
}

/// A fixed array of owned mbuf pointers: what rx fills and tx drains.
pub struct Burst {
    ptrs: [*mut rte_mbuf; MAX_BURST],
    len: usize,
}

// SAFETY: the burst owns the mbufs it points to (see Mbuf's Send).
unsafe impl Send for Burst {}

impl Default for Burst {
    fn default() -> Self {
        Burst {
            ptrs: [std::ptr::null_mut(); MAX_BURST],
            len: 0,
        }
    }
}

impl Burst {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn is_full(&self) -> bool {
        self.len == MAX_BURST
    }

    /// Adds a packet; when full, gives it back.
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        // One check, the slot's (the compiler does not know that `len`
        // never passes MAX_BURST, and checked it twice), and the length
        // kept from before the store (which it read again after).
        let n = self.len;
        let Some(slot) = self.ptrs.get_mut(n) else {
            return Err(m);
        };
        *slot = m.into_raw();
        self.len = n + 1;
        Ok(())
    }

    /// Takes every packet out, in order.
    pub fn drain(&mut self) -> impl Iterator<Item = Mbuf> + '_ {
        let n = std::mem::replace(&mut self.len, 0);
        self.ptrs[..n].iter().map(|&p| {
            // SAFETY: slots below len hold owned, non-null mbufs (filled by
            // push or by a successful rx/dequeue), and we just reset len so
            // each is handed out once.
            unsafe { Mbuf::from_raw(NonNull::new_unchecked(p)) }
        })
    }

    /// Fills the burst's free slots with up to `n` fresh mbufs from `pool` in
    /// one bulk allocation; all or none. Returns how many were added.
    pub fn alloc_bulk(&mut self, pool: &Mempool, n: usize) -> usize {
        let spare = self.spare(n);
        let k = spare.len();
        if k == 0 {
            return 0;
        }
        // SAFETY: spare has room for k pointers; on success DPDK writes k
        // valid mbufs there and hands us their ownership, on failure nothing.
        let ret = unsafe {
            dpdk_sys::rvs_pktmbuf_alloc_bulk(pool.as_ptr(), spare.as_mut_ptr(), k as u32)
        };
        if ret != 0 {
            return 0;
        }
        self.filled(k);
        k
    }

    /// The packets in the burst, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Mbuf> + '_ {
        self.ptrs[..self.len].iter().map(|p| {
            // SAFETY: slots below len hold owned, non-null mbufs; Mbuf is a
            // transparent NonNull<rte_mbuf>, so a slot may be viewed as one.
            unsafe { &*(p as *const *mut rte_mbuf as *const Mbuf) }
        })
    }

    /// The packets in the burst, in order, to work on in place.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Mbuf> + '_ {
        let n = self.len;
        self.ptrs[..n].iter_mut().map(|p| {
            // SAFETY: slots below len hold owned, non-null mbufs; Mbuf is a
            // transparent NonNull<rte_mbuf>, so a slot may be viewed as one,
            // and the &mut borrow of the burst keeps anyone else from them.
            unsafe { &mut *(p as *mut *mut rte_mbuf as *mut Mbuf) }
        })
    }

    /// Room for `want` more pointers, for rx and dequeue to fill.
    pub(crate) fn spare(&mut self, want: usize) -> &mut [*mut rte_mbuf] {
        let end = (self.len + want).min(MAX_BURST);
        &mut self.ptrs[self.len..end]
    }

    pub(crate) fn filled(&mut self, n: usize) {
        self.len = (self.len + n).min(MAX_BURST);
    }

    pub(crate) fn as_slice_mut(&mut self) -> &mut [*mut rte_mbuf] {
        &mut self.ptrs[..self.len]
    }

    /// Forgets the first `n` packets (they now belong to a queue or ring) and
    /// shifts the rest to the front.
    pub(crate) fn consumed(&mut self, n: usize) {
        let n = n.min(self.len);
        self.ptrs.copy_within(n..self.len, 0);
        self.len -= n;
    }
}

impl Drop for Burst {
    fn drop(&mut self) {
        self.drain().for_each(drop);
    }
}
