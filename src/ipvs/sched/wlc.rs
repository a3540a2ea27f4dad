//! Weighted least-connection (ip_vs_wlc.c), ipvsadm's default: the dest
//! with the smallest overhead/weight, compared by cross-multiplying so no
//! division is needed: switch from `least` to `d` when
//! loh·w_d > doh·w_least.
//!
//! The kernel multiplies in s64 (its overhead is an int). Here the
//! overhead is a u64 up to about 2^40, which times a weight up to 2^31 could
//! pass i64, so the products are taken in i128: the same order wherever the
//! kernel's s64 does not overflow.
use std::sync::Arc;

use super::{weighted_least, Scheduler, Tuple};
use crate::ipvs::dest::Dest;
use crate::ipvs::Millis;

#[derive(Debug, Default)]
pub struct Wlc {
    worker: usize,
}

impl Wlc {
    pub fn new() -> Self {
        Wlc::default()
    }
}

impl Scheduler for Wlc {
    fn name(&self) -> &'static str {
        "wlc"
    }

    fn count_as(&mut self, worker: usize) {
        self.worker = worker;
    }

    fn schedule(&mut self, dests: &[Arc<Dest>], _input: &Tuple, _now: Millis) -> Option<usize> {
        // Only OVERLOAD is tested after the first pick, as in the kernel.
        let w = self.worker;
        weighted_least(dests, |d| d.conn_overhead_at(w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::sched::testutil::{dests, input};

    fn pick(d: &[Arc<Dest>]) -> Option<usize> {
        Wlc::new().schedule(d, &input(), 0)
    }

    #[test]
    fn name_and_empty_list() {
        assert_eq!(Wlc::new().name(), "wlc");
        assert_eq!(pick(&[]), None);
    }

    #[test]
    fn overhead_per_weight_decides() {
        // A: 256/1. B: 512/3. 256·3 = 768 > 512·1: B.
        let d = dests(&[(1, 1, 0), (3, 2, 0)]);
        assert_eq!(pick(&d), Some(1));
        // C: 256/2 = 128 < 512/3: 512·2 = 1024 > 256·3 = 768: C.
        let d = dests(&[(1, 1, 0), (3, 2, 0), (2, 1, 0)]);
        assert_eq!(pick(&d), Some(2));
    }

    #[test]
    fn ties_go_to_the_earlier_dest() {
        // 256/1 and 512/2: 256·2 = 512 is not > 512·1.
        let d = dests(&[(1, 1, 0), (2, 2, 0)]);
        assert_eq!(pick(&d), Some(0));
        // All idle: 0·w > 0·w never holds, whatever the weights.
        let d = dests(&[(1, 0, 0), (50, 0, 0)]);
        assert_eq!(pick(&d), Some(0));
    }

    #[test]
    fn inactive_conns_count_one_256th() {
        // A: 256 + 0 over 1. B: 0 + 255 over 1: B. B at 256 inactive: tie, A.
        let d = dests(&[(1, 1, 0), (1, 0, 255)]);
        assert_eq!(pick(&d), Some(1));
        d[1].set_conns(0, 256);
        assert_eq!(pick(&d), Some(0));
    }

    #[test]
    fn quiesced_and_overloaded_never_win() {
        // The first stage skips A (weight 0) and B (overloaded).
        let d = dests(&[(0, 0, 0), (9, 0, 0), (1, 9, 0), (1, 10, 0)]);
        d[1].set_overloaded(true);
        assert_eq!(pick(&d), Some(2));
        // Idle and quiesced after the first pick: 9·256·0 > 0 is false.
        let d = dests(&[(1, 9, 0), (0, 0, 0)]);
        assert_eq!(pick(&d), Some(0));
        // Overloaded after the first pick, however light.
        let d = dests(&[(1, 9, 0), (5, 0, 0)]);
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
    fn weights_changed_mid_run() {
        let d = dests(&[(1, 1, 0), (1, 1, 0)]);
        let mut s = Wlc::new();
        assert_eq!(s.schedule(&d, &input(), 0), Some(0));
        // B to weight 2: 256·2 > 256·1.
        d[1].set_weight(2);
        assert_eq!(s.schedule(&d, &input(), 0), Some(1));
        // B quiesced: A is the only candidate however loaded.
        d[0].set_conns(100, 0);
        d[1].set_weight(0);
        assert_eq!(s.schedule(&d, &input(), 0), Some(0));
    }

    #[test]
    fn huge_counts_and_weights_do_not_overflow() {
        // A: about 2^40 over 1; B: the same over 2^31 - 1. B is far lighter,
        // and 2^40 · 2^31 is past i64.
        let d = dests(&[(1, u32::MAX, 0), (i32::MAX, u32::MAX, 1)]);
        assert_eq!(pick(&d), Some(1));
    }
}
