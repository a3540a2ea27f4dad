//! FULLNAT (DPVS's two-way NAT): client→VIP:vport becomes LIP:lport→RIP:rport
//! and the reply RIP:rport→LIP:lport becomes VIP:vport→CIP:cport, so the
//! real servers need no route back to the clients.
//!
//! Unlike DPVS, the TCP sequence numbers are not shifted and the SYN's
//! timestamp option is kept: DPVS does both for its SYN proxy and for
//! servers behind it that share one LIP among clients with unrelated
//! timestamp clocks (tcp_tw_recycle, gone from Linux since 4.12).

use std::net::IpAddr;

use super::{
    check_translatable, clamp_mss, toa, translate, trim_padding, Ip, XmitError, XmitOpts, PROTO_TCP,
};
use crate::counters::DropReason;
use crate::ipvs::ConnRef;
use crate::packet::Packet;
use crate::wire::tcp::{ACK, FIN, RST, SYN};

/// Client → real server: source CIP:cport becomes LIP:lport, destination
/// VIP:vport becomes RIP:rport, TTL/hop limit minus one (an SCTP packet's
/// CRC32c follows its ports). On a SYN, with
/// `opts.toa`, TOA carries the client's address (also on an ACK with
/// `opts.toa_on_ack`), and `opts.mss_clamp` lowers the MSS option. Client
/// and server sides of different families go to `nat64::to_real`.
pub fn to_real<P: Packet>(
    pkt: &mut P,
    conn: &ConnRef<'_>,
    opts: &XmitOpts,
) -> Result<IpAddr, XmitError> {
    let client = conn.caddr();
    let rs = conn.daddr();
    let lip = conn.laddr();
    if !one_family(conn) {
        return super::nat64::to_real(pkt, conn, opts);
    }
    let mut ip = check_translatable(pkt.data(), opts.parsed, conn, rs.is_ipv6())?;
    super::mtu::fit(pkt.data(), &ip, opts.mtu, 0)?;
    trim_padding(pkt, &ip);
    // No TOA in a fragment: growing the first fragment's TCP header would
    // overlap the offsets of the fragments after it.
    if ip.proto == PROTO_TCP && ip.frag.is_none() {
        let flags = pkt.data()[ip.l4 + 13] & (SYN | ACK | FIN | RST);
        let wants_toa = (opts.toa && flags == SYN) || (opts.toa && opts.toa_on_ack && flags == ACK);
        if wants_toa {
            toa::insert(pkt, &mut ip, (client, conn.cport()), opts.mtu);
        }
        // Only a SYN carries the MSS option; the test is clamp_mss's own,
        // made here so that other segments skip the option walk's setup.
        if let (Some(clamp), true) = (opts.mss_clamp, flags & SYN != 0) {
            clamp_mss(pkt.data_mut(), &ip, clamp);
        }
    }
    let b = pkt.data_mut();
    translate(b, &ip, Some((lip, conn.lport())), Some((rs, conn.dport())));
    Ok(rs)
}

/// Real server → client: source RIP:rport becomes VIP:vport, destination
/// LIP:lport becomes CIP:cport, TTL/hop limit minus one; `mtu` is the
/// egress MTU towards the client ([`super::mtu`]). Conns across families
/// are Unsupported here: `nat64::to_client` translates them.
pub fn to_client<P: Packet>(
    pkt: &mut P,
    conn: &ConnRef<'_>,
    mtu: u16,
) -> Result<IpAddr, XmitError> {
    to_client_parsed(pkt, conn, mtu, None)
}

/// `to_client` with the caller's parse of the frame (`XmitOpts::parsed`).
pub(crate) fn to_client_parsed<P: Packet>(
    pkt: &mut P,
    conn: &ConnRef<'_>,
    mtu: u16,
    parsed: Option<Ip>,
) -> Result<IpAddr, XmitError> {
    let client = conn.caddr();
    let vip = conn.vaddr();
    if !one_family(conn) {
        return Err(XmitError::Drop(DropReason::Unsupported));
    }
    let ip = check_translatable(pkt.data(), parsed, conn, client.is_ipv6())?;
    super::mtu::fit(pkt.data(), &ip, mtu, 0)?;
    trim_padding(pkt, &ip);
    let b = pkt.data_mut();
    translate(
        b,
        &ip,
        Some((vip, conn.vport())),
        Some((client, conn.cport())),
    );
    Ok(client)
}

/// Whether the client, VIP, LIP and real server are all of one family.
fn one_family(conn: &ConnRef<'_>) -> bool {
    let v6 = conn.caddr().is_ipv6();
    [conn.vaddr(), conn.laddr(), conn.daddr()]
        .iter()
        .all(|a| a.is_ipv6() == v6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::FwdMethod;
    use crate::xmit::testkit::*;
    use etherparse::TcpOptionElement;

    const FLAGS: [&str; 8] = ["S", "SA", "A", "PA", "FA", "R", "RA", "UPA"];

    fn fnat(a: &Addrs, proto: u8) -> HeldConn {
        conn(
            FwdMethod::FullNat,
            proto,
            a.client,
            a.vip,
            a.rs,
            Some(a.lip),
        )
    }

    fn seg(flags: &str) -> (L4, Vec<u8>) {
        let opts = if flags.contains('S') {
            syn_opts()
        } else {
            vec![
                TcpOptionElement::Noop,
                TcpOptionElement::Noop,
                TcpOptionElement::Timestamp(9, 8),
            ]
        };
        let payload = if flags.contains('P') {
            b"GET / HTTP/1.1\r\n\r\n".to_vec()
        } else {
            vec![]
        };
        (tcp(0, 0, flags, &opts), payload)
    }

    fn with_ports(l4: &L4, sport: u16, dport: u16) -> L4 {
        match l4 {
            L4::Tcp(h) => {
                let mut h = h.clone();
                h.source_port = sport;
                h.destination_port = dport;
                L4::Tcp(h)
            }
            L4::Udp(..) => L4::Udp(sport, dport),
        }
    }

    #[test]
    fn tcp_both_directions_every_flag_v4_v6() {
        for a in [v4(), v6()] {
            let c = fnat(&a, 6);
            for flags in FLAGS {
                let (l4, payload) = seg(flags);
                // Client → RS.
                let inp = frame(
                    a.client.0,
                    a.vip.0,
                    64,
                    &with_ports(&l4, a.client.1, a.vip.1),
                    &payload,
                );
                let (r, out) = run(&inp, |p| to_real(p, &c, &XmitOpts::default()));
                assert_eq!(r, Ok(a.rs.0), "{flags}");
                let mut want = view(&inp);
                want.set_addrs(a.lip.0, a.rs.0);
                want.set_ports(a.lip.1, a.rs.1);
                want.set_ttl(63);
                assert_eq!(view(&out), want, "{flags}");
                assert_checksums(&out, false);
                assert_eq!(out.len(), inp.len());
                // RS → client.
                let inp = frame(
                    a.rs.0,
                    a.lip.0,
                    64,
                    &with_ports(&l4, a.rs.1, a.lip.1),
                    &payload,
                );
                let (r, out) = run(&inp, |p| to_client(p, &c, 1500));
                assert_eq!(r, Ok(a.client.0), "{flags}");
                let mut want = view(&inp);
                want.set_addrs(a.vip.0, a.client.0);
                want.set_ports(a.vip.1, a.client.1);
                want.set_ttl(63);
                assert_eq!(view(&out), want, "{flags}");
                assert_checksums(&out, false);
            }
        }
    }

    #[test]
    fn udp_both_directions_v4_v6() {
        for a in [v4(), v6()] {
            let c = fnat(&a, 17);
            for payload in [&b""[..], b"x", b"dns query bytes"] {
                let inp = frame(
                    a.client.0,
                    a.vip.0,
                    9,
                    &L4::Udp(a.client.1, a.vip.1),
                    payload,
                );
                let (r, out) = run(&inp, |p| to_real(p, &c, &XmitOpts::default()));
                assert_eq!(r, Ok(a.rs.0));
                let mut want = view(&inp);
                want.set_addrs(a.lip.0, a.rs.0);
                want.set_ports(a.lip.1, a.rs.1);
                want.set_ttl(8);
                assert_eq!(view(&out), want);
                assert_checksums(&out, false);

                let inp = frame(a.rs.0, a.lip.0, 9, &L4::Udp(a.rs.1, a.lip.1), payload);
                let (r, out) = run(&inp, |p| to_client(p, &c, 1500));
                assert_eq!(r, Ok(a.client.0));
                let mut want = view(&inp);
                want.set_addrs(a.vip.0, a.client.0);
                want.set_ports(a.vip.1, a.client.1);
                want.set_ttl(8);
                assert_eq!(view(&out), want);
                assert_checksums(&out, false);
            }
        }
    }

    #[test]
    fn udp_v4_zero_checksum_stays_zero() {
        let a = v4();
        let c = fnat(&a, 17);
        let mut inp = frame(
            a.client.0,
            a.vip.0,
            64,
            &L4::Udp(a.client.1, a.vip.1),
            b"abc",
        );
        inp[14 + 20 + 6] = 0;
        inp[14 + 20 + 7] = 0;
        let (r, out) = run(&inp, |p| to_real(p, &c, &XmitOpts::default()));
        assert_eq!(r, Ok(a.rs.0));
        assert_eq!(&out[40..42], &[0, 0]);
        assert_checksums(&out, true);
        let mut want = view(&inp);
        want.set_addrs(a.lip.0, a.rs.0);
        want.set_ports(a.lip.1, a.rs.1);
        want.set_ttl(63);
        assert_eq!(view(&out), want);
    }

    #[test]
    fn udp_computed_zero_is_sent_as_ffff() {
        // Pick the payload word that makes the rewritten datagram's checksum
        // come out as zero; UDP must then carry 0xffff.
        for a in [v4(), v6()] {
            let c = fnat(&a, 17);
            let after = frame(a.lip.0, a.rs.0, 63, &L4::Udp(a.lip.1, a.rs.1), &[0, 0]);
            let l4 = &after[after.len() - 10..];
            let mut z = l4.to_vec();
            z[6] = 0;
            z[7] = 0;
            let s = fold(ones(&pseudo(a.lip.0, a.rs.0, 17, 10)) + ones(&z));
            let w = !s;
            let inp = frame(
                a.client.0,
                a.vip.0,
                64,
                &L4::Udp(a.client.1, a.vip.1),
                &w.to_be_bytes(),
            );
            let (r, out) = run(&inp, |p| to_real(p, &c, &XmitOpts::default()));
            assert!(r.is_ok());
            let n = out.len();
            assert_eq!(&out[n - 4..n - 2], &[0xff, 0xff]);
            assert_checksums(&out, false);
        }
    }

    #[test]
    fn ttl_one_is_reported_and_packet_untouched() {
        for a in [v4(), v6()] {
            let c = fnat(&a, 6);
            for ttl in [0u8, 1] {
                let inp = frame(
                    a.client.0,
                    a.vip.0,
                    ttl,
                    &tcp(a.client.1, a.vip.1, "S", &[]),
                    b"",
                );
                let (r, out) = run(&inp, |p| to_real(p, &c, &XmitOpts::default()));
                assert_eq!(r, Err(XmitError::TtlExceeded));
                assert_eq!(out, inp);
                let inp = frame(a.rs.0, a.lip.0, ttl, &tcp(a.rs.1, a.lip.1, "SA", &[]), b"");
                let (r, out) = run(&inp, |p| to_client(p, &c, 1500));
                assert_eq!(r, Err(XmitError::TtlExceeded));
                assert_eq!(out, inp);
            }
            let inp = frame(
                a.client.0,
                a.vip.0,
                2,
                &tcp(a.client.1, a.vip.1, "S", &[]),
                b"",
            );
            let (r, out) = run(&inp, |p| to_real(p, &c, &XmitOpts::default()));
            assert!(r.is_ok());
            assert_eq!(view(&out).ttl(), 1);
        }
    }

    #[test]
    fn mixed_families_are_unsupported() {
        let a = v4();
        let b = v6();
        // Client and VIP, or LIP and real server, of different families.
        let c = conn(FwdMethod::FullNat, 6, a.client, a.vip, b.rs, Some(a.lip));
        let inp = frame(
            a.client.0,
            a.vip.0,
            64,
            &tcp(a.client.1, a.vip.1, "S", &[]),
            b"",
        );
        let (r, out) = run(&inp, |p| to_real(p, &c, &XmitOpts::default()));
        assert_eq!(r, Err(XmitError::Drop(DropReason::Unsupported)));
        assert_eq!(out, inp);
        // A v6 packet for a v4 conn.
        let c = fnat(&a, 6);
        let inp = frame(b.client.0, b.vip.0, 64, &tcp(1, 2, "S", &[]), b"");
        let (r, _) = run(&inp, |p| to_real(p, &c, &XmitOpts::default()));
        assert_eq!(r, Err(XmitError::Drop(DropReason::Unsupported)));
        // UDP packet for a TCP conn.
        let inp = frame(a.client.0, a.vip.0, 64, &L4::Udp(a.client.1, a.vip.1), b"");
        let (r, _) = run(&inp, |p| to_real(p, &c, &XmitOpts::default()));
        assert_eq!(r, Err(XmitError::Drop(DropReason::Unsupported)));
    }

    fn toa_bytes(client: (IpAddr, u16)) -> Vec<u8> {
        let mut v = vec![254];
        match client.0 {
            IpAddr::V4(a) => {
                v.push(8);
                v.extend_from_slice(&client.1.to_be_bytes());
                v.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                v.push(20);
                v.extend_from_slice(&client.1.to_be_bytes());
                v.extend_from_slice(&a.octets());
            }
        }
        v
    }

    fn toa_opts() -> XmitOpts {
        XmitOpts {
            toa: true,
            ..XmitOpts::default()
        }
    }

    #[test]
    fn toa_on_syn_v4_v6() {
        for a in [v4(), v6()] {
            let c = fnat(&a, 6);
            for (opts, payload) in [
                (syn_opts(), &b""[..]),
                (vec![], &b""[..]),
                (syn_opts(), &b"tfo data"[..]),
            ] {
                let inp = frame(
                    a.client.0,
                    a.vip.0,
                    64,
                    &tcp(a.client.1, a.vip.1, "S", &opts),
                    payload,
                );
                let (r, out) = run(&inp, |p| to_real(p, &c, &toa_opts()));
                assert_eq!(r, Ok(a.rs.0));
                let toa = toa_bytes(a.client);
                assert_eq!(out.len(), inp.len() + toa.len());
                let mut want = view(&inp);
                want.set_addrs(a.lip.0, a.rs.0);
                want.set_ports(a.lip.1, a.rs.1);
                want.set_ttl(63);
                want.grow(toa.len() as u16);
                let t = want.tcp_mut();
                let mut raw = toa.clone();
                raw.extend_from_slice(t.options.as_slice());
                t.set_options_raw(&raw).unwrap();
                let got = view(&out);
                assert_eq!(got, want);
                let tl = 14 + if a.client.0.is_ipv4() { 20 } else { 40 };
                assert_eq!(&out[tl + 20..tl + 20 + toa.len()], &toa[..]);
                assert_eq!(
                    usize::from(out[tl + 12] >> 4) * 4,
                    20 + toa.len() + opts_len(&opts)
                );
                assert_checksums(&out, false);
            }
        }
    }

    fn opts_len(o: &[TcpOptionElement]) -> usize {
        let mut h = etherparse::TcpHeader::default();
        h.set_options(o).unwrap();
        h.options.len()
    }

    #[test]
    fn toa_only_on_syn_unless_asked_for_acks() {
        let a = v4();
        let c = fnat(&a, 6);
        for flags in ["SA", "A", "PA", "FA", "R"] {
            let inp = frame(
                a.client.0,
                a.vip.0,
                64,
                &tcp(a.client.1, a.vip.1, flags, &[]),
                b"",
            );
            let (r, out) = run(&inp, |p| to_real(p, &c, &toa_opts()));
            assert!(r.is_ok());
            assert_eq!(out.len(), inp.len(), "{flags}");
        }
        let opts = XmitOpts {
            toa: true,
            toa_on_ack: true,
            ..XmitOpts::default()
        };
        for (flags, grows) in [
            ("A", true),
            ("PA", true),
            ("FA", false),
            ("R", false),
            ("RA", false),
        ] {
            let inp = frame(
                a.client.0,
                a.vip.0,
                64,
                &tcp(a.client.1, a.vip.1, flags, &[]),
                b"data",
            );
            let (r, out) = run(&inp, |p| to_real(p, &c, &opts));
            assert!(r.is_ok());
            assert_eq!(out.len() > inp.len(), grows, "{flags}");
            assert_checksums(&out, false);
        }
    }

    #[test]
    fn toa_skipped_without_room() {
        for a in [v4(), v6()] {
            let c = fnat(&a, 6);
            // 40 bytes of options leave no room in the TCP header.
            let full = vec![
                TcpOptionElement::MaximumSegmentSize(1460),
                TcpOptionElement::SelectiveAcknowledgementPermitted,
                TcpOptionElement::Timestamp(1, 2),
                TcpOptionElement::WindowScale(7),
                TcpOptionElement::Noop,
                TcpOptionElement::Timestamp(3, 4),
                TcpOptionElement::Noop,
                TcpOptionElement::Noop,
                TcpOptionElement::Noop,
            ];
            // 32 bytes: room for IPv4's 8, not for IPv6's 20.
            let most = full[..6].to_vec();
            for (o, fits) in [(&full, false), (&most, a.client.0.is_ipv4())] {
                let inp = frame(
                    a.client.0,
                    a.vip.0,
                    64,
                    &tcp(a.client.1, a.vip.1, "S", o),
                    b"",
                );
                let (r, out) = run(&inp, |p| to_real(p, &c, &toa_opts()));
                assert_eq!(r, Ok(a.rs.0));
                assert_eq!(out.len() > inp.len(), fits);
                let mut want = view(&inp);
                want.set_addrs(a.lip.0, a.rs.0);
                want.set_ports(a.lip.1, a.rs.1);
                want.set_ttl(63);
                if !fits {
                    assert_eq!(view(&out), want);
                }
                assert_checksums(&out, false);
            }
            // Over the MTU once grown: sent without TOA.
            let inp = frame(
                a.client.0,
                a.vip.0,
                64,
                &tcp(a.client.1, a.vip.1, "S", &[]),
                &[7u8; 1000],
            );
            let ip_len = inp.len() - 14;
            let opts = XmitOpts {
                toa: true,
                mtu: (ip_len + 4) as u16,
                ..XmitOpts::default()
            };
            let (r, out) = run(&inp, |p| to_real(p, &c, &opts));
            assert!(r.is_ok());
            assert_eq!(out.len(), inp.len());
            assert_checksums(&out, false);
            // No tailroom: sent without TOA.
            let room = crate::packet::VecPacket::CAPACITY - crate::packet::VecPacket::HEADROOM;
            let hdr = frame(
                a.client.0,
                a.vip.0,
                64,
                &tcp(a.client.1, a.vip.1, "S", &[]),
                b"",
            )
            .len();
            let inp = frame(
                a.client.0,
                a.vip.0,
                64,
                &tcp(a.client.1, a.vip.1, "S", &[]),
                &vec![1u8; room - hdr - 4],
            );
            let opts = XmitOpts {
                toa: true,
                mtu: 9000,
                ..XmitOpts::default()
            };
            let (r, out) = run(&inp, |p| to_real(p, &c, &opts));
            assert!(r.is_ok());
            assert_eq!(out.len(), inp.len());
            assert_checksums(&out, false);
        }
    }

    #[test]
    fn toa_after_ethernet_padding() {
        let a = v4();
        let c = fnat(&a, 6);
        let mut inp = frame(
            a.client.0,
            a.vip.0,
            64,
            &tcp(a.client.1, a.vip.1, "S", &[]),
            b"",
        );
        assert_eq!(inp.len(), 54);
        inp.resize(60, 0xee);
        let (r, out) = run(&inp, |p| to_real(p, &c, &toa_opts()));
        assert!(r.is_ok());
        assert_eq!(out.len(), 62);
        assert_eq!(&out[54..62], &toa_bytes(a.client)[..]);
        assert_checksums(&out, false);
    }

    /// MSS values in raw TCP options, walked by kind and length.
    fn mss_values(o: &[u8]) -> Vec<u16> {
        let mut v = Vec::new();
        let mut i = 0;
        while i < o.len() {
            match o[i] {
                0 => break,
                1 => i += 1,
                k => {
                    let l = usize::from(o[i + 1]);
                    if k == 2 {
                        v.push(u16::from_be_bytes([o[i + 2], o[i + 3]]));
                    }
                    i += l;
                }
            }
        }
        v
    }

    #[test]
    fn mss_clamp() {
        for a in [v4(), v6()] {
            let c = fnat(&a, 6);
            // MSS first (even offset) and after a NOP (odd offset).
            let odd = vec![
                TcpOptionElement::Noop,
                TcpOptionElement::MaximumSegmentSize(1460),
                TcpOptionElement::WindowScale(7),
            ];
            for o in [syn_opts(), odd] {
                for (clamp, want_mss) in [(1400u16, 1400u16), (1460, 1460), (9000, 1460)] {
                    for toa in [false, true] {
                        let inp = frame(
                            a.client.0,
                            a.vip.0,
                            64,
                            &tcp(a.client.1, a.vip.1, "S", &o),
                            b"",
                        );
                        let opts = XmitOpts {
                            toa,
                            mss_clamp: Some(clamp),
                            ..XmitOpts::default()
                        };
                        let (r, out) = run(&inp, |p| to_real(p, &c, &opts));
                        assert!(r.is_ok());
                        assert_checksums(&out, false);
                        let v = view(&out);
                        let t = match &v.transport {
                            Some(etherparse::TransportHeader::Tcp(t)) => t.clone(),
                            _ => panic!(),
                        };
                        assert_eq!(mss_values(t.options.as_slice()), vec![want_mss]);
                    }
                }
            }
            // Not a SYN: untouched.
            let o = vec![TcpOptionElement::MaximumSegmentSize(1460)];
            let inp = frame(
                a.client.0,
                a.vip.0,
                64,
                &tcp(a.client.1, a.vip.1, "A", &o),
                b"",
            );
            let opts = XmitOpts {
                mss_clamp: Some(1000),
                ..XmitOpts::default()
            };
            let (_, out) = run(&inp, |p| to_real(p, &c, &opts));
            let mut want = view(&inp);
            want.set_addrs(a.lip.0, a.rs.0);
            want.set_ports(a.lip.1, a.rs.1);
            want.set_ttl(63);
            assert_eq!(view(&out), want);
        }
    }
}
