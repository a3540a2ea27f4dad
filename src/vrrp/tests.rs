use super::*;
use crate::dataplane::vrrp::parse_advert;
use crate::netstack::{Iface, IfaceAddr};

const LAN_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0a]);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const GW: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);

fn net() -> NetConfig {
    let iface = |port: u16, name: &str, a: [u8; 4]| Iface {
        port,
        name: name.into(),
        mac: MacAddr([0x02, 0, 0, 0, 0, 0x0a + port as u8]),
        addrs: vec![IfaceAddr {
            addr: IpAddr::V4(Ipv4Addr::from(a)),
            prefix_len: 24,
        }],
        mtu: 1500,
        tx_checksum: false,
    };
    NetConfig::new(
        vec![
            iface(0, "lan", [198, 18, 0, 2]),
            iface(1, "servers", [198, 19, 0, 2]),
        ],
        vec![],
    )
    .with_extra([(IpAddr::V4(VIP), AddrKind::Vip)])
}

fn instance(priority: u8, peers: Vec<Ipv4Addr>) -> VrrpConfig {
    VrrpConfig {
        name: "VI_1".into(),
        port: "lan".into(),
        vrid: 51,
        priority,
        advert_int: 100,
        preempt: true,
        unicast_peers: peers,
        services: true,
        extra: vec![(IpAddr::V4(GW), "servers".into())],
        notify: None,
    }
}

/// The frames among `outs`: (port, frame, via).
fn frames(outs: &[Out]) -> Vec<(u16, &[u8], Option<IpAddr>)> {
    outs.iter()
        .filter_map(|o| match o {
            Out::Frame { port, frame, via } => Some((*port, &frame[..], *via)),
            Out::Announce(_) => None,
        })
        .collect()
}

fn advert(src: Ipv4Addr, priority: u8) -> RxAdvert {
    RxAdvert {
        port: 0,
        src,
        dst: GROUP_V4,
        ttl: 255,
        version: 3,
        kind: 1,
        vrid: 51,
        priority,
        max_adver_int: 100,
        complete: true,
        checksum_ok: true,
    }
}

#[test]
fn the_advert_frame_is_what_rfc_5798_asks_for() {
    let repr = VrrpRepr {
        vrid: 51,
        priority: 150,
        max_adver_int: 100,
        addrs: &[VIP],
    };
    let f = build_advert(
        LAN_MAC,
        GROUP_MAC,
        Ipv4Addr::new(198, 18, 0, 2),
        GROUP_V4,
        &repr,
    );
    assert_eq!(f.len(), 14 + 20 + 12);
    // 01:00:5e:00:00:12 (RFC 1112's mapping of 224.0.0.18), our MAC, IPv4.
    assert_eq!(
        &f[..14],
        &[1, 0, 0x5e, 0, 0, 0x12, 2, 0, 0, 0, 0, 0x0a, 8, 0]
    );
    let ip = &f[14..34];
    assert_eq!(ip[0], 0x45);
    assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 32);
    assert_eq!(ip[8], 255, "TTL");
    assert_eq!(ip[9], 112, "protocol");
    assert_eq!(&ip[12..20], &[198, 18, 0, 2, 224, 0, 0, 18]);
    // The message as wire::vrrp's hand-worked test has it.
    assert_eq!(
        &f[34..],
        &[0x31, 0x33, 0x96, 0x01, 0x00, 0x64, 0xcb, 0xa6, 198, 18, 0, 10]
    );
    // And the worker's parser reads it back.
    let a = parse_advert(&f, 3).unwrap();
    assert_eq!(
        a,
        RxAdvert {
            port: 3,
            src: Ipv4Addr::new(198, 18, 0, 2),
            dst: GROUP_V4,
            ttl: 255,
            version: 3,
            kind: 1,
            vrid: 51,
            priority: 150,
            max_adver_int: 100,
            complete: true,
            checksum_ok: true,
        }
    );
    // A damaged message is still handed over, marked.
    let mut bad = f.to_vec();
    bad[40] ^= 1;
    assert!(!parse_advert(&bad, 3).unwrap().checksum_ok);
    // Not VRRP: left alone.
    let mut tcp = f.to_vec();
    tcp[14 + 9] = 6;
    assert_eq!(parse_advert(&tcp, 3), None);
}

#[test]
fn a_backup_holds_the_addresses_on_standby_and_a_master_owns_them() {
    let base = net();
    let mut v = Vrrp::new(&[instance(100, vec![])], &base).unwrap();
    // Initialize, then Backup: silent for the VIP and the gateway.
    let c = v.apply(&base);
    assert!(c.vrrp());
    assert!(c.owner(IpAddr::V4(VIP)).is_none() && c.is_standby(IpAddr::V4(VIP)));
    assert!(c.owner(IpAddr::V4(GW)).is_none() && c.is_standby(IpAddr::V4(GW)));
    let out = v.start();
    assert!(out.is_empty(), "a backup sends nothing at start");
    assert!(v.take_changed());
    let c = v.apply(&base);
    assert!(c.is_standby(IpAddr::V4(VIP)));
    // The port's own address is never on standby.
    assert!(c.owner("198.18.0.2".parse().unwrap()).is_some());

    // The owner (255) is master at once: adverts go out and it owns both.
    let mut m = Vrrp::new(&[instance(255, vec![])], &base).unwrap();
    m.apply(&base);
    let out = m.start();
    let out = frames(&out);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].0, out[0].2), (0, None));
    let a = parse_advert(out[0].1, 0).unwrap();
    assert_eq!((a.priority, a.vrid, a.dst), (255, 51, GROUP_V4));
    // The advert lists the VIP and the gateway address.
    assert_eq!(&out[0].1[34 + 3], &2);
    let c = m.apply(&base);
    assert_eq!(c.owner(IpAddr::V4(VIP)).map(|o| o.port), Some(0));
    assert_eq!(c.owner(IpAddr::V4(GW)).map(|o| o.port), Some(1));
    assert!(!c.is_standby(IpAddr::V4(VIP)));
    assert_eq!(m.status().instances[0].state(), State::Master);
    assert_eq!(m.status().instances[0].transitions(State::Master), 1);

    // A second round of announcements is due a second after taking over.
    let due = m.next_wake().unwrap();
    let in_ms = due
        .saturating_duration_since(std::time::Instant::now())
        .as_millis();
    assert!(in_ms <= 1000, "next wake in {in_ms} ms");
    m.instances[0].reannounce = Some(0);
    let out = m.poll();
    assert!(out.contains(&Out::Announce(
        vec![IpAddr::V4(GW), IpAddr::V4(VIP)].into_boxed_slice()
    )));
    assert_eq!(m.instances[0].reannounce, None);

    // Stopping: priority 0.
    let out = m.shutdown();
    assert_eq!(parse_advert(frames(&out)[0].1, 0).unwrap().priority, 0);
}

#[test]
fn unicast_peers_get_one_routed_advert_each() {
    let peers = vec![Ipv4Addr::new(198, 18, 0, 3), Ipv4Addr::new(198, 18, 0, 4)];
    let mut m = Vrrp::new(&[instance(255, peers.clone())], &net()).unwrap();
    let out = m.start();
    let out = frames(&out);
    assert_eq!(out.len(), 2);
    for (o, p) in out.iter().zip(&peers) {
        assert_eq!(o.2, Some(IpAddr::V4(*p)));
        let a = parse_advert(o.1, 0).unwrap();
        assert_eq!(a.dst, *p);
        assert!(a.checksum_ok, "the pseudo header has the peer's address");
    }
}

#[test]
fn bad_adverts_are_refused_and_counted_by_reason() {
    let mut v = Vrrp::new(&[instance(255, vec![])], &net()).unwrap();
    v.apply(&net());
    v.start();
    let peer = Ipv4Addr::new(198, 18, 0, 3);
    type Spoil = fn(&mut RxAdvert);
    let cases: [(RxDrop, Spoil); 6] = [
        (RxDrop::Ttl, |a| a.ttl = 254),
        (RxDrop::Version, |a| a.version = 2),
        (RxDrop::Type, |a| a.kind = 2),
        (RxDrop::Length, |a| a.complete = false),
        (RxDrop::Checksum, |a| a.checksum_ok = false),
        (RxDrop::Vrid, |a| a.vrid = 52),
    ];
    for (reason, spoil) in cases {
        let mut a = advert(peer, 254);
        spoil(&mut a);
        // Heard, priority 255 from a higher address would make the
        // master yield; refused, it does not.
        a.priority = 255;
        assert!(v.heard(a).is_empty());
        assert_eq!(v.status().dropped(reason), 1, "{reason:?}");
        assert_eq!(v.status().instances[0].state(), State::Master);
    }
    // A lower priority from a router that thinks it is master: an advert
    // at once and the addresses announced again.
    let out = v.heard(advert(peer, 100));
    assert_eq!(frames(&out).len(), 1);
    assert!(out.contains(&Out::Announce(
        vec![IpAddr::V4(GW), IpAddr::V4(VIP)].into_boxed_slice()
    )));
    // A good one from a higher address at equal priority is heard.
    v.heard(advert(peer, 255));
    assert_eq!(v.status().instances[0].state(), State::Backup);
    assert_eq!(
        v.status().instances[0]
            .adverts_received
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    // Another port's advert with our VRID is another virtual router.
    let mut other = advert(peer, 255);
    other.port = 1;
    v.heard(other);
    assert_eq!(v.status().dropped(RxDrop::Vrid), 2);
}

#[test]
fn notify_runs_with_keepalived_arguments() {
    let dir = std::env::temp_dir().join(format!("rvs-vrrp-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("out");
    let mut c = instance(255, vec![]);
    c.notify = Some(format!("echo >>{}", file.display()));
    let mut m = Vrrp::new(&[c], &net()).unwrap();
    m.start();
    m.shutdown();
    m.notifier.finish(Duration::from_secs(10));
    let got = std::fs::read_to_string(&file).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(got, "INSTANCE VI_1 MASTER 255\nINSTANCE VI_1 STOP 255\n");
}
