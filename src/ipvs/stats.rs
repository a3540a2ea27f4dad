//! Per-service and per-dest counters.
//!
//! Each worker writes its own cache-line-aligned slot (one writer, no locked
//! instructions); readers sum the slots. `-Z` does not touch the workers'
//! slots: it records a baseline that later reads subtract.
use std::sync::Mutex;

use super::estimator::{Estimator, Rates};
use crate::counters::Counter;

/// The counters one worker keeps for one service or dest.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct StatsCounters {
    pub conns: Counter,
    pub inpkts: Counter,
    pub outpkts: Counter,
    pub inbytes: Counter,
    pub outbytes: Counter,
}

/// A point-in-time sum, as `--stats` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

impl StatsSnapshot {
    fn wrapping_sub(self, b: StatsSnapshot) -> StatsSnapshot {
        StatsSnapshot {
            conns: self.conns.wrapping_sub(b.conns),
            inpkts: self.inpkts.wrapping_sub(b.inpkts),
            outpkts: self.outpkts.wrapping_sub(b.outpkts),
            inbytes: self.inbytes.wrapping_sub(b.inbytes),
            outbytes: self.outbytes.wrapping_sub(b.outbytes),
        }
    }
}

#[derive(Debug)]
pub struct Stats {
    workers: Box<[StatsCounters]>,
    baseline: Mutex<StatsSnapshot>,
    estimator: Mutex<Estimator>,
}

/// One slot: what a table or a set that nobody counts into yet holds.
impl Default for Stats {
    fn default() -> Stats {
        Stats::new(1)
    }
}

impl Stats {
    pub fn new(workers: usize) -> Stats {
        Stats {
            workers: (0..workers.max(1))
                .map(|_| StatsCounters::default())
                .collect(),
            baseline: Mutex::new(StatsSnapshot::default()),
            estimator: Mutex::new(Estimator::default()),
        }
    }

    /// The slot worker `w` writes (the last slot for an out-of-range index,
    /// so a misconfigured caller miscounts instead of panicking).
    #[inline]
    pub fn worker(&self, w: usize) -> &StatsCounters {
        let last = self.workers.len() - 1;
        &self.workers[w.min(last)]
    }

    fn raw(&self) -> StatsSnapshot {
        let mut s = StatsSnapshot::default();
        for c in self.workers.iter() {
            s.conns = s.conns.wrapping_add(c.conns.get());
            s.inpkts = s.inpkts.wrapping_add(c.inpkts.get());
            s.outpkts = s.outpkts.wrapping_add(c.outpkts.get());
            s.inbytes = s.inbytes.wrapping_add(c.inbytes.get());
            s.outbytes = s.outbytes.wrapping_add(c.outbytes.get());
        }
        s
    }

    /// The counters since creation or the last `zero`.
    pub fn snapshot(&self) -> StatsSnapshot {
        let base = *self.baseline.lock().unwrap_or_else(|e| e.into_inner());
        self.raw().wrapping_sub(base)
    }

    /// `ipvsadm -Z`: counting starts again from zero, and so do the rates.
    pub fn zero(&self) {
        let now = self.raw();
        *self.baseline.lock().unwrap_or_else(|e| e.into_inner()) = now;
        self.estimator
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .zero(StatsSnapshot::default());
    }

    /// One rate-estimator sample; the control thread calls it every
    /// `estimator::SAMPLE_INTERVAL_MS`.
    pub fn estimate(&self) {
        let now = self.snapshot();
        self.estimator
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sample(now);
    }

    /// `--rate`: the smoothed rates.
    pub fn rates(&self) -> Rates {
        self.estimator
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .rates()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_sum_and_zero_sets_a_baseline() {
        let s = Stats::new(2);
        s.worker(0).conns.inc();
        s.worker(1).conns.add(2);
        s.worker(1).inbytes.add(1500);
        s.worker(7).outpkts.inc();
        assert_eq!(
            s.snapshot(),
            StatsSnapshot {
                conns: 3,
                inpkts: 0,
                outpkts: 1,
                inbytes: 1500,
                outbytes: 0
            }
        );
        s.zero();
        assert_eq!(s.snapshot(), StatsSnapshot::default());
        s.worker(0).inpkts.inc();
        assert_eq!(s.snapshot().inpkts, 1);
        assert_eq!(std::mem::align_of::<StatsCounters>(), 64);
    }

    #[test]
    fn rates_come_from_the_summed_slots_and_zero_resets_them() {
        let s = Stats::new(2);
        for _ in 0..40 {
            s.worker(0).conns.add(600);
            s.worker(1).conns.add(400);
            s.estimate();
        }
        assert_eq!(s.rates().cps, 500);
        s.zero();
        assert_eq!(s.rates().cps, 0);
        s.estimate();
        assert_eq!(s.rates().cps, 0, "no traffic since -Z");
    }
}
