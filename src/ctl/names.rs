//! Names for numbers, as ipvsadm looks them up without `-n`: ports in
//! /etc/services (getservbyport / getservbyname for the service's
//! protocol), addresses from the system's resolver (gethostbyaddr /
//! gethostbyname, so /etc/hosts and DNS as nsswitch.conf says).
//!
//! rvsd does the lookups, on the host rvsadm talks to over a local socket,
//! which is the host ipvsadm would have looked them up on. Like ipvsadm, a
//! listing without `-n` waits for the resolver: `-n` is what scripts use.
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::ipvs::Protocol;

/// What a listing asks when it prints names.
pub trait Names {
    /// getservbyport's s_name for the port under the protocol's name.
    fn port_name(&self, port: u16, proto: Protocol) -> Option<String>;
    /// gethostbyaddr's h_name.
    fn host_name(&self, addr: IpAddr) -> Option<String>;
}

/// The file getservbyport reads under glibc's default nsswitch.
const SERVICES: &str = "/etc/services";

/// The protocol column of /etc/services for an IPVS protocol.
fn proto_word(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

/// /etc/services, parsed: per protocol, port → the first line's name and
/// name or alias → the first line's port, which is what glibc's files
/// backend returns.
#[derive(Debug, Default)]
pub struct Services {
    by_port: HashMap<(u16, &'static str), String>,
    by_name: HashMap<(String, &'static str), u16>,
}

impl Services {
    /// services(5): `name port/protocol [aliases ...] [# comment]`. Lines
    /// that do not parse are skipped, as glibc skips them.
    pub fn parse(text: &str) -> Services {
        let mut s = Services::default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let (Some(name), Some(port_proto)) = (words.next(), words.next()) else {
                continue;
            };
            let Some((port, proto)) = port_proto.split_once('/') else {
                continue;
            };
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            let Some(proto) = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp]
                .into_iter()
                .map(proto_word)
                .find(|w| *w == proto)
            else {
                continue;
            };
            s.by_port
                .entry((port, proto))
                .or_insert_with(|| name.to_owned());
            for n in std::iter::once(name).chain(words) {
                s.by_name.entry((n.to_owned(), proto)).or_insert(port);
            }
        }
        s
    }

    pub fn port_name(&self, port: u16, proto: Protocol) -> Option<String> {
        self.by_port.get(&(port, proto_word(proto))).cloned()
    }

    pub fn port(&self, name: &str, proto: Protocol) -> Option<u16> {
        self.by_name
            .get(&(name.to_owned(), proto_word(proto)))
            .copied()
    }
}

/// /etc/services as it is now: read again when its modification time or
/// size changes, so an edit is seen by the next command, as by ipvsadm.
fn services() -> Arc<Services> {
    type Cached = Option<((SystemTime, u64), Arc<Services>)>;
    static CACHE: Mutex<Cached> = Mutex::new(None);
    let stamp = std::fs::metadata(Path::new(SERVICES))
        .ok()
        .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    match (stamp, cache.as_ref()) {
        (Some(now), Some((seen, s))) if *seen == now => s.clone(),
        (Some(now), _) => {
            let text = std::fs::read_to_string(SERVICES).unwrap_or_default();
            let s = Arc::new(Services::parse(&text));
            *cache = Some((now, s.clone()));
            s
        }
        (None, _) => Arc::new(Services::default()),
    }
}

/// The host's own files and resolver.
pub struct System;

impl Names for System {
    fn port_name(&self, port: u16, proto: Protocol) -> Option<String> {
        services().port_name(port, proto)
    }

    /// IPv4 only: ipvsadm's addr_to_host passes sizeof(struct in_addr) for
    /// either family, and glibc refuses that length for AF_INET6, so an
    /// IPv6 address always prints as a number.
    fn host_name(&self, addr: IpAddr) -> Option<String> {
        match addr {
            IpAddr::V4(_) => dns_lookup::lookup_addr(&addr).ok(),
            IpAddr::V6(_) => None,
        }
    }
}

/// getservbyname for the protocol, from the host's /etc/services.
pub fn service_port(name: &str, proto: Protocol) -> Option<u16> {
    services().port(name, proto)
}

/// ipvsadm's host_to_addr: gethostbyname's first IPv4 address.
pub fn host_addr(name: &str) -> Option<Ipv4Addr> {
    if name.is_empty() {
        return None;
    }
    dns_lookup::lookup_host(name)
        .ok()?
        .into_iter()
        .find_map(|a| match a {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# Network services, Internet style
tcpmux\t\t1/tcp\t\t\t\t# TCP port service multiplexer
http\t\t80/tcp\t\twww\t\t# WorldWideWeb HTTP
www-alt\t\t80/tcp
domain\t\t53/tcp\t\t\t\t# Domain Name Server
domain\t\t53/udp
amqp\t\t5672/tcp
amqp\t\t5672/sctp
broken 99999/tcp
nonsense
odd 70/ddp
";

    #[test]
    fn the_first_line_names_a_port_and_aliases_find_it() {
        let s = Services::parse(TEXT);
        assert_eq!(s.port_name(80, Protocol::Tcp).as_deref(), Some("http"));
        assert_eq!(s.port_name(80, Protocol::Udp), None, "per protocol");
        assert_eq!(s.port_name(53, Protocol::Udp).as_deref(), Some("domain"));
        assert_eq!(s.port_name(5672, Protocol::Sctp).as_deref(), Some("amqp"));
        assert_eq!(s.port("www", Protocol::Tcp), Some(80));
        assert_eq!(s.port("www-alt", Protocol::Tcp), Some(80));
        assert_eq!(s.port("http", Protocol::Udp), None);
        assert_eq!(s.port("broken", Protocol::Tcp), None, "port past 65535");
        assert_eq!(s.port_name(70, Protocol::Tcp), None, "unknown protocol");
    }

    #[test]
    fn the_resolver_names_loopback_and_finds_localhost() {
        // Every Debian /etc/hosts maps localhost to 127.0.0.1 (netbase).
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(System.host_name(lo).as_deref(), Some("localhost"));
        assert_eq!(host_addr("localhost"), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(System.host_name("::1".parse().unwrap()), None);
        assert_eq!(host_addr(""), None);
    }
}
