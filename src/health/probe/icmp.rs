//! checktype=ping: one ICMP / ICMPv6 echo over a raw socket.

use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use socket2::{Protocol, Socket, Type};

use super::net::{describe, is_timeout, socket_for, Deadline};
use super::{Probe, Verdict};

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
const PAYLOAD: &[u8] = b"rvs health check";

/// Every raw ICMP socket sees every ICMP packet the host receives, so
/// concurrent pings (and ping(8)) tell their replies apart by id + seq.
static SEQUENCE: AtomicU16 = AtomicU16::new(0);

pub(super) fn check(probe: &Probe, deadline: &Deadline) -> Verdict {
    match ping(probe, deadline) {
        Ok(()) => Verdict::Up,
        Err(why) => Verdict::Down(why),
    }
}

fn ping(probe: &Probe, deadline: &Deadline) -> Result<(), String> {
    let target = SocketAddr::new(probe.target.ip(), 0);
    let v6 = target.is_ipv6();
    let proto = if v6 {
        Protocol::ICMPV6
    } else {
        Protocol::ICMPV4
    };
    let sock = socket_for(target, probe.source, Type::RAW, proto)?;
    // Connected, the kernel drops ICMP from other hosts before we see it,
    // and reports hard ICMP errors about our echo as recv errors.
    sock.connect(&target.into())
        .map_err(|e| format!("ping: {}", describe(&e)))?;
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let id = identifier(seq);
    let request = echo_request(v6, id, seq);
    sock.send(&request)
        .map_err(|e| format!("ping: send: {}", describe(&e)))?;
    await_reply(&sock, deadline, target.ip(), id, seq)
}

fn await_reply(
    sock: &Socket,
    deadline: &Deadline,
    from: IpAddr,
    id: u16,
    seq: u16,
) -> Result<(), String> {
    let no_reply = || format!("ping: no reply, {}", deadline.timeout_reason());
    let mut buf = [0u8; 2048];
    loop {
        let left = deadline.remaining().map_err(|_| no_reply())?;
        sock.set_read_timeout(Some(left))
            .map_err(|e| format!("ping: {}", describe(&e)))?;
        let mut reader = sock;
        match reader.read(&mut buf) {
            Ok(n) if is_our_reply(&buf[..n], from, id, seq) => return Ok(()),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => return Err(no_reply()),
            Err(e) => return Err(format!("ping: {}", describe(&e))),
        }
    }
}

/// Different per process and per call, so two rvs instances (or two
/// checks of one server) never take each other's replies.
fn identifier(seq: u16) -> u16 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mixed = std::process::id() ^ nanos ^ u32::from(seq).wrapping_mul(0x9e37_79b9);
    (mixed ^ (mixed >> 16)) as u16
}

/// Type, code, checksum, id, seq, payload. ICMPv6's checksum covers a
/// pseudo-header we never see, so the kernel fills it in for raw ICMPv6
/// sockets; ICMPv4's is ours to compute.
fn echo_request(v6: bool, id: u16, seq: u16) -> Vec<u8> {
    let mut pkt = Vec::with_capacity(8 + PAYLOAD.len());
    pkt.push(if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 });
    pkt.push(0);
    pkt.extend_from_slice(&[0, 0]);
    pkt.extend_from_slice(&id.to_be_bytes());
    pkt.extend_from_slice(&seq.to_be_bytes());
    pkt.extend_from_slice(PAYLOAD);
    if !v6 {
        let sum = checksum(&pkt);
        pkt[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    pkt
}

/// RFC 1071 internet checksum.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A raw IPv4 socket reads the IP header too; a raw ICMPv6 one does not.
/// Our own echo request (looped back on lo) and others' traffic fail the
/// type / id / seq test.
fn is_our_reply(data: &[u8], from: IpAddr, id: u16, seq: u16) -> bool {
    let (icmp, reply_type) = match from {
        IpAddr::V4(src) => {
            let Some(&first) = data.first() else {
                return false;
            };
            let header = usize::from(first & 0x0f) * 4;
            if first >> 4 != 4 || data.len() < header || data.get(12..16) != Some(&src.octets()[..])
            {
                return false;
            }
            (&data[header..], ECHO_REPLY_V4)
        }
        IpAddr::V6(_) => (data, ECHO_REPLY_V6),
    };
    icmp.len() >= 8
        && icmp[0] == reply_type
        && icmp[1] == 0
        && icmp[4..6] == id.to_be_bytes()
        && icmp[6..8] == seq.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::{CheckKind, Verdict};
    use super::*;
    use std::time::Duration;

    fn ping_probe(addr: &str) -> super::super::Probe {
        probe(CheckKind::Ping, SocketAddr::new(addr.parse().unwrap(), 0))
    }

    #[test]
    fn up_on_loopback_v4() {
        assert_eq!(run_bounded(&ping_probe("127.0.0.1")), Verdict::Up);
    }

    #[test]
    fn up_on_loopback_v6() {
        assert_eq!(run_bounded(&ping_probe("::1")), Verdict::Up);
    }

    #[test]
    fn up_with_source_bound() {
        let mut p = ping_probe("127.0.0.1");
        p.source = Some("127.0.0.1".parse().unwrap());
        assert_eq!(run_bounded(&p), Verdict::Up);
    }

    #[test]
    fn concurrent_pings_each_get_their_own_reply() {
        let handles: Vec<_> = (0..8)
            .map(|_| std::thread::spawn(|| run_bounded(&ping_probe("127.0.0.1"))))
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), Verdict::Up);
        }
    }

    #[test]
    fn down_and_bounded_when_only_others_answer() {
        // Whoever answers an all-hosts echo answers from its own unicast
        // address, never from 224.0.0.1, so nothing here is our reply; a
        // box without a route for it fails the send instead. Either way:
        // Down, and within the timeout.
        let why = down_reason(run_bounded(&ping_probe("224.0.0.1")));
        assert!(why.starts_with("ping: "), "{why}");
    }

    #[test]
    fn a_spent_deadline_ends_the_wait() {
        let mut p = ping_probe("127.0.0.1");
        p.timeout = Duration::from_micros(1);
        let why = down_reason(run_bounded(&p));
        assert_eq!(why, "ping: no reply, timeout after 1\u{b5}s");
    }

    #[test]
    fn checksum_of_a_known_echo_request() {
        // id 0x1234, seq 1, no payload: 0x0800 + 0x1234 + 0x0001 = 0x1a35.
        let hdr = [8, 0, 0, 0, 0x12, 0x34, 0, 1];
        assert_eq!(checksum(&hdr), !0x1a35);
        let pkt = echo_request(false, 0x1234, 1);
        assert_eq!(checksum(&pkt), 0, "a correct checksum sums to zero");
    }

    #[test]
    fn reply_matching_skips_the_ipv4_header() {
        let src: IpAddr = "192.0.2.9".parse().unwrap();
        let mut pkt = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 192, 0, 2, 9, 127, 0, 0, 1,
        ];
        pkt.extend_from_slice(&[ECHO_REPLY_V4, 0, 0, 0, 0xab, 0xcd, 0, 7]);
        assert!(is_our_reply(&pkt, src, 0xabcd, 7));
        assert!(!is_our_reply(&pkt, src, 0xabcd, 8));
        assert!(!is_our_reply(
            &pkt,
            "192.0.2.10".parse().unwrap(),
            0xabcd,
            7
        ));
        pkt[20] = ECHO_REQUEST_V4;
        assert!(!is_our_reply(&pkt, src, 0xabcd, 7));
    }
}
