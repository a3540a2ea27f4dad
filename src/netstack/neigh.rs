//! A worker's neighbour cache (ARP and IPv6 ND share it) and the packets
//! that wait for a next hop to be resolved.
//!
//! Workers learn from what they receive and tell the control thread, which
//! passes the news to the other workers; nobody locks anything.
use std::net::IpAddr;

use hashbrown::HashMap;

use super::Millis;
use crate::wire::MacAddr;

/// After this long without confirmation an entry is still used, but probed.
pub const NEIGH_PROBE_AFTER_MS: Millis = 30_000;
/// After this long without confirmation an entry is forgotten.
pub const NEIGH_MAX_AGE_MS: Millis = 300_000;
/// How long a packet waits for its next hop before it is dropped.
pub const PENDING_TIMEOUT_MS: Millis = 3_000;
/// Between two ARP requests / neighbour solicitations for the same address.
pub const RESOLVE_RETRY_MS: Millis = 1_000;
/// How often a learned entry is re-reported to the other workers.
const REPORT_EVERY_MS: Millis = 10_000;
/// Packets kept per unresolved next hop (Linux's unres_qlen is of this order).
pub const PENDING_PER_HOP: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighUpdate {
    pub port: u16,
    pub ip: IpAddr,
    pub mac: MacAddr,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    mac: MacAddr,
    confirmed: Millis,
    probed: Millis,
    reported: Millis,
    /// Configured, not learned: never aged, probed, evicted or changed.
    permanent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Reachable(MacAddr),
    /// Usable, but old: send it and probe the neighbour again.
    Stale(MacAddr),
    Missing,
}

/// What `learn` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Learned {
    /// The entry is new or its MAC changed.
    pub changed: bool,
    /// Other workers should hear about it.
    pub report: bool,
}

/// The learned entries in the order they were last confirmed, as a list
/// threaded through the slots: the head is the one a full table gives up,
/// in O(1) whatever its size (a scan for the oldest cost a full table one
/// pass over every entry per new neighbour, which a flood of ARP requests
/// from made-up senders turns into a denial of service).
const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Slot {
    key: (u16, IpAddr),
    e: Entry,
    prev: u32,
    next: u32,
}

/// The answers `lookup` gave last, direct-mapped by address: a worker sends
/// nearly all its packets to a few next hops (the real servers, a router),
/// and a hit here costs a compare instead of hashing `(port, IpAddr)` into
/// the map. An answer stays only while it would be `Reachable` (`until`);
/// removing an entry or changing its MAC clears it here at once.
const HOT_SLOTS: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Hot {
    port: u16,
    ip: IpAddr,
    mac: MacAddr,
    until: Millis,
}

fn hot_index(port: u16, ip: IpAddr) -> usize {
    let low = match ip {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => u128::from(a) as u32,
    };
    ((low ^ u32::from(port)).wrapping_mul(0x9e37_79b1) >> 26) as usize % HOT_SLOTS
}

pub struct NeighTable {
    map: HashMap<(u16, IpAddr), u32>,
    hot: [Option<Hot>; HOT_SLOTS],
    /// Bumped whenever an answer given out may no longer hold (an entry
    /// gone or its MAC changed): what callers that keep a MAC of their
    /// own (`Stack::l2_for`) check it against.
    generation: u64,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Least and most recently confirmed learned entries; permanent ones
    /// are not on the list.
    head: u32,
    tail: u32,
    capacity: usize,
}

impl NeighTable {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        NeighTable {
            map: HashMap::with_capacity(capacity),
            hot: [None; HOT_SLOTS],
            generation: 0,
            slots: Vec::with_capacity(capacity),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            capacity,
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn unlink(&mut self, i: u32) {
        let Slot { prev, next, .. } = self.slots[i as usize];
        match prev {
            NIL => self.head = next,
            p => self.slots[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.slots[n as usize].prev = prev,
        }
        let s = &mut self.slots[i as usize];
        s.prev = NIL;
        s.next = NIL;
    }

    fn push_back(&mut self, i: u32) {
        let tail = self.tail;
        let s = &mut self.slots[i as usize];
        s.prev = tail;
        s.next = NIL;
        match tail {
            NIL => self.head = i,
            t => self.slots[t as usize].next = i,
        }
        self.tail = i;
    }

    /// Forgets the hot answer for `key`, if it holds one, and any answer
    /// handed out before (`generation`).
    fn cool(&mut self, (port, ip): (u16, IpAddr)) {
        self.generation += 1;
        let h = &mut self.hot[hot_index(port, ip)];
        if h.is_some_and(|c| c.port == port && c.ip == ip) {
            *h = None;
        }
    }

    fn remove_slot(&mut self, i: u32) {
        if !self.slots[i as usize].e.permanent {
            self.unlink(i);
        }
        let key = self.slots[i as usize].key;
        self.cool(key);
        self.map.remove(&key);
        self.free.push(i);
    }

    fn insert_slot(&mut self, key: (u16, IpAddr), e: Entry) -> u32 {
        let slot = Slot {
            key,
            e,
            prev: NIL,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.map.insert(key, i);
        if !e.permanent {
            self.push_back(i);
        }
        i
    }

    #[inline]
    pub fn lookup(&mut self, port: u16, ip: IpAddr, now: Millis) -> Lookup {
        let h = hot_index(port, ip);
        if let Some(c) = self.hot[h] {
            if c.port == port && c.ip == ip && now < c.until {
                return Lookup::Reachable(c.mac);
            }
        }
        let Some(&i) = self.map.get(&(port, ip)) else {
            return Lookup::Missing;
        };
        let e = self.slots[i as usize].e;
        let age = now.saturating_sub(e.confirmed);
        let until = if e.permanent {
            Millis::MAX
        } else if age >= NEIGH_MAX_AGE_MS {
            self.remove_slot(i);
            return Lookup::Missing;
        } else if age >= NEIGH_PROBE_AFTER_MS {
            return Lookup::Stale(e.mac);
        } else {
            e.confirmed + NEIGH_PROBE_AFTER_MS
        };
        self.hot[h] = Some(Hot {
            port,
            ip,
            mac: e.mac,
            until,
        });
        Lookup::Reachable(e.mac)
    }

    /// See the field.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The MAC `lookup` would answer `Reachable` with, and until when it
    /// would (unless `generation` moves first); None where it would not.
    pub fn reachable_until(&self, port: u16, ip: IpAddr, now: Millis) -> Option<(MacAddr, Millis)> {
        let e = self.slots[*self.map.get(&(port, ip))? as usize].e;
        if e.permanent {
            return Some((e.mac, Millis::MAX));
        }
        let until = e.confirmed + NEIGH_PROBE_AFTER_MS;
        (now < until).then_some((e.mac, until))
    }

    /// Whether a stale entry may be probed now (at most once a retry period).
    pub fn should_probe(&mut self, port: u16, ip: IpAddr, now: Millis) -> bool {
        let Some(&i) = self.map.get(&(port, ip)) else {
            return false;
        };
        let e = &mut self.slots[i as usize].e;
        if now.saturating_sub(e.probed) >= RESOLVE_RETRY_MS {
            e.probed = now;
            true
        } else {
            false
        }
    }

    pub fn contains(&self, port: u16, ip: IpAddr) -> bool {
        self.map.contains_key(&(port, ip))
    }

    /// The MAC an entry holds, without aging it.
    pub fn mac_of(&self, port: u16, ip: IpAddr) -> Option<MacAddr> {
        self.map
            .get(&(port, ip))
            .map(|&i| self.slots[i as usize].e.mac)
    }

    /// Records `mac` for `ip` on `port`. When the table is full, the learned
    /// entry confirmed longest ago makes room.
    pub fn learn(&mut self, port: u16, ip: IpAddr, mac: MacAddr, now: Millis) -> Learned {
        if let Some(&i) = self.map.get(&(port, ip)) {
            let e = &mut self.slots[i as usize].e;
            if e.permanent {
                return Learned {
                    changed: false,
                    report: false,
                };
            }
            let changed = e.mac != mac;
            let report = changed || now.saturating_sub(e.reported) >= REPORT_EVERY_MS;
            e.mac = mac;
            e.confirmed = now;
            if report {
                e.reported = now;
            }
            if changed {
                self.cool((port, ip));
            }
            self.unlink(i);
            self.push_back(i);
            return Learned { changed, report };
        }
        if self.map.len() >= self.capacity && self.head != NIL {
            self.remove_slot(self.head);
        }
        self.insert_slot(
            (port, ip),
            Entry {
                mac,
                confirmed: now,
                probed: now,
                reported: now,
                permanent: false,
            },
        );
        Learned {
            changed: true,
            report: true,
        }
    }

    /// A configured entry (`nud permanent`): always reachable, kept when
    /// the table is full (it may then hold more than its capacity), and
    /// not changed by what is learned later.
    pub fn set_permanent(&mut self, port: u16, ip: IpAddr, mac: MacAddr) {
        if let Some(&i) = self.map.get(&(port, ip)) {
            self.remove_slot(i);
        }
        self.insert_slot(
            (port, ip),
            Entry {
                mac,
                confirmed: 0,
                probed: 0,
                reported: 0,
                permanent: true,
            },
        );
    }
}

/// A next hop being resolved: when we asked and since when packets wait.
#[derive(Debug, Clone, Copy)]
pub struct Resolving {
    pub port: u16,
    pub ip: IpAddr,
    pub since: Millis,
    pub last_request: Millis,
}

/// Packets waiting for a next hop, bounded in total and per hop.
pub struct Pending<P> {
    waiting: Vec<(u16, IpAddr, P)>,
    resolving: Vec<Resolving>,
    capacity: usize,
}

impl<P> Pending<P> {
    pub fn new(capacity: usize) -> Self {
        Pending {
            waiting: Vec::with_capacity(capacity),
            resolving: Vec::with_capacity(capacity),
            capacity,
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.resolving.is_empty()
    }

    /// Whether this worker asked for `ip` on `port` and waits for the answer.
    pub fn is_resolving(&self, port: u16, ip: IpAddr) -> bool {
        self.resolving.iter().any(|r| r.port == port && r.ip == ip)
    }

    /// Queues `pkt`; gives it back when the queue (or this hop's share) is full.
    /// The bool says whether this hop was not being resolved yet.
    pub fn push(&mut self, port: u16, ip: IpAddr, pkt: P, now: Millis) -> Result<bool, P> {
        let for_hop = self
            .waiting
            .iter()
            .filter(|(p, i, _)| *p == port && *i == ip)
            .count();
        if self.waiting.len() >= self.capacity || for_hop >= PENDING_PER_HOP {
            return Err(pkt);
        }
        self.waiting.push((port, ip, pkt));
        if self.resolving.iter().any(|r| r.port == port && r.ip == ip) {
            return Ok(false);
        }
        self.resolving.push(Resolving {
            port,
            ip,
            since: now,
            last_request: now,
        });
        Ok(true)
    }

    /// Takes the packets waiting for `ip` on `port`, in arrival order.
    pub fn take(&mut self, port: u16, ip: IpAddr, mut f: impl FnMut(P)) {
        self.resolving.retain(|r| !(r.port == port && r.ip == ip));
        let mut i = 0;
        while i < self.waiting.len() {
            if self.waiting[i].0 == port && self.waiting[i].1 == ip {
                f(self.waiting.remove(i).2);
            } else {
                i += 1;
            }
        }
    }

    /// Hops whose resolution timed out lose their packets to `dropped`; hops
    /// due another request are passed to `retry`.
    pub fn expire(
        &mut self,
        now: Millis,
        mut retry: impl FnMut(u16, IpAddr),
        mut dropped: impl FnMut(P),
    ) {
        let mut i = 0;
        while i < self.resolving.len() {
            let r = self.resolving[i];
            if now.saturating_sub(r.since) >= PENDING_TIMEOUT_MS {
                self.resolving.swap_remove(i);
                let mut j = 0;
                while j < self.waiting.len() {
                    if self.waiting[j].0 == r.port && self.waiting[j].1 == r.ip {
                        dropped(self.waiting.remove(j).2);
                    } else {
                        j += 1;
                    }
                }
                continue;
            }
            if now.saturating_sub(r.last_request) >= RESOLVE_RETRY_MS {
                self.resolving[i].last_request = now;
                retry(r.port, r.ip);
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M1: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const M2: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn permanent_entries_never_age_change_or_go() {
        let mut t = NeighTable::new(2);
        t.set_permanent(0, ip("198.18.0.9"), M1);
        let late = 10 * NEIGH_MAX_AGE_MS;
        assert_eq!(t.lookup(0, ip("198.18.0.9"), late), Lookup::Reachable(M1));
        assert_eq!(
            t.learn(0, ip("198.18.0.9"), M2, late),
            Learned {
                changed: false,
                report: false
            },
            "ARP does not move a permanent entry"
        );
        assert_eq!(t.lookup(0, ip("198.18.0.9"), late), Lookup::Reachable(M1));
        // A full table evicts learned entries, never the permanent one.
        t.learn(0, ip("198.18.0.1"), M2, late);
        t.learn(0, ip("198.18.0.2"), M2, late + 1);
        t.learn(0, ip("198.18.0.3"), M2, late + 2);
        assert_eq!(
            t.lookup(0, ip("198.18.0.9"), late + 3),
            Lookup::Reachable(M1)
        );
        assert_eq!(
            t.lookup(0, ip("198.18.0.3"), late + 3),
            Lookup::Reachable(M2)
        );
    }

    #[test]
    fn entries_age_from_reachable_to_stale_to_gone() {
        let mut t = NeighTable::new(4);
        assert_eq!(t.lookup(0, ip("198.18.0.2"), 0), Lookup::Missing);
        assert_eq!(
            t.learn(0, ip("198.18.0.2"), M1, 100),
            Learned {
                changed: true,
                report: true
            }
        );
        assert_eq!(t.lookup(0, ip("198.18.0.2"), 100), Lookup::Reachable(M1));
        assert_eq!(
            t.lookup(1, ip("198.18.0.2"), 100),
            Lookup::Missing,
            "per port"
        );
        assert_eq!(
            t.lookup(0, ip("198.18.0.2"), 100 + NEIGH_PROBE_AFTER_MS),
            Lookup::Stale(M1)
        );
        assert_eq!(
            t.lookup(0, ip("198.18.0.2"), 100 + NEIGH_MAX_AGE_MS),
            Lookup::Missing
        );
        assert!(t.is_empty());
    }

    #[test]
    fn relearning_reports_changes_and_periodic_refreshes_only() {
        let mut t = NeighTable::new(4);
        t.learn(0, ip("fd00::2"), M1, 0);
        assert_eq!(
            t.learn(0, ip("fd00::2"), M1, 5),
            Learned {
                changed: false,
                report: false
            }
        );
        assert_eq!(
            t.learn(0, ip("fd00::2"), M2, 6),
            Learned {
                changed: true,
                report: true
            }
        );
        assert_eq!(
            t.learn(0, ip("fd00::2"), M2, 6 + REPORT_EVERY_MS),
            Learned {
                changed: false,
                report: true
            }
        );
    }

    #[test]
    fn a_full_table_evicts_the_oldest() {
        let mut t = NeighTable::new(2);
        t.learn(0, ip("10.0.0.1"), M1, 5);
        t.learn(0, ip("10.0.0.2"), M1, 10);
        // Confirmed again: 10.0.0.2 is now the one confirmed longest ago.
        t.learn(0, ip("10.0.0.1"), M1, 15);
        t.learn(0, ip("10.0.0.3"), M2, 20);
        assert_eq!(t.len(), 2);
        assert!(!t.contains(0, ip("10.0.0.2")));
        assert!(t.contains(0, ip("10.0.0.1")));
        t.learn(0, ip("10.0.0.4"), M2, 25);
        assert!(!t.contains(0, ip("10.0.0.1")));
        assert!(t.contains(0, ip("10.0.0.3")) && t.contains(0, ip("10.0.0.4")));
        // An entry aged out frees its slot for the next.
        assert_eq!(
            t.lookup(0, ip("10.0.0.3"), 20 + NEIGH_MAX_AGE_MS),
            Lookup::Missing
        );
        t.learn(0, ip("10.0.0.5"), M1, 30 + NEIGH_MAX_AGE_MS);
        assert!(t.contains(0, ip("10.0.0.4")) && t.contains(0, ip("10.0.0.5")));
        assert_eq!(t.len(), 2);
    }

    /// A flood of new neighbours through a full table: each eviction is
    /// O(1). With a scan for the oldest entry per insertion, 200 000 new
    /// neighbours through a table of 200 000 would take 4e10 entry visits
    /// (minutes); with the list, well under the deadline even unoptimised.
    #[test]
    fn a_flood_through_a_full_table_costs_constant_time_per_entry() {
        const N: u32 = 200_000;
        let mut t = NeighTable::new(N as usize);
        let v4 = |i: u32| IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        for i in 0..N {
            t.learn(0, v4(i), M1, u64::from(i));
        }
        let start = std::time::Instant::now();
        for i in N..2 * N {
            t.learn(0, v4(i), M2, u64::from(i));
        }
        let took = start.elapsed();
        assert_eq!(t.len(), N as usize);
        assert!(!t.contains(0, v4(N - 1)) && t.contains(0, v4(N)));
        assert!(
            took < std::time::Duration::from_secs(20),
            "{N} evictions took {took:?}"
        );
    }

    #[test]
    fn permanent_entries_are_never_evicted_and_replace_learned_ones() {
        let mut t = NeighTable::new(2);
        t.learn(0, ip("10.0.0.1"), M1, 1);
        t.set_permanent(0, ip("10.0.0.1"), M2);
        t.set_permanent(0, ip("10.0.0.9"), M2);
        // Full of permanent entries: a learned one is added beyond capacity.
        t.learn(0, ip("10.0.0.2"), M1, 2);
        t.learn(0, ip("10.0.0.3"), M1, 3);
        assert!(t.contains(0, ip("10.0.0.1")) && t.contains(0, ip("10.0.0.9")));
        assert!(!t.contains(0, ip("10.0.0.2")) && t.contains(0, ip("10.0.0.3")));
        assert_eq!(t.mac_of(0, ip("10.0.0.1")), Some(M2));
    }

    // The hot answers in front of the map: each test looks an entry up
    // first, so that the later answer could come from there.

    #[test]
    fn a_looked_up_entry_still_turns_stale_and_goes() {
        let mut t = NeighTable::new(4);
        let a = ip("10.0.0.1");
        t.learn(0, a, M1, 1000);
        assert_eq!(t.lookup(0, a, 1001), Lookup::Reachable(M1));
        assert_eq!(
            t.lookup(0, a, 1000 + NEIGH_PROBE_AFTER_MS - 1),
            Lookup::Reachable(M1)
        );
        assert_eq!(
            t.lookup(0, a, 1000 + NEIGH_PROBE_AFTER_MS),
            Lookup::Stale(M1)
        );
        // Confirmed again: reachable for another probe period.
        t.learn(0, a, M1, 40_000);
        assert_eq!(t.lookup(0, a, 40_001), Lookup::Reachable(M1));
        assert_eq!(
            t.lookup(0, a, 40_000 + NEIGH_PROBE_AFTER_MS),
            Lookup::Stale(M1)
        );
        assert_eq!(t.lookup(0, a, 40_000 + NEIGH_MAX_AGE_MS), Lookup::Missing);
    }

    #[test]
    fn a_new_mac_or_a_permanent_entry_replaces_a_looked_up_one_at_once() {
        let mut t = NeighTable::new(4);
        let a = ip("10.0.0.1");
        t.learn(0, a, M1, 0);
        assert_eq!(t.lookup(0, a, 1), Lookup::Reachable(M1));
        t.learn(0, a, M2, 2);
        assert_eq!(t.lookup(0, a, 3), Lookup::Reachable(M2));
        t.set_permanent(0, a, M1);
        assert_eq!(t.lookup(0, a, 4), Lookup::Reachable(M1));
        assert_eq!(t.lookup(0, a, NEIGH_MAX_AGE_MS * 10), Lookup::Reachable(M1));
    }

    #[test]
    fn an_evicted_entry_is_missing_though_it_was_looked_up() {
        let mut t = NeighTable::new(1);
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        t.learn(0, a, M1, 0);
        assert_eq!(t.lookup(0, a, 1), Lookup::Reachable(M1));
        t.learn(0, b, M2, 2);
        assert_eq!(t.lookup(0, a, 3), Lookup::Missing);
        assert_eq!(t.lookup(0, b, 3), Lookup::Reachable(M2));
    }

    #[test]
    fn addresses_and_ports_that_share_a_hot_slot_get_their_own_answers() {
        let mut t = NeighTable::new(8);
        let a = ip("10.0.0.1");
        // Another address in a's slot, found by trying, and a on port 1.
        let b = (2..=255)
            .map(|i| IpAddr::from([10, 0, 0, i]))
            .find(|&b| hot_index(0, b) == hot_index(0, a))
            .expect("64 slots for 254 addresses");
        t.learn(0, a, M1, 0);
        t.learn(0, b, M2, 0);
        t.learn(1, a, M2, 0);
        for _ in 0..2 {
            assert_eq!(t.lookup(0, a, 1), Lookup::Reachable(M1));
            assert_eq!(t.lookup(0, b, 1), Lookup::Reachable(M2));
            assert_eq!(t.lookup(1, a, 1), Lookup::Reachable(M2));
            assert_eq!(t.lookup(2, a, 1), Lookup::Missing);
        }
    }

    #[test]
    fn pending_is_bounded_per_hop_and_in_total() {
        let mut p: Pending<u32> = Pending::new(10);
        assert_eq!(p.push(0, ip("10.0.0.1"), 0, 0), Ok(true));
        for i in 1..PENDING_PER_HOP as u32 {
            assert_eq!(p.push(0, ip("10.0.0.1"), i, 0), Ok(false));
        }
        assert_eq!(p.push(0, ip("10.0.0.1"), 99, 0), Err(99));
        assert_eq!(p.push(0, ip("10.0.0.2"), 100, 0), Ok(true));
        assert_eq!(p.push(0, ip("10.0.0.2"), 101, 0), Ok(false));
        assert_eq!(
            p.push(0, ip("10.0.0.3"), 102, 0),
            Err(102),
            "total capacity"
        );
        let mut got = vec![];
        p.take(0, ip("10.0.0.1"), |x| got.push(x));
        assert_eq!(got, (0..PENDING_PER_HOP as u32).collect::<Vec<_>>());
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn pending_retries_then_times_out() {
        let mut p: Pending<u32> = Pending::new(10);
        p.push(0, ip("10.0.0.1"), 7, 0).unwrap();
        let (mut retries, mut dropped) = (vec![], vec![]);
        p.expire(
            RESOLVE_RETRY_MS - 1,
            |_, i| retries.push(i),
            |x| dropped.push(x),
        );
        assert!(retries.is_empty());
        p.expire(
            RESOLVE_RETRY_MS,
            |_, i| retries.push(i),
            |x| dropped.push(x),
        );
        assert_eq!(retries, vec![ip("10.0.0.1")]);
        p.expire(
            PENDING_TIMEOUT_MS,
            |_, i| retries.push(i),
            |x| dropped.push(x),
        );
        assert_eq!(dropped, vec![7]);
        assert!(p.is_empty());
    }
}
