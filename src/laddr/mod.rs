//! FULLNAT local addresses (LIPs) and their ports, split among workers the
//! way DPVS's sa_pool splits them among lcores.
//!
//! A service's [`LaddrPool`] names its LIPs and a port range. Worker `i` of
//! `n` owns the ports with `port & mask == i`, `mask` being
//! `n.next_power_of_two() - 1`; the ports of slots `n..=mask` are never
//! used. So the owner of a reply to LIP:lport is known from the port alone
//! ([`PortSteer::owner_of`]): an rte_flow rule on the masked destination
//! port can queue it there, or the receiving worker can hand it over.
//!
//! Where the replies' port spreads by RSS, the slices give way: an aimed
//! allocation ([`Target`]) takes any port of the range whose reply tuple
//! the device hashes to the worker's own queue, so replies arrive where
//! the conn is without a rule or a ring, and every worker can use about
//! 1/n of every (LIP, real server) pair's ports rather than of each LIP's.
//!
//! Each worker holds its own [`LaddrAllocator`] per pool: no lock, no
//! shared state. A port is free toward a real server when the conn table
//! has no conn with that out-tuple (RS:rport → LIP:lport), so one
//! LIP:lport can serve many servers at once, as DPVS's per-destination
//! pools allow; the caller's `is_free` closure asks the table. Each LIP
//! and protocol keeps a bitmap of the worker's slice ([`Slice`]): a port
//! the allocator handed out and no conn has given back. It is a hint, not
//! the truth: a port shared with another server's conn clears when either
//! conn ends, conns the allocator never made (another service's on the
//! same address, a peer's synced ones) are not in it, and a port bound to
//! a conn whose insert then found no room stays set until the sweep hands
//! it out and its conn ends (the index's spread keeps that to a table at
//! its capacity, which is checked before the bind). The next port
//! after the cursor whose bit is clear is taken once the table agrees
//! (the same index line the conn's insert reads next), so a slice fills
//! to its last port with one lookup per conn, however few are left. When
//! every bit is set, the cursor sweeps the ports a bounded number of
//! candidates at a time, each asked of the table: ports other servers'
//! conns hold serve this one too. Allocation costs at most that many table
//! lookups whatever the load.

pub mod seed;

use std::net::IpAddr;
use std::ops::RangeInclusive;

use thiserror::Error;

use crate::rss::Spread;

/// The port range DPVS and rvs use by default: everything above the
/// well-known ports.
pub const DEFAULT_PORTS: RangeInclusive<u16> = 1025..=65535;

/// Candidates tried per allocation, all LIPs together.
pub const DEFAULT_MAX_PROBES: usize = 32;

/// Most workers a pool can be split among.
pub const MAX_WORKERS: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LaddrError {
    #[error("a local address pool needs at least one address")]
    NoAddresses,
    #[error("local address {0} is listed twice")]
    Duplicate(IpAddr),
    #[error("local address {0} is not a unicast address")]
    NotUnicast(IpAddr),
    #[error("empty local port range {0}-{1}")]
    EmptyRange(u16, u16),
    #[error("worker {worker} of {workers}: need 1 to {MAX_WORKERS} workers and worker < workers")]
    BadWorker { worker: usize, workers: usize },
    #[error("the port range {0}-{1} leaves worker {2} no ports")]
    NoPortsForWorker(u16, u16, usize),
}

/// A FULLNAT service's local addresses and port range (immutable; the
/// control plane builds a new one on change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaddrPool {
    lips: Vec<IpAddr>,
    ports: RangeInclusive<u16>,
}

impl LaddrPool {
    /// A pool over `lips` (IPv4 and IPv6 may be mixed) and the default
    /// port range.
    pub fn new(lips: Vec<IpAddr>) -> Result<LaddrPool, LaddrError> {
        LaddrPool::with_ports(lips, DEFAULT_PORTS)
    }

    pub fn with_ports(
        lips: Vec<IpAddr>,
        ports: RangeInclusive<u16>,
    ) -> Result<LaddrPool, LaddrError> {
        if lips.is_empty() {
            return Err(LaddrError::NoAddresses);
        }
        for (i, a) in lips.iter().enumerate() {
            if lips[..i].contains(a) {
                return Err(LaddrError::Duplicate(*a));
            }
            if a.is_unspecified() || a.is_multicast() || a.is_loopback() {
                return Err(LaddrError::NotUnicast(*a));
            }
            if let IpAddr::V4(v4) = a {
                if v4.is_broadcast() {
                    return Err(LaddrError::NotUnicast(*a));
                }
            }
        }
        if ports.is_empty() || *ports.start() == 0 {
            return Err(LaddrError::EmptyRange(*ports.start(), *ports.end()));
        }
        Ok(LaddrPool { lips, ports })
    }

    pub fn lips(&self) -> &[IpAddr] {
        &self.lips
    }

    pub fn ports(&self) -> RangeInclusive<u16> {
        self.ports.clone()
    }
}

/// Which worker owns a local port: the rule both the allocator and the
/// return-traffic steering follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSteer {
    workers: u16,
    mask: u16,
}

impl PortSteer {
    pub fn new(workers: usize) -> Result<PortSteer, LaddrError> {
        if workers == 0 || workers > MAX_WORKERS {
            return Err(LaddrError::BadWorker { worker: 0, workers });
        }
        Ok(PortSteer {
            workers: workers as u16,
            mask: (workers.next_power_of_two() - 1) as u16,
        })
    }

    /// One worker owning every port.
    pub fn single() -> PortSteer {
        PortSteer {
            workers: 1,
            mask: 0,
        }
    }

    pub fn workers(&self) -> usize {
        usize::from(self.workers)
    }

    /// `port & mask` selects the worker.
    pub fn mask(&self) -> u16 {
        self.mask
    }

    /// The worker owning `lport`, or None for a port of an unused slot
    /// (no conn can have it, so the packet is not for any worker).
    pub fn owner_of(&self, lport: u16) -> Option<usize> {
        let w = lport & self.mask;
        (w < self.workers).then_some(usize::from(w))
    }

    /// The (mask, value) pair of an rte_flow rule matching `worker`'s
    /// ports: destination port & mask == value.
    pub fn flow_match(&self, worker: usize) -> Option<(u16, u16)> {
        (worker < self.workers()).then_some((self.mask, worker as u16))
    }
}

/// What an allocator has done, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaddrStats {
    pub allocations: u64,
    /// Allocations that found no free port (or no LIP of the family): each
    /// is a new conn dropped.
    pub failures: u64,
    pub releases: u64,
}

/// The ports of a worker's slice its allocator has handed out and not yet
/// had back, one bit each (index `k` of the slice's sequence): at most
/// 8 KiB for a whole 16-bit range, `1/n` of that for `n` workers.
#[derive(Debug, Clone, Default)]
struct Slice {
    bits: Vec<u64>,
    set: u32,
}

impl Slice {
    fn new(count: u32) -> Slice {
        Slice {
            bits: vec![0; count.div_ceil(64) as usize],
            set: 0,
        }
    }

    /// The first clear bit from `from` on, wrapping, below `count`.
    #[inline]
    fn next_clear(&self, from: u32, count: u32) -> Option<u32> {
        let n = self.bits.len();
        let first = (from / 64) as usize;
        // From the cursor to the end of its word: in a sweep of a slice
        // not yet full, the cursor's own port.
        let here = !*self.bits.get(first)? & (!0u64 << (from % 64));
        let k = first as u32 * 64 + here.trailing_zeros();
        if here != 0 && k < count {
            return Some(k);
        }
        if self.set >= count {
            return None;
        }
        // The words after, round to the cursor's again for its bits below
        // `from`. Past `count` in the last word every bit is clear: none
        // of those is a port.
        let mut w = first;
        for i in 1..=n {
            w = if w + 1 == n { 0 } else { w + 1 };
            let mut free = !self.bits[w];
            if i == n {
                free &= !(!0u64 << (from % 64));
            }
            let k = w as u32 * 64 + free.trailing_zeros();
            if free != 0 && k < count {
                return Some(k);
            }
        }
        None
    }

    fn take(&mut self, k: u32) {
        if let Some(w) = self.bits.get_mut((k / 64) as usize) {
            if *w & 1 << (k % 64) == 0 {
                *w |= 1 << (k % 64);
                self.set += 1;
            }
        }
    }

    fn give_back(&mut self, k: u32) {
        if let Some(w) = self.bits.get_mut((k / 64) as usize) {
            if *w & 1 << (k % 64) != 0 {
                *w &= !(1 << (k % 64));
                self.set -= 1;
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Lip {
    addr: IpAddr,
    /// Next index into this worker's port sequence, one for TCP and one
    /// for every other protocol, so each sweeps its own space.
    cursor: [u32; 2],
    /// The slice's ports handed out, per protocol as the cursors are.
    taken: [Slice; 2],
    /// The same over the whole range, for aimed allocations (`Target`).
    aim_cursor: [u32; 2],
    in_use: u32,
    /// Candidate ports found taken (DPVS's nport_conflict).
    conflicts: u64,
}

impl Lip {
    /// The next candidate of the slice for class `ci` (of `count` ports):
    /// the first port from the cursor no conn of this worker holds, once
    /// every bit is set the cursor's own (the sweep); the cursor moves past
    /// it.
    #[inline(always)]
    fn next_candidate(&mut self, ci: usize, count: u32) -> u32 {
        let cursor = self.cursor[ci];
        let idx = self.taken[ci].next_clear(cursor, count).unwrap_or(cursor);
        self.cursor[ci] = if idx + 1 >= count { 0 } else { idx + 1 };
        idx
    }

    /// Candidate `idx` of class `ci` handed out.
    #[inline(always)]
    fn hand_out(&mut self, ci: usize, idx: u32) {
        self.taken[ci].take(idx);
        self.in_use = self.in_use.saturating_add(1);
    }
}

/// One worker's allocator over one pool.
#[derive(Debug, Clone)]
pub struct LaddrAllocator {
    steer: PortSteer,
    worker: u16,
    /// This worker's ports are `first + k * stride` for k in 0..count.
    first: u32,
    stride: u32,
    count: u32,
    lips: Vec<Lip>,
    /// Indexes into `lips` by family, for round robin within a family.
    v4: Vec<usize>,
    v6: Vec<usize>,
    next_v4: usize,
    next_v6: usize,
    max_probes: usize,
    /// Candidates per LIP when every LIP of the family may serve (v4, v6):
    /// `max_probes` over their number, worked out once, not divided per
    /// conn.
    per_lip: [usize; 2],
    stats: LaddrStats,
    /// The pool's whole range, which aimed allocations sweep.
    lo: u32,
    span: u32,
    /// Some port was aimed: ports are no longer this worker's by slice.
    aimed: bool,
}

/// Where a FULLNAT conn's replies must arrive: the port they come in on
/// spreads by RSS (`spread`), and this worker polls `queue` there. An aimed
/// allocation takes only ports whose reply tuple lands on that queue, from
/// the whole range rather than a slice (DESIGN.md, "Per-lcore ownership").
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub spread: &'a Spread,
    pub queue: u16,
}

/// Raw candidates an aimed allocation may pass over per probe: with K
/// queues one in K lands on the worker's, so this bounds a sweep only
/// when the table is uneven far beyond what a device sets.
const AIM_SCAN_PER_PROBE: usize = 64;

impl LaddrAllocator {
    /// Worker `worker` of `workers`'s allocator over `pool`. `seed` spreads
    /// the cursors' starting points (pass a per-run random value so local
    /// ports are not predictable from one start to the next).
    pub fn new(
        pool: &LaddrPool,
        worker: usize,
        workers: usize,
        seed: u64,
    ) -> Result<LaddrAllocator, LaddrError> {
        let steer = PortSteer::new(workers)?;
        if worker >= workers {
            return Err(LaddrError::BadWorker { worker, workers });
        }
        let (lo, hi) = (u32::from(*pool.ports.start()), u32::from(*pool.ports.end()));
        let stride = u32::from(steer.mask) + 1;
        let w = worker as u32;
        let mut first = (lo & !(stride - 1)) | w;
        if first < lo {
            first += stride;
        }
        let count = if first > hi {
            0
        } else {
            (hi - first) / stride + 1
        };
        if count == 0 {
            return Err(LaddrError::NoPortsForWorker(lo as u16, hi as u16, worker));
        }
        let mut x = seed ^ 0x9e37_79b9_7f4a_7c15;
        let lips: Vec<Lip> = pool
            .lips
            .iter()
            .map(|&addr| {
                let mut c = [0u32; 2];
                let mut a = [0u32; 2];
                // Seed 0: every cursor starts at the first port, so the
                // ports a worker hands out are reproducible (tests, and
                // operators reading -Lnc after a restart).
                if seed != 0 {
                    for v in &mut c {
                        x = splitmix(x);
                        *v = (x % u64::from(count)) as u32;
                    }
                    for v in &mut a {
                        x = splitmix(x);
                        *v = (x % u64::from(hi - lo + 1)) as u32;
                    }
                }
                Lip {
                    addr,
                    cursor: c,
                    taken: [Slice::new(count), Slice::new(count)],
                    aim_cursor: a,
                    in_use: 0,
                    conflicts: 0,
                }
            })
            .collect();
        let v4: Vec<usize> = (0..lips.len())
            .filter(|&i| lips[i].addr.is_ipv4())
            .collect();
        let v6: Vec<usize> = (0..lips.len())
            .filter(|&i| lips[i].addr.is_ipv6())
            .collect();
        let per_lip = [v4.len(), v6.len()].map(|n| per_lip(DEFAULT_MAX_PROBES, n));
        Ok(LaddrAllocator {
            per_lip,
            steer,
            worker: worker as u16,
            first,
            stride,
            count,
            lips,
            v4,
            v6,
            next_v4: 0,
            next_v6: 0,
            max_probes: DEFAULT_MAX_PROBES,
            stats: LaddrStats::default(),
            lo,
            span: hi - lo + 1,
            aimed: false,
        })
    }

    /// Sets the number of candidates one allocation may try (at least 1).
    pub fn with_max_probes(mut self, n: usize) -> LaddrAllocator {
        self.max_probes = n.max(1);
        self.per_lip = [self.v4.len(), self.v6.len()].map(|k| per_lip(self.max_probes, k));
        self
    }

    pub fn worker(&self) -> usize {
        usize::from(self.worker)
    }

    pub fn steer(&self) -> PortSteer {
        self.steer
    }

    /// The worker owning `lport` (see [`PortSteer::owner_of`]).
    pub fn owner_of(&self, lport: u16) -> Option<usize> {
        self.steer.owner_of(lport)
    }

    /// How many ports of each LIP this worker owns.
    pub fn ports_per_lip(&self) -> usize {
        self.count as usize
    }

    /// A local address and port for a new conn to real server `rs`, of the
    /// server's family. Round robin over the family's LIPs; on each, up to
    /// a share of the probe budget of this worker's ports from the LIP's
    /// cursor (those whose bit is clear first, then any), taking the first
    /// that `is_free(lip, lport)` accepts. None when the budget is spent or
    /// the pool has no LIP of that family.
    #[inline(always)]
    pub fn alloc(
        &mut self,
        rs: (IpAddr, u16),
        proto: u8,
        is_free: impl Fn(IpAddr, u16) -> bool,
    ) -> Option<(IpAddr, u16)> {
        // The sweep's first candidate, which a pool not near full takes,
        // tried straight: the sweep's loop set itself up for more (its
        // values kept on the stack across the candidates' checks) for a
        // conn that almost never needs more. One found taken is counted
        // as the sweep counts it, which goes on from the next.
        let v6 = rs.0.is_ipv6();
        let (family, next) = if v6 {
            (&self.v6, self.next_v6)
        } else {
            (&self.v4, self.next_v4)
        };
        if let Some(&li) = family.get(next) {
            let n = family.len();
            let ci = class(proto);
            let count = self.count;
            let lip = &mut self.lips[li];
            let idx = lip.next_candidate(ci, count);
            let port = (self.first + idx * self.stride) as u16;
            if is_free(lip.addr, port) {
                lip.hand_out(ci, idx);
                let after = if next + 1 < n { next + 1 } else { 0 };
                *(if v6 {
                    &mut self.next_v6
                } else {
                    &mut self.next_v4
                }) = after;
                self.stats.allocations += 1;
                return Some((lip.addr, port));
            }
            lip.conflicts += 1;
            return self.sweep(rs, proto, 1, is_free);
        }
        self.sweep(rs, proto, 0, is_free)
    }

    /// `alloc`'s sweep, `tried` candidates of its first address past:
    /// out of line.
    #[inline(never)]
    fn sweep(
        &mut self,
        rs: (IpAddr, u16),
        proto: u8,
        tried: usize,
        is_free: impl Fn(IpAddr, u16) -> bool,
    ) -> Option<(IpAddr, u16)> {
        self.alloc_among(rs, proto, None::<fn(IpAddr) -> bool>, None, tried, is_free)
    }

    /// `alloc` (`alloc_on` with `usable`) whose replies land on `target`'s
    /// queue where its spread hashes them; else as without a target.
    pub fn alloc_aimed(
        &mut self,
        rs: (IpAddr, u16),
        proto: u8,
        usable: Option<impl Fn(IpAddr) -> bool>,
        target: Option<Target<'_>>,
        is_free: impl Fn(IpAddr, u16) -> bool,
    ) -> Option<(IpAddr, u16)> {
        self.alloc_among(rs, proto, usable, target, 0, is_free)
    }

    /// `alloc` among the LIPs `usable` accepts (those on the port the real
    /// server is reached through): the others are passed over as if they
    /// were not in the pool.
    pub fn alloc_on(
        &mut self,
        rs: (IpAddr, u16),
        proto: u8,
        usable: impl Fn(IpAddr) -> bool,
        is_free: impl Fn(IpAddr, u16) -> bool,
    ) -> Option<(IpAddr, u16)> {
        self.alloc_among(rs, proto, Some(usable), None, 0, is_free)
    }

    /// `alloc_on`, where None is every LIP of the family without a scan of
    /// them per allocation (the common case, and `alloc`'s), the first
    /// LIP's first `tried` candidates of the slice already found taken
    /// (`alloc`'s first try).
    fn alloc_among(
        &mut self,
        rs: (IpAddr, u16),
        proto: u8,
        only: Option<impl Fn(IpAddr) -> bool>,
        target: Option<Target<'_>>,
        tried: usize,
        is_free: impl Fn(IpAddr, u16) -> bool,
    ) -> Option<(IpAddr, u16)> {
        let usable = |a: IpAddr| only.as_ref().is_none_or(|u| u(a));
        let v6 = rs.0.is_ipv6();
        let (family, next) = if v6 {
            (&self.v6, &mut self.next_v6)
        } else {
            (&self.v4, &mut self.next_v4)
        };
        let n = family.len();
        let allowed = match &only {
            None => n,
            Some(u) => family.iter().filter(|&&li| u(self.lips[li].addr)).count(),
        };
        if allowed == 0 {
            self.stats.failures += 1;
            return None;
        }
        let per_lip = match &only {
            None => self.per_lip[usize::from(v6)],
            Some(_) => per_lip(self.max_probes, allowed),
        };
        let mut tries_lips = allowed.min(self.max_probes);
        let ci = class(proto);
        // Wrapped by a compare, not `%`: a division is tens of cycles.
        let start = if *next < n { *next } else { 0 };
        for k in 0..n {
            if tries_lips == 0 {
                break;
            }
            let slot = if start + k < n {
                start + k
            } else {
                start + k - n
            };
            let li = family[slot];
            if !usable(self.lips[li].addr) {
                continue;
            }
            tries_lips -= 1;
            let lip = &mut self.lips[li];
            let aim = target.and_then(|t| Some((t.spread.aim(proto, rs, lip.addr)?, t.queue)));
            if let Some((aim, queue)) = aim {
                self.aimed = true;
                let mut probes = 0;
                for _ in 0..(per_lip * AIM_SCAN_PER_PROBE).min(self.span as usize) {
                    let idx = lip.aim_cursor[ci];
                    lip.aim_cursor[ci] = if idx + 1 >= self.span { 0 } else { idx + 1 };
                    let port = (self.lo + idx) as u16;
                    if aim.queue(port) != queue {
                        continue;
                    }
                    if is_free(lip.addr, port) {
                        lip.in_use = lip.in_use.saturating_add(1);
                        *next = if slot + 1 < n { slot + 1 } else { 0 };
                        self.stats.allocations += 1;
                        return Some((lip.addr, port));
                    }
                    lip.conflicts += 1;
                    probes += 1;
                    if probes == per_lip {
                        break;
                    }
                }
                continue;
            }
            let past = if k == 0 { tried } else { 0 };
            for _ in past..per_lip.min(self.count as usize) {
                let idx = lip.next_candidate(ci, self.count);
                let port = (self.first + idx * self.stride) as u16;
                // A port another conn holds (another service's, a peer's
                // synced one) keeps its bit clear: nothing of this
                // allocator's would clear it again, and the cursor is
                // past it for a round of the slice.
                if is_free(lip.addr, port) {
                    lip.hand_out(ci, idx);
                    *next = if slot + 1 < n { slot + 1 } else { 0 };
                    self.stats.allocations += 1;
                    return Some((lip.addr, port));
                }
                lip.conflicts += 1;
            }
        }
        *next = if start + 1 < n { start + 1 } else { 0 };
        self.stats.failures += 1;
        None
    }

    /// A conn of protocol `proto` holding `lip`:`lport` is gone. Unknown
    /// addresses and other workers' ports are ignored: the pool may have
    /// been replaced while the conn lived. The port's bit clears though
    /// another server's conn may still hold it: the table is asked before
    /// it is handed out again.
    pub fn release(&mut self, lip: IpAddr, lport: u16, proto: u8) {
        if !self.aimed && self.steer.owner_of(lport) != Some(self.worker()) {
            return;
        }
        let ci = class(proto);
        let k = u32::from(lport)
            .checked_sub(self.first)
            .filter(|d| d % self.stride == 0)
            .map(|d| d / self.stride);
        if let Some(l) = self.lips.iter_mut().find(|l| l.addr == lip) {
            l.in_use = l.in_use.saturating_sub(1);
            if let Some(k) = k {
                l.taken[ci].give_back(k);
            }
            self.stats.releases += 1;
        }
    }

    /// Conns bound to `lip` by this worker, if it is in the pool.
    pub fn in_use(&self, lip: IpAddr) -> Option<u32> {
        self.lips.iter().find(|l| l.addr == lip).map(|l| l.in_use)
    }

    /// Candidate ports of `lip` this worker found taken, if it is in the pool.
    pub fn conflicts(&self, lip: IpAddr) -> Option<u64> {
        self.lips
            .iter()
            .find(|l| l.addr == lip)
            .map(|l| l.conflicts)
    }

    /// Takes over what `old`, the allocator of the pool this one replaces,
    /// counted for the addresses both have: the conns it bound are still
    /// there and will be released here.
    pub fn carry_counts(&mut self, old: &LaddrAllocator) {
        for l in &mut self.lips {
            if let Some(o) = old.lips.iter().find(|o| o.addr == l.addr) {
                l.in_use = o.in_use;
                l.conflicts = o.conflicts;
                if (old.first, old.stride, old.count) == (self.first, self.stride, self.count) {
                    l.taken = o.taken.clone();
                }
            }
        }
    }

    pub fn stats(&self) -> LaddrStats {
        self.stats
    }
}

/// Candidates per LIP of `lips` that may serve, `max_probes` in all (at
/// least one each).
fn per_lip(max_probes: usize, lips: usize) -> usize {
    (max_probes / lips.max(1)).max(1)
}

/// A protocol's cursors and bitmaps: TCP's, or every other protocol's,
/// so that each sweeps its own space.
fn class(proto: u8) -> usize {
    usize::from(proto != crate::ipvs::proto::IPPROTO_TCP)
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::collections::HashSet;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const TCP: u8 = 6;
    const UDP: u8 = 17;

    /// A stand-in for the conn table's out-tuple index.
    #[derive(Default)]
    struct Table(HashSet<(u8, IpAddr, u16, IpAddr, u16)>);

    impl Table {
        fn alloc(
            &mut self,
            a: &mut LaddrAllocator,
            rs: (IpAddr, u16),
            proto: u8,
        ) -> Option<(IpAddr, u16)> {
            let got = a.alloc(rs, proto, |lip, lport| {
                !self.0.contains(&(proto, rs.0, rs.1, lip, lport))
            })?;
            assert!(
                self.0.insert((proto, rs.0, rs.1, got.0, got.1)),
                "handed out a taken port"
            );
            Some(got)
        }
        fn free(&mut self, a: &mut LaddrAllocator, rs: (IpAddr, u16), proto: u8, l: (IpAddr, u16)) {
            assert!(self.0.remove(&(proto, rs.0, rs.1, l.0, l.1)));
            a.release(l.0, l.1, proto);
        }
    }

    #[test]
    fn every_port_belongs_to_its_worker() {
        let pool = LaddrPool::new(vec![ip("10.0.0.250")]).unwrap();
        for n in 1..=9usize {
            let mask = (n.next_power_of_two() - 1) as u16;
            let mut seen = HashSet::new();
            for w in 0..n {
                let mut a = LaddrAllocator::new(&pool, w, n, w as u64).unwrap();
                assert_eq!(a.steer().mask(), mask);
                assert_eq!(a.steer().flow_match(w), Some((mask, w as u16)));
                let mut t = Table::default();
                let rs = (ip("10.0.0.21"), 80);
                for _ in 0..300 {
                    let (_, p) = t.alloc(&mut a, rs, TCP).unwrap();
                    assert_eq!(usize::from(p & mask), w, "n {n} worker {w} port {p}");
                    assert!(p >= 1025);
                    assert_eq!(a.owner_of(p), Some(w));
                    assert!(seen.insert(p), "two workers share port {p}");
                }
            }
            // Ports of slots past the last worker belong to nobody.
            let steer = PortSteer::new(n).unwrap();
            for p in [1025u16, 4000, 65535] {
                let slot = usize::from(p & mask);
                assert_eq!(steer.owner_of(p), (slot < n).then_some(slot));
            }
            assert_eq!(steer.flow_match(n), None);
        }
    }

    #[test]
    fn worker_port_counts_cover_the_range() {
        let pool = LaddrPool::with_ports(vec![ip("10.0.0.250")], 1000..=1999).unwrap();
        let total: usize = (0..4)
            .map(|w| LaddrAllocator::new(&pool, w, 4, 0).unwrap().ports_per_lip())
            .sum();
        assert_eq!(total, 1000);
        // Three workers use slots 0..3 of four: a quarter of the range idles.
        let total: usize = (0..3)
            .map(|w| LaddrAllocator::new(&pool, w, 3, 0).unwrap().ports_per_lip())
            .sum();
        assert_eq!(total, 750);
    }

    #[test]
    fn exhaustion_release_and_reuse_across_servers() {
        let lip = ip("10.0.0.250");
        let pool = LaddrPool::with_ports(vec![lip], 2000..=2015).unwrap();
        let mut a = LaddrAllocator::new(&pool, 0, 1, 7).unwrap();
        let mut t = Table::default();
        let rs1 = (ip("10.0.0.21"), 80);
        let rs2 = (ip("10.0.0.22"), 80);
        let mut got = Vec::new();
        for _ in 0..16 {
            got.push(t.alloc(&mut a, rs1, TCP).unwrap());
        }
        let ports: HashSet<u16> = got.iter().map(|g| g.1).collect();
        assert_eq!(ports.len(), 16);
        assert_eq!(a.conflicts(lip), Some(0), "sixteen free ports, none taken");
        assert_eq!(t.alloc(&mut a, rs1, TCP), None);
        assert_eq!(a.stats().failures, 1);
        assert_eq!(a.in_use(lip), Some(16));
        // All 16 ports were tried and each was taken.
        assert_eq!(a.conflicts(lip), Some(16));
        // The same LIP:lport again, toward another server.
        let other = t.alloc(&mut a, rs2, TCP).unwrap();
        assert!(ports.contains(&other.1));
        // And for UDP toward the first server.
        assert!(t.alloc(&mut a, rs1, UDP).is_some());
        // Freed ports come back.
        t.free(&mut a, rs1, TCP, got[5]);
        assert_eq!(t.alloc(&mut a, rs1, TCP), Some(got[5]));
        let s = a.stats();
        assert_eq!((s.allocations, s.failures, s.releases), (19, 1, 1));
        assert_eq!(a.in_use(lip), Some(18));
        assert_eq!(a.in_use(ip("10.9.9.9")), None);
        // A release for another worker's port or an unknown LIP is ignored.
        a.release(ip("10.9.9.9"), 2000, TCP);
        assert_eq!(a.stats().releases, 1);
        // A pool with another address added takes over the counts.
        let other = ip("10.0.0.251");
        let bigger = LaddrPool::with_ports(vec![other, lip], 2000..=2015).unwrap();
        let mut b = LaddrAllocator::new(&bigger, 0, 1, 7).unwrap();
        b.carry_counts(&a);
        assert_eq!(
            (b.in_use(lip), b.conflicts(lip)),
            (Some(18), a.conflicts(lip))
        );
        assert_eq!((b.in_use(other), b.conflicts(other)), (Some(0), Some(0)));
        b.release(lip, got[0].1, TCP);
        assert_eq!(b.in_use(lip), Some(17));
    }

    /// The slice's bitmap: a worker's ports fill to the last with one
    /// table question each; ports given back come round again in the
    /// cursor's order, each found with one question however few are left
    /// (the sweep alone asks 32 from the cursor and gives up); once every
    /// bit is set, the sweep still shares ports held toward other servers.
    #[test]
    fn a_slice_fills_to_its_last_port_and_finds_each_freed_one_with_one_lookup() {
        let lip = ip("10.0.0.250");
        let pool = LaddrPool::with_ports(vec![lip], 2000..=2999).unwrap();
        let mut a = LaddrAllocator::new(&pool, 0, 1, 0).unwrap();
        let mut t = Table::default();
        let (rs1, rs2) = ((ip("10.0.0.21"), 80), (ip("10.0.0.22"), 80));
        let asked = Cell::new(0usize);
        let alloc = |a: &mut LaddrAllocator, t: &mut Table, rs: (IpAddr, u16)| {
            let got = a.alloc(rs, TCP, |lip, lport| {
                asked.set(asked.get() + 1);
                !t.0.contains(&(TCP, rs.0, rs.1, lip, lport))
            })?;
            assert!(t.0.insert((TCP, rs.0, rs.1, got.0, got.1)));
            Some(got)
        };
        let mut got = Vec::new();
        for n in 1..=1000 {
            got.push(alloc(&mut a, &mut t, rs1).expect("a free port"));
            assert_eq!(asked.get(), n, "one question per port");
        }
        let freed = [100, 350, 600, 601, 999];
        for &i in &freed {
            t.free(&mut a, rs1, TCP, got[i]);
        }
        for &i in &freed {
            let before = asked.get();
            assert_eq!(alloc(&mut a, &mut t, rs1), Some(got[i]));
            assert_eq!(asked.get(), before + 1, "port {} in one question", got[i].1);
        }
        let (before, conflicts) = (asked.get(), a.conflicts(lip).unwrap());
        assert_eq!(alloc(&mut a, &mut t, rs1), None, "all 1000 held");
        assert_eq!(
            asked.get(),
            before + DEFAULT_MAX_PROBES,
            "each candidate asked once"
        );
        let counted = a.conflicts(lip).unwrap() - conflicts;
        assert_eq!(counted, DEFAULT_MAX_PROBES as u64, "and counted once");
        assert!(alloc(&mut a, &mut t, rs2).is_some(), "shared with rs2");
        assert_eq!(a.in_use(lip), Some(1001));
    }

    /// `Slice::next_clear` from every position: the next clear bit on,
    /// round past the end to the ones below, never one past `count`.
    #[test]
    fn the_next_clear_bit_wraps_and_stops_at_the_count() {
        let count = 70;
        let mut s = Slice::new(count);
        for k in 0..count {
            s.take(k);
        }
        assert_eq!(s.next_clear(0, count), None, "all taken");
        s.give_back(3);
        s.give_back(69);
        for from in 0..count {
            let want = if (4..=69).contains(&from) { 69 } else { 3 };
            assert_eq!(s.next_clear(from, count), Some(want), "from {from}");
        }
        s.take(69);
        assert_eq!(s.next_clear(5, count), Some(3), "round to the start");
        s.take(3);
        s.take(3);
        assert_eq!(s.set, count, "a bit counted once");
        s.give_back(64);
        s.give_back(64);
        assert_eq!((s.next_clear(0, count), s.set), (Some(64), count - 1));
    }

    #[test]
    fn probes_are_bounded() {
        let pool =
            LaddrPool::new(vec![ip("10.0.0.250"), ip("10.0.0.251"), ip("10.0.0.252")]).unwrap();
        for probes in [1usize, 5, 32, 100] {
            let mut a = LaddrAllocator::new(&pool, 1, 4, 3)
                .unwrap()
                .with_max_probes(probes);
            let calls = Cell::new(0usize);
            let r = a.alloc((ip("10.0.0.21"), 80), TCP, |_, _| {
                calls.set(calls.get() + 1);
                false
            });
            assert_eq!(r, None);
            assert!(
                calls.get() >= 1 && calls.get() <= probes.max(3),
                "{probes}: {}",
                calls.get()
            );
        }
    }

    #[test]
    fn round_robin_over_lips_of_the_family() {
        let l = [
            ip("10.0.0.250"),
            ip("fd00::fa"),
            ip("10.0.0.251"),
            ip("10.0.0.252"),
            ip("fd00::fb"),
        ];
        let pool = LaddrPool::new(l.to_vec()).unwrap();
        let mut a = LaddrAllocator::new(&pool, 0, 2, 11).unwrap();
        let mut t = Table::default();
        let rs4 = (ip("10.0.0.21"), 80);
        let rs6 = (ip("fd00::21"), 80);
        let order: Vec<IpAddr> = (0..6)
            .map(|_| t.alloc(&mut a, rs4, TCP).unwrap().0)
            .collect();
        assert_eq!(order, vec![l[0], l[2], l[3], l[0], l[2], l[3]]);
        let order: Vec<IpAddr> = (0..4)
            .map(|_| t.alloc(&mut a, rs6, TCP).unwrap().0)
            .collect();
        assert_eq!(order, vec![l[1], l[4], l[1], l[4]]);
        // A LIP with nothing free is passed over.
        let r = a.alloc(rs4, TCP, |lip, _| lip != l[0]);
        assert_eq!(r.map(|g| g.0), Some(l[2]));
        let r = a.alloc(rs4, TCP, |lip, _| lip != l[0]);
        assert_eq!(r.map(|g| g.0), Some(l[3]));
        let r = a.alloc(rs4, TCP, |lip, _| lip != l[0]);
        assert_eq!(r.map(|g| g.0), Some(l[2]));
        // Only the usable LIPs, still in turn; none usable: no port.
        let on = |lip: IpAddr| lip == l[2] || lip == l[0];
        let order: Vec<IpAddr> = (0..4)
            .map(|_| a.alloc_on(rs4, TCP, on, |_, _| true).unwrap().0)
            .collect();
        assert_eq!(order, vec![l[0], l[2], l[0], l[2]]);
        let failures = a.stats().failures;
        assert_eq!(a.alloc_on(rs4, TCP, |lip| lip == l[1], |_, _| true), None);
        assert_eq!(a.stats().failures, failures + 1);
        // A family the pool lacks.
        let pool = LaddrPool::new(vec![l[0]]).unwrap();
        let mut a = LaddrAllocator::new(&pool, 0, 1, 0).unwrap();
        assert_eq!(a.alloc(rs6, TCP, |_, _| true), None);
        assert_eq!(a.stats().failures, 1);
    }

    #[test]
    fn seeds_spread_the_first_port() {
        let pool = LaddrPool::new(vec![ip("10.0.0.250")]).unwrap();
        let firsts: HashSet<u16> = (0..20)
            .map(|s| {
                let mut a = LaddrAllocator::new(&pool, 0, 1, s).unwrap();
                a.alloc((ip("10.0.0.21"), 80), TCP, |_, _| true).unwrap().1
            })
            .collect();
        assert!(firsts.len() > 10);
    }

    #[test]
    fn configuration_errors() {
        let a = ip("10.0.0.250");
        assert_eq!(LaddrPool::new(vec![]), Err(LaddrError::NoAddresses));
        assert_eq!(LaddrPool::new(vec![a, a]), Err(LaddrError::Duplicate(a)));
        for bad in [
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "127.0.0.1",
            "::",
            "ff02::1",
            "::1",
        ] {
            assert_eq!(
                LaddrPool::new(vec![ip(bad)]),
                Err(LaddrError::NotUnicast(ip(bad)))
            );
        }
        #[allow(clippy::reversed_empty_ranges)]
        let empty = 2000..=1999;
        assert_eq!(
            LaddrPool::with_ports(vec![a], empty),
            Err(LaddrError::EmptyRange(2000, 1999))
        );
        assert_eq!(
            LaddrPool::with_ports(vec![a], 0..=10),
            Err(LaddrError::EmptyRange(0, 10))
        );
        let pool = LaddrPool::new(vec![a]).unwrap();
        assert_eq!(pool.lips(), &[a]);
        assert_eq!(pool.ports(), DEFAULT_PORTS);
        assert!(matches!(
            LaddrAllocator::new(&pool, 2, 2, 0),
            Err(LaddrError::BadWorker { .. })
        ));
        assert!(matches!(
            LaddrAllocator::new(&pool, 0, 0, 0),
            Err(LaddrError::BadWorker { .. })
        ));
        assert!(PortSteer::new(MAX_WORKERS + 1).is_err());
        let tiny = LaddrPool::with_ports(vec![a], 1025..=1025).unwrap();
        assert_eq!(
            LaddrAllocator::new(&tiny, 0, 2, 0).unwrap_err(),
            LaddrError::NoPortsForWorker(1025, 1025, 0)
        );
        let mut one = LaddrAllocator::new(&tiny, 1, 2, 0).unwrap();
        assert_eq!(
            one.alloc((ip("10.0.0.1"), 1), TCP, |_, _| true),
            Some((a, 1025))
        );
        assert_eq!(one.worker(), 1);
        assert!(LaddrError::NoAddresses.to_string().contains("at least one"));
    }
}
