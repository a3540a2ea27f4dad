//! The express lane's rewrite of a frame (see the lane's comment in
//! `express.rs`): a side's addresses and ports as it arrives and leaves,
//! the RFC 1624 sums of the change, worked out once a conn, and the few
//! stores and one's-complement adds a packet takes (`apply`), or its IPIP
//! encapsulation (`tunnel`).
use super::super::ETH;
use crate::ipvs::conn::ConnV4;
use crate::ipvs::proto::IPPROTO_TCP;
use crate::ipvs::FwdMethod;
use crate::packet::Packet;
use crate::wire::checksum::{fold, fold64};
use crate::xmit::tun;

/// The TTL's word (TTL, protocol) one hop later, as an RFC 1624 sum: the
/// new word minus the old is -0x0100 for any TTL above 1.
const TTL_DELTA: u32 = 0xfeff;

/// A checksum field as it reads after the change whose folded sum is
/// `sum` (RFC 1624: `~(~old + sum)`), both in the frame's byte order: a
/// one's-complement sum comes out the same whichever order its words are
/// read in (RFC 1071), so the lane neither swaps the field nor the sum
/// (the sums are kept as `u16::to_be` gives them), and the one carry of
/// two 16-bit terms is the add's own.
#[inline(always)]
fn changed(field: u16, sum: u16) -> u16 {
    let (s, carry) = (!field).overflowing_add(sum);
    !s.wrapping_add(u16::from(carry))
}

/// A checksum field read in the frame's byte order (`changed`).
#[inline(always)]
fn field(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

/// An IPv4 packet's addresses and ports, host order.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Addrs {
    pub(super) src: u32,
    pub(super) dst: u32,
    pub(super) sport: u16,
    pub(super) dport: u16,
}

/// A side's packet as it arrives and as it leaves (what does not change
/// is written back as it was); None for a side the mode has not (DR's
/// replies) or a mode this lane does not carry.
pub(super) fn side(c: &ConnV4, fwd: FwdMethod, rs: u32, out: bool) -> Option<(Addrs, Addrs)> {
    let a = |src, sport, dst, dport| Addrs {
        src,
        dst,
        sport,
        dport,
    };
    let from = match (fwd, out) {
        (
            FwdMethod::FullNat | FwdMethod::Masq | FwdMethod::DirectRoute | FwdMethod::Tunnel,
            false,
        ) => a(c.caddr, c.cport, c.vaddr, c.vport),
        (FwdMethod::FullNat, true) => a(rs, c.dport, c.laddr, c.lport),
        (FwdMethod::Masq, true) => a(rs, c.dport, c.caddr, c.cport),
        _ => return None,
    };
    Some((from, leaves_as(c, fwd, rs, out)))
}

/// What a packet of the conn on a side the mode has (the caller knows
/// it from the block) leaves with: `side`'s second half. The frame goes
/// to DR's real server as it came, one hop older, or, tunnelled, inside
/// a new IPv4 header (`tunnel`).
#[inline(always)]
pub(super) fn leaves_as(c: &ConnV4, fwd: FwdMethod, rs: u32, out: bool) -> Addrs {
    let a = |src, sport, dst, dport| Addrs {
        src,
        dst,
        sport,
        dport,
    };
    match (fwd, out) {
        (FwdMethod::FullNat, false) => a(c.laddr, c.lport, rs, c.dport),
        (FwdMethod::Masq, false) => a(c.caddr, c.cport, rs, c.dport),
        (_, true) => a(c.vaddr, c.vport, c.caddr, c.cport),
        _ => a(c.caddr, c.cport, c.vaddr, c.vport),
    }
}

/// The RFC 1624 sums of a side's changes, folded: the IP header's
/// (addresses, TTL) and the L4 checksum's (addresses in the pseudo
/// header, ports). In line where a new conn's block is worked out: out of
/// it, the call and its arguments cost a new conn eleven instructions.
#[inline(always)]
pub(super) fn sums(from: &Addrs, to: &Addrs) -> [u16; 2] {
    // Whole words, the two ports as one (`fold64`): the same residue as
    // their 16-bit halves added, with fewer adds.
    let w = u64::from;
    let ports = |a: &Addrs| u32::from(a.sport) << 16 | u32::from(a.dport);
    let d_addr = w(!from.src) + w(to.src) + w(!from.dst) + w(to.dst);
    let d_port = w(!ports(from)) + w(ports(to));
    [
        fold64(d_addr + u64::from(TTL_DELTA)),
        fold64(d_addr + d_port),
    ]
}

/// The sums of the change that undoes the one `s` sums (`sums(to', from')`
/// of `s = sums(from, to)`, each reversed): negated, the TTL's delta added
/// once more, as the reply loses a hop as well. The same values `sums`
/// gives, a zero as 0xffff (as `fold` of terms not all zero has it).
pub(super) fn reversed(s: [u16; 2]) -> [u16; 2] {
    let neg = |x: u16| if x == 0xffff { 0xffff } else { !x };
    [fold(u32::from(neg(s[0])) + 2 * TTL_DELTA), neg(s[1])]
}

/// The rewrite of a plain IPv4 TCP or UDP frame that arrived as its
/// side's `from`, with a TTL above 1, for the next hop whose Ethernet
/// addresses are `eth` (`Hop::eth`): those addresses, TTL minus one,
/// `to`'s addresses and ports, both checksums changed by the side's
/// `sums` (frame order, `changed`).
#[inline(always)]
pub(super) fn apply(b: &mut [u8], proto: u8, to: &Addrs, sums: [u16; 2], eth: &[u8; 12]) {
    // A TCP segment's headers up to its checksum taken in one piece (one
    // length check); else Ethernet, IPv4 and the L4 header's first eight
    // bytes (UDP's whole, its checksum in them).
    if proto == IPPROTO_TCP {
        let Some(head) = b.first_chunk_mut::<{ ETH + 38 }>() else {
            return;
        };
        ip_and_ports(head, to, sums[0], eth);
        let n = changed(field(head, ETH + 36), sums[1]);
        head[ETH + 36..ETH + 38].copy_from_slice(&n.to_ne_bytes());
        return;
    }
    let Some(head) = b.first_chunk_mut::<{ ETH + 28 }>() else {
        return;
    };
    ip_and_ports(head, to, sums[0], eth);
    // A UDP datagram without a checksum keeps none, and one whose sum comes
    // to zero sends it as all ones.
    let v = field(head, ETH + 26);
    if v == 0 {
        return;
    }
    let n = match changed(v, sums[1]) {
        0 => 0xffff,
        n => n,
    };
    head[ETH + 26..ETH + 28].copy_from_slice(&n.to_ne_bytes());
}

/// The Ethernet addresses `eth`, the TTL one less and the IP header's sum
/// changed by `ip_sum`.
#[inline(always)]
fn hop<const N: usize>(head: &mut [u8; N], ip_sum: u16, eth: &[u8; 12]) {
    head[..12].copy_from_slice(eth);
    head[ETH + 8] -= 1;
    let ip = changed(field(head, ETH + 10), ip_sum);
    head[ETH + 10..ETH + 12].copy_from_slice(&ip.to_ne_bytes());
}

/// `hop`, and `to`'s addresses and ports.
#[inline(always)]
fn ip_and_ports<const N: usize>(head: &mut [u8; N], to: &Addrs, ip_sum: u16, eth: &[u8; 12]) {
    hop(head, ip_sum, eth);
    head[ETH + 12..ETH + 16].copy_from_slice(&to.src.to_be_bytes());
    head[ETH + 16..ETH + 20].copy_from_slice(&to.dst.to_be_bytes());
    head[ETH + 20..ETH + 22].copy_from_slice(&to.sport.to_be_bytes());
    head[ETH + 22..ETH + 24].copy_from_slice(&to.dport.to_be_bytes());
}

/// DR's frame as it goes on (xmit::dr): as it came, one hop older, for
/// Ethernet addresses `eth` (`apply` without the rewrite: the IP header's
/// sum takes the TTL alone, addresses, ports and L4 checksum stay). In line: kept
/// out of it for the rewriting modes' registers, it cost DR four
/// instructions a packet once the rewrite took UDP's header whole and the
/// others nothing.
#[inline(always)]
pub(super) fn hop_only(b: &mut [u8], eth: &[u8; 12]) {
    if let Some(head) = b.first_chunk_mut::<{ ETH + 20 }>() {
        ttl_only(head, ETH);
        head[..12].copy_from_slice(eth);
    }
}

/// The IPv4 header at `ip` one hop older, nothing else changed: its TTL
/// one less and its checksum with it (`ttl_changed`).
#[inline(always)]
fn ttl_only<const N: usize>(head: &mut [u8; N], ip: usize) {
    head[ip + 8] -= 1;
    let c = ttl_changed(field(head, ip + 10));
    head[ip + 10..ip + 12].copy_from_slice(&c.to_ne_bytes());
}

/// A header checksum field (frame order) after the TTL alone went one
/// down: `changed(field, TTL_DELTA)` as the kernel's ip_decrease_ttl
/// works it out, the field plus 0x0100 (frame order: plus 1 in the low
/// byte read first) with the add's carry, and 0xffff, which summing the
/// header anew never gives, as 0. Three instructions fewer than the
/// general change, on every packet DR sends.
#[inline(always)]
fn ttl_changed(field: u16) -> u16 {
    let c = u32::from(field) + u32::from(0x0100u16.to_be());
    (c + u32::from(c >= 0xffff)) as u16
}

/// TUN's IPIP encapsulation of a plain IPv4 frame that arrived as the
/// conn's client side, as xmit::tun builds it: the inner packet one hop
/// older (`ttl_only`), then a new Ethernet
/// header of `eth` and an IPv4 header `src` → `rs` (protocol 4,
/// TTL 64, the inner DS field and DF, the inner ID mixed with the flow's
/// `ident`). The caller made sure of 20 bytes of headroom. Out of line:
/// the other modes' lane stays as short as it was.
#[inline(never)]
pub(super) fn tunnel<P: Packet>(pkt: &mut P, ident: u16, src: u32, rs: u32, eth: &[u8; 12]) {
    if !pkt.prepend(20) {
        return;
    }
    // The new Ethernet and outer IP headers, then the inner IP header: one
    // view of fixed size, so nothing in it is checked again.
    const IN: usize = ETH + 20;
    let total = pkt.len() - ETH;
    let Some(Ok(f)) = pkt
        .data_mut()
        .get_mut(..IN + 20)
        .map(<&mut [u8; IN + 20]>::try_from)
    else {
        return;
    };
    ttl_only(f, IN);
    f[..12].copy_from_slice(eth);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let outer = tun::OuterV4 {
        tos: f[IN + 1],
        total: total as u16,
        ident: u16::from_be_bytes([f[IN + 4], f[IN + 5]]) ^ ident,
        df: f[IN + 6] & 0x40 != 0,
        proto: tun::PROTO_IPIP,
        src: src.to_be_bytes(),
        dst: rs.to_be_bytes(),
    };
    outer.write(&mut f[ETH..IN]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::XorShift;

    /// A change with nothing changed (`x` to `x`).
    const X: Addrs = Addrs {
        src: 0x0a00_0001,
        dst: 0xc0a8_0101,
        sport: 80,
        dport: 40_000,
    };

    /// 100,000 random changes of a side's addresses and ports, from
    /// `seed`, and none (`X` to `X`).
    fn changes(seed: u64) -> Vec<(Addrs, Addrs)> {
        let mut r = XorShift(seed);
        let mut a = || Addrs {
            src: r.next() as u32,
            dst: r.next() as u32,
            sport: r.next() as u16,
            dport: r.next() as u16,
        };
        let mut v: Vec<(Addrs, Addrs)> = (0..100_000).map(|_| (a(), a())).collect();
        v.push((X, X));
        v
    }

    /// A side's sums are RFC 1624's over the 16-bit words that change
    /// (each old word's complement and the new word, TTL's word one hop
    /// older in the IP header's), folded, for random changes and none.
    #[test]
    fn sums_are_rfc1624s_over_the_changed_16_bit_words() {
        let halves = |a: u32| [a >> 16, a & 0xffff];
        let reference = |from: &Addrs, to: &Addrs| {
            let addr: u32 = [(from.src, to.src), (from.dst, to.dst)]
                .into_iter()
                .flat_map(|(f, t)| halves(!f).into_iter().chain(halves(t)))
                .sum();
            let ports: u32 = [(from.sport, to.sport), (from.dport, to.dport)]
                .into_iter()
                .map(|(f, t)| u32::from(!f) + u32::from(t))
                .sum();
            // TTL minus one: the word (TTL, protocol) less 0x0100.
            [fold(addr + 0xffff - 0x0100), fold(addr + ports)]
        };
        for (from, to) in changes(0x5eed_1624_0001) {
            assert_eq!(
                sums(&from, &to),
                reference(&from, &to),
                "{from:?} -> {to:?}"
            );
        }
    }

    /// The TTL's change alone, the kernel's way, is the general change by
    /// TTL's delta, for every field a header can have.
    #[test]
    fn the_ttls_change_alone_is_the_general_change_for_every_field() {
        for f in 0..=u16::MAX {
            assert_eq!(
                ttl_changed(f),
                changed(f, (TTL_DELTA as u16).to_be()),
                "{f:#06x}"
            );
        }
    }

    /// A reply's sums worked out from the client side's are those summed
    /// from its own addresses and ports, for random ones and for changes
    /// that sum to zero. (Only a change from all-zero words to all-one
    /// words, martian addresses, would have `sums` give 0 where `reversed`
    /// gives 0xffff: both one's-complement zero.)
    #[test]
    fn a_replys_sums_are_the_client_sides_reversed() {
        let back = |a: &Addrs| Addrs {
            src: a.dst,
            dst: a.src,
            sport: a.dport,
            dport: a.sport,
        };
        // Changes that sum to zero, one way (none) and the other.
        let mut cases = changes(0x5eed_1624);
        let y = Addrs {
            src: 0x0001_0a00,
            dst: 0x0101_c0a8,
            sport: 40_000,
            dport: 80,
        };
        cases.push((X, y));
        for (from, to) in cases {
            let want = sums(&back(&to), &back(&from));
            assert_eq!(reversed(sums(&from, &to)), want, "{from:?} -> {to:?}");
        }
    }
}
