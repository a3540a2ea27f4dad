//! IPv4 options, IPv6 extension headers and fragments through every mode.
//! Frames start from the testkit's (etherparse-built) ones and are given
//! options, extension headers or cut into fragments here byte by byte; the
//! results are checked from the raw bytes with the testkit's own sums,
//! fragments after putting the datagram back together by hand.

use std::net::IpAddr;

use super::testkit::*;
use super::*;
use crate::ipvs::FwdMethod;
use crate::packet::VecPacket;

/// 8 bytes of IPv4 options: a 4-byte router alert (RFC 2113) and a
/// no-op padded with end-of-list.
const V4_OPTS: [u8; 8] = [0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00];

fn fix_v4_csum(f: &mut [u8]) {
    let hl = usize::from(f[14] & 0x0f) * 4;
    f[24] = 0;
    f[25] = 0;
    let c = !fold(ones(&f[14..14 + hl]));
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

/// `f` (a testkit frame) with IPv4 options or an IPv6 destination options
/// header (8 bytes: PadN of 4) between the fixed header and the L4 header.
fn with_opts(f: &[u8]) -> Vec<u8> {
    let mut v = f[..14].to_vec();
    if f[14] >> 4 == 4 {
        v.extend_from_slice(&f[14..34]);
        v.extend_from_slice(&V4_OPTS);
        v.extend_from_slice(&f[34..]);
        v[14] = 0x47;
        let tl = u16::from_be_bytes([v[16], v[17]]) + 8;
        v[16..18].copy_from_slice(&tl.to_be_bytes());
        fix_v4_csum(&mut v);
    } else {
        v.extend_from_slice(&f[14..54]);
        let proto = v[20];
        v[20] = 60;
        let pl = u16::from_be_bytes([v[18], v[19]]) + 8;
        v[18..20].copy_from_slice(&pl.to_be_bytes());
        v.extend_from_slice(&[proto, 0, 1, 2, 0, 0, 0, 0]);
        v.extend_from_slice(&f[54..]);
    }
    v
}

/// Cuts a testkit frame's datagram into fragments whose data starts at
/// each of `cuts` (multiples of 8), as a sender's IP layer does: IPv4
/// copies the header and sets MF / offset; IPv6 adds a fragment header
/// (ident 0x0badf00d).
fn fragments(f: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let v6 = f[14] >> 4 == 6;
    let hdr = if v6 { 40 } else { 20 };
    let data = &f[14 + hdr..];
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(data.len());
    let mut out = Vec::new();
    for w in bounds.windows(2) {
        let (lo, hi) = (w[0], w[1]);
        let more = hi < data.len();
        let mut v = f[..14 + hdr].to_vec();
        if v6 {
            let proto = v[20];
            v[20] = 44;
            v[18..20].copy_from_slice(&((8 + hi - lo) as u16).to_be_bytes());
            let off = (lo as u16) | u16::from(more);
            v.extend_from_slice(&[proto, 0]);
            v.extend_from_slice(&off.to_be_bytes());
            v.extend_from_slice(&0x0bad_f00du32.to_be_bytes());
        } else {
            v[16..18].copy_from_slice(&((20 + hi - lo) as u16).to_be_bytes());
            let w = ((lo / 8) as u16) | if more { 0x2000 } else { 0 };
            v[20..22].copy_from_slice(&w.to_be_bytes());
            fix_v4_csum(&mut v);
        }
        v.extend_from_slice(&data[lo..hi]);
        out.push(v);
    }
    out
}

/// What a receiver's reassembly gives from fragments built by
/// `fragments` (after a rewrite): the addresses of the first fragment and
/// the concatenated data. Checks every fragment's IPv4 header checksum and
/// that all fragments carry the same addresses.
fn reassemble(frags: &[Vec<u8>]) -> (IpAddr, IpAddr, Vec<u8>) {
    let mut data = Vec::new();
    let mut addrs = None;
    for f in frags {
        let (a, hl): ((IpAddr, IpAddr), usize) = if f[14] >> 4 == 6 {
            assert_eq!(f[20], 44, "fragment header kept");
            ((ipv6_at(f, 22).into(), ipv6_at(f, 38).into()), 48)
        } else {
            assert_eq!(fold(ones(&f[14..34])), 0xffff, "IPv4 header checksum");
            ((ipv4_at(f, 26).into(), ipv4_at(f, 30).into()), 20)
        };
        assert!(addrs.is_none() || addrs == Some(a), "fragments disagree");
        addrs = Some(a);
        data.extend_from_slice(&f[14 + hl..]);
    }
    let (s, d) = addrs.unwrap();
    (s, d, data)
}

fn l4_ok(src: IpAddr, dst: IpAddr, proto: u8, l4: &[u8]) -> bool {
    fold(ones(&pseudo(src, dst, proto, l4.len())) + ones(l4)) == 0xffff
}

fn ports(l4: &[u8]) -> (u16, u16) {
    (
        u16::from_be_bytes([l4[0], l4[1]]),
        u16::from_be_bytes([l4[2], l4[3]]),
    )
}

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

fn masq(a: &Addrs, proto: u8) -> HeldConn {
    conn(FwdMethod::Masq, proto, a.client, a.vip, a.rs, None)
}

/// Where the options or the extension header of a `with_opts` frame are.
fn opts_range(f: &[u8]) -> std::ops::Range<usize> {
    if f[14] >> 4 == 4 {
        34..42
    } else {
        54..62
    }
}

/// The offset of the L4 header in a frame from `with_opts`.
fn opts_l4(f: &[u8]) -> usize {
    if f[14] >> 4 == 4 {
        14 + 28
    } else {
        14 + 48
    }
}

fn opts_addrs(f: &[u8]) -> (IpAddr, IpAddr) {
    if f[14] >> 4 == 4 {
        (ipv4_at(f, 26).into(), ipv4_at(f, 30).into())
    } else {
        (ipv6_at(f, 22).into(), ipv6_at(f, 38).into())
    }
}

#[test]
fn options_and_extension_headers_go_through_fullnat_and_nat_both_ways() {
    for a in [v4(), v6()] {
        for (proto, l4, payload) in [
            (6, tcp(a.client.1, a.vip.1, "S", &syn_opts()), &b""[..]),
            (6, tcp(a.client.1, a.vip.1, "PA", &[]), &b"GET /"[..]),
            (17, L4::Udp(a.client.1, a.vip.1), &b"query"[..]),
        ] {
            let inp = with_opts(&frame(a.client.0, a.vip.0, 64, &l4, payload));
            let opts_in = inp[opts_range(&inp)].to_vec();
            for (c, src) in [(fnat(&a, proto), a.lip), (masq(&a, proto), a.client)] {
                let (r, out) = run(&inp, |p| to_real(p, &c, &XmitOpts::default()));
                assert_eq!(r, Ok(a.rs.0), "{:?}", c.fwd());
                assert_eq!(out.len(), inp.len());
                let l4 = opts_l4(&out);
                assert_eq!(&out[opts_range(&out)], &opts_in[..], "options kept");
                assert_eq!(opts_addrs(&out), (src.0, a.rs.0));
                assert_eq!(ports(&out[l4..]), (src.1, a.rs.1));
                assert!(l4_ok(src.0, a.rs.0, proto, &out[l4..]));
                if a.rs.0.is_ipv4() {
                    assert_eq!(fold(ones(&out[14..42])), 0xffff);
                    assert_eq!(out[22], 63);
                } else {
                    assert_eq!(out[21], 63);
                }
            }
            // The reply, real server to the FULLNAT local address.
            let c = fnat(&a, proto);
            let rl4 = match &l4 {
                L4::Tcp(_) => tcp(a.rs.1, a.lip.1, "SA", &syn_opts()),
                L4::Udp(..) => L4::Udp(a.rs.1, a.lip.1),
            };
            let inp = with_opts(&frame(a.rs.0, a.lip.0, 64, &rl4, payload));
            let (r, out) = run(&inp, |p| to_client(p, &c));
            assert_eq!(r, Ok(a.client.0));
            let l4 = opts_l4(&out);
            assert_eq!(opts_addrs(&out), (a.vip.0, a.client.0));
            assert_eq!(ports(&out[l4..]), (a.vip.1, a.client.1));
            assert!(l4_ok(a.vip.0, a.client.0, proto, &out[l4..]));
        }
    }
}

#[test]
fn options_go_through_dr_and_tun_untouched_but_the_ttl() {
    for a in [v4(), v6()] {
        let inp = with_opts(&frame(
            a.client.0,
            a.vip.0,
            64,
            &tcp(a.client.1, a.vip.1, "S", &syn_opts()),
            b"",
        ));
        let dr = conn(FwdMethod::DirectRoute, 6, a.client, a.vip, a.rs, None);
        let (r, out) = run(&inp, |p| to_real(p, &dr, &XmitOpts::default()));
        assert_eq!(r, Ok(a.rs.0));
        let mut want = inp.clone();
        if a.rs.0.is_ipv4() {
            want[22] = 63;
            fix_v4_csum(&mut want);
        } else {
            want[21] = 63;
        }
        assert_eq!(out, want);
        let tun = conn(FwdMethod::Tunnel, 6, a.client, a.vip, a.rs, None);
        let src = if a.rs.0.is_ipv4() {
            ip("10.0.0.1")
        } else {
            ip("fd00::1")
        };
        let opts = XmitOpts {
            tunnel_src: Some(src),
            ..XmitOpts::default()
        };
        let (r, out) = run(&inp, |p| to_real(p, &tun, &opts));
        assert_eq!(r, Ok(a.rs.0));
        let outer = if a.rs.0.is_ipv4() { 20 } else { 40 };
        assert_eq!(&out[14 + outer..], &want[14..]);
    }
}

#[test]
fn toa_fits_after_ipv4_options() {
    let a = v4();
    let c = fnat(&a, 6);
    let inp = with_opts(&frame(
        a.client.0,
        a.vip.0,
        64,
        &tcp(a.client.1, a.vip.1, "S", &syn_opts()),
        b"",
    ));
    let opts = XmitOpts {
        toa: true,
        ..XmitOpts::default()
    };
    let (r, out) = run(&inp, |p| to_real(p, &c, &opts));
    assert_eq!(r, Ok(a.rs.0));
    assert_eq!(out.len(), inp.len() + 8);
    assert_eq!(&out[34..42], &V4_OPTS);
    assert_eq!(
        u16::from_be_bytes([out[16], out[17]]) as usize,
        out.len() - 14
    );
    assert_eq!(fold(ones(&out[14..42])), 0xffff);
    // Data offset: 20 + 20 bytes of SYN options + 8 of TOA = 48.
    assert_eq!(out[42 + 12] >> 4, 12);
    // Kind 254, length 8, client port 40000 (0x9c40), 198.51.100.7.
    assert_eq!(&out[62..70], &[254, 8, 0x9c, 0x40, 198, 51, 100, 7]);
    assert!(l4_ok(a.lip.0, a.rs.0, 6, &out[42..]));
}

#[test]
fn udp_fragments_through_fullnat_and_nat_both_ways() {
    let payload: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    for a in [v4(), v6()] {
        // Client → VIP, cut after 1480 and 2960 bytes of the datagram.
        let whole = frame(
            a.client.0,
            a.vip.0,
            64,
            &L4::Udp(a.client.1, a.vip.1),
            &payload,
        );
        let frags = fragments(&whole, &[1480, 2960]);
        assert_eq!(frags.len(), 3);
        for (c, src) in [(fnat(&a, 17), a.lip), (masq(&a, 17), a.client)] {
            let mut outs = Vec::new();
            // IPv6's fragments of 1480 data bytes are 1528 long.
            let opts = XmitOpts {
                mtu: 9000,
                ..XmitOpts::default()
            };
            for f in &frags {
                let (r, out) = run(f, |p| to_real(p, &c, &opts));
                assert_eq!(r, Ok(a.rs.0), "{:?}", c.fwd());
                assert_eq!(out.len(), f.len());
                outs.push(out);
            }
            let (s, d, dg) = reassemble(&outs);
            assert_eq!((s, d), (src.0, a.rs.0));
            assert_eq!(ports(&dg), (src.1, a.rs.1));
            assert_eq!(&dg[8..], &payload[..]);
            assert!(l4_ok(s, d, 17, &dg), "{:?} datagram checksum", c.fwd());
        }
        // The reply, fragmented by the real server.
        for (c, to) in [
            (fnat(&a, 17), (a.rs, a.lip)),
            (masq(&a, 17), (a.rs, a.client)),
        ] {
            let whole = frame(to.0 .0, to.1 .0, 64, &L4::Udp(to.0 .1, to.1 .1), &payload);
            let mut outs = Vec::new();
            for f in fragments(&whole, &[1232]) {
                let (r, out) = run(&f, |p| to_client(p, &c));
                assert_eq!(r, Ok(a.client.0));
                outs.push(out);
            }
            let (s, d, dg) = reassemble(&outs);
            assert_eq!((s, d), (a.vip.0, a.client.0));
            assert_eq!(ports(&dg), (a.vip.1, a.client.1));
            assert_eq!(&dg[8..], &payload[..]);
            assert!(l4_ok(s, d, 17, &dg));
        }
    }
}

#[test]
fn a_fragmented_syn_gets_no_toa_but_its_rewrite() {
    for a in [v4(), v6()] {
        let c = fnat(&a, 6);
        let whole = frame(
            a.client.0,
            a.vip.0,
            64,
            &tcp(a.client.1, a.vip.1, "S", &syn_opts()),
            &[7u8; 64],
        );
        let opts = XmitOpts {
            toa: true,
            mss_clamp: Some(536),
            ..XmitOpts::default()
        };
        let mut outs = Vec::new();
        for f in fragments(&whole, &[48]) {
            let (r, out) = run(&f, |p| to_real(p, &c, &opts));
            assert_eq!(r, Ok(a.rs.0));
            assert_eq!(out.len(), f.len(), "no TOA");
            outs.push(out);
        }
        let (s, d, dg) = reassemble(&outs);
        assert_eq!((s, d), (a.lip.0, a.rs.0));
        assert_eq!(ports(&dg), (a.lip.1, a.rs.1));
        // The MSS option (kind 2 at the options' start) is left as sent.
        assert_eq!(&dg[20..24], &[2, 4, 0x05, 0xb4]);
        assert!(l4_ok(s, d, 6, &dg));
    }
}

#[test]
fn fragments_go_through_dr_and_tun_whole() {
    for a in [v4(), v6()] {
        let whole = frame(
            a.client.0,
            a.vip.0,
            64,
            &L4::Udp(a.client.1, a.vip.1),
            &[1u8; 100],
        );
        let dr = conn(FwdMethod::DirectRoute, 17, a.client, a.vip, a.rs, None);
        let tun = conn(FwdMethod::Tunnel, 17, a.client, a.vip, a.rs, None);
        let opts = XmitOpts {
            tunnel_src: Some(if a.rs.0.is_ipv4() {
                ip("10.0.0.1")
            } else {
                ip("fd00::1")
            }),
            ..XmitOpts::default()
        };
        for f in fragments(&whole, &[56]) {
            let (r, out) = run(&f, |p| to_real(p, &dr, &opts));
            assert_eq!(r, Ok(a.rs.0));
            assert_eq!(out.len(), f.len());
            assert_eq!(&out[26..], &f[26..], "only the TTL word changes");
            let (r, out) = run(&f, |p| to_real(p, &tun, &opts));
            assert_eq!(r, Ok(a.rs.0));
            let outer = if a.rs.0.is_ipv4() { 20 } else { 40 };
            assert_eq!(out.len(), f.len() + outer);
            assert_eq!(&out[14 + outer + 12..], &f[26..]);
        }
    }
}

#[test]
fn checksum_offload_is_not_asked_for_a_fragment() {
    for a in [v4(), v6()] {
        let whole = frame(
            a.client.0,
            a.vip.0,
            64,
            &L4::Udp(a.client.1, a.vip.1),
            &[3u8; 40],
        );
        for f in fragments(&whole, &[24]) {
            let mut p = VecPacket::from_bytes(&f, 0);
            request_checksum_offload(&mut p).unwrap();
            let o = p.offload.unwrap();
            assert_eq!(o.l4, crate::packet::L4Checksum::None);
            assert_eq!(&p.data()[20 + 14..], &f[20 + 14..], "L4 bytes untouched");
        }
    }
}

#[test]
fn bad_fragments_and_chains_are_refused_unchanged() {
    let a = v4();
    // A first fragment that cuts the TCP header (RFC 1858 tiny fragment).
    let whole = frame(
        a.client.0,
        a.vip.0,
        64,
        &tcp(a.client.1, a.vip.1, "S", &syn_opts()),
        b"",
    );
    let first = fragments(&whole, &[16]).remove(0);
    let c = fnat(&a, 6);
    let (r, out) = run(&first, |p| to_real(p, &c, &XmitOpts::default()));
    assert_eq!(r, Err(XmitError::Drop(DropReason::BadHeader)));
    assert_eq!(out, first);
    // An IPv6 routing header with segments left: not this hop's to rewrite.
    let a = v6();
    let f = frame(a.client.0, a.vip.0, 64, &L4::Udp(a.client.1, a.vip.1), b"x");
    let mut v = f[..54].to_vec();
    v[20] = 43;
    let pl = u16::from_be_bytes([v[18], v[19]]) + 8;
    v[18..20].copy_from_slice(&pl.to_be_bytes());
    v.extend_from_slice(&[17, 0, 4, 1, 0, 0, 0, 0]);
    v.extend_from_slice(&f[54..]);
    for c in [fnat(&a, 17), masq(&a, 17)] {
        let (r, out) = run(&v, |p| to_real(p, &c, &XmitOpts::default()));
        assert_eq!(r, Err(XmitError::Drop(DropReason::IpExtHeader)));
        assert_eq!(out, v);
    }
    // ESP after a destination options header: no ports to rewrite.
    let mut e = f[..54].to_vec();
    e[20] = 60;
    e[18..20].copy_from_slice(&16u16.to_be_bytes());
    e.extend_from_slice(&[50, 0, 1, 4, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]);
    let (r, _) = run(&e, |p| to_real(p, &fnat(&a, 17), &XmitOpts::default()));
    assert_eq!(r, Err(XmitError::Drop(DropReason::Unsupported)));
}

#[test]
fn nat64_refuses_options_extension_headers_and_fragments_unchanged() {
    // An IPv6 client and VIP, an IPv4 local address and real server; and
    // the reverse.
    let (a6, a4) = (v6(), v4());
    for (client, vip, rs, lip) in [
        (a6.client, a6.vip, a4.rs, a4.lip),
        (a4.client, a4.vip, a6.rs, a6.lip),
    ] {
        let c = conn(FwdMethod::FullNat, 17, client, vip, rs, Some(lip));
        let whole = frame(client.0, vip.0, 64, &L4::Udp(client.1, vip.1), &[5u8; 64]);
        let (r, _) = run(&whole, |p| to_real(p, &c, &XmitOpts::default()));
        assert_eq!(r, Ok(rs.0), "the plain datagram translates");
        let mut refused = vec![with_opts(&whole)];
        refused.extend(fragments(&whole, &[32]));
        for f in refused {
            let (r, out) = run(&f, |p| to_real(p, &c, &XmitOpts::default()));
            assert_eq!(r, Err(XmitError::Drop(DropReason::Unsupported)));
            assert_eq!(out, f);
        }
    }
}
