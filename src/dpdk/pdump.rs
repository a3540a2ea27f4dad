//! DPDK's packet-capture server, which `dpdk-dumpcap` and `dpdk-pdump` talk to.
use std::sync::atomic::{AtomicBool, Ordering};

use super::{last_errno, DpdkError};

static STARTED: AtomicBool = AtomicBool::new(false);

/// The registered capture server. Dropping it unregisters the server; drop it
/// before the `Eal`, since rte_pdump_uninit uses the multi-process channel
/// that rte_eal_cleanup closes.
pub struct Pdump {
    _private: (),
}

/// Registers the server that lets a secondary process (dpdk-dumpcap) ask this
/// process to copy a port's packets to it. Needs an EAL that shares its
/// configuration (neither --no-shconf nor --in-memory): without one no
/// secondary can attach, and DPDK refuses the registration.
pub fn pdump_init() -> Result<Pdump, DpdkError> {
    if STARTED.swap(true, Ordering::SeqCst) {
        return Err(DpdkError::new(
            "the pdump server is already registered",
            libc::EALREADY,
        ));
    }
    // SAFETY: called after rte_eal_init succeeded (an `Eal` exists whenever
    // rvs calls into DPDK) and at most once, as STARTED ensures; it only
    // reserves a memzone and registers a multi-process action.
    let ret = unsafe { dpdk_sys::rte_pdump_init() };
    if ret < 0 {
        let errno = last_errno();
        STARTED.store(false, Ordering::SeqCst);
        return Err(DpdkError::new(
            "cannot start the pdump (packet capture) server",
            if errno != 0 { errno } else { -ret },
        ));
    }
    Ok(Pdump { _private: () })
}

impl Drop for Pdump {
    fn drop(&mut self) {
        // SAFETY: the server was registered by pdump_init and EAL is still up,
        // because the owner drops this before its `Eal`.
        unsafe {
            dpdk_sys::rte_pdump_uninit();
        }
        STARTED.store(false, Ordering::SeqCst);
    }
}
