//! Never queue (ip_vs_nq.c): an idle dest (no active conns) takes the new
//! connection at once, the first idle one in list order; when none is idle,
//! sed's rule (activeconns + 1 over weight, ties to the earlier dest).
//!
//! Products in i128 where the 6.1 source uses s64: the same order, with no
//! overflow possible.
use std::sync::Arc;

use super::{lighter, Scheduler, Tuple};
use crate::ipvs::dest::Dest;
use crate::ipvs::Millis;

#[derive(Debug, Default)]
pub struct Nq {
    worker: usize,
}

impl Nq {
    pub fn new() -> Self {
        Nq::default()
    }
}

impl Scheduler for Nq {
    fn name(&self) -> &'static str {
        "nq"
    }

    fn count_as(&mut self, worker: usize) {
        self.worker = worker;
    }

    fn schedule(&mut self, dests: &[Arc<Dest>], _input: &Tuple, _now: Millis) -> Option<usize> {
        let mut least: Option<(usize, u64)> = None;
        for (i, d) in dests.iter().enumerate() {
            // The kernel tests weight == 0, not <= 0: negative weights are
            // refused when a dest is added or edited.
            if d.is_overloaded() || d.weight() == 0 {
                continue;
            }
            let active = d.activeconns_at(self.worker);
            if active == 0 {
                return Some(i);
            }
            let doh = u64::from(active) + 1;
            if least.is_none_or(|(l, loh)| lighter(doh, d.weight(), loh, dests[l].weight())) {
                least = Some((i, doh));
            }
        }
        least.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::sched::testutil::{dests, input};

    fn pick(d: &[Arc<Dest>]) -> Option<usize> {
        Nq::new().schedule(d, &input(), 0)
    }

    #[test]
    fn name_and_empty_list() {
        assert_eq!(Nq::new().name(), "nq");
        assert_eq!(pick(&[]), None);
    }

    #[test]
    fn the_first_idle_dest_wins_at_once() {
        // B and C are idle; B comes first, though C weighs ten times more
        // and A is far lighter by weight.
        let d = dests(&[(100, 1, 0), (1, 0, 0), (10, 0, 0)]);
        assert_eq!(pick(&d), Some(1));
        // Idle means no active conns: inactive ones do not matter.
        let d = dests(&[(1, 1, 0), (1, 0, 500)]);
        assert_eq!(pick(&d), Some(1));
    }

    #[test]
    fn idle_but_quiesced_or_overloaded_is_skipped() {
        let d = dests(&[(0, 0, 0), (1, 0, 0), (1, 2, 0), (2, 0, 0)]);
        d[1].set_overloaded(true);
        assert_eq!(pick(&d), Some(3));
    }

    #[test]
    fn without_an_idle_dest_sed_decides() {
        // A: 3/1. B: 6/3. 3·3 = 9 > 6·1 = 6: B.
        let d = dests(&[(1, 2, 0), (3, 5, 0)]);
        assert_eq!(pick(&d), Some(1));
        // A: 2/1. B: 4/2. 2·2 = 4 is not > 4·1: a tie, A.
        let d = dests(&[(1, 1, 0), (2, 3, 0)]);
        assert_eq!(pick(&d), Some(0));
        // Inactive conns do not count: A 2/1 with 900 inactive, B 3/1.
        let d = dests(&[(1, 1, 900), (1, 2, 0)]);
        assert_eq!(pick(&d), Some(0));
    }

    #[test]
    fn quiesced_and_overloaded_never_win() {
        let d = dests(&[(1, 9, 0), (0, 1, 0), (8, 1, 0)]);
        d[2].set_overloaded(true);
        assert_eq!(pick(&d), Some(0));
        d[0].set_overloaded(true);
        assert_eq!(pick(&d), None);
    }

    #[test]
    fn counts_and_weights_changed_mid_run() {
        let d = dests(&[(1, 0, 0), (1, 0, 0)]);
        let mut s = Nq::new();
        assert_eq!(s.schedule(&d, &input(), 0), Some(0));
        d[0].set_conns(1, 0);
        assert_eq!(s.schedule(&d, &input(), 0), Some(1));
        // Both busy, 2/1 each: A.
        d[1].set_conns(1, 0);
        assert_eq!(s.schedule(&d, &input(), 0), Some(0));
        // B to weight 2: 2·2 > 2·1: B.
        d[1].set_weight(2);
        assert_eq!(s.schedule(&d, &input(), 0), Some(1));
        // A quiesced and idle: still not picked; B is the only one.
        d[0].set_conns(0, 0);
        d[0].set_weight(0);
        assert_eq!(s.schedule(&d, &input(), 0), Some(1));
    }
}
