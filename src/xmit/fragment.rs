//! Fragmentation of a datagram over the egress MTU, after the rewrite, as
//! the kernel's ip_do_fragment (net/ipv4/ip_output.c) does for a forwarded
//! IPv4 datagram without DF:
//! - every fragment but the last carries a multiple of 8 data bytes, as
//!   many as the MTU leaves after the header; the last carries the rest;
//! - each fragment keeps the datagram's header (identification, TOS, TTL,
//!   protocol, addresses) with its own total length, offset and checksum;
//!   MF is set on all but the last, which keeps the datagram's own MF, and
//!   offsets count from the datagram's own, so a fragment fragmented again
//!   stays a part of its original datagram;
//! - the first fragment has every IPv4 option; in the later ones the
//!   options whose copied flag is clear are overwritten with NOPs, keeping
//!   the header's length (ip_options_fragment), and a datagram that is not
//!   itself a first fragment passes its header to every fragment as it is.
//!
//! IPv6 is fragmented only where rvs built the header itself (the outer
//! header of a TUN packet carrying an IPv4 datagram without DF; RFC 2473
//! section 7.1): a Fragment header goes after the 40-byte header, and a
//! packet with extension headers of its own is not fragmented.
//!
//! New fragments come from the caller's pool; the packet's own buffer
//! carries the last one, so the fragments go out in offset order. Without
//! a buffer the datagram is lost (the fragments already sent stay sent, as
//! in the kernel) and the caller counts a drop.

use std::cell::Cell;

use super::{be16, set16, ETH_LEN};
use crate::counters::DropReason;
use crate::packet::Packet;
use crate::wire::checksum;
use crate::wire::ipext::is_walked_ext;

const IP_DF: u16 = 0x4000;
const IP_MF: u16 = 0x2000;
const IP_OFFSET: u16 = 0x1fff;
const IPOPT_END: u8 = 0;
const IPOPT_NOOP: u8 = 1;
const IPOPT_COPIED: u8 = 0x80;
const NEXTHDR_FRAGMENT: u8 = 44;
const FRAG_HDR: usize = 8;

/// Where fragments get their buffers and where they go.
pub trait FragSink<P> {
    /// An empty packet with the default headroom, or None when the pool is dry.
    fn alloc(&mut self) -> Option<P>;
    /// A finished fragment; its Ethernet header is zeros for the caller to fill.
    fn send(&mut self, frag: P);
}

/// Splits the IP datagram in `pkt` (a frame: 14 bytes of Ethernet header,
/// then IPv4 without DF or IPv6 without extension headers) into fragments
/// of at most `mtu` IP bytes and hands them to `sink` in offset order.
/// Returns how many. A datagram that fits goes to `sink` as it is.
///
/// Errors: `TooBig` when the datagram may not be fragmented (DF set, IPv6
/// extension headers) or the MTU leaves no room for 8 data bytes;
/// `NoBuffer` when `sink` has no buffer; `BadHeader` when the lengths do
/// not add up.
pub fn fragment<P: Packet>(
    pkt: P,
    mtu: u16,
    sink: &mut impl FragSink<P>,
) -> Result<usize, DropReason> {
    let b = pkt.data();
    if b.len() < ETH_LEN + 20 {
        return Err(DropReason::BadHeader);
    }
    match b[ETH_LEN] >> 4 {
        4 => fragment_v4(pkt, usize::from(mtu), sink),
        6 => fragment_v6(pkt, usize::from(mtu), sink),
        _ => Err(DropReason::BadHeader),
    }
}

fn fragment_v4<P: Packet>(
    mut pkt: P,
    mtu: usize,
    sink: &mut impl FragSink<P>,
) -> Result<usize, DropReason> {
    let b = pkt.data();
    let hl = usize::from(b[ETH_LEN] & 0x0f) * 4;
    let total = usize::from(be16(b, ETH_LEN + 2));
    if hl < 20 || total < hl || ETH_LEN + total > b.len() {
        return Err(DropReason::BadHeader);
    }
    if total <= mtu {
        sink.send(pkt);
        return Ok(1);
    }
    let flags = be16(b, ETH_LEN + 6);
    if flags & IP_DF != 0 {
        return Err(DropReason::TooBig);
    }
    let room = mtu.saturating_sub(hl);
    if room < 8 {
        return Err(DropReason::TooBig);
    }
    let chunk = room & !7;
    let base = usize::from(flags & IP_OFFSET) * 8;
    let data_len = total - hl;
    // The header of the fragments after the first.
    let mut later = [0u8; 60];
    later[..hl].copy_from_slice(&b[ETH_LEN..ETH_LEN + hl]);
    if base == 0 {
        strip_uncopied(&mut later[20..hl]);
    }
    let (mut start, mut count) = (0, 0);
    while data_len - start > room {
        let mut f = sink.alloc().ok_or(DropReason::NoBuffer)?;
        if !f.set_len(ETH_LEN + hl + chunk) || f.len() != ETH_LEN + hl + chunk {
            return Err(DropReason::NoBuffer);
        }
        let src = pkt.data();
        let hdr = if start == 0 {
            &src[ETH_LEN..ETH_LEN + hl]
        } else {
            &later[..hl]
        };
        let d = f.data_mut();
        d[..ETH_LEN].fill(0);
        d[ETH_LEN..ETH_LEN + hl].copy_from_slice(hdr);
        let from = ETH_LEN + hl + start;
        d[ETH_LEN + hl..].copy_from_slice(&src[from..from + chunk]);
        finish_v4(d, hl, chunk, base + start, true);
        sink.send(f);
        count += 1;
        start += chunk;
    }
    let len = data_len - start;
    let d = pkt.data_mut();
    d[ETH_LEN..ETH_LEN + hl].copy_from_slice(&later[..hl]);
    let from = ETH_LEN + hl + start;
    d.copy_within(from..from + len, ETH_LEN + hl);
    if !pkt.set_len(ETH_LEN + hl + len) {
        return Err(DropReason::BadHeader);
    }
    finish_v4(pkt.data_mut(), hl, len, base + start, flags & IP_MF != 0);
    sink.send(pkt);
    Ok(count + 1)
}

/// Total length, flags and offset, and the header checksum of one IPv4
/// fragment of `len` data bytes at byte offset `offset`.
fn finish_v4(d: &mut [u8], hl: usize, len: usize, offset: usize, more: bool) {
    let h = ETH_LEN;
    set16(d, h + 2, (hl + len) as u16);
    let mf = if more { IP_MF } else { 0 };
    set16(d, h + 6, mf | (offset / 8) as u16);
    set16(d, h + 10, 0);
    let c = checksum::checksum(&d[h..h + hl]);
    set16(d, h + 10, c);
}

/// Overwrites the options whose copied flag is clear with NOPs; a list
/// that does not parse is left as it is from there on.
fn strip_uncopied(opts: &mut [u8]) {
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            IPOPT_END => return,
            IPOPT_NOOP => i += 1,
            kind => {
                let Some(&n) = opts.get(i + 1) else { return };
                let n = usize::from(n);
                if n < 2 || n > opts.len() - i {
                    return;
                }
                if kind & IPOPT_COPIED == 0 {
                    opts[i..i + n].fill(IPOPT_NOOP);
                }
                i += n;
            }
        }
    }
}

thread_local! {
    /// Identification of the IPv6 fragments this thread makes, from a
    /// random start.
    static NEXT_IDENT: Cell<u32> = Cell::new(random_u32());
}

fn random_u32() -> u32 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0x6672_6167u32) as u32
}

fn next_ident() -> u32 {
    NEXT_IDENT.with(|c| {
        let v = c.get().wrapping_add(1);
        c.set(v);
        v
    })
}

fn fragment_v6<P: Packet>(
    mut pkt: P,
    mtu: usize,
    sink: &mut impl FragSink<P>,
) -> Result<usize, DropReason> {
    let b = pkt.data();
    if b.len() < ETH_LEN + 40 {
        return Err(DropReason::BadHeader);
    }
    let plen = usize::from(be16(b, ETH_LEN + 4));
    if ETH_LEN + 40 + plen > b.len() {
        return Err(DropReason::BadHeader);
    }
    if 40 + plen <= mtu {
        sink.send(pkt);
        return Ok(1);
    }
    let nh = b[ETH_LEN + 6];
    if is_walked_ext(nh) {
        return Err(DropReason::TooBig);
    }
    let room = mtu.saturating_sub(40 + FRAG_HDR);
    if room < 8 {
        return Err(DropReason::TooBig);
    }
    let chunk = room & !7;
    let ident = next_ident();
    let mut hdr = [0u8; 40];
    hdr.copy_from_slice(&b[ETH_LEN..ETH_LEN + 40]);
    hdr[6] = NEXTHDR_FRAGMENT;
    let fh = |offset: usize, more: bool| {
        let mut f = [0u8; FRAG_HDR];
        f[0] = nh;
        f[2..4].copy_from_slice(&((offset as u16) | u16::from(more)).to_be_bytes());
        f[4..8].copy_from_slice(&ident.to_be_bytes());
        f
    };
    let (mut start, mut count) = (0, 0);
    while plen - start > room {
        let mut f = sink.alloc().ok_or(DropReason::NoBuffer)?;
        let len = ETH_LEN + 40 + FRAG_HDR + chunk;
        if !f.set_len(len) || f.len() != len {
            return Err(DropReason::NoBuffer);
        }
        let src = pkt.data();
        let d = f.data_mut();
        d[..ETH_LEN].fill(0);
        d[ETH_LEN..ETH_LEN + 40].copy_from_slice(&hdr);
        set16(d, ETH_LEN + 4, (FRAG_HDR + chunk) as u16);
        d[ETH_LEN + 40..ETH_LEN + 48].copy_from_slice(&fh(start, true));
        let from = ETH_LEN + 40 + start;
        d[ETH_LEN + 48..].copy_from_slice(&src[from..from + chunk]);
        sink.send(f);
        count += 1;
        start += chunk;
    }
    // The last fragment in the packet's own buffer: its data moves down to
    // after the new Fragment header (start >= 8, so it never grows).
    let len = plen - start;
    let d = pkt.data_mut();
    let from = ETH_LEN + 40 + start;
    d.copy_within(from..from + len, ETH_LEN + 48);
    d[ETH_LEN..ETH_LEN + 40].copy_from_slice(&hdr);
    set16(d, ETH_LEN + 4, (FRAG_HDR + len) as u16);
    d[ETH_LEN + 40..ETH_LEN + 48].copy_from_slice(&fh(start, false));
    if !pkt.set_len(ETH_LEN + 48 + len) {
        return Err(DropReason::BadHeader);
    }
    sink.send(pkt);
    Ok(count + 1)
}

#[cfg(test)]
#[path = "fragment_tests.rs"]
mod tests;
