//! The SYN proxy's segments: reading what a SYN, an ACK or a real server's
//! SYN-ACK says, and writing the segments the director sends itself (the
//! cookie SYN-ACK, the SYN to the real server, the ACK that completes its
//! handshake, the client's window update, resets).
//!
//! A written frame is a whole new datagram in the packet's buffer: 14
//! bytes left for the Ethernet header (only its type is written; the
//! network stack, or the caller, fills in the addresses), a 20-byte IPv4
//! or 40-byte IPv6 header and the TCP segment, checksums complete.

use std::net::IpAddr;

use super::{check_l4, parse_ip, Ip, ETH_LEN, PROTO_TCP};
use crate::counters::DropReason;
use crate::packet::Packet;
use crate::wire::tcp::{
    OPT_MSS, OPT_NOP, OPT_SACK_PERMITTED, OPT_TIMESTAMP, OPT_WINDOW_SCALE, SYN,
};
use crate::wire::{
    EtherType, EthernetFrame, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, TcpPacket,
};

/// The window scale the director promises a client that offered one
/// (Linux's usual choice for its receive buffers, and its XDP SYN proxy's
/// default): the real server's windows are rescaled to it.
pub const SYNACK_WSCALE: u8 = 7;
/// The MSS a SYN without the option implies (RFC 9293 section 3.7.1).
pub const DEFAULT_MSS: u16 = 536;

/// What the proxy reads of a TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Segment {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// Payload bytes.
    pub data: usize,
    /// Options, as far as they could be walked (a malformed list ends the
    /// walk; what came before counts).
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_ok: bool,
    /// TSval and TSecr.
    pub ts: Option<(u32, u32)>,
}

/// What the TCP segment of a frame says. Anything but a whole,
/// unfragmented TCP segment is BadHeader or Unsupported.
pub fn read<P: Packet>(pkt: &P) -> Result<Segment, DropReason> {
    read_parsed(pkt, None)
}

/// `read` of a frame whose first parse may have checked it already as a
/// plain IPv4 TCP segment, all that `parse_ip` and `check_l4` would
/// (`parsed`, its record): the headers not parsed a second time.
pub(crate) fn read_parsed<P: Packet>(pkt: &P, parsed: Option<Ip>) -> Result<Segment, DropReason> {
    let b = pkt.data();
    debug_assert!(parsed.is_none_or(|p| parse_ip(b) == Ok(p) && check_l4(b, &p).is_ok()));
    let ip = match parsed {
        Some(ip) if ip.proto == PROTO_TCP && ip.frag.is_none() => ip,
        _ => {
            let ip = parse_ip(b)?;
            if ip.proto != PROTO_TCP {
                return Err(DropReason::Unsupported);
            }
            if ip.frag.is_some() {
                return Err(DropReason::Unsupported);
            }
            check_l4(b, &ip)?;
            ip
        }
    };
    let t = TcpPacket::new_checked(&b[ip.l4..ip.end]).map_err(|_| DropReason::BadHeader)?;
    let mut s = Segment {
        sport: t.src_port(),
        dport: t.dst_port(),
        seq: t.seq_number(),
        ack: t.ack_number(),
        flags: t.flags(),
        window: t.window_len(),
        data: t.payload().len(),
        ..Segment::default()
    };
    for o in t.options_iter() {
        let Ok((kind, body)) = o else { break };
        match (kind, body) {
            (OPT_MSS, &[a, b]) => s.mss = Some(u16::from_be_bytes([a, b])),
            (OPT_WINDOW_SCALE, &[w]) => s.wscale = Some(w),
            (OPT_SACK_PERMITTED, &[]) => s.sack_ok = true,
            (OPT_TIMESTAMP, b) if b.len() == 8 => {
                let v = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                let e = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
                s.ts = Some((v, e));
            }
            _ => {}
        }
    }
    Ok(s)
}

/// A TCP option block, written in the order Linux sends a SYN's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    buf: [u8; 40],
    len: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            buf: [0; 40],
            len: 0,
        }
    }
}

impl Options {
    /// A SYN's or SYN-ACK's options: MSS; then SACK-permitted and the
    /// timestamps (SACK-permitted standing in the timestamps' two NOPs),
    /// or SACK-permitted alone; then the window scale.
    pub fn handshake(mss: u16, sack: bool, ts: Option<(u32, u32)>, wscale: Option<u8>) -> Options {
        let mut o = Options::default();
        o.push(&[OPT_MSS, 4]);
        o.push(&mss.to_be_bytes());
        match (ts, sack) {
            (Some((val, ecr)), sack) => {
                if sack {
                    o.push(&[OPT_SACK_PERMITTED, 2]);
                } else {
                    o.push(&[OPT_NOP, OPT_NOP]);
                }
                o.timestamp(val, ecr);
            }
            (None, true) => o.push(&[OPT_NOP, OPT_NOP, OPT_SACK_PERMITTED, 2]),
            (None, false) => {}
        }
        if let Some(w) = wscale {
            o.push(&[OPT_NOP, OPT_WINDOW_SCALE, 3, w]);
        }
        o
    }

    /// A segment's options after the handshake: the timestamps, if used.
    pub fn established(ts: Option<(u32, u32)>) -> Options {
        let mut o = Options::default();
        if let Some((val, ecr)) = ts {
            o.push(&[OPT_NOP, OPT_NOP]);
            o.timestamp(val, ecr);
        }
        o
    }

    fn timestamp(&mut self, val: u32, ecr: u32) {
        self.push(&[OPT_TIMESTAMP, 10]);
        self.push(&val.to_be_bytes());
        self.push(&ecr.to_be_bytes());
    }

    fn push(&mut self, b: &[u8]) {
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// A segment the director writes.
#[derive(Debug, Clone, Copy)]
pub struct Write<'a> {
    pub src: (IpAddr, u16),
    pub dst: (IpAddr, u16),
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub ttl: u8,
    pub options: &'a Options,
    pub payload: &'a [u8],
}

/// Replaces the packet's contents with the frame of `w` (the Ethernet
/// addresses left as they were). Unsupported when the two addresses are of
/// different families, NoBuffer when the packet cannot hold the frame.
pub fn write<P: Packet>(pkt: &mut P, w: &Write<'_>) -> Result<(), DropReason> {
    let opts = w.options.bytes();
    let tcp_len = 20 + opts.len() + w.payload.len();
    let (ip_len, ethertype) = match (w.src.0, w.dst.0) {
        (IpAddr::V4(_), IpAddr::V4(_)) => (20, EtherType::IPV4),
        (IpAddr::V6(_), IpAddr::V6(_)) => (40, EtherType::IPV6),
        _ => return Err(DropReason::Unsupported),
    };
    let len = ETH_LEN + ip_len + tcp_len;
    if !pkt.set_len(len) || !pkt.is_contiguous() || pkt.len() != len {
        return Err(DropReason::NoBuffer);
    }
    let b = pkt.data_mut();
    EthernetFrame::new_unchecked(&mut b[..]).set_ethertype(ethertype);
    let (ip, seg) = b[ETH_LEN..].split_at_mut(ip_len);
    // The fixed header in one piece, then the options and the payload.
    let mut h = [0u8; 20];
    h[0..2].copy_from_slice(&w.src.1.to_be_bytes());
    h[2..4].copy_from_slice(&w.dst.1.to_be_bytes());
    h[4..8].copy_from_slice(&w.seq.to_be_bytes());
    h[8..12].copy_from_slice(&w.ack.to_be_bytes());
    h[12] = (((20 + opts.len()) / 4) as u8) << 4;
    h[13] = w.flags;
    h[14..16].copy_from_slice(&w.window.to_be_bytes());
    let (head, rest) = seg.split_at_mut(20);
    head.copy_from_slice(&h);
    let (o, data) = rest.split_at_mut(opts.len());
    o.copy_from_slice(opts);
    data.copy_from_slice(w.payload);
    let mut t = TcpPacket::new_unchecked(seg);
    match (w.src.0, w.dst.0) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            Ipv4Repr {
                src: s,
                dst: d,
                protocol: IpProtocol::TCP,
                payload_len: tcp_len,
                ttl: w.ttl,
                dont_frag: true,
            }
            .emit(&mut Ipv4Packet::new_unchecked(ip));
            t.fill_checksum_v4(s, d);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut p = Ipv6Packet::new_unchecked(ip);
            p.set_traffic_class(0);
            p.set_flow_label(0);
            Ipv6Repr {
                src: s,
                dst: d,
                next_header: IpProtocol::TCP,
                payload_len: tcp_len,
                hop_limit: w.ttl,
            }
            .emit(&mut p);
            t.fill_checksum_v6(&s, &d);
        }
        _ => {}
    }
    Ok(())
}

/// Whether a segment is a SYN alone (no ACK, RST or FIN): one that opens.
pub fn is_syn(flags: u8) -> bool {
    use crate::wire::tcp::{ACK, FIN, RST};
    flags & (SYN | ACK | RST | FIN) == SYN
}

/// Whether a segment may carry a cookie: an ACK without SYN, RST or FIN.
pub fn is_bare_ack(flags: u8) -> bool {
    use crate::wire::tcp::{ACK, FIN, RST};
    flags & (SYN | ACK | RST | FIN) == ACK
}

#[cfg(test)]
mod tests {
    use etherparse::{PacketHeaders, TcpOptionElement as O, TransportHeader};

    use super::*;
    use crate::packet::VecPacket;
    use crate::wire::tcp::{ACK, ECE};
    use crate::xmit::testkit::{assert_checksums, frame, ip, tcp, L4};

    fn tcp_of(frame: &[u8]) -> (etherparse::TcpHeader, Vec<u8>) {
        let h = PacketHeaders::from_ethernet_slice(frame).unwrap();
        match h.transport {
            Some(TransportHeader::Tcp(t)) => (t, h.payload.slice().to_vec()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_a_syns_options() {
        let mut l4 = tcp(
            40000,
            80,
            "S",
            &[
                O::MaximumSegmentSize(1400),
                O::SelectiveAcknowledgementPermitted,
                O::Timestamp(7, 0),
                O::Noop,
                O::WindowScale(9),
            ],
        );
        if let L4::Tcp(h) = &mut l4 {
            h.sequence_number = 0xdead_beef;
            h.window_size = 64240;
            h.ece = true;
            h.cwr = true;
        }
        let f = frame(ip("10.0.0.1"), ip("10.0.0.2"), 64, &l4, b"");
        let s = read(&VecPacket::from_bytes(&f, 0)).unwrap();
        assert_eq!(s.seq, 0xdead_beef);
        assert_eq!(s.window, 64240);
        assert_eq!((s.sport, s.dport), (40000, 80));
        assert_eq!(s.mss, Some(1400));
        assert_eq!(s.wscale, Some(9));
        assert!(s.sack_ok);
        assert_eq!(s.ts, Some((7, 0)));
        assert!(is_syn(s.flags));
        assert_eq!(s.flags & ECE, ECE);
        assert_eq!(s.data, 0);
        // A UDP datagram is not the proxy's.
        let u = frame(ip("10.0.0.1"), ip("10.0.0.2"), 64, &L4::Udp(1, 2), b"x");
        assert_eq!(
            read(&VecPacket::from_bytes(&u, 0)),
            Err(DropReason::Unsupported)
        );
    }

    #[test]
    fn writes_a_syn_ack_etherparse_reads_back() {
        for (src, dst) in [("198.18.0.100", "198.18.0.2"), ("fd00::100", "fd00::2")] {
            let opts = Options::handshake(1460, true, Some((983, 7)), Some(SYNACK_WSCALE));
            assert_eq!(opts.bytes().len(), 20);
            // Start from a longer frame: the new one replaces it whole.
            let mut p = VecPacket::from_bytes(&[0xaa; 300], 3);
            write(
                &mut p,
                &Write {
                    src: (ip(src), 80),
                    dst: (ip(dst), 40000),
                    seq: 0x1234_5678,
                    ack: 0xdead_bef0,
                    flags: SYN | ACK,
                    window: 0,
                    ttl: 64,
                    options: &opts,
                    payload: &[],
                },
            )
            .unwrap();
            let out = p.data().to_vec();
            assert_eq!(&out[..12], &[0xaa; 12], "the MACs are the caller's");
            assert_checksums(&out, false);
            let (t, payload) = tcp_of(&out);
            assert!(payload.is_empty());
            assert!(t.syn && t.ack && !t.rst && !t.fin);
            assert_eq!((t.source_port, t.destination_port), (80, 40000));
            assert_eq!(t.sequence_number, 0x1234_5678);
            assert_eq!(t.acknowledgment_number, 0xdead_bef0);
            assert_eq!(t.window_size, 0);
            let got: Vec<O> = t.options_iterator().map(|o| o.unwrap()).collect();
            assert_eq!(
                got,
                vec![
                    O::MaximumSegmentSize(1460),
                    O::SelectiveAcknowledgementPermitted,
                    O::Timestamp(983, 7),
                    O::Noop,
                    O::WindowScale(7),
                ]
            );
        }
    }

    #[test]
    fn option_blocks_for_each_combination() {
        let b = |o: Options| o.bytes().to_vec();
        assert_eq!(b(Options::handshake(536, false, None, None)), [2, 4, 2, 24]);
        assert_eq!(
            b(Options::handshake(1460, true, None, None)),
            [2, 4, 5, 180, 1, 1, 4, 2]
        );
        assert_eq!(
            b(Options::handshake(1460, false, Some((1, 2)), Some(0))),
            [2, 4, 5, 180, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 3, 3, 0]
        );
        assert_eq!(
            b(Options::established(Some((0x01020304, 0x05060708)))),
            [1, 1, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8]
        );
        assert!(b(Options::established(None)).is_empty());
    }

    #[test]
    fn writes_payload_and_refuses_mixed_families() {
        let opts = Options::established(None);
        let mut p = VecPacket::new();
        let w = Write {
            src: (ip("10.0.0.2"), 1),
            dst: (ip("10.0.0.1"), 2),
            seq: 1,
            ack: 2,
            flags: ACK,
            window: 500,
            ttl: 64,
            options: &opts,
            payload: b"GET / HTTP/1.1\r\n\r\n",
        };
        write(&mut p, &w).unwrap();
        let out = p.data().to_vec();
        assert_checksums(&out, false);
        assert_eq!(tcp_of(&out).1, b"GET / HTTP/1.1\r\n\r\n");
        let mixed = Write {
            dst: (ip("fd00::1"), 2),
            ..w
        };
        assert_eq!(write(&mut p, &mixed), Err(DropReason::Unsupported));
    }
}
