//! End to end in network namespaces: rvsd owns one end of a veth pair through
//! net_af_packet, and a client namespace pings rvsd's IPv4 and IPv6 addresses.
//! The namespaces are always removed, also when the test fails.
mod common;

use std::time::Duration;

use common::{counter, wait_until, Daemon, TempDir, Topology};

#[test]
fn client_pings_rvsd_over_ipv4_and_ipv6() {
    let topo = Topology::new(&format!("rvst{}", std::process::id()));
    let dir = TempDir::new("netns");
    let config = dir.path("rvsd.toml");
    std::fs::write(
        &config,
        r#"
[eal]
args = ["--no-huge", "--no-shconf", "--no-telemetry", "-m", "256", "--lcores=0@0,1@0"]
[dataplane]
workers = [1]
[[port]]
name = "client"
devargs = "net_af_packet0,iface=rvstg0"
addresses = ["198.18.0.1/24", "fd00:18::1/64"]
"#,
    )
    .unwrap();
    let mut rvsd = Daemon::start(&dir, &["ip", "netns", "exec", &topo.gw], &config);

    // Readiness: the first answered ping (bounded), not a fixed sleep.
    let up = wait_until(Duration::from_secs(30), || {
        rvsd.has_exited()
            || topo
                .in_client(&["ping", "-c", "1", "-W", "1", "198.18.0.1"])
                .status
                .success()
    });
    assert!(
        up && !rvsd.has_exited(),
        "rvsd never answered ping; log:\n{}",
        rvsd.log()
    );

    let v4 = topo.in_client(&["ping", "-c", "5", "-i", "0.2", "-W", "2", "198.18.0.1"]);
    assert!(
        v4.status.success(),
        "IPv4 ping: {}",
        String::from_utf8_lossy(&v4.stdout)
    );
    assert!(String::from_utf8_lossy(&v4.stdout).contains("5 received"));
    let v6 = topo.in_client(&[
        "ping",
        "-6",
        "-c",
        "5",
        "-i",
        "0.2",
        "-W",
        "2",
        "fd00:18::1",
    ]);
    assert!(
        v6.status.success(),
        "IPv6 ping: {}\n{}",
        String::from_utf8_lossy(&v6.stdout),
        rvsd.log()
    );
    assert!(String::from_utf8_lossy(&v6.stdout).contains("5 received"));

    // The client learned rvsd's MAC through ARP and ND.
    let neigh = String::from_utf8_lossy(
        &topo
            .in_client(&["ip", "neigh", "show", "dev", "rvstc0"])
            .stdout,
    )
    .into_owned();
    assert!(neigh.contains("198.18.0.1 lladdr"), "{neigh}");
    assert!(neigh.contains("fd00:18::1 lladdr"), "{neigh}");

    // An address rvsd does not own gets nothing.
    let none = topo.in_client(&["ping", "-c", "1", "-W", "1", "198.18.0.9"]);
    assert!(!none.status.success());

    let done = rvsd.stop();
    assert!(
        done.status.success(),
        "exit {:?}:\n{}",
        done.status,
        done.stderr
    );
    let echoes = counter(&done.stdout, "echo replies").expect("summary");
    assert!(echoes >= 10, "{}", done.stdout);
    assert!(
        counter(&done.stdout, "nd adverts").unwrap_or(0) >= 1,
        "{}",
        done.stdout
    );
}
