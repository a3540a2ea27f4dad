//! Health checks of real servers and the sorry server (scenario 9 of
//! operator-scenarios.md, ldirectord's semantics). Runs on control
//! threads only; a worker never waits on a check.
//!
//! The rules:
//! - A checked real server starts up. `fall` failed checks in a row take
//!   it down, `rise` passed ones bring it back (defaults 3 and 1).
//! - Down quiesces it (weight 0, its conns finish: `quiescent=yes`, the
//!   default) or takes it out of the list as `-d` would (`quiescent=no`).
//!   Up gives it back the operator's weight.
//! - The operator's weight wins: `-e ... -w 0` (a drain) stays 0 whatever
//!   the checks say, and a weight set while the server is down is the one
//!   it comes back with.
//! - While no real server of a service is up, its sorry server (if it has
//!   one) is in the list and takes the new conns; when one comes back, the
//!   sorry server leaves the list and its conns finish.
pub mod check;
pub mod hostpath;
pub mod probe;
pub mod runner;
pub mod state;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

pub use check::{CheckConfig, Transport};
pub use probe::{CheckKind, Probe, Verdict};
use state::RiseFall;

use crate::ipvs::{DestConfig, FwdMethod, Protocol, ServiceKey, ServiceTable, Tunnel};

/// How long past its timeout a probe may run before it counts as failed
/// (a probe that hangs must not hold its server's state forever).
const GRACE: Duration = Duration::from_secs(1);

/// One real server of one checked service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    pub service: ServiceKey,
    pub addr: IpAddr,
    pub port: u16,
}

impl Target {
    /// The real server in the table, listed or parked.
    pub fn dest(&self, table: &ServiceTable) -> Option<std::sync::Arc<crate::ipvs::Dest>> {
        table.get(&self.service).and_then(|s| {
            s.configured_dests()
                .find(|d| d.addr() == self.addr && d.port() == self.port)
                .cloned()
        })
    }
}

/// A probe to run, and how to report it.
#[derive(Debug, Clone)]
pub struct Job {
    pub target: Target,
    pub seq: u64,
    pub probe: Probe,
}

/// A real server went down or came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub target: Target,
    pub up: bool,
    /// The last check's verdict in words.
    pub reason: String,
    /// Checks in a row that decided it.
    pub checks: u32,
}

#[derive(Debug)]
struct TargetState {
    rf: RiseFall,
    next_due: Instant,
    running: Option<Running>,
    last: Option<String>,
    passed: u64,
    failed: u64,
}

#[derive(Debug, Clone, Copy)]
struct Running {
    seq: u64,
    deadline: Instant,
    /// Counted as failed already because it ran past its deadline.
    overdue: bool,
}

/// Where checks leave from: the exception path's addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sources {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

impl Sources {
    fn for_target(&self, a: IpAddr) -> Option<IpAddr> {
        match a {
            IpAddr::V4(_) => self.v4.map(IpAddr::V4),
            IpAddr::V6(_) => self.v6.map(IpAddr::V6),
        }
    }
}

/// Checks, sorry servers and what the checks found.
#[derive(Debug, Default)]
pub struct Health {
    checks: HashMap<ServiceKey, CheckConfig>,
    sorry: HashMap<ServiceKey, (DestConfig, Tunnel)>,
    states: HashMap<Target, TargetState>,
    sources: Sources,
    seq: u64,
}

/// The transport a service's checks default to.
pub fn transport(key: &ServiceKey) -> Transport {
    match key {
        ServiceKey::Addr {
            proto: Protocol::Tcp,
            ..
        } => Transport::Tcp,
        ServiceKey::Addr {
            proto: Protocol::Udp,
            ..
        } => Transport::Udp,
        _ => Transport::Other,
    }
}

impl Health {
    pub fn new(sources: Sources) -> Health {
        Health {
            sources,
            ..Default::default()
        }
    }

    /// The checks and sorry servers without what the checks found: for a
    /// dry run of commands that name them.
    pub fn dry_copy(&self) -> Health {
        Health {
            checks: self.checks.clone(),
            sorry: self.sorry.clone(),
            sources: self.sources,
            ..Default::default()
        }
    }

    pub fn sources(&self) -> Sources {
        self.sources
    }

    pub fn check(&self, key: &ServiceKey) -> Option<&CheckConfig> {
        self.checks.get(key)
    }

    pub fn sorry(&self, key: &ServiceKey) -> Option<&DestConfig> {
        self.sorry.get(key).map(|(d, _)| d)
    }

    /// Sets or removes a service's check. A new check starts at once; a
    /// removed one gives every server it held down back to the list.
    pub fn set_check(
        &mut self,
        table: &mut ServiceTable,
        key: &ServiceKey,
        check: Option<CheckConfig>,
        now: Instant,
    ) {
        match check {
            Some(c) => {
                let quiescent = c.quiescent;
                self.checks.insert(*key, c);
                for (t, st) in self.states.iter_mut().filter(|(t, _)| t.service == *key) {
                    st.next_due = now;
                    if !st.rf.is_up() {
                        // The new quiescent= applies to servers down now.
                        let _ = table.set_dest_health(key, t.addr, t.port, false, quiescent);
                    }
                }
            }
            None => {
                self.checks.remove(key);
                self.forget(table, |t| t.service == *key);
            }
        }
        self.reconcile(table);
    }

    /// Sets or removes a service's sorry server.
    pub fn set_sorry(&mut self, table: &mut ServiceTable, key: &ServiceKey, d: Option<DestConfig>) {
        self.set_sorry_tunnel(table, key, d.map(|d| (d, Tunnel::Ipip)));
    }

    /// [`Health::set_sorry`] with the encapsulation of a `-i` sorry server.
    pub fn set_sorry_tunnel(
        &mut self,
        table: &mut ServiceTable,
        key: &ServiceKey,
        d: Option<(DestConfig, Tunnel)>,
    ) {
        match d {
            Some(d) => self.sorry.insert(*key, d),
            None => self.sorry.remove(key),
        };
        self.reconcile(table);
    }

    /// Drops states (and their effect on the table) for targets `gone`
    /// says are no longer checked.
    fn forget(&mut self, table: &mut ServiceTable, gone: impl Fn(&Target) -> bool) {
        let dropped: Vec<Target> = self.states.keys().filter(|t| gone(t)).copied().collect();
        for t in dropped {
            self.states.remove(&t);
            if let Some(d) = t.dest(table) {
                d.set_health(None);
            }
            let _ = table.set_dest_health(&t.service, t.addr, t.port, true, true);
        }
    }

    /// Brings everything in line with the table after any change to it:
    /// checks and sorry servers of deleted services go, states of deleted
    /// real servers go, and each sorry server is in the list exactly while
    /// none of its service's real servers is up. Whether the table changed.
    pub fn reconcile(&mut self, table: &mut ServiceTable) -> bool {
        self.checks.retain(|k, _| table.get(k).is_some());
        self.sorry.retain(|k, _| table.get(k).is_some());
        self.states.retain(|t, _| t.dest(table).is_some());
        let before = table.generation();
        let keys: Vec<ServiceKey> = table.services().iter().map(|s| s.key()).collect();
        for key in keys {
            let Some(svc) = table.get(&key) else { continue };
            if svc.sorry().is_none() && !self.sorry.contains_key(&key) {
                continue;
            }
            let any_up = svc
                .dests()
                .iter()
                .any(|d| !d.is_sorry() && !d.is_inhibited());
            let quorum = self
                .checks
                .get(&key)
                .and_then(|c| c.quorum.map(|(q, h)| (q, h, c.quiescent)));
            let sorry_wanted = match quorum {
                None => !any_up,
                Some((q, h, _)) => {
                    // keepalived's weigh_live_realservers: what the servers
                    // the checks call alive weigh, listed or held out.
                    let weight: i64 = svc
                        .configured_dests()
                        .filter(|d| d.health() != Some(false))
                        .map(|d| i64::from(d.admin_weight().max(0)))
                        .sum();
                    let (q, h) = (i64::from(q), i64::from(h));
                    if svc.sorry().is_some() {
                        weight < q + h
                    } else {
                        weight == 0 || weight < q - h
                    }
                }
            };
            let want = if sorry_wanted {
                self.sorry.get(&key).map(|(d, t)| (d, *t))
            } else {
                None
            };
            match table.set_sorry_tunnel(&key, want) {
                Ok(false) => {}
                Ok(true) => match want {
                    Some((d, _)) => log::warn!(
                        "health: {}: no real server is up; sorry server {} takes new connections",
                        key.words(),
                        SocketAddr::new(d.addr, d.port)
                    ),
                    None => log::info!(
                        "health: {}: {}; the sorry server takes no new connections",
                        key.words(),
                        if any_up {
                            "a real server is up"
                        } else {
                            "no sorry server is set"
                        }
                    ),
                },
                Err(e) => log::warn!("health: {}: cannot use the sorry server: {e}", key.words()),
            }
            if let Some((.., quiescent)) = quorum {
                // keepalived: while the sorry server stands in for a lost
                // quorum, the servers still alive leave the pool, and come
                // back with the quorum.
                let Some(svc) = table.get(&key) else { continue };
                let in_use = svc.sorry().is_some();
                let alive: Vec<(IpAddr, u16)> = svc
                    .configured_dests()
                    .filter(|d| d.health() != Some(false))
                    .map(|d| (d.addr(), d.port()))
                    .collect();
                for (a, p) in alive {
                    let _ = table.set_dest_health(&key, a, p, !in_use, quiescent);
                }
            }
        }
        table.generation() != before
    }

    /// Starts what is due and fails what overran: the probes to run now, the
    /// transitions that overruns caused. Call every few tens of ms.
    pub fn tick(&mut self, table: &mut ServiceTable, now: Instant) -> (Vec<Job>, Vec<Transition>) {
        let mut jobs = Vec::new();
        let mut overdue = Vec::new();
        let mut unusable = Vec::new();
        let mut start_down = Vec::new();
        // Only checked services: the engine's lock is held, and a table may
        // hold tens of thousands of services no check watches.
        for (&key, check) in &self.checks {
            let Some(svc) = table.get(&key) else { continue };
            let vport = key.port();
            let vaddr = match key {
                ServiceKey::Addr { addr, .. } => addr,
                ServiceKey::Fwmark { ipv6: true, .. } => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                ServiceKey::Fwmark { .. } => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            };
            for d in svc.configured_dests() {
                let target = Target {
                    service: key,
                    addr: d.addr(),
                    port: d.port(),
                };
                let st = self.states.entry(target).or_insert_with(|| {
                    d.set_health(Some(!check.start_down));
                    if check.start_down {
                        start_down.push((target, check.quiescent));
                    }
                    TargetState {
                        rf: RiseFall::starting(!check.start_down),
                        next_due: now,
                        running: None,
                        last: None,
                        passed: 0,
                        failed: 0,
                    }
                });
                if let Some(r) = &mut st.running {
                    // One probe per server at a time: a hung one is not
                    // joined by more; it fails once past its deadline and
                    // again every interval it goes on hanging.
                    if now >= r.deadline + GRACE && (!r.overdue || now >= st.next_due) {
                        r.overdue = true;
                        st.next_due = now + check.interval;
                        overdue.push(target);
                    }
                    continue;
                }
                if now < st.next_due {
                    continue;
                }
                st.next_due = now + check.interval;
                let port = check.port_for(d.addr(), d.port());
                let needs_port =
                    !matches!(check.kind, CheckKind::Ping | CheckKind::External { .. });
                if port == 0 && needs_port {
                    // A firewall-mark service's real server on port 0.
                    unusable.push(target);
                    continue;
                }
                self.seq += 1;
                st.running = Some(Running {
                    seq: self.seq,
                    deadline: now + check.timeout,
                    overdue: false,
                });
                jobs.push(Job {
                    target,
                    seq: self.seq,
                    probe: Probe {
                        kind: check.kind.clone(),
                        target: SocketAddr::new(d.addr(), port),
                        virtual_addr: SocketAddr::new(vaddr, vport),
                        source: self.sources.for_target(d.addr()),
                        timeout: check.timeout,
                    },
                });
            }
        }
        for (t, quiescent) in &start_down {
            let _ = table.set_dest_health(&t.service, t.addr, t.port, false, *quiescent);
        }
        if !start_down.is_empty() {
            self.reconcile(table);
        }
        let mut transitions = Vec::new();
        for target in overdue {
            let why = format!("check still running {}s past its timeout", GRACE.as_secs());
            transitions.extend(self.record(table, target, Verdict::Down(why)));
        }
        for target in unusable {
            let why = "real server on port 0: give the check a checkport=".to_string();
            transitions.extend(self.record(table, target, Verdict::Down(why)));
        }
        (jobs, transitions)
    }

    /// A probe finished. Late results of probes already counted as
    /// overdue only free the server for its next probe.
    pub fn report(
        &mut self,
        table: &mut ServiceTable,
        target: Target,
        seq: u64,
        verdict: Verdict,
    ) -> Option<Transition> {
        let st = self.states.get_mut(&target)?;
        let r = st.running.filter(|r| r.seq == seq)?;
        st.running = None;
        if r.overdue {
            return None;
        }
        self.record(table, target, verdict)
    }

    fn record(
        &mut self,
        table: &mut ServiceTable,
        target: Target,
        verdict: Verdict,
    ) -> Option<Transition> {
        let check = self.checks.get(&target.service)?;
        let st = self.states.get_mut(&target)?;
        let passed = verdict == Verdict::Up;
        if passed {
            st.passed += 1;
        } else {
            st.failed += 1;
        }
        let reason = match verdict {
            Verdict::Up => "check passed".to_string(),
            Verdict::Down(why) => why,
        };
        st.last = Some(reason.clone());
        let streak = st.rf.streak() + 1;
        let changed = st
            .rf
            .record_first(passed, check.rise, check.fall, check.first_decides);
        if let (None, Some(retry)) = (changed, check.retry_interval) {
            if !passed && st.rf.is_up() {
                // Still up after a failure: keepalived retries sooner.
                st.next_due = Instant::now() + retry;
            }
        }
        let up = changed?;
        let quiescent = check.quiescent;
        if let Some(d) = target.dest(table) {
            d.set_health(Some(up));
        }
        let _ = table.set_dest_health(&target.service, target.addr, target.port, up, quiescent);
        self.reconcile(table);
        Some(Transition {
            target,
            up,
            reason,
            checks: streak,
        })
    }

    /// `--check-list`: each check, then each server's state.
    pub fn list(&self, table: &ServiceTable, only: Option<&ServiceKey>) -> String {
        let mut keys: Vec<&ServiceKey> = self
            .checks
            .keys()
            .chain(self.sorry.keys().filter(|k| !self.checks.contains_key(*k)))
            .filter(|k| only.is_none_or(|o| o == *k))
            .collect();
        keys.sort_by_key(|k| k.words());
        let mut s = String::new();
        for key in keys {
            let _ = write!(s, "{}", key.words());
            match self.checks.get(key) {
                Some(c) => {
                    let _ = writeln!(s, " {c}");
                }
                None => s.push_str(" (no check)\n"),
            }
            if let Some((d, _)) = self.sorry.get(key) {
                let active = table
                    .get(key)
                    .and_then(|svc| svc.sorry().cloned())
                    .is_some();
                let _ = writeln!(
                    s,
                    "  sorry {} {}",
                    SocketAddr::new(d.addr, d.port),
                    if active { "in use" } else { "standing by" }
                );
            }
            let Some(svc) = table.get(key) else { continue };
            let mut dests: Vec<_> = svc.configured_dests().collect();
            dests.sort_by_key(|d| (d.addr(), d.port()));
            for d in dests {
                let t = Target {
                    service: *key,
                    addr: d.addr(),
                    port: d.port(),
                };
                let Some(st) = self.states.get(&t) else {
                    let _ = writeln!(s, "  -> {} unchecked", SocketAddr::new(t.addr, t.port));
                    continue;
                };
                let _ = writeln!(
                    s,
                    "  -> {} {} passed {} failed {}{}",
                    SocketAddr::new(t.addr, t.port),
                    if st.rf.is_up() { "up" } else { "down" },
                    st.passed,
                    st.failed,
                    st.last
                        .as_deref()
                        .map(|l| format!(" last: {l}"))
                        .unwrap_or_default()
                );
            }
        }
        s
    }

    /// The lines -S adds after the ipvsadm lines, so -R restores checks
    /// and sorry servers too.
    pub fn save_lines(&self) -> String {
        self.save_lines_of(|_| true)
    }

    /// [`Health::save_lines`] of the services `keep` says.
    pub fn save_lines_of(&self, keep: impl Fn(&ServiceKey) -> bool) -> String {
        let mut lines: Vec<String> = self
            .checks
            .iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, c)| format!("--check-set {} {c}\n", k.words()))
            .collect();
        lines.extend(
            self.sorry
                .iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, (d, t))| {
                    format!(
                        "--sorry-set {} -r {} {} -w {}{}\n",
                        k.words(),
                        SocketAddr::new(d.addr, d.port),
                        d.fwd.switch(),
                        d.weight,
                        if d.fwd == FwdMethod::Tunnel {
                            t.save_options()
                        } else {
                            String::new()
                        }
                    )
                }),
        );
        lines.sort();
        lines.concat()
    }
}

#[cfg(test)]
mod tests;
