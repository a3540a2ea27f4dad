//! Which neighbours any worker asked for lately, so that the worker that
//! receives the answer (ARP replies come on the first queue, neighbour
//! advertisements wherever RSS puts them) learns it only if someone asked:
//! Linux creates an entry from a reply only when its own request left one
//! INCOMPLETE (arp_process, ndisc_recv_na), so an unsolicited reply cannot
//! plant a neighbour.
//!
//! A fixed array of words, one per hash of (port, address): the time of the
//! last request and a tag of the hash. Workers store and load words with
//! no lock; two requests sharing a slot only shorten each other's window.
//! The hash is keyed per start, so a sender cannot aim at a slot.
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use super::neigh::PENDING_TIMEOUT_MS;
use super::Millis;

const SLOTS: usize = 1024;

pub struct SolicitLog {
    slots: Box<[AtomicU64]>,
    keys: RandomState,
}

impl Default for SolicitLog {
    fn default() -> Self {
        SolicitLog::new()
    }
}

impl std::fmt::Debug for SolicitLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SolicitLog").finish_non_exhaustive()
    }
}

impl SolicitLog {
    pub fn new() -> SolicitLog {
        SolicitLog {
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            keys: RandomState::new(),
        }
    }

    fn slot(&self, port: u16, ip: IpAddr) -> (&AtomicU64, u64) {
        let h = self.keys.hash_one((port, ip));
        // A tag of the hash's other half; never 0, the empty slot's.
        let tag = (h >> 32) | 1;
        (&self.slots[h as usize % SLOTS], tag << 32)
    }

    /// A worker asked who has `ip` on `port` at `now`.
    pub fn asked(&self, port: u16, ip: IpAddr, now: Millis) {
        let (slot, tag) = self.slot(port, ip);
        slot.store(tag | (now & 0xffff_ffff), Ordering::Relaxed);
    }

    /// Whether a worker asked for `ip` on `port` within the time a packet
    /// waits for its next hop.
    pub fn was_asked(&self, port: u16, ip: IpAddr, now: Millis) -> bool {
        let (slot, tag) = self.slot(port, ip);
        let v = slot.load(Ordering::Relaxed);
        if v & !0xffff_ffff != tag {
            return false;
        }
        let at = v & 0xffff_ffff;
        let age = (now & 0xffff_ffff).wrapping_sub(at) & 0xffff_ffff;
        age <= PENDING_TIMEOUT_MS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_answer_is_expected_only_from_whom_was_asked_and_only_for_a_while() {
        let log = SolicitLog::new();
        assert!(!log.was_asked(0, ip("198.18.0.2"), 0));
        log.asked(0, ip("198.18.0.2"), 1_000);
        assert!(log.was_asked(0, ip("198.18.0.2"), 1_000));
        assert!(log.was_asked(0, ip("198.18.0.2"), 1_000 + PENDING_TIMEOUT_MS));
        assert!(!log.was_asked(0, ip("198.18.0.2"), 1_001 + PENDING_TIMEOUT_MS));
        assert!(!log.was_asked(1, ip("198.18.0.2"), 1_000), "per port");
        assert!(!log.was_asked(0, ip("198.18.0.3"), 1_000));
        // Across the 32-bit wrap of the millisecond clock.
        let t = (1u64 << 32) - 10;
        log.asked(0, ip("fd00::2"), t);
        assert!(log.was_asked(0, ip("fd00::2"), t + 20));
    }

    #[test]
    fn addresses_never_asked_for_are_not_taken_for_asked_ones() {
        let log = SolicitLog::new();
        for i in 0..200u32 {
            log.asked(0, IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)), 5);
        }
        let hits = (0..100_000u32)
            .filter(|i| log.was_asked(0, IpAddr::V4(std::net::Ipv4Addr::from(0xc000_0000 + i)), 5))
            .count();
        assert_eq!(hits, 0);
    }
}
