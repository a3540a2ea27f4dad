//! Where FULLNAT local ports start: a random point per start, worker,
//! service and address family, so that the ports a director hands out
//! cannot be predicted from one start to the next (an off-path attacker who
//! knew them could aim segments at a conn's server side).
use std::fs::File;
use std::io::Read;

/// A worker's seed for this start: 8 bytes from the OS's random source.
///
/// Debug builds only: `RVS_LADDR_SEED=N` fixes it, for tests whose expected
/// ports are worked out by hand; 0 starts every cursor at the first port.
pub fn start_seed() -> u64 {
    #[cfg(debug_assertions)]
    if let Some(s) = std::env::var("RVS_LADDR_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        return s;
    }
    os_random()
}

/// Never 0: that seed means "every cursor at the first port".
fn os_random() -> u64 {
    let mut b = [0u8; 8];
    let x = match File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)) {
        Ok(()) => u64::from_ne_bytes(b),
        // No /dev/urandom (a sandbox without devices): std's per-process
        // random hash keys, which come from the same kernel source.
        Err(_) => {
            use std::hash::BuildHasher;
            std::collections::hash_map::RandomState::new().hash_one(std::process::id())
        }
    };
    x.max(1)
}

/// The seed of one allocator: the worker's seed mixed with the service and
/// family, so that two services sharing a local address start apart. A
/// start seed of 0 stays 0.
pub fn allocator_seed(start: u64, service: u64, v6: bool) -> u64 {
    if start == 0 {
        return 0;
    }
    let mut x = start ^ service.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(v6);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_os_gives_a_different_nonzero_seed_each_time() {
        let seeds: std::collections::HashSet<u64> = (0..8).map(|_| os_random()).collect();
        assert_eq!(seeds.len(), 8);
        assert!(!seeds.contains(&0));
    }

    #[test]
    fn allocators_of_one_worker_start_apart_and_zero_stays_zero() {
        let s = 0x1234_5678_9abc_def0;
        let a = allocator_seed(s, 1, false);
        assert_ne!(a, 0);
        assert_ne!(a, allocator_seed(s, 2, false));
        assert_ne!(a, allocator_seed(s, 1, true));
        assert_eq!(a, allocator_seed(s, 1, false));
        assert_eq!(allocator_seed(0, 1, false), 0);
    }
}
