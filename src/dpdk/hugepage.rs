//! Memory for the big tables a worker reads at random (the conn index):
//! transparent huge pages, as with 4 KiB pages the index of a million
//! conns spans thousands of pages, more than the TLB holds, and nearly
//! every lookup waits on a page walk as well as on the line; and lines
//! allocated zeroed on line boundaries, so that a lookup reads one.
//! Here because `madvise` is a libc call and a slice of lines inside an
//! allocation of words a raw one, and this module keeps rvs's `unsafe`.

use std::ptr::NonNull;

/// Sixteen 32-bit words on a cache line of their own.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLine(pub [u32; 16]);

/// Cache lines in one zeroed allocation whose pages are asked to be huge
/// (`advise`). Nothing is touched: the allocator hands back pages the
/// kernel zero-fills when first touched, so a table sized for tens of
/// millions of entries costs nothing until they come, and starts at once.
/// (An allocation aligned to a line would be zeroed by hand, every page
/// touched; this one is aligned to the allocator's 16 bytes, and the lines
/// start at its first line boundary.)
#[derive(Debug)]
pub struct ZeroedLines {
    words: Vec<u32>,
    /// The first line, inside `words`' buffer, which moves with the vector
    /// (its heap buffer does not).
    base: NonNull<CacheLine>,
    n: usize,
}

// SAFETY: `base` points into the buffer `words` owns; sending the struct
// sends that ownership, and `&ZeroedLines` hands out only shared
// references to it (`&mut` ones need `&mut ZeroedLines`), as a `Vec`
// does.
unsafe impl Send for ZeroedLines {}
// SAFETY: as above: shared access reads, exclusive access writes.
unsafe impl Sync for ZeroedLines {}

impl ZeroedLines {
    /// `n` zeroed lines.
    pub fn new(n: usize) -> ZeroedLines {
        let mut words = vec![0u32; (n + 1) * 16];
        advise(&words);
        // Words to the first line boundary: fewer than a line's.
        let line = std::mem::align_of::<CacheLine>();
        let off = (line - words.as_ptr() as usize % line) % line / std::mem::size_of::<u32>();
        let base = NonNull::from(&mut words[off..]).cast::<CacheLine>();
        ZeroedLines { words, base, n }
    }

    #[inline(always)]
    pub fn lines(&self) -> &[CacheLine] {
        // SAFETY: `base` is aligned to a line and `n` lines from it lie in
        // `words` (one line more was allocated than the alignment can
        // skip), all initialised integers, which any bits make a valid
        // `CacheLine`; the borrow of `self` keeps the buffer alive and
        // unwritten.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr(), self.n) }
    }

    #[inline(always)]
    pub fn lines_mut(&mut self) -> &mut [CacheLine] {
        // SAFETY: as `lines`, and the exclusive borrow of `self` makes this
        // the only reference into the buffer.
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr(), self.n) }
    }

    /// Bytes allocated.
    pub fn allocation_size(&self) -> usize {
        self.words.len() * std::mem::size_of::<u32>()
    }

    /// Where the allocation starts (tests look its pages up).
    pub fn as_ptr(&self) -> *const u8 {
        self.words.as_ptr().cast()
    }
}

/// Asks the kernel to back the pages of `v`'s reserved capacity that lie
/// wholly inside it with huge pages as they are first touched (Linux's
/// `MADV_HUGEPAGE`, which a kernel with transparent huge pages set to
/// `madvise`, the usual default, waits for). A hint: nothing changes if the
/// kernel says no, and nothing is touched now, so memory is still spent as
/// the table fills, though a huge page at a time (an index's lines are
/// touched anywhere: a tenth of its entries can commit all of it). Whether
/// it took: `AnonHugePages` in the process's smaps.
pub fn advise<T>(v: &Vec<T>) {
    let start = v.as_ptr() as usize;
    advise_range(start, v.capacity().saturating_mul(std::mem::size_of::<T>()));
}

/// `advise` for the `len` bytes at `start`, an allocation of rvs's own.
fn advise_range(start: usize, len: usize) {
    const PAGE: usize = 4096;
    let end = start.saturating_add(len);
    let first = start.next_multiple_of(PAGE);
    let last = end - end % PAGE;
    if last <= first {
        return;
    }
    // SAFETY: the range is whole pages inside an allocation the caller
    // keeps alive for the call; MADV_HUGEPAGE changes how the kernel
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

    /// `n` lines, each on a line boundary, zero, inside the allocation, and
    /// written where they are written.
    #[test]
    fn zeroed_lines_are_whole_cache_lines_inside_their_allocation() {
        for n in [0, 1, 2, 3, 1000] {
            let mut z = ZeroedLines::new(n);
            let (lo, hi) = (
                z.as_ptr() as usize,
                z.as_ptr() as usize + z.allocation_size(),
            );
            assert_eq!(z.lines().len(), n);
            for l in z.lines() {
                let at = l as *const CacheLine as usize;
                assert_eq!(at % 64, 0, "{n} lines: one at {at:#x}");
                assert!(
                    lo <= at && at + 64 <= hi,
                    "{n} lines: {at:#x} outside {lo:#x}..{hi:#x}"
                );
                assert_eq!(l.0, [0; 16]);
            }
            if let Some(last) = z.lines_mut().last_mut() {
                last.0[15] = 7;
            }
            let moved = z;
            assert_eq!(moved.lines().last().map(|l| l.0[15]), (n > 0).then_some(7));
            assert!(moved.lines().iter().rev().skip(1).all(|l| l.0 == [0; 16]));
        }
    }

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
