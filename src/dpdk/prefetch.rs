//! A hint to the processor: bring a cache line in now, so that a later
//! read of it does not wait. It is here, not with its callers, because it
//! takes an `unsafe` intrinsic, and this module is where rvs keeps those.

/// Asks for the cache line holding the start of `x` (and, with `lines`
/// above 1, the lines after it) without waiting for it and without reading
/// it: nothing changes but what the caches hold.
#[inline(always)]
pub fn prefetch<T>(x: &T, lines: usize) {
    let p = x as *const T as *const i8;
    for k in 0..lines {
        let at = p.wrapping_add(k * 64);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch neither reads nor writes memory as far as the
        // program can tell and never faults, whatever the address (here
        // within or just past `x`); it needs only SSE, which every x86_64
        // processor has.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at);
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = at;
    }
}
