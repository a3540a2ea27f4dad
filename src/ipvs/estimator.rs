//! The kernel's rate estimator (ip_vs_est.c): every 2 seconds each stats
//! object samples its counters and smooths the rates with an EWMA of
//! weight 1/4, kept in fixed point exactly as the kernel keeps it, so
//! `--rate` shows what the kernel would show for the same traffic.
use super::stats::StatsSnapshot;

/// How often `sample` is meant to run.
pub const SAMPLE_INTERVAL_MS: u64 = 2_000;

/// Smoothed rates: connections and packets per second, bytes per second
/// (ipvsadm calls them CPS, InPPS, OutPPS, InBPS, OutBPS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rates {
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Estimator {
    last: StatsSnapshot,
    /// conns and packets: per-second rate << 10; bytes: per-second rate << 5.
    cps: i64,
    inpps: i64,
    outpps: i64,
    inbps: i64,
    outbps: i64,
}

/// One EWMA step: `avg += (rate - avg) / 4`, where rate is the 2-second
/// delta shifted into the average's fixed point.
fn step(avg: &mut i64, last: &mut u64, now: u64, shift: u32) {
    let delta = now.wrapping_sub(*last) as i64;
    *last = now;
    let rate = delta.wrapping_shl(shift);
    *avg += (rate - *avg) >> 2;
}

impl Estimator {
    /// Starts estimating from the counters as they are now.
    pub fn new(current: StatsSnapshot) -> Estimator {
        Estimator {
            last: current,
            ..Default::default()
        }
    }

    /// One 2-second sample (estimation_timer).
    pub fn sample(&mut self, now: StatsSnapshot) {
        // Counts: Δ per 2 s << 9 is Δ per second << 10.
        step(&mut self.cps, &mut self.last.conns, now.conns, 9);
        step(&mut self.inpps, &mut self.last.inpkts, now.inpkts, 9);
        step(&mut self.outpps, &mut self.last.outpkts, now.outpkts, 9);
        // Bytes: Δ per 2 s << 4 is Δ per second << 5.
        step(&mut self.inbps, &mut self.last.inbytes, now.inbytes, 4);
        step(&mut self.outbps, &mut self.last.outbytes, now.outbytes, 4);
    }

    /// ip_vs_read_estimator: rounded half up out of the fixed point.
    pub fn rates(&self) -> Rates {
        let counts = |a: i64| (a.max(0) as u64 + 0x1ff) >> 10;
        let bytes = |a: i64| (a.max(0) as u64 + 0xf) >> 5;
        Rates {
            cps: counts(self.cps),
            inpps: counts(self.inpps),
            outpps: counts(self.outpps),
            inbps: bytes(self.inbps),
            outbps: bytes(self.outbps),
        }
    }

    /// ip_vs_zero_estimator: rates to 0, counting on from `current`.
    pub fn zero(&mut self, current: StatsSnapshot) {
        *self = Estimator::new(current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(conns: u64, pkts: u64, bytes: u64) -> StatsSnapshot {
        StatsSnapshot {
            conns,
            inpkts: pkts,
            outpkts: pkts / 2,
            inbytes: bytes,
            outbytes: bytes / 2,
        }
    }

    #[test]
    fn first_samples_follow_the_kernels_ewma() {
        // 1000 conns per 2 s: rate = 1000 << 9 = 512000.
        // avg1 = 512000 >> 2 = 128000 -> (128000 + 511) >> 10 = 125
        // avg2 = 128000 + (512000 - 128000) >> 2 = 224000 -> 219
        // avg3 = 224000 + 72000 = 296000 -> 289
        let mut e = Estimator::new(snap(0, 0, 0));
        let mut got = vec![];
        for i in 1..=3 {
            e.sample(snap(1000 * i, 0, 0));
            got.push(e.rates().cps);
        }
        assert_eq!(got, [125, 219, 289]);
    }

    #[test]
    fn steady_traffic_converges_to_the_exact_rate() {
        // 500 conn/s, 10000 pkt/s in and 5000 out, 1 MB/s in and 0.5 MB/s out.
        let mut e = Estimator::new(snap(0, 0, 0));
        for i in 1..=60 {
            e.sample(snap(1000 * i, 20_000 * i, 2_000_000 * i));
        }
        assert_eq!(
            e.rates(),
            Rates {
                cps: 500,
                inpps: 10_000,
                outpps: 5_000,
                inbps: 1_000_000,
                outbps: 500_000
            }
        );
    }

    #[test]
    fn traffic_stopping_decays_and_zero_resets() {
        let mut e = Estimator::new(snap(0, 0, 0));
        for i in 1..=40 {
            e.sample(snap(0, 400 * i, 0));
        }
        assert_eq!(e.rates().inpps, 200);
        // No new packets: avg *= 3/4 each sample -> 200 * 0.75 = 150 (204800*3/4 = 153600 -> 150).
        e.sample(snap(0, 400 * 40, 0));
        assert_eq!(e.rates().inpps, 150);
        e.zero(snap(0, 400 * 40, 0));
        assert_eq!(e.rates(), Rates::default());
        e.sample(snap(0, 400 * 40, 0));
        assert_eq!(
            e.rates(),
            Rates::default(),
            "zero starts from the current counters"
        );
    }
}
