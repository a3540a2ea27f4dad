//! Why a frame the flow parser turned down is dropped, when the answer is
//! "its headers do not add up": an IP header whose lengths are wrong, or a
//! TCP, UDP or SCTP header that is truncated or inconsistent. Counted as
//! bad_header here rather than left to the network stack, which would call
//! a broken TCP header to one of our addresses only unsupported. Runs only
//! for frames `parse_flow` refused, never for plain TCP/UDP.
use crate::ipvs::proto::{IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};
use crate::xmit;

/// Whether the IPv4 or IPv6 frame `d` has an IP header, or a TCP, UDP or
/// SCTP header after it, that does not add up (`xmit::parse_ip`,
/// `xmit::check_l4`). Other frames, other protocols and what rvs does not
/// support are not malformed.
pub(super) fn malformed(d: &[u8]) -> bool {
    if d.len() < 14 || !matches!((d[12], d[13]), (0x08, 0x00) | (0x86, 0xdd)) {
        return false;
    }
    let bad = crate::counters::DropReason::BadHeader;
    match xmit::parse_ip(d) {
        Err(r) => r == bad,
        Ok(ip) if matches!(ip.proto, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP) => {
            xmit::check_l4(d, &ip) == Err(bad)
        }
        Ok(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet + IPv4 (no options) with `l4` as payload, total length
    /// from the bytes given.
    fn v4(proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
        f[22] = 64;
        f[23] = proto;
        f.extend_from_slice(l4);
        f
    }

    #[test]
    fn truncated_or_inconsistent_transport_headers_are_malformed() {
        let tcp_ok = {
            let mut h = vec![0u8; 20];
            h[12] = 5 << 4;
            h
        };
        assert!(!malformed(&v4(6, &tcp_ok)));
        for n in 0..20 {
            assert!(malformed(&v4(6, &tcp_ok[..n])), "TCP header of {n} bytes");
        }
        let mut long_off = tcp_ok.clone();
        long_off[12] = 6 << 4;
        assert!(malformed(&v4(6, &long_off)), "data offset past the end");
        let mut short_off = tcp_ok.clone();
        short_off[12] = 4 << 4;
        assert!(malformed(&v4(6, &short_off)), "data offset under 5");
        let udp = [0, 1, 0, 2, 0, 8, 0, 0];
        assert!(!malformed(&v4(17, &udp)));
        for n in 0..8 {
            assert!(malformed(&v4(17, &udp[..n])), "UDP header of {n} bytes");
        }
        assert!(
            malformed(&v4(17, &[0, 1, 0, 2, 0, 9, 0, 0])),
            "UDP length past the end"
        );
        assert!(
            malformed(&v4(17, &[0, 1, 0, 2, 0, 7, 0, 0])),
            "UDP length under 8"
        );
        for n in 0..16 {
            assert!(malformed(&v4(132, &[0u8; 16][..n])), "SCTP of {n} bytes");
        }
        // IP lengths: total length past the frame.
        let mut f = v4(6, &tcp_ok);
        f[16..18].copy_from_slice(&100u16.to_be_bytes());
        assert!(malformed(&f));
    }

    #[test]
    fn other_protocols_and_frames_are_not() {
        assert!(!malformed(&v4(1, &[8, 0, 0, 0])), "ICMP is the stack's");
        assert!(!malformed(&v4(47, &[])), "GRE: unsupported, not malformed");
        let mut arp = v4(6, &[]);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(!malformed(&arp));
        assert!(!malformed(&[0u8; 10]));
    }
}
