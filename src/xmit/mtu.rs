//! The egress MTU, one rule for every forwarding mode: the kernel's
//! ensure_mtu_is_adequate (ip_vs_xmit.c) for packets to a real server, and
//! ip_forward's check for the replies NAT and FULLNAT send to the client.
//!
//! Each mode calls [`fit`] after its TTL check (the kernel decrements the
//! TTL, and sends time exceeded, before it looks at the MTU) and before it
//! writes a byte, with the bytes it adds (TUN's outer headers; 0 for
//! FULLNAT, NAT and DR, which keep the size: TOA is left out of a segment
//! it would not let fit). A datagram that does not fit once grown is:
//! - IPv6, or IPv4 with DF set: [`XmitError::TooBig`] with the largest
//!   datagram that fits (the MTU less the growth), for the caller to answer
//!   with fragmentation needed / packet too big quoting the packet, which
//!   is left unchanged;
//! - IPv4 without DF: rewritten and sent on, the caller fragmenting the
//!   result ([`super::fragment`]) as ip_fragment does.
//!
//! A packet that fits costs one compare.

use super::{be16, Ip, XmitError, ETH_LEN};
use crate::counters::DropReason;

/// RFC 791's smallest MTU and RFC 8200's: a path below them is not
/// reported (the kernel's tunnel transmitters drop with "mtu less than
/// 68" / IPV6_MIN_MTU); the packet is dropped as too big.
const MIN_MTU_V4: u16 = 68;
const MIN_MTU_V6: u16 = 1280;

const IP_DF: u16 = 0x4000;

/// Whether the datagram at `ip` in the frame `b`, grown by `growth` bytes,
/// fits the egress link's IP MTU `mtu`; see the module's documentation.
#[inline]
pub(crate) fn fit(b: &[u8], ip: &Ip, mtu: u16, growth: usize) -> Result<(), XmitError> {
    if ip.end - ETH_LEN + growth <= usize::from(mtu) {
        return Ok(());
    }
    too_big(b, ip, mtu, growth)
}

#[cold]
fn too_big(b: &[u8], ip: &Ip, mtu: u16, growth: usize) -> Result<(), XmitError> {
    if !ip.v6 && be16(b, ETH_LEN + 6) & IP_DF == 0 {
        return Ok(());
    }
    let path = usize::from(mtu).saturating_sub(growth);
    let floor = if ip.v6 { MIN_MTU_V6 } else { MIN_MTU_V4 };
    if path < usize::from(floor) {
        return Err(XmitError::Drop(DropReason::TooBig));
    }
    Err(XmitError::TooBig { mtu: path as u16 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmit::parse_ip;
    use crate::xmit::testkit::*;

    /// A UDP datagram of `total` IP bytes, DF as given (IPv4).
    fn datagram(v6: bool, total: usize, df: bool) -> Vec<u8> {
        let (s, d) = if v6 {
            (ip("2001:db8::1"), ip("2001:db8::2"))
        } else {
            (ip("192.0.2.1"), ip("192.0.2.2"))
        };
        let hl = if v6 { 40 } else { 20 };
        let mut f = frame(s, d, 64, &L4::Udp(1000, 2000), &vec![7; total - hl - 8]);
        if !v6 {
            // Flags and offset: DF or nothing; the checksum does not matter here.
            f[ETH_LEN + 6] = if df { 0x40 } else { 0 };
        }
        assert_eq!(f.len(), ETH_LEN + total);
        f
    }

    fn check(f: &[u8], mtu: u16, growth: usize) -> Result<(), XmitError> {
        let ip = parse_ip(f).unwrap();
        fit(f, &ip, mtu, growth)
    }

    #[test]
    fn a_datagram_up_to_the_mtu_fits_whatever_its_flags() {
        for v6 in [false, true] {
            assert_eq!(check(&datagram(v6, 1500, true), 1500, 0), Ok(()));
            assert_eq!(check(&datagram(v6, 1480, true), 1500, 20), Ok(()));
        }
    }

    #[test]
    fn ipv6_and_df_over_the_mtu_are_too_big_with_the_mtu_less_the_growth() {
        assert_eq!(
            check(&datagram(false, 1501, true), 1500, 0),
            Err(XmitError::TooBig { mtu: 1500 })
        );
        assert_eq!(
            check(&datagram(true, 9000, true), 1500, 0),
            Err(XmitError::TooBig { mtu: 1500 })
        );
        // An ipip tunnel's 20 bytes: 1481 + 20 = 1501.
        assert_eq!(
            check(&datagram(false, 1481, true), 1500, 20),
            Err(XmitError::TooBig { mtu: 1480 })
        );
    }

    #[test]
    fn ipv4_without_df_over_the_mtu_goes_on_to_be_fragmented() {
        assert_eq!(check(&datagram(false, 9000, false), 1500, 0), Ok(()));
        assert_eq!(check(&datagram(false, 1490, false), 1500, 20), Ok(()));
    }

    #[test]
    fn a_path_below_the_minimum_mtu_is_a_drop_without_an_answer() {
        // IPv6 over a 1300-byte link in a 40-byte tunnel: 1260 < 1280.
        assert_eq!(
            check(&datagram(true, 1290, true), 1300, 40),
            Err(XmitError::Drop(DropReason::TooBig))
        );
        assert_eq!(
            check(&datagram(false, 100, true), 80, 20),
            Err(XmitError::Drop(DropReason::TooBig))
        );
        assert_eq!(
            check(&datagram(false, 100, true), 88, 20),
            Err(XmitError::TooBig { mtu: 68 })
        );
    }
}
