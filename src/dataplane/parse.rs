//! The parse stage: a frame's 5-tuple, TCP flags (or SCTP event) and
//! fragment, read once (`parse_flow`; `parse_flow_v4` and the express
//! lane's `plain_v4` for the common IPv4 case, in place).
use super::*;

/// The 5-tuple and TCP flags of a TCP/UDP/SCTP packet.
#[derive(Debug, Clone, Copy)]
pub(super) struct Flow {
    pub(super) proto: u8,
    pub(super) src: IpAddr,
    pub(super) dst: IpAddr,
    pub(super) sport: u16,
    pub(super) dport: u16,
    /// TCP: the flag byte. SCTP: the state machine's `SctpEvent` as u8, or
    /// `SCTP_MALFORMED`.
    pub(super) tcp_flags: u8,
    /// A fragment's datagram, and whether this is its first fragment. A
    /// later one has no ports of its own: 0 until the fragment table lends
    /// the first's.
    pub(super) frag: Option<(FragKey, bool)>,
    /// Where the IP datagram ends, when the first parse found a plain
    /// IPv4 TCP or UDP packet (no options, not a fragment) and checked
    /// all that xmit's parse would: the rewrite then need not parse the
    /// frame again (`Flow::ip`). 0 otherwise, and for a Flow made for, or
    /// kept across, a frame written anew. A u32, not xmit's `Ip`, to keep
    /// the Flow that every packet carries small.
    pub(super) plain_v4_end: u32,
}

/// `Flow::tcp_flags` of an SCTP packet whose chunks do not add up.
pub(super) const SCTP_MALFORMED: u8 = 0xff;

/// The ports and state event of an SCTP packet; None without room for the
/// common header and a chunk header, SCTP_MALFORMED when the chunk walk
/// fails.
pub(super) fn sctp_ports(l4: &[u8]) -> Option<(u16, u16, u8)> {
    let kind = sctp::state_chunk(l4)?;
    let p = SctpPacket::new_unchecked(l4);
    let event = if p.check_len().is_ok() {
        SctpEvent::of_chunk(kind) as u8
    } else {
        SCTP_MALFORMED
    };
    Some((p.src_port(), p.dst_port(), event))
}

impl Flow {
    /// The first parse's record of a plain IPv4 TCP or UDP frame, in
    /// xmit's terms.
    pub(super) fn ip(&self) -> Option<xmit::Ip> {
        (self.plain_v4_end != 0).then_some(xmit::Ip {
            v6: false,
            l4: ETH + 20,
            end: self.plain_v4_end as usize,
            proto: self.proto,
            frag: None,
        })
    }

    pub(super) fn tuple(&self) -> Tuple {
        Tuple {
            proto: self.proto,
            saddr: self.src,
            sport: self.sport,
            daddr: self.dst,
            dport: self.dport,
        }
    }
}

pub(super) fn l4_ports(proto: u8, l4: &[u8]) -> Option<(u16, u16, u8)> {
    match proto {
        IPPROTO_TCP => TcpPacket::new_checked(l4)
            .ok()
            .map(|t| (t.src_port(), t.dst_port(), t.flags())),
        IPPROTO_UDP => UdpPacket::new_checked(l4)
            .ok()
            .map(|u| (u.src_port(), u.dst_port(), 0)),
        IPPROTO_SCTP => sctp_ports(l4),
        _ => None,
    }
}

/// A TCP, UDP or SCTP packet, IPv4 options and IPv6 extension headers
/// stepped over, or a fragment of a TCP or UDP datagram (not of SCTP: its
/// CRC32c covers the whole packet, which no fragment's rewrite can keep
/// right); anything else is the
/// network stack's to answer or count.
pub(super) fn parse_flow(data: &[u8]) -> Option<Flow> {
    if plain_v4_frame(data) {
        return parse_flow_v4(data);
    }
    let eth = EthernetFrame::new_checked(data).ok()?;
    let l3 = data.get(ETH..)?;
    let (upper, src, dst, l4) = match eth.ethertype() {
        EtherType::IPV4 => {
            let ip = Ipv4Packet::new_checked(l3).ok()?;
            if !ip.verify_checksum() {
                return None;
            }
            let u = ip.upper_layer();
            (
                u,
                IpAddr::V4(ip.src_addr()),
                IpAddr::V4(ip.dst_addr()),
                l3.get(u.offset..usize::from(ip.total_len()))?,
            )
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(l3).ok()?;
            let u = ip.upper_layer().ok()?;
            let end = Ipv6Packet::<&[u8]>::HEADER_LEN + usize::from(ip.payload_len());
            (
                u,
                IpAddr::V6(ip.src_addr()),
                IpAddr::V6(ip.dst_addr()),
                l3.get(u.offset..end)?,
            )
        }
        _ => return None,
    };
    let proto = upper.proto.0;
    if proto != u8::from(IpProtocol::TCP)
        && proto != u8::from(IpProtocol::UDP)
        && proto != u8::from(IpProtocol::SCTP)
    {
        return None;
    }
    // The network stack's, which counts it unsupported.
    if proto == IPPROTO_SCTP && upper.frag.is_some() {
        return None;
    }
    let frag = upper.frag.map(|fr| {
        let key = FragKey {
            src,
            dst,
            proto,
            ident: fr.ident,
        };
        (key, fr.is_first())
    });
    let (sport, dport, tcp_flags) = match frag {
        Some((_, false)) => (0, 0, 0),
        _ => l4_ports_of(proto, l4, frag.is_some())?,
    };
    Some(Flow {
        proto,
        src,
        dst,
        sport,
        dport,
        tcp_flags,
        frag,
        plain_v4_end: 0,
    })
}

/// The destination of an IPv6 packet whose extension-header chain the
/// walker refuses (`ChainError::Unsupported`: too long, or a routing header
/// with segments left). Only for packets `parse_flow` turned down.
pub(super) fn refused_ext_chain(data: &[u8]) -> Option<IpAddr> {
    if data.len() < ETH + 40 || data[12..14] != [0x86, 0xdd] || !is_walked_ext(data[ETH + 6]) {
        return None;
    }
    let ip = Ipv6Packet::new_checked(data.get(ETH..)?).ok()?;
    matches!(ip.upper_layer(), Err(ChainError::Unsupported)).then(|| IpAddr::V6(ip.dst_addr()))
}

/// `l4_ports`, but a first fragment's UDP header is checked alone: its
/// length field is the datagram's, longer than the fragment.
pub(super) fn l4_ports_of(proto: u8, l4: &[u8], first_frag: bool) -> Option<(u16, u16, u8)> {
    if first_frag && proto == IPPROTO_UDP {
        let h = l4.get(..8)?;
        let ulen = u16::from_be_bytes([h[4], h[5]]);
        return (ulen >= 8).then(|| {
            (
                u16::from_be_bytes([h[0], h[1]]),
                u16::from_be_bytes([h[2], h[3]]),
                0,
            )
        });
    }
    l4_ports(proto, l4)
}

/// `parse_flow` for the common case, IPv4 without options, reading the
/// fields in place: the same checks (lengths, not a fragment, the header
/// checksum, TCP data offset / UDP length) without the views.
#[inline(always)]
pub(super) fn parse_flow_v4(data: &[u8]) -> Option<Flow> {
    let (ip, l4) = plain_v4(data, false)?;
    let proto = ip[9];
    let (sport, dport, tcp_flags) = match proto {
        IPPROTO_SCTP => sctp_ports(l4)?,
        _ => plain_ports(proto, l4)?,
    };
    let total = 20 + l4.len();
    Some(Flow {
        proto,
        src: IpAddr::V4(std::net::Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15])),
        dst: IpAddr::V4(std::net::Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19])),
        sport,
        dport,
        tcp_flags,
        frag: None,
        // SCTP's chunk walk is check_l4's, not done here.
        plain_v4_end: if proto == IPPROTO_SCTP {
            0
        } else {
            (ETH + total) as u32
        },
    })
}

/// The first frame check of the IPv4 fast parses (`parse_flow`'s and the
/// express lane's): IPv4 with a 20-byte header.
#[inline(always)]
pub(super) fn plain_v4_frame(data: &[u8]) -> bool {
    data.len() >= ETH + 20
        && data[12..14] == [0x08, 0x00]
        && data[ETH] == 0x45
        && (data[ETH + 6] & 0x3f) | data[ETH + 7] == 0
}

/// An IPv4 packet without options that is no fragment, its total length
/// within the frame and its header checksum right: the header and the
/// L4 bytes (up to the total length). The checksum is summed unless
/// `checked` (the device that received the frame found it right).
#[inline(always)]
pub(super) fn plain_v4(data: &[u8], checked: bool) -> Option<(&[u8; 20], &[u8])> {
    let ip: &[u8; 20] = data.get(ETH..ETH + 20)?.try_into().ok()?;
    let be = |at: usize| u16::from_be_bytes([ip[at], ip[at + 1]]);
    let total = usize::from(be(2));
    if total < 20 || ETH + total > data.len() || be(6) & 0x3fff != 0 {
        return None;
    }
    if !checked {
        // The header's one's-complement sum is all ones: its words' plain
        // sum is a multiple of 0xffff (a fold keeps the sum's residue, as
        // 2^16 is 1 modulo 0xffff, and folds a sum above zero, which the
        // total length makes this one, to neither 0 nor more than 0xffff),
        // which the compiler tells by a multiply. By 32-bit words (2^32 is
        // 1 as well), read in the machine's byte order: the residue of
        // byte-swapped words is zero exactly when the other is.
        let w = |at: usize| {
            u64::from(u32::from_ne_bytes([
                ip[at],
                ip[at + 1],
                ip[at + 2],
                ip[at + 3],
            ]))
        };
        if (w(0) + w(4) + w(8) + w(12) + w(16)) % 0xffff != 0 {
            return None;
        }
    }
    Some((ip, data.get(ETH + 20..ETH + total)?))
}

/// The ports and TCP flags of a TCP or UDP header that fits `l4` (the
/// TCP data offset, the UDP length): what xmit's own checks would pass.
#[inline(always)]
pub(super) fn plain_ports(proto: u8, l4: &[u8]) -> Option<(u16, u16, u8)> {
    let be = |h: &[u8], at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
    match proto {
        IPPROTO_TCP => {
            // A data offset of 20 bytes or more within `l4`: the fixed
            // header's 20 there too.
            let h = l4.first_chunk::<20>()?;
            let hl = usize::from(h[12] >> 4) * 4;
            if hl < 20 || l4.len() < hl {
                return None;
            }
            Some((be(h, 0), be(h, 2), h[13]))
        }
        IPPROTO_UDP => {
            let h = l4.first_chunk::<8>()?;
            let ulen = usize::from(be(h, 4));
            if ulen < 8 || ulen > l4.len() {
                return None;
            }
            Some((be(h, 0), be(h, 2), 0))
        }
        _ => None,
    }
}

/// The length of the IP packet in frame `data` as the kernel counts a
/// packet's bytes in the stats (skb->len once ip_rcv has trimmed the link
/// layer's padding off): the header's own length, where the frame holds
/// that much, else what the frame holds. A minimum-size Ethernet frame's
/// padding is no byte of the packet's.
pub(super) fn ip_len(data: &[u8]) -> usize {
    let l3 = data.get(ETH..).unwrap_or_default();
    let own = match EthernetFrame::new_checked(data).map(|e| e.ethertype()) {
        Ok(EtherType::IPV4) => Ipv4Packet::new_checked(l3)
            .ok()
            .map(|ip| usize::from(ip.total_len())),
        Ok(EtherType::IPV6) => Ipv6Packet::new_checked(l3)
            .ok()
            .map(|ip| Ipv6Packet::<&[u8]>::HEADER_LEN + usize::from(ip.payload_len())),
        _ => None,
    };
    own.filter(|&n| n <= l3.len()).unwrap_or(l3.len())
}

/// The data of a UDP packet `parse_flow` accepted (up to the IP packet's
/// end, as the kernel's persistence engines read it), for a service with a
/// persistence engine.
pub(super) fn udp_payload(data: &[u8]) -> &[u8] {
    let l3 = data.get(ETH..).unwrap_or_default();
    let l4 = match EthernetFrame::new_checked(data).map(|e| e.ethertype()) {
        Ok(EtherType::IPV4) => Ipv4Packet::new_checked(l3)
            .ok()
            .and_then(|ip| l3.get(ip.header_len()..usize::from(ip.total_len()))),
        Ok(EtherType::IPV6) => Ipv6Packet::new_checked(l3).ok().and_then(|ip| {
            let start = Ipv6Packet::<&[u8]>::HEADER_LEN;
            l3.get(start..start + usize::from(ip.payload_len()))
        }),
        _ => None,
    };
    l4.filter(|l4| UdpPacket::new_checked(*l4).is_ok())
        .and_then(|l4| l4.get(UdpPacket::<&[u8]>::HEADER_LEN..))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::XorShift;

    /// The header checksum test by residue accepts exactly the headers
    /// whose folded one's-complement sum is all ones (`wire::checksum`,
    /// which folds word by word): random headers with the sum set right,
    /// then one bit off, made to sum to zero and written as 0 or 0xffff
    /// (both one's-complement zeros), or random.
    #[test]
    fn a_header_is_taken_exactly_when_its_sum_is_all_ones() {
        let mut r = XorShift(0x0791_1071);
        let (mut taken, mut refused) = (0, 0);
        for k in 0..200_000 {
            let mut f = [0u8; ETH + 40];
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            let ip = &mut f[ETH..ETH + 20];
            ip.fill_with(|| r.next() as u8);
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&(20 + (k % 21) as u16).to_be_bytes());
            ip[6] &= 0x80;
            ip[7] = 0;
            ip[10..12].fill(0);
            let sum = crate::wire::checksum::checksum(ip);
            match k % 4 {
                0 => ip[10..12].copy_from_slice(&sum.to_be_bytes()),
                1 => {
                    ip[10..12].copy_from_slice(&sum.to_be_bytes());
                    let bit = r.next() as usize % 160;
                    ip[bit / 8] ^= 1 << (bit % 8);
                }
                2 => {
                    // A source word takes up the sum, so that the right one
                    // is 0; written as 0 or as 0xffff, the other
                    // one's-complement zero.
                    let w = u32::from(u16::from_be_bytes([ip[12], ip[13]])) + u32::from(sum);
                    let w = (w & 0xffff) as u16 + (w >> 16) as u16;
                    ip[12..14].copy_from_slice(&w.to_be_bytes());
                    let zero: u16 = if r.next() & 1 == 0 { 0 } else { 0xffff };
                    ip[10..12].copy_from_slice(&zero.to_be_bytes())
                }
                _ => ip[10..12].copy_from_slice(&(r.next() as u16).to_be_bytes()),
            }
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            let plain = ip[0] == 0x45
                && (20..=40).contains(&total)
                && u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff == 0;
            let right = crate::wire::checksum::fold(crate::wire::checksum::sum(ip)) == 0xffff;
            // As the fast parses call it, after the frame's first check.
            let parse = |checked| plain_v4_frame(&f) && plain_v4(&f, checked).is_some();
            let got = parse(false);
            assert_eq!(got, plain && right, "case {k}: {:02x?}", &f[ETH..ETH + 20]);
            assert_eq!(parse(true), plain, "case {k}, summed by the device");
            if got {
                taken += 1;
            } else {
                refused += 1;
            }
        }
        assert!(
            taken > 90_000 && refused > 90_000,
            "{taken} taken, {refused} refused"
        );
    }
}
