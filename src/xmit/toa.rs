//! TOA ("TCP Option Address"): the client's address and port carried to a
//! FULLNAT real server in a TCP option, as DPVS and Alibaba's LVS send it.
//!
//! Layout (DPVS include/ipvs/proto_tcp.h): kind 254, then the length, the
//! client's port and its address, all in network order. IPv4: length 8
//! (port 2 + address 4). IPv6: length 20 (port 2 + address 16), still kind
//! 254 (some other TOA variants use 253 for IPv6; DPVS does not). The option
//! goes right after the 20-byte TCP header, before the segment's own
//! options, so a server module that takes the first TOA it finds reads
//! ours, not one a client forged.

use std::net::IpAddr;

use super::{be16, set16, Ip, ETH_LEN};
use crate::packet::Packet;
use crate::wire::checksum;

/// The TCP option kind DPVS uses for TOA.
pub const KIND: u8 = 254;
/// Option length with an IPv4 client.
pub const LEN_V4: usize = 8;
/// Option length with an IPv6 client.
pub const LEN_V6: usize = 20;

/// Writes the option for `client` into `out`; returns its length.
pub fn encode(client: (IpAddr, u16), out: &mut [u8; LEN_V6]) -> usize {
    out[0] = KIND;
    out[2..4].copy_from_slice(&client.1.to_be_bytes());
    match client.0 {
        IpAddr::V4(a) => {
            out[1] = LEN_V4 as u8;
            out[4..8].copy_from_slice(&a.octets());
            LEN_V4
        }
        IpAddr::V6(a) => {
            out[1] = LEN_V6 as u8;
            out[4..20].copy_from_slice(&a.octets());
            LEN_V6
        }
    }
}

/// Inserts TOA for `client` into the TCP segment at `ip`, growing the
/// packet, the data offset and the IP length and updating the checksums
/// incrementally. Returns false, with the packet unchanged, when the option
/// does not fit: TCP header already over 60 - len bytes, the grown datagram
/// over `mtu`, or no tailroom. DPVS sends the segment on without TOA then,
/// and so does the caller.
///
/// `ip` must come from `parse_ip` + `check_l4` on a TCP packet whose
/// Ethernet padding has been trimmed (`pkt.len() == ip.end`).
pub(crate) fn insert<P: Packet>(pkt: &mut P, ip: &mut Ip, client: (IpAddr, u16), mtu: u16) -> bool {
    let mut opt = [0u8; LEN_V6];
    let n = encode(client, &mut opt);
    let l4 = ip.l4;
    if pkt.len() != ip.end || ip.end < l4 + 20 {
        return false;
    }
    let hl = usize::from(pkt.data()[l4 + 12] >> 4) * 4;
    let ip_len = ip.end - ETH_LEN;
    if hl + n > 60 || ip_len + n > usize::from(mtu) || ip_len + n > usize::from(u16::MAX) {
        return false;
    }
    if pkt.tailroom() < n || !pkt.append(n) {
        return false;
    }
    let end = ip.end;
    let b = pkt.data_mut();
    // The inserted bytes sit at an even offset and are a whole number of
    // words long, so every moved byte keeps its place within its 16-bit
    // word and its share of the checksum: only the new words, the data
    // offset and the pseudo header's length change the sum.
    b.copy_within(l4 + 20..end, l4 + 20 + n);
    b[l4 + 20..l4 + 20 + n].copy_from_slice(&opt[..n]);
    let old_off = be16(b, l4 + 12);
    b[l4 + 12] = (((hl + n) / 4) as u8) << 4 | (b[l4 + 12] & 0x0f);
    let new_off = be16(b, l4 + 12);
    let old_len = (end - l4) as u16;
    let new_len = old_len + n as u16;
    let mut c = be16(b, l4 + 16);
    c = checksum::update_u16(c, old_off, new_off);
    c = checksum::update_bytes(c, &[0u8; LEN_V6][..n], &opt[..n]);
    c = checksum::update_u16(c, old_len, new_len);
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
    ip.end += n;
    true
}
