//! The VIP routes in the host's kernel: `VIP/32 dev TAP table N proto
//! static`, set with iproute2's `ip` as the exception path's routes are.
//! No rule looks the table up, so the host's own forwarding never sees
//! these routes; they exist for the routing daemon to read (BIRD's kernel
//! protocol learns `proto static` routes; it ignores `proto kernel` ones).
//! Bound to the tap, they go with it when rvsd dies.
use std::net::IpAddr;

use super::RouteTable;
use crate::health::hostpath::ip;

#[derive(Debug)]
pub struct KernelTable {
    tap: String,
    table: String,
    /// The families the health-check sources have (the BGP sessions).
    v4: bool,
    v6: bool,
}

fn family(a: &IpAddr) -> &'static str {
    if a.is_ipv4() {
        "-4"
    } else {
        "-6"
    }
}

fn host(a: &IpAddr) -> String {
    format!("{a}/{}", if a.is_ipv4() { 32 } else { 128 })
}

impl KernelTable {
    /// The table on `tap`, emptied of what an earlier rvsd left in it.
    pub fn new(tap: &str, table: u32, sources: &[IpAddr]) -> KernelTable {
        let t = KernelTable {
            tap: tap.to_string(),
            table: table.to_string(),
            v4: sources.iter().any(IpAddr::is_ipv4),
            v6: sources.iter().any(IpAddr::is_ipv6),
        };
        for f in ["-4", "-6"] {
            if let Err(e) = ip(&[f, "route", "flush", "table", &t.table]) {
                // An empty table does not exist yet: nothing to flush.
                if !e.contains("does not exist") {
                    log::warn!("announce: cannot empty table {}: {e}", t.table);
                }
            }
        }
        t
    }
}

impl RouteTable for KernelTable {
    fn add(&mut self, vip: IpAddr) -> Result<(), String> {
        ip(&[
            family(&vip),
            "route",
            "replace",
            &host(&vip),
            "dev",
            &self.tap,
            "table",
            &self.table,
            "proto",
            "static",
        ])
    }

    fn remove(&mut self, vip: IpAddr) -> Result<(), String> {
        match ip(&[
            family(&vip),
            "route",
            "del",
            &host(&vip),
            "table",
            &self.table,
        ]) {
            // Gone already, with the tap or by hand.
            Err(e) if e.contains("No such process") || e.contains("Cannot find device") => Ok(()),
            r => r,
        }
    }

    fn refuses(&self, vip: IpAddr) -> Option<String> {
        let (has, fam) = if vip.is_ipv4() {
            (self.v4, "IPv4")
        } else {
            (self.v6, "IPv6")
        };
        (!has).then(|| {
            format!("no {fam} address in [health] sources, so no BGP session of that family leaves from rvs")
        })
    }
}
