//! Test helpers shared by the schedulers' tests.
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use super::Tuple;
use crate::ipvs::dest::{Dest, DestConfig, FwdMethod};

pub(crate) fn dest(n: u8, weight: i32) -> Arc<Dest> {
    let cfg = DestConfig {
        addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)),
        port: 80,
        fwd: FwdMethod::DirectRoute,
        weight,
        u_threshold: 0,
        l_threshold: 0,
    };
    Arc::new(Dest::new(&cfg, 1))
}

/// Dests with these (weight, active, inactive), in list order.
pub(crate) fn dests(spec: &[(i32, u32, u32)]) -> Vec<Arc<Dest>> {
    (1..)
        .zip(spec)
        .map(|(n, &(w, a, i))| {
            let d = dest(n, w);
            d.set_conns(a, i);
            d
        })
        .collect()
}

pub(crate) fn input() -> Tuple {
    Tuple {
        proto: 6,
        saddr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        sport: 40000,
        daddr: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)),
        dport: 80,
    }
}
