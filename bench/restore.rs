//! `ipvsadm -R` at scale: 10 000 services with 4 real servers each (50 000
//! lines) applied through the management engine, all or nothing, as rvsd
//! applies them from rvsadm or from `[ctl] rules` at start.
//!
//! Run: `cargo bench --bench restore`. Prints the time of the whole restore
//! (dry run on a copy + real apply + publish) and of `-S` afterwards.
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use rvs::ctl::engine::Engine;
use rvs::ipvs::proto::Timeouts;
use rvs::ipvs::ServiceSet;

fn main() {
    let services = 10_000u32;
    let mut rules = String::new();
    for i in 0..services {
        let vip = format!("10.{}.{}.{}:80", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        rules.push_str(&format!("-A -t {vip} -s wrr\n"));
        for d in 1..=4 {
            rules.push_str(&format!(
                "-a -t {vip} -r 192.168.{}.{d}:8080 -m -w {d}\n",
                i % 250
            ));
        }
    }
    let set = Arc::new(ArcSwap::from_pointee(ServiceSet::default()));
    let mut engine = Engine::new(
        2,
        set.clone(),
        Arc::new(ArcSwap::from_pointee(Timeouts::default())),
    );
    let t = Instant::now();
    let reply = engine.restore("ipvsadm", &rules);
    let restore = t.elapsed();
    assert_eq!(reply.code, 0, "{}", reply.stderr);
    assert_eq!(set.load().services().len(), services as usize);
    let t = Instant::now();
    let save = engine.execute("ipvsadm", &["-Sn".into()], None);
    let saved = t.elapsed();
    assert_eq!(save.stdout.lines().count(), rules.lines().count());
    println!(
        "restore of {} services x 4 dests ({} lines): {:.1} ms; save: {:.1} ms",
        services,
        rules.lines().count(),
        restore.as_secs_f64() * 1e3,
        saved.as_secs_f64() * 1e3
    );
}
