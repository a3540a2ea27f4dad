//! The `/metrics` HTTP server: one std thread, one connection at a time.
//!
//! A scrape every few seconds from one or two Prometheus servers needs no
//! async runtime, and a single thread cannot compete with the workers for
//! CPU (it inherits the main lcore's affinity). Every connection gets one
//! request and `Connection: close`; the request head is bounded in size and
//! in time, so a slow or hostile client holds the thread for at most
//! [`READ_DEADLINE`] and can never make it panic or allocate without bound.
//!
//! The listener is non-blocking and the thread sleeps [`ACCEPT_POLL`]
//! between empty accepts, so stopping it is setting a flag and joining,
//! with no self-connect trick and no signal.
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;

use super::{MetricsSources, RvsCollector};

/// The largest request head read; anything longer is answered 431.
pub const MAX_REQUEST: usize = 8 * 1024;
/// How long a client has to send its whole request head.
pub const READ_DEADLINE: Duration = Duration::from_secs(2);
/// How long writing the answer may block on a client that does not read.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// The accept loop's sleep when no connection waits: the longest a stop waits.
pub const ACCEPT_POLL: Duration = Duration::from_millis(50);

pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A bound, not yet serving, listener. rvsd binds before it starts the
/// workers, so a taken address fails start-up with a clear message instead
/// of leaving a running daemon without metrics.
#[derive(Debug)]
pub struct MetricsListener {
    listener: TcpListener,
}

impl MetricsListener {
    pub fn bind(addr: SocketAddr) -> io::Result<MetricsListener> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(MetricsListener { listener })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Starts the serving thread.
    pub fn serve(self, sources: MetricsSources) -> io::Result<MetricsServer> {
        let addr = self.listener.local_addr()?;
        let mut registry = Registry::default();
        registry.register_collector(Box::new(RvsCollector::new(sources)));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let listener = self.listener;
        let thread = std::thread::Builder::new()
            .name("rvs-metrics".into())
            .spawn(move || accept_loop(&listener, &registry, &flag))?;
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }
}

/// The running server; dropping it stops it too.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` and serves `sources` at once.
    pub fn start(addr: SocketAddr, sources: MetricsSources) -> io::Result<MetricsServer> {
        MetricsListener::bind(addr)?.serve(sources)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, finishes the connection in hand and joins the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("the metrics thread panicked");
            }
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(listener: &TcpListener, registry: &Registry, stop: &AtomicBool) {
    let mut last_warning: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Err(e) = serve_connection(stream, registry) {
                    log::debug!("metrics: connection from {peer}: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // Out of file descriptors and the like: say so once a
                // minute, not once per poll.
                if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    log::warn!("metrics: accept failed: {e}");
                    last_warning = Some(Instant::now());
                }
                std::thread::sleep(ACCEPT_POLL);
            }
        }
    }
}

/// What the head of a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// GET or HEAD /metrics.
    Metrics { head: bool, openmetrics: bool },
    /// An answer without a body of metrics: (status, reason).
    Refuse(u16, &'static str),
}

fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2))
}

/// Parses a request head (request line and headers). Never panics: every
/// malformed input is a 4xx.
pub fn parse_request(head: &[u8]) -> Request {
    let Ok(text) = std::str::from_utf8(head) else {
        return Request::Refuse(400, "Bad Request");
    };
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let mut first = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (first.next(), first.next(), first.next(), first.next())
    else {
        return Request::Refuse(400, "Bad Request");
    };
    if !version.starts_with("HTTP/1.") || target.is_empty() {
        return Request::Refuse(400, "Bad Request");
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        m if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => {
            return Request::Refuse(405, "Method Not Allowed")
        }
        _ => return Request::Refuse(400, "Bad Request"),
    };
    let path = target.split(['?', '#']).next().unwrap_or("");
    if path != "/metrics" {
        return Request::Refuse(404, "Not Found");
    }
    let mut openmetrics = false;
    for line in lines {
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Request::Refuse(400, "Bad Request");
        };
        if name.trim().eq_ignore_ascii_case("accept") {
            openmetrics |= accepts_openmetrics(value);
        }
    }
    Request::Metrics {
        head: head_only,
        openmetrics,
    }
}

/// Whether an Accept header lists OpenMetrics with a non-zero quality.
/// Prometheus asks for it first; curl and promtool do not ask at all.
fn accepts_openmetrics(accept: &str) -> bool {
    accept.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        media.eq_ignore_ascii_case("application/openmetrics-text")
            && !parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            })
    })
}

/// The OpenMetrics exposition of everything registered.
pub fn render_openmetrics(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::with_capacity(16 * 1024);
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

/// The classic text format (0.0.4) of an OpenMetrics exposition.
///
/// The two differ, for what rvs writes (counters, gauges and one info
/// metric; no histograms, exemplars, `_created` samples or units), only in
/// their metadata: OpenMetrics names a counter family without its `_total`
/// suffix and an info family without `_info`, has an `info` type, `# UNIT`
/// lines and a closing `# EOF`. Samples are the same bytes in both.
pub fn openmetrics_to_text(om: &str) -> String {
    let mut types: HashMap<&str, &str> = HashMap::new();
    for line in om.lines() {
        if let Some((name, kind)) = line.strip_prefix("# TYPE ").and_then(|r| r.split_once(' ')) {
            types.insert(name, kind);
        }
    }
    let renamed = |name: &str| -> String {
        match types.get(name).copied() {
            Some("counter") if !name.ends_with("_total") => format!("{name}_total"),
            Some("info") => format!("{name}_info"),
            _ => name.to_owned(),
        }
    };
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.push_str(&format!("# HELP {} {help}\n", renamed(name)));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let kind = match kind {
                "info" => "gauge",
                "unknown" => "untyped",
                k => k,
            };
            out.push_str(&format!("# TYPE {} {kind}\n", renamed(name)));
        } else if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The whole HTTP response to a request.
pub fn response(req: &Request, registry: &Registry) -> Vec<u8> {
    let (status, reason, content_type, body, head_only) = match *req {
        Request::Metrics { head, openmetrics } => match render_openmetrics(registry) {
            Ok(om) if openmetrics => (200, "OK", CONTENT_TYPE_OPENMETRICS, om, head),
            Ok(om) => (200, "OK", CONTENT_TYPE_TEXT, openmetrics_to_text(&om), head),
            Err(_) => (
                500,
                "Internal Server Error",
                "text/plain; charset=utf-8",
                "cannot encode the metrics\n".to_owned(),
                head,
            ),
        },
        Request::Refuse(status, reason) => {
            let body = if status == 404 {
                "not found: rvs serves its metrics at /metrics\n".to_owned()
            } else {
                format!("{status} {reason}\n")
            };
            (status, reason, "text/plain; charset=utf-8", body, false)
        }
    };
    let allow = if status == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// Reads a request head within [`READ_DEADLINE`] and [`MAX_REQUEST`] bytes.
/// Ok(None): the client left without sending anything.
fn read_head(stream: &mut TcpStream) -> io::Result<Option<Result<Vec<u8>, Request>>> {
    let deadline = Instant::now() + READ_DEADLINE;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Some(Err(Request::Refuse(408, "Request Timeout"))));
        }
        stream.set_read_timeout(Some(left))?;
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(Some(Err(Request::Refuse(408, "Request Timeout"))));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok((!buf.is_empty()).then_some(Err(Request::Refuse(400, "Bad Request"))));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = head_end(&buf) {
            buf.truncate(end);
            return Ok(Some(Ok(buf)));
        }
        if buf.len() >= MAX_REQUEST {
            return Ok(Some(Err(Request::Refuse(
                431,
                "Request Header Fields Too Large",
            ))));
        }
    }
}

fn serve_connection(mut stream: TcpStream, registry: &Registry) -> io::Result<()> {
    // Accepted sockets do not inherit O_NONBLOCK on Linux, but say so
    // rather than rely on it: the timeouts below need a blocking socket.
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let req = match read_head(&mut stream)? {
        None => return Ok(()),
        Some(Ok(head)) => parse_request(&head),
        Some(Err(refusal)) => refusal,
    };
    if let Request::Refuse(status, _) = req {
        log::debug!("metrics: answering {status}");
    }
    stream.write_all(&response(&req, registry))?;
    stream.flush()?;
    // Half-close so the client sees the end of the answer before the socket
    // goes away, even if it sent more than we read.
    let _ = stream.shutdown(Shutdown::Write);
    Ok(())
}
