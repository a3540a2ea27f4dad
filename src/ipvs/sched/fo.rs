//! Weighted failover (ip_vs_fo.c): every new connection goes to the
//! available dest of highest weight; lower-weight dests only take over when
//! it is quiesced or overloaded. Connection counts play no part.
use std::sync::Arc;

use super::{Scheduler, Tuple};
use crate::ipvs::dest::Dest;
use crate::ipvs::Millis;

#[derive(Debug, Default)]
pub struct Fo;

impl Fo {
    pub fn new() -> Self {
        Fo
    }
}

impl Scheduler for Fo {
    fn name(&self) -> &'static str {
        "fo"
    }

    fn schedule(&mut self, dests: &[Arc<Dest>], _input: &Tuple, _now: Millis) -> Option<usize> {
        let mut best: Option<(usize, i32)> = None;
        for (i, d) in dests.iter().enumerate() {
            if d.is_overloaded() {
                continue;
            }
            let w = d.weight();
            // The bar starts at 0, so weight 0 is never picked; strictly
            // above, so ties stay with the earlier dest.
            if w > best.map_or(0, |(_, hw)| hw) {
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
        Fo::new().schedule(d, &input(), 0)
    }

    #[test]
    fn name_and_empty_list() {
        assert_eq!(Fo::new().name(), "fo");
        assert_eq!(pick(&[]), None);
    }

    #[test]
    fn highest_weight_wins_whatever_its_load() {
        let d = dests(&[(1, 0, 0), (5, 1000, 1000), (3, 0, 0)]);
        assert_eq!(pick(&d), Some(1));
    }

    #[test]
    fn ties_go_to_the_first_in_list_order() {
        let d = dests(&[(2, 0, 0), (5, 0, 0), (5, 0, 0)]);
        assert_eq!(pick(&d), Some(1));
    }

    #[test]
    fn fails_over_and_back() {
        let d = dests(&[(1, 0, 0), (5, 0, 0), (3, 0, 0)]);
        let mut s = Fo::new();
        assert_eq!(s.schedule(&d, &input(), 0), Some(1));
        d[1].set_overloaded(true);
        assert_eq!(s.schedule(&d, &input(), 0), Some(2));
        d[2].set_weight(0);
        assert_eq!(s.schedule(&d, &input(), 0), Some(0));
        d[1].set_overloaded(false);
        assert_eq!(s.schedule(&d, &input(), 0), Some(1));
        // Raising a backup above the primary moves the traffic.
        d[0].set_weight(6);
        assert_eq!(s.schedule(&d, &input(), 0), Some(0));
    }

    #[test]
    fn none_when_all_are_quiesced_or_overloaded() {
        let d = dests(&[(0, 0, 0), (4, 0, 0)]);
        d[1].set_overloaded(true);
        assert_eq!(pick(&d), None);
    }
}
