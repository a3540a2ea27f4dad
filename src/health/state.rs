//! The rise/fall state machine of one checked real server: down after
//! `fall` failed checks in a row, up again after `rise` passed ones.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiseFall {
    up: bool,
    /// Checks in a row that disagree with `up`.
    streak: u32,
    /// No check was recorded yet.
    fresh: bool,
}

impl Default for RiseFall {
    /// A real server starts up: it was added to take traffic, as an
    /// ipvsadm -a'd server does before any check has run.
    fn default() -> Self {
        RiseFall::starting(true)
    }
}

impl RiseFall {
    /// A server that starts up, or down (keepalived's alpha).
    pub fn starting(up: bool) -> Self {
        RiseFall {
            up,
            streak: 0,
            fresh: true,
        }
    }

    /// Records one check where the first one decides alone when
    /// `first_decides` (keepalived: one failure is enough initially).
    pub fn record_first(
        &mut self,
        passed: bool,
        rise: u32,
        fall: u32,
        first_decides: bool,
    ) -> Option<bool> {
        if first_decides && self.fresh {
            self.fresh = false;
            self.streak = 0;
            if passed == self.up {
                return None;
            }
            self.up = passed;
            return Some(passed);
        }
        self.record(passed, rise, fall)
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Records one check; the new state when this check changed it.
    pub fn record(&mut self, passed: bool, rise: u32, fall: u32) -> Option<bool> {
        self.fresh = false;
        if passed == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if self.up { fall } else { rise };
        if self.streak < needed.max(1) {
            return None;
        }
        self.up = passed;
        self.streak = 0;
        Some(self.up)
    }

    /// Checks in a row that went against the current state.
    pub fn streak(&self) -> u32 {
        self.streak
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rf: &mut RiseFall, checks: &str, rise: u32, fall: u32) -> Vec<Option<bool>> {
        checks
            .chars()
            .map(|c| rf.record(c == '+', rise, fall))
            .collect()
    }

    #[test]
    fn down_after_three_failures_up_after_one_success() {
        let mut rf = RiseFall::default();
        assert!(rf.is_up());
        assert_eq!(run(&mut rf, "--", 1, 3), [None, None]);
        assert!(rf.is_up(), "two failures are not enough");
        assert_eq!(run(&mut rf, "-", 1, 3), [Some(false)]);
        assert_eq!(run(&mut rf, "--", 1, 3), [None, None], "down stays down");
        assert_eq!(run(&mut rf, "+", 1, 3), [Some(true)]);
    }

    #[test]
    fn a_success_resets_the_failure_count_so_flapping_never_goes_down() {
        let mut rf = RiseFall::default();
        let got = run(&mut rf, "--+--+--+-+-+", 1, 3);
        assert!(got.iter().all(Option::is_none), "{got:?}");
        assert!(rf.is_up());
    }

    #[test]
    fn rise_needs_passes_in_a_row() {
        let mut rf = RiseFall::default();
        run(&mut rf, "-", 1, 1);
        assert!(!rf.is_up());
        assert_eq!(run(&mut rf, "++-++", 3, 1), [None, None, None, None, None]);
        assert_eq!(rf.streak(), 2);
        assert_eq!(run(&mut rf, "+", 3, 1), [Some(true)]);
    }

    #[test]
    fn the_first_check_decides_alone_when_asked() {
        // keepalived, fall 3 (retry 2): the very first failure takes the
        // server down, later ones need three in a row.
        let mut rf = RiseFall::starting(true);
        assert_eq!(rf.record_first(false, 1, 3, true), Some(false));
        assert_eq!(rf.record_first(true, 1, 3, true), Some(true));
        assert_eq!(rf.record_first(false, 1, 3, true), None);
        assert_eq!(rf.record_first(false, 1, 3, true), None);
        assert_eq!(rf.record_first(false, 1, 3, true), Some(false));
        // Alpha: starts down, the first pass brings it up.
        let mut rf = RiseFall::starting(false);
        assert!(!rf.is_up());
        assert_eq!(rf.record_first(false, 1, 3, true), None);
        assert_eq!(rf.record_first(true, 1, 3, true), Some(true));
        // Without first_decides the first failure is one of three.
        let mut rf = RiseFall::starting(true);
        assert_eq!(rf.record_first(false, 1, 3, false), None);
    }
}
