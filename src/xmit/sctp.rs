//! SCTP under NAT and FULLNAT: the CRC32c covers the SCTP packet alone,
//! so an address rewrite leaves it right and only a port change moves it
//! (the kernel's sctp_snat_handler / sctp_dnat_handler recompute it over the
//! whole packet). rvs updates it from the port change alone
//! (`crc32c_ports_update`, O(log length), no pass over the packet), the way
//! TCP and UDP checksums are updated by RFC 1624: nothing is verified on
//! the fast path, and a packet that came with a wrong CRC leaves with one
//! wrong by as much, for the receiver to drop.

use super::Ip;
use crate::wire::sctp::{crc32c_ports_update, CHECKSUM_AT};

/// The ports of the SCTP packet at `ip` (checked by `check_l4`), as bytes,
/// to hand to [`update_crc`] after the rewrite.
pub(crate) fn ports(b: &[u8], ip: &Ip) -> [u8; 4] {
    [b[ip.l4], b[ip.l4 + 1], b[ip.l4 + 2], b[ip.l4 + 3]]
}

/// Moves the CRC32c of the SCTP packet at `ip` along with its ports, which
/// were `old` before the rewrite.
pub(crate) fn update_crc(b: &mut [u8], ip: &Ip, old: [u8; 4]) {
    let new = ports(b, ip);
    let at = ip.l4 + CHECKSUM_AT;
    let crc = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let crc = crc32c_ports_update(crc, old, new, ip.end - ip.l4);
    b[at..at + 4].copy_from_slice(&crc.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use crate::counters::DropReason;
    use crate::ipvs::FwdMethod;
    use crate::xmit::testkit::*;
    use crate::xmit::{dr, fullnat, nat, tun, XmitError, XmitOpts};

    /// CRC32c bit by bit from the polynomial, independent of wire's tables.
    fn crc_bitwise(data: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    (c >> 1) ^ 0x82f6_3b78
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    /// An SCTP packet: ports, tag, a right CRC, then `chunks` as given.
    fn sctp(sport: u16, dport: u16, chunks: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&0x0102_0304u32.to_be_bytes());
        p.extend_from_slice(&[0; 4]);
        p.extend_from_slice(chunks);
        let c = crc_bitwise(&p);
        p[8..12].copy_from_slice(&c.to_le_bytes());
        p
    }

    /// DATA with 7 bytes of user data (length 23, padded to 24), and an
    /// INIT of 20 bytes.
    const DATA: [u8; 24] = [
        0, 3, 0, 23, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, b'p', b'a', b'y', b'l', b'o', b'a', b'd',
        0,
    ];
    const INIT: [u8; 20] = [
        1, 0, 0, 20, 0x11, 0x22, 0x33, 0x44, 0, 1, 0, 0, 0, 10, 0, 10, 0, 0, 0, 1,
    ];

    /// The SCTP packet of a frame, its ports, and whether its CRC verifies.
    fn l4(frame: &[u8]) -> (&[u8], (u16, u16), bool) {
        let off = if frame[14] >> 4 == 4 { 34 } else { 54 };
        let p = &frame[off..];
        let mut z = p.to_vec();
        z[8..12].fill(0);
        let ok = crc_bitwise(&z).to_le_bytes() == p[8..12];
        (
            p,
            (
                u16::from_be_bytes([p[0], p[1]]),
                u16::from_be_bytes([p[2], p[3]]),
            ),
            ok,
        )
    }

    fn addrs(frame: &[u8]) -> (IpAddr, IpAddr) {
        let v = view(frame);
        (v.src(), v.dst())
    }

    fn mk(fwd: FwdMethod, a: &Addrs, rs: (IpAddr, u16)) -> HeldConn {
        let local = (fwd == FwdMethod::FullNat).then_some(a.lip);
        conn(fwd, 132, a.client, a.vip, rs, local)
    }

    #[test]
    fn fullnat_rewrites_ports_and_recomputes_the_crc_both_ways() {
        for a in [v4(), v6()] {
            let c = mk(FwdMethod::FullNat, &a, a.rs);
            for chunks in [&INIT[..], &DATA[..]] {
                let inp = ip_frame(
                    a.client.0,
                    a.vip.0,
                    64,
                    132,
                    &sctp(a.client.1, a.vip.1, chunks),
                );
                let (r, out) = run(&inp, |p| fullnat::to_real(p, &c, &XmitOpts::default()));
                assert_eq!(r, Ok(a.rs.0));
                assert_eq!(addrs(&out), (a.lip.0, a.rs.0));
                let (body, ports, ok) = l4(&out);
                assert_eq!(ports, (a.lip.1, a.rs.1));
                assert!(ok, "CRC32c after the rewrite");
                assert_eq!(&body[4..8], &[1, 2, 3, 4], "verification tag kept");
                assert_eq!(&body[12..], chunks);
                assert_checksums(&out, false);

                let back = ip_frame(a.rs.0, a.lip.0, 64, 132, &sctp(a.rs.1, a.lip.1, chunks));
                let (r, out) = run(&back, |p| fullnat::to_client(p, &c, 1500));
                assert_eq!(r, Ok(a.client.0));
                assert_eq!(addrs(&out), (a.vip.0, a.client.0));
                let (_, ports, ok) = l4(&out);
                assert_eq!(ports, (a.vip.1, a.client.1));
                assert!(ok);
                assert_checksums(&out, false);
            }
        }
    }

    #[test]
    fn nat_recomputes_only_when_the_port_changes() {
        for a in [v4(), v6()] {
            // Port mapping (vport 80/443 -> rport 8080/8443).
            let c = mk(FwdMethod::Masq, &a, a.rs);
            let inp = ip_frame(
                a.client.0,
                a.vip.0,
                64,
                132,
                &sctp(a.client.1, a.vip.1, &DATA),
            );
            let (r, out) = run(&inp, |p| nat::to_real(p, &c, &XmitOpts::default()));
            assert_eq!(r, Ok(a.rs.0));
            assert_eq!(addrs(&out), (a.client.0, a.rs.0));
            let (_, ports, ok) = l4(&out);
            assert_eq!(ports, (a.client.1, a.rs.1));
            assert!(ok);
            let back = ip_frame(
                a.rs.0,
                a.client.0,
                64,
                132,
                &sctp(a.rs.1, a.client.1, &DATA),
            );
            let (r, out) = run(&back, |p| nat::to_client(p, &c, 1500));
            assert_eq!(r, Ok(a.client.0));
            assert_eq!(addrs(&out), (a.vip.0, a.client.0));
            let (_, ports, ok) = l4(&out);
            assert_eq!(ports, (a.vip.1, a.client.1));
            assert!(ok);
            assert_checksums(&out, false);

            // Same port: an address-only rewrite leaves the SCTP packet
            // byte for byte, even a CRC that does not verify.
            let c = mk(FwdMethod::Masq, &a, (a.rs.0, a.vip.1));
            let mut body = sctp(a.client.1, a.vip.1, &DATA);
            body[8] ^= 0xff;
            let inp = ip_frame(a.client.0, a.vip.0, 64, 132, &body);
            let (r, out) = run(&inp, |p| nat::to_real(p, &c, &XmitOpts::default()));
            assert_eq!(r, Ok(a.rs.0));
            assert_eq!(addrs(&out), (a.client.0, a.rs.0));
            assert_eq!(l4(&out).0, &body[..]);
            assert_checksums(&out, false);
        }
    }

    #[test]
    fn a_wrong_crc_stays_wrong_by_as_much() {
        for a in [v4(), v6()] {
            for fwd in [FwdMethod::FullNat, FwdMethod::Masq] {
                let c = mk(fwd, &a, a.rs);
                let mut body = sctp(a.client.1, a.vip.1, &DATA);
                body[20] ^= 0x01; // a bit of the DATA chunk flipped in transit
                let inp = ip_frame(a.client.0, a.vip.0, 64, 132, &body);
                let (r, out) = run(&inp, |p| crate::xmit::to_real(p, &c, &XmitOpts::default()));
                assert_eq!(r, Ok(a.rs.0), "{fwd:?}");
                let (p, _, ok) = l4(&out);
                assert!(!ok, "{fwd:?}: the corruption must stay visible");
                // Right CRC of what went in and of what came out, against
                // what each carries: the same error.
                let err_in = {
                    let mut z = body.clone();
                    z[8..12].fill(0);
                    crc_bitwise(&z) ^ u32::from_le_bytes([body[8], body[9], body[10], body[11]])
                };
                let mut z = p.to_vec();
                z[8..12].fill(0);
                let err_out = crc_bitwise(&z) ^ u32::from_le_bytes([p[8], p[9], p[10], p[11]]);
                assert_eq!(err_out, err_in, "{fwd:?}");
            }
        }
    }

    #[test]
    fn malformed_sctp_is_a_bad_header_in_the_translating_modes() {
        let a = v4();
        let bad: [Vec<u8>; 4] = [
            // Common header only.
            sctp(a.client.1, a.vip.1, &[]),
            // Chunk length 2.
            sctp(a.client.1, a.vip.1, &[0, 0, 0, 2]),
            // Chunk length past the end.
            sctp(a.client.1, a.vip.1, &[0, 0, 0, 40, 0, 0, 0, 0]),
            // Three stray bytes after a chunk.
            sctp(a.client.1, a.vip.1, &[3, 0, 0, 4, 9, 9, 9]),
        ];
        for body in bad {
            let inp = ip_frame(a.client.0, a.vip.0, 64, 132, &body);
            for fwd in [FwdMethod::FullNat, FwdMethod::Masq] {
                let c = mk(fwd, &a, a.rs);
                let (r, out) = run(&inp, |p| crate::xmit::to_real(p, &c, &XmitOpts::default()));
                assert_eq!(r, Err(XmitError::Drop(DropReason::BadHeader)), "{body:?}");
                assert_eq!(out, inp);
            }
        }
    }

    #[test]
    fn an_icmp_error_about_a_fullnat_sctp_conn_reaches_the_client() {
        let a = v4();
        let c = mk(FwdMethod::FullNat, &a, a.rs);
        let body = sctp(a.client.1, a.vip.1, &INIT);
        let p0 = ip_frame(a.client.0, a.vip.0, 64, 132, &body);
        let (_, p1) = run(&p0, |p| fullnat::to_real(p, &c, &XmitOpts::default()));
        // Port unreachable from the real server, quoting what it got.
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&p1[14..]);
        let sum = !fold(ones(&icmp));
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let e = ip_frame(a.rs.0, a.lip.0, 64, 1, &icmp);
        let q = crate::xmit::icmp::inner_tuple(&e).unwrap();
        assert_eq!(
            (
                q.tuple.proto,
                q.tuple.saddr,
                q.tuple.sport,
                q.tuple.daddr,
                q.tuple.dport
            ),
            (132, a.rs.0, a.rs.1, a.lip.0, a.lip.1)
        );
        let (r, out) = run(&e, |p| crate::xmit::icmp::to_client(p, &c));
        assert_eq!(r, Ok(a.client.0));
        assert_checksums(&out, false);
        assert_eq!(addrs(&out), (a.vip.0, a.client.0));
        // The quote is the client's packet again (TTL 63), but for the
        // CRC, which an ICMP relay leaves as it is (as the kernel does).
        let want = ip_frame(a.client.0, a.vip.0, 63, 132, &body);
        let quote = &out[14 + 20 + 8..];
        assert_eq!(quote.len(), want.len() - 14);
        assert_eq!(&quote[..20 + 8], &want[14..14 + 20 + 8]);
        assert_eq!(&quote[20 + 12..], &want[14 + 20 + 12..]);
    }

    #[test]
    fn nat64_refuses_sctp_untouched() {
        let (a4, a6) = (v4(), v6());
        let c = conn(
            FwdMethod::FullNat,
            132,
            a6.client,
            a6.vip,
            a4.rs,
            Some(a4.lip),
        );
        let inp = ip_frame(
            a6.client.0,
            a6.vip.0,
            64,
            132,
            &sctp(a6.client.1, a6.vip.1, &INIT),
        );
        let (r, out) = run(&inp, |p| fullnat::to_real(p, &c, &XmitOpts::default()));
        assert_eq!(r, Err(XmitError::Drop(DropReason::Unsupported)));
        assert_eq!(out, inp);
        let back = ip_frame(a4.rs.0, a4.lip.0, 64, 132, &sctp(a4.rs.1, a4.lip.1, &INIT));
        let (r, out) = run(&back, |p| crate::xmit::to_client(p, &c));
        assert_eq!(r, Err(XmitError::Drop(DropReason::Unsupported)));
        assert_eq!(out, back);
    }

    #[test]
    fn dr_and_tun_carry_sctp_unchanged() {
        for a in [v4(), v6()] {
            let body = sctp(a.client.1, a.vip.1, &INIT);
            let inp = ip_frame(a.client.0, a.vip.0, 64, 132, &body);
            let c = mk(FwdMethod::DirectRoute, &a, (a.rs.0, a.vip.1));
            let (r, out) = run(&inp, |p| dr::to_real(p, &c, 1500));
            assert_eq!(r, Ok(a.rs.0));
            assert_eq!(addrs(&out), (a.client.0, a.vip.0));
            let (b, _, ok) = l4(&out);
            assert_eq!(b, &body[..]);
            assert!(ok);
            assert_checksums(&out, false);

            let c = mk(FwdMethod::Tunnel, &a, (a.rs.0, a.vip.1));
            let src = a.lip.0;
            let (r, out) = run(&inp, |p| tun::to_real(p, &c, src, 1500));
            assert_eq!(r, Ok(a.rs.0));
            // The inner IP header (as long as the outer one: one family),
            // then the SCTP packet as it came.
            let hl = if a.client.0.is_ipv4() { 20 } else { 40 };
            assert_eq!(&out[14 + 2 * hl..], &body[..]);
        }
    }
}
