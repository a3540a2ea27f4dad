//! checktype=connect: Up when a TCP connection to the real server opens.

use super::net::{connect_tcp, Deadline};
use super::{Probe, Verdict};

pub(super) fn check(probe: &Probe, deadline: &Deadline) -> Verdict {
    match connect_tcp(probe.target, probe.source, deadline) {
        // Dropping the stream closes it at once; the server saw a full
        // handshake, which is all ldirectord's connect check asks.
        Ok(_stream) => Verdict::Up,
        Err(why) => Verdict::Down(why),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::{CheckKind, Verdict};
    use socket2::{Domain, Socket, Type};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::time::Duration;

    #[test]
    fn up_when_listening_v4() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let v = probe(CheckKind::Tcp, l.local_addr().unwrap()).run();
        assert_eq!(v, Verdict::Up);
    }

    #[test]
    fn up_when_listening_v6() {
        let l = TcpListener::bind("[::1]:0").unwrap();
        let v = probe(CheckKind::Tcp, l.local_addr().unwrap()).run();
        assert_eq!(v, Verdict::Up);
    }

    #[test]
    fn up_with_source_bound() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut p = probe(CheckKind::Tcp, l.local_addr().unwrap());
        p.source = Some("127.0.0.1".parse().unwrap());
        assert_eq!(p.run(), Verdict::Up);
        let (_, peer) = l.accept().unwrap();
        assert_eq!(peer.ip(), p.source.unwrap());
    }

    #[test]
    fn down_when_refused() {
        let v = probe(CheckKind::Tcp, closed_tcp_port()).run();
        assert_eq!(v, Verdict::Down("connect: connection refused".into()));
    }

    #[test]
    fn down_when_source_family_mismatches() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut p = probe(CheckKind::Tcp, l.local_addr().unwrap());
        p.source = Some("::1".parse().unwrap());
        assert!(matches!(p.run(), Verdict::Down(why) if why.starts_with("bind ::1:")));
    }

    /// Linux drops a SYN when the listener's accept queue is full; with a
    /// backlog of 0 and nobody accepting, a filler or two is enough to make
    /// the probe's SYN go unanswered, like a blackholed server.
    #[test]
    fn down_within_timeout_when_syn_is_never_answered() {
        let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        l.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        l.listen(0).unwrap();
        let addr = l.local_addr().unwrap().as_socket().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..4 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(s) => fillers.push(s),
                Err(_) => break,
            }
        }
        let why = down_reason(run_bounded(&probe(CheckKind::Tcp, addr)));
        assert_eq!(why, "connect: timeout after 500ms");
    }
}
