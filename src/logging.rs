//! A small stderr logger for the `log` facade: one line per event with a
//! timestamp, the level and the module, so operators can grep it.
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

struct StderrLogger {
    prog: &'static str,
}

impl Log for StderrLogger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let level = match r.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        let line = format!(
            "{}.{:03} {} {level} {}: {}\n",
            t.as_secs(),
            t.subsec_millis(),
            self.prog,
            r.target(),
            r.args()
        );
        // One write per line keeps lines whole when threads log together.
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Installs the logger once; later calls only change the level.
pub fn init(prog: &'static str, level: LevelFilter) {
    let _ = log::set_boxed_logger(Box::new(StderrLogger { prog }));
    log::set_max_level(level);
}
