//! Shared helpers for the probes' loopback tests.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::time::{Duration, Instant};

use super::{CheckKind, Probe, Verdict};

pub(super) const TIMEOUT: Duration = Duration::from_millis(500);
/// Scheduling slack on a loaded 2-vCPU CI box; the point is that the probe
/// returns, not how precisely.
pub(super) const SLACK: Duration = Duration::from_secs(3);

pub(super) fn probe(kind: CheckKind, target: SocketAddr) -> Probe {
    Probe {
        kind,
        target,
        virtual_addr: "10.0.0.1:80".parse().unwrap(),
        source: None,
        timeout: TIMEOUT,
    }
}

/// Runs the probe and asserts it came back within timeout + slack.
pub(super) fn run_bounded(p: &Probe) -> Verdict {
    let start = Instant::now();
    let v = p.run();
    let took = start.elapsed();
    assert!(
        took <= p.timeout + SLACK,
        "probe took {took:?}, timeout {:?}",
        p.timeout
    );
    v
}

/// A loopback TCP port with nothing listening: bound then released, so the
/// kernel answers RST.
pub(super) fn closed_tcp_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A loopback UDP port with nothing bound: the kernel answers ICMP port
/// unreachable.
pub(super) fn closed_udp_port() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

pub(super) fn down_reason(v: Verdict) -> String {
    match v {
        Verdict::Down(why) => why,
        Verdict::Up => panic!("expected Down, got Up"),
    }
}
