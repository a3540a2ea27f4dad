//! Lcore queries and launching work on worker lcores.
use std::os::raw::{c_int, c_void};

use super::DpdkError;

type Job = Box<dyn FnOnce() -> i32 + Send + 'static>;

extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Job> leaked by `launch` for exactly this call;
    // EAL calls the function once, so we take ownership back exactly once.
    let job: Box<Job> = unsafe { Box::from_raw(arg as *mut Job) };
    // A panic must not unwind into EAL's C frames; it becomes exit code -1.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).unwrap_or(-1)
}

/// Runs `f` on worker lcore `lcore`; `wait` returns its result.
pub fn launch(lcore: u32, f: impl FnOnce() -> i32 + Send + 'static) -> Result<(), DpdkError> {
    let job: Box<Job> = Box::new(Box::new(f));
    let arg = Box::into_raw(job) as *mut c_void;
    // SAFETY: trampoline matches lcore_function_t; `arg` stays valid until the
    // trampoline reclaims it. On failure EAL never calls it, so we reclaim it.
    let ret = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
    if ret != 0 {
        // SAFETY: the launch failed, so `arg` was not handed to any lcore.
        drop(unsafe { Box::from_raw(arg as *mut Job) });
        return Err(DpdkError::new(
            format!("cannot launch on lcore {lcore}"),
            ret,
        ));
    }
    Ok(())
}

/// Waits for the job on `lcore` and returns its exit code.
pub fn wait(lcore: u32) -> i32 {
    // SAFETY: callable from the main lcore for any lcore id; returns 0 for an
    // lcore that is not running anything.
    unsafe { dpdk_sys::rte_eal_wait_lcore(lcore) }
}

pub fn is_enabled(lcore: u32) -> bool {
    // SAFETY: pure query, bounds-checked by DPDK.
    unsafe { dpdk_sys::rte_lcore_is_enabled(lcore) != 0 }
}

pub fn main_lcore() -> u32 {
    // SAFETY: pure query after EAL init.
    unsafe { dpdk_sys::rte_get_main_lcore() }
}

/// The lcore id of the calling thread (u32::MAX on a non-EAL thread).
pub fn current() -> u32 {
    // SAFETY: reads a thread-local.
    unsafe { dpdk_sys::rvs_lcore_id() }
}

/// The NUMA socket of the calling lcore.
pub fn socket_id() -> i32 {
    // SAFETY: reads a thread-local.
    unsafe { dpdk_sys::rte_socket_id() as i32 }
}

pub fn tsc_hz() -> u64 {
    // SAFETY: pure query after EAL init.
    unsafe { dpdk_sys::rte_get_tsc_hz() }
}

#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: reads the time-stamp counter; no preconditions.
    unsafe { dpdk_sys::rvs_rdtsc() }
}
