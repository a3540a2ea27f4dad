//! Locality-based least-connection (ip_vs_lblc.c): each packet destination
//! address keeps the real server it was last given, for cache clusters
//! where one server per destination keeps the caches from duplicating each
//! other. A new address, or one whose server has gone, been quiesced or
//! become "overloaded" in lblc's sense, gets the weighted least-connection
//! pick and remembers it.
//!
//! The table, its periodic expiry and the helpers here are shared with lblcr,
//! whose kernel file carries the same constants and the same timer.
//!
//! Deviations from the kernel, and why:
//! - One table per worker, not one per service: workers never share state
//!   on the packet path. Addresses seen by one worker stick to their dest
//!   on that worker.
//! - The expiry "timer" runs from `gc`/`schedule` calls: at most once per
//!   call, when CHECK_EXPIRE_INTERVAL has passed since the last run, and
//!   re-armed from that run's time as mod_timer does.
//! - The entry count is the table's real size. ip_vs_lblc_new replaces an
//!   entry without decrementing `tbl->entries`, so the kernel's count drifts
//!   upward with every replacement; copying that would only make its expiry
//!   misjudge the table's size.
//! - New entries stop at HARD_CAP. The kernel has no upper bound (max_size
//!   only steers the expiry), so its table grows with the rate of new
//!   addresses; here memory per worker is bounded. Past the cap a new
//!   address still gets a dest, as when the kernel fails to allocate an
//!   entry, it is just not remembered.
//! - A deleted dest's entries stay, as the kernel's do (they hold the dest in
//!   its trash): they fail the AVAILABLE check and are replaced on next use.
//!   rvs has no trash, so re-adding a dest makes a new `Dest`; `update` moves
//!   such entries to it, as the kernel's revival from the trash would.
use std::collections::hash_map::Entry as Slot;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use super::{addr_fold, hash_32, weighted_least, Scheduler, Tuple};
use crate::ipvs::dest::Dest;
use crate::ipvs::Millis;

/// CHECK_EXPIRE_INTERVAL (60*HZ), the period of the expiry timer; the same
/// in ip_vs_lblc.c and ip_vs_lblcr.c.
pub(super) const CHECK_EXPIRE_INTERVAL: Millis = 60 * 1000;

/// ENTRY_TIMEOUT (6*60*HZ): how long an entry must have been idle before a
/// partial check, run when the table is over max_size, may drop it
/// (ip_vs_lblc.c and ip_vs_lblcr.c).
pub(super) const ENTRY_TIMEOUT: Millis = 6 * 60 * 1000;

/// DEFAULT_EXPIRATION (24*60*60*HZ) in ip_vs_lblc.c: the default of the
/// net.ipv4.vs.lblc_expiration sysctl, the idle time after which a full
/// check drops an entry.
pub const LBLC_EXPIRATION: Millis = 24 * 60 * 60 * 1000;

/// COUNT_FOR_FULL_EXPIRATION: every this many timer runs without a partial
/// check, a full check runs (ip_vs_lblc.c and ip_vs_lblcr.c).
pub(super) const COUNT_FOR_FULL_EXPIRATION: u32 = 30;

/// CONFIG_IP_VS_LBLC_TAB_BITS / CONFIG_IP_VS_LBLCR_TAB_BITS default (10).
/// Entries are not kept in kernel buckets, but the partial check frees
/// whole buckets in rover order, so which entries go depends on them.
pub(super) const TAB_BITS: u32 = 10;
const TAB_SIZE: u32 = 1 << TAB_BITS;
const TAB_MASK: u32 = TAB_SIZE - 1;

/// `tbl->max_size = IP_VS_LBLC_TAB_SIZE*16`: above it the timer runs a
/// partial check instead of counting towards a full one.
pub(super) const MAX_SIZE: usize = TAB_SIZE as usize * 16;

/// rvs's own bound on entries per table (see the module comment): four
/// times the kernel's soft size, so it only binds under a flood of new
/// addresses, when the kernel's table would keep growing.
pub(super) const HARD_CAP: usize = MAX_SIZE * 4;

/// The kernel bucket of a destination address (ip_vs_lblc_hashkey,
/// ip_vs_lblcr_hashkey).
pub(super) fn bucket(addr: IpAddr) -> u32 {
    hash_32(addr_fold(addr), TAB_BITS)
}

/// Weighted least-connection over the whole list (__ip_vs_lblc_schedule,
/// __ip_vs_lblcr_schedule), the conns as worker `w` sees them.
pub(super) fn wlc_least(dests: &[Arc<Dest>], w: usize) -> Option<usize> {
    weighted_least(dests, |d| d.conn_overhead_at(w))
}

/// lblc's and lblcr's `is_overloaded`, not the OVERLOAD flag: the dest has
/// more active connections than its weight while some dest of the service
/// has fewer than half its weight, so moving away would relieve it (the
/// conns as worker `w` sees them).
pub(super) fn crowded(dest: &Dest, dests: &[Arc<Dest>], w: usize) -> bool {
    i64::from(dest.activeconns_at(w)) > i64::from(dest.weight())
        && dests
            .iter()
            .any(|d| i64::from(d.activeconns_at(w)) * 2 < i64::from(d.weight()))
}

/// Where `dest` is in the current list; a dest the list no longer holds
/// cannot be returned as an index.
pub(super) fn position(dests: &[Arc<Dest>], dest: &Arc<Dest>) -> Option<usize> {
    dests.iter().position(|d| Arc::ptr_eq(d, dest))
}

/// The listed dest that stands for `old` after a delete and re-add: the
/// kernel would take `old` itself back out of its trash, keeping every table
/// entry that holds it. None when `old` is still listed or not re-added.
pub(super) fn revival<'a>(
    old: &Arc<Dest>,
    listed: &HashMap<(IpAddr, u16), &'a Arc<Dest>>,
) -> Option<&'a Arc<Dest>> {
    listed
        .get(&(old.addr(), old.port()))
        .copied()
        .filter(|d| !Arc::ptr_eq(d, old))
}

/// The dests of a list by address and port, for `revival`.
pub(super) fn by_addr_port(dests: &[Arc<Dest>]) -> HashMap<(IpAddr, u16), &Arc<Dest>> {
    dests.iter().map(|d| ((d.addr(), d.port()), d)).collect()
}

/// What one run of the expiry timer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sweep {
    /// Drop every entry idle for at least the expiration sysctl.
    Full,
    /// Drop entries idle for at least ENTRY_TIMEOUT, whole buckets at a time
    /// from the rover on, until this many are gone.
    Partial(usize),
}

/// The state of ip_vs_lblc_check_expire / ip_vs_lblcr_check_expire: when it
/// next runs, the run counter towards a full check, and the bucket rover.
#[derive(Debug)]
pub(super) struct ExpiryTimer {
    next_run: Option<Millis>,
    counter: u32,
    rover: u32,
}

impl Default for ExpiryTimer {
    fn default() -> Self {
        // init_svc: counter 1, rover 0; armed once a clock is seen.
        ExpiryTimer {
            next_run: None,
            counter: 1,
            rover: 0,
        }
    }
}

impl ExpiryTimer {
    /// init_svc arms the timer when the table is made; a scheduler instance
    /// has no clock until its first call, so that call arms it.
    pub(super) fn arm(&mut self, now: Millis) {
        self.next_run.get_or_insert(now + CHECK_EXPIRE_INTERVAL);
    }

    /// Runs the timer if it is due, for a table of `entries`.
    pub(super) fn fire(&mut self, now: Millis, entries: usize) -> Option<Sweep> {
        self.arm(now);
        if self.next_run.is_some_and(|due| now < due) {
            return None;
        }
        self.next_run = Some(now + CHECK_EXPIRE_INTERVAL);
        if self.counter % COUNT_FOR_FULL_EXPIRATION == 0 {
            self.counter = 1;
            return Some(Sweep::Full);
        }
        if entries <= MAX_SIZE {
            self.counter += 1;
            return None;
        }
        Some(Sweep::Partial(
            ((entries - MAX_SIZE) * 4 / 3).min(MAX_SIZE / 2),
        ))
    }

    /// Which of the `idle` addresses a partial check frees: walking the
    /// buckets from the one after the rover, all idle entries of a bucket go
    /// together, and the walk stops after the bucket that meets `goal`,
    /// leaving the rover there. A walk that never meets it wraps back to the
    /// rover.
    pub(super) fn partial(
        &mut self,
        idle: impl IntoIterator<Item = IpAddr>,
        goal: usize,
    ) -> Vec<IpAddr> {
        let mut buckets: BTreeMap<u32, Vec<IpAddr>> = BTreeMap::new();
        for a in idle {
            buckets.entry(bucket(a)).or_default().push(a);
        }
        let start = (self.rover + 1) & TAB_MASK;
        let mut freed = Vec::new();
        for (&b, addrs) in buckets.range(start..).chain(buckets.range(..start)) {
            freed.extend_from_slice(addrs);
            if freed.len() >= goal {
                self.rover = b;
                break;
            }
        }
        freed
    }
}

/// Whether an entry last used at `lastuse` has been idle for `timeout`
/// (the kernel's `!time_before(now, lastuse + timeout)`).
#[inline]
/// The expiry timer's work on a locality table (ip_vs_lblc_check_expire,
/// ip_vs_lblcr_check_expire): on a full check, entries idle past
/// `expiration` go; on a partial one, entries idle past ENTRY_TIMEOUT in the
/// buckets the timer picks, up to its goal.
pub(super) fn sweep<V>(
    timer: &mut ExpiryTimer,
    table: &mut HashMap<IpAddr, V>,
    now: Millis,
    expiration: Millis,
    lastuse: impl Fn(&V) -> Millis,
) {
    match timer.fire(now, table.len()) {
        None => {}
        Some(Sweep::Full) => table.retain(|_, v| !idle_for(lastuse(v), now, expiration)),
        Some(Sweep::Partial(goal)) => {
            let idle = table
                .iter()
                .filter(|(_, v)| idle_for(lastuse(v), now, ENTRY_TIMEOUT))
                .map(|(a, _)| *a);
            for a in timer.partial(idle, goal) {
                table.remove(&a);
            }
        }
    }
}

pub(super) fn idle_for(lastuse: Millis, now: Millis, timeout: Millis) -> bool {
    now.saturating_sub(lastuse) >= timeout
}

#[derive(Debug)]
struct Cached {
    dest: Arc<Dest>,
    lastuse: Millis,
}

/// One worker's lblc table.
#[derive(Debug, Default)]
pub struct Lblc {
    table: HashMap<IpAddr, Cached>,
    timer: ExpiryTimer,
    worker: usize,
}

impl Lblc {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Scheduler for Lblc {
    fn name(&self) -> &'static str {
        "lblc"
    }

    fn count_as(&mut self, worker: usize) {
        self.worker = worker;
    }

    fn schedule(&mut self, dests: &[Arc<Dest>], input: &Tuple, now: Millis) -> Option<usize> {
        self.timer.arm(now);
        if let Some(en) = self.table.get_mut(&input.daddr) {
            // A lookup counts as use even when the entry is then replaced.
            en.lastuse = now;
            let d = &en.dest;
            // Only AVAILABLE, weight and lblc's own overload test: a cached
            // dest with the OVERLOAD flag keeps its addresses, as in the
            // kernel.
            if d.is_available() && d.weight() > 0 && !crowded(d, dests, self.worker) {
                if let Some(i) = position(dests, d) {
                    return Some(i);
                }
            }
        }
        let i = wlc_least(dests, self.worker)?;
        let dest = &dests[i];
        let full = self.table.len() >= HARD_CAP;
        match self.table.entry(input.daddr) {
            Slot::Occupied(mut o) => {
                if !Arc::ptr_eq(&o.get().dest, dest) {
                    o.get_mut().dest = Arc::clone(dest);
                }
            }
            Slot::Vacant(v) if !full => {
                v.insert(Cached {
                    dest: Arc::clone(dest),
                    lastuse: now,
                });
            }
            Slot::Vacant(_) => {}
        }
        Some(i)
    }

    fn update(&mut self, dests: &[Arc<Dest>]) {
        let listed = by_addr_port(dests);
        for en in self.table.values_mut() {
            if let Some(d) = revival(&en.dest, &listed) {
                en.dest = Arc::clone(d);
            }
        }
    }

    fn gc(&mut self, _dests: &[Arc<Dest>], now: Millis) {
        sweep(
            &mut self.timer,
            &mut self.table,
            now,
            LBLC_EXPIRATION,
            |en| en.lastuse,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::dest::{DestConfig, FwdMethod};

    const T0: Millis = 5_000_000;
    const MIN: Millis = 60_000;

    fn dest(host: u8, weight: i32) -> Arc<Dest> {
        Arc::new(Dest::new(
            &DestConfig {
                addr: IpAddr::from([192, 168, 1, host]),
                port: 80,
                fwd: FwdMethod::DirectRoute,
                weight,
                u_threshold: 0,
                l_threshold: 0,
            },
            1,
        ))
    }

    fn to(daddr: IpAddr) -> Tuple {
        Tuple {
            proto: 6,
            saddr: IpAddr::from([198, 51, 100, 7]),
            sport: 40000,
            daddr,
            dport: 80,
        }
    }

    fn x() -> Tuple {
        to(IpAddr::from([203, 0, 113, 1]))
    }

    fn y() -> Tuple {
        to(IpAddr::from([203, 0, 113, 2]))
    }

    /// The n-th of many distinct destination addresses.
    fn nth(n: u32) -> Tuple {
        to(IpAddr::from(std::net::Ipv4Addr::from((10u32 << 24) | n)))
    }

    #[test]
    fn same_daddr_sticks_to_its_dest() {
        let (a, b) = (dest(1, 1), dest(2, 1));
        let dests = [a.clone(), b];
        let mut s = Lblc::new();
        assert_eq!(s.name(), "lblc");
        // Both idle: the tie goes to the first.
        assert_eq!(s.schedule(&dests, &x(), T0), Some(0));
        // A now carries 256 against B's 0, but 1 active is not above
        // weight 1, so x stays on A while a new address goes to B.
        a.set_conns(1, 0);
        assert_eq!(s.schedule(&dests, &x(), T0 + 1), Some(0));
        assert_eq!(s.schedule(&dests, &y(), T0 + 2), Some(1));
        assert_eq!(s.schedule(&dests, &y(), T0 + 3), Some(1));
        assert_eq!(s.schedule(&dests, &x(), T0 + 4), Some(0));
    }

    #[test]
    fn new_daddr_goes_to_the_weighted_least_connection_dest() {
        // Overhead/weight: A 256/1 = 256, B 512/3 = 170.7, C 266/2 = 133.
        let dests = [dest(1, 1), dest(2, 3), dest(3, 2)];
        dests[0].set_conns(1, 0);
        dests[1].set_conns(2, 0);
        dests[2].set_conns(1, 10);
        let mut s = Lblc::new();
        assert_eq!(s.schedule(&dests, &x(), T0), Some(2));
        // Equal ratios (512/2 and 256/1): the earlier dest wins; weight 0
        // and an OVERLOAD flag are passed over even when idle.
        let dests = [dest(1, 0), dest(2, 2), dest(3, 1), dest(4, 1)];
        dests[1].set_conns(2, 0);
        dests[2].set_conns(1, 0);
        dests[3].set_overloaded(true);
        assert_eq!(s.schedule(&dests, &y(), T0), Some(1));
    }

    #[test]
    fn overload_moves_a_daddr_only_when_both_conditions_hold() {
        let (a, b) = (dest(1, 2), dest(2, 4));
        let dests = [a.clone(), b.clone()];
        let mut s = Lblc::new();
        assert_eq!(s.schedule(&dests, &x(), T0), Some(0));
        // A: 3 active > weight 2, but B's 2*2 is not < 4: stays, although
        // WLC would now say B (768/2 against 512/4).
        a.set_conns(3, 0);
        b.set_conns(2, 0);
        assert_eq!(s.schedule(&dests, &x(), T0 + 1), Some(0));
        // B idle (0 < 4) but A's 2 active are not above weight 2: stays.
        a.set_conns(2, 0);
        b.set_conns(0, 0);
        assert_eq!(s.schedule(&dests, &x(), T0 + 2), Some(0));
        // Both: 3 > 2 and 1*2 < 4; WLC gives B (256/4 against 768/2).
        a.set_conns(3, 0);
        b.set_conns(1, 0);
        assert_eq!(s.schedule(&dests, &x(), T0 + 3), Some(1));
        // The entry now names B, which keeps x after A empties.
        a.set_conns(0, 0);
        assert_eq!(s.schedule(&dests, &x(), T0 + 4), Some(1));
    }

    #[test]
    fn quiesced_dest_is_replaced_but_the_overload_flag_alone_is_not() {
        let (a, b) = (dest(1, 1), dest(2, 1));
        let dests = [a.clone(), b.clone()];
        let mut s = Lblc::new();
        assert_eq!(s.schedule(&dests, &x(), T0), Some(0));
        a.set_weight(0);
        assert_eq!(s.schedule(&dests, &x(), T0 + 1), Some(1));
        // Back in service, A does not win x back: the entry names B now.
        a.set_weight(1);
        assert_eq!(s.schedule(&dests, &x(), T0 + 2), Some(1));
        // The kernel's cache hit does not look at the OVERLOAD flag.
        b.set_overloaded(true);
        assert_eq!(s.schedule(&dests, &x(), T0 + 3), Some(1));
        // A new address is scheduled by WLC, which does.
        assert_eq!(s.schedule(&dests, &y(), T0 + 4), Some(0));
    }

    #[test]
    fn removed_dest_is_replaced_and_a_readded_one_takes_its_entries_back() {
        let (a, b) = (dest(1, 1), dest(2, 1));
        let mut s = Lblc::new();
        let both = [a.clone(), b.clone()];
        assert_eq!(s.schedule(&both, &x(), T0), Some(0));
        a.set_conns(0, 1);
        assert_eq!(s.schedule(&both, &y(), T0), Some(1));
        // -d A, then -a A: a new Dest with the same address and port, busier
        // than B so that WLC alone would not choose it.
        a.set_unavailable();
        s.update(std::slice::from_ref(&b));
        let a2 = dest(1, 1);
        a2.set_conns(0, 5);
        let readded = [a2, b.clone()];
        s.update(&readded);
        assert_eq!(s.schedule(&readded, &x(), T0 + 1), Some(0));
        assert_eq!(s.schedule(&readded, &y(), T0 + 1), Some(1));
        // Removed for good: the next packet for x goes to B.
        readded[0].set_unavailable();
        let only_b = [b];
        s.update(&only_b);
        assert_eq!(s.schedule(&only_b, &x(), T0 + 2), Some(0));
    }

    #[test]
    fn no_eligible_dest_gives_none() {
        let mut s = Lblc::new();
        assert_eq!(s.schedule(&[], &x(), T0), None);
        let dests = [dest(1, 1)];
        assert_eq!(s.schedule(&dests, &x(), T0), Some(0));
        assert_eq!(s.schedule(&[], &x(), T0), None);
        dests[0].set_weight(0);
        assert_eq!(s.schedule(&dests, &x(), T0), None);
    }

    #[test]
    fn timer_counts_to_a_full_check_and_computes_the_partial_goal() {
        let mut t = ExpiryTimer::default();
        assert_eq!(t.fire(T0, 0), None, "first call only arms");
        assert_eq!(t.fire(T0 + MIN - 1, 0), None);
        assert_eq!(t.counter, 1, "not yet due");
        // Runs 1..=29 count 1 -> 30; run 30 finds 30 % 30 == 0.
        for run in 1..=29 {
            assert_eq!(t.fire(T0 + run * MIN, 0), None);
            // Calls between runs do nothing.
            assert_eq!(t.fire(T0 + run * MIN + 30_000, 0), None);
        }
        assert_eq!(t.counter, 30);
        assert_eq!(t.fire(T0 + 30 * MIN, 0), Some(Sweep::Full));
        assert_eq!(t.counter, 1);
        // Over max_size: a partial check, and the counter stands still.
        // (300 * 4) / 3 = 400; 9000 * 4 / 3 = 12000 is capped at 8192.
        assert_eq!(
            t.fire(T0 + 31 * MIN, MAX_SIZE + 300),
            Some(Sweep::Partial(400))
        );
        assert_eq!(
            t.fire(T0 + 32 * MIN, MAX_SIZE + 9000),
            Some(Sweep::Partial(8192))
        );
        assert_eq!(t.fire(T0 + 33 * MIN, MAX_SIZE + 1), Some(Sweep::Partial(1)));
        assert_eq!(t.counter, 1);
        assert_eq!(t.fire(T0 + 34 * MIN, MAX_SIZE), None);
        assert_eq!(t.counter, 2);
        // A late call runs once and re-arms from its own time.
        assert_eq!(t.fire(T0 + 100 * MIN, 0), None);
        assert_eq!(t.counter, 3);
        assert_eq!(t.fire(T0 + 100 * MIN + MIN - 1, 0), None);
        assert_eq!(t.counter, 3);
    }

    #[test]
    fn full_check_drops_entries_idle_for_a_day() {
        let dests = [dest(1, 1)];
        let mut s = Lblc::new();
        s.schedule(&dests, &x(), T0);
        s.schedule(&dests, &y(), T0 + 30 * MIN);
        // gc once a minute: full checks at runs 30, 60, ... ; run 1440 is
        // T0 + 24 h, when x has been idle exactly LBLC_EXPIRATION.
        for run in 1..=1440 {
            s.gc(&dests, T0 + run * MIN);
            assert_eq!(s.table.contains_key(&x().daddr), run < 1440, "run {run}");
        }
        // y, used 30 min later, goes at the next full check, run 1470.
        for run in 1441..=1470 {
            s.gc(&dests, T0 + run * MIN);
            assert_eq!(s.table.contains_key(&y().daddr), run < 1470, "run {run}");
        }
        assert!(s.table.is_empty());
    }

    #[test]
    fn partial_check_frees_whole_buckets_of_six_minute_idle_entries() {
        let dests = [dest(1, 1)];
        let mut s = Lblc::new();
        let n = MAX_SIZE as u32 + 300;
        for i in 0..n {
            s.schedule(&dests, &nth(i), T0);
        }
        // The even addresses are used again after 5 minutes.
        for i in (0..n).step_by(2) {
            s.schedule(&dests, &nth(i), T0 + 5 * MIN);
        }
        for run in 1..=5 {
            s.gc(&dests, T0 + run * MIN);
            assert_eq!(s.table.len(), n as usize, "nothing idle 6 min at run {run}");
        }
        // Run 6: goal (300 * 4) / 3 = 400. From the rover (0) the walk takes
        // buckets 1, 2, ... each with all its odd (stale) addresses, and
        // stops after the bucket that brings the count to 400 or more.
        let mut stale_per_bucket = [0usize; TAB_SIZE as usize];
        for i in (1..n).step_by(2) {
            stale_per_bucket[bucket(nth(i).daddr) as usize] += 1;
        }
        let (mut expect, mut last) = (0, 0);
        for (b, &k) in stale_per_bucket.iter().enumerate().skip(1) {
            expect += k;
            last = b as u32;
            if expect >= 400 {
                break;
            }
        }
        s.gc(&dests, T0 + 6 * MIN);
        assert_eq!(s.table.len(), n as usize - expect);
        assert_eq!(s.timer.rover, last);
        for i in 0..n {
            let b = bucket(nth(i).daddr);
            let gone = i % 2 == 1 && (1..=last).contains(&b);
            assert_eq!(!s.table.contains_key(&nth(i).daddr), gone, "address {i}");
        }
    }

    #[test]
    fn table_stops_growing_at_the_hard_cap() {
        let dests = [dest(1, 1), dest(2, 1)];
        let mut s = Lblc::new();
        for i in 0..HARD_CAP as u32 {
            s.schedule(&dests, &nth(i), T0);
        }
        assert_eq!(s.table.len(), HARD_CAP);
        // Still scheduled, by WLC, just not remembered.
        dests[0].set_conns(1, 0);
        assert_eq!(s.schedule(&dests, &nth(HARD_CAP as u32), T0), Some(1));
        assert_eq!(s.table.len(), HARD_CAP);
        // Known addresses keep their dest.
        assert_eq!(s.schedule(&dests, &nth(0), T0), Some(0));
    }

    #[test]
    fn ipv6_destinations_are_keys_too() {
        let dests = [dest(1, 1), dest(2, 1)];
        let mut s = Lblc::new();
        let v6 = to("2001:db8::1".parse().unwrap());
        assert_eq!(s.schedule(&dests, &v6, T0), Some(0));
        dests[0].set_conns(0, 3);
        assert_eq!(s.schedule(&dests, &v6, T0), Some(0));
        assert_eq!(
            s.schedule(&dests, &to("2001:db8::2".parse().unwrap()), T0),
            Some(1)
        );
    }
}
