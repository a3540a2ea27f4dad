//! rte_ring of mbufs: hands packets between lcores without locks.
use std::ffi::CString;
use std::ptr::NonNull;

use super::mbuf::Burst;
use super::{last_errno, DpdkError};

pub struct Ring {
    ptr: NonNull<dpdk_sys::rte_ring>,
}

// SAFETY: rte_ring is built for concurrent use from several lcores; the flags
// given at creation decide how many producers/consumers may use it, and rvs
// respects them by construction (one owner per end).
unsafe impl Send for Ring {}
// SAFETY: as above.
unsafe impl Sync for Ring {}

impl Ring {
    /// A ring of `count` slots (a power of two; one slot stays empty).
    pub fn new(
        name: &str,
        count: u32,
        single_producer: bool,
        single_consumer: bool,
    ) -> Result<Ring, DpdkError> {
        let cname = CString::new(name)
            .map_err(|_| DpdkError::new(format!("bad ring name {name:?}"), libc::EINVAL))?;
        let mut flags = 0;
        if single_producer {
            flags |= dpdk_sys::RING_F_SP_ENQ;
        }
        if single_consumer {
            flags |= dpdk_sys::RING_F_SC_DEQ;
        }
        // SAFETY: cname is valid for the call; DPDK copies it.
        let p = unsafe { dpdk_sys::rte_ring_create(cname.as_ptr(), count, -1, flags) };
        NonNull::new(p).map(|ptr| Ring { ptr }).ok_or_else(|| {
            DpdkError::new(
                format!("cannot create ring {name:?} of {count}"),
                last_errno(),
            )
        })
    }

    /// Moves as many packets as fit from the burst into the ring.
    pub fn enqueue(&self, burst: &mut Burst) -> usize {
        let pkts = burst.as_slice_mut();
        // SAFETY: pkts are owned mbuf pointers; the ring takes the first n.
        let n = unsafe {
            dpdk_sys::rvs_ring_enqueue_burst(
                self.ptr.as_ptr(),
                pkts.as_ptr() as *const *mut _,
                pkts.len() as u32,
            )
        } as usize;
        burst.consumed(n);
        n
    }

    /// Takes up to `max` packets from the ring into the burst.
    pub fn dequeue(&self, burst: &mut Burst, max: usize) -> usize {
        let spare = burst.spare(max);
        // SAFETY: spare has room for spare.len() pointers; the ring hands us
        // ownership of the mbufs it writes there.
        let n = unsafe {
            dpdk_sys::rvs_ring_dequeue_burst(
                self.ptr.as_ptr(),
                spare.as_mut_ptr() as *mut *mut _,
                spare.len() as u32,
            )
        } as usize;
        burst.filled(n);
        n
    }

    pub fn count(&self) -> u32 {
        // SAFETY: valid ring pointer.
        unsafe { dpdk_sys::rvs_ring_count(self.ptr.as_ptr()) }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let mut b = Burst::default();
        while self.dequeue(&mut b, crate::dpdk::MAX_BURST) > 0 {
            b.drain().for_each(drop);
        }
        // SAFETY: the ring is empty and nobody else holds it (we own it).
        unsafe { dpdk_sys::rte_ring_free(self.ptr.as_ptr()) }
    }
}
