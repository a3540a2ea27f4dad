//! The management socket: a Unix stream socket. One request per
//! connection, each client on a thread of its own, so a client that is slow
//! to send, sends half a frame or never reads its reply holds up nobody:
//! the engine is locked only to execute a whole request.
//!
//! A request must arrive whole within [`REQUEST_DEADLINE`]; at most
//! [`MAX_CLIENTS`] are served at once, and a client past the cap takes the
//! place of the one that has waited longest without finishing its request
//! (the likeliest to be stuck), so an `ipvsadm -Ln` is always answered. A
//! malformed, oversized or late request gets an error reply (or is dropped)
//! and never affects rvsd.
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};

use super::engine::{ConnSource, Engine};
use super::frame::{read_frame, write_frame, Reply, Request, PROTOCOL_VERSION};
use super::grammar::ListOptions;
use super::{format, names};

/// How long a client has to send its whole request.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// How long a reply may take to be read: a large `-Lnc` to a pipe that
/// drains slowly still gets through; a client that never reads is let go.
const REPLY_DEADLINE: Duration = Duration::from_secs(60);
/// Clients served at once (threads); more evict the longest-waiting one.
pub const MAX_CLIENTS: usize = 256;

pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// A client still sending its request: when it connected, and a handle to
/// shut its socket if a newer client needs its place.
struct Waiting {
    id: u64,
    since: Instant,
    socket: UnixStream,
}

/// The clients being served.
#[derive(Default)]
struct Clients {
    active: AtomicUsize,
    waiting: Mutex<Vec<Waiting>>,
}

impl Clients {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Waiting>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes room for one more: shuts the socket of the client that has
    /// waited longest for its own request to arrive. False when every
    /// client has its request in (they finish on their own).
    fn evict_oldest_waiting(&self) -> bool {
        let mut w = self.lock();
        let Some(i) = (0..w.len()).min_by_key(|&i| w[i].since) else {
            return false;
        };
        let old = w.swap_remove(i);
        let _ = old.socket.shutdown(std::net::Shutdown::Both);
        true
    }

    fn done_waiting(&self, id: u64) {
        self.lock().retain(|w| w.id != id);
    }
}

/// A reader that gives up at `deadline`, however the bytes trickle in.
struct Deadline<'a> {
    s: &'a UnixStream,
    deadline: Instant,
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the request did not arrive whole within {} s",
                        REQUEST_DEADLINE.as_secs()
                    ),
                ));
            }
            self.s.set_read_timeout(Some(left))?;
            let mut s = self.s;
            match s.read(buf) {
                // SO_RCVTIMEO expiring reads as EAGAIN: look at the clock.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                r => return r,
            }
        }
    }
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

/// "uid U pid P" of the peer, for the log: who changed what. As the
/// kernel recorded them at connect time (SO_PEERCRED).
fn peer(s: &UnixStream) -> String {
    match getsockopt(s, PeerCredentials) {
        Ok(c) => format!("uid {} pid {}", c.uid(), c.pid()),
        Err(_) => "unknown peer".to_owned(),
    }
}

fn serve_one(engine: &Mutex<Engine>, clients: &Clients, id: u64, mut s: UnixStream) {
    let _ = s.set_write_timeout(Some(REPLY_DEADLINE));
    let request = read_frame::<Request>(&mut Deadline {
        s: &s,
        deadline: Instant::now() + REQUEST_DEADLINE,
    });
    clients.done_waiting(id);
    let reply = match request {
        Ok(req) if req.version != PROTOCOL_VERSION => Reply::fail(
            2,
            format!(
                "rvsd speaks management protocol {PROTOCOL_VERSION}, the client {}\n",
                req.version
            ),
        ),
        Ok(req) => {
            let listing = {
                let e = engine.lock().unwrap_or_else(|p| p.into_inner());
                e.conn_listing(&req.prog, &req.args)
            };
            if let Some((source, opts)) = listing {
                stream_conns(&mut s, &source, &opts);
                return;
            }
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

/// Bytes of listing per frame.
const PART_BYTES: usize = 256 << 10;

/// `-c`: the listing a chunk of conns at a time, as the workers hand them
/// over, without the engine's lock and with no bound on its size. Like
/// reading /proc/net/ip_vs_conn, a listing of tables that change as it is
/// read can miss or repeat a conn that moves meanwhile.
fn stream_conns(s: &mut UnixStream, source: &ConnSource, opts: &ListOptions) {
    let mut text = format::conns_title(opts);
    let mut gone = false;
    let result = source(&mut |rows| {
        text.push_str(&format::conn_lines(&rows, opts, &names::System));
        if text.len() >= PART_BYTES {
            gone = write_frame(s, &Reply::part(std::mem::take(&mut text))).is_err();
        }
        !gone
    });
    if gone {
        return;
    }
    let last = match result {
        Ok(()) => Reply::ok(text),
        Err(e) => Reply {
            stderr: format!("rvsd: {e}; the listing is incomplete\n"),
            code: 1,
            ..Reply::ok(text)
        },
    };
    let _ = write_frame(s, &last);
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
        let clients = Arc::new(Clients::default());
        let thread = std::thread::Builder::new()
            .name("rvs-ctl".into())
            .spawn(move || {
                let mut next_id = 0u64;
                while !stop2.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((s, _)) => {
                            next_id += 1;
                            accept(&engine, &clients, next_id, s);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5))
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

/// Starts serving one client on a thread of its own, making room first
/// when [`MAX_CLIENTS`] are being served.
fn accept(engine: &Arc<Mutex<Engine>>, clients: &Arc<Clients>, id: u64, s: UnixStream) {
    let _ = s.set_nonblocking(false);
    if clients.active.load(Ordering::Acquire) >= MAX_CLIENTS && !clients.evict_oldest_waiting() {
        let _ = s.set_write_timeout(Some(Duration::from_millis(100)));
        let mut s = s;
        let _ = write_frame(
            &mut s,
            &Reply::fail(
                2,
                "rvsd: too many management clients at once; try again\n".into(),
            ),
        );
        return;
    }
    let Ok(handle) = s.try_clone() else {
        return;
    };
    clients.lock().push(Waiting {
        id,
        since: Instant::now(),
        socket: handle,
    });
    clients.active.fetch_add(1, Ordering::AcqRel);
    let (engine, clients2) = (engine.clone(), clients.clone());
    let spawned = std::thread::Builder::new()
        .name("rvs-ctl-client".into())
        .spawn(move || {
            serve_one(&engine, &clients2, id, s);
            clients2.active.fetch_sub(1, Ordering::AcqRel);
        });
    if let Err(e) = spawned {
        // The closure (and the socket) are gone with the error: the client
        // sees the connection close.
        log::warn!("management socket: no thread for a client: {e}");
        clients.done_waiting(id);
        clients.active.fetch_sub(1, Ordering::AcqRel);
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

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::ctl::format::ConnRow;
    use crate::ctl::frame::request;
    use crate::ipvs::proto::Timeouts;
    use crate::ipvs::ServiceSet;
    use arc_swap::ArcSwap;

    /// The log names a change's peer by the credentials the kernel took
    /// at connect time: this process's, at the other end of a pair.
    #[test]
    fn a_peer_is_named_by_its_uid_and_pid() {
        use std::os::unix::fs::MetadataExt;
        let Ok((a, _b)) = UnixStream::pair() else {
            panic!("a socket pair");
        };
        // /proc/self belongs to this process's effective uid, which is
        // what SO_PEERCRED reports.
        let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
            panic!("/proc/self");
        };
        let want = format!("uid {uid} pid {}", std::process::id());
        assert_eq!(peer(&a), want);
    }

    fn row(i: u32) -> ConnRow {
        ConnRow {
            proto: "TCP",
            expires_secs: 60,
            state: "ESTABLISHED",
            caddr: IpAddr::from((0x0a00_0000 + i).to_be_bytes()),
            cport: 40000,
            vaddr: "192.0.2.1".parse().unwrap(),
            vport: 80,
            daddr: "198.51.100.1".parse().unwrap(),
            dport: 80,
            laddr: None,
            pe: None,
        }
    }

    /// A server whose conn source hands over `chunks` chunks of `per`
    /// rows, then fails if `fail`.
    fn serve(dir: &Path, chunks: u32, per: u32, fail: bool) -> (Server, PathBuf) {
        let mut e = Engine::new(
            1,
            Arc::new(ArcSwap::from_pointee(ServiceSet::default())),
            Arc::new(ArcSwap::from_pointee(Timeouts::default())),
        );
        e.set_conn_source(Arc::new(
            move |emit: &mut dyn FnMut(Vec<ConnRow>) -> bool| {
                for c in 0..chunks {
                    if !emit((c * per..(c + 1) * per).map(row).collect()) {
                        return Ok(());
                    }
                }
                if fail {
                    return Err("worker 1 did not answer within 2 s".into());
                }
                Ok(())
            },
        ));
        let path = dir.join("rvsd.sock");
        let server = Server::start(&path, Arc::new(Mutex::new(e))).unwrap();
        (server, path)
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rvs-server-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// The listing, the last frame, and the size of the largest part.
    fn list(path: &Path) -> (String, Reply, Vec<usize>) {
        let req = Request {
            version: PROTOCOL_VERSION,
            prog: "ipvsadm".into(),
            args: vec!["-Lnc".into()],
            input: None,
        };
        let (mut out, mut parts) = (String::new(), Vec::new());
        let last = request(path, &req, |r| {
            out.push_str(&r.stdout);
            parts.push(r.stdout.len());
        })
        .unwrap();
        out.push_str(&last.stdout);
        (out, last, parts)
    }

    #[test]
    fn a_connection_listing_comes_in_bounded_parts_whatever_its_size() {
        let dir = scratch("big");
        // 80,000 rows, about 7 MB: parts of about PART_BYTES each, so a
        // table of any size fits (the old single frame stopped at
        // MAX_FRAME, 64 MiB).
        let (_server, path) = serve(&dir, 100, 800, false);
        let (out, last, parts) = list(&path);
        assert_eq!(last.code, 0, "{}", last.stderr);
        assert!(parts.len() >= out.len() / (2 * PART_BYTES), "{parts:?}");
        assert!(
            parts.iter().all(|&n| n < PART_BYTES + (1 << 20)),
            "{parts:?}"
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2 + 80_000);
        assert_eq!(lines[0], "IPVS connection entries");
        assert!(lines[2].starts_with("TCP 01:00  ESTABLISHED 10.0.0.0:40000"));
        assert!(lines[80_001].starts_with("TCP 01:00  ESTABLISHED 10.1.56.127:40000"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_worker_that_does_not_answer_fails_the_listing_instead_of_cutting_it_short() {
        let dir = scratch("fail");
        let (_server, path) = serve(&dir, 2, 10, true);
        let (out, last, _) = list(&path);
        assert_eq!(last.code, 1);
        assert_eq!(
            last.stderr,
            "rvsd: worker 1 did not answer within 2 s; the listing is incomplete\n"
        );
        assert_eq!(out.lines().count(), 2 + 20, "what came is printed");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
