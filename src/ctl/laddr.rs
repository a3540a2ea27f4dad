//! What the engine knows of the dataplane for DPVS's local-address
//! commands: the names of rvsd's ports (`-P ... -F NAME` must name one)
//! and the per-service, per-address use the workers publish (`-G`'s
//! CONFLICTS and CONNS).
use std::net::IpAddr;

use crate::counters::LaddrUse;
use crate::ipvs::{Service, ServiceKey};

/// Every worker's published local-address use, all workers together.
pub type LaddrSource = Box<dyn Fn() -> Vec<LaddrUse> + Send>;

pub struct LaddrView {
    /// rvsd's port names; None where the engine runs without a dataplane
    /// (a configuration check), which takes any name.
    ports: Option<Vec<String>>,
    source: LaddrSource,
}

impl Default for LaddrView {
    fn default() -> LaddrView {
        LaddrView {
            ports: None,
            source: Box::new(Vec::new),
        }
    }
}

impl LaddrView {
    pub fn set_ports(&mut self, ports: Vec<String>) {
        self.ports = Some(ports);
    }

    /// The same port names, no use (for a dry run).
    pub fn dry_copy(&self) -> LaddrView {
        LaddrView {
            ports: self.ports.clone(),
            source: Box::new(Vec::new),
        }
    }

    pub fn set_source(&mut self, source: LaddrSource) {
        self.source = source;
    }

    /// `-F NAME`: a local address belongs to one of rvsd's ports, as DPVS
    /// binds it to one of its interfaces.
    pub fn check_port(&self, name: &str) -> Result<(), String> {
        match &self.ports {
            Some(ports) if !ports.iter().any(|p| p == name) => Err(format!(
                "No such port {name:?}: -F names one of rvsd's ports ({})",
                ports.join(", ")
            )),
            _ => Ok(()),
        }
    }

    /// `-G`'s table: per service, its local addresses with the candidate
    /// ports found taken (CONFLICTS) and the conns using them (CONNS),
    /// summed over the workers as they last published them (once a second).
    pub fn get_text(&self, svcs: &[&std::sync::Arc<Service>]) -> String {
        let used = (self.source)();
        let sum = |id: u64, a: IpAddr| {
            used.iter()
                .filter(|u| u.service == id && u.laddr == a)
                .fold((0u64, 0u64), |(c, n), u| {
                    (c + u.conflicts, n + u64::from(u.in_use))
                })
        };
        let mut out = format!(
            "{:<20} {:<8} {:<20} {:<10} {:<10}\n",
            "VIP:VPORT", "TOTAL", "SNAT_IP", "CONFLICTS", "CONNS"
        );
        for s in svcs {
            let vip = match s.key() {
                ServiceKey::Addr {
                    addr: IpAddr::V6(a),
                    port,
                    ..
                } => format!("[{a}]:{port}"),
                ServiceKey::Addr { addr, port, .. } => format!("{addr}:{port}"),
                ServiceKey::Fwmark { mark, .. } => format!("FWM {mark}"),
            };
            for (a, _) in s.laddrs() {
                let (conflicts, conns) = sum(s.id(), *a);
                out.push_str(&format!(
                    "{vip:<20} {:<8} {a:<20} {conflicts:<10} {conns:<10}\n",
                    s.laddrs().len(),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arc_swap::ArcSwap;

    use super::*;
    use crate::ctl::engine::Engine;
    use crate::ctl::frame::Reply;
    use crate::ipvs::{Protocol, ServiceSet, Timeouts};

    fn run(e: &mut Engine, line: &str) -> Reply {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        e.execute("ipvsadm", &args, None)
    }

    fn engine() -> Engine {
        let mut e = Engine::new(
            2,
            Arc::new(ArcSwap::from_pointee(ServiceSet::default())),
            Arc::new(ArcSwap::from_pointee(Timeouts::default())),
        );
        e.laddr_view()
            .set_ports(vec!["client".into(), "servers".into()]);
        e
    }

    #[test]
    fn a_local_address_names_one_of_rvsds_ports() {
        let mut e = engine();
        assert_eq!(run(&mut e, "-A -t 10.0.0.1:80 -s rr").code, 0);
        let r = run(&mut e, "-P -t 10.0.0.1:80 -z 10.77.0.1 -F dpdk0");
        assert_eq!(
            (r.code, r.stderr.as_str()),
            (
                255,
                "No such port \"dpdk0\": -F names one of rvsd's ports (client, servers)\n"
            )
        );
        // The service is checked first, as DPVS looks it up first.
        let r = run(&mut e, "-P -t 10.0.0.2:80 -z 10.77.0.1 -F dpdk0");
        assert_eq!((r.code, r.stderr.as_str()), (255, "Service not defined\n"));
        let r = run(&mut e, "-P -t 10.0.0.1:80 -z 10.77.0.1 -F servers");
        assert_eq!(r.code, 0, "{r:?}");
        let r = e.restore(
            "ipvsadm",
            "-A -t 10.0.0.3:80 -s rr\n-P -t 10.0.0.3:80 -z 10.77.0.3 -F eth9\n",
        );
        assert_eq!(r.code, 255, "{r:?}");
        assert!(r.stderr.contains("No such port \"eth9\""), "{r:?}");
        assert_eq!(
            run(&mut e, "-G").stdout.lines().count(),
            2,
            "one laddr only"
        );
        // Without a dataplane (a configuration check) any name goes.
        let mut bare = Engine::new(
            1,
            Arc::new(ArcSwap::from_pointee(ServiceSet::default())),
            Arc::new(ArcSwap::from_pointee(Timeouts::default())),
        );
        assert_eq!(run(&mut bare, "-A -t 10.0.0.1:80").code, 0);
        assert_eq!(
            run(&mut bare, "-P -t 10.0.0.1:80 -z 10.77.0.1 -F x").code,
            0
        );
    }

    #[test]
    fn get_laddr_sums_the_workers_use_per_service_and_address() {
        let mut e = engine();
        for l in [
            "-A -t 10.0.0.1:80 -s rr",
            "-A -t 10.0.0.1:443 -s rr",
            "-P -t 10.0.0.1:80 -z 10.77.0.1 -F servers",
            "-P -t 10.0.0.1:80 -z 10.77.0.2 -F servers",
            "-P -t 10.0.0.1:443 -z 10.77.0.1 -F servers",
        ] {
            assert_eq!(run(&mut e, l).code, 0, "{l}");
        }
        let id = |port| {
            let key = ServiceKey::Addr {
                proto: Protocol::Tcp,
                addr: "10.0.0.1".parse().unwrap(),
                port,
            };
            e.table().get(&key).unwrap().id()
        };
        let (web, tls) = (id(80), id(443));
        let use_ = move |service, laddr: &str, in_use, conflicts| LaddrUse {
            service,
            laddr: laddr.parse().unwrap(),
            in_use,
            conflicts,
            ports: 32255,
        };
        let published = vec![
            // Worker 0, then worker 1.
            use_(web, "10.77.0.1", 3, 1),
            use_(tls, "10.77.0.1", 7, 0),
            use_(web, "10.77.0.1", 2, 4),
            use_(web, "10.77.0.2", 1, 0),
        ];
        e.laddr_view()
            .set_source(Box::new(move || published.clone()));
        let r = run(&mut e, "-G -t 10.0.0.1:80");
        assert_eq!(
            r.stdout,
            "VIP:VPORT            TOTAL    SNAT_IP              CONFLICTS  CONNS     \n\
             10.0.0.1:80          2        10.77.0.1            5          5         \n\
             10.0.0.1:80          2        10.77.0.2            0          1         \n"
        );
        let r = run(&mut e, "-G -t 10.0.0.1:443");
        assert!(
            r.stdout.ends_with(
                "10.0.0.1:443         1        10.77.0.1            0          7         \n"
            ),
            "{}",
            r.stdout
        );
    }
}
