//! One check of one real server, blocking, bounded by its timeout.
//!
//! The scheduler calls [`Probe::run`] from a control thread; everything
//! here is plain blocking std/socket2 I/O whose every wait is cut to what is
//! left of the one deadline, so a dead or hung server costs at most about
//! `timeout`.

mod dns;
mod external;
mod http;
mod icmp;
pub mod md5;
pub use dns::{type_code as dns_type_code, type_name as dns_type_name};
mod net;
mod smtp;
mod tcp;
mod tls;
mod udp;

use std::net::{IpAddr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

/// What a check does (ldirectord: checktype connect/negotiate/ping/external, service http/https/...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// TCP connect (ldirectord checktype=connect).
    Tcp,
    /// HTTP GET (checktype=negotiate, service=http). `path` is ldirectord's request (a leading '/' added if missing),
    /// `status` the expected status code (None: any 2xx or 3xx), `receive` an optional substring the body must contain,
    /// `host` the Host header (None: the target address, with port when not the scheme's default 80/443).
    /// `digest`: the body's MD5 in lowercase hex (keepalived's HTTP_GET digest).
    Http {
        path: String,
        status: Option<Codes>,
        receive: Option<String>,
        host: Option<String>,
        tls: bool,
        digest: Option<String>,
        /// More urls, checked one after the other within the timeout; the
        /// server is up when every one passes (keepalived's several url
        /// blocks).
        also: Vec<Url>,
    },
    /// UDP: send `payload`; Up when a reply arrives, or — when `expect_reply` is false — when no ICMP port unreachable arrives before the timeout.
    Udp {
        payload: Vec<u8>,
        expect_reply: bool,
    },
    /// A DNS query (service=dns): `name` of type `qtype`, class IN; Up on an
    /// answer with RCODE 0 (keepalived's DNS_CHECK).
    Dns { name: String, qtype: u16 },
    /// SMTP (service=smtp): greeting 220, `HELO helo` 250, QUIT answered
    /// (keepalived's SMTP_CHECK).
    Smtp { helo: String },
    /// ICMP / ICMPv6 echo (checktype=ping).
    Ping,
    /// An external command (checktype=external): run via `sh -c` with the arguments ldirectord passes
    /// (virtual IP, virtual port, real IP, real port) as $1..$4, plus env RVS_CHECK_SOURCE (the source address, if any). Exit 0 = up.
    External { command: String },
}

/// One more url of an HTTP check, with its own expectations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Url {
    pub path: String,
    pub status: Option<Codes>,
    pub receive: Option<String>,
    pub host: Option<String>,
    pub digest: Option<String>,
}

/// HTTP status codes a check accepts: single codes and inclusive ranges
/// (keepalived's `status_code 200-299 301`), written `200-299,301`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codes(Vec<(u16, u16)>);

impl Codes {
    pub fn one(code: u16) -> Codes {
        Codes(vec![(code, code)])
    }

    pub fn contains(&self, code: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&code))
    }

    /// `200`, `200-299,301`: codes from 100 to 599.
    pub fn parse(s: &str) -> Option<Codes> {
        let code = |c: &str| c.parse::<u16>().ok().filter(|c| (100..=599).contains(c));
        let mut v = Vec::new();
        for part in s.split(',') {
            v.push(match part.split_once('-') {
                Some((lo, hi)) => code(lo).zip(code(hi)).filter(|(l, h)| l <= h)?,
                None => code(part).map(|c| (c, c))?,
            });
        }
        Some(Codes(v))
    }
}

impl std::fmt::Display for Codes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, &(lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct Probe {
    pub kind: CheckKind,
    /// The real server's address and the port to check (ldirectord's checkport, or the real port).
    pub target: SocketAddr,
    /// The virtual service (for External's arguments); port 0 for fwmark services.
    pub virtual_addr: SocketAddr,
    /// Bind the probe's socket to this source address (the health-check address that routes through rvs's dataplane), if given.
    pub source: Option<IpAddr>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Up,
    /// Why it failed, one short line for the transition log, e.g. "connect: connection refused", "http: status 503, expected 200", "timeout after 1s".
    Down(String),
}

impl Verdict {
    pub fn is_up(&self) -> bool {
        matches!(self, Verdict::Up)
    }
}

impl Probe {
    /// Runs the check once. Never panics; never blocks longer than about `timeout` (+ a little slack); the whole check (connect, send, read) shares the one deadline.
    pub fn run(&self) -> Verdict {
        // A bug in a probe (or in rustls) must cost one Down, not the
        // health-check thread that serves every other real server.
        match catch_unwind(AssertUnwindSafe(|| self.dispatch())) {
            Ok(v) => v,
            Err(_) => Verdict::Down("internal error: probe panicked".into()),
        }
    }

    fn dispatch(&self) -> Verdict {
        let deadline = net::Deadline::after(self.timeout);
        match &self.kind {
            CheckKind::Tcp => tcp::check(self, &deadline),
            CheckKind::Http {
                path,
                status,
                receive,
                host,
                tls,
                digest,
                also,
            } => {
                let first = Url {
                    path: path.clone(),
                    status: status.clone(),
                    receive: receive.clone(),
                    host: host.clone(),
                    digest: digest.clone(),
                };
                for u in std::iter::once(&first).chain(also) {
                    let v = http::check(
                        self,
                        &deadline,
                        &http::Request {
                            path: &u.path,
                            status: u.status.as_ref(),
                            receive: u.receive.as_deref(),
                            host: u.host.as_deref(),
                            tls: *tls,
                            digest: u.digest.as_deref(),
                        },
                    );
                    if !v.is_up() || also.is_empty() {
                        return match v {
                            Verdict::Down(why) if !also.is_empty() => {
                                Verdict::Down(format!("{}: {why}", u.path))
                            }
                            v => v,
                        };
                    }
                }
                Verdict::Up
            }
            CheckKind::Udp {
                payload,
                expect_reply,
            } => udp::check(self, &deadline, payload, *expect_reply),
            CheckKind::Dns { name, qtype } => dns::check(self, &deadline, name, *qtype),
            CheckKind::Smtp { helo } => smtp::check(self, &deadline, helo),
            CheckKind::Ping => icmp::check(self, &deadline),
            CheckKind::External { command } => external::check(self, &deadline, command),
        }
    }
}

#[cfg(test)]
mod test_util;
