//! The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and
//! 2) that a `--proxy-protocol` service puts in front of a client's first
//! byte, so a real server behind FULLNAT still learns who the client is
//! and which address it connected to. src/xmit/proxy_proto.rs inserts it;
//! the sequence core (`SeqAdj`) shifts the rest of the stream.

use std::io::Write;
use std::net::IpAddr;

/// DPVS's `--proxy-protocol` values (case-insensitive; like DPVS, any
/// other word means disable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProxyProtocol {
    #[default]
    Disable,
    V1,
    V2,
    V1Insecure,
    V2Insecure,
}

/// The longest header: version 1 over IPv6 (the specification's 107).
pub const MAX_LEN: usize = 107;

/// Version 2's signature, then "version 2, PROXY command".
const V2_SIG: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
const V2_PROXY: u8 = 0x21;
/// Address family and transport: TCP over IPv4 / IPv6.
const V2_TCP4: u8 = 0x11;
const V2_TCP6: u8 = 0x21;

/// Writes the header of `version` for a TCP conn from `client` to `vip`
/// into `out`; returns its length, 0 for `Disable` and the insecure
/// variants (which rvs refuses). Mixed families (NAT64 conns never mix
/// client and VIP) give 0 too.
pub fn header(
    version: ProxyProtocol,
    client: (IpAddr, u16),
    vip: (IpAddr, u16),
    out: &mut [u8; MAX_LEN],
) -> usize {
    match (version, client.0, vip.0) {
        (ProxyProtocol::V1, IpAddr::V4(_), IpAddr::V4(_))
        | (ProxyProtocol::V1, IpAddr::V6(_), IpAddr::V6(_)) => {
            let fam = if client.0.is_ipv4() { "TCP4" } else { "TCP6" };
            let mut w = &mut out[..];
            let room = w.len();
            match write!(
                w,
                "PROXY {fam} {} {} {} {}\r\n",
                client.0, vip.0, client.1, vip.1
            ) {
                Ok(()) => room - w.len(),
                Err(_) => 0,
            }
        }
        (ProxyProtocol::V2, IpAddr::V4(c), IpAddr::V4(v)) => {
            v2(out, V2_TCP4, &c.octets(), &v.octets(), client.1, vip.1)
        }
        (ProxyProtocol::V2, IpAddr::V6(c), IpAddr::V6(v)) => {
            v2(out, V2_TCP6, &c.octets(), &v.octets(), client.1, vip.1)
        }
        _ => 0,
    }
}

fn v2(out: &mut [u8; MAX_LEN], fam: u8, src: &[u8], dst: &[u8], sport: u16, dport: u16) -> usize {
    let alen = 2 * src.len() + 4;
    out[..12].copy_from_slice(&V2_SIG);
    out[12] = V2_PROXY;
    out[13] = fam;
    out[14..16].copy_from_slice(&(alen as u16).to_be_bytes());
    let mut at = 16;
    for part in [src, dst, &sport.to_be_bytes(), &dport.to_be_bytes()] {
        out[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(v: ProxyProtocol, c: (&str, u16), d: (&str, u16)) -> Vec<u8> {
        let mut out = [0u8; MAX_LEN];
        let n = header(
            v,
            (c.0.parse().unwrap(), c.1),
            (d.0.parse().unwrap(), d.1),
            &mut out,
        );
        out[..n].to_vec()
    }

    #[test]
    fn version_1_is_the_specifications_text_line() {
        assert_eq!(
            hdr(
                ProxyProtocol::V1,
                ("192.168.0.1", 56324),
                ("192.168.0.11", 443)
            ),
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
        );
        assert_eq!(
            hdr(ProxyProtocol::V1, ("2001:db8::1", 1), ("2001:db8::2", 80)),
            b"PROXY TCP6 2001:db8::1 2001:db8::2 1 80\r\n"
        );
        // The longest line the specification allows for fits.
        let c = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        assert_eq!(hdr(ProxyProtocol::V1, (c, 65535), (c, 65535)).len(), 104);
    }

    #[test]
    fn version_2_is_the_signature_then_tcp_addresses_in_network_order() {
        let mut want = b"\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a".to_vec();
        want.extend_from_slice(&[
            0x21, 0x11, 0, 12, 10, 0, 0, 1, 10, 0, 0, 2, 0x9c, 0x40, 0, 80,
        ]);
        assert_eq!(
            hdr(ProxyProtocol::V2, ("10.0.0.1", 40000), ("10.0.0.2", 80)),
            want
        );
        let h = hdr(ProxyProtocol::V2, ("2001:db8::1", 1), ("2001:db8::2", 2));
        assert_eq!(h.len(), 16 + 36);
        assert_eq!(&h[12..16], &[0x21, 0x21, 0, 36]);
        assert_eq!(&h[16..18], &[0x20, 0x01]);
        assert_eq!(&h[48..52], &[0, 1, 0, 2]);
    }

    #[test]
    fn disabled_refused_and_mixed_families_give_nothing() {
        for v in [
            ProxyProtocol::Disable,
            ProxyProtocol::V1Insecure,
            ProxyProtocol::V2Insecure,
        ] {
            assert!(hdr(v, ("10.0.0.1", 1), ("10.0.0.2", 2)).is_empty());
        }
        assert!(hdr(ProxyProtocol::V2, ("10.0.0.1", 1), ("2001:db8::2", 2)).is_empty());
    }
}
