//! service=dns: one query over UDP (recursion desired, class IN); Up when
//! an answer with our id and RCODE 0 comes back, as keepalived's DNS_CHECK
//! judges it. What the answer holds is not looked at.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::UdpSocket;

use socket2::{Protocol, Type};

use super::net::{describe, is_timeout, socket_for, Deadline};
use super::{Probe, Verdict};

/// The query types keepalived's DNS_CHECK offers, by name.
pub const TYPES: &[(&str, u16)] = &[
    ("A", 1),
    ("NS", 2),
    ("CNAME", 5),
    ("SOA", 6),
    ("MX", 15),
    ("TXT", 16),
    ("AAAA", 28),
    ("RRSIG", 46),
    ("DNSKEY", 48),
];

pub fn type_code(name: &str) -> Option<u16> {
    TYPES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, c)| c)
}

pub fn type_name(code: u16) -> &'static str {
    TYPES
        .iter()
        .find(|&&(_, c)| c == code)
        .map_or("?", |&(n, _)| n)
}

/// The query's bytes; None when a label is longer than DNS allows.
pub fn query(id: u16, name: &str, qtype: u16) -> Option<Vec<u8>> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    for label in name.split('.').filter(|l| !l.is_empty()) {
        if label.len() > 63 {
            return None;
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes()); // IN
    Some(q)
}

pub(super) fn check(probe: &Probe, deadline: &Deadline, name: &str, qtype: u16) -> Verdict {
    match exchange(probe, deadline, name, qtype) {
        Ok(()) => Verdict::Up,
        Err(why) => Verdict::Down(why),
    }
}

fn exchange(probe: &Probe, deadline: &Deadline, name: &str, qtype: u16) -> Result<(), String> {
    let id = RandomState::new().build_hasher().finish() as u16;
    let q = query(id, name, qtype).ok_or("dns: a label of the name is over 63 bytes")?;
    let sock: UdpSocket =
        socket_for(probe.target, probe.source, Type::DGRAM, Protocol::UDP)?.into();
    sock.connect(probe.target)
        .map_err(|e| format!("dns: connect: {}", describe(&e)))?;
    sock.send(&q).map_err(|e| reason("send", &e))?;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline
            .remaining()
            .map_err(|_| format!("dns: no answer, {}", deadline.timeout_reason()))?;
        sock.set_read_timeout(Some(left))
            .map_err(|e| format!("dns: {}", describe(&e)))?;
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => {
                return Err(format!("dns: no answer, {}", deadline.timeout_reason()))
            }
            Err(e) => return Err(reason("recv", &e)),
        };
        // Too short, someone else's id or a query: keep waiting, as
        // keepalived does.
        if n < 12 || buf[..2] != id.to_be_bytes() || buf[2] & 0x80 == 0 {
            continue;
        }
        let rcode = buf[3] & 0x0f;
        if rcode != 0 {
            return Err(format!("dns: answer with rcode {rcode}"));
        }
        return Ok(());
    }
}

fn reason(stage: &str, e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        "dns: port unreachable".into()
    } else {
        format!("dns: {stage}: {}", describe(e))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::{CheckKind, Verdict};
    use super::*;
    use std::thread;

    #[test]
    fn query_bytes() {
        // RFC 1035 §4.1: header, then www.example.com as labels, type A, IN.
        assert_eq!(
            query(0x1234, "www.example.com", 1).unwrap(),
            b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x03com\x00\x00\x01\x00\x01"
        );
        assert_eq!(query(1, ".", 6).unwrap()[12..], [0, 0, 6, 0, 1]);
        assert_eq!(query(1, "", 6).unwrap()[12..], [0, 0, 6, 0, 1]);
        assert!(query(1, &"a".repeat(64), 1).is_none());
    }

    /// Answers each query with the given RCODE, after a stray datagram
    /// with another id.
    fn server(rcode: u8) -> std::net::SocketAddr {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = s.local_addr().unwrap();
        thread::spawn(move || {
            let mut buf = [0u8; 512];
            let (n, peer) = s.recv_from(&mut buf).unwrap();
            let mut stray = buf[..n].to_vec();
            stray[0] ^= 0xff;
            stray[2] |= 0x80;
            s.send_to(&stray, peer).unwrap();
            let mut a = buf[..n].to_vec();
            a[2] |= 0x80;
            a[3] = (a[3] & 0xf0) | rcode;
            s.send_to(&a, peer).unwrap();
        });
        addr
    }

    fn dns() -> CheckKind {
        CheckKind::Dns {
            name: "example.com".into(),
            qtype: 6,
        }
    }

    #[test]
    fn up_on_noerror_down_on_servfail() {
        assert_eq!(run_bounded(&probe(dns(), server(0))), Verdict::Up);
        let why = down_reason(run_bounded(&probe(dns(), server(2))));
        assert_eq!(why, "dns: answer with rcode 2");
    }

    #[test]
    fn down_on_silence() {
        let quiet = UdpSocket::bind("127.0.0.1:0").unwrap();
        let why = down_reason(run_bounded(&probe(dns(), quiet.local_addr().unwrap())));
        assert!(why.starts_with("dns: no answer"), "{why}");
    }
}
