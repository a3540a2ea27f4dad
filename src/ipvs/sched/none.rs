//! `-s none` (ip_vs_ctl.c): a service with no scheduler. The kernel takes
//! it (a sync backup's services, or one that only forwards conns synced or
//! made elsewhere) and schedules nothing: every new conn finds no dest.
use std::sync::Arc;

use super::{Scheduler, Tuple};
use crate::ipvs::dest::Dest;
use crate::ipvs::Millis;

#[derive(Debug, Default)]
pub struct NoScheduler;

impl Scheduler for NoScheduler {
    fn name(&self) -> &'static str {
        "none"
    }

    fn schedule(&mut self, _: &[Arc<Dest>], _: &Tuple, _: Millis) -> Option<usize> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::sched::testutil::{dests, input};

    #[test]
    fn schedules_nothing_whatever_the_dests() {
        let d = dests(&[(1, 0, 0), (5, 0, 0)]);
        assert_eq!(NoScheduler.schedule(&d, &input(), 0), None);
        assert_eq!(NoScheduler.name(), "none");
    }
}
