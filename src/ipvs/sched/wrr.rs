//! Weighted round-robin (ip_vs_wrr.c): passes over the dest list with a
//! falling weight bar `cw`; each pass takes, in list order, the dests whose
//! weight reaches the bar. The bar starts at the largest weight and drops by
//! the gcd of the weights after each pass, so a dest of weight w is taken
//! w/gcd times per cycle, interleaved rather than in a burst.
//!
//! As in the kernel since the `mw = max - (di - 1)` change, the last pass of
//! a cycle runs at cw = 1 rather than cw = di, so a dest whose weight was
//! lowered below the gcd (weights are read live, the gcd is not) is still
//! found when it is the only one left.
//!
//! ipvs-reference.md sums the give-up rule as "one full pass at cw <= di";
//! the source is finer and is what this follows: from the head, give up
//! when the bar wraps; from a dest, wrap once, then stop when the last pass
//! reaches that dest again (it is tried before giving up).
use std::sync::Arc;

use super::{Scheduler, Tuple};
use crate::ipvs::dest::Dest;
use crate::ipvs::Millis;

#[derive(Debug)]
pub struct Wrr {
    /// The last pick (an index into the list); None is the list head.
    cl: Option<usize>,
    /// The current weight bar.
    cw: i32,
    /// Where the bar starts each cycle: the largest weight less (di - 1).
    mw: i32,
    /// The step the bar falls by: the gcd of the positive weights.
    di: i32,
    /// The list length at the last `update`, so that a list changed without
    /// one still gets the kernel's dest_changed before the next pick.
    seen: usize,
}

impl Wrr {
    /// The kernel's init_svc on a service with no dests yet: nothing can
    /// be picked until `update` (or the first schedule) sees the list.
    pub fn new() -> Self {
        Wrr {
            cl: None,
            cw: 0,
            mw: 0,
            di: 1,
            seen: 0,
        }
    }
}

impl Default for Wrr {
    fn default() -> Self {
        Self::new()
    }
}

fn gcd(mut a: i32, mut b: i32) -> i32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The gcd of the positive weights, 1 when there are none.
fn gcd_weight(dests: &[Arc<Dest>]) -> i32 {
    let g = dests
        .iter()
        .map(|d| d.weight())
        .filter(|&w| w > 0)
        .fold(0, gcd);
    if g > 0 {
        g
    } else {
        1
    }
}

fn max_weight(dests: &[Arc<Dest>]) -> i32 {
    dests.iter().map(|d| d.weight()).fold(0, i32::max)
}

impl Scheduler for Wrr {
    fn name(&self) -> &'static str {
        "wrr"
    }

    fn schedule(&mut self, dests: &[Arc<Dest>], _input: &Tuple, _now: Millis) -> Option<usize> {
        if dests.len() != self.seen {
            self.update(dests);
        }
        if self.mw == 0 {
            return None;
        }
        let last = self.cl.filter(|&i| i < dests.len());
        let mut from = last;
        // Set once a full cycle has wrapped and the bar is back down to its
        // last pass: the dests up to `last` are then the only ones not yet
        // tried at the lowest bar.
        let mut stop = None;
        let mut last_pass = false;
        let mut restarted = false;
        loop {
            for (i, d) in dests.iter().enumerate().skip(from.map_or(0, |p| p + 1)) {
                if !d.is_overloaded() && d.weight() >= self.cw {
                    self.cl = Some(i);
                    return Some(i);
                }
                if stop == Some(i) {
                    self.cl = Some(i);
                    return None;
                }
            }
            from = None;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                // Every dest has now been tried at the lowest bar: either
                // this call already ran a last pass over the whole list,
                // or it started at the head, so its first cycle was whole.
                if last_pass || last.is_none() {
                    self.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted {
                stop = last;
            }
        }
    }

    /// The kernel's dest_changed (add, delete and edit alike): restart at
    /// the head with a fresh gcd and top bar, and keep the bar where it was
    /// when still in range, rounded onto the new step.
    fn update(&mut self, dests: &[Arc<Dest>]) {
        self.seen = dests.len();
        self.cl = None;
        self.di = gcd_weight(dests);
        self.mw = max_weight(dests) - (self.di - 1);
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::sched::testutil::{dest, input};

    fn dests(weights: &[i32]) -> Vec<Arc<Dest>> {
        (1..).zip(weights).map(|(n, &w)| dest(n, w)).collect()
    }

    /// Picks as letters: A is index 0, '-' is no pick.
    fn run(s: &mut Wrr, d: &[Arc<Dest>], n: usize) -> String {
        (0..n)
            .map(|_| match s.schedule(d, &input(), 0) {
                Some(i) => char::from(b'A' + i as u8),
                None => '-',
            })
            .collect()
    }

    #[test]
    fn name_and_empty_list() {
        let mut s = Wrr::new();
        assert_eq!(s.name(), "wrr");
        assert_eq!(s.schedule(&[], &input(), 0), None);
        s.update(&[]);
        assert_eq!(s.schedule(&[], &input(), 0), None);
    }

    #[test]
    fn weights_4_3_2_interleave() {
        // di 1, mw 4. Bar 4: A. Bar 3: A B. Bar 2: A B C. Bar 1: A B C.
        let d = dests(&[4, 3, 2]);
        let mut s = Wrr::new();
        s.update(&d);
        assert_eq!(run(&mut s, &d, 18), "AABABCABCAABABCABC");
    }

    #[test]
    fn first_schedule_without_update_sees_the_list() {
        let d = dests(&[4, 3, 2]);
        let mut s = Wrr::new();
        assert_eq!(run(&mut s, &d, 9), "AABABCABC");
    }

    #[test]
    fn a_common_divisor_steps_the_bar_and_ends_at_one() {
        // di 2, mw 6 - 1 = 5. Bars 5, 3, 1: A; A B; A B C.
        let d = dests(&[6, 4, 2]);
        let mut s = Wrr::new();
        s.update(&d);
        assert_eq!(run(&mut s, &d, 12), "AABABCAABABC");
    }

    #[test]
    fn equal_weights_are_plain_round_robin() {
        // di 3, mw 1: one pass per cycle at bar 1.
        let d = dests(&[3, 3, 3]);
        let mut s = Wrr::new();
        s.update(&d);
        assert_eq!(run(&mut s, &d, 7), "ABCABCA");
    }

    #[test]
    fn quiesced_and_overloaded_dests_are_skipped() {
        // B quiesced, C overloaded. The gcd and max still count C (weights
        // only): di 1, mw 3. Bar 3: none. Bar 2: A. Bar 1: A D. Repeat.
        let d = dests(&[2, 0, 3, 1]);
        d[2].set_overloaded(true);
        let mut s = Wrr::new();
        s.update(&d);
        assert_eq!(run(&mut s, &d, 6), "AADAAD");
    }

    #[test]
    fn quiesce_mid_run() {
        let d = dests(&[4, 3, 2]);
        let mut s = Wrr::new();
        s.update(&d);
        assert_eq!(run(&mut s, &d, 4), "AABA"); // cl = A, cw = 2
                                                // -e B weight 0: dest_changed. di = gcd(4, 2) = 2, mw = 4 - 1 = 3,
                                                // cw 2 is in range and di > 1: cw = (2/2)*2 + 1 = 3. cl = head.
        d[1].set_weight(0);
        s.update(&d);
        // Bar 3: A. Bar 1: A C. Then bar 3 again: A. Bar 1: A C.
        assert_eq!(run(&mut s, &d, 6), "AACAAC");
    }

    #[test]
    fn weights_changed_mid_run() {
        let d = dests(&[4, 3, 2]);
        let mut s = Wrr::new();
        s.update(&d);
        assert_eq!(run(&mut s, &d, 5), "AABAB"); // cl = B, cw = 2
                                                 // -e C weight 6: di 1, mw 6, cw 2 stays (di is 1). cl = head.
        d[2].set_weight(6);
        s.update(&d);
        // Bar 2: A B C. Bar 1: A B C. Then bar 6: C. Bar 5: C. Bar 4: A C.
        // Bar 3: A B C.
        assert_eq!(run(&mut s, &d, 13), "ABCABCCCACABC");
    }

    #[test]
    fn bar_above_the_new_max_restarts_at_the_top() {
        let d = dests(&[4, 3, 2]);
        let mut s = Wrr::new();
        s.update(&d);
        assert_eq!(run(&mut s, &d, 1), "A"); // cw = 4
                                             // A down to 1: di 1, mw 3, cw 4 > 3: cw = 3.
        d[0].set_weight(1);
        s.update(&d);
        // Bar 3: B. Bar 2: B C. Bar 1: A B C.
        assert_eq!(run(&mut s, &d, 6), "BBCABC");
    }

    #[test]
    fn weight_lowered_below_the_gcd_without_update_is_still_found() {
        let d = dests(&[4, 2]);
        let mut s = Wrr::new();
        s.update(&d); // di 2, mw 3
        assert_eq!(run(&mut s, &d, 3), "AAB");
        // The weights move under the scheduler (no dest_changed yet): A
        // overloaded, B down to 1, still below the old gcd of 2. cw is 1
        // from the last pass. From B: end, bar -1 -> 3, restart. Bar 3:
        // none. Bar 1 (last pass, stop at B): B.
        d[0].set_overloaded(true);
        d[1].set_weight(1);
        assert_eq!(run(&mut s, &d, 2), "BB");
    }

    #[test]
    fn all_overloaded_after_a_full_last_pass_gives_none_from_the_head() {
        let d = dests(&[4, 3, 2]);
        let mut s = Wrr::new();
        s.update(&d);
        assert_eq!(run(&mut s, &d, 2), "AA"); // cl = A, cw = 3
        for x in &d {
            x.set_overloaded(true);
        }
        // From A: bars 3, 2, then the last pass at 1 over the whole list;
        // the bar wraps after a last pass: give up, cl = head, cw = 4.
        assert_eq!(run(&mut s, &d, 1), "-");
        d[1].set_overloaded(false);
        // From the head: bar 4 none, bar 3: B.
        assert_eq!(run(&mut s, &d, 1), "B");
        d[1].set_overloaded(true);
        d[0].set_overloaded(false);
        // From B at bar 3: C overloaded; bar 2: A.
        assert_eq!(run(&mut s, &d, 1), "A");
    }

    #[test]
    fn all_overloaded_mid_cycle_stops_at_the_last_pick() {
        let d = dests(&[4, 3, 2]);
        let mut s = Wrr::new();
        s.update(&d);
        assert_eq!(run(&mut s, &d, 8), "AABABCAB"); // cl = B, cw = 1
        for x in &d {
            x.set_overloaded(true);
        }
        // From B: C fails; the bar wraps to 4 (restarted), falls to 1, and
        // that last pass stops at B: cl stays B, cw stays 1.
        assert_eq!(run(&mut s, &d, 1), "-");
        d[2].set_overloaded(false);
        // From B at bar 1: C. Then from C the bar wraps: 4, 3 none; 2: C.
        assert_eq!(run(&mut s, &d, 2), "CC");
    }

    #[test]
    fn all_quiesced_gives_none() {
        let d = dests(&[0, 0]);
        let mut s = Wrr::new();
        s.update(&d); // di 1, mw 0
        assert_eq!(run(&mut s, &d, 2), "--");
        d[1].set_weight(2);
        s.update(&d); // di 2, mw 1, cw 0 -> 1
        assert_eq!(run(&mut s, &d, 3), "BBB");
    }

    #[test]
    fn new_dests_restart_at_the_head() {
        let d = dests(&[1, 1]);
        let mut s = Wrr::new();
        s.update(&d);
        assert_eq!(run(&mut s, &d, 1), "A");
        let mut d2 = vec![dest(9, 1)];
        d2.extend(d.iter().cloned());
        s.update(&d2);
        assert_eq!(run(&mut s, &d2, 4), "ABCA");
    }

    #[test]
    fn gcd_and_max() {
        assert_eq!(gcd_weight(&dests(&[])), 1);
        assert_eq!(gcd_weight(&dests(&[0, 0])), 1);
        assert_eq!(gcd_weight(&dests(&[12, 0, 18, 30])), 6);
        assert_eq!(max_weight(&dests(&[0, 7, 3])), 7);
        assert_eq!(max_weight(&dests(&[])), 0);
    }
}
