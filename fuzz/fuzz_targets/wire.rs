//! src/wire's views over any bytes: every accessor of a view that
//! `new_checked` accepted stays in bounds, and every `parse` answers Ok or
//! Err.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs::wire::{
    ArpPacket, ArpRepr, EthernetFrame, EthernetRepr, Icmpv4Packet, Icmpv6Packet, Ipv4Packet,
    Ipv4Repr, Ipv6Packet, Ipv6Repr, NdRepr, TcpPacket, UdpPacket, UdpRepr,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = EthernetFrame::new_checked(data) {
        let _ = EthernetRepr::parse(&f);
        let _ = (f.src_addr(), f.dst_addr(), f.ethertype());
    }
    // Each view also over the bytes as they come, as an L3 or L4 header.
    if let Ok(a) = ArpPacket::new_checked(data) {
        let _ = ArpRepr::parse(&a);
    }
    if let Ok(ip) = Ipv4Packet::new_checked(data) {
        let _ = Ipv4Repr::parse(&ip);
        let _ = (ip.src_addr(), ip.dst_addr(), ip.payload());
    }
    if let Ok(ip) = Ipv6Packet::new_checked(data) {
        let _ = Ipv6Repr::parse(&ip);
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        if let Ok(icmp) = Icmpv6Packet::new_checked(ip.payload()) {
            let _ = icmp.verify_checksum(&src, &dst);
            let _ = NdRepr::parse(&icmp);
        }
    }
    if let Ok(t) = TcpPacket::new_checked(data) {
        let _ = (t.src_port(), t.dst_port(), t.payload());
    }
    if let Ok(u) = UdpPacket::new_checked(data) {
        let _ = UdpRepr::parse(&u);
    }
    if let Ok(i) = Icmpv4Packet::new_checked(data) {
        let _ = i.msg_type();
    }
    if let Ok(v) = rvs::wire::vrrp::VrrpPacket::new_checked(data) {
        let _ = (v.version(), v.vrid(), v.priority(), v.max_adver_int());
        let _ = v.addrs_v4().map(|a| a.count());
        let _ = v.verify_checksum_v4([0; 4].into(), [224, 0, 0, 18].into());
    }
    // The fast path's fixed-offset views (src/wire/plain.rs): in bounds
    // whatever the bytes, and what they take the general view takes too.
    if let Some(f) = rvs::wire::PlainFrame::new(data) {
        let _ = (f.protocol(), f.tcp_flags_early());
        for checked in [false, true] {
            if let Some(ip) = f.ipv4(checked) {
                let _ = (ip.ttl(), ip.src(), ip.dst(), ip.addr_bytes());
                let _ = (ip.ports(), ip.port_bytes(), ip.payload());
                let l3 = data.get(14..).unwrap_or_default();
                assert!(
                    Ipv4Packet::new_checked(l3).is_ok(),
                    "the plain view's header"
                );
            }
        }
    }
    // The worker's reading of a received frame as a VRRP advert.
    let _ = rvs::dataplane::vrrp::parse_advert(data, 0);
    // The IPVS sync message (src/ipvs/sync/wire.rs): every entry read is
    // Ok, skipped or the end; one read Ok is written back as it was read.
    if let Ok(m) = rvs::ipvs::sync::wire::Message::parse(data) {
        let mut b = rvs::ipvs::sync::wire::MsgBuilder::new(m.syncid(), 65535);
        for e in m.entries().flatten().flatten() {
            if e.pe_data.is_none() && e.pe_name.is_none() && !e.kernel_seq && b.push(&e) {
                let again = rvs::ipvs::sync::wire::Message::parse(b.bytes()).expect("own message");
                let last = again.entries().last().expect("an entry");
                assert_eq!(last, Ok(Ok(e)));
            }
        }
    }
});
