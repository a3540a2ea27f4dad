//! Real servers (dests): identity, forwarding method, weight, thresholds
//! and the connection counts schedulers read.
//!
//! A `Dest` is shared by every worker (`Arc`); what changes at run time is
//! atomic. Counts follow the kernel's classic `ip_vs_bind_dest` /
//! `ip_vs_unbind_dest` rules, including the OVERLOAD flag of -x/-y.
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

#[derive(Debug)]
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
    activeconns: AtomicU32,
    inactconns: AtomicU32,
    persistconns: AtomicU32,
    pub stats: Stats,
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
            activeconns: AtomicU32::new(0),
            inactconns: AtomicU32::new(0),
            persistconns: AtomicU32::new(0),
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
    #[inline]
    pub fn activeconns(&self) -> u32 {
        self.activeconns.load(Relaxed)
    }
    #[inline]
    pub fn inactconns(&self) -> u32 {
        self.inactconns.load(Relaxed)
    }
    pub fn persistconns(&self) -> u32 {
        self.persistconns.load(Relaxed)
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
    /// inactive one (the classic kernel rule).
    #[inline]
    pub fn conn_overhead(&self) -> u64 {
        (u64::from(self.activeconns()) << 8) + u64::from(self.inactconns())
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

    fn total(&self) -> u64 {
        u64::from(self.activeconns()) + u64::from(self.inactconns())
    }

    /// ip_vs_bind_dest: a new conn (not a template) counts against the dest;
    /// reaching the upper threshold sets OVERLOAD.
    pub fn bind_conn(&self, active: bool) {
        if active {
            self.activeconns.fetch_add(1, Relaxed);
        } else {
            self.inactconns.fetch_add(1, Relaxed);
        }
        let u = self.u_threshold();
        if u != 0 && self.total() >= u64::from(u) {
            self.flags.fetch_or(DEST_F_OVERLOAD, Relaxed);
        }
    }

    /// ip_vs_unbind_dest: the conn ended; OVERLOAD clears below the lower
    /// threshold, or below 3/4 of the upper when no lower one is set.
    pub fn unbind_conn(&self, active: bool) {
        let counter = if active {
            &self.activeconns
        } else {
            &self.inactconns
        };
        // Saturating: an unbalanced unbind must not wrap to 4 billion conns.
        let _ = counter.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(1)));
        let (l, u) = (u64::from(self.l_threshold()), u64::from(self.u_threshold()));
        let total = self.total();
        let clear = if l != 0 {
            total < l
        } else if u != 0 {
            total * 4 < u * 3
        } else {
            true
        };
        // Read first: a dest without thresholds is never overloaded, and
        // an atomic write per conn's end to a line every worker reads would
        // be paid by all of them.
        if clear && self.is_overloaded() {
            self.flags.fetch_and(!DEST_F_OVERLOAD, Relaxed);
        }
    }

    /// A conn moved between the active and inactive states.
    pub fn conn_became(&self, active: bool) {
        let (from, to) = if active {
            (&self.inactconns, &self.activeconns)
        } else {
            (&self.activeconns, &self.inactconns)
        };
        let _ = from.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(1)));
        to.fetch_add(1, Relaxed);
    }

    /// A persistence template now points here, or no longer does.
    pub fn template_bound(&self, bound: bool) {
        if bound {
            self.persistconns.fetch_add(1, Relaxed);
        } else {
            let _ = self
                .persistconns
                .fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(1)));
        }
    }

    /// Test and benchmark helper: set the counts directly.
    pub fn set_conns(&self, active: u32, inactive: u32) {
        self.activeconns.store(active, Relaxed);
        self.inactconns.store(inactive, Relaxed);
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
            d.bind_conn(true);
        }
        assert!(!d.is_overloaded());
        d.bind_conn(false);
        assert!(d.is_overloaded(), "total 4 >= u 4");
        d.unbind_conn(true);
        assert!(d.is_overloaded(), "3*4 = 12 is not < 4*3 = 12");
        d.unbind_conn(true);
        assert!(!d.is_overloaded(), "2*4 < 12");
    }

    #[test]
    fn lower_threshold_decides_when_set() {
        let d = dest(4, 2);
        for _ in 0..4 {
            d.bind_conn(true);
        }
        assert!(d.is_overloaded());
        d.unbind_conn(true);
        d.unbind_conn(true);
        assert!(d.is_overloaded(), "total 2 is not < l 2");
        d.unbind_conn(true);
        assert!(!d.is_overloaded());
    }

    #[test]
    fn raising_or_removing_the_upper_threshold_clears_overload() {
        let d = dest(1, 0);
        d.bind_conn(true);
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
        d.bind_conn(false);
        d.bind_conn(false);
        d.conn_became(true);
        assert_eq!((d.activeconns(), d.inactconns()), (1, 1));
        assert_eq!(d.conn_overhead(), 257);
        d.unbind_conn(true);
        d.unbind_conn(false);
        d.unbind_conn(false);
        assert_eq!((d.activeconns(), d.inactconns()), (0, 0), "never wraps");
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
