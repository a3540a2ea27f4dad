//! A worker's conn table under pressure, as the load-balancing stage meets
//! it: which packets that would open a conn may (the kernel's drop_packet,
//! per-service conn limits, per-source rate limits), room made for a new
//! conn (due conns expired first, then the oldest embryonic conn evicted),
//! and once a second the kernel's defence levels judged against the
//! table's free slots, with drop_entry's scan spread over the second.
//!
//! Expiry keeps up with any rate the table fills at: besides the budget
//! the worker spends on its timer wheel every millisecond, every new conn
//! first expires up to `EXPIRE_PER_NEW` due ones, so due conns are removed
//! faster than conns are made, whatever the rate.
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;

use hashbrown::HashMap;

use super::ratelimit::{SourceLimitConfig, SourceLimiter};
use crate::counters::{DropReason, PressureCounters};
use crate::ipvs::defense::{Defense, DefenseConfig, DropEntryCounters};
use crate::ipvs::{ConnId, ConnRef, ConnTable, Millis, Service, ServiceKey};

/// Due conns expired before each new conn is made: more than the one or
/// two (a template and its conn) a new conn inserts.
pub const EXPIRE_PER_NEW: usize = 4;

/// After a FULLNAT conn found every local port it probed taken, new conns
/// evict `EVICT_FOR_PORTS` embryonic conns each (one more than they take)
/// for this long, the first of them a batch as long as the allocator's
/// probe (`PORTS_BATCH`). The allocator hands ports out in its cursor's
/// order, so the oldest conns hold the ports it probes next; the failed
/// probe moved the cursor past a window of them, which the batch frees.
/// A flood holding the ports then gives them back as fast as it takes
/// them.
pub const PORTS_SHORT_MS: Millis = 1000;
pub const EVICT_FOR_PORTS: usize = 2;
pub const PORTS_BATCH: usize = crate::laddr::DEFAULT_MAX_PROBES + EVICT_FOR_PORTS;

/// rvsd's `[defense]` and `[limits]`, as every worker applies them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PressureConfig {
    pub defense: DefenseConfig,
    /// Per-source new-conn rate limits; None: none.
    pub source: Option<SourceLimitConfig>,
    /// The most conns a service may hold, all workers together (the sum of
    /// its real servers' ActiveConn and InActConn).
    pub service_limits: Vec<(ServiceKey, u64)>,
}

/// One worker's state.
#[derive(Debug)]
pub struct Pressure {
    defense: Defense,
    entry_counters: DropEntryCounters,
    limiter: Option<SourceLimiter>,
    limits: HashMap<ServiceKey, u64>,
    last_judged: Option<Millis>,
    /// drop_entry's scan this second: the next slot, the slots left and
    /// how many each millisecond's poll looks at.
    scan_at: u32,
    scan_left: usize,
    scan_step: usize,
    rng: u64,
    /// Until when new conns make way for local ports (`PORTS_SHORT_MS`),
    /// and whether the next one evicts a batch.
    ports_short_until: Millis,
    ports_batch: bool,
}

impl Pressure {
    pub fn new(cfg: &PressureConfig) -> Pressure {
        let seed = RandomState::new().build_hasher().finish() | 1;
        Pressure {
            defense: Defense::new(&cfg.defense),
            entry_counters: DropEntryCounters::default(),
            limiter: cfg.source.as_ref().map(SourceLimiter::new),
            limits: cfg.service_limits.iter().copied().collect(),
            last_judged: None,
            scan_at: 0,
            scan_left: 0,
            scan_step: 0,
            rng: seed,
            ports_short_until: 0,
            ports_batch: false,
        }
    }

    /// A FULLNAT conn found no local port free at `now`.
    pub fn ports_short(&mut self, now: Millis) {
        self.ports_short_until = now.saturating_add(PORTS_SHORT_MS);
        self.ports_batch = true;
    }

    /// Whether a packet from `src` that would open a conn of `svc` may:
    /// drop_packet first (where the kernel's conn_schedule asks), then the
    /// service's limit (its conns as worker `w` sees them: its own, and the
    /// others' as of their last fold), then the source's bucket (a token is
    /// taken only from a packet that passed the rest).
    ///
    /// In line at its one caller, a new conn's way, where the call cost
    /// about what the checks do (17 instructions a new conn).
    #[inline(always)]
    pub fn admit(
        &mut self,
        svc: &Service,
        src: IpAddr,
        now: Millis,
        w: usize,
    ) -> Result<(), DropReason> {
        if self.defense.todrop() {
            return Err(DropReason::DefenseDropPacket);
        }
        if !self.limits.is_empty() {
            if let Some(&max) = self.limits.get(&svc.key()) {
                let held: u64 = svc
                    .dests()
                    .iter()
                    .map(|d| u64::from(d.activeconns_at(w)) + u64::from(d.inactconns_at(w)))
                    .sum();
                if held >= max {
                    return Err(DropReason::ServiceConnLimit);
                }
            }
        }
        if let Some(l) = self.limiter.as_mut() {
            if !l.admit(src, now) {
                return Err(DropReason::SourceRateLimit);
            }
        }
        Ok(())
    }

    /// Room for a new conn that takes `need` slots: due conns expired (up
    /// to `EXPIRE_PER_NEW`), then, while that is not enough, the oldest
    /// embryonic conns evicted. A table full of established conns stays
    /// full, and the new conn is refused. Shortly after local ports ran
    /// out (`ports_short`), embryonic conns go first (`PORTS_SHORT_MS`).
    #[inline]
    pub fn make_room(
        &mut self,
        conns: &mut ConnTable,
        need: usize,
        now: Millis,
        counters: &PressureCounters,
        on_remove: impl FnMut(ConnId, ConnRef<'_>),
    ) {
        // Most new conns find room and nothing due: no call.
        if conns.expiry_due(now) || now < self.ports_short_until || conns.free_slots() < need {
            self.make_room_now(conns, need, now, counters, on_remove);
        }
    }

    /// `make_room` where there is something to do.
    #[inline(never)]
    fn make_room_now(
        &mut self,
        conns: &mut ConnTable,
        need: usize,
        now: Millis,
        counters: &PressureCounters,
        mut on_remove: impl FnMut(ConnId, ConnRef<'_>),
    ) {
        if conns.expiry_due(now) {
            conns.expire_with(now, EXPIRE_PER_NEW, &mut on_remove);
        }
        if now < self.ports_short_until {
            let n = if std::mem::take(&mut self.ports_batch) {
                PORTS_BATCH
            } else {
                EVICT_FOR_PORTS
            };
            for _ in 0..n {
                if !conns.evict_embryonic(&mut on_remove) {
                    break;
                }
                counters.evicted_ports.inc();
            }
        }
        while conns.free_slots() < need {
            if !conns.evict_embryonic(&mut on_remove) {
                break;
            }
            counters.evicted.inc();
        }
    }

    /// Every millisecond: the defence levels judged once a second (the
    /// first time at once, as the kernel does when its sysctls are
    /// written), and a step of drop_entry's scan.
    pub fn poll(
        &mut self,
        conns: &mut ConnTable,
        now: Millis,
        counters: &PressureCounters,
        mut on_remove: impl FnMut(ConnId, ConnRef<'_>),
    ) {
        if self
            .last_judged
            .is_none_or(|t| now.saturating_sub(t) >= 1000)
        {
            self.judge(conns, now, counters);
        }
        if self.scan_left > 0 {
            let step = self.scan_step.min(self.scan_left);
            let (next, removed) = conns.drop_entry_scan(
                self.scan_at,
                step,
                now,
                &mut self.entry_counters,
                &mut on_remove,
            );
            self.scan_at = next;
            self.scan_left -= step;
            counters.dropped_entries.add(removed as u64);
        }
    }

    /// update_defense_level with the table's free slots, and what follows
    /// from it: the TCP state table, and drop_entry's next scan of 1/32 of
    /// the slots in use from a random one (ip_vs_random_dropentry).
    fn judge(&mut self, conns: &mut ConnTable, now: Millis, counters: &PressureCounters) {
        self.last_judged = Some(now);
        self.defense.update(conns.free_slots() as u64);
        conns.set_secure_tcp(self.defense.secure_tcp_on());
        let (e, p, s) = self.defense.levels();
        counters.drop_entry.set(u64::from(e));
        counters.drop_packet.set(u64::from(p));
        counters.secure_tcp.set(u64::from(s));
        let used = conns.slots_used();
        if self.defense.drop_entry_on() && used > 0 {
            self.scan_left = (used / 32).max(1);
            self.scan_step = self.scan_left.div_ceil(1000);
            self.scan_at = (self.next_random() % used as u64) as u32;
        } else {
            self.scan_left = 0;
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: a scan's starting slot need only be unpredictable
        // enough that no slot is always passed over.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// The defence sysctls' current values.
    pub fn levels(&self) -> (u8, u8, u8) {
        self.defense.levels()
    }
}

/// Whether an Ethernet frame holds a TCP segment without data: under
/// secure_tcp the handshake's ACK finds its conn in SYNACK, as later client
/// segments do until the server's first ACK, and only a segment without
/// data may take TOA's bytes (a full-sized one would outgrow the MTU).
#[cold]
#[inline(never)]
pub fn tcp_without_data(frame: &[u8]) -> bool {
    use crate::wire::{EtherType, EthernetFrame, Ipv4Packet, Ipv6Packet, TcpPacket};
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    let Some(l3) = frame.get(14..) else {
        return false;
    };
    let (offset, end) = match eth.ethertype() {
        EtherType::IPV4 => match Ipv4Packet::new_checked(l3) {
            Ok(ip) => (ip.upper_layer().offset, usize::from(ip.total_len())),
            Err(_) => return false,
        },
        EtherType::IPV6 => match Ipv6Packet::new_checked(l3) {
            Ok(ip) => match ip.upper_layer() {
                Ok(u) => (u.offset, 40 + usize::from(ip.payload_len())),
                Err(_) => return false,
            },
            Err(_) => return false,
        },
        _ => return false,
    };
    l3.get(offset..end)
        .and_then(|l4| {
            TcpPacket::new_checked(l4)
                .ok()
                .map(|t| (l4.len(), t.header_len()))
        })
        .is_some_and(|(len, hl)| len == hl)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ipvs::{Conn, Dest, DestConfig, FwdMethod, TemplateKey};

    fn dest() -> Arc<Dest> {
        let mut c = DestConfig::new("192.168.1.10".parse().unwrap(), 80);
        c.fwd = FwdMethod::Masq;
        Arc::new(Dest::new(&c, 1))
    }

    /// A template living `ms`: the one kind of entry whose timeout a test
    /// outside `ipvs` can choose, and never embryonic, so nothing but
    /// expiry makes room for the next.
    fn short_lived(d: &Arc<Dest>, i: u32, ms: u32) -> Conn {
        let key = TemplateKey {
            proto: 6,
            client_net: IpAddr::V4(i.into()),
            vaddr: "10.0.0.1".parse().unwrap(),
            vport: 80,
        };
        Conn::template(&key, d, 80, ms)
    }

    /// 600 conns a millisecond (600 000 a second, more than twice what a
    /// 256-per-millisecond budget expires), each living 20 ms, for
    /// `ms` milliseconds; the worker's millisecond budget of 256 as `Lb::poll`
    /// spends it. Returns the refusals and the most conns held (stopping
    /// at the first refusal without `make_room`).
    fn fill(ms: u64, make_room: bool) -> (u64, usize) {
        let d = dest();
        let mut t = ConnTable::with_capacity(50_000);
        let mut p = Pressure::new(&PressureConfig::default());
        let c = PressureCounters::default();
        let (mut refused, mut most) = (0, 0);
        let mut i = 0u32;
        for now in 1..=ms {
            for _ in 0..600 {
                if make_room {
                    p.make_room(&mut t, 1, now, &c, |_, _| {});
                }
                i = i.wrapping_add(1);
                if t.insert(short_lived(&d, i, 20), Some(&d), now).is_err() {
                    refused += 1;
                }
            }
            if refused > 0 && !make_room {
                break;
            }
            t.expire(now, 256);
            most = most.max(t.len());
        }
        (refused, most)
    }

    #[test]
    fn expiry_keeps_up_with_600k_new_conns_a_second() {
        // With the per-new-conn expiry: 600 a ms held for at most 20 ms
        // plus the wheel's 16 ms tick and a ms: never more than 22 200.
        let (refused, most) = fill(500, true);
        assert_eq!(refused, 0);
        assert!(most <= 600 * 37, "{most}");
        // The millisecond budget alone falls behind (344 more held each
        // ms) and the table fills within 150 ms.
        let (refused, most) = fill(500, false);
        assert!(refused > 0 && most > 600 * 37, "{refused} {most}");
    }

    #[test]
    fn make_room_expires_before_it_evicts() {
        use crate::ipvs::proto::IPPROTO_TCP;
        let d = dest();
        let mut t = ConnTable::with_capacity(2);
        let mut p = Pressure::new(&PressureConfig::default());
        let c = PressureCounters::default();
        let conn = |port| {
            Conn::new(
                IPPROTO_TCP,
                ("192.0.2.1".parse().unwrap(), port),
                ("10.0.0.1".parse().unwrap(), 80),
                80,
                d.fwd(),
            )
        };
        // Two NONE conns (3 s to live), made at 0 and 1000.
        t.insert(conn(1), Some(&d), 0).unwrap();
        t.insert(conn(2), Some(&d), 1000).unwrap();
        // At 3100 the first is due: expired, not evicted.
        let mut gone = Vec::new();
        p.make_room(&mut t, 1, 3100, &c, |_, x| gone.push(x.cport()));
        assert_eq!((gone.clone(), c.evicted.get()), (vec![1], 0));
        t.insert(conn(3), Some(&d), 3100).unwrap();
        // Full, nothing due: the oldest embryonic (2) is evicted; two
        // slots wanted: 3 goes too.
        p.make_room(&mut t, 2, 3200, &c, |_, x| gone.push(x.cport()));
        assert_eq!((gone, c.evicted.get()), (vec![1, 2, 3], 2));
        assert!(t.is_empty());
    }

    #[test]
    fn drop_entry_at_level_3_scans_a_32nd_of_the_table_each_second() {
        use crate::ipvs::proto::{tcp_flags::SYN, Direction, Timeouts, IPPROTO_TCP};
        let d = dest();
        let to = Timeouts::new();
        let mut t = ConnTable::with_capacity(6400);
        for i in 0..6400u32 {
            let c = Conn::new(
                IPPROTO_TCP,
                (IpAddr::V4(i.into()), 1000),
                ("10.0.0.1".parse().unwrap(), 80),
                80,
                d.fwd(),
            );
            let id = t.insert(c, Some(&d), 0).unwrap();
            t.on_packet(id, Direction::Input, SYN, 0, &to);
        }
        let cfg = PressureConfig {
            defense: DefenseConfig {
                drop_entry: 3,
                ..DefenseConfig::default()
            },
            ..PressureConfig::default()
        };
        let mut p = Pressure::new(&cfg);
        let c = PressureCounters::default();
        // One poll a millisecond for a second: 6400 / 32 = 200 slots (one
        // a poll), all SYN_RECV, all removed.
        for now in 1..=1000 {
            p.poll(&mut t, now, &c, |_, _| {});
        }
        assert_eq!((c.dropped_entries.get(), t.len()), (200, 6200));
        assert_eq!(c.drop_entry.get(), 3);
        // The next second's 200 slots start elsewhere and may cross the
        // ones emptied already.
        for now in 1001..=2000 {
            p.poll(&mut t, now, &c, |_, _| {});
        }
        assert!((6000..6200).contains(&t.len()), "{}", t.len());
    }

    #[test]
    fn automatic_secure_tcp_follows_the_free_slots() {
        let d = dest();
        let mut t = ConnTable::with_capacity(1100);
        let cfg = PressureConfig {
            defense: DefenseConfig {
                secure_tcp: 1,
                amemthresh: 100,
                ..DefenseConfig::default()
            },
            ..PressureConfig::default()
        };
        let mut p = Pressure::new(&cfg);
        let c = PressureCounters::default();
        p.poll(&mut t, 0, &c, |_, _| {});
        assert!(!t.secure_tcp());
        // 1001 held: 99 free, below 100.
        for i in 0..1001 {
            t.insert(short_lived(&d, i, 60_000), Some(&d), 0).unwrap();
        }
        p.poll(&mut t, 999, &c, |_, _| {});
        assert!(!t.secure_tcp(), "judged once a second");
        p.poll(&mut t, 1000, &c, |_, _| {});
        assert!(t.secure_tcp());
        assert_eq!(c.secure_tcp.get(), 2);
    }

    #[test]
    fn a_service_at_its_limit_and_a_source_over_its_rate_are_refused() {
        use crate::ipvs::{Protocol, ServiceConfig, ServiceTable};
        let key = ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "10.0.0.1".parse().unwrap(),
            port: 80,
        };
        let mut table = ServiceTable::new(1);
        table.add_service(ServiceConfig::new(key)).unwrap();
        table
            .add_dest(&key, DestConfig::new("192.168.1.10".parse().unwrap(), 80))
            .unwrap();
        let svcs = table.snapshot();
        let svc = svcs.services()[0].clone();
        let cfg = PressureConfig {
            source: Some(SourceLimitConfig {
                rate: 1,
                burst: 2,
                table: 64,
                prefix_v4: 32,
                prefix_v6: 64,
            }),
            service_limits: vec![(key, 1)],
            ..PressureConfig::default()
        };
        let mut p = Pressure::new(&cfg);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(p.admit(&svc, a, 0, 0), Ok(()));
        assert_eq!(p.admit(&svc, a, 0, 0), Ok(()));
        assert_eq!(p.admit(&svc, a, 0, 0), Err(DropReason::SourceRateLimit));
        // One conn held by the service's real server: the limit of 1.
        let mut t = ConnTable::with_capacity(4);
        let dst = svc.dests()[0].clone();
        t.insert(
            Conn::new(6, (a, 1), ("10.0.0.1".parse().unwrap(), 80), 80, dst.fwd()),
            Some(&dst),
            0,
        )
        .unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(p.admit(&svc, b, 0, 0), Err(DropReason::ServiceConnLimit));
    }
}
