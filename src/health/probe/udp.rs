//! UDP service checks: a datagram out, and either a reply or — for services
//! that never answer — the absence of ICMP port unreachable.

use std::io;
use std::net::UdpSocket;

use socket2::{Protocol, Type};

use super::net::{describe, is_timeout, socket_for, Deadline};
use super::{Probe, Verdict};

pub(super) fn check(
    probe: &Probe,
    deadline: &Deadline,
    payload: &[u8],
    expect_reply: bool,
) -> Verdict {
    match exchange(probe, deadline, payload) {
        Ok(()) => Verdict::Up,
        // Silence is all a reply-less service can offer; only an ICMP
        // error (below) says nobody is there.
        Err(Silence) if !expect_reply => Verdict::Up,
        Err(Silence) => Verdict::Down(format!("udp: no reply, {}", deadline.timeout_reason())),
        Err(Failed(why)) => Verdict::Down(why),
    }
}

enum Failure {
    Silence,
    Failed(String),
}
use Failure::{Failed, Silence};

fn exchange(probe: &Probe, deadline: &Deadline, payload: &[u8]) -> Result<(), Failure> {
    let sock: UdpSocket = socket_for(probe.target, probe.source, Type::DGRAM, Protocol::UDP)
        .map_err(Failed)?
        .into();
    // Connected, so the kernel hands ICMP errors for this flow back to us
    // as ECONNREFUSED / EHOSTUNREACH on the next call.
    sock.connect(probe.target)
        .map_err(|e| Failed(format!("udp: connect: {}", describe(&e))))?;
    sock.send(payload).map_err(|e| Failed(reason("send", &e)))?;
    let mut buf = [0u8; 2048];
    loop {
        let left = deadline.remaining().map_err(|_| Silence)?;
        sock.set_read_timeout(Some(left))
            .map_err(|e| Failed(format!("udp: {}", describe(&e))))?;
        match sock.recv(&mut buf) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => return Err(Silence),
            Err(e) => return Err(Failed(reason("recv", &e))),
        }
    }
}

fn reason(stage: &str, e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        "udp: port unreachable".into()
    } else {
        format!("udp: {stage}: {}", describe(e))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::{CheckKind, Verdict};
    use std::net::{SocketAddr, UdpSocket};
    use std::thread;

    fn udp(expect_reply: bool) -> CheckKind {
        CheckKind::Udp {
            payload: b"ping".to_vec(),
            expect_reply,
        }
    }

    /// Echoes one datagram back, and checks it was our payload.
    fn echo_server(bind: &str) -> (SocketAddr, thread::JoinHandle<Vec<u8>>) {
        let s = UdpSocket::bind(bind).unwrap();
        let addr = s.local_addr().unwrap();
        let h = thread::spawn(move || {
            let mut buf = [0u8; 64];
            let (n, peer) = s.recv_from(&mut buf).unwrap();
            s.send_to(&buf[..n], peer).unwrap();
            buf[..n].to_vec()
        });
        (addr, h)
    }

    #[test]
    fn up_on_reply_v4() {
        let (addr, h) = echo_server("127.0.0.1:0");
        assert_eq!(run_bounded(&probe(udp(true), addr)), Verdict::Up);
        assert_eq!(h.join().unwrap(), b"ping");
    }

    #[test]
    fn up_on_reply_v6() {
        let (addr, h) = echo_server("[::1]:0");
        assert_eq!(run_bounded(&probe(udp(true), addr)), Verdict::Up);
        h.join().unwrap();
    }

    #[test]
    fn down_on_port_unreachable() {
        for expect_reply in [true, false] {
            let why = down_reason(run_bounded(&probe(udp(expect_reply), closed_udp_port())));
            assert_eq!(why, "udp: port unreachable");
        }
    }

    #[test]
    fn silence_is_down_when_a_reply_is_expected() {
        let quiet = UdpSocket::bind("127.0.0.1:0").unwrap();
        let why = down_reason(run_bounded(&probe(udp(true), quiet.local_addr().unwrap())));
        assert_eq!(why, "udp: no reply, timeout after 500ms");
    }

    #[test]
    fn silence_is_up_when_no_reply_is_expected() {
        let quiet = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = probe(udp(false), quiet.local_addr().unwrap());
        assert_eq!(run_bounded(&p), Verdict::Up);
        let mut buf = [0u8; 8];
        assert_eq!(
            quiet.recv(&mut buf).unwrap(),
            4,
            "the probe's datagram arrived"
        );
    }
}
