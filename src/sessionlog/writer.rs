//! The control thread that drains the workers' session rings, keeps to the
//! configured rate, and writes the lines to a file or to syslog.
//!
//! It polls (every 50 ms) rather than waits on the rings: a waiting reader
//! would have to be woken, and the wake-up is a system call on the worker.
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::{line, SessionRing};

const TICK: Duration = Duration::from_millis(50);

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// Appended to a file; reopened when logrotate moves it away.
    File(PathBuf),
    /// One datagram a line to a syslog socket (`/dev/log`), RFC 3164's
    /// `<PRI>TAG[PID]: ` in front, severity info.
    Syslog { socket: PathBuf, facility: u8 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterConfig {
    pub sink: Sink,
    /// Lines per second at most, with a burst of one second's worth.
    pub rate: u32,
}

/// What became of the records, for the metrics.
#[derive(Debug, Default)]
pub struct Stats {
    pub lines: AtomicU64,
    pub rate_limited: AtomicU64,
    pub write_errors: AtomicU64,
}

/// What the metrics read: lines written, and records lost by reason.
#[derive(Clone)]
pub struct Counters {
    stats: Arc<Stats>,
    rings: Vec<Arc<SessionRing>>,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters")
            .field("lines", &self.lines())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl Counters {
    pub fn lines(&self) -> u64 {
        self.stats.lines.load(Ordering::Relaxed)
    }

    /// `ring_full`: a worker had no room (the writer fell behind);
    /// `rate_limit`: past `rate`; `write_error`: the file or syslog refused.
    pub fn dropped(&self) -> [(&'static str, u64); 3] {
        [
            (
                "ring_full",
                self.rings.iter().map(|r| r.dropped_full()).sum(),
            ),
            (
                "rate_limit",
                self.stats.rate_limited.load(Ordering::Relaxed),
            ),
            (
                "write_error",
                self.stats.write_errors.load(Ordering::Relaxed),
            ),
        ]
    }
}

pub struct SessionLog {
    rings: Vec<Arc<SessionRing>>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SessionLog {
    /// Opens the sink (an error here keeps rvsd from starting: a log that
    /// cannot be written is no log) and starts the thread. `epoch` is the
    /// instant of the workers' millisecond 0.
    pub fn start(
        cfg: &WriterConfig,
        rings: Vec<Arc<SessionRing>>,
        epoch: Instant,
    ) -> io::Result<SessionLog> {
        let out = Out::open(&cfg.sink)?;
        let wall_epoch = SystemTime::now() - epoch.elapsed();
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut drain = Drain {
            rings: rings.clone(),
            stats: stats.clone(),
            bucket: Bucket::new(cfg.rate),
            wall_epoch,
            out,
            text: String::new(),
        };
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rvs-sessionlog".into())
            .spawn(move || {
                let mut last_check = Instant::now();
                loop {
                    // Read before the drain: what the workers pushed before
                    // the stop is written by the last pass.
                    let stopping = flag.load(Ordering::Acquire);
                    drain.pass(Instant::now());
                    if stopping {
                        break;
                    }
                    if last_check.elapsed() >= Duration::from_secs(1) {
                        last_check = Instant::now();
                        drain.out.reopen_if_moved();
                    }
                    std::thread::sleep(TICK);
                }
            })?;
        Ok(SessionLog {
            rings,
            stats,
            stop,
            thread: Some(thread),
        })
    }

    /// A handle on the counters, for the metrics thread.
    pub fn counters(&self) -> Counters {
        Counters {
            stats: self.stats.clone(),
            rings: self.rings.clone(),
        }
    }

    /// Writes what the rings still hold (call once the workers stopped);
    /// dropping it does the same.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for SessionLog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A token bucket: `rate` a second, at most `rate` saved up.
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u32) -> Bucket {
        let rate = f64::from(rate.max(1));
        Bucket {
            rate,
            tokens: rate,
            last: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.rate);
    }

    fn take(&mut self) -> bool {
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Drain {
    rings: Vec<Arc<SessionRing>>,
    stats: Arc<Stats>,
    bucket: Bucket,
    wall_epoch: SystemTime,
    out: Out,
    text: String,
}

impl Drain {
    fn pass(&mut self, now: Instant) {
        self.bucket.refill(now);
        self.text.clear();
        let mut lines = 0u64;
        let mut limited = 0u64;
        for r in &self.rings {
            while let Some(s) = r.pop() {
                if self.bucket.take() {
                    line::write(&mut self.text, &s, self.wall_epoch);
                    lines += 1;
                } else {
                    limited += 1;
                }
            }
        }
        self.stats
            .rate_limited
            .fetch_add(limited, Ordering::Relaxed);
        if lines == 0 {
            return;
        }
        let failed = self.out.write(&self.text);
        self.stats
            .lines
            .fetch_add(lines - failed, Ordering::Relaxed);
        self.stats.write_errors.fetch_add(failed, Ordering::Relaxed);
    }
}

enum Out {
    File {
        path: PathBuf,
        file: File,
        /// (device, inode) of the open file, to notice a rotation.
        id: (u64, u64),
        /// Said once until a write succeeds again.
        failing: bool,
    },
    Syslog {
        socket: PathBuf,
        sock: UnixDatagram,
        prefix: String,
        failing: bool,
    },
}

fn open_file(path: &Path) -> io::Result<(File, (u64, u64))> {
    let f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)?;
    let m = f.metadata()?;
    Ok((f, (m.dev(), m.ino())))
}

fn connect_syslog(socket: &Path) -> io::Result<UnixDatagram> {
    let s = UnixDatagram::unbound()?;
    s.connect(socket)?;
    // A stalled syslog daemon fills the rings (counted), never this thread.
    s.set_write_timeout(Some(Duration::from_secs(1)))?;
    Ok(s)
}

impl Out {
    fn open(sink: &Sink) -> io::Result<Out> {
        match sink {
            Sink::File(path) => {
                let (file, id) = open_file(path).map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
                })?;
                Ok(Out::File {
                    path: path.clone(),
                    file,
                    id,
                    failing: false,
                })
            }
            Sink::Syslog { socket, facility } => {
                let sock = connect_syslog(socket).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot reach syslog at {}: {e}", socket.display()),
                    )
                })?;
                Ok(Out::Syslog {
                    socket: socket.clone(),
                    sock,
                    // Severity 6, info.
                    prefix: format!(
                        "<{}>rvsd[{}]: ",
                        u32::from(*facility) * 8 + 6,
                        std::process::id()
                    ),
                    failing: false,
                })
            }
        }
    }

    /// logrotate's default moves the file and expects a new one: when the
    /// path no longer names the open file, open it afresh.
    fn reopen_if_moved(&mut self) {
        if let Out::File { path, file, id, .. } = self {
            let moved = match std::fs::metadata(&*path) {
                Ok(m) => (m.dev(), m.ino()) != *id,
                Err(_) => true,
            };
            if moved {
                match open_file(path) {
                    Ok((f, i)) => {
                        *file = f;
                        *id = i;
                        log::info!("session log: reopened {}", path.display());
                    }
                    Err(e) => log::error!("session log: cannot reopen {}: {e}", path.display()),
                }
            }
        }
    }

    /// Writes the lines; how many of them were lost.
    fn write(&mut self, text: &str) -> u64 {
        let total = text.lines().count() as u64;
        match self {
            Out::File {
                path,
                file,
                failing,
                ..
            } => match file.write_all(text.as_bytes()) {
                Ok(()) => {
                    *failing = false;
                    0
                }
                Err(e) => {
                    if !*failing {
                        log::error!("session log: cannot write to {}: {e}", path.display());
                        *failing = true;
                    }
                    total
                }
            },
            Out::Syslog {
                socket,
                sock,
                prefix,
                failing,
            } => {
                let mut lost = 0;
                let mut msg = String::new();
                for l in text.lines() {
                    msg.clear();
                    msg.push_str(prefix);
                    msg.push_str(l);
                    let mut sent = sock.send(msg.as_bytes());
                    if sent.is_err() {
                        // The syslog daemon restarted: its socket is new.
                        if let Ok(s) = connect_syslog(socket) {
                            *sock = s;
                            sent = sock.send(msg.as_bytes());
                        }
                    }
                    if let Err(e) = sent {
                        if !*failing {
                            log::error!(
                                "session log: cannot send to syslog at {}: {e}",
                                socket.display()
                            );
                            *failing = true;
                        }
                        lost += 1;
                    } else {
                        *failing = false;
                    }
                }
                lost
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Event, Session};
    use super::*;
    use crate::ipvs::FwdMethod;

    fn session(n: u16) -> Session {
        Session {
            event: Event::Start,
            at: 0,
            worker: 0,
            proto: 17,
            fwd: FwdMethod::FullNat,
            client: format!("198.51.100.7:{}", 1000 + n).parse().unwrap(),
            vip: "198.18.0.100:53".parse().unwrap(),
            local: Some("198.19.0.1:5000".parse().unwrap()),
            real: "198.19.0.11:53".parse().unwrap(),
            state: "UDP",
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rvs-slog-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn lines_reach_the_file_and_a_rotated_file_is_reopened() {
        let d = scratch("file");
        let path = d.join("sessions.log");
        let ring = Arc::new(SessionRing::new(64));
        let cfg = WriterConfig {
            sink: Sink::File(path.clone()),
            rate: 1000,
        };
        let log = SessionLog::start(&cfg, vec![ring.clone()], Instant::now()).unwrap();
        ring.push(session(1));
        ring.push(session(2));
        let lines = |p: &Path| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .count()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while lines(&path) < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(lines(&path), 2);
        // logrotate: the file moves away, the next lines go to a new one.
        std::fs::rename(&path, d.join("sessions.log.1")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !path.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        ring.push(session(3));
        let counters = log.counters();
        log.stop();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("\"client\":\"198.51.100.7:1003\""), "{text}");
        assert_eq!(counters.lines(), 3);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn past_the_rate_lines_are_counted_not_written() {
        let d = scratch("rate");
        let sock_path = d.join("log.sock");
        let server = UnixDatagram::bind(&sock_path).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let ring = Arc::new(SessionRing::new(1024));
        // 16 = local0: PRI 16*8+6 = 134.
        let cfg = WriterConfig {
            sink: Sink::Syslog {
                socket: sock_path.clone(),
                facility: 16,
            },
            rate: 10,
        };
        for n in 0..100 {
            ring.push(session(n));
        }
        let log = SessionLog::start(&cfg, vec![ring.clone()], Instant::now()).unwrap();
        let mut buf = [0u8; 2048];
        let n = server.recv(&mut buf).unwrap();
        let msg = std::str::from_utf8(&buf[..n]).unwrap();
        let prefix = format!("<134>rvsd[{}]: {{\"time\":", std::process::id());
        assert!(msg.starts_with(&prefix), "{msg}");
        let counters = log.counters();
        log.stop();
        // The burst is one second's worth: 10 of the 100 queued at once
        // (a token or two more may have accrued by the later passes).
        let written = counters.lines();
        let (_, limited) = counters
            .dropped()
            .into_iter()
            .find(|(r, _)| *r == "rate_limit")
            .unwrap();
        assert_eq!(written + limited, 100);
        assert!((10..=12).contains(&written), "{written} written");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_unopenable_sink_is_an_error_at_start() {
        let cfg = WriterConfig {
            sink: Sink::File(PathBuf::from("/nonexistent-rvs-dir/sessions.log")),
            rate: 1,
        };
        let e = SessionLog::start(&cfg, Vec::new(), Instant::now())
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .contains("cannot open /nonexistent-rvs-dir/sessions.log"),
            "{e}"
        );
        let cfg = WriterConfig {
            sink: Sink::Syslog {
                socket: PathBuf::from("/nonexistent-rvs-dir/log"),
                facility: 3,
            },
            rate: 1,
        };
        let e = SessionLog::start(&cfg, Vec::new(), Instant::now())
            .err()
            .unwrap();
        assert!(e.to_string().contains("cannot reach syslog"), "{e}");
    }
}
