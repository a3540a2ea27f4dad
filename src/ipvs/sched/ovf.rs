//! Overflow (ip_vs_ovf.c): the highest-weight dest takes connections until
//! its active connections exceed its weight, then the next highest takes
//! the overflow. Inactive connections do not count.
use std::sync::Arc;

use super::{Scheduler, Tuple};
use crate::ipvs::dest::Dest;
use crate::ipvs::Millis;

#[derive(Debug, Default)]
pub struct Ovf {
    worker: usize,
}

impl Ovf {
    pub fn new() -> Self {
        Ovf::default()
    }
}

impl Scheduler for Ovf {
    fn name(&self) -> &'static str {
        "ovf"
    }

    fn count_as(&mut self, worker: usize) {
        self.worker = worker;
    }

    fn schedule(&mut self, dests: &[Arc<Dest>], _input: &Tuple, _now: Millis) -> Option<usize> {
        let mut best: Option<(usize, i32)> = None;
        for (i, d) in dests.iter().enumerate() {
            let w = d.weight();
            // Full means active > weight: a dest at exactly its weight still
            // takes one more.
            if d.is_overloaded()
                || i64::from(d.activeconns_at(self.worker)) > i64::from(w)
                || w == 0
            {
                continue;
            }
            if best.is_none_or(|(_, hw)| w > hw) {
                best = Some((i, w));
            }
        }
        best.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::sched::testutil::{dests, input};

    fn pick(d: &[Arc<Dest>]) -> Option<usize> {
        Ovf::new().schedule(d, &input(), 0)
    }

    #[test]
    fn name_and_empty_list() {
        assert_eq!(Ovf::new().name(), "ovf");
        assert_eq!(pick(&[]), None);
    }

    #[test]
    fn overflows_down_the_weights() {
        let d = dests(&[(2, 0, 0), (5, 5, 0), (3, 0, 0)]);
        let mut s = Ovf::new();
        // B at 5 active of weight 5 is not over it yet.
        assert_eq!(s.schedule(&d, &input(), 0), Some(1));
        d[1].set_conns(6, 0);
        assert_eq!(s.schedule(&d, &input(), 0), Some(2));
        d[2].set_conns(4, 0);
        assert_eq!(s.schedule(&d, &input(), 0), Some(0));
        d[0].set_conns(3, 0);
        assert_eq!(s.schedule(&d, &input(), 0), None);
        // B drains back to its weight: it takes over again.
        d[1].set_conns(5, 0);
        assert_eq!(s.schedule(&d, &input(), 0), Some(1));
    }

    #[test]
    fn inactive_conns_do_not_fill_a_dest() {
        let d = dests(&[(1, 0, 0), (5, 0, 1000)]);
        assert_eq!(pick(&d), Some(1));
    }

    #[test]
    fn ties_go_to_the_first_in_list_order() {
        let d = dests(&[(1, 0, 0), (4, 2, 0), (4, 0, 0)]);
        assert_eq!(pick(&d), Some(1));
    }

    #[test]
    fn quiesced_and_overloaded_are_skipped() {
        let d = dests(&[(0, 0, 0), (9, 0, 0), (2, 0, 0)]);
        d[1].set_overloaded(true);
        assert_eq!(pick(&d), Some(2));
        d[2].set_weight(0);
        assert_eq!(pick(&d), None);
    }

    #[test]
    fn weights_changed_mid_run() {
        let d = dests(&[(3, 3, 0), (2, 0, 0)]);
        let mut s = Ovf::new();
        assert_eq!(s.schedule(&d, &input(), 0), Some(0));
        // Lowering A to 2 puts its 3 active over the weight.
        d[0].set_weight(2);
        assert_eq!(s.schedule(&d, &input(), 0), Some(1));
        d[1].set_weight(1);
        d[0].set_weight(4);
        assert_eq!(s.schedule(&d, &input(), 0), Some(0));
    }
}
