//! The one deadline a check shares, socket set-up common to the probes, and
//! short log-friendly wording of I/O errors.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

/// When the whole check must be over. Every blocking call gets only what
/// is left of it, so connect + send + read together stay within `timeout`.
pub(super) struct Deadline {
    at: Instant,
    timeout: Duration,
}

impl Deadline {
    pub(super) fn after(timeout: Duration) -> Self {
        Deadline {
            at: Instant::now() + timeout,
            timeout,
        }
    }

    /// What is left, or `Err(TimedOut)` once nothing is: socket timeouts
    /// reject a zero duration, and a spent deadline is a timeout anyway.
    pub(super) fn remaining(&self) -> io::Result<Duration> {
        let left = self.at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::ErrorKind::TimedOut.into())
        } else {
            Ok(left)
        }
    }

    /// "timeout after 1s" for the transition log.
    pub(super) fn timeout_reason(&self) -> String {
        format!("timeout after {:?}", self.timeout)
    }

    /// `stage: why`, where a socket timeout reads as the check's timeout
    /// rather than EAGAIN's "resource temporarily unavailable".
    pub(super) fn reason(&self, stage: &str, e: &io::Error) -> String {
        if is_timeout(e) {
            format!("{stage}: {}", self.timeout_reason())
        } else {
            format!("{stage}: {}", describe(e))
        }
    }
}

/// A read/connect that ran out of its socket timeout: EAGAIN from
/// SO_RCVTIMEO, ETIMEDOUT from connect_timeout or our own Deadline.
pub(super) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// strerror without std's " (os error 111)" suffix and capital, so a log
/// line reads "connect: connection refused". Other errors (rustls's) are
/// already worded for a log line.
pub(super) fn describe(e: &io::Error) -> String {
    let Some(code) = e.raw_os_error() else {
        return e.to_string();
    };
    let full = io::Error::from_raw_os_error(code).to_string();
    let text = full.rfind(" (os error ").map_or(&full[..], |i| &full[..i]);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("os error {code}"),
    }
}

/// A socket of `ty` for `target`'s family, bound to `source` when given so
/// the check leaves from the health-check address routed through rvs.
pub(super) fn socket_for(
    target: SocketAddr,
    source: Option<IpAddr>,
    ty: Type,
    proto: Protocol,
) -> Result<Socket, String> {
    let sock = Socket::new(Domain::for_address(target), ty, Some(proto))
        .map_err(|e| format!("socket: {}", describe(&e)))?;
    if let Some(src) = source {
        sock.bind(&SocketAddr::new(src, 0).into())
            .map_err(|e| format!("bind {src}: {}", describe(&e)))?;
    }
    Ok(sock)
}

/// TCP connect from `source` to `target` within the deadline.
pub(super) fn connect_tcp(
    target: SocketAddr,
    source: Option<IpAddr>,
    deadline: &Deadline,
) -> Result<TcpStream, String> {
    let sock = socket_for(target, source, Type::STREAM, Protocol::TCP)?;
    deadline
        .remaining()
        .and_then(|left| sock.connect_timeout(&target.into(), left))
        .map_err(|e| deadline.reason("connect", &e))?;
    Ok(sock.into())
}

/// Points both socket timeouts at what is left of the deadline, before each
/// blocking call (a TLS read may write, and vice versa).
pub(super) fn arm(stream: &TcpStream, deadline: &Deadline) -> io::Result<()> {
    let left = deadline.remaining()?;
    stream.set_read_timeout(Some(left))?;
    stream.set_write_timeout(Some(left))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_drops_os_error_suffix_and_capital() {
        let e = io::Error::from_raw_os_error(111);
        assert_eq!(describe(&e), "connection refused");
    }

    #[test]
    fn spent_deadline_is_a_timeout() {
        let d = Deadline::after(Duration::ZERO);
        let e = d.remaining().unwrap_err();
        assert!(is_timeout(&e));
        assert_eq!(d.reason("connect", &e), "connect: timeout after 0ns");
    }
}
