//! Least-connection (ip_vs_lc.c): the dest with the smallest connection
//! overhead, weights ignored except that weight 0 (quiesced) is skipped.
//!
//! The kernel source's comment still speaks of `(activeconns<<5)`; the code
//! uses ip_vs_dest_conn_overhead, i.e. `Dest::conn_overhead_at` (classic
//! 256·active + inactive; 6.1.192's 257·active + inactive variant is the
//! reference doc's open choice, decided in dest.rs, not here).
use std::sync::Arc;

use super::{Scheduler, Tuple};
use crate::ipvs::dest::Dest;
use crate::ipvs::Millis;

#[derive(Debug, Default)]
pub struct Lc {
    worker: usize,
}

impl Lc {
    pub fn new() -> Self {
        Lc::default()
    }
}

impl Scheduler for Lc {
    fn name(&self) -> &'static str {
        "lc"
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
            let doh = d.conn_overhead_at(self.worker);
            // Strict: on a tie the earlier dest in list order keeps it.
            if least.is_none_or(|(_, loh)| doh < loh) {
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
        Lc::new().schedule(d, &input(), 0)
    }

    #[test]
    fn name_and_empty_list() {
        assert_eq!(Lc::new().name(), "lc");
        assert_eq!(pick(&[]), None);
    }

    #[test]
    fn least_overhead_wins_whatever_the_weight() {
        // Overheads 2·256+0 = 512, 1·256+300 = 556, 1·256+255 = 511.
        let d = dests(&[(100, 2, 0), (1, 1, 300), (1, 1, 255)]);
        assert_eq!(pick(&d), Some(2));
        // One more inactive on C: 512 ties A, and A comes first.
        d[2].set_conns(1, 256);
        assert_eq!(pick(&d), Some(0));
    }

    #[test]
    fn an_active_conn_weighs_256_inactive_ones() {
        let d = dests(&[(1, 1, 0), (1, 0, 255)]);
        assert_eq!(pick(&d), Some(1));
        d[1].set_conns(0, 256);
        assert_eq!(pick(&d), Some(0), "256 = 256: first wins");
    }

    #[test]
    fn ties_go_to_the_first_in_list_order() {
        let d = dests(&[(1, 3, 3), (5, 3, 3), (9, 3, 3)]);
        assert_eq!(pick(&d), Some(0));
    }

    #[test]
    fn quiesced_and_overloaded_are_skipped() {
        let d = dests(&[(0, 0, 0), (1, 0, 0), (1, 5, 0)]);
        d[1].set_overloaded(true);
        assert_eq!(pick(&d), Some(2));
        d[2].set_overloaded(true);
        assert_eq!(pick(&d), None);
        d[0].set_weight(1);
        assert_eq!(pick(&d), Some(0));
    }

    #[test]
    fn follows_counts_and_weights_as_they_change() {
        let d = dests(&[(1, 0, 0), (1, 0, 0)]);
        let mut s = Lc::new();
        assert_eq!(s.schedule(&d, &input(), 0), Some(0));
        d[0].set_conns(1, 0);
        assert_eq!(s.schedule(&d, &input(), 0), Some(1));
        d[1].set_conns(1, 0);
        assert_eq!(s.schedule(&d, &input(), 0), Some(0));
        d[0].set_weight(0);
        assert_eq!(s.schedule(&d, &input(), 0), Some(1));
    }
}
