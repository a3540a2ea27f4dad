//! A small stderr logger for the `log` facade: one line per event with a
//! timestamp, the level and the module, so operators can grep it.
//!
//! Every target (module) and level has its own token bucket, so a flood
//! from one place (a peer hammering the management socket, a flapping
//! link) cannot fill a disk or drown the lines from everywhere else. When
//! a bucket admits a line again, a "suppressed K messages" line says how
//! much was lost in between.
use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Lines per second a target and level may keep up.
pub const RATE_PER_SEC: f64 = 20.0;
/// Lines a target and level may write at once after a quiet spell: enough
/// for start-up, which logs a few dozen lines from one module.
pub const BURST: f64 = 100.0;

/// What the limiter says about one line.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// Drop it (it is counted).
    Suppress,
    /// Write it, after a line saying how many were dropped before it (when
    /// `suppressed` is not 0).
    Write { suppressed: u64 },
}

struct Bucket {
    tokens: f64,
    last: Instant,
    suppressed: u64,
}

/// Token buckets keyed by (target, level).
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: HashMap<(String, Level), Bucket>,
}

impl RateLimiter {
    pub fn new(rate: f64, burst: f64) -> RateLimiter {
        RateLimiter {
            rate,
            burst,
            buckets: HashMap::new(),
        }
    }

    pub fn admit(&mut self, target: &str, level: Level, now: Instant) -> Admit {
        let burst = self.burst;
        // Targets are a fixed set of module paths, so the map stays small.
        let b = self
            .buckets
            .entry((target.to_owned(), level))
            .or_insert(Bucket {
                tokens: burst,
                last: now,
                suppressed: 0,
            });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(burst);
        b.last = now;
        if b.tokens < 1.0 {
            b.suppressed += 1;
            return Admit::Suppress;
        }
        b.tokens -= 1.0;
        Admit::Write {
            suppressed: std::mem::take(&mut b.suppressed),
        }
    }
}

struct StderrLogger {
    prog: &'static str,
    limiter: Mutex<RateLimiter>,
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::Error => "ERROR",
        Level::Warn => "WARN",
        Level::Info => "INFO",
        Level::Debug => "DEBUG",
        Level::Trace => "TRACE",
    }
}

impl Log for StderrLogger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let admit = self
            .limiter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(r.target(), r.level(), Instant::now());
        let Admit::Write { suppressed } = admit else {
            return;
        };
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let level = level_name(r.level());
        let stamp = format!("{}.{:03} {}", t.as_secs(), t.subsec_millis(), self.prog);
        let mut line = String::new();
        if suppressed > 0 {
            line = format!(
                "{stamp} {level} {}: suppressed {suppressed} messages (more than {RATE_PER_SEC}/s)\n",
                r.target()
            );
        }
        line.push_str(&format!("{stamp} {level} {}: {}\n", r.target(), r.args()));
        // One write per line keeps lines whole when threads log together.
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Installs the logger once; later calls only change the level.
pub fn init(prog: &'static str, level: LevelFilter) {
    let _ = log::set_boxed_logger(Box::new(StderrLogger {
        prog,
        limiter: Mutex::new(RateLimiter::new(RATE_PER_SEC, BURST)),
    }));
    log::set_max_level(level);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_flood_is_cut_to_the_rate_and_the_loss_is_reported() {
        let mut l = RateLimiter::new(10.0, 5.0);
        let t0 = Instant::now();
        let written = (0..1000)
            .filter(|_| l.admit("rvs::ctl", Level::Warn, t0) != Admit::Suppress)
            .count();
        assert_eq!(written, 5, "only the burst gets through at once");
        // Another target and another level are not held back by the flood.
        assert_eq!(
            l.admit("rvs::daemon", Level::Warn, t0),
            Admit::Write { suppressed: 0 }
        );
        assert_eq!(
            l.admit("rvs::ctl", Level::Info, t0),
            Admit::Write { suppressed: 0 }
        );
        // A tenth of a second later one token is back: the next line
        // carries the count of what was dropped.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(
            l.admit("rvs::ctl", Level::Warn, t1),
            Admit::Write { suppressed: 995 }
        );
        assert_eq!(l.admit("rvs::ctl", Level::Warn, t1), Admit::Suppress);
        // Over a long flood the rate holds: 10 lines per second.
        let mut written = 0;
        for ms in 0..10_000 {
            let t = t1 + Duration::from_millis(ms);
            if l.admit("rvs::ctl", Level::Warn, t) != Admit::Suppress {
                written += 1;
            }
        }
        assert!((99..=101).contains(&written), "{written} lines in 10 s");
        // A quiet spell refills the bucket, but no more than the burst.
        let t2 = t1 + Duration::from_secs(3600);
        let written = (0..100)
            .filter(|_| l.admit("rvs::ctl", Level::Warn, t2) != Admit::Suppress)
            .count();
        assert_eq!(written, 5);
    }
}
