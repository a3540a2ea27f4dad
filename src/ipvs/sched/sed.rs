//! Shortest expected delay (ip_vs_sed.c): wlc's rule with the overhead
//! taken as activeconns + 1, the delay the new connection itself would see.
//! Inactive connections do not count.
//!
//! The 6.1 source multiplies in s64 (the 2015 overflow fix); here the
//! products are i128, which orders the same and cannot overflow either.
use std::sync::Arc;

use super::{weighted_least, Scheduler, Tuple};
use crate::ipvs::dest::Dest;
use crate::ipvs::Millis;

#[derive(Debug, Default)]
pub struct Sed {
    worker: usize,
}

impl Sed {
    pub fn new() -> Self {
        Sed::default()
    }
}

/// The expected delay's numerator: the conns ahead plus the new one.
fn overhead(d: &Dest, worker: usize) -> u64 {
    u64::from(d.activeconns_at(worker)) + 1
}

/// Strictly lighter, so ties stay with the earlier dest.
impl Scheduler for Sed {
    fn name(&self) -> &'static str {
        "sed"
    }

    fn count_as(&mut self, worker: usize) {
        self.worker = worker;
    }

    fn schedule(&mut self, dests: &[Arc<Dest>], _input: &Tuple, _now: Millis) -> Option<usize> {
        let w = self.worker;
        weighted_least(dests, |d| overhead(d, w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::sched::testutil::{dests, input};

    fn pick(d: &[Arc<Dest>]) -> Option<usize> {
        Sed::new().schedule(d, &input(), 0)
    }

    #[test]
    fn name_and_empty_list() {
        assert_eq!(Sed::new().name(), "sed");
        assert_eq!(pick(&[]), None);
    }

    #[test]
    fn the_new_conn_counts_so_idle_heavier_dests_win() {
        // Both idle: 1/1 against 1/5. 1·5 > 1·1: B (wlc would keep A).
        let d = dests(&[(1, 0, 0), (5, 0, 0)]);
        assert_eq!(pick(&d), Some(1));
        // A: 2/1. B: 3/3. 2·3 = 6 > 3·1: B.
        let d = dests(&[(1, 1, 0), (3, 2, 0)]);
        assert_eq!(pick(&d), Some(1));
    }

    #[test]
    fn ties_go_to_the_earlier_dest() {
        // 1/1 against 3/3: 1·3 = 3 is not > 3·1.
        let d = dests(&[(1, 0, 0), (3, 2, 0)]);
        assert_eq!(pick(&d), Some(0));
        let d = dests(&[(2, 4, 0), (2, 4, 0), (2, 4, 0)]);
        assert_eq!(pick(&d), Some(0));
    }

    #[test]
    fn inactive_conns_are_ignored() {
        // A: 1/1 with 1000 inactive. B: 2/1. A.
        let d = dests(&[(1, 0, 1000), (1, 1, 0)]);
        assert_eq!(pick(&d), Some(0));
    }

    #[test]
    fn quiesced_and_overloaded_never_win() {
        let d = dests(&[(0, 0, 0), (9, 0, 0), (1, 3, 0), (1, 4, 0)]);
        d[1].set_overloaded(true);
        assert_eq!(pick(&d), Some(2));
        // Quiesced after the first pick: 6·0 > 1·1 is false.
        let d = dests(&[(1, 5, 0), (0, 0, 0)]);
        assert_eq!(pick(&d), Some(0));
        let d = dests(&[(1, 5, 0), (4, 0, 0)]);
        d[1].set_overloaded(true);
        assert_eq!(pick(&d), Some(0));
    }

    #[test]
    fn none_when_nothing_is_eligible() {
        let d = dests(&[(0, 0, 0), (3, 0, 0)]);
        d[1].set_overloaded(true);
        assert_eq!(pick(&d), None);
    }

    #[test]
    fn weights_and_counts_changed_mid_run() {
        // A 2/2, B 2/1: 2·1 = 2 is not > 2·2: A.
        let d = dests(&[(2, 1, 0), (1, 1, 0)]);
        let mut s = Sed::new();
        assert_eq!(s.schedule(&d, &input(), 0), Some(0));
        // A to 3 active: 4/2 against 2/1, a tie: A.
        d[0].set_conns(3, 0);
        assert_eq!(s.schedule(&d, &input(), 0), Some(0));
        // B to weight 3: 4·3 = 12 > 2·2 = 4: B.
        d[1].set_weight(3);
        assert_eq!(s.schedule(&d, &input(), 0), Some(1));
    }
}
