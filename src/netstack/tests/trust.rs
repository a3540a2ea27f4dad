//! Whom the stack believes: neighbour entries come only from answers to
//! its own requests and from requests addressed to it (Linux's arp_process
//! and ndisc_recv_na), never from a reply nobody asked for, and nothing
//! claiming one of rvs's addresses becomes an entry.
use super::*;

const SPOOF_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x66];

/// Whether the stack knows `ip` on port 0: a ping from it is answered at
/// once rather than waiting behind an ARP request / solicitation.
fn knows(net: &mut Net, ip: impl Into<IpAddr>) -> bool {
    let ip = ip.into();
    let me: IpAddr = if ip.is_ipv4() { ME4.into() } else { ME6.into() };
    let sent = net.rx(0, &ping(ip, me).request());
    let known = sent.len() == 1 && sent[0].1[12..14] != [0x08, 0x06] && {
        let f = &sent[0].1;
        // An echo reply, not a neighbour solicitation (ICMPv6 type 135).
        !(f[12..14] == [0x86, 0xdd] && f.get(ETH + 40) == Some(&NS))
    };
    // Whatever waits for resolution goes: the next check starts clean.
    net.poll_at(net.now + PENDING_TIMEOUT_MS);
    known
}

#[test]
fn an_arp_reply_nobody_asked_for_is_not_learned_and_counted() {
    let mut net = Net::new(config());
    let spoof = Arp::reply(SPOOF_MAC, HOST4, OUR_MAC, ME4);
    assert!(net.rx(0, &pad(spoof.frame())).is_empty());
    assert_eq!(net.drops(), [(DropReason::Unsolicited, 1)]);
    assert!(net.learned().is_empty());
    assert!(!knows(&mut net, HOST4));
}

#[test]
fn an_arp_request_to_us_makes_an_entry_for_its_sender() {
    let mut net = Net::new(config());
    let req = Arp::request(HOST_MAC, HOST4, ME4);
    assert_eq!(
        Arp::parse(&only(net.rx(0, &pad(req.frame())), 0)),
        Arp::reply(OUR_MAC, ME4, HOST_MAC, HOST4)
    );
    assert_eq!(net.learned().len(), 1);
    assert!(knows(&mut net, HOST4));
    // A known neighbour's own reply refreshes it, unasked (as Linux does).
    let again = Arp::reply(HOST_MAC, HOST4, OUR_MAC, ME4);
    assert!(net.rx(0, &pad(again.frame())).is_empty());
    assert!(net
        .drops()
        .iter()
        .all(|(r, _)| *r != DropReason::Unsolicited));
}

#[test]
fn an_answer_another_worker_asked_for_is_learned_through_the_shared_log() {
    let log = Arc::new(SolicitLog::new());
    let (mut asker, mut answered) = (Net::new(config()), Net::new(config()));
    asker.stack.share_solicitations(log.clone());
    answered.stack.share_solicitations(log);
    // The asker needs HOST4 and asks; the answer reaches the other worker.
    let req = only(asker.rx(0, &ping(HOST4, ME4).request()), 0);
    assert_eq!(Arp::parse(&req), Arp::request(OUR_MAC, ME4, HOST4));
    let reply = Arp::reply(HOST_MAC, HOST4, OUR_MAC, ME4);
    answered.now = asker.now;
    assert!(answered.rx(0, &pad(reply.frame())).is_empty());
    assert!(answered.drops().is_empty(), "{:?}", answered.drops());
    let learned = answered.learned();
    assert_eq!(learned.len(), 1, "reported to the other workers");
    assert_eq!(learned[0].mac, MacAddr(HOST_MAC));
    // Without the shared log, the same answer is unsolicited there.
    let mut alone = Net::new(config());
    alone.now = asker.now;
    assert!(alone.rx(0, &pad(reply.frame())).is_empty());
    assert_eq!(alone.drops(), [(DropReason::Unsolicited, 1)]);
}

#[test]
fn arp_claiming_our_addresses_is_counted_and_changes_nothing() {
    let cfg = config().with_extra([(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100)), AddrKind::Vip)]);
    let mut net = Net::new(cfg);
    let vip = Ipv4Addr::new(198, 18, 0, 100);
    let claims = [
        Arp::request(SPOOF_MAC, ME4, HOST4),
        Arp::request(SPOOF_MAC, vip, vip),
        Arp::reply(SPOOF_MAC, ME4, OUR_MAC, ME4),
        Arp::reply(SPOOF_MAC, vip, OUR_MAC, ME4),
        Arp::request(SPOOF_MAC, P1_ADDR, ME4),
    ];
    for (i, c) in claims.iter().enumerate() {
        assert_eq!(net.account(0, &pad(c.frame())), Outcome::Consumed, "{c:?}");
        assert_eq!(net.counters.address_conflicts.get(), i as u64 + 1);
    }
    assert!(net.learned().is_empty());
    // Our own addresses are still answered with our MAC.
    let req = Arp::request(HOST_MAC, HOST4, vip);
    assert_eq!(
        Arp::parse(&only(net.rx(0, &pad(req.frame())), 0)),
        Arp::reply(OUR_MAC, vip, HOST_MAC, HOST4)
    );
}

#[test]
fn an_advertisement_nobody_asked_for_is_not_learned_and_counted() {
    let mut net = Net::new(config());
    let na = Nd::advert(SPOOF_MAC, HOST6);
    assert_eq!(
        net.account(0, &na.frame()),
        Outcome::Dropped(DropReason::Unsolicited)
    );
    // Unsolicited and to all nodes (RFC 4861 7.2.6), with the override flag.
    let all = Nd {
        eth_dst: ALL_NODES_MAC,
        dst: ALL_NODES,
        flags: NA_O,
        ..na.clone()
    };
    assert_eq!(
        net.account(0, &all.frame()),
        Outcome::Dropped(DropReason::Unsolicited)
    );
    assert!(net.learned().is_empty());
    assert!(!knows(&mut net, HOST6));
}

#[test]
fn an_advertisement_without_override_does_not_move_a_known_neighbour() {
    let mut net = Net::new(config());
    // HOST6 asks for us: an entry for it, with HOST_MAC.
    let ns = Nd::solicit(HOST_MAC, HOST6, ME6);
    assert_eq!(net.account(0, &ns.frame()), Outcome::Answered);
    assert_eq!(net.learned().len(), 1);
    let weak = Nd {
        flags: NA_S,
        ..Nd::advert(SPOOF_MAC, HOST6)
    };
    assert_eq!(net.account(0, &weak.frame()), Outcome::Consumed);
    let reply = only(net.rx(0, &ping(HOST6, ME6).request()), 0);
    assert_eq!(reply[..6], HOST_MAC, "still the first MAC");
    // With the override flag, it moves.
    let strong = Nd::advert(SPOOF_MAC, HOST6);
    assert_eq!(net.account(0, &strong.frame()), Outcome::Consumed);
    let reply = only(net.rx(0, &ping(HOST6, ME6).request()), 0);
    assert_eq!(reply[..6], SPOOF_MAC);
}

#[test]
fn nd_claiming_our_addresses_is_counted_and_changes_nothing() {
    let mut net = Net::new(config());
    // An advertisement of our address, and a solicitation from it.
    let na = Nd {
        src: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x66),
        ..Nd::advert(SPOOF_MAC, ME6)
    };
    assert_eq!(net.account(0, &na.frame()), Outcome::Consumed);
    let ns = Nd::solicit(SPOOF_MAC, ME6, HOST6);
    let ns_for_us = Nd {
        target: ME6,
        dst: solicited_node(ME6),
        eth_dst: multicast_mac(solicited_node(ME6)),
        ..ns
    };
    assert_eq!(net.account(0, &ns_for_us.frame()), Outcome::Consumed);
    assert_eq!(net.counters.address_conflicts.get(), 2);
    assert!(net.learned().is_empty());
    // A duplicate-address probe for our address is still defended.
    let dad = Nd {
        src: Ipv6Addr::UNSPECIFIED,
        lla: None,
        ..ns_for_us
    };
    assert_eq!(net.account(0, &dad.frame()), Outcome::Answered);
}

#[test]
fn an_echo_from_the_unspecified_address_is_martian() {
    let mut net = Net::new(config());
    let echo = ping(Ipv6Addr::UNSPECIFIED, ME6);
    assert_eq!(
        net.account(0, &echo.request()),
        Outcome::Dropped(DropReason::Martian)
    );
}
