//! Inserting a conn's PROXY protocol header (`crate::ipvs::proxy_proto`)
//! in front of the client's first payload byte, on the client's segment
//! that carries it: the first one, or its retransmission. The sequence
//! core (`seqadj`) shifts everything after it.

use super::{be16, check_l4, parse_ip, set16, XmitError, ETH_LEN, PROTO_TCP};
use crate::counters::DropReason;
use crate::ipvs::proxy_proto::{header, ProxyProtocol, MAX_LEN};
use crate::ipvs::seqadj::SeqAdj;
use crate::ipvs::ConnRef;
use crate::packet::Packet;
use crate::wire::checksum;
use crate::wire::tcp::SYN;

/// The adjustment a new conn of a `version` service starts with, from the
/// client's SYN that opened it: its header goes in front of the byte after
/// the SYN's. None when the frame is not such a SYN or the version inserts
/// nothing.
pub fn for_syn(data: &[u8], conn: &ConnRef<'_>, version: ProxyProtocol) -> Option<SeqAdj> {
    let ip = parse_ip(data).ok()?;
    if ip.proto != PROTO_TCP || ip.later_fragment() || check_l4(data, &ip).is_err() {
        return None;
    }
    let l4 = ip.l4;
    if data[l4 + 13] & SYN == 0 {
        return None;
    }
    let isn = u32::from_be_bytes([data[l4 + 4], data[l4 + 5], data[l4 + 6], data[l4 + 7]]);
    let mut hdr = [0u8; MAX_LEN];
    let n = header(
        version,
        (conn.caddr(), conn.cport()),
        (conn.vaddr(), conn.vport()),
        &mut hdr,
    );
    (n != 0).then(|| SeqAdj {
        ins_at: isn.wrapping_add(1),
        ins_len: n as u32,
        ins_proto: version,
        ..SeqAdj::default()
    })
}

/// Puts the header into a client → VIP segment (before its rewrite) when
/// the segment starts at the client's first payload byte; true when it
/// did. The packet grows by `adj.ins_len` bytes, under the egress rule of
/// `super::mtu`. Every check runs before the first byte is written.
pub fn insert<P: Packet>(
    pkt: &mut P,
    conn: &ConnRef<'_>,
    adj: &SeqAdj,
    mtu: u16,
) -> Result<bool, XmitError> {
    let ip = parse_ip(pkt.data())?;
    if ip.proto != PROTO_TCP || adj.ins_len == 0 {
        return Ok(false);
    }
    let b = pkt.data();
    if ip.later_fragment() {
        return Ok(false);
    }
    check_l4(b, &ip)?;
    let l4 = ip.l4;
    let hl = usize::from(b[l4 + 12] >> 4) * 4;
    let seq = u32::from_be_bytes([b[l4 + 4], b[l4 + 5], b[l4 + 6], b[l4 + 7]]);
    let payload = l4 + hl;
    if b[l4 + 13] & SYN != 0 || seq != adj.ins_at || payload >= ip.end {
        return Ok(false);
    }
    // A first fragment's checksum covers bytes in later fragments; the
    // header cannot go in front of them.
    if ip.frag.is_some() {
        return Err(XmitError::Drop(DropReason::Unsupported));
    }
    let mut hdr = [0u8; MAX_LEN];
    let n = header(
        adj.ins_proto,
        (conn.caddr(), conn.cport()),
        (conn.vaddr(), conn.vport()),
        &mut hdr,
    );
    if n == 0 || n as u32 != adj.ins_len {
        return Err(XmitError::Drop(DropReason::Unsupported));
    }
    // The egress rule with the header as growth: a DF segment that no
    // longer fits is too big by the header, so the client's path MTU
    // discovery leaves room for it; a non-DF one is fragmented later.
    super::mtu::fit(b, &ip, mtu, n)?;
    if ip.end - ETH_LEN + n > usize::from(u16::MAX) {
        return Err(XmitError::Drop(DropReason::Unsupported));
    }
    if pkt.len() > ip.end {
        pkt.trim(pkt.len() - ip.end);
    }
    if pkt.tailroom() < n || !pkt.append(n) {
        return Err(XmitError::Drop(DropReason::NoBuffer));
    }
    let end = ip.end;
    let b = pkt.data_mut();
    // The payload moves n bytes on. With n odd each of its bytes changes
    // place within its 16-bit word, which rotates its share of the sum by
    // eight bits (RFC 1071's byte-order independence): so its sum leaves
    // and comes back rotated. The header's bytes start at an even offset
    // (TCP headers are whole words). Nothing is summed afresh, so a
    // segment that arrived corrupt stays detectably corrupt.
    let moved = if n % 2 == 1 {
        Some(checksum::fold(checksum::sum(&b[payload..end])))
    } else {
        None
    };
    b.copy_within(payload..end, payload + n);
    b[payload..payload + n].copy_from_slice(&hdr[..n]);
    let mut c = be16(b, l4 + 16);
    if let Some(s) = moved {
        c = checksum::update_u16(c, s, s.rotate_left(8));
    }
    c = checksum::update_u16(c, 0, checksum::fold(checksum::sum(&hdr[..n])));
    let old_len = (end - l4) as u16;
    c = checksum::update_u16(c, old_len, old_len + n as u16);
    set16(b, l4 + 16, c);
    if ip.v6 {
        let pl = be16(b, ETH_LEN + 4);
        set16(b, ETH_LEN + 4, pl + n as u16);
    } else {
        let old = be16(b, ETH_LEN + 2);
        let new = old + n as u16;
        set16(b, ETH_LEN + 2, new);
        let ic = checksum::update_u16(be16(b, ETH_LEN + 10), old, new);
        set16(b, ETH_LEN + 10, ic);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use etherparse::TcpHeader;

    use super::*;
    use crate::ipvs::FwdMethod;
    use crate::xmit::testkit::*;

    fn setup(a: &Addrs, version: ProxyProtocol) -> (HeldConn, SeqAdj, Vec<u8>) {
        let c = conn(FwdMethod::FullNat, 6, a.client, a.vip, a.rs, Some(a.lip));
        // The header as the specification writes it, by hand.
        let want = match version {
            ProxyProtocol::V1 if a.client.0.is_ipv4() => {
                b"PROXY TCP4 198.51.100.7 203.0.113.10 40000 80\r\n".to_vec()
            }
            ProxyProtocol::V1 => b"PROXY TCP6 2001:db8:c::7 2001:db8:f::10 40000 443\r\n".to_vec(),
            _ => {
                let mut v = b"\r\n\r\n\0\r\nQUIT\n\x21".to_vec();
                if let (std::net::IpAddr::V4(c), std::net::IpAddr::V4(d)) = (a.client.0, a.vip.0) {
                    v.extend_from_slice(&[0x11, 0, 12]);
                    v.extend_from_slice(&c.octets());
                    v.extend_from_slice(&d.octets());
                }
                v.extend_from_slice(&40000u16.to_be_bytes());
                v.extend_from_slice(&a.vip.1.to_be_bytes());
                v
            }
        };
        let adj = SeqAdj {
            ins_at: 1001,
            ins_len: want.len() as u32,
            ins_proto: version,
            ..SeqAdj::default()
        };
        (c, adj, want)
    }

    fn data(a: &Addrs, seq: u32, syn: bool, payload: &[u8]) -> Vec<u8> {
        let mut h = TcpHeader::new(a.client.1, a.vip.1, seq, 5000);
        h.ack = !syn;
        h.syn = syn;
        h.acknowledgment_number = 77;
        frame(a.client.0, a.vip.0, 64, &L4::Tcp(h), payload)
    }

    #[test]
    fn the_header_goes_in_front_of_the_first_byte_with_every_checksum_right() {
        // v1's IPv4 line is 47 bytes: odd, so the payload's bytes change
        // their place in the checksum's words; v2's 28 are even.
        for (a, v) in [
            (v4(), ProxyProtocol::V1),
            (v4(), ProxyProtocol::V2),
            (v6(), ProxyProtocol::V1),
        ] {
            let (c, adj, hdr) = setup(&a, v);
            for body in [&b"GET / HTTP/1.1\r\n\r\n"[..], b"odd"] {
                let inp = data(&a, 1001, false, body);
                let (r, out) = run(&inp, |p| insert(p, &c, &adj, 1500));
                assert_eq!(r, Ok(true), "{v:?}");
                assert_checksums(&out, false);
                let got = view(&out);
                let mut want = hdr.clone();
                want.extend_from_slice(body);
                assert_eq!(got.payload, want, "{v:?}");
                assert_eq!(out.len(), inp.len() + hdr.len());
            }
        }
    }

    #[test]
    fn only_the_segment_at_the_first_byte_gets_it() {
        let a = v4();
        let (c, adj, _) = setup(&a, ProxyProtocol::V2);
        for inp in [
            data(&a, 1000, true, b""),      // the SYN
            data(&a, 1001, false, b""),     // the handshake's ACK
            data(&a, 1020, false, b"more"), // a later segment
        ] {
            let (r, out) = run(&inp, |p| insert(p, &c, &adj, 1500));
            assert_eq!((r, out), (Ok(false), inp));
        }
    }

    #[test]
    fn a_corrupt_segment_stays_corrupt() {
        let a = v4();
        let (c, adj, _) = setup(&a, ProxyProtocol::V1);
        let mut inp = data(&a, 1001, false, b"abc");
        let last = inp.len() - 1;
        inp[last] ^= 0x10;
        let (r, out) = run(&inp, |p| insert(p, &c, &adj, 1500));
        assert_eq!(r, Ok(true));
        let tcp = &out[34..];
        let sum = fold(ones(&pseudo(a.client.0, a.vip.0, 6, tcp.len())) + ones(tcp));
        assert_ne!(sum, 0xffff);
    }

    #[test]
    fn a_df_segment_without_room_is_too_big_by_the_header() {
        let a = v4();
        let (c, adj, hdr) = setup(&a, ProxyProtocol::V2);
        let inp = data(&a, 1001, false, &[7u8; 1460]);
        let (r, out) = run(&inp, |p| insert(p, &c, &adj, 1500));
        assert_eq!(
            r,
            Err(XmitError::TooBig {
                mtu: 1500 - hdr.len() as u16
            })
        );
        assert_eq!(out, inp);
    }
}
