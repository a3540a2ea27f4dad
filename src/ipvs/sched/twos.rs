//! Weighted random twos choice (ip_vs_twos.c, Linux 6.6): two dests drawn
//! at random in proportion to their weights, and of the two the one with
//! less overhead per weight. The kernel draws two numbers below the total
//! weight plus one, walks the list subtracting each usable dest's weight,
//! and takes the first dest at which each number reaches zero or less; the
//! second wins only when it is strictly lighter (`w2·oh1 > w1·oh2`), so a
//! tie, or both draws on one dest, keeps the first.
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use super::{Scheduler, Tuple};
use crate::ipvs::dest::Dest;
use crate::ipvs::Millis;

/// `below(n)`: a number in `0..n`, as the kernel's get_random_u32_below.
type Draw = Box<dyn FnMut(u32) -> u32 + Send>;

pub struct Twos {
    below: Draw,
    worker: usize,
}

impl std::fmt::Debug for Twos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Twos")
    }
}

impl Twos {
    /// Draws from a xorshift64* generator seeded per instance from the
    /// process's random keys: no system call, no lock, one per worker.
    pub fn new() -> Self {
        let mut state = RandomState::new().build_hasher().finish() | 1;
        Twos::with_draws(Box::new(move |n| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let x = (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32;
            // Lemire's multiply-shift: x·n / 2^32 is in 0..n.
            ((u64::from(x) * u64::from(n)) >> 32) as u32
        }))
    }

    /// With the given draws, for tests that replay the kernel's.
    pub fn with_draws(below: Draw) -> Self {
        Twos { below, worker: 0 }
    }
}

impl Default for Twos {
    fn default() -> Self {
        Twos::new()
    }
}

impl Scheduler for Twos {
    fn name(&self) -> &'static str {
        "twos"
    }

    fn count_as(&mut self, worker: usize) {
        self.worker = worker;
    }

    fn schedule(&mut self, dests: &[Arc<Dest>], _input: &Tuple, _now: Millis) -> Option<usize> {
        let usable = |d: &Dest| !d.is_overloaded() && d.weight() > 0;
        let total: i64 = dests
            .iter()
            .filter(|d| usable(d))
            .map(|d| i64::from(d.weight()))
            .sum();
        if total == 0 {
            return None;
        }
        let bound = u32::try_from(total + 1).unwrap_or(u32::MAX);
        let mut r1 = i64::from((self.below)(bound));
        let mut r2 = i64::from((self.below)(bound));
        let mut first: Option<(usize, i32, u64)> = None;
        let mut second: Option<(usize, i32, u64)> = None;
        for (i, d) in dests.iter().enumerate() {
            if !usable(d) {
                continue;
            }
            let w = d.weight();
            r1 -= i64::from(w);
            r2 -= i64::from(w);
            if r1 <= 0 && first.is_none() {
                first = Some((i, w, d.conn_overhead_at(self.worker)));
            }
            if r2 <= 0 && second.is_none() {
                second = Some((i, w, d.conn_overhead_at(self.worker)));
            }
            if first.is_some() && second.is_some() {
                break;
            }
        }
        // Each draw is at most the total, so the walk reaches it.
        let (i1, w1, oh1) = first?;
        match second {
            Some((i2, w2, oh2))
                if i128::from(w2) * i128::from(oh1) > i128::from(w1) * i128::from(oh2) =>
            {
                Some(i2)
            }
            _ => Some(i1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::sched::testutil::{dests, input};

    /// Twos that draws `r1`, `r2` and records the bound it asked below.
    fn replay(r1: u32, r2: u32) -> (Twos, Arc<std::sync::Mutex<Vec<u32>>>) {
        let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = asked.clone();
        let mut draws = vec![r2, r1];
        let t = Twos::with_draws(Box::new(move |n| {
            seen.lock().unwrap().push(n);
            draws.pop().unwrap()
        }));
        (t, asked)
    }

    fn pick(r1: u32, r2: u32, d: &[Arc<Dest>]) -> Option<usize> {
        replay(r1, r2).0.schedule(d, &input(), 0)
    }

    #[test]
    fn name_and_no_usable_dest() {
        assert_eq!(Twos::new().name(), "twos");
        assert_eq!(Twos::new().schedule(&[], &input(), 0), None);
        // Weight 0 only: nothing to draw from.
        assert_eq!(
            Twos::new().schedule(&dests(&[(0, 0, 0)]), &input(), 0),
            None
        );
    }

    // A: weight 1, 2 active (overhead 512); B: weight 2, 1 active (256);
    // C: weight 3, idle (0). Total 6: the draws are below 7.

    #[test]
    fn draws_are_below_the_total_weight_plus_one() {
        let d = dests(&[(1, 2, 0), (2, 1, 0), (3, 0, 0)]);
        let (mut t, asked) = replay(0, 0);
        t.schedule(&d, &input(), 0);
        assert_eq!(*asked.lock().unwrap(), [7, 7]);
    }

    #[test]
    fn the_second_wins_only_when_strictly_lighter_per_weight() {
        let d = dests(&[(1, 2, 0), (2, 1, 0), (3, 0, 0)]);
        // r1 = 0: A at once (0-1 = -1). r2 = 5: 4 after A, 2 after B, -1
        // at C. C weighs 0·1 against A's 512·3: 3·512 > 1·0, C.
        assert_eq!(pick(0, 5, &d), Some(2));
        // Both draws on A: A.
        assert_eq!(pick(0, 1, &d), Some(0));
        // r1 = 6 ends at C (5, 3, 0), r2 = 1 at A (0): is A lighter than C?
        // 1·0 > 3·512 does not hold: C stays.
        assert_eq!(pick(6, 1, &d), Some(2));
        // r1 = 2 ends at B (1, -1), r2 = 3 at B too (2, 0): B.
        assert_eq!(pick(2, 3, &d), Some(1));
        // r1 = 0 (A), r2 = 2 (B): B's 2·512 = 1024 > A's 1·256: B.
        assert_eq!(pick(0, 2, &d), Some(1));
    }

    #[test]
    fn ties_keep_the_first_draw() {
        // A: weight 1, 1 active (256); B: weight 2, 2 active (512): equal
        // per weight. r1 on B, r2 on A: 1·512 > 2·256 does not hold, B.
        let d = dests(&[(1, 1, 0), (2, 2, 0)]);
        assert_eq!(pick(3, 0, &d), Some(1));
        assert_eq!(pick(0, 3, &d), Some(0));
    }

    #[test]
    fn weight_zero_and_overloaded_dests_are_not_in_the_walk() {
        // A weight 0 first: skipped, so r = 0 lands on B, not on A.
        let d = dests(&[(0, 0, 0), (1, 0, 0), (1, 5, 0)]);
        assert_eq!(pick(0, 0, &d), Some(1));
        d[1].set_overloaded(true);
        // Only C is left (total 1, draws below 2).
        assert_eq!(pick(1, 0, &d), Some(2));
    }

    #[test]
    fn random_draws_reach_every_usable_dest_and_no_other() {
        let d = dests(&[(1, 0, 0), (0, 0, 0), (1, 0, 0)]);
        let mut t = Twos::new();
        let mut seen = [0u32; 3];
        for _ in 0..1000 {
            seen[t.schedule(&d, &input(), 0).unwrap()] += 1;
        }
        assert_eq!(seen[1], 0, "weight 0 never");
        assert!(seen[0] > 0 && seen[2] > 0, "{seen:?}");
    }
}
