//! `--tun-type gue|gre` through the engine: kept with the dest the
//! workers see, changed by -e, listed by `-Ln --tun-info` and saved by -S
//! as ipvsadm 1.31 prints them (its format strings "  -> %-28s %-7s %-13s
//! %-6d %-10u %-10u" and the `-a ... --tun-type` save line), restored by -R
//! and persisted.
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::engine::Engine;
use super::frame::Reply;
use crate::ipvs::{ServiceSet, Timeouts, Tunnel, TunnelCsum};

fn engine() -> (Engine, Arc<ArcSwap<ServiceSet>>) {
    let services = Arc::new(ArcSwap::from_pointee(ServiceSet::default()));
    let e = Engine::new(
        1,
        services.clone(),
        Arc::new(ArcSwap::from_pointee(Timeouts::default())),
    );
    (e, services)
}

fn run(e: &mut Engine, line: &str) -> Reply {
    let args: Vec<String> = line.split_whitespace().map(String::from).collect();
    e.execute("ipvsadm", &args, None)
}

fn ok(e: &mut Engine, line: &str) {
    let r = run(e, line);
    assert_eq!(r.code, 0, "{line}: {r:?}");
}

fn row(addr: &str, fwd: &str, info: &str, w: i32) -> String {
    format!(
        "  -> {addr:<28} {fwd:<7} {info:<13} {w:<6} {:<10} {:<10}\n",
        0, 0
    )
}

const TITLE: &str = "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n";

/// What the workers see for a dest of UDP 10.0.0.2:53.
fn seen(services: &ArcSwap<ServiceSet>, addr: &str) -> Tunnel {
    let set = services.load();
    let svc = set
        .services()
        .iter()
        .find(|s| s.key().words() == "-u 10.0.0.2:53")
        .expect("service published");
    let a: std::net::IpAddr = addr.parse().unwrap();
    svc.dests()
        .iter()
        .find(|d| d.addr() == a)
        .expect("dest published")
        .tunnel()
}

const SETUP: &[&str] = &[
    "-A -u 10.0.0.2:53 -s rr",
    "-a -u 10.0.0.2:53 -r 10.0.1.1:53 -i -w 1",
    "-a -u 10.0.0.2:53 -r 10.0.1.2:53 -i -w 2 --tun-type gue --tun-port 6080 --tun-csum",
    "-a -u 10.0.0.2:53 -r 10.0.1.3:53 -i -w 3 --tun-type gre --tun-nocsum",
    "-a -u 10.0.0.2:53 -r 10.0.1.4:53 -i -w 4 --tun-type gue --tun-port 5555",
    "-a -u 10.0.0.2:53 -r 10.0.1.5:53 -i -w 5 --tun-type gue --tun-port 7 --tun-remcsum",
    "-a -u 10.0.0.2:53 -r 10.0.1.6:53 -i -w 6 --tun-type gre --tun-csum",
    "-a -u 10.0.0.2:53 -r 10.0.1.7:53 -m -w 7",
];

/// `-S -n` of SETUP, dests in address order as ipvsadm sorts them.
const SAVED: &str = "-A -u 10.0.0.2:53 -s rr
-a -u 10.0.0.2:53 -r 10.0.1.1:53 -i -w 1 --tun-type ipip
-a -u 10.0.0.2:53 -r 10.0.1.2:53 -i -w 2 --tun-type gue --tun-port 6080 --tun-csum
-a -u 10.0.0.2:53 -r 10.0.1.3:53 -i -w 3 --tun-type gre --tun-nocsum
-a -u 10.0.0.2:53 -r 10.0.1.4:53 -i -w 4 --tun-type gue --tun-port 5555 --tun-nocsum
-a -u 10.0.0.2:53 -r 10.0.1.5:53 -i -w 5 --tun-type gue --tun-port 7 --tun-remcsum
-a -u 10.0.0.2:53 -r 10.0.1.6:53 -i -w 6 --tun-type gre --tun-csum
-a -u 10.0.0.2:53 -r 10.0.1.7:53 -m -w 7
";

#[test]
fn tunnels_list_and_save_as_ipvsadm_does() {
    let (mut e, services) = engine();
    SETUP.iter().for_each(|l| ok(&mut e, l));
    let r = run(&mut e, "-Ln --tun-info");
    let want = [
        TITLE.to_string(),
        "UDP  10.0.0.2:53 rr\n".to_string(),
        row("10.0.1.1:53", "Tunnel", "ipip", 1),
        row("10.0.1.2:53", "Tunnel", "gue:6080:+c", 2),
        row("10.0.1.3:53", "Tunnel", "gre:-c", 3),
        row("10.0.1.4:53", "Tunnel", "gue:5555:-c", 4),
        row("10.0.1.5:53", "Tunnel", "gue:7:r+c", 5),
        row("10.0.1.6:53", "Tunnel", "gre:+c", 6),
        row("10.0.1.7:53", "Masq", "n/a", 7),
    ]
    .concat();
    assert_eq!(r.stdout, want);
    assert_eq!(run(&mut e, "-S -n").stdout, SAVED);
    // What forwarding reads.
    assert_eq!(seen(&services, "10.0.1.1"), Tunnel::Ipip);
    assert_eq!(
        seen(&services, "10.0.1.2"),
        Tunnel::Gue {
            port: 6080,
            csum: TunnelCsum::Csum
        }
    );
    assert_eq!(
        seen(&services, "10.0.1.5"),
        Tunnel::Gue {
            port: 7,
            csum: TunnelCsum::RemCsum
        }
    );
    assert_eq!(
        seen(&services, "10.0.1.6"),
        Tunnel::Gre {
            csum: TunnelCsum::Csum
        }
    );
}

#[test]
fn edit_replaces_the_tunnel() {
    let (mut e, services) = engine();
    SETUP.iter().for_each(|l| ok(&mut e, l));
    ok(
        &mut e,
        "-e -u 10.0.0.2:53 -r 10.0.1.2:53 -i -w 2 --tun-type gre --tun-csum",
    );
    assert_eq!(
        seen(&services, "10.0.1.2"),
        Tunnel::Gre {
            csum: TunnelCsum::Csum
        }
    );
    // -e sends the whole dest: without --tun-type it is ipip again.
    ok(&mut e, "-e -u 10.0.0.2:53 -r 10.0.1.3:53 -i -w 3");
    assert_eq!(seen(&services, "10.0.1.3"), Tunnel::Ipip);
    // Masq to GUE.
    ok(
        &mut e,
        "-e -u 10.0.0.2:53 -r 10.0.1.7:53 -i -w 7 --tun-type gue --tun-port 9000 --tun-csum",
    );
    let r = run(&mut e, "-Ln --tun-info -u 10.0.0.2:53");
    let want = [
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n".to_string(),
        "UDP  10.0.0.2:53 rr\n".to_string(),
        row("10.0.1.1:53", "Tunnel", "ipip", 1),
        row("10.0.1.2:53", "Tunnel", "gre:+c", 2),
        row("10.0.1.3:53", "Tunnel", "ipip", 3),
        row("10.0.1.4:53", "Tunnel", "gue:5555:-c", 4),
        row("10.0.1.5:53", "Tunnel", "gue:7:r+c", 5),
        row("10.0.1.6:53", "Tunnel", "gre:+c", 6),
        row("10.0.1.7:53", "Tunnel", "gue:9000:+c", 7),
    ]
    .concat();
    assert_eq!(r.stdout, want);
    // And to Masq: the tunnel no longer shows.
    ok(&mut e, "-e -u 10.0.0.2:53 -r 10.0.1.7:53 -m -w 7");
    let r = run(&mut e, "-Ln --tun-info -u 10.0.0.2:53");
    assert!(
        r.stdout.contains(&row("10.0.1.7:53", "Masq", "n/a", 7)),
        "{}",
        r.stdout
    );
}

#[test]
fn restore_and_persist_keep_tunnels() {
    let (mut e, services) = engine();
    let r = e.execute("ipvsadm", &["-R".to_string()], Some(SAVED));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(run(&mut e, "-S -n").stdout, SAVED);
    assert_eq!(
        seen(&services, "10.0.1.4"),
        Tunnel::Gue {
            port: 5555,
            csum: TunnelCsum::NoCsum
        }
    );
    let dir = std::env::temp_dir().join(format!("rvs-tun-persist-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rules");
    let (mut e, _) = engine();
    e.persist_to(path.clone()).unwrap();
    SETUP.iter().for_each(|l| ok(&mut e, l));
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    for line in SAVED.lines() {
        assert!(text.lines().any(|l| l == line), "{line:?} not in {text}");
    }
}

/// A `-i` sorry server keeps its encapsulation: in the table the
/// workers see while it stands in, and in -S (so -R and persisted rules).
#[test]
fn a_sorry_server_keeps_its_tunnel() {
    let (mut e, services) = engine();
    ok(&mut e, "-A -u 10.0.0.2:53 -s rr");
    ok(
        &mut e,
        "--sorry-set -u 10.0.0.2:53 -r 10.0.9.9:53 -i --tun-type gue --tun-port 6080 --tun-csum",
    );
    // No real server: the sorry server is in.
    let gue = Tunnel::Gue {
        port: 6080,
        csum: TunnelCsum::Csum,
    };
    assert_eq!(seen(&services, "10.0.9.9"), gue);
    let saved = run(&mut e, "-S -n").stdout;
    let line = "--sorry-set -u 10.0.0.2:53 -r 10.0.9.9:53 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum";
    assert!(saved.lines().any(|l| l == line), "{saved}");
    let (mut e2, services2) = engine();
    let r = e2.execute("ipvsadm", &["-R".to_string()], Some(&saved));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(seen(&services2, "10.0.9.9"), gue);
    // Changing only the tunnel replaces the standing-in dest.
    ok(
        &mut e,
        "--sorry-set -u 10.0.0.2:53 -r 10.0.9.9:53 -i --tun-type gre",
    );
    assert_eq!(
        seen(&services, "10.0.9.9"),
        Tunnel::Gre {
            csum: TunnelCsum::NoCsum
        }
    );
}
