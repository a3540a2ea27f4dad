//! checktype=negotiate, service=http/https: one GET, judged by its status
//! line and, optionally, a substring of its body.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::net::{arm, connect_tcp, Deadline};
use super::tls::{self, TlsStream};
use super::{md5, Codes, Probe, Verdict};

/// How much body we read looking for `receive`: health pages are small,
/// and a server streaming a huge page must not hold the check.
const MAX_BODY: usize = 64 * 1024;
/// A header block past this is not a health page; stop rather than buffer.
const MAX_HEAD: usize = 16 * 1024;
/// A page whose digest is checked is read whole, up to this much.
const MAX_DIGEST_BODY: usize = 4 * 1024 * 1024;

pub(super) struct Request<'a> {
    pub path: &'a str,
    pub status: Option<&'a Codes>,
    pub receive: Option<&'a str>,
    pub host: Option<&'a str>,
    pub tls: bool,
    pub digest: Option<&'a str>,
}

/// Plain TCP or TLS: the exchange needs the TCP socket underneath to point
/// its timeouts at the deadline.
trait Transport: Read + Write {
    fn tcp(&self) -> &TcpStream;
}

impl Transport for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Transport for TlsStream {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

pub(super) fn check(probe: &Probe, deadline: &Deadline, req: &Request<'_>) -> Verdict {
    let host = match req.host {
        Some(h) => h.to_string(),
        None => default_host(probe.target, req.tls),
    };
    let wire = request_bytes(req.path, &host);
    let outcome = connect_tcp(probe.target, probe.source, deadline).and_then(|tcp| {
        if req.tls {
            let mut stream = tls::connect(tcp, &host, probe.target.ip(), deadline)?;
            exchange(&mut stream, deadline, &wire, req)
        } else {
            let mut stream = tcp;
            exchange(&mut stream, deadline, &wire, req)
        }
    });
    match outcome {
        Ok(()) => Verdict::Up,
        Err(why) => Verdict::Down(why),
    }
}

/// The target address, bracketed for IPv6, with its port unless it is the
/// scheme's default (RFC 9110 §7.2).
fn default_host(target: SocketAddr, tls: bool) -> String {
    let default_port = if tls { 443 } else { 80 };
    match (target, target.port() == default_port) {
        (SocketAddr::V4(a), true) => a.ip().to_string(),
        (SocketAddr::V6(a), true) => format!("[{}]", a.ip()),
        (addr, false) => addr.to_string(),
    }
}

/// HTTP/1.0 so that no server answers chunked: the body we search for
/// `receive` is then the body as sent, not chunk framing around it. Host is
/// still sent, which every HTTP/1.1 server honours on a 1.0 request.
fn request_bytes(path: &str, host: &str) -> Vec<u8> {
    let slash = if path.starts_with('/') { "" } else { "/" };
    format!(
        "GET {slash}{path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: rvs-health-check\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

fn exchange<S: Transport>(
    stream: &mut S,
    deadline: &Deadline,
    wire: &[u8],
    req: &Request<'_>,
) -> Result<(), String> {
    arm(stream.tcp(), deadline)
        .and_then(|()| stream.write_all(wire))
        .and_then(|()| stream.flush())
        .map_err(|e| deadline.reason("http: send", &e))?;

    let mut buf = Vec::with_capacity(4096);
    let mut status_ok = false;
    loop {
        let eof =
            read_some(stream, deadline, &mut buf).map_err(|e| deadline.reason("http: read", &e))?;
        if !status_ok {
            match status_line(&buf, eof)? {
                None => continue,
                Some(code) => check_status(code, req.status)?,
            }
            status_ok = true;
        }
        if let Some(want) = req.digest {
            // The digest is of the whole body: read to its end first.
            if !eof {
                if buf.len() > MAX_HEAD + MAX_DIGEST_BODY {
                    return Err("http: body too long for a digest".into());
                }
                continue;
            }
            let start = body_start(&buf).ok_or("http: connection closed inside the header")?;
            let body = &buf[start..];
            if let Some(r) = req.receive {
                if !contains(&body[..body.len().min(MAX_BODY)], r.as_bytes()) {
                    return Err(format!("http: body does not contain {}", quoted(r)));
                }
            }
            let got = md5::hex(body);
            if !got.eq_ignore_ascii_case(want) {
                return Err(format!("http: body digest {got}, expected {want}"));
            }
            return Ok(());
        }
        let Some(want) = req.receive else {
            drain(stream, deadline, &mut buf, eof);
            return Ok(());
        };
        match body_start(&buf) {
            Some(start) => {
                let body = &buf[start..buf.len().min(start + MAX_BODY)];
                if contains(body, want.as_bytes()) {
                    drain(stream, deadline, &mut buf, eof);
                    return Ok(());
                }
                if eof || buf.len() - start >= MAX_BODY {
                    return Err(format!("http: body does not contain {}", quoted(want)));
                }
            }
            None if buf.len() > MAX_HEAD => return Err("http: response header too long".into()),
            None if eof => return Err("http: connection closed inside the header".into()),
            None => {}
        }
    }
}

/// Reads the rest of an answer already judged Up, so we close a drained
/// socket: closing on unread data makes the kernel send RST, which a real
/// server logs as an error on every check. Bounded like everything else;
/// the verdict no longer depends on it.
fn drain<S: Transport>(stream: &mut S, deadline: &Deadline, buf: &mut Vec<u8>, mut eof: bool) {
    while !eof && buf.len() < MAX_HEAD + MAX_BODY {
        match read_some(stream, deadline, buf) {
            Ok(done) => eof = done,
            Err(_) => return,
        }
    }
}

/// Appends what one read brings; true at end of stream. A TLS peer that
/// closes without close_notify (most HTTP servers) ends the stream too.
fn read_some<S: Transport>(
    stream: &mut S,
    deadline: &Deadline,
    buf: &mut Vec<u8>,
) -> io::Result<bool> {
    let mut chunk = [0u8; 8192];
    loop {
        arm(stream.tcp(), deadline)?;
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(false);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(true),
            Err(e) => return Err(e),
        }
    }
}

/// The status code, once the status line is complete (or the stream ended
/// after part of one); `None` while more bytes are needed.
fn status_line(buf: &[u8], eof: bool) -> Result<Option<u16>, String> {
    let line = match buf.iter().position(|&b| b == b'\n') {
        Some(end) => &buf[..end],
        None if buf.is_empty() && eof => {
            return Err("http: connection closed before status line".into())
        }
        None if eof || buf.len() > MAX_HEAD => buf,
        None => return Ok(None),
    };
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\r');
    let mut parts = text.split_ascii_whitespace();
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    match code.parse::<u16>() {
        Ok(c) if version.starts_with("HTTP/") && code.len() == 3 => Ok(Some(c)),
        _ => Err(format!("http: malformed status line {}", quoted(text))),
    }
}

fn check_status(code: u16, expected: Option<&Codes>) -> Result<(), String> {
    match expected {
        Some(want) if want.contains(code) => Ok(()),
        Some(want) => Err(format!("http: status {code}, expected {want}")),
        None if (200..400).contains(&code) => Ok(()),
        None => Err(format!("http: status {code}, expected 2xx or 3xx")),
    }
}

/// Where the body begins: after the blank line, tolerating bare-LF servers.
fn body_start(buf: &[u8]) -> Option<usize> {
    let crlf = find(buf, b"\r\n\r\n").map(|i| i + 4);
    let lf = find(buf, b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

/// Quoted and cut short, so a log line stays one short line whatever the
/// server or the config put in it.
fn quoted(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}...", &s[..cut]),
        None => format!("{s:?}"),
    }
}

#[cfg(test)]
mod tests;
