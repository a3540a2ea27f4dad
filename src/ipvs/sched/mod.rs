//! The 14 IPVS schedulers behind one trait, one file each, as the kernel
//! keeps one ip_vs_<name>.c per scheduler behind one ops table.
//!
//! Each worker owns its own scheduler instances (round-robin positions,
//! locality tables, hash tables), so picking never synchronises workers; the
//! connection counts the least-connection family reads are the dests'
//! shared atomics.
pub mod dh;
pub mod fo;
pub mod lblc;
pub mod lblcr;
pub mod lc;
pub mod mh;
pub mod none;
pub mod nq;
pub mod ovf;
pub mod per_worker;
pub mod rr;
pub mod sed;
pub mod sh;
#[cfg(test)]
mod testutil;
pub mod twos;
pub mod wlc;
pub mod wrr;

use std::net::IpAddr;
use std::sync::Arc;

use super::dest::Dest;
use super::error::IpvsError;
use super::Millis;

use super::tuple::Tuple;
pub use per_worker::WorkerScheds;

/// ipvsadm's `-b`: IP_VS_SVC_F_SCHED1/2/3.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SchedFlags(pub u32);

impl SchedFlags {
    pub const SCHED1: u32 = 0x08;
    pub const SCHED2: u32 = 0x10;
    pub const SCHED3: u32 = 0x20;
    pub const ALL: u32 = Self::SCHED1 | Self::SCHED2 | Self::SCHED3;

    /// sh-fallback / mh-fallback.
    pub fn fallback(self) -> bool {
        self.0 & Self::SCHED1 != 0
    }
    /// sh-port / mh-port.
    pub fn port(self) -> bool {
        self.0 & Self::SCHED2 != 0
    }
}

pub trait Scheduler: Send {
    fn name(&self) -> &'static str;

    /// Picks a dest for a new connection: an index into `dests`, which is in
    /// the kernel's list order (newest first). None: no dest can take it.
    fn schedule(&mut self, dests: &[Arc<Dest>], input: &Tuple, now: Millis) -> Option<usize>;

    /// The dest list changed (a dest added, removed or edited): rebuild
    /// whatever was derived from it.
    fn update(&mut self, _dests: &[Arc<Dest>]) {}

    /// Periodic housekeeping (lblc/lblcr expire their tables).
    fn gc(&mut self, _dests: &[Arc<Dest>], _now: Millis) {}

    /// The worker whose instance it is (0 unless set): one that weighs
    /// dests by their conns reads them as that worker sees them, its own
    /// at once and the others' as of their last fold (`Dest::*_at`).
    fn count_as(&mut self, _worker: usize) {}
}

/// The schedulers rvs has, by ipvsadm name.
pub const NAMES: [&str; 14] = [
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos",
];

/// A fresh scheduler instance for one worker.
pub fn new(name: &str, flags: SchedFlags) -> Result<Box<dyn Scheduler>, IpvsError> {
    Ok(match name {
        "rr" => Box::new(rr::Rr::new()),
        "wrr" => Box::new(wrr::Wrr::new()),
        "lc" => Box::new(lc::Lc::new()),
        "wlc" => Box::new(wlc::Wlc::new()),
        "lblc" => Box::new(lblc::Lblc::new()),
        "lblcr" => Box::new(lblcr::Lblcr::new()),
        "dh" => Box::new(dh::Dh::new(flags)),
        "sh" => Box::new(sh::Sh::new(flags)),
        "sed" => Box::new(sed::Sed::new()),
        "nq" => Box::new(nq::Nq::new()),
        "fo" => Box::new(fo::Fo::new()),
        "ovf" => Box::new(ovf::Ovf::new()),
        "mh" => Box::new(mh::Mh::new(flags)),
        "twos" => Box::new(twos::Twos::new()),
        // No scheduler at all, which the kernel takes as a name of its own.
        "none" => Box::new(none::NoScheduler),
        _ => return Err(IpvsError::SchedulerNotFound),
    })
}

/// Whether a dest with overhead `d_oh` and weight `d_w` is strictly less
/// loaded per weight than the current least (`l_oh`, `l_w`): the kernel's
/// `loh * dw > doh * lw`, cross-multiplied in i128 so that no count or
/// weight can overflow. Strict, so ties stay with the earlier dest.
#[inline]
pub(crate) fn lighter(d_oh: u64, d_w: i32, l_oh: u64, l_w: i32) -> bool {
    i128::from(l_oh) * i128::from(d_w) > i128::from(d_oh) * i128::from(l_w)
}

/// The weighted-least rule of wlc and sed (and of lblc/lblcr when they fall
/// back to WLC): the first dest with weight > 0 and no OVERLOAD flag, then
/// any later unflagged dest strictly lighter by `overhead` per weight. A
/// later weight-0 dest never wins, as `loh * 0 > x` is never true.
pub(crate) fn weighted_least(
    dests: &[Arc<Dest>],
    overhead: impl Fn(&Dest) -> u64,
) -> Option<usize> {
    let mut open = dests.iter().enumerate().filter(|(_, d)| !d.is_overloaded());
    let (mut least, first) = open.find(|(_, d)| d.weight() > 0)?;
    let (mut l_oh, mut l_w) = (overhead(first), first.weight());
    for (i, d) in open {
        let (d_oh, d_w) = (overhead(d), d.weight());
        if lighter(d_oh, d_w, l_oh, l_w) {
            (least, l_oh, l_w) = (i, d_oh, d_w);
        }
    }
    Some(least)
}

/// Kernel `hash_32`: multiplicative hashing with GOLDEN_RATIO_32.
#[inline]
pub fn hash_32(v: u32, bits: u32) -> u32 {
    v.wrapping_mul(0x61C8_8647)
        .checked_shr(32 - bits.min(32))
        .unwrap_or(0)
}

/// The kernel's address fold for hashing: IPv4 as a host-order u32, IPv6 as
/// the XOR of its four 32-bit words (ip_vs_*_hashkey's `addr_fold`).
#[inline]
pub fn addr_fold(a: IpAddr) -> u32 {
    match a {
        IpAddr::V4(v4) => u32::from(v4),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            w(0) ^ w(4) ^ w(8) ^ w(12)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_makes_its_scheduler_and_others_are_enoent() {
        for name in NAMES {
            let s = new(name, SchedFlags::default()).map(|s| s.name());
            assert_eq!(s.ok(), Some(name));
        }
        assert!(matches!(
            new("nope", SchedFlags::default()),
            Err(IpvsError::SchedulerNotFound)
        ));
    }

    #[test]
    fn hash_32_and_fold_match_the_kernel_formulas() {
        // hash_32(1, 8) = (0x61C88647 >> 24) = 0x61
        assert_eq!(hash_32(1, 8), 0x61);
        assert_eq!(hash_32(0, 8), 0);
        assert_eq!(addr_fold("10.0.0.1".parse().unwrap()), 0x0a00_0001);
        assert_eq!(addr_fold("2001:db8::1".parse().unwrap()), 0x2001_0db8 ^ 1);
    }
}
