//! NAT (masquerade, `-m`): the destination VIP:vport becomes RIP:rport on the
//! way in and the reply's source RIP:rport becomes VIP:vport on the way out.
//! The real servers route their replies through rvs.

use std::net::IpAddr;

use super::{
    check_translatable, clamp_mss, translate, trim_padding, Ip, XmitError, XmitOpts, PROTO_TCP,
};
use crate::counters::DropReason;
use crate::ipvs::ConnRef;
use crate::packet::Packet;

/// Client → real server: destination VIP:vport becomes RIP:rport (the
/// kernel's tcp/udp/sctp_dnat_handler), TTL/hop limit minus one, and a
/// SYN's MSS lowered to `opts.mss_clamp`. SCTP's CRC32c follows the port
/// change (`sctp`).
pub fn to_real<P: Packet>(
    pkt: &mut P,
    conn: &ConnRef<'_>,
    opts: &XmitOpts,
) -> Result<IpAddr, XmitError> {
    let rs = conn.daddr();
    if !one_family(conn) {
        return Err(XmitError::Drop(DropReason::Unsupported));
    }
    let ip = check_translatable(pkt.data(), opts.parsed, conn, rs.is_ipv6())?;
    super::mtu::fit(pkt.data(), &ip, opts.mtu, 0)?;
    trim_padding(pkt, &ip);
    let b = pkt.data_mut();
    // Only a SYN carries the MSS option (clamp_mss's own test, made first).
    let syn = ip.frag.is_none()
        && b.get(ip.l4 + 13)
            .is_some_and(|f| f & crate::wire::tcp::SYN != 0);
    if let (Some(clamp), PROTO_TCP, true) = (opts.mss_clamp, ip.proto, syn) {
        clamp_mss(b, &ip, clamp);
    }
    translate(b, &ip, None, Some((rs, conn.dport())));
    Ok(rs)
}

/// Real server → client: source RIP:rport becomes VIP:vport (the kernel's
/// tcp/udp/sctp_snat_handler), TTL/hop limit minus one; `mtu` is the
/// egress MTU towards the client ([`super::mtu`]).
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
    if !one_family(conn) {
        return Err(XmitError::Drop(DropReason::Unsupported));
    }
    let ip = check_translatable(pkt.data(), parsed, conn, client.is_ipv6())?;
    super::mtu::fit(pkt.data(), &ip, mtu, 0)?;
    trim_padding(pkt, &ip);
    let b = pkt.data_mut();
    translate(b, &ip, Some((conn.vaddr(), conn.vport())), None);
    Ok(client)
}

fn one_family(conn: &ConnRef<'_>) -> bool {
    let v6 = conn.caddr().is_ipv6();
    conn.vaddr().is_ipv6() == v6 && conn.daddr().is_ipv6() == v6
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::FwdMethod;
    use crate::xmit::testkit::*;
    use crate::xmit::XmitOpts;

    fn masq(a: &Addrs, proto: u8) -> HeldConn {
        conn(FwdMethod::Masq, proto, a.client, a.vip, a.rs, None)
    }

    fn segs(sport: u16, dport: u16) -> Vec<(L4, Vec<u8>)> {
        let mut v = Vec::new();
        for f in ["S", "SA", "A", "PA", "FA", "R", "RA"] {
            let o = if f.contains('S') { syn_opts() } else { vec![] };
            let p = if f.contains('P') {
                b"payload".to_vec()
            } else {
                vec![]
            };
            v.push((tcp(sport, dport, f, &o), p));
        }
        v.push((L4::Udp(sport, dport), b"udp".to_vec()));
        v.push((L4::Udp(sport, dport), vec![]));
        v
    }

    #[test]
    fn dnat_and_snat_v4_v6() {
        for a in [v4(), v6()] {
            for (l4, payload) in segs(a.client.1, a.vip.1) {
                let proto = if matches!(l4, L4::Tcp(_)) { 6 } else { 17 };
                let c = masq(&a, proto);
                let inp = frame(a.client.0, a.vip.0, 64, &l4, &payload);
                let (r, out) = run(&inp, |p| to_real(p, &c, &XmitOpts::default()));
                assert_eq!(r, Ok(a.rs.0));
                let mut want = view(&inp);
                want.set_addrs(a.client.0, a.rs.0);
                want.set_ports(a.client.1, a.rs.1);
                want.set_ttl(63);
                assert_eq!(view(&out), want);
                assert_checksums(&out, false);
            }
            for (l4, payload) in segs(a.rs.1, a.client.1) {
                let proto = if matches!(l4, L4::Tcp(_)) { 6 } else { 17 };
                let c = masq(&a, proto);
                let inp = frame(a.rs.0, a.client.0, 64, &l4, &payload);
                let (r, out) = run(&inp, |p| to_client(p, &c, 1500));
                assert_eq!(r, Ok(a.client.0));
                let mut want = view(&inp);
                want.set_addrs(a.vip.0, a.client.0);
                want.set_ports(a.vip.1, a.client.1);
                want.set_ttl(63);
                assert_eq!(view(&out), want);
                assert_checksums(&out, false);
            }
        }
    }

    #[test]
    fn udp_v4_zero_checksum_and_ttl() {
        let a = v4();
        let c = masq(&a, 17);
        let mut inp = frame(a.rs.0, a.client.0, 64, &L4::Udp(a.rs.1, a.client.1), b"q");
        inp[40] = 0;
        inp[41] = 0;
        let (r, out) = run(&inp, |p| to_client(p, &c, 1500));
        assert!(r.is_ok());
        assert_eq!(&out[40..42], &[0, 0]);
        assert_checksums(&out, true);
        let inp = frame(a.rs.0, a.client.0, 1, &L4::Udp(a.rs.1, a.client.1), b"q");
        let (r, out) = run(&inp, |p| to_client(p, &c, 1500));
        assert_eq!(r, Err(XmitError::TtlExceeded));
        assert_eq!(out, inp);
        let inp = frame(a.client.0, a.vip.0, 1, &L4::Udp(a.client.1, a.vip.1), b"q");
        let (r, out) = run(&inp, |p| to_real(p, &c, &XmitOpts::default()));
        assert_eq!(r, Err(XmitError::TtlExceeded));
        assert_eq!(out, inp);
    }

    #[test]
    fn mss_clamp_on_syn() {
        let a = v6();
        let c = masq(&a, 6);
        let inp = frame(
            a.client.0,
            a.vip.0,
            64,
            &tcp(a.client.1, a.vip.1, "S", &syn_opts()),
            b"",
        );
        let opts = XmitOpts {
            mss_clamp: Some(1200),
            ..XmitOpts::default()
        };
        let (r, out) = run(&inp, |p| to_real(p, &c, &opts));
        assert!(r.is_ok());
        assert_checksums(&out, false);
        // MSS is the first option: kind 2, length 4, value.
        let o = 14 + 40 + 20;
        assert_eq!(&out[o..o + 4], &[2, 4, 0x04, 0xb0]);
    }
}
