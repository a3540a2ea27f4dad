//! Transparent huge pages for the big tables a worker reads at random (the
//! conn indexes): with 4 KiB pages, the index of a million conns spans
//! thousands of pages, more than the TLB holds, and nearly every lookup
//! waits on a page walk as well as on the line.
//! Here because `madvise` is a libc call, and this module keeps rvs's
//! `unsafe`.

/// Asks the kernel to back the pages of `v`'s reserved capacity that lie
/// wholly inside it with huge pages as they are first touched (Linux's
/// `MADV_HUGEPAGE`, which a kernel with transparent huge pages set to
/// `madvise`, the usual default, waits for). A hint: nothing changes if the
/// kernel says no, and nothing is touched now, so memory is still spent as
/// the table fills, though a huge page at a time (an index's lines are
/// touched anywhere: a tenth of its entries can commit all of it). Whether
/// it took: `AnonHugePages` in the process's smaps.
pub fn advise<T>(v: &Vec<T>) {
    const PAGE: usize = 4096;
    let start = v.as_ptr() as usize;
    let end = start.saturating_add(v.capacity().saturating_mul(std::mem::size_of::<T>()));
    let first = start.next_multiple_of(PAGE);
    let last = end - end % PAGE;
    if last <= first {
        return;
    }
    // SAFETY: the range is whole pages inside `v`'s own allocation, which
    // `v` keeps alive for the call; MADV_HUGEPAGE changes how the kernel
    // backs those pages, not their contents or mapping, so no Rust
    // reference sees a difference. Its result is a hint's: ignored.
    unsafe {
        libc::madvise(
            first as *mut libc::c_void,
            last - first,
            libc::MADV_HUGEPAGE,
        );
    }
}

/// Whether the kernel backs memory that asks (`advise`) with transparent
/// huge pages: `madvise` or `always` in its setting.
#[cfg(test)]
pub fn offered() -> bool {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|s| s.contains("[madvise]") || s.contains("[always]"))
}

/// The KiB of huge pages backing the mapping that holds `addr`, as this
/// process's smaps tells it; None if no mapping holds it.
#[cfg(test)]
pub fn huge_kib(addr: usize) -> Option<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut inside = false;
    for line in smaps.lines() {
        let head = line.split_whitespace().next().unwrap_or("");
        if let Some((lo, hi)) = head.split_once('-') {
            if let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = (lo..hi).contains(&addr);
                continue;
            }
        }
        if inside {
            if let Some(kib) = line.strip_prefix("AnonHugePages:") {
                return kib.trim().trim_end_matches("kB").trim().parse().ok();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory that asks gets huge pages as it is touched, where the kernel
    /// offers them; none before it is touched.
    #[test]
    fn advised_memory_is_backed_by_huge_pages_once_touched() {
        // Past glibc's largest mmap threshold (32 MiB): a fresh mapping,
        // whatever other tests freed before.
        let mut v: Vec<u8> = Vec::with_capacity(40 << 20);
        advise(&v);
        // Past the allocation's first page, which madvise left out (and so
        // split from the mapping it asked for).
        let at = v.as_ptr() as usize + 4096;
        assert_eq!(huge_kib(at), Some(0), "nothing touched, nothing backed");
        v.resize(40 << 20, 1);
        let kib = huge_kib(at).expect("the vector's mapping");
        if offered() {
            assert!(kib >= 2048, "{kib} KiB of huge pages");
        } else {
            eprintln!("this kernel offers no transparent huge pages: {kib} KiB");
            assert_eq!(kib, 0);
        }
    }
}
