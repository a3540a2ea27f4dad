//! Packet mbuf pools.
use std::ffi::CString;
use std::ptr::NonNull;

use super::{last_errno, DpdkError};

/// A pktmbuf mempool. Pools live until EAL clean-up: ports keep pointers to
/// them in their rx rings, so freeing one early would be a use-after-free.
pub struct Mempool {
    ptr: NonNull<dpdk_sys::rte_mempool>,
}

// SAFETY: DPDK mempools are safe to use from any lcore (per-lcore caches plus a
// lock-free ring behind them).
unsafe impl Send for Mempool {}
// SAFETY: as above; all operations go through DPDK's thread-safe functions.
unsafe impl Sync for Mempool {}

impl Mempool {
    pub fn new_pktmbuf(
        name: &str,
        mbufs: u32,
        cache: u32,
        data_room: u16,
        socket: i32,
    ) -> Result<Mempool, DpdkError> {
        let cname = CString::new(name)
            .map_err(|_| DpdkError::new(format!("bad mempool name {name:?}"), libc::EINVAL))?;
        // SAFETY: cname is a valid C string for the call; DPDK copies it.
        let p = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(cname.as_ptr(), mbufs, cache, 0, data_room, socket)
        };
        NonNull::new(p).map(|ptr| Mempool { ptr }).ok_or_else(|| {
            DpdkError::new(
                format!("cannot create mbuf pool {name:?} of {mbufs} mbufs"),
                last_errno(),
            )
        })
    }

    pub(crate) fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.ptr.as_ptr()
    }

    pub fn available(&self) -> u32 {
        // SAFETY: the pool pointer is valid for the pool's lifetime.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool pointer is valid for the pool's lifetime.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.ptr.as_ptr()) }
    }
}
