//! The notify hook: on each transition, `notify INSTANCE NAME STATE
//! PRIORITY` as keepalived calls its notify scripts, run through
//! `/bin/sh -c` (so the configured command may carry its own arguments)
//! on a thread of its own, one after another in transition order, so that
//! the control thread never waits for a script.
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

struct Job {
    cmd: String,
    name: String,
    state: &'static str,
    priority: u8,
}

pub(super) struct Notifier {
    tx: Option<Sender<Job>>,
    done: Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl Notifier {
    pub(super) fn start() -> Notifier {
        let (tx, rx) = channel::<Job>();
        let (done_tx, done) = channel();
        let thread = std::thread::Builder::new()
            .name("rvs-vrrp-notify".into())
            .spawn(move || {
                for job in rx {
                    run(&job);
                }
                let _ = done_tx.send(());
            })
            .map_err(|e| log::error!("vrrp: no thread for notify commands: {e}"))
            .ok();
        Notifier {
            tx: thread.as_ref().map(|_| tx),
            done,
            thread,
        }
    }

    pub(super) fn run(&self, cmd: &str, name: &str, state: &'static str, priority: u8) {
        let job = Job {
            cmd: cmd.to_owned(),
            name: name.to_owned(),
            state,
            priority,
        };
        match &self.tx {
            Some(tx) if tx.send(job).is_ok() => {}
            _ => log::error!("vrrp {name}: notify for {state} not run: its thread is gone"),
        }
    }

    /// Lets the queued commands finish, waiting at most `limit`.
    pub(super) fn finish(mut self, limit: Duration) {
        drop(self.tx.take());
        if self.done.recv_timeout(limit).is_ok() {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        } else if self.thread.is_some() {
            log::warn!("vrrp: notify commands still running after {limit:?}; not waiting for them");
        }
    }
}

fn run(job: &Job) {
    let prio = job.priority.to_string();
    let res = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{} \"$@\"", job.cmd))
        .arg("rvs-vrrp-notify")
        .args(["INSTANCE", &job.name, job.state, &prio])
        .stdin(Stdio::null())
        .status();
    match res {
        Ok(s) if s.success() => {
            log::info!("vrrp {}: notify {} ran", job.name, job.state)
        }
        Ok(s) => log::error!(
            "vrrp {}: notify command {:?} for {} failed: {s}",
            job.name,
            job.cmd,
            job.state
        ),
        Err(e) => log::error!(
            "vrrp {}: cannot run notify command {:?}: {e}",
            job.name,
            job.cmd
        ),
    }
}
