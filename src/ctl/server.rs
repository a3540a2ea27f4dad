//! The management socket: a Unix stream socket served by one control
//! thread. One request per connection; a malformed, oversized or slow
//! request gets an error reply (or is dropped) and never affects rvsd.
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::engine::Engine;
use super::frame::{read_frame, write_frame, Reply, Request, PROTOCOL_VERSION};

pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Binds the socket: mode 0600, owned by whoever runs rvsd. A stale socket
/// file (nobody listening) is replaced; a live one is an error, so two
/// rvsd cannot fight over one path.
fn bind(path: &Path) -> io::Result<UnixListener> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{} is in use by another rvsd", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// "uid U pid P" of the peer, for the log: who changed what.
fn peer(s: &UnixStream) -> String {
    match crate::dpdk::sys::peer_credentials(s.as_fd()) {
        Some((pid, uid, _)) => format!("uid {uid} pid {pid}"),
        None => "unknown peer".to_owned(),
    }
}

fn serve_one(engine: &Mutex<Engine>, mut s: UnixStream) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
    let reply = match read_frame::<Request>(&mut s) {
        Ok(req) if req.version != PROTOCOL_VERSION => Reply::fail(
            2,
            format!(
                "rvsd speaks management protocol {PROTOCOL_VERSION}, the client {}\n",
                req.version
            ),
        ),
        Ok(req) => {
            let mut e = engine.lock().unwrap_or_else(|p| p.into_inner());
            let r = e.execute(&req.prog, &req.args, req.input.as_deref());
            if r.code == 0 && changes(&req.args) {
                log::info!(
                    "management: {}: {} {}",
                    peer(&s),
                    req.prog,
                    req.args.join(" ")
                );
            }
            r
        }
        Err(e) => {
            log::warn!("management: {}: bad request: {e}", peer(&s));
            Reply::fail(2, format!("rvsd: bad request: {e}\n"))
        }
    };
    let _ = write_frame(&mut s, &reply);
}

/// Whether a command line changes something (worth a log line).
fn changes(args: &[String]) -> bool {
    args.first().is_some_and(|a| {
        !(a.starts_with("-L")
            || a.starts_with("-l")
            || a == "--list"
            || a.starts_with("-S")
            || a == "--save"
            || a == "-h"
            || a == "--help")
    })
}

impl Server {
    pub fn start(path: &Path, engine: Arc<Mutex<Engine>>) -> io::Result<Server> {
        let listener = bind(path)?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rvs-ctl".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((s, _)) => {
                            let _ = s.set_nonblocking(false);
                            serve_one(&engine, s);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(20))
                        }
                        Err(e) => {
                            log::warn!("management socket: {e}");
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
            })?;
        Ok(Server {
            path: path.to_owned(),
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}
