//! The exception path: the host's kernel on port 2 (a tap), a health-check
//! source 198.19.0.250 owned on port 1.
use super::*;

const TAP: u16 = 2;
const PATH_MAC: [u8; 6] = [2, 0x72, 0x76, 0x73, 0x68, 0x63];
const KERNEL_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x4b];
const SOURCE4: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 250);
const SOURCE6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 0xfa);
const REAL4: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 7);
const REAL_MAC: [u8; 6] = [2, 0, 0, 0, 0, 7];

fn host_net() -> Net {
    let cfg = config()
        .with_host_path(HostPath {
            port: TAP,
            mac: MacAddr(PATH_MAC),
            host_mac: MacAddr(KERNEL_MAC),
        })
        .with_extra([
            (IpAddr::V4(SOURCE4), AddrKind::Health),
            (IpAddr::V6(SOURCE6), AddrKind::Health),
        ]);
    Net::new(cfg)
}

/// A TCP SYN from `src` to `dst` in an Ethernet frame.
fn syn(eth_src: [u8; 6], eth_dst: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr, ttl: u8) -> Vec<u8> {
    let mut v = vec![];
    PacketBuilder::ethernet2(eth_src, eth_dst)
        .ipv4(src.octets(), dst.octets(), ttl)
        .tcp(40000, 80, 1, 64240)
        .syn()
        .write(&mut v, &[])
        .unwrap();
    v
}

#[test]
fn the_kernels_arp_for_any_address_is_answered_with_the_path_mac() {
    let mut n = host_net();
    for target in [REAL4, Ipv4Addr::new(10, 9, 9, 9)] {
        let req = Arp::request(KERNEL_MAC, SOURCE4, target).frame();
        let sent = n.rx(TAP, &req);
        let a = Arp::parse(&only(sent, TAP));
        assert_eq!(a, Arp::reply(PATH_MAC, target, KERNEL_MAC, SOURCE4));
    }
    assert_eq!(n.counters.from_host.get(), 2);
}

#[test]
fn the_kernels_packets_from_a_source_leave_by_the_dataplane_unchanged() {
    let mut n = host_net();
    n.know(1, REAL4, REAL_MAC);
    let frame = syn(KERNEL_MAC, PATH_MAC, SOURCE4, REAL4, 64);
    let out = only(n.rx(TAP, &frame), 1);
    assert_eq!(out[..6], REAL_MAC);
    assert_eq!(out[6..12], P1_MAC);
    assert_eq!(
        out[ETH..],
        frame[ETH..],
        "the IP packet is the kernel's, TTL included"
    );
}

#[test]
fn only_a_source_may_use_the_path_and_not_towards_rvs_own_addresses() {
    let mut n = host_net();
    n.know(1, REAL4, REAL_MAC);
    let other = syn(KERNEL_MAC, PATH_MAC, Ipv4Addr::new(10, 0, 0, 5), REAL4, 64);
    assert_eq!(
        n.account(TAP, &other),
        Outcome::Dropped(DropReason::NotForUs)
    );
    let to_us = syn(KERNEL_MAC, PATH_MAC, SOURCE4, P1_ADDR, 64);
    assert_eq!(
        n.account(TAP, &to_us),
        Outcome::Dropped(DropReason::Unsupported)
    );
    let runt = [&KERNEL_MAC[..], &PATH_MAC, &[0x08, 0x00, 0x45]].concat();
    assert_eq!(
        n.account(TAP, &runt),
        Outcome::Dropped(DropReason::BadHeader)
    );
}

#[test]
fn traffic_to_a_source_goes_to_the_kernel_and_its_arp_is_answered_on_the_dataplane() {
    let mut n = host_net();
    let req = Arp::request(REAL_MAC, REAL4, SOURCE4).frame();
    let a = Arp::parse(&only(n.rx(1, &req), 1));
    assert_eq!(a, Arp::reply(P1_MAC, SOURCE4, REAL_MAC, REAL4));
    // A SYN-ACK, an echo request: the kernel's, not rvs's to answer.
    for frame in [
        syn(REAL_MAC, P1_MAC, REAL4, SOURCE4, 61),
        Echo {
            eth_src: REAL_MAC,
            eth_dst: P1_MAC,
            ..ping(REAL4, SOURCE4)
        }
        .request(),
    ] {
        let out = only(n.rx(1, &frame), TAP);
        assert_eq!(out[..6], KERNEL_MAC);
        assert_eq!(out[6..12], PATH_MAC);
        assert_eq!(out[ETH..], frame[ETH..]);
    }
    assert_eq!(n.counters.to_host.get(), 2);
    assert_eq!(n.counters.echo_replies.get(), 0);
}

#[test]
fn the_kernels_neighbour_solicitations_get_the_path_mac_and_ipv6_goes_to_it() {
    let mut n = host_net();
    let target = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 7);
    let ns = Nd::solicit(KERNEL_MAC, SOURCE6, target).frame();
    let na = Nd::parse(&only(n.rx(TAP, &ns), TAP));
    assert_eq!((na.ty, na.target, na.dst), (NA, target, SOURCE6));
    assert_eq!(na.lla, Some((OPT_TLLA, PATH_MAC)));
    assert_eq!(na.eth_dst, KERNEL_MAC);
    // An echo request to the source from the dataplane goes to the kernel;
    // a solicitation for it is rvs's to answer there.
    let echo = ping(HOST6, SOURCE6).request();
    let out = only(n.rx(0, &echo), TAP);
    assert_eq!(out[ETH..], echo[ETH..]);
    let ns = Nd::solicit(HOST_MAC, HOST6, SOURCE6).frame();
    let na = Nd::parse(&only(n.rx(0, &ns), 0));
    assert_eq!(na.lla, Some((OPT_TLLA, OUR_MAC)));
}
