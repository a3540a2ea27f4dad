//! Safe wrappers over DPDK: the only place in rvs (besides dpdk-sys) with `unsafe`.
//!
//! Every other module works on the `Packet` seam (src/packet.rs) and
//! never names a DPDK type; this module implements that seam over an mbuf.
#![allow(unsafe_code)]

mod capture;
pub mod eal;
pub mod ethdev;
pub mod flow;
pub mod hugepage;
pub mod lcore;
pub mod mbuf;
pub mod mempool;
pub mod pdump;
mod prefetch;
pub mod ring;
pub mod simd;

use std::ffi::CStr;
use std::fmt;

pub use eal::Eal;
pub use ethdev::{LinkState, Port, PortSetup, PortStats, RxQueue, TxQueue};
pub use mbuf::{Burst, Mbuf, MAX_BURST};
pub use mempool::Mempool;
pub use pdump::{pdump_init, Pdump};
pub use prefetch::prefetch;
pub use ring::Ring;

/// The DPDK version the bindings were built against.
pub const BUILD_DPDK_VERSION: &str = dpdk_sys::DPDK_VERSION;

/// An error from a DPDK call: what rvs tried, the errno DPDK gave and, when
/// DPDK logged something more specific while failing, that line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkError {
    pub what: String,
    pub errno: i32,
    pub detail: Option<String>,
}

impl DpdkError {
    pub(crate) fn new(what: impl Into<String>, errno: i32) -> Self {
        DpdkError {
            what: what.into(),
            errno: errno.abs(),
            detail: None,
        }
    }

    pub(crate) fn with_detail(mut self, detail: Option<String>) -> Self {
        self.detail = detail;
        self
    }
}

impl fmt::Display for DpdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.what)?;
        if self.errno != 0 {
            write!(f, ": {}", strerror(self.errno))?;
        }
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl std::error::Error for DpdkError {}

/// DPDK's text for an errno, which also knows DPDK's own codes beyond libc's.
pub fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror accepts any int and returns a pointer to a static or
    // per-lcore buffer holding a NUL-terminated string; we copy it at once.
    unsafe {
        let p = dpdk_sys::rte_strerror(errno.abs());
        if p.is_null() {
            return format!("error {errno}");
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// rte_errno of the calling thread.
pub(crate) fn last_errno() -> i32 {
    // SAFETY: reads a thread-local int; valid on any thread.
    unsafe { dpdk_sys::rvs_errno() }
}

/// The runtime DPDK version string (e.g. "DPDK 22.11.11").
pub fn runtime_version() -> String {
    // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
    unsafe { CStr::from_ptr(dpdk_sys::rte_version()) }
        .to_string_lossy()
        .into_owned()
}
