//! NAT session logs (`[session_log]`, off by default): one line when a conn
//! starts and one when it ends, naming the client, the VIP, the FULLNAT
//! local address and port, and the real server, so that an abuse report
//! against a real server's peer (rvs's local address) can be traced back to
//! the client behind it.
//!
//! Workers never make a system call for it: each pushes fixed-size records
//! into a ring of its own ([`SessionRing`], lock-free, no allocation) and
//! counts a record it had no room for. A control thread ([`writer`]) drains
//! the rings, limits the rate, and writes JSON lines ([`line`]) to a file or
//! to syslog.
pub mod line;
pub mod writer;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;

use crate::ipvs::{ConnRef, FwdMethod, Millis};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Start,
    End,
}

/// One conn's start or end, as a worker saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub event: Event,
    /// The worker's clock: milliseconds since rvsd's epoch.
    pub at: Millis,
    pub worker: u16,
    pub proto: u8,
    pub fwd: FwdMethod,
    pub client: SocketAddr,
    pub vip: SocketAddr,
    /// FULLNAT's local address and port: what the real server sees.
    pub local: Option<SocketAddr>,
    pub real: SocketAddr,
    /// The conn's state at the event (`ESTABLISHED`, `TIME_WAIT`, ...).
    pub state: &'static str,
}

impl Session {
    pub fn of(c: ConnRef<'_>, event: Event, at: Millis, worker: usize) -> Session {
        let fwd = c.fwd();
        Session {
            event,
            at,
            worker: worker as u16,
            proto: c.proto(),
            fwd,
            client: SocketAddr::new(c.caddr(), c.cport()),
            vip: SocketAddr::new(c.vaddr(), c.vport()),
            local: (fwd == FwdMethod::FullNat).then(|| SocketAddr::new(c.laddr(), c.lport())),
            real: SocketAddr::new(c.daddr(), c.dport()),
            state: c.state_name(),
        }
    }
}

/// A worker's ring of session records, read by the writer thread.
pub struct SessionRing {
    queue: ArrayQueue<Session>,
    /// Records the worker had no room for: the writer fell behind.
    full: AtomicU64,
}

impl SessionRing {
    pub fn new(capacity: usize) -> SessionRing {
        SessionRing {
            queue: ArrayQueue::new(capacity.max(1)),
            full: AtomicU64::new(0),
        }
    }

    /// The worker's side: never blocks, never allocates.
    pub fn push(&self, s: Session) {
        if self.queue.push(s).is_err() {
            self.full.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn pop(&self) -> Option<Session> {
        self.queue.pop()
    }

    pub fn dropped_full(&self) -> u64 {
        self.full.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::{Conn, ConnTable, Dest, DestConfig};
    use std::net::IpAddr;
    use std::sync::Arc;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_full_ring_counts_what_it_drops_and_keeps_the_oldest() {
        let r = SessionRing::new(2);
        let s = |at| Session {
            event: Event::Start,
            at,
            worker: 0,
            proto: 6,
            fwd: FwdMethod::Masq,
            client: "198.51.100.7:40000".parse().unwrap(),
            vip: "198.18.0.100:80".parse().unwrap(),
            local: None,
            real: "198.19.0.11:80".parse().unwrap(),
            state: "SYN_RECV",
        };
        for at in 0..5 {
            r.push(s(at));
        }
        assert_eq!(r.dropped_full(), 3);
        assert_eq!(r.pop().map(|x| x.at), Some(0));
        assert_eq!(r.pop().map(|x| x.at), Some(1));
        assert_eq!(r.pop(), None);
    }

    #[test]
    fn a_fullnat_session_names_the_local_address_a_masq_one_none() {
        let mut cfg = DestConfig::new(ip("198.19.0.11"), 8080);
        cfg.fwd = FwdMethod::FullNat;
        let dest = Arc::new(Dest::new(&cfg, 1));
        let mut t = ConnTable::with_capacity(2);
        let c = Conn::new(
            6,
            (ip("198.51.100.7"), 40000),
            (ip("198.18.0.100"), 80),
            8080,
            FwdMethod::FullNat,
        )
        .with_local(ip("198.19.0.1"), 1029);
        let id = t.insert(c, Some(&dest), 0).unwrap();
        let s = Session::of(t.get(id).unwrap(), Event::Start, 5, 1);
        assert_eq!(s.client, "198.51.100.7:40000".parse().unwrap());
        assert_eq!(s.vip, "198.18.0.100:80".parse().unwrap());
        assert_eq!(s.local, Some("198.19.0.1:1029".parse().unwrap()));
        assert_eq!(s.real, "198.19.0.11:8080".parse().unwrap());
        assert_eq!((s.worker, s.at, s.proto), (1, 5, 6));

        let c = Conn::new(
            17,
            (ip("2001:db8::7"), 5000),
            (ip("2001:db8::100"), 53),
            8080,
            FwdMethod::Masq,
        );
        let id = t.insert(c, Some(&dest), 0).unwrap();
        let s = Session::of(t.get(id).unwrap(), Event::End, 9, 0);
        assert_eq!(s.local, None);
        assert_eq!(s.client, "[2001:db8::7]:5000".parse().unwrap());
    }
}
