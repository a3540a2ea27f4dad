//! Locality-based least-connection with replication (ip_vs_lblcr.c): each
//! packet destination address keeps a set of real servers. The least loaded
//! member takes a new connection; when none can, or it is "overloaded" in
//! lblc's sense, the weighted least-connection dest of the service joins
//! the set, so a hot address is served by several servers. A set that has
//! not changed for lblcr_expiration loses its most loaded member, one per
//! scheduling call.
//!
//! The expiry timer, table bound and dest helpers are lblc's (the kernel's
//! two files define the same constants); the deviations listed in lblc.rs
//! apply here too, except the entry-count drift, which ip_vs_lblcr.c does
//! not have.
use std::collections::hash_map::Entry as Slot;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::lblc::{
    by_addr_port, crowded, position, revival, sweep, wlc_least, ExpiryTimer, HARD_CAP,
};
use super::{lighter, Scheduler, Tuple};
use crate::ipvs::dest::Dest;
use crate::ipvs::Millis;

/// DEFAULT_EXPIRATION (24*60*60*HZ) in ip_vs_lblcr.c: the default of the
/// net.ipv4.vs.lblcr_expiration sysctl. A set unchanged for longer sheds a
/// member; an entry idle this long goes at a full check.
pub const LBLCR_EXPIRATION: Millis = 24 * 60 * 60 * 1000;

#[derive(Debug)]
struct DestSet {
    /// Newest first, as list_add_rcu puts them; the walks below depend on
    /// the order for ties.
    members: Vec<Arc<Dest>>,
    lastmod: Millis,
    lastuse: Millis,
}

impl DestSet {
    /// ip_vs_dest_set_min: the first member with weight > 0 that is
    /// AVAILABLE and has no OVERLOAD flag, then any later available,
    /// unflagged member strictly lighter.
    fn least(&self, w: usize) -> Option<&Arc<Dest>> {
        let mut open = self.members.iter().filter(|d| !d.is_overloaded());
        let mut least = open.find(|d| d.weight() > 0 && d.is_available())?;
        let mut l_oh = least.conn_overhead_at(w);
        for d in open {
            let d_oh = d.conn_overhead_at(w);
            if lighter(d_oh, d.weight(), l_oh, least.weight()) && d.is_available() {
                (least, l_oh) = (d, d_oh);
            }
        }
        Some(least)
    }

    /// ip_vs_dest_set_max: the first member with weight > 0, then any later
    /// member with weight > 0 strictly heavier. Neither the flag nor
    /// availability counts here, so a deleted member can be the one shed.
    fn most(&self, w: usize) -> Option<usize> {
        let mut weighted = self
            .members
            .iter()
            .enumerate()
            .filter(|(_, d)| d.weight() > 0);
        let (mut most, first) = weighted.next()?;
        let (mut m_oh, mut m_w) = (first.conn_overhead_at(w), first.weight());
        for (i, d) in weighted {
            let (d_oh, d_w) = (d.conn_overhead_at(w), d.weight());
            // moh/mw < doh/dw is the strict "lighter" test the other way
            // round.
            if lighter(m_oh, m_w, d_oh, d_w) {
                (most, m_oh, m_w) = (i, d_oh, d_w);
            }
        }
        Some(most)
    }

    /// ip_vs_dest_set_insert with its membership check: a new member goes
    /// first and marks the set modified; a present one changes nothing.
    fn insert(&mut self, dest: &Arc<Dest>, now: Millis) {
        if !self.members.iter().any(|m| Arc::ptr_eq(m, dest)) {
            self.members.insert(0, Arc::clone(dest));
            self.lastmod = now;
        }
    }
}

/// One worker's lblcr table.
#[derive(Debug, Default)]
pub struct Lblcr {
    table: HashMap<IpAddr, DestSet>,
    timer: ExpiryTimer,
    worker: usize,
}

impl Lblcr {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Scheduler for Lblcr {
    fn name(&self) -> &'static str {
        "lblcr"
    }

    fn count_as(&mut self, worker: usize) {
        self.worker = worker;
    }

    fn schedule(&mut self, dests: &[Arc<Dest>], input: &Tuple, now: Millis) -> Option<usize> {
        self.timer.arm(now);
        let full = self.table.len() >= HARD_CAP;
        let set = match self.table.entry(input.daddr) {
            Slot::Occupied(o) => o.into_mut(),
            Slot::Vacant(v) => {
                let i = wlc_least(dests, self.worker)?;
                if !full {
                    v.insert(DestSet {
                        members: vec![Arc::clone(&dests[i])],
                        lastmod: now,
                        lastuse: now,
                    });
                }
                return Some(i);
            }
        };
        set.lastuse = now;
        // The kernel picks before it sheds, so the member it sheds can
        // still take this one connection.
        let least = set.least(self.worker).cloned();
        if set.members.len() > 1 && now.saturating_sub(set.lastmod) > LBLCR_EXPIRATION {
            if let Some(m) = set.most(self.worker) {
                set.members.remove(m);
                set.lastmod = now;
            }
        }
        if let Some(d) = least.filter(|d| !crowded(d, dests, self.worker)) {
            if let Some(i) = position(dests, &d) {
                return Some(i);
            }
        }
        let i = wlc_least(dests, self.worker)?;
        set.insert(&dests[i], now);
        Some(i)
    }

    fn update(&mut self, dests: &[Arc<Dest>]) {
        let listed = by_addr_port(dests);
        for set in self.table.values_mut() {
            for m in set.members.iter_mut() {
                if let Some(d) = revival(m, &listed) {
                    *m = Arc::clone(d);
                }
            }
            // A kernel set never holds a dest twice; a revived member that
            // meets its successor already in the set keeps the first place.
            let mut kept: Vec<Arc<Dest>> = Vec::with_capacity(set.members.len());
            for m in set.members.drain(..) {
                if !kept.iter().any(|k| Arc::ptr_eq(k, &m)) {
                    kept.push(m);
                }
            }
            set.members = kept;
        }
    }

    fn gc(&mut self, _dests: &[Arc<Dest>], now: Millis) {
        sweep(
            &mut self.timer,
            &mut self.table,
            now,
            LBLCR_EXPIRATION,
            |set| set.lastuse,
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

    /// The members of x's set, newest first, by last address octet.
    fn members(s: &Lblcr) -> Vec<u8> {
        s.table[&x().daddr]
            .members
            .iter()
            .map(|d| match d.addr() {
                IpAddr::V4(v4) => v4.octets()[3],
                IpAddr::V6(_) => 0,
            })
            .collect()
    }

    #[test]
    fn same_daddr_sticks_to_its_set() {
        let (a, b) = (dest(1, 1), dest(2, 1));
        let dests = [a.clone(), b];
        let mut s = Lblcr::new();
        assert_eq!(s.name(), "lblcr");
        assert_eq!(s.schedule(&dests, &x(), T0), Some(0));
        // 1 active is not above weight 1: A keeps x though B is idle.
        a.set_conns(1, 0);
        assert_eq!(s.schedule(&dests, &x(), T0 + 1), Some(0));
        assert_eq!(s.schedule(&dests, &y(), T0 + 2), Some(1));
        assert_eq!(members(&s), [1]);
    }

    #[test]
    fn new_daddr_goes_to_the_weighted_least_connection_dest() {
        // Overhead/weight: A 256/1, B 512/3 = 170.7, C 266/2 = 133.
        let dests = [dest(1, 1), dest(2, 3), dest(3, 2)];
        dests[0].set_conns(1, 0);
        dests[1].set_conns(2, 0);
        dests[2].set_conns(1, 10);
        let mut s = Lblcr::new();
        assert_eq!(s.schedule(&dests, &x(), T0), Some(2));
        assert_eq!(members(&s), [3]);
    }

    #[test]
    fn an_overloaded_member_grows_the_set_and_expiry_shrinks_it() {
        let (a, b) = (dest(1, 1), dest(2, 4));
        let dests = [a.clone(), b.clone()];
        let mut s = Lblcr::new();
        assert_eq!(s.schedule(&dests, &x(), T0), Some(0));
        // A: 2 active > 1 and B idle (0 < 4): WLC over all gives B
        // (512/1 against 0/4), which joins the set in front.
        a.set_conns(2, 0);
        let t1 = T0 + MIN;
        assert_eq!(s.schedule(&dests, &x(), t1), Some(1));
        assert_eq!(members(&s), [2, 1]);
        assert_eq!(s.table[&x().daddr].lastmod, t1);
        // Set min walks newest first: B 1280/4 = 320, then A 0/1 is
        // lighter, and not crowded (0 active): A.
        a.set_conns(0, 0);
        b.set_conns(5, 0);
        assert_eq!(s.schedule(&dests, &x(), t1 + 1), Some(0));
        // A at 320/1 ties B's 320: the set walk keeps B, its first; B is
        // crowded (5 > 4, A's 0 < 1), and WLC over the list, A first, keeps
        // A. Already a member: neither added twice nor modified.
        a.set_conns(0, 320);
        assert_eq!(s.schedule(&dests, &x(), t1 + 2), Some(0));
        assert_eq!(members(&s), [2, 1]);
        assert_eq!(s.table[&x().daddr].lastmod, t1);
        // B 256/4 = 64, A 768/1: min B, max A. Exactly the expiration
        // after lastmod is not past it: both stay.
        a.set_conns(3, 0);
        b.set_conns(1, 0);
        let exp = t1 + LBLCR_EXPIRATION;
        assert_eq!(s.schedule(&dests, &x(), exp), Some(1));
        assert_eq!(members(&s), [2, 1]);
        // One ms later A, the most loaded, is shed; B still takes it.
        assert_eq!(s.schedule(&dests, &x(), exp + 1), Some(1));
        assert_eq!(members(&s), [2]);
        assert_eq!(s.table[&x().daddr].lastmod, exp + 1);
        // With A idle again, x stays on B alone: A is no longer a member.
        a.set_conns(0, 0);
        assert_eq!(s.schedule(&dests, &x(), exp + 2), Some(1));
        // A single member is never shed.
        assert_eq!(
            s.schedule(&dests, &x(), exp + 2 * LBLCR_EXPIRATION),
            Some(1)
        );
        assert_eq!(members(&s), [2]);
    }

    #[test]
    fn the_member_shed_can_be_the_one_picked() {
        // B (newest) 1024/4 = 256; A flagged, 0/1. Min skips the flag: B.
        // Max ignores it: B first, A's 0 is not heavier: B is shed, and
        // still takes this connection (4 active is not above 4).
        let (a, b) = (dest(1, 1), dest(2, 4));
        let dests = [a.clone(), b.clone()];
        let mut s = Lblcr::new();
        assert_eq!(s.schedule(&dests, &x(), T0), Some(0));
        a.set_conns(2, 0);
        assert_eq!(s.schedule(&dests, &x(), T0 + 1), Some(1));
        assert_eq!(members(&s), [2, 1]);
        a.set_conns(0, 0);
        a.set_overloaded(true);
        b.set_conns(4, 0);
        let late = T0 + 1 + LBLCR_EXPIRATION + 1;
        assert_eq!(s.schedule(&dests, &x(), late), Some(1));
        assert_eq!(members(&s), [1]);
        // Only flagged A is left: no candidate, WLC gives B back.
        assert_eq!(s.schedule(&dests, &x(), late + 1), Some(1));
        assert_eq!(members(&s), [2, 1]);
        assert_eq!(s.table[&x().daddr].lastmod, late + 1);
    }

    #[test]
    fn quiesced_flagged_or_removed_members_are_passed_over() {
        let (a, b, c) = (dest(1, 1), dest(2, 1), dest(3, 1));
        let dests = [a.clone(), b.clone(), c.clone()];
        let mut s = Lblcr::new();
        assert_eq!(s.schedule(&dests, &x(), T0), Some(0));
        // Quiesced: no candidate in the set, WLC gives B (first idle one).
        a.set_weight(0);
        assert_eq!(s.schedule(&dests, &x(), T0 + 1), Some(1));
        assert_eq!(members(&s), [2, 1]);
        // Flagged: unlike lblc's cache hit, the set walk skips it; A is
        // still at weight 0, so WLC gives C.
        b.set_overloaded(true);
        assert_eq!(s.schedule(&dests, &x(), T0 + 2), Some(2));
        assert_eq!(members(&s), [3, 2, 1]);
        // Removed: C leaves the list; A back at weight 1 is the only
        // available, unflagged member of the set.
        a.set_weight(1);
        c.set_unavailable();
        let left = [a.clone(), b.clone()];
        s.update(&left);
        a.set_conns(0, 9);
        assert_eq!(s.schedule(&left, &x(), T0 + 3), Some(0));
        // Re-added as a new Dest, C's member revives in place: idle, it is
        // the lightest member again.
        let c2 = dest(3, 1);
        let back = [c2, a, b];
        s.update(&back);
        assert_eq!(members(&s), [3, 2, 1]);
        assert_eq!(s.schedule(&back, &x(), T0 + 4), Some(0));
    }

    #[test]
    fn no_eligible_dest_gives_none() {
        let mut s = Lblcr::new();
        assert_eq!(s.schedule(&[], &x(), T0), None);
        assert!(s.table.is_empty());
        let dests = [dest(1, 1)];
        assert_eq!(s.schedule(&dests, &x(), T0), Some(0));
        dests[0].set_weight(0);
        assert_eq!(s.schedule(&dests, &x(), T0), None);
        assert_eq!(s.schedule(&[], &x(), T0), None);
    }

    #[test]
    fn full_check_drops_sets_idle_for_a_day() {
        let dests = [dest(1, 1)];
        let mut s = Lblcr::new();
        s.schedule(&dests, &x(), T0);
        s.schedule(&dests, &y(), T0 + 30 * MIN);
        // gc every minute: full checks at runs 30, 60, ...; x has been idle
        // exactly a day at run 1440, y at run 1470.
        for run in 1..=1470 {
            s.gc(&dests, T0 + run * MIN);
            assert_eq!(s.table.contains_key(&x().daddr), run < 1440, "run {run}");
            assert_eq!(s.table.contains_key(&y().daddr), run < 1470, "run {run}");
        }
    }

    #[test]
    fn partial_check_needs_a_table_over_max_size() {
        use crate::ipvs::sched::lblc::MAX_SIZE;
        let dests = [dest(1, 1)];
        let mut s = Lblcr::new();
        let addr = |i: u32| to(IpAddr::from(std::net::Ipv4Addr::from((10u32 << 24) | i)));
        for i in 0..MAX_SIZE as u32 {
            s.schedule(&dests, &addr(i), T0);
        }
        // At max_size exactly, idle 10 minutes: nothing goes.
        for run in 1..=10 {
            s.gc(&dests, T0 + run * MIN);
        }
        assert_eq!(s.table.len(), MAX_SIZE);
        // Three more: goal 3 * 4 / 3 = 4, met after the first buckets from
        // the rover that hold 4 or more idle entries; the new ones, not
        // idle, stay.
        for i in 0..3 {
            s.schedule(&dests, &addr(MAX_SIZE as u32 + i), T0 + 10 * MIN);
        }
        s.gc(&dests, T0 + 11 * MIN);
        let freed = MAX_SIZE + 3 - s.table.len();
        assert!(freed >= 4, "freed {freed}");
        for i in 0..3 {
            assert!(s.table.contains_key(&addr(MAX_SIZE as u32 + i).daddr));
        }
    }
}
