//! The parse stage: a frame's 5-tuple, TCP flags (or SCTP event) and
//! fragment, read once (`parse_flow`; the common IPv4 case, and the
//! express lane's, through `wire::plain`'s fixed-offset views).
use super::*;

/// The 5-tuple and TCP flags of a TCP/UDP/SCTP packet.
#[derive(Debug, Clone, Copy)]
pub(super) struct Flow {
    /// What the conn is looked up by and, for a packet that opens one,
    /// what the scheduler sees: as it is, no copy made of it.
    pub(super) t: Tuple,
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
    /// The flow of a packet rvs wrote itself rather than parsed (a SYN
    /// proxy's segment, an ICMP error's quoted tuple): no fragment, and no
    /// first parse for the rewrite to take.
    pub(super) fn written(t: Tuple, tcp_flags: u8) -> Flow {
        Flow {
            t,
            tcp_flags,
            frag: None,
            plain_v4_end: 0,
        }
    }

    /// The first parse's record of a plain IPv4 TCP or UDP frame, in
    /// xmit's terms.
    pub(super) fn ip(&self) -> Option<xmit::Ip> {
        (self.plain_v4_end != 0).then_some(xmit::Ip {
            v6: false,
            l4: ETH + 20,
            end: self.plain_v4_end as usize,
            proto: self.t.proto,
            frag: None,
        })
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
    if let Some(f) = PlainFrame::new(data) {
        return parse_flow_v4(f);
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
        t: Tuple {
            proto,
            saddr: src,
            sport,
            daddr: dst,
            dport,
        },
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

/// `parse_flow` for the common case, IPv4 without options, its fields
/// read in place (`wire::plain`): the same checks as the general views
/// (lengths, not a fragment, the header checksum, TCP data offset / UDP
/// length).
#[inline(always)]
pub(super) fn parse_flow_v4(f: PlainFrame<'_>) -> Option<Flow> {
    let ip = f.ipv4(false)?;
    let proto = ip.protocol();
    let (sport, dport, tcp_flags) = match proto {
        IPPROTO_SCTP => sctp_ports(ip.payload())?,
        _ => ip.ports()?,
    };
    Some(Flow {
        t: Tuple {
            proto,
            saddr: IpAddr::V4(ip.src().into()),
            sport,
            daddr: IpAddr::V4(ip.dst().into()),
            dport,
        },
        tcp_flags,
        frag: None,
        // SCTP's chunk walk is check_l4's, not done here.
        plain_v4_end: if proto == IPPROTO_SCTP { 0 } else { ip.end() },
    })
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
