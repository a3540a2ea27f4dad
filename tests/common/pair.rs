//! Two directors side by side, the high-availability tests' lab (sync,
//! VRRP, ECMP): a client behind a router, the router and both directors'
//! client ports on one LAN, both directors' server ports and the real
//! servers on another.
//!
//! ```text
//! cli 203.0.113.2 ── rt 203.0.113.1 | 198.18.0.254 ── lan bridge ─┬─ gwa "client" 198.18.0.2
//!                                                                └─ gwb "client" 198.18.0.3
//! gwa "servers" 198.19.0.2 ─┬─ sw bridge ─┬─ rs1 198.19.0.11
//! gwb "servers" 198.19.0.3 ─┘             └─ rs2 198.19.0.12
//! ```
//! (and 2001:db8:113::/64, fd00:18::/64, fd00:19::/64 alike). The VIP is
//! [`super::lab::VIP4`] (198.18.0.100, on the LAN, so the router finds it
//! by ARP from whichever director answers); the real servers have no route
//! beyond their subnet (FULLNAT needs none).
use super::lab::{start_rvsd_with, Pmd, PortConf, Rvsd, StartOpts, RS4, RS6, SERVERS};
use super::netns::Netns;
use super::TempDir;

pub const PAIR_CLI4: &str = "203.0.113.2";
pub const PAIR_CLI6: &str = "2001:db8:113::2";
/// The router's addresses: towards the client, and on the LAN.
pub const RT_OUT4: &str = "203.0.113.1";
pub const RT_OUT6: &str = "2001:db8:113::1";
pub const RT_LAN4: &str = "198.18.0.254";
pub const RT_LAN6: &str = "fd00:18::254";
/// The directors' namespaces (roles), then their addresses in that order.
pub const DIRECTORS: [&str; 2] = ["gwa", "gwb"];
pub const LAN4: [&str; 2] = ["198.18.0.2", "198.18.0.3"];
pub const SRV4: [&str; 2] = ["198.19.0.2", "198.19.0.3"];

/// Each director's two ports: "client" on the LAN, "servers" towards the
/// real servers (interfaces gwc and gws in its namespace).
pub const DIRECTOR_PORTS: [[PortConf<'static>; 2]; 2] = [
    [
        PortConf {
            name: "client",
            iface: "gwc",
            addrs: &["198.18.0.2/24", "fd00:18::2/64"],
            mtu: None,
        },
        PortConf {
            name: "servers",
            iface: "gws",
            addrs: &["198.19.0.2/24", "fd00:19::2/64"],
            mtu: None,
        },
    ],
    [
        PortConf {
            name: "client",
            iface: "gwc",
            addrs: &["198.18.0.3/24", "fd00:18::3/64"],
            mtu: None,
        },
        PortConf {
            name: "servers",
            iface: "gws",
            addrs: &["198.19.0.3/24", "fd00:19::3/64"],
            mtu: None,
        },
    ],
];

/// The routes every director needs: the client's side is behind the router.
pub const DIRECTOR_ROUTES: &str = "[[route]]\nprefix = \"0.0.0.0/0\"\nvia = \"198.18.0.254\"\n\
                                   [[route]]\nprefix = \"::/0\"\nvia = \"fd00:18::254\"\n";

/// The namespaces and links of the pair, with both real servers; no
/// director runs yet (see [`start_director`]).
pub fn pair(test: &str) -> Netns {
    let mut n = Netns::new(test);
    for role in ["cli", "rt", "lan", "sw"]
        .iter()
        .chain(&DIRECTORS)
        .chain(&SERVERS)
    {
        n.add(role);
    }
    for role in ["lan", "sw"].iter().chain(&DIRECTORS) {
        n.ok(
            role,
            &["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"],
        );
    }
    n.bridge("lan");
    n.bridge("sw");

    n.veth("cli", "eth0", "rt", "eth0");
    n.up("cli", "eth0");
    n.up("rt", "eth0");
    n.addr("cli", "eth0", &format!("{PAIR_CLI4}/24"));
    n.addr("cli", "eth0", &format!("{PAIR_CLI6}/64"));
    n.ok("cli", &["ip", "route", "add", "default", "via", RT_OUT4]);
    n.ok(
        "cli",
        &["ip", "-6", "route", "add", "default", "via", RT_OUT6],
    );

    n.veth("rt", "eth1", "lan", "p0");
    n.bridge_port("lan", "p0");
    n.up("rt", "eth1");
    n.addr("rt", "eth0", &format!("{RT_OUT4}/24"));
    n.addr("rt", "eth0", &format!("{RT_OUT6}/64"));
    n.addr("rt", "eth1", &format!("{RT_LAN4}/24"));
    n.addr("rt", "eth1", &format!("{RT_LAN6}/64"));
    n.ok("rt", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    n.ok("rt", &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);

    for (i, gw) in DIRECTORS.iter().enumerate() {
        let (lan_port, sw_port) = (format!("g{i}"), format!("g{i}"));
        n.veth(gw, "gwc", "lan", &lan_port);
        n.bridge_port("lan", &lan_port);
        n.rvsd_port(gw, "gwc");
        n.veth(gw, "gws", "sw", &sw_port);
        n.bridge_port("sw", &sw_port);
        n.rvsd_port(gw, "gws");
    }
    for (i, rs) in SERVERS.iter().enumerate() {
        let port = format!("p{}", i + 1);
        n.veth(rs, "eth0", "sw", &port);
        n.bridge_port("sw", &port);
        n.up(rs, "eth0");
        n.addr(rs, "eth0", &format!("{}/24", RS4[i]));
        n.addr(rs, "eth0", &format!("{}/64", RS6[i]));
    }
    n
}

/// Starts director `i` (0: gwa, 1: gwb) on net_af_packet with `workers`
/// workers, its start-up rules and `extra` configuration after the default
/// routes; `dir` is the director's own (socket, config and log). Returns
/// once the client reaches the director's LAN address.
pub fn start_director(
    net: &Netns,
    dir: &TempDir,
    i: usize,
    workers: usize,
    rules: &str,
    extra: &str,
    opts: &StartOpts,
) -> Rvsd {
    let opts = StartOpts {
        env: opts.env,
        port_lines: opts.port_lines,
        metrics: opts.metrics,
        dataplane: opts.dataplane,
        ns: Some(DIRECTORS[i]),
        ping: Some(LAN4[i]),
    };
    let extra = format!("{DIRECTOR_ROUTES}{extra}");
    start_rvsd_with(
        Pmd::AfPacket,
        net,
        dir,
        workers,
        &DIRECTOR_PORTS[i],
        rules,
        &extra,
        &opts,
    )
}
