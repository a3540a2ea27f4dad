//! The registry against a real service table: transitions, actions, the
//! operator's weight, the sorry server, overruns.
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::ipvs::{FwdMethod, ServiceConfig};

fn key() -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: "198.18.0.100".parse().unwrap(),
        port: 80,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn dest(a: &str, w: i32) -> DestConfig {
    DestConfig {
        fwd: FwdMethod::FullNat,
        weight: w,
        ..DestConfig::new(ip(a), 80)
    }
}

fn table() -> ServiceTable {
    let mut t = ServiceTable::new(1);
    t.add_service(ServiceConfig::new(key())).unwrap();
    t.add_dest(&key(), dest("10.0.0.1", 2)).unwrap();
    t.add_dest(&key(), dest("10.0.0.2", 3)).unwrap();
    t
}

fn check(words: &str) -> CheckConfig {
    CheckConfig::parse(
        check::split_words(words)
            .unwrap()
            .iter()
            .map(String::as_str),
        Transport::Tcp,
    )
    .unwrap()
}

/// (addr, weight) of the listed dests, in list order.
fn listed(t: &ServiceTable) -> Vec<(String, i32)> {
    t.get(&key())
        .unwrap()
        .dests()
        .iter()
        .map(|d| (d.addr().to_string(), d.weight()))
        .collect()
}

/// Runs ticks at `now` and answers every probe with `verdict(addr)`.
fn round(
    h: &mut Health,
    t: &mut ServiceTable,
    now: Instant,
    verdict: impl Fn(&str) -> bool,
) -> Vec<Transition> {
    let (jobs, mut out) = h.tick(t, now);
    for j in jobs {
        let v = if verdict(&j.target.addr.to_string()) {
            Verdict::Up
        } else {
            Verdict::Down("refused".into())
        };
        out.extend(h.report(t, j.target, j.seq, v));
    }
    out
}

#[test]
fn quiescent_down_after_fall_up_after_rise_with_the_operators_weight() {
    let mut t = table();
    let mut h = Health::default();
    let t0 = Instant::now();
    h.set_check(
        &mut t,
        &key(),
        Some(check("checkinterval=1 fall=3 rise=1")),
        t0,
    );
    let dead = |a: &str| a != "10.0.0.1";
    let mut at = t0;
    for i in 0..2 {
        assert!(round(&mut h, &mut t, at, dead).is_empty(), "round {i}");
        at += Duration::from_secs(1);
    }
    assert_eq!(listed(&t), [("10.0.0.2".into(), 3), ("10.0.0.1".into(), 2)]);
    let tr = round(&mut h, &mut t, at, dead);
    assert_eq!(tr.len(), 1);
    assert_eq!(
        (tr[0].target.addr, tr[0].up, tr[0].checks),
        (ip("10.0.0.1"), false, 3)
    );
    assert_eq!(listed(&t), [("10.0.0.2".into(), 3), ("10.0.0.1".into(), 0)]);
    let d1 = t.get(&key()).unwrap().dests()[1].clone();
    assert_eq!((d1.health(), d1.transitions()), (Some(false), (1, 0)));
    // Nothing is due before the interval has passed.
    assert!(h.tick(&mut t, at + Duration::from_millis(500)).0.is_empty());
    at += Duration::from_secs(1);
    let tr = round(&mut h, &mut t, at, |_| true);
    assert_eq!((tr.len(), tr[0].up), (1, true));
    assert_eq!(listed(&t), [("10.0.0.2".into(), 3), ("10.0.0.1".into(), 2)]);
    assert_eq!(d1.transitions(), (1, 1));
}

#[test]
fn a_drain_survives_a_passing_check_and_an_edit_while_down_sticks() {
    let mut t = table();
    let mut h = Health::default();
    let mut at = Instant::now();
    h.set_check(&mut t, &key(), Some(check("checkinterval=1 fall=1")), at);
    round(&mut h, &mut t, at, |a| a != "10.0.0.1");
    assert_eq!(listed(&t)[1], ("10.0.0.1".into(), 0));
    // The operator drains the dead server, then it recovers: still drained.
    t.edit_dest(&key(), dest("10.0.0.1", 0)).unwrap();
    at += Duration::from_secs(1);
    round(&mut h, &mut t, at, |_| true);
    assert_eq!(listed(&t)[1], ("10.0.0.1".into(), 0));
    // A weight set while down is the weight it comes back with.
    at += Duration::from_secs(1);
    round(&mut h, &mut t, at, |a| a != "10.0.0.1");
    t.edit_dest(&key(), dest("10.0.0.1", 7)).unwrap();
    assert_eq!(listed(&t)[1], ("10.0.0.1".into(), 0));
    at += Duration::from_secs(1);
    round(&mut h, &mut t, at, |_| true);
    assert_eq!(listed(&t)[1], ("10.0.0.1".into(), 7));
}

#[test]
fn not_quiescent_takes_servers_out_and_the_sorry_server_stands_in() {
    let mut t = table();
    let mut h = Health::default();
    let mut at = Instant::now();
    h.set_check(
        &mut t,
        &key(),
        Some(check("checkinterval=1 fall=1 quiescent=no")),
        at,
    );
    h.set_sorry(&mut t, &key(), Some(dest("10.0.9.9", 1)));
    assert!(t.get(&key()).unwrap().sorry().is_none(), "servers are up");
    round(&mut h, &mut t, at, |a| a != "10.0.0.1");
    assert_eq!(listed(&t), [("10.0.0.2".into(), 3)]);
    at += Duration::from_secs(1);
    round(&mut h, &mut t, at, |_| false);
    assert_eq!(
        listed(&t),
        [("10.0.9.9".into(), 1)],
        "only the sorry server"
    );
    assert!(t.get(&key()).unwrap().sorry().is_some());
    // A -e on a parked server is kept; -a of it is refused: it exists.
    t.edit_dest(&key(), dest("10.0.0.2", 4)).unwrap();
    assert!(t.add_dest(&key(), dest("10.0.0.2", 1)).is_err());
    // Servers down are still checked; one comes back and the sorry server goes.
    at += Duration::from_secs(1);
    round(&mut h, &mut t, at, |a| a == "10.0.0.2");
    assert_eq!(listed(&t), [("10.0.0.2".into(), 4)]);
    let saved = h.save_lines();
    assert!(
        saved.contains("--check-set -t 198.18.0.100:80 checktype=connect"),
        "{saved}"
    );
    assert!(
        saved.contains("--sorry-set -t 198.18.0.100:80 -r 10.0.9.9:80 -b -w 1"),
        "{saved}"
    );
}

#[test]
fn a_quiesced_service_gets_the_sorry_server_too_and_removing_the_check_restores_all() {
    let mut t = table();
    let mut h = Health::default();
    let at = Instant::now();
    h.set_sorry(&mut t, &key(), Some(dest("10.0.9.9", 1)));
    h.set_check(&mut t, &key(), Some(check("fall=1")), at);
    round(&mut h, &mut t, at, |_| false);
    assert_eq!(
        listed(&t),
        [
            ("10.0.9.9".into(), 1),
            ("10.0.0.2".into(), 0),
            ("10.0.0.1".into(), 0)
        ]
    );
    h.set_check(&mut t, &key(), None, at);
    assert_eq!(listed(&t), [("10.0.0.2".into(), 3), ("10.0.0.1".into(), 2)]);
    // A service with no real server at all has its sorry server in.
    t.delete_dest(&key(), ip("10.0.0.1"), 80).unwrap();
    t.delete_dest(&key(), ip("10.0.0.2"), 80).unwrap();
    h.reconcile(&mut t);
    assert_eq!(listed(&t), [("10.0.9.9".into(), 1)]);
    // Deleting the service forgets its sorry server.
    t.delete_service(&key()).unwrap();
    h.reconcile(&mut t);
    assert!(h.sorry(&key()).is_none());
}

#[test]
fn a_hung_probe_fails_its_server_without_starting_another() {
    let mut t = table();
    let mut h = Health::default();
    let t0 = Instant::now();
    h.set_check(
        &mut t,
        &key(),
        Some(check("checkinterval=1 checktimeout=1 fall=2")),
        t0,
    );
    let (jobs, _) = h.tick(&mut t, t0);
    assert_eq!(jobs.len(), 2);
    let hung = jobs
        .iter()
        .find(|j| j.target.addr == ip("10.0.0.1"))
        .unwrap()
        .clone();
    let fine = jobs
        .iter()
        .find(|j| j.target.addr == ip("10.0.0.2"))
        .unwrap()
        .clone();
    h.report(&mut t, fine.target, fine.seq, Verdict::Up);
    // Past timeout + grace: one failure; the other server is probed anew,
    // the hung one is not.
    let (jobs, tr) = h.tick(&mut t, t0 + Duration::from_millis(2100));
    assert!(tr.is_empty());
    assert_eq!(
        jobs.iter().map(|j| j.target.addr).collect::<Vec<_>>(),
        [ip("10.0.0.2")]
    );
    // Still hanging an interval later: the second failure takes it down.
    let (_, tr) = h.tick(&mut t, t0 + Duration::from_millis(3200));
    assert_eq!(tr.len(), 1);
    assert!(
        !tr[0].up && tr[0].reason.contains("past its timeout"),
        "{tr:?}"
    );
    // Its late verdict changes nothing, and frees it for the next probe.
    assert!(h
        .report(&mut t, hung.target, hung.seq, Verdict::Up)
        .is_none());
    let (jobs, _) = h.tick(&mut t, t0 + Duration::from_millis(4300));
    assert!(jobs.iter().any(|j| j.target.addr == ip("10.0.0.1")));
}

#[test]
fn probes_go_to_the_checkport_from_the_source_address() {
    let mut t = table();
    let mut h = Health::new(Sources {
        v4: Some("198.19.0.250".parse().unwrap()),
        v6: None,
    });
    h.set_check(
        &mut t,
        &key(),
        Some(check("checkport=8080 service=http request=/hc")),
        Instant::now(),
    );
    let (jobs, _) = h.tick(&mut t, Instant::now());
    let j = &jobs[0];
    assert_eq!(j.probe.target.port(), 8080);
    assert_eq!(j.probe.source, Some(ip("198.19.0.250")));
    assert_eq!(j.probe.virtual_addr, "198.18.0.100:80".parse().unwrap());
    let listing = h.list(&t, None);
    assert!(
        listing.contains("-> 10.0.0.1:80 up passed 0 failed 0"),
        "{listing}"
    );
}

#[test]
fn a_firewall_mark_server_on_port_0_needs_a_checkport() {
    let fwm = ServiceKey::Fwmark {
        mark: 7,
        ipv6: false,
    };
    let mut t = ServiceTable::new(1);
    let mut cfg = ServiceConfig::new(fwm);
    cfg.persistent = Some(300);
    t.add_service(cfg).unwrap();
    t.add_dest(&fwm, DestConfig::new(ip("10.0.0.1"), 0))
        .unwrap();
    let mut h = Health::default();
    let at = Instant::now();
    h.set_check(&mut t, &fwm, Some(check("fall=1")), at);
    let (jobs, tr) = h.tick(&mut t, at);
    assert!(jobs.is_empty());
    assert_eq!(tr.len(), 1);
    assert!(tr[0].reason.contains("checkport="), "{tr:?}");
    h.set_check(&mut t, &fwm, Some(check("fall=1 checkport=8080")), at);
    let (jobs, _) = h.tick(&mut t, at + Duration::from_secs(10));
    assert_eq!(jobs[0].probe.target, "10.0.0.1:8080".parse().unwrap());
    assert_eq!(jobs[0].probe.virtual_addr, "0.0.0.0:0".parse().unwrap());
}

/// keepalived's TCP_CHECK with retry 2, delay_before_retry 1, delay_loop
/// 10: a failure of an up server is retried after 1 s, not 10; the third
/// failure in a row takes it down; a down server is checked every 10 s.
#[test]
fn retryinterval_retries_an_up_server_sooner() {
    let mut t = table();
    let mut h = Health::default();
    let t0 = Instant::now();
    h.set_check(
        &mut t,
        &key(),
        Some(check("checkinterval=10 fall=3 rise=1 retryinterval=1")),
        t0,
    );
    let dead = |a: &str| a != "10.0.0.1";
    assert!(round(&mut h, &mut t, t0, dead).is_empty());
    // The retry is due within a second of now (record() counts from the
    // report), long before the interval.
    let soon = Instant::now() + Duration::from_millis(1100);
    let (jobs, _) = h.tick(&mut t, soon);
    assert_eq!(jobs.len(), 1, "only the failing server is retried");
    assert_eq!(jobs[0].target.addr, ip("10.0.0.1"));
    out_of(&mut h, &mut t, jobs, false);
    let (jobs, _) = h.tick(&mut t, Instant::now() + Duration::from_millis(2200));
    assert_eq!(jobs.len(), 1);
    let tr = out_of(&mut h, &mut t, jobs, false);
    assert_eq!(
        (tr.len(), tr[0].up),
        (1, false),
        "down at the third failure"
    );
    // Down: the next check waits for the interval, not the retry.
    let (jobs, _) = h.tick(&mut t, Instant::now() + Duration::from_millis(3300));
    assert!(jobs.is_empty());
}

fn out_of(h: &mut Health, t: &mut ServiceTable, jobs: Vec<Job>, up: bool) -> Vec<Transition> {
    jobs.into_iter()
        .filter_map(|j| {
            let v = if up {
                Verdict::Up
            } else {
                Verdict::Down("refused".into())
            };
            h.report(t, j.target, j.seq, v)
        })
        .collect()
}

/// keepalived's alpha: real servers start down (out of the list with
/// quiescent=no) and the first passed check brings each back.
#[test]
fn initial_down_holds_servers_out_until_a_check_passes() {
    let mut t = table();
    let mut h = Health::default();
    let t0 = Instant::now();
    h.set_check(
        &mut t,
        &key(),
        Some(check(
            "checkinterval=1 fall=3 initial=down firstcheck=decides quiescent=no",
        )),
        t0,
    );
    let (jobs, tr) = h.tick(&mut t, t0);
    assert!(tr.is_empty());
    assert_eq!(jobs.len(), 2);
    assert!(listed(&t).is_empty(), "both start out of the list");
    let tr = out_of(&mut h, &mut t, jobs, true);
    assert_eq!(tr.len(), 2);
    assert!(tr.iter().all(|t| t.up));
    assert_eq!(listed(&t).len(), 2);
}

/// keepalived without alpha: one failure before the first pass takes a
/// server down at once, whatever fall says.
#[test]
fn firstcheck_decides_takes_a_dead_server_down_at_its_first_check() {
    let mut t = table();
    let mut h = Health::default();
    let t0 = Instant::now();
    h.set_check(
        &mut t,
        &key(),
        Some(check("checkinterval=1 fall=3 firstcheck=decides")),
        t0,
    );
    let tr = round(&mut h, &mut t, t0, |a| a != "10.0.0.1");
    assert_eq!(tr.len(), 1);
    assert_eq!((tr[0].target.addr, tr[0].up), (ip("10.0.0.1"), false));
}

/// keepalived's quorum 4, hysteresis 1 over three servers of weight 2:
/// lost when the alive weight drops below 3 (one server left), the sorry
/// server then alone in the list; gained back only at 5 (all three).
#[test]
fn quorum_with_hysteresis_decides_the_sorry_server() {
    let mut t = ServiceTable::new(1);
    t.add_service(ServiceConfig::new(key())).unwrap();
    for a in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
        t.add_dest(&key(), dest(a, 2)).unwrap();
    }
    let mut h = Health::default();
    let t0 = Instant::now();
    h.set_sorry(&mut t, &key(), Some(dest("10.0.0.9", 1)));
    h.set_check(
        &mut t,
        &key(),
        Some(check(
            "checkinterval=1 fall=1 quorum=4 hysteresis=1 quiescent=no",
        )),
        t0,
    );
    let mut at = t0;
    let mut step = |h: &mut Health, t: &mut ServiceTable, alive: &'static [&'static str]| {
        round(h, t, at, |a| alive.contains(&a));
        at += Duration::from_secs(1);
        let mut l: Vec<String> = listed(t).into_iter().map(|(a, _)| a).collect();
        l.sort();
        l
    };
    assert_eq!(
        step(&mut h, &mut t, &["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
        ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    );
    // Weight 4 is not below 4 - 1.
    assert_eq!(
        step(&mut h, &mut t, &["10.0.0.1", "10.0.0.2"]),
        ["10.0.0.1", "10.0.0.2"]
    );
    // Weight 2 is: the sorry server alone, the live one out of the list.
    assert_eq!(step(&mut h, &mut t, &["10.0.0.1"]), ["10.0.0.9"]);
    // Weight 4 is not yet 4 + 1.
    assert_eq!(
        step(&mut h, &mut t, &["10.0.0.1", "10.0.0.2"]),
        ["10.0.0.9"]
    );
    // Weight 6 is: the real servers back, the sorry server gone.
    assert_eq!(
        step(&mut h, &mut t, &["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
        ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    );
}
