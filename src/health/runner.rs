//! The health-check thread: asks its host what is due, runs each probe on a
//! thread of its own (a slow or hung probe never delays another), and hands
//! verdicts back. The host (rvsd's management engine) applies them under
//! its lock, as it applies an operator's command.
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, RecvTimeoutError};

use super::{Job, Probe, Target, Verdict};

/// What the runner drives.
pub trait Host: Send + 'static {
    /// Probes due now (and the host's own bookkeeping of overruns).
    fn health_tick(&mut self, now: Instant) -> Vec<Job>;
    /// One probe's verdict.
    fn health_report(&mut self, target: Target, seq: u64, verdict: Verdict);
}

/// Runs one probe; `Probe::run` in rvsd, something scripted in tests.
pub type ProbeFn = Arc<dyn Fn(&Probe) -> Verdict + Send + Sync>;

/// How often the runner looks for due checks; bounds how late a check
/// starts, not how often a server is checked (its interval does that).
pub const PERIOD: Duration = Duration::from_millis(20);

pub struct Runner {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn lock<H>(m: &Mutex<H>) -> std::sync::MutexGuard<'_, H> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Runner {
    pub fn start<H: Host>(host: Arc<Mutex<H>>, probe: ProbeFn) -> io::Result<Runner> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rvs-health".into())
            .spawn(move || run(&host, &probe, &flag))?;
        Ok(Runner {
            stop,
            thread: Some(thread),
        })
    }

    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.halt();
    }
}

fn run<H: Host>(host: &Mutex<H>, probe: &ProbeFn, stop: &AtomicBool) {
    let (tx, rx) = unbounded::<(Target, u64, Verdict)>();
    while !stop.load(Ordering::Relaxed) {
        let jobs = lock(host).health_tick(Instant::now());
        for job in jobs {
            let (tx, probe) = (tx.clone(), probe.clone());
            let spawned = std::thread::Builder::new()
                .name("rvs-check".into())
                .spawn(move || {
                    let v = probe(&job.probe);
                    let _ = tx.send((job.target, job.seq, v));
                });
            if let Err(e) = spawned {
                // The probe never runs, so it overruns and the host counts
                // it failed, as it counts a hung one.
                log::warn!("health: cannot start a check thread: {e}");
            }
        }
        let deadline = Instant::now() + PERIOD;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((t, seq, v)) => lock(host).health_report(t, seq, v),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{check, CheckConfig, Health, Transport};
    use crate::ipvs::{DestConfig, FwdMethod, Protocol, ServiceConfig, ServiceKey, ServiceTable};

    struct TestHost {
        health: Health,
        table: ServiceTable,
    }

    impl Host for TestHost {
        fn health_tick(&mut self, now: Instant) -> Vec<Job> {
            self.health.tick(&mut self.table, now).0
        }
        fn health_report(&mut self, target: Target, seq: u64, verdict: Verdict) {
            self.health.report(&mut self.table, target, seq, verdict);
        }
    }

    fn key() -> ServiceKey {
        ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "198.18.0.100".parse().unwrap(),
            port: 80,
        }
    }

    fn weight(host: &Mutex<TestHost>, addr: &str) -> i32 {
        let h = lock(host);
        let svc = h.table.get(&key()).unwrap();
        let d = svc.dests().iter().find(|d| d.addr().to_string() == addr);
        d.map(|d| d.weight()).unwrap()
    }

    #[test]
    fn a_hung_probe_neither_blocks_the_others_nor_keeps_its_server_up() {
        let mut table = ServiceTable::new(1);
        table.add_service(ServiceConfig::new(key())).unwrap();
        for a in ["10.0.0.1", "10.0.0.2"] {
            let d = DestConfig {
                fwd: FwdMethod::FullNat,
                ..DestConfig::new(a.parse().unwrap(), 80)
            };
            table.add_dest(&key(), d).unwrap();
        }
        let mut health = Health::default();
        let words = check::split_words("checkinterval=0.1 checktimeout=0.05 fall=1").unwrap();
        let c = CheckConfig::parse(words.iter().map(String::as_str), Transport::Tcp).unwrap();
        health.set_check(&mut table, &key(), Some(c), Instant::now());
        let host = Arc::new(Mutex::new(TestHost { health, table }));
        // 10.0.0.1's probe never returns until the test ends.
        let (release, hold) = crossbeam_channel::bounded::<()>(0);
        let probes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = probes.clone();
        let probe: ProbeFn = Arc::new(move |p: &Probe| {
            if p.target.ip().to_string() == "10.0.0.1" {
                let _ = hold.recv();
                return Verdict::Up;
            }
            counted.fetch_add(1, Ordering::Relaxed);
            Verdict::Up
        });
        let runner = Runner::start(host.clone(), probe).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while weight(&host, "10.0.0.1") != 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(weight(&host, "10.0.0.1"), 0, "the hung server went down");
        assert_eq!(weight(&host, "10.0.0.2"), 1);
        let before = probes.load(Ordering::Relaxed);
        assert!(before >= 5, "the other server kept being checked: {before}");
        let listing = {
            let h = lock(&host);
            h.health.list(&h.table, None)
        };
        assert!(listing.contains("past its timeout"), "{listing}");
        drop(release);
        runner.stop();
    }
}
