//! The main lcore's loop while rvsd forwards: what the workers report,
//! fanned out; links, VRRP, announcements, flow rules; rate estimates.
use super::*;

/// The main lcore's loop: neighbour fan-out and link watching, until a signal.
#[allow(clippy::too_many_arguments)]
pub(super) fn control_loop(
    stop: &[&AtomicBool],
    from_workers: &Receiver<ToControl>,
    to_workers: &[Sender<ToWorker>],
    ports: &[Port],
    counters: &[Arc<WorkerCounters>],
    services: &ArcSwap<ServiceSet>,
    net: &ArcSwap<NetConfig>,
    base: &NetConfig,
    hup: &AtomicBool,
    mut keepalived: Option<&mut crate::keepalived::Reloader>,
    mut vrrp: Option<&mut crate::vrrp::Vrrp>,
    mut announcer: Option<(&mut Announcer<KernelTable>, usize)>,
    mut flows: Option<&mut FlowSteering>,
) {
    if let Some(f) = flows.as_deref_mut() {
        f.update(&services.load());
    }
    let mut announce = |set: &ServiceSet| {
        if let Some((a, port)) = announcer.as_mut() {
            let addrs = net.load();
            a.update(set, ports[*port].link().up, |vip| addrs.is_standby(vip));
        }
    };
    announce(&services.load());
    let mut seen_generation = services.load().generation();
    let conflicts = || {
        counters
            .iter()
            .map(|c| c.address_conflicts.get())
            .sum::<u64>()
    };
    let mut last_conflicts = 0;
    // Mbufs ran out either at the NIC (rx_nombuf: the PMD could not refill
    // a ring) or in a worker building a reply; either way traffic is lost
    // and the operator should grow the pool or find the leak.
    let no_buffer = || {
        let workers: u64 = counters.iter().map(|c| c.drops(DropReason::NoBuffer)).sum();
        workers + ports.iter().map(|p| p.stats().rx_nombuf).sum::<u64>()
    };
    let no_laddr = || {
        counters
            .iter()
            .map(|c| c.drops(DropReason::NoLocalAddr))
            .sum::<u64>()
    };
    let (mut last_no_buffer, mut last_no_laddr) = (no_buffer(), no_laddr());
    let mut neighbours: HashMap<(u16, IpAddr), MacAddr> = HashMap::new();
    let mut links: Vec<dpdk::LinkState> = ports.iter().map(Port::link).collect();
    let mut last_link_check = Instant::now();
    let estimate_every = Duration::from_millis(SAMPLE_INTERVAL_MS);
    let mut next_estimate = Instant::now() + estimate_every;
    let vrrp_to = to_workers.first();
    if let (Some(v), Some(to)) = (vrrp.as_deref_mut(), vrrp_to) {
        crate::vrrp::send(v.start(), to);
    }
    while !stop.iter().any(|s| s.load(Ordering::Relaxed)) {
        // VRRP's timers wake the loop when due, not at the next 100 ms.
        let wait =
            vrrp.as_deref()
                .and_then(|v| v.next_wake())
                .map_or(Duration::from_millis(100), |t| {
                    t.saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(100))
                });
        match from_workers.recv_timeout(wait) {
            Ok(ToControl::Learned { worker, update }) => {
                fan_out(&mut neighbours, worker, update, to_workers)
            }
            Ok(ToControl::Vrrp(a)) => {
                if let (Some(v), Some(to)) = (vrrp.as_deref_mut(), vrrp_to) {
                    crate::vrrp::send(v.heard(a), to);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if hup.swap(false, Ordering::Relaxed) {
            match keepalived.as_deref_mut() {
                Some(k) => k.reload(),
                None => log::info!("SIGHUP: nothing to reload (no [keepalived] config)"),
            }
        }
        if let (Some(v), Some(to)) = (vrrp.as_deref_mut(), vrrp_to) {
            crate::vrrp::send(v.poll(), to);
        }
        let generation = services.load().generation();
        let handed_over = vrrp.as_deref_mut().is_some_and(|v| v.take_changed());
        if generation != seen_generation || handed_over {
            seen_generation = generation;
            publish_addresses(net, base, &services.load(), vrrp.as_deref_mut());
            announce(&services.load());
            if let Some(f) = flows.as_deref_mut() {
                f.update(&services.load());
            }
        }
        let now = Instant::now();
        if now >= next_estimate {
            // A fixed schedule, not "2 s after the last one", keeps the
            // estimator's 2-second samples from drifting; after a stall it
            // starts afresh rather than catching up in a burst.
            next_estimate += estimate_every;
            if next_estimate <= now {
                next_estimate = now + estimate_every;
            }
            estimate_rates(&services.load());
        }
        if last_link_check.elapsed() >= Duration::from_secs(1) {
            last_link_check = Instant::now();
            // Checked once a second, so these lines come at most that often
            // whatever the drop rate; the logger's limit caps them again.
            warn_rise(conflicts(), &mut last_conflicts, |n| {
                format!("{n} ARP/NA packet(s) from other hosts claimed addresses rvsd owns")
            });
            warn_rise(no_buffer(), &mut last_no_buffer, |n| {
                format!("mbuf pool exhausted: {n} packet(s) dropped for want of an mbuf in the last second (rx_nombuf + no_buffer)")
            });
            warn_rise(no_laddr(), &mut last_no_laddr, |n| {
                format!("local addresses exhausted: {n} new FULLNAT conn(s) dropped with no free local port (add addresses with -P)")
            });
            for (p, last) in ports.iter().zip(links.iter_mut()) {
                let now = p.link();
                if now.up != last.up {
                    if now.up {
                        log::info!("port {}: link up, {} Mbps", p.name(), now.speed_mbps);
                    } else {
                        log::warn!("port {}: link down", p.name());
                    }
                }
                *last = now;
            }
            announce(&services.load());
        }
    }
}

/// One rate-estimator sample of every service and real server.
pub(super) fn estimate_rates(set: &ServiceSet) {
    for s in set.services() {
        s.stats.estimate();
        for d in s.dests() {
            d.stats.estimate();
        }
    }
}

fn fan_out(
    table: &mut HashMap<(u16, IpAddr), MacAddr>,
    from: usize,
    u: NeighUpdate,
    to_workers: &[Sender<ToWorker>],
) {
    if table.insert((u.port, u.ip), u.mac) != Some(u.mac) {
        log::debug!("neighbour {} is at {} on port {}", u.ip, u.mac, u.port);
    }
    for (i, tx) in to_workers.iter().enumerate() {
        if i != from {
            // A full queue only delays what that worker learns: it will
            // resolve the neighbour itself if it needs it first.
            let _ = tx.try_send(ToWorker::Neighbour(u));
        }
    }
}

/// A warning of what counter `count` rose by since `last`, if it rose.
fn warn_rise(count: u64, last: &mut u64, say: impl FnOnce(u64) -> String) {
    if count > *last {
        log::warn!("{}", say(count - *last));
        *last = count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimator_samples_services_and_their_reals() {
        use crate::ipvs::{DestConfig, Protocol, ServiceConfig, ServiceKey, ServiceTable};
        let mut t = ServiceTable::new(1);
        let k = ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "10.0.0.1".parse().unwrap(),
            port: 80,
        };
        t.add_service(ServiceConfig::new(k)).unwrap();
        t.add_dest(&k, DestConfig::new("10.0.1.1".parse().unwrap(), 80))
            .unwrap();
        let set = t.snapshot();
        let svc = &set.services()[0];
        for _ in 0..40 {
            svc.stats.worker(0).conns.add(200);
            svc.dests()[0].stats.worker(0).inpkts.add(2000);
            estimate_rates(&set);
        }
        assert_eq!(svc.stats.rates().cps, 100);
        assert_eq!(svc.dests()[0].stats.rates().inpps, 1000);
    }
}
