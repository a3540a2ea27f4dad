//! The LVS part of a keepalived configuration, as read: each setting with
//! the place it came from, keepalived's inheritance (checker ← real server
//! ← virtual server) not yet applied.
use std::net::IpAddr;

use super::lexer::Loc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

/// One address (or fwmark) a virtual server stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vip {
    Addr(IpAddr, u16),
    Fwmark { mark: u32, ipv6: Option<bool> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Method {
    /// ipvsadm's switch: -m, -g, -i or --fullnat.
    pub switch: &'static str,
    /// --tun-type and friends for TUN.
    pub extra: Vec<String>,
}

/// The settings a checker inherits from its real server and virtual server.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timing {
    pub delay_loop: Option<f64>,
    pub connect_timeout: Option<f64>,
    pub retry: Option<u32>,
    pub delay_before_retry: Option<f64>,
    pub alpha: Option<bool>,
}

impl Timing {
    /// `self` where set, else `outer`.
    pub fn or(&self, outer: &Timing) -> Timing {
        Timing {
            delay_loop: self.delay_loop.or(outer.delay_loop),
            connect_timeout: self.connect_timeout.or(outer.connect_timeout),
            retry: self.retry.or(outer.retry),
            delay_before_retry: self.delay_before_retry.or(outer.delay_before_retry),
            alpha: self.alpha.or(outer.alpha),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Url {
    pub loc: Loc,
    pub path: String,
    pub digest: Option<String>,
    /// Inclusive ranges; empty: keepalived's default 200-299.
    pub status: Vec<(u16, u16)>,
    pub virtualhost: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckerKind {
    Tcp,
    Http {
        tls: bool,
        /// All must pass.
        urls: Vec<Url>,
        virtualhost: Option<String>,
    },
    Misc {
        path: String,
        timeout: Option<f64>,
    },
    Udp {
        payload: Vec<u8>,
        require_reply: bool,
    },
    Ping,
    Dns {
        name: String,
        qtype: String,
    },
    Smtp {
        helo: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Checker {
    pub loc: Loc,
    pub kind: CheckerKind,
    pub connect_port: Option<u16>,
    pub timing: Timing,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RealServer {
    pub loc: Loc,
    pub addr: IpAddr,
    pub port: Option<u16>,
    pub weight: Option<i64>,
    pub method: Option<Method>,
    pub inhibit: Option<bool>,
    pub virtualhost: Option<String>,
    pub uthreshold: Option<u32>,
    pub lthreshold: Option<u32>,
    pub timing: Timing,
    pub checkers: Vec<Checker>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sorry {
    pub loc: Loc,
    pub addr: IpAddr,
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VirtualServer {
    pub loc: Loc,
    /// The addresses it stands for: one, or a group's expansion.
    pub vips: Vec<Vip>,
    pub sched: Option<String>,
    pub sched_flags: Vec<String>,
    pub ops: bool,
    pub method: Option<Method>,
    pub persistence: Option<u32>,
    pub granularity: Option<String>,
    pub pe: Option<String>,
    pub protocol: Option<Proto>,
    pub ip_family_v6: Option<bool>,
    pub sorry: Option<Sorry>,
    pub sorry_method: Option<Method>,
    pub quorum: Option<(Loc, u32)>,
    pub hysteresis: Option<(Loc, u32)>,
    pub inhibit: Option<bool>,
    pub virtualhost: Option<String>,
    pub timing: Timing,
    pub reals: Vec<RealServer>,
}
