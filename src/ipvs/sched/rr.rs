//! Round-robin (ip_vs_rr.c): each new connection goes to the next dest in
//! list order after the one that took the previous connection, skipping
//! quiesced (weight 0) and overloaded dests.
//!
//! The kernel keeps a pointer to the last chosen list node. Here that is an
//! index into the list plus a copy of the list as last seen, so that when
//! the list changes the position can follow the same dest, or, when that
//! dest was deleted, fall back to its predecessor as ip_vs_rr_del_dest does.
use std::sync::Arc;

use super::{Scheduler, Tuple};
use crate::ipvs::dest::Dest;
use crate::ipvs::Millis;

#[derive(Debug, Default)]
pub struct Rr {
    /// The last pick, as an index into `list`; None is the kernel's list
    /// head, where the walk starts at the first dest.
    pos: Option<usize>,
    /// The list as of the last sync: deleting the current dest needs the
    /// old neighbours, which the new list no longer has.
    list: Vec<Arc<Dest>>,
}

impl Rr {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `dests` is not the list `pos` refers to. Cheap, so schedule
    /// can also survive a caller that changed the list without `update`.
    fn stale(&self, dests: &[Arc<Dest>]) -> bool {
        self.list.len() != dests.len()
            || self
                .pos
                .is_some_and(|p| !Arc::ptr_eq(&self.list[p], &dests[p]))
    }
}

fn eligible(d: &Dest) -> bool {
    !d.is_overloaded() && d.weight() > 0
}

impl Scheduler for Rr {
    fn name(&self) -> &'static str {
        "rr"
    }

    fn schedule(&mut self, dests: &[Arc<Dest>], _input: &Tuple, _now: Millis) -> Option<usize> {
        if self.stale(dests) {
            self.update(dests);
        }
        // From the head: every dest once. From a dest: the ones after it,
        // then from the first round to it, the last pick itself included.
        let start = self.pos.map_or(0, |p| p + 1);
        let pick = (start..dests.len())
            .chain(0..start)
            .find(|&i| eligible(&dests[i]))?;
        self.pos = Some(pick);
        Some(pick)
    }

    fn update(&mut self, dests: &[Arc<Dest>]) {
        // The current dest if it is still listed, else the nearest one
        // before it in the old list that is (deletions one at a time each
        // move the kernel's pointer back one node); none left: the head.
        self.pos = self.pos.and_then(|p| {
            self.list[..=p]
                .iter()
                .rev()
                .find_map(|old| dests.iter().position(|d| Arc::ptr_eq(d, old)))
        });
        self.list.clear();
        self.list.extend(dests.iter().cloned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::sched::testutil::{dest, input};

    fn picks(s: &mut Rr, dests: &[Arc<Dest>], n: usize) -> Vec<Option<usize>> {
        (0..n).map(|_| s.schedule(dests, &input(), 0)).collect()
    }

    #[test]
    fn name_and_empty_list() {
        let mut s = Rr::new();
        assert_eq!(s.name(), "rr");
        assert_eq!(s.schedule(&[], &input(), 0), None);
    }

    #[test]
    fn cycles_from_the_head_ignoring_weights() {
        let d = vec![dest(1, 5), dest(2, 1), dest(3, 100)];
        let mut s = Rr::new();
        s.update(&d);
        assert_eq!(
            picks(&mut s, &d, 7),
            [0, 1, 2, 0, 1, 2, 0].map(Some).to_vec()
        );
    }

    #[test]
    fn skips_quiesced_and_overloaded() {
        let d = vec![dest(1, 1), dest(2, 0), dest(3, 1), dest(4, 1)];
        d[3].set_overloaded(true);
        let mut s = Rr::new();
        s.update(&d);
        assert_eq!(picks(&mut s, &d, 4), [0, 2, 0, 2].map(Some).to_vec());
        // Weights and flags are read live, as the kernel reads its atomics.
        d[3].set_overloaded(false);
        d[1].set_weight(2);
        assert_eq!(picks(&mut s, &d, 4), [3, 0, 1, 2].map(Some).to_vec());
    }

    #[test]
    fn the_last_pick_is_tried_last() {
        let d = vec![dest(1, 1), dest(2, 1), dest(3, 1)];
        let mut s = Rr::new();
        s.update(&d);
        assert_eq!(s.schedule(&d, &input(), 0), Some(0));
        assert_eq!(s.schedule(&d, &input(), 0), Some(1));
        d[0].set_weight(0);
        d[2].set_overloaded(true);
        assert_eq!(picks(&mut s, &d, 2), [Some(1), Some(1)]);
        d[1].set_overloaded(true);
        assert_eq!(s.schedule(&d, &input(), 0), None);
        // A failed pick leaves the position where it was.
        d[1].set_overloaded(false);
        d[0].set_weight(1);
        d[2].set_overloaded(false);
        assert_eq!(s.schedule(&d, &input(), 0), Some(2));
    }

    #[test]
    fn none_when_nothing_is_eligible() {
        let d = vec![dest(1, 0), dest(2, 3)];
        d[1].set_overloaded(true);
        let mut s = Rr::new();
        s.update(&d);
        assert_eq!(s.schedule(&d, &input(), 0), None);
    }

    #[test]
    fn an_added_dest_keeps_the_position_on_the_same_dest() {
        let (a, b, c) = (dest(1, 1), dest(2, 1), dest(3, 1));
        let mut d = vec![a.clone(), b.clone(), c.clone()];
        let mut s = Rr::new();
        s.update(&d);
        assert_eq!(picks(&mut s, &d, 2), [Some(0), Some(1)]); // A, B
                                                              // New dests go in at the head: X A B C. The next is still C.
        let x = dest(4, 1);
        d.insert(0, x);
        s.update(&d);
        assert_eq!(picks(&mut s, &d, 3), [3, 0, 1].map(Some).to_vec()); // C X A
    }

    #[test]
    fn deleting_the_current_dest_moves_back_to_its_predecessor() {
        let (a, b, c, e) = (dest(1, 1), dest(2, 1), dest(3, 1), dest(4, 1));
        let mut s = Rr::new();
        let d = vec![a.clone(), b.clone(), c.clone(), e.clone()];
        s.update(&d);
        assert_eq!(picks(&mut s, &d, 3), [0, 1, 2].map(Some).to_vec()); // on C
                                                                        // Delete C: the pointer goes to B, so the next pick is E.
        let d = vec![a.clone(), b.clone(), e.clone()];
        s.update(&d);
        assert_eq!(s.schedule(&d, &input(), 0), Some(2)); // E
                                                          // Delete E: back to B, next is A (wrapping).
        let d = vec![a.clone(), b.clone()];
        s.update(&d);
        assert_eq!(s.schedule(&d, &input(), 0), Some(0)); // A
    }

    #[test]
    fn deleting_several_falls_back_to_the_nearest_surviving_predecessor() {
        let (a, b, c, e) = (dest(1, 1), dest(2, 1), dest(3, 1), dest(4, 1));
        let mut s = Rr::new();
        let d = vec![a.clone(), b.clone(), c.clone(), e.clone()];
        s.update(&d);
        assert_eq!(picks(&mut s, &d, 3), [0, 1, 2].map(Some).to_vec()); // on C
                                                                        // B and C go at once: A is the nearest before C, so E is next.
        let d = vec![a.clone(), e.clone()];
        s.update(&d);
        assert_eq!(s.schedule(&d, &input(), 0), Some(1)); // E
    }

    #[test]
    fn deleting_the_first_dest_restarts_at_the_head() {
        let (a, b, c) = (dest(1, 1), dest(2, 1), dest(3, 1));
        let mut s = Rr::new();
        let d = vec![a.clone(), b.clone(), c.clone()];
        s.update(&d);
        assert_eq!(s.schedule(&d, &input(), 0), Some(0)); // on A
        let d = vec![b.clone(), c.clone()];
        s.update(&d);
        assert_eq!(picks(&mut s, &d, 3), [0, 1, 0].map(Some).to_vec()); // B C B
    }

    #[test]
    fn a_list_changed_without_update_is_still_followed() {
        let (a, b, c) = (dest(1, 1), dest(2, 1), dest(3, 1));
        let mut s = Rr::new();
        let d = vec![a.clone(), b.clone(), c.clone()];
        // Never told: the first schedule takes the list as it finds it.
        assert_eq!(picks(&mut s, &d, 2), [Some(0), Some(1)]); // on B
        let d = vec![a.clone(), c.clone()];
        assert_eq!(s.schedule(&d, &input(), 0), Some(1)); // B gone: from A, C
    }
}
