//! EAL start-up and clean-up.
use std::ffi::CString;
use std::io::Write;
use std::os::raw::c_char;
use std::sync::atomic::{AtomicBool, Ordering};

use super::capture::capture;
use super::{last_errno, DpdkError};

static STARTED: AtomicBool = AtomicBool::new(false);

/// A running EAL. Dropping it runs rte_eal_cleanup, after which no DPDK call
/// may be made: drop it last.
pub struct Eal {
    _private: (),
}

impl Eal {
    /// Starts EAL with `args` (without argv[0]). What EAL prints while it starts
    /// goes to stderr on success; on failure it is folded into one error line.
    pub fn init(prog: &str, args: &[String]) -> Result<Eal, DpdkError> {
        if STARTED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::new("EAL is already initialised", libc::EALREADY));
        }
        let mut owned = Vec::with_capacity(args.len() + 1);
        for a in std::iter::once(prog).chain(args.iter().map(String::as_str)) {
            match CString::new(a) {
                Ok(c) => owned.push(c),
                Err(_) => {
                    STARTED.store(false, Ordering::SeqCst);
                    return Err(DpdkError::new(
                        format!("EAL argument {a:?} contains a NUL byte"),
                        libc::EINVAL,
                    ));
                }
            }
        }
        // EAL may permute argv; it gets its own array of pointers into `owned`.
        let mut argv: Vec<*mut c_char> = owned.iter().map(|c| c.as_ptr() as *mut c_char).collect();
        argv.push(std::ptr::null_mut());
        let argc = owned.len() as i32;
        let (ret, out) = capture(|| {
            // SAFETY: argv holds argc valid NUL-terminated strings followed by a
            // NULL; `owned` outlives the call, and EAL keeps no pointer into argv
            // after returning (it copies what it needs).
            let ret = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
            (ret, if ret < 0 { last_errno() } else { 0 })
        });
        if ret.0 < 0 {
            STARTED.store(false, Ordering::SeqCst);
            return Err(
                DpdkError::new("EAL initialisation failed", ret.1).with_detail(out.reason())
            );
        }
        let _ = std::io::stderr().write_all(out.text.as_bytes());
        Ok(Eal { _private: () })
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: EAL was initialised by `init`; every object built on it (ports,
        // pools, rings) has been stopped by now because they borrow nothing from
        // Eal but are dropped before it by the owner's field order.
        unsafe {
            dpdk_sys::rte_eal_cleanup();
        }
    }
}
