//! Real servers (dests): identity, forwarding method, weight, thresholds
//! and the connection counts schedulers read.
//!
//! A `Dest` is shared by every worker (`Arc`); what changes at run time is
//! atomic. Counts follow the kernel's classic `ip_vs_bind_dest` /
//! `ip_vs_unbind_dest` rules, including the OVERLOAD flag of -x/-y.
//!
//! The kernel counts a dest's conns in atomics every CPU writes. Here each
//! worker counts its conns' changes in a slot of its own (`Pending`: plain
//! loads and stores on its own cache line) and folds them into the totals
//! every millisecond (`Dest::fold`), so that opening and ending conns takes
//! no locked instruction on a line all workers write. A worker reads a
//! dest's counts as the totals and its own slot (`*_at`): its own conns at
//! once, the others' as of their last fold; any other reader (listings,
//! metrics) sums every slot.
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};

use super::error::IpvsError;
use super::stats::Stats;
use super::tunnel::Tunnel;

/// How packets reach the dest (ipvsadm -g/-i/-m, DPVS --fullnat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FwdMethod {
    /// NAT (`-m`), IP_VS_CONN_F_MASQ 0.
    Masq = 0,
    /// The director itself, IP_VS_CONN_F_LOCALNODE 1.
    Local = 1,
    /// IP-in-IP (`-i`), IP_VS_CONN_F_TUNNEL 2.
    Tunnel = 2,
    /// Direct routing (`-g`, the default), IP_VS_CONN_F_DROUTE 3.
    DirectRoute = 3,
    /// FULLNAT (DPVS's `--fullnat` / `-b` on -a/-e), DPVS's code 5.
    FullNat = 5,
}

impl FwdMethod {
    fn from_u8(v: u8) -> FwdMethod {
        match v {
            0 => FwdMethod::Masq,
            1 => FwdMethod::Local,
            2 => FwdMethod::Tunnel,
            5 => FwdMethod::FullNat,
            _ => FwdMethod::DirectRoute,
        }
    }

    /// Whether the dest may listen on another port than the service's: DR
    /// and TUN keep the packet's destination port (ipvsadm forces it).
    pub fn maps_ports(self) -> bool {
        matches!(
            self,
            FwdMethod::Masq | FwdMethod::FullNat | FwdMethod::Local
        )
    }

    /// The option -a and -S give it: -m, -i, -g or DPVS's -b.
    pub fn switch(self) -> &'static str {
        match self {
            FwdMethod::Masq => "-m",
            FwdMethod::Tunnel => "-i",
            FwdMethod::Local | FwdMethod::DirectRoute => "-g",
            FwdMethod::FullNat => "-b",
        }
    }

    /// ipvsadm's Forward column.
    pub fn name(self) -> &'static str {
        match self {
            FwdMethod::Masq => "Masq",
            FwdMethod::Local => "Local",
            FwdMethod::Tunnel => "Tunnel",
            FwdMethod::DirectRoute => "Route",
            FwdMethod::FullNat => "FullNat",
        }
    }
}

/// What `-a`/`-e` give for a dest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestConfig {
    pub addr: IpAddr,
    pub port: u16,
    pub fwd: FwdMethod,
    pub weight: i32,
    /// -x: no new connections once active+inactive reaches it (0 = none).
    pub u_threshold: u32,
    /// -y: the OVERLOAD flag clears below it (0 = 3/4 of the upper).
    pub l_threshold: u32,
}

impl DestConfig {
    /// ipvsadm's defaults: -g, weight 1, no thresholds.
    pub fn new(addr: IpAddr, port: u16) -> DestConfig {
        DestConfig {
            addr,
            port,
            fwd: FwdMethod::DirectRoute,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), IpvsError> {
        if self.weight < 0 {
            return Err(IpvsError::OutOfRange("weight must not be negative"));
        }
        if self.l_threshold > self.u_threshold {
            return Err(IpvsError::OutOfRange(
                "lower threshold above upper threshold",
            ));
        }
        Ok(())
    }
}

/// The real server addresses ip_vs_new_dest takes: for IPv4 what
/// inet_addr_type calls unicast or local (not 0.0.0.0/8, 255.255.255.255 or
/// multicast), for IPv6 what ipv6_addr_type calls unicast and not
/// link-local (not `::`, multicast, link-local or v4-mapped).
pub fn unicast(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => !(v4.octets()[0] == 0 || v4.is_broadcast() || v4.is_multicast()),
        IpAddr::V6(v6) => {
            let link_local = v6.segments()[0] & 0xffc0 == 0xfe80;
            !(v6.is_unspecified()
                || v6.is_multicast()
                || link_local
                || v6.to_ipv4_mapped().is_some())
        }
    }
}

/// IP_VS_DEST_F_AVAILABLE: the dest is in its service's list.
pub const DEST_F_AVAILABLE: u32 = 0x1;
/// IP_VS_DEST_F_OVERLOAD: the upper threshold was reached.
pub const DEST_F_OVERLOAD: u32 = 0x2;

/// On lines of its own: the `Arc`'s counts, which a worker writes as it
/// first holds the dest for its conns and as it lets it go (`DestRefs`),
/// sit on the line before it, apart from what every worker reads per new
/// conn (the flags, weight, thresholds and totals).
#[derive(Debug)]
#[repr(align(64))]
pub struct Dest {
    addr: IpAddr,
    port: u16,
    fwd: AtomicU8,
    /// The encapsulation of a TUN dest ([`Tunnel::encode`]), read by the
    /// workers at each packet as the kernel reads dest->tun_type.
    tunnel: AtomicU32,
    /// What schedulers and listings see: the operator's weight, or 0 while
    /// a health check holds the dest quiesced.
    weight: AtomicI32,
    /// The weight the operator gave (-a/-e).
    admin_weight: AtomicI32,
    last_weight: AtomicI32,
    /// A failed health check quiesces the dest (ldirectord's quiescent=yes).
    inhibited: AtomicBool,
    /// The service's sorry server (fallback), not one of its real servers.
    sorry: bool,
    /// What its health check says: 0 unchecked, 1 up, 2 down.
    health: AtomicU8,
    /// Health transitions: to down, to up.
    went: [AtomicU64; 2],
    u_threshold: AtomicU32,
    l_threshold: AtomicU32,
    flags: AtomicU32,
    /// The counts the workers have folded (`fold`).
    activeconns: AtomicI32,
    inactconns: AtomicI32,
    persistconns: AtomicI32,
    /// Each worker's changes since its last fold.
    pending: Box<[Pending]>,
    pub stats: Stats,
}

/// One worker's changes to a dest's counts since it last folded them
/// (`Dest::fold`), and where that worker's table holds the dest: written
/// by that worker alone.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Pending {
    active: AtomicI32,
    inactive: AtomicI32,
    persist: AtomicI32,
    /// The worker has the dest in its list to fold (`DestRefs`).
    listed: AtomicBool,
    /// Where the worker's `DestRefs` holds the dest, plus one (0: not
    /// held); a hint, which `DestRefs::hold` checks.
    handle: AtomicU32,
}

/// A change by the one writer of a pending count: no locked instruction.
#[inline(always)]
fn bump(a: &AtomicI32, by: i32) {
    a.store(a.load(Relaxed).wrapping_add(by), Relaxed);
}

/// One conn fewer in a worker's `part` of a count whose folded `total`
/// it adds to: none where the worker sees none (an unbalanced end must not
/// count a conn that is not there). The sum is of the conns a table holds,
/// far below `i32::MAX`.
#[inline(always)]
fn drop_one(total: &AtomicI32, part: &AtomicI32) {
    let mine = part.load(Relaxed);
    if total.load(Relaxed).wrapping_add(mine) > 0 {
        part.store(mine.wrapping_sub(1), Relaxed);
    }
}

/// A count from its parts, none below zero.
#[inline(always)]
fn count(parts: impl Iterator<Item = i32>) -> u32 {
    let sum: i64 = parts.map(i64::from).sum();
    sum.clamp(0, i64::from(u32::MAX)) as u32
}

impl Dest {
    pub fn new(cfg: &DestConfig, workers: usize) -> Dest {
        Dest {
            addr: cfg.addr,
            port: cfg.port,
            fwd: AtomicU8::new(cfg.fwd as u8),
            tunnel: AtomicU32::new(0),
            weight: AtomicI32::new(cfg.weight),
            admin_weight: AtomicI32::new(cfg.weight),
            last_weight: AtomicI32::new(cfg.weight),
            inhibited: AtomicBool::new(false),
            sorry: false,
            health: AtomicU8::new(0),
            went: [AtomicU64::new(0), AtomicU64::new(0)],
            u_threshold: AtomicU32::new(cfg.u_threshold),
            l_threshold: AtomicU32::new(cfg.l_threshold),
            flags: AtomicU32::new(DEST_F_AVAILABLE),
            activeconns: AtomicI32::new(0),
            inactconns: AtomicI32::new(0),
            persistconns: AtomicI32::new(0),
            pending: (0..workers.max(1)).map(|_| Pending::default()).collect(),
            stats: Stats::new(workers),
        }
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn fwd(&self) -> FwdMethod {
        FwdMethod::from_u8(self.fwd.load(Relaxed))
    }
    /// How a TUN dest encapsulates (ipip unless `--tun-type` said else).
    #[inline]
    pub fn tunnel(&self) -> Tunnel {
        Tunnel::decode(self.tunnel.load(Relaxed))
    }
    /// `-a`/`-e`'s `--tun-type` and its options.
    pub(crate) fn set_tunnel(&self, t: Tunnel) {
        self.tunnel.store(t.encode(), Relaxed);
    }
    #[inline]
    pub fn weight(&self) -> i32 {
        self.weight.load(Relaxed)
    }
    /// The weight the operator set, whatever health checks do to `weight`.
    pub fn admin_weight(&self) -> i32 {
        self.admin_weight.load(Relaxed)
    }
    /// Whether a failed health check holds the dest at weight 0.
    pub fn is_inhibited(&self) -> bool {
        self.inhibited.load(Relaxed)
    }
    /// What its health check says: None while unchecked.
    pub fn health(&self) -> Option<bool> {
        match self.health.load(Relaxed) {
            1 => Some(true),
            2 => Some(false),
            _ => None,
        }
    }
    /// Health transitions so far: (to down, to up).
    pub fn transitions(&self) -> (u64, u64) {
        (self.went[0].load(Relaxed), self.went[1].load(Relaxed))
    }
    /// The health checker's view, for listings and metrics; a change of
    /// state counts one transition.
    pub fn set_health(&self, state: Option<bool>) {
        let v = match state {
            None => 0,
            Some(true) => 1,
            Some(false) => 2,
        };
        let old = self.health.swap(v, Relaxed);
        if old != 0 && v != 0 && old != v {
            self.went[usize::from(v == 1)].fetch_add(1, Relaxed);
        }
    }
    /// Whether this is the service's sorry server.
    pub fn is_sorry(&self) -> bool {
        self.sorry
    }
    /// The last non-zero weight (mh builds its table from it so that
    /// quiescing a dest does not reshuffle the others).
    pub fn last_weight(&self) -> i32 {
        self.last_weight.load(Relaxed)
    }
    pub fn u_threshold(&self) -> u32 {
        self.u_threshold.load(Relaxed)
    }
    pub fn l_threshold(&self) -> u32 {
        self.l_threshold.load(Relaxed)
    }
    /// Every worker's active conns: the totals and every slot (listings,
    /// metrics; a worker reads `activeconns_at`).
    pub fn activeconns(&self) -> u32 {
        self.summed(&self.activeconns, |p| &p.active)
    }
    pub fn inactconns(&self) -> u32 {
        self.summed(&self.inactconns, |p| &p.inactive)
    }
    pub fn persistconns(&self) -> u32 {
        self.summed(&self.persistconns, |p| &p.persist)
    }

    fn summed(&self, total: &AtomicI32, part: impl Fn(&Pending) -> &AtomicI32) -> u32 {
        let t = total.load(Relaxed);
        count(std::iter::once(t).chain(self.pending.iter().map(|p| part(p).load(Relaxed))))
    }

    /// Its slot for worker `w` (the last for an index out of range, as
    /// `Stats::worker`: a misconfigured caller miscounts, never panics).
    #[inline(always)]
    fn slot(&self, w: usize) -> &Pending {
        let last = self.pending.len() - 1;
        &self.pending[w.min(last)]
    }

    /// The active conns as worker `w` sees them: the totals and its own.
    #[inline]
    pub fn activeconns_at(&self, w: usize) -> u32 {
        let t = self.activeconns.load(Relaxed);
        count([t, self.slot(w).active.load(Relaxed)].into_iter())
    }
    #[inline]
    pub fn inactconns_at(&self, w: usize) -> u32 {
        let t = self.inactconns.load(Relaxed);
        count([t, self.slot(w).inactive.load(Relaxed)].into_iter())
    }
    #[inline]
    pub fn flags(&self) -> u32 {
        self.flags.load(Relaxed)
    }
    #[inline]
    pub fn is_available(&self) -> bool {
        self.flags() & DEST_F_AVAILABLE != 0
    }
    #[inline]
    pub fn is_overloaded(&self) -> bool {
        self.flags() & DEST_F_OVERLOAD != 0
    }

    /// ip_vs_dest_conn_overhead: active connections weigh 256 times an
    /// inactive one (the classic kernel rule), as worker `w` sees them.
    #[inline]
    pub fn conn_overhead_at(&self, w: usize) -> u64 {
        (u64::from(self.activeconns_at(w)) << 8) + u64::from(self.inactconns_at(w))
    }

    /// What the operator configured (the weight before health checks), for
    /// -S and -R's dry run.
    pub fn config(&self) -> DestConfig {
        DestConfig {
            addr: self.addr,
            port: self.port,
            fwd: self.fwd(),
            weight: self.admin_weight(),
            u_threshold: self.u_threshold(),
            l_threshold: self.l_threshold(),
        }
    }

    /// `-e`: a complete new config for the same address and port. As in the
    /// kernel, the OVERLOAD flag clears when the upper threshold is removed
    /// or raised.
    pub(crate) fn update(&self, cfg: &DestConfig) {
        let old_u = self.u_threshold();
        self.fwd.store(cfg.fwd as u8, Relaxed);
        self.set_weight(cfg.weight);
        self.u_threshold.store(cfg.u_threshold, Relaxed);
        self.l_threshold.store(cfg.l_threshold, Relaxed);
        if cfg.u_threshold == 0 || cfg.u_threshold > old_u {
            self.flags.fetch_and(!DEST_F_OVERLOAD, Relaxed);
        }
    }

    /// The operator's weight. While a health check quiesces the dest it
    /// stays at 0 and gets this weight back when the check passes, so a
    /// drain (`-e -w 0`) is never undone by a check.
    pub fn set_weight(&self, w: i32) {
        self.admin_weight.store(w, Relaxed);
        self.apply_weight();
    }

    /// A health check quiesces the dest (`true`) or lets it go (`false`).
    pub(crate) fn set_inhibited(&self, on: bool) {
        self.inhibited.store(on, Relaxed);
        self.apply_weight();
    }

    fn apply_weight(&self) {
        let w = if self.is_inhibited() {
            0
        } else {
            self.admin_weight()
        };
        self.weight.store(w, Relaxed);
        if w > 0 {
            self.last_weight.store(w, Relaxed);
        }
    }

    /// A sorry server: a dest that stands in while every real server is down.
    pub(crate) fn new_sorry(cfg: &DestConfig, workers: usize) -> Dest {
        Dest {
            sorry: true,
            ..Dest::new(cfg, workers)
        }
    }

    /// Back in its service's list after a health check took it out.
    pub(crate) fn set_available(&self) {
        self.flags.fetch_or(DEST_F_AVAILABLE, Relaxed);
    }

    /// Taken out of its service: no scheduler may pick it any more, while
    /// conns that hold it finish.
    pub(crate) fn set_unavailable(&self) {
        self.flags.fetch_and(!DEST_F_AVAILABLE, Relaxed);
    }

    /// Active and inactive conns as worker `w` sees them.
    fn total_at(&self, w: usize) -> u64 {
        u64::from(self.activeconns_at(w)) + u64::from(self.inactconns_at(w))
    }

    /// Marks worker `w`'s slot changed: true where the worker must list the
    /// dest to fold (`DestRefs::change`), which it had not.
    #[inline(always)]
    fn changed(&self, p: &Pending) -> bool {
        !p.listed.load(Relaxed) && {
            p.listed.store(true, Relaxed);
            true
        }
    }

    /// ip_vs_bind_dest: a new conn (not a template) of worker `w` counts
    /// against the dest; reaching the upper threshold sets OVERLOAD. True
    /// where `w` must list the dest to fold.
    pub fn bind_conn(&self, w: usize, active: bool) -> bool {
        let p = self.slot(w);
        bump(if active { &p.active } else { &p.inactive }, 1);
        let u = self.u_threshold();
        if u != 0 && self.total_at(w) >= u64::from(u) && !self.is_overloaded() {
            self.flags.fetch_or(DEST_F_OVERLOAD, Relaxed);
        }
        self.changed(p)
    }

    /// ip_vs_unbind_dest: worker `w`'s conn ended; OVERLOAD clears below
    /// the lower threshold, or below 3/4 of the upper when no lower one is
    /// set. True where `w` must list the dest to fold.
    pub fn unbind_conn(&self, w: usize, active: bool) -> bool {
        let p = self.slot(w);
        if active {
            drop_one(&self.activeconns, &p.active);
        } else {
            drop_one(&self.inactconns, &p.inactive);
        }
        // Only a dest that is overloaded has anything to clear: read first,
        // as an atomic write per conn's end to a line every worker reads
        // would be paid by all of them.
        if self.is_overloaded() {
            self.relieved(w);
        }
        self.changed(p)
    }

    /// OVERLOAD cleared where worker `w`'s view of the conns fell below the
    /// lower threshold, or below 3/4 of the upper when no lower one is set.
    #[cold]
    fn relieved(&self, w: usize) {
        let (l, u) = (u64::from(self.l_threshold()), u64::from(self.u_threshold()));
        let total = self.total_at(w);
        let clear = if l != 0 {
            total < l
        } else if u != 0 {
            total * 4 < u * 3
        } else {
            true
        };
        if clear {
            self.flags.fetch_and(!DEST_F_OVERLOAD, Relaxed);
        }
    }

    /// Worker `w`'s conn moved between the active and inactive states.
    pub fn conn_became(&self, w: usize, active: bool) -> bool {
        let p = self.slot(w);
        if active {
            drop_one(&self.inactconns, &p.inactive);
            bump(&p.active, 1);
        } else {
            drop_one(&self.activeconns, &p.active);
            bump(&p.inactive, 1);
        }
        self.changed(p)
    }

    /// A persistence template of worker `w` now points here, or no longer
    /// does.
    pub fn template_bound(&self, w: usize, bound: bool) -> bool {
        let p = self.slot(w);
        if bound {
            bump(&p.persist, 1);
        } else {
            drop_one(&self.persistconns, &p.persist);
        }
        self.changed(p)
    }

    /// Worker `w`'s changes into the totals, where the other workers see
    /// them (`DestRefs::fold`); its slot is then clear and unlisted.
    pub fn fold(&self, w: usize) {
        let p = self.slot(w);
        for (total, part) in [
            (&self.activeconns, &p.active),
            (&self.inactconns, &p.inactive),
            (&self.persistconns, &p.persist),
        ] {
            let v = part.load(Relaxed);
            if v != 0 {
                // A listing that sums between the two sees the change
                // twice, for that instant: counts that move anyway, read
                // without a lock, as the kernel's listing reads its own.
                total.fetch_add(v, Relaxed);
                part.store(0, Relaxed);
            }
        }
        p.listed.store(false, Relaxed);
    }

    /// Where worker `w`'s `DestRefs` last said it holds the dest, plus one
    /// (0: nowhere).
    #[inline(always)]
    pub(crate) fn handle(&self, w: usize) -> u32 {
        self.slot(w).handle.load(Relaxed)
    }

    pub(crate) fn set_handle(&self, w: usize, h: u32) {
        self.slot(w).handle.store(h, Relaxed);
    }

    /// Test and benchmark helper: set the counts directly.
    pub fn set_conns(&self, active: u32, inactive: u32) {
        let n = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        self.activeconns.store(n(active), Relaxed);
        self.inactconns.store(n(inactive), Relaxed);
        for p in self.pending.iter() {
            p.active.store(0, Relaxed);
            p.inactive.store(0, Relaxed);
        }
    }

    /// Test helper: set or clear OVERLOAD directly.
    pub fn set_overloaded(&self, on: bool) {
        if on {
            self.flags.fetch_or(DEST_F_OVERLOAD, Relaxed);
        } else {
            self.flags.fetch_and(!DEST_F_OVERLOAD, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(u: u32, l: u32) -> Dest {
        let mut c = DestConfig::new("10.0.0.1".parse().unwrap(), 80);
        c.u_threshold = u;
        c.l_threshold = l;
        Dest::new(&c, 1)
    }

    #[test]
    fn upper_threshold_sets_overload_and_three_quarters_clears_it() {
        let d = dest(4, 0);
        for _ in 0..3 {
            d.bind_conn(0, true);
        }
        assert!(!d.is_overloaded());
        d.bind_conn(0, false);
        assert!(d.is_overloaded(), "total 4 >= u 4");
        d.unbind_conn(0, true);
        assert!(d.is_overloaded(), "3*4 = 12 is not < 4*3 = 12");
        d.unbind_conn(0, true);
        assert!(!d.is_overloaded(), "2*4 < 12");
    }

    #[test]
    fn lower_threshold_decides_when_set() {
        let d = dest(4, 2);
        for _ in 0..4 {
            d.bind_conn(0, true);
        }
        assert!(d.is_overloaded());
        d.unbind_conn(0, true);
        d.unbind_conn(0, true);
        assert!(d.is_overloaded(), "total 2 is not < l 2");
        d.unbind_conn(0, true);
        assert!(!d.is_overloaded());
    }

    #[test]
    fn raising_or_removing_the_upper_threshold_clears_overload() {
        let d = dest(1, 0);
        d.bind_conn(0, true);
        assert!(d.is_overloaded());
        let mut c = d.config();
        c.u_threshold = 1;
        d.update(&c);
        assert!(d.is_overloaded(), "same threshold keeps the flag");
        c.u_threshold = 5;
        d.update(&c);
        assert!(!d.is_overloaded());
    }

    #[test]
    fn overhead_weighs_active_256_times_and_states_move() {
        let d = dest(0, 0);
        d.bind_conn(0, false);
        d.bind_conn(0, false);
        d.conn_became(0, true);
        assert_eq!((d.activeconns(), d.inactconns()), (1, 1));
        assert_eq!(d.conn_overhead_at(0), 257);
        d.unbind_conn(0, true);
        d.unbind_conn(0, false);
        d.unbind_conn(0, false);
        assert_eq!((d.activeconns(), d.inactconns()), (0, 0), "never wraps");
    }

    fn two_workers() -> Dest {
        Dest::new(&DestConfig::new("10.0.0.1".parse().unwrap(), 80), 2)
    }

    #[test]
    fn a_workers_changes_are_its_own_until_it_folds_them() {
        let d = two_workers();
        for _ in 0..3 {
            d.bind_conn(0, false);
        }
        d.conn_became(0, true);
        d.bind_conn(1, false);
        // Each worker sees its own at once, the other's not yet; a listing
        // sees both.
        assert_eq!((d.activeconns_at(0), d.inactconns_at(0)), (1, 2));
        assert_eq!((d.activeconns_at(1), d.inactconns_at(1)), (0, 1));
        assert_eq!((d.activeconns(), d.inactconns()), (1, 3));
        d.fold(0);
        assert_eq!((d.activeconns_at(1), d.inactconns_at(1)), (1, 3));
        assert_eq!((d.activeconns_at(0), d.inactconns_at(0)), (1, 2));
        assert_eq!((d.activeconns(), d.inactconns()), (1, 3), "not twice");
        d.fold(1);
        assert_eq!(d.conn_overhead_at(0), d.conn_overhead_at(1));
        assert_eq!(d.conn_overhead_at(0), 256 + 3);
        // Ends after the fold count against the totals.
        d.unbind_conn(1, true);
        d.unbind_conn(1, false);
        assert_eq!((d.activeconns_at(1), d.inactconns_at(1)), (0, 2));
        assert_eq!((d.activeconns(), d.inactconns()), (0, 2));
        d.fold(1);
        assert_eq!((d.activeconns_at(0), d.inactconns_at(0)), (0, 2));
    }

    #[test]
    fn only_the_first_change_since_a_fold_asks_for_the_dest_to_be_listed() {
        let d = two_workers();
        assert!(d.bind_conn(0, true), "the first change");
        assert!(!d.bind_conn(0, true));
        assert!(!d.unbind_conn(0, true));
        assert!(d.template_bound(1, true), "each worker's slot its own");
        d.fold(0);
        assert!(d.conn_became(0, false), "listed again after its fold");
        assert!(!d.template_bound(1, false));
    }

    #[test]
    fn the_upper_threshold_counts_the_other_workers_folded_conns() {
        let mut c = DestConfig::new("10.0.0.1".parse().unwrap(), 80);
        c.u_threshold = 4;
        let d = Dest::new(&c, 2);
        d.bind_conn(0, true);
        d.bind_conn(0, true);
        d.bind_conn(1, true);
        assert!(!d.is_overloaded());
        d.fold(0);
        d.bind_conn(1, true);
        assert!(
            d.is_overloaded(),
            "2 folded by worker 0, 2 of worker 1's own"
        );
        d.unbind_conn(1, true);
        assert!(d.is_overloaded(), "3 as worker 1 sees it: 12 is not < 12");
        d.unbind_conn(1, true);
        assert!(!d.is_overloaded(), "2 as worker 1 sees it");
    }

    #[test]
    fn a_quiesced_dest_keeps_the_operators_weight_and_drain() {
        let d = dest(0, 0);
        d.set_weight(3);
        d.set_inhibited(true);
        assert_eq!((d.weight(), d.admin_weight(), d.config().weight), (0, 3, 3));
        // The operator drains it while it is down: the check passing later
        // must not undo that.
        d.set_weight(0);
        d.set_inhibited(false);
        assert_eq!(d.weight(), 0);
        d.set_weight(2);
        assert_eq!(d.weight(), 2);
        d.set_inhibited(true);
        d.set_weight(5);
        assert_eq!(d.weight(), 0, "an edit while down stays quiesced");
        d.set_inhibited(false);
        assert_eq!((d.weight(), d.last_weight()), (5, 5));
    }

    #[test]
    fn weight_zero_keeps_the_last_weight() {
        let d = dest(0, 0);
        d.set_weight(5);
        d.set_weight(0);
        assert_eq!((d.weight(), d.last_weight()), (0, 5));
        let mut c = DestConfig::new(d.addr(), 80);
        c.weight = -1;
        assert!(c.validate().is_err());
        c.weight = 1;
        c.l_threshold = 3;
        assert_eq!(
            c.validate(),
            Err(IpvsError::OutOfRange(
                "lower threshold above upper threshold"
            ))
        );
    }
}
