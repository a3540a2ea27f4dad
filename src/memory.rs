//! The memory rvsd is given, and the conn-table size it affords when the
//! configuration names none (`dataplane.conns` absent).
//!
//! The memory is the least of the host's MemAvailable (/proc/meminfo) and
//! what rvsd's cgroup (v2 `memory.max`, v1 `memory.limit_in_bytes`, on its
//! own cgroup and every ancestor) still leaves it: the limit less what the
//! cgroup already uses. It is read after DPDK took its own memory, so that
//! is already counted. A quarter of it (`CONN_TABLE_SHARE`) goes to the
//! conn tables, split evenly over the workers; each table's cost per slot
//! is `ConnTable::bytes_for`, its slab, its index, the embryonic list
//! and the timer wheel. A table's slab pages are touched only as conns
//! first use them, so the memory is reserved, not spent, until the conns
//! are there.
use std::fs;
use std::path::{Path, PathBuf};

use crate::config::{MAX_CONNS, MIN_CONNS};
use crate::ipvs::ConnTable;

/// The share of the memory rvsd is given that its conn tables take:
/// (numerator, denominator).
pub const CONN_TABLE_SHARE: (u64, u64) = (1, 4);

/// What a table gets when the memory cannot be read at all.
pub const FALLBACK_CONNS: u32 = 262_144;

/// The memory rvsd may still use, and where that figure comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub bytes: u64,
    pub source: String,
}

/// MemAvailable from /proc/meminfo's text, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut w = line.split_whitespace().skip(1);
    let n: u64 = w.next()?.parse().ok()?;
    match w.next() {
        Some("kB") => n.checked_mul(1024),
        None => Some(n),
        Some(_) => None,
    }
}

fn read_u64(p: &Path) -> Option<u64> {
    fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// The memory cgroup's path in /proc/self/cgroup's text, and whether it
/// is cgroup v2's unified hierarchy.
fn cgroup_path(proc_cgroup: &str) -> Option<(String, bool)> {
    let mut v2 = None;
    for line in proc_cgroup.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctrl), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if ctrl.split(',').any(|c| c == "memory") {
            return Some((path.to_string(), false));
        }
        if ctrl.is_empty() {
            v2 = Some(path.to_string());
        }
    }
    v2.map(|p| (p, true))
}

/// The room the cgroup hierarchy under `root` leaves: the least of limit
/// less usage over the cgroup at `path` and its ancestors. A cgroup
/// namespace shows its own cgroup as the root, so a path that does not
/// exist under `root` is looked up as the root itself. None: no limit.
fn cgroup_room(root: &Path, path: &str, v2: bool) -> Option<(u64, PathBuf)> {
    let (limit_file, usage_file) = if v2 {
        ("memory.max", "memory.current")
    } else {
        ("memory.limit_in_bytes", "memory.usage_in_bytes")
    };
    let mut dir = root.join(path.trim_start_matches('/'));
    if !dir.is_dir() {
        dir = root.to_path_buf();
    }
    let mut best: Option<(u64, PathBuf)> = None;
    loop {
        // "max" (v2) or a near-2^63 page-rounded figure (v1) is no limit.
        if let Some(limit) = read_u64(&dir.join(limit_file)).filter(|&l| l < 1 << 62) {
            let used = read_u64(&dir.join(usage_file)).unwrap_or(0);
            let room = limit.saturating_sub(used);
            if best.as_ref().is_none_or(|(b, _)| room < *b) {
                best = Some((room, dir.join(limit_file)));
            }
        }
        if dir == root || !dir.pop() || !dir.starts_with(root) {
            break;
        }
    }
    best
}

/// The memory rvsd may still use, from this host's /proc and /sys.
pub fn budget() -> Option<Budget> {
    let avail = fs::read_to_string("/proc/meminfo")
        .ok()
        .as_deref()
        .and_then(mem_available);
    let cgroup = fs::read_to_string("/proc/self/cgroup")
        .ok()
        .as_deref()
        .and_then(cgroup_path)
        .and_then(|(path, v2)| {
            let root = if v2 {
                "/sys/fs/cgroup"
            } else {
                "/sys/fs/cgroup/memory"
            };
            cgroup_room(Path::new(root), &path, v2)
        });
    choose(avail, cgroup)
}

fn choose(avail: Option<u64>, cgroup: Option<(u64, PathBuf)>) -> Option<Budget> {
    match (avail, cgroup) {
        (Some(a), Some((c, file))) if c < a => Some(Budget {
            bytes: c,
            source: format!("the cgroup's limit less its use ({})", file.display()),
        }),
        (Some(a), _) => Some(Budget {
            bytes: a,
            source: "MemAvailable".into(),
        }),
        (None, Some((c, file))) => Some(Budget {
            bytes: c,
            source: format!("the cgroup's limit less its use ({})", file.display()),
        }),
        (None, None) => None,
    }
}

/// The largest capacity (within `dataplane.conns`'s range) of which
/// `workers` tables fit in `bytes`.
pub fn conns_for(bytes: u64, workers: usize) -> u32 {
    let w = workers.max(1) as u64;
    let fits = |n: u32| (ConnTable::bytes_for(n as usize) as u64).saturating_mul(w) <= bytes;
    if !fits(MIN_CONNS) {
        return MIN_CONNS;
    }
    let (mut lo, mut hi) = (MIN_CONNS, MAX_CONNS);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// The default capacity of each of `workers` tables, and a sentence on how
/// it was chosen, for the log.
pub fn default_conns(workers: usize) -> (u32, String) {
    let Some(b) = budget() else {
        return (
            FALLBACK_CONNS,
            "the memory could not be read (/proc/meminfo, /proc/self/cgroup)".into(),
        );
    };
    let (num, den) = CONN_TABLE_SHARE;
    let share = b.bytes / den * num;
    let n = conns_for(share, workers);
    let why = format!(
        "{num}/{den} of {} MiB available ({}), over {workers} worker(s)",
        b.bytes >> 20,
        b.source
    );
    (n, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_available_is_read_in_kib() {
        let m = "MemTotal:       24560000 kB\nMemFree:         2000000 kB\nMemAvailable:   22000000 kB\n";
        assert_eq!(mem_available(m), Some(22_000_000 * 1024));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
        assert_eq!(mem_available("MemAvailable: x kB\n"), None);
    }

    #[test]
    fn the_memory_controllers_path_is_found_in_either_version() {
        let v1 = "12:pids:/a\n4:memory:/system.slice/rvsd.service\n0::/x\n";
        assert_eq!(
            cgroup_path(v1),
            Some(("/system.slice/rvsd.service".into(), false))
        );
        let v1b = "5:cpu,memory:/m\n";
        assert_eq!(cgroup_path(v1b), Some(("/m".into(), false)));
        assert_eq!(
            cgroup_path("0::/system.slice/rvsd.service\n"),
            Some(("/system.slice/rvsd.service".into(), true))
        );
        assert_eq!(cgroup_path("3:cpu:/x\n"), None);
    }

    /// Files under a fresh directory of the system's temp dir.
    fn tree(files: &[(&str, &str)]) -> PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("rvs-memory-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for (path, text) in files {
            let p = root.join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        root
    }

    #[test]
    fn the_tightest_cgroup_on_the_way_up_wins() {
        // v2: the service allows 4 GiB and uses 1; its slice allows 2 GiB
        // and uses 1.5: the slice leaves 0.5 GiB.
        let g = 1u64 << 30;
        let (svc_max, svc_cur, slice_max, slice_cur) = (4 * g, g, 2 * g, g + g / 2);
        let root = tree(&[
            ("a.slice/memory.max", &slice_max.to_string()),
            ("a.slice/memory.current", &slice_cur.to_string()),
            ("a.slice/r.service/memory.max", &svc_max.to_string()),
            ("a.slice/r.service/memory.current", &svc_cur.to_string()),
            ("memory.max", "max"),
        ]);
        let (room, file) = cgroup_room(&root, "/a.slice/r.service", true).unwrap();
        assert_eq!(room, g / 2);
        assert!(file.ends_with("a.slice/memory.max"));
        let _ = fs::remove_dir_all(&root);
        // Only "max" on the way: no limit.
        let root = tree(&[("memory.max", "max"), ("s/memory.max", "max")]);
        assert_eq!(cgroup_room(&root, "/s", true), None);
        let _ = fs::remove_dir_all(&root);
        // v1 in a cgroup namespace: the process's path is not under the
        // mount, whose root is its own cgroup; 2^63 rounded is no limit.
        let root = tree(&[
            ("memory.limit_in_bytes", "9223372036854771712"),
            ("memory.usage_in_bytes", "1000"),
        ]);
        assert_eq!(cgroup_room(&root, "/process_api/abc", false), None);
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn the_smaller_of_memavailable_and_the_cgroup_is_the_budget() {
        let f = PathBuf::from("/sys/fs/cgroup/x/memory.max");
        assert_eq!(choose(Some(10), Some((5, f.clone()))).unwrap().bytes, 5);
        assert_eq!(choose(Some(10), Some((50, f.clone()))).unwrap().bytes, 10);
        assert_eq!(choose(None, Some((5, f))).unwrap().bytes, 5);
        assert_eq!(choose(None, None), None);
    }

    #[test]
    fn conns_for_fills_the_share_exactly() {
        // 1024 slots: 1024 * (92 + 8) = 102 400 of slab and embryonic
        // list; the index, two entries a slot, 2048 * 20 / 119 -> 345
        // lines of 64 bytes and one more to align them, 22 144 bytes; the
        // wheel 65 536 * 4 = 262 144. In all 102 400 + 22 144 + 262 144 =
        // 386 688.
        assert_eq!(ConnTable::bytes_for(1024), 386_688);
        assert_eq!(conns_for(386_688, 1), 1024);
        assert_eq!(conns_for(2 * 386_688, 2), 1024);
        assert_eq!(conns_for(0, 1), MIN_CONNS, "never below the minimum");
        // 1 GiB, one worker: 8 834 306 slots take 8 834 306 * 100 =
        // 883 430 600 bytes, their index (2 969 515 + 1) lines * 64 =
        // 190 049 024, the wheel 262 144: 1 073 741 768 bytes, and one
        // slot more would need another 100.
        assert_eq!(conns_for(1 << 30, 1), 8_834_306);
        assert_eq!(conns_for(1 << 31, 2), 8_834_306);
        assert_eq!(conns_for(u64::MAX, 1), MAX_CONNS);
    }

    #[test]
    fn this_hosts_memory_gives_a_table_in_range() {
        let (n, why) = default_conns(1);
        assert!((MIN_CONNS..=MAX_CONNS).contains(&n), "{n}: {why}");
        assert!(why.contains("MiB available"), "{why}");
    }
}
