//! The announcer against a real service table and a recording route table:
//! what is available, what is announced, and when routes go.
use std::net::IpAddr;

use super::*;
use crate::ipvs::fwmark::MarkRule;
use crate::ipvs::{DestConfig, FwdMethod, Protocol, ServiceConfig, ServiceTable};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp(vip: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: ip(vip),
        port,
    }
}

fn dest(a: &str, w: i32) -> DestConfig {
    DestConfig {
        fwd: FwdMethod::DirectRoute,
        weight: w,
        ..DestConfig::new(ip(a), 80)
    }
}

/// Records the routes, and refuses what `refuse` names.
#[derive(Debug, Default)]
struct Record {
    routes: BTreeSet<IpAddr>,
    log: Vec<String>,
    no_v6: bool,
    fail_add: bool,
}

impl RouteTable for Record {
    fn add(&mut self, vip: IpAddr) -> Result<(), String> {
        if self.fail_add {
            return Err("refused".into());
        }
        self.log.push(format!("add {vip}"));
        self.routes.insert(vip);
        Ok(())
    }
    fn remove(&mut self, vip: IpAddr) -> Result<(), String> {
        self.log.push(format!("del {vip}"));
        self.routes.remove(&vip);
        Ok(())
    }
    fn refuses(&self, vip: IpAddr) -> Option<String> {
        (self.no_v6 && vip.is_ipv6()).then(|| "no IPv6 source".into())
    }
}

fn routes(a: &Announcer<Record>) -> Vec<String> {
    a.table.routes.iter().map(|v| v.to_string()).collect()
}

#[test]
fn a_vip_is_available_while_one_listed_real_server_has_weight() {
    let mut t = ServiceTable::new(1);
    t.add_service(ServiceConfig::new(tcp("198.18.0.100", 80)))
        .unwrap();
    // A VIP with a service and no real server is not available.
    assert_eq!(
        availability(&t.snapshot()),
        [(ip("198.18.0.100"), false)].into()
    );
    t.add_dest(&tcp("198.18.0.100", 80), dest("198.19.0.11", 1))
        .unwrap();
    t.add_dest(&tcp("198.18.0.100", 80), dest("198.19.0.12", 0))
        .unwrap();
    assert_eq!(
        availability(&t.snapshot()),
        [(ip("198.18.0.100"), true)].into()
    );
    // Quiesced by its check: weight 0; the other one is drained (-w 0).
    t.set_dest_health(&tcp("198.18.0.100", 80), ip("198.19.0.11"), 80, false, true)
        .unwrap();
    assert_eq!(
        availability(&t.snapshot()),
        [(ip("198.18.0.100"), false)].into()
    );
    // Back up, then parked by a quiescent=no check.
    t.set_dest_health(&tcp("198.18.0.100", 80), ip("198.19.0.11"), 80, true, true)
        .unwrap();
    assert!(availability(&t.snapshot())[&ip("198.18.0.100")]);
    t.set_dest_health(
        &tcp("198.18.0.100", 80),
        ip("198.19.0.11"),
        80,
        false,
        false,
    )
    .unwrap();
    assert!(!availability(&t.snapshot())[&ip("198.18.0.100")]);
    // The sorry server standing in does not make it available.
    t.set_sorry(&tcp("198.18.0.100", 80), Some(&dest("198.19.0.9", 1)))
        .unwrap();
    assert!(t.snapshot().services()[0].sorry().is_some());
    assert!(!availability(&t.snapshot())[&ip("198.18.0.100")]);
}

#[test]
fn any_service_of_a_vip_makes_it_available() {
    let mut t = ServiceTable::new(1);
    for port in [80, 443] {
        t.add_service(ServiceConfig::new(tcp("198.18.0.100", port)))
            .unwrap();
    }
    t.add_service(ServiceConfig::new(tcp("2001:db8::100", 80)))
        .unwrap();
    t.add_dest(&tcp("198.18.0.100", 443), dest("198.19.0.11", 5))
        .unwrap();
    assert_eq!(
        availability(&t.snapshot()),
        [(ip("198.18.0.100"), true), (ip("2001:db8::100"), false)].into()
    );
}

#[test]
fn a_host_mark_rule_names_the_vip_of_its_fwmark_service() {
    let mut t = ServiceTable::new(1);
    let key = ServiceKey::Fwmark {
        mark: 7,
        ipv6: false,
    };
    t.add_service(ServiceConfig::new(key)).unwrap();
    t.add_dest(&key, dest("198.19.0.11", 1)).unwrap();
    t.add_mark(MarkRule::parse(&["198.18.0.101", "7"]).unwrap())
        .unwrap();
    // A prefix is not a VIP; a rule whose mark has no service names none.
    t.add_mark(MarkRule::parse(&["198.18.1.0/24", "7"]).unwrap())
        .unwrap();
    t.add_mark(MarkRule::parse(&["198.18.0.102", "8"]).unwrap())
        .unwrap();
    assert_eq!(
        availability(&t.snapshot()),
        [(ip("198.18.0.101"), true)].into()
    );
}

#[test]
fn routes_follow_availability_and_the_link_and_go_at_stop() {
    let mut t = ServiceTable::new(1);
    let (a, b) = (tcp("198.18.0.100", 80), tcp("198.18.0.101", 80));
    t.add_service(ServiceConfig::new(a)).unwrap();
    t.add_service(ServiceConfig::new(b)).unwrap();
    t.add_dest(&a, dest("198.19.0.11", 1)).unwrap();
    let mut ann = Announcer::new(Record::default(), "lan");
    ann.update(&t.snapshot(), true, |_| false);
    assert_eq!(routes(&ann), ["198.18.0.100"]);
    assert_eq!(
        ann.status().snapshot(),
        [(ip("198.18.0.100"), true), (ip("198.18.0.101"), false)]
    );
    // Nothing changes: no route is touched again.
    ann.update(&t.snapshot(), true, |_| false);
    assert_eq!(ann.table.log, ["add 198.18.0.100"]);

    t.add_dest(&b, dest("198.19.0.12", 1)).unwrap();
    ann.update(&t.snapshot(), true, |_| false);
    assert_eq!(routes(&ann), ["198.18.0.100", "198.18.0.101"]);

    // The last real server of one VIP fails its check.
    t.set_dest_health(&b, ip("198.19.0.12"), 80, false, true)
        .unwrap();
    ann.update(&t.snapshot(), true, |_| false);
    assert_eq!(routes(&ann), ["198.18.0.100"]);

    // The link goes down: everything goes; up again: the available come back.
    ann.update(&t.snapshot(), false, |_| false);
    assert!(routes(&ann).is_empty());
    assert_eq!(
        ann.status().snapshot(),
        [(ip("198.18.0.100"), false), (ip("198.18.0.101"), false)]
    );
    ann.update(&t.snapshot(), true, |_| false);
    assert_eq!(routes(&ann), ["198.18.0.100"]);

    // A deleted service's VIP goes.
    t.delete_service(&a).unwrap();
    ann.update(&t.snapshot(), true, |_| false);
    assert!(routes(&ann).is_empty());
    t.set_dest_health(&b, ip("198.19.0.12"), 80, true, true)
        .unwrap();
    ann.update(&t.snapshot(), true, |_| false);
    assert_eq!(routes(&ann), ["198.18.0.101"]);

    ann.withdraw_all();
    assert!(routes(&ann).is_empty());
    assert!(ann.announced().is_empty());
    assert_eq!(ann.status().snapshot(), [(ip("198.18.0.101"), false)]);
}

#[test]
fn a_refused_route_is_not_counted_announced_and_is_retried() {
    let mut t = ServiceTable::new(1);
    let (v4, v6) = (tcp("198.18.0.100", 80), tcp("2001:db8::100", 80));
    t.add_service(ServiceConfig::new(v4)).unwrap();
    t.add_service(ServiceConfig::new(v6)).unwrap();
    t.add_dest(&v4, dest("198.19.0.11", 1)).unwrap();
    t.add_dest(&v6, dest("2001:db8:1::11", 1)).unwrap();
    let table = Record {
        no_v6: true,
        fail_add: true,
        ..Default::default()
    };
    let mut ann = Announcer::new(table, "lan");
    ann.update(&t.snapshot(), true, |_| false);
    assert!(routes(&ann).is_empty());
    assert_eq!(ann.failed.len(), 2);
    assert_eq!(ann.failed[&ip("2001:db8::100")], "no IPv6 source");
    ann.table.fail_add = false;
    ann.update(&t.snapshot(), true, |_| false);
    assert_eq!(routes(&ann), ["198.18.0.100"]);
    assert_eq!(
        ann.status().snapshot(),
        [(ip("198.18.0.100"), true), (ip("2001:db8::100"), false)]
    );
}

#[test]
fn a_vip_held_by_a_vrrp_backup_is_withdrawn_until_it_is_master() {
    let mut t = ServiceTable::new(1);
    let a = tcp("198.18.0.100", 80);
    t.add_service(ServiceConfig::new(a)).unwrap();
    t.add_dest(&a, dest("198.19.0.11", 1)).unwrap();
    let mut ann = Announcer::new(Record::default(), "lan");
    let vip = ip("198.18.0.100");
    ann.update(&t.snapshot(), true, |v| v == vip);
    assert!(routes(&ann).is_empty());
    ann.update(&t.snapshot(), true, |_| false);
    assert_eq!(routes(&ann), ["198.18.0.100"]);
    ann.update(&t.snapshot(), true, |v| v == vip);
    assert!(routes(&ann).is_empty());
    assert_eq!(ann.table.log, ["add 198.18.0.100", "del 198.18.0.100"]);
}
