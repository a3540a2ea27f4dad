//! The TCP sequence core: one conn whose sequence space differs on its two
//! sides, kept consistent for the life of the conn.
//!
//! Two features make the sides differ, and both may hold at once:
//! - the proxy protocol puts `ins_len` bytes in front of the client's first
//!   payload byte (client sequence `ins_at`), so every later client byte
//!   sits `ins_len` further on at the real server, and the server's
//!   acknowledgements count bytes the client never sent;
//! - the SYN proxy answers the client with its own ISN (a cookie) and
//!   timestamp clock before the real server picks its own, so the server's
//!   stream and timestamps are shifted by `s_delta` and `ts_delta`, and its
//!   window scale may differ from the one the client was promised.
//!
//! Client → real server: sequence numbers after `ins_at` gain `ins_len`;
//! acknowledgements and SACK blocks (which count the server's stream) gain
//! `s_delta`; the timestamp echo gains `ts_delta`. Real server → client:
//! the reverse, with acknowledgements of the inserted bytes themselves
//! folded onto `ins_at` (the client never sent them, so it must not see
//! them acknowledged), and the window rescaled by `win_shift`. The
//! kernel's ip_vs_app keeps the same two deltas (in_seq/out_seq) for its
//! FTP helper; the timestamp and window terms are the SYN proxy's.
//!
//! Every field changes in place with an incremental checksum update
//! (RFC 1624), like the address rewrite, so a corrupt segment stays
//! detectably corrupt.

use super::{be16, check_l4, parse_ip, set16, Ip, PROTO_TCP};
use crate::counters::DropReason;
pub use crate::ipvs::seqadj::{seq_after, SeqAdj};
use crate::packet::Packet;
use crate::wire::checksum;
use crate::wire::tcp::{ACK, SYN};

const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_SACK: u8 = 5;
const OPT_TIMESTAMP: u8 = 8;

/// The TCP segment of a validated frame and its checksum, being changed.
struct Seg<'a> {
    b: &'a mut [u8],
    l4: usize,
    csum: u16,
}

impl Seg<'_> {
    fn get32(&self, at: usize) -> u32 {
        u32::from_be_bytes([self.b[at], self.b[at + 1], self.b[at + 2], self.b[at + 3]])
    }

    /// Writes a 32-bit field at `at` (an option's may sit at an odd offset
    /// of the segment, so the checksum update covers the 16-bit words the
    /// field straddles).
    fn put32(&mut self, at: usize, v: u32) {
        let start = self.l4 + ((at - self.l4) & !1);
        let end = self.l4 + ((at + 4 - self.l4 + 1) & !1);
        let mut old = [0u8; 6];
        let n = end - start;
        old[..n].copy_from_slice(&self.b[start..end]);
        self.b[at..at + 4].copy_from_slice(&v.to_be_bytes());
        self.csum = checksum::update_bytes(self.csum, &old[..n], &self.b[start..end]);
    }

    fn put16(&mut self, at: usize, v: u16) {
        let old = be16(self.b, at);
        set16(self.b, at, v);
        self.csum = checksum::update_u16(self.csum, old, v);
    }

    /// The kind, offset and length of each SACK and timestamp option (40
    /// bytes of options hold at most four such). A malformed list ends the
    /// walk: the receiver judges it.
    fn options(&self) -> impl Iterator<Item = (u8, usize, usize)> {
        let hl = usize::from(self.b[self.l4 + 12] >> 4) * 4;
        let mut found = [(0u8, 0usize, 0usize); 4];
        let mut n = 0;
        let (mut i, end) = (self.l4 + 20, self.l4 + hl);
        while i < end {
            match self.b[i] {
                OPT_END => break,
                OPT_NOP => i += 1,
                kind => {
                    let Some(&len) = self.b.get(i + 1) else { break };
                    let len = usize::from(len);
                    if len < 2 || i + len > end {
                        break;
                    }
                    if (kind == OPT_SACK || kind == OPT_TIMESTAMP) && n < found.len() {
                        found[n] = (kind, i, len);
                        n += 1;
                    }
                    i += len;
                }
            }
        }
        found.into_iter().take(n)
    }

    fn finish(self) {
        set16(self.b, self.l4 + 16, self.csum);
    }
}

/// Adjusts a client → real server segment (`ip` from `parse_ip` and
/// `check_l4` on TCP, the header present: not a later fragment).
pub(crate) fn to_real(b: &mut [u8], ip: &Ip, adj: &SeqAdj) {
    let l4 = ip.l4;
    let csum = be16(b, l4 + 16);
    let mut s = Seg { b, l4, csum };
    let flags = s.b[l4 + 13];
    if flags & SYN == 0 {
        let seq = s.get32(l4 + 4);
        let new = adj.client_seq_to_server(seq);
        if new != seq {
            s.put32(l4 + 4, new);
        }
    }
    if flags & ACK != 0 && adj.s_delta != 0 {
        let ack = s.get32(l4 + 8);
        s.put32(l4 + 8, ack.wrapping_add(adj.s_delta));
    }
    if adj.s_delta != 0 || adj.ts_delta != 0 {
        for (kind, at, len) in s.options() {
            match kind {
                OPT_SACK if adj.s_delta != 0 => {
                    for edge in (at + 2..at + len - 3).step_by(4) {
                        let v = s.get32(edge);
                        s.put32(edge, v.wrapping_add(adj.s_delta));
                    }
                }
                // The echo is the server's clock, shown shifted to the
                // client; 0 echoes nothing (RFC 7323's SYN case).
                OPT_TIMESTAMP if adj.ts_delta != 0 && len == 10 => {
                    let ecr = s.get32(at + 6);
                    if ecr != 0 {
                        s.put32(at + 6, ecr.wrapping_add(adj.ts_delta));
                    }
                }
                _ => {}
            }
        }
    }
    s.finish();
}

/// Adjusts a real server → client segment (as `to_real`).
pub(crate) fn to_client(b: &mut [u8], ip: &Ip, adj: &SeqAdj) {
    let l4 = ip.l4;
    let csum = be16(b, l4 + 16);
    let mut s = Seg { b, l4, csum };
    let flags = s.b[l4 + 13];
    if adj.s_delta != 0 {
        let seq = s.get32(l4 + 4);
        s.put32(l4 + 4, seq.wrapping_sub(adj.s_delta));
    }
    if flags & ACK != 0 && adj.ins_len != 0 {
        let ack = s.get32(l4 + 8);
        let new = adj.server_ack_to_client(ack);
        if new != ack {
            s.put32(l4 + 8, new);
        }
    }
    // A SYN's window is never scaled (RFC 7323 section 2.2).
    if adj.win_shift != 0 && flags & SYN == 0 {
        let w = u32::from(be16(s.b, l4 + 14));
        let scaled = if adj.win_shift > 0 {
            (w << adj.win_shift.min(16)).min(0xffff)
        } else {
            w >> (-adj.win_shift).min(16)
        };
        s.put16(l4 + 14, scaled as u16);
    }
    if adj.ins_len != 0 || adj.ts_delta != 0 {
        for (kind, at, len) in s.options() {
            match kind {
                OPT_SACK if adj.ins_len != 0 => {
                    for edge in (at + 2..at + len - 3).step_by(4) {
                        let v = s.get32(edge);
                        s.put32(edge, adj.server_ack_to_client(v));
                    }
                }
                OPT_TIMESTAMP if adj.ts_delta != 0 && len == 10 => {
                    let val = s.get32(at + 2);
                    s.put32(at + 2, val.wrapping_sub(adj.ts_delta));
                }
                _ => {}
            }
        }
    }
    s.finish();
    // The server's SYN-ACK promises room for a full segment; the inserted
    // bytes ride in front of the client's first one, so the client is told
    // that much less and its first segment still fits with them.
    if flags & SYN != 0 && adj.ins_len != 0 {
        if let Some(mut t) = b
            .get_mut(l4..ip.end)
            .and_then(|seg| crate::wire::TcpPacket::new_checked(seg).ok())
        {
            if let Ok(Some(mss)) = t.mss() {
                let less = u32::from(mss).saturating_sub(adj.ins_len).max(MIN_MSS);
                let _ = t.set_mss(less as u16);
            }
        }
    }
}

/// The smallest MSS Linux takes from a peer (TCP_MIN_MSS).
const MIN_MSS: u32 = 88;

/// Applies `adj` to a client → real server packet after its rewrite
/// (`xmit::to_real`). Only TCP segments that carry their header change.
pub fn apply_to_real<P: Packet>(pkt: &mut P, adj: &SeqAdj) -> Result<(), DropReason> {
    let Some(ip) = tcp_header(pkt.data())? else {
        return Ok(());
    };
    to_real(pkt.data_mut(), &ip, adj);
    Ok(())
}

/// Applies `adj` to a real server → client packet after its rewrite
/// (`xmit::to_client`).
pub fn apply_to_client<P: Packet>(pkt: &mut P, adj: &SeqAdj) -> Result<(), DropReason> {
    let Some(ip) = tcp_header(pkt.data())? else {
        return Ok(());
    };
    to_client(pkt.data_mut(), &ip, adj);
    Ok(())
}

/// The frame's IP layout when it is a TCP segment with its header.
fn tcp_header(b: &[u8]) -> Result<Option<Ip>, DropReason> {
    let ip = parse_ip(b)?;
    if ip.proto != PROTO_TCP || ip.later_fragment() {
        return Ok(None);
    }
    check_l4(b, &ip)?;
    Ok(Some(ip))
}

#[cfg(test)]
mod tests {
    use etherparse::{TcpHeader, TcpOptionElement as O};

    use super::*;
    use crate::xmit::testkit::*;

    /// A segment with these numbers and options; `syn` adds SYN to ACK.
    fn seg(seq: u32, ack: u32, win: u16, syn: bool, opts: &[O], payload: &[u8]) -> Vec<u8> {
        let mut h = TcpHeader::new(40000, 80, seq, win);
        h.ack = true;
        h.syn = syn;
        h.acknowledgment_number = ack;
        h.set_options(opts).unwrap();
        frame(ip("10.0.0.1"), ip("10.0.0.2"), 64, &L4::Tcp(h), payload)
    }

    fn tcp_of(frame: &[u8]) -> TcpHeader {
        assert_checksums(frame, false);
        TcpHeader::from_slice(&frame[34..]).unwrap().0
    }

    fn real(frame: &[u8], adj: &SeqAdj) -> TcpHeader {
        let (r, out) = run(frame, |p| apply_to_real(p, adj));
        r.unwrap();
        tcp_of(&out)
    }

    fn client(frame: &[u8], adj: &SeqAdj) -> TcpHeader {
        let (r, out) = run(frame, |p| apply_to_client(p, adj));
        r.unwrap();
        tcp_of(&out)
    }

    fn sack(a: u32, b: u32) -> O {
        O::SelectiveAcknowledgement((a, b), [None, None, None])
    }

    #[test]
    fn a_syn_proxy_shift_moves_acks_sack_and_the_echo_towards_the_server() {
        let adj = SeqAdj {
            s_delta: 1000,
            ts_delta: 100,
            ..SeqAdj::default()
        };
        let f = seg(
            5000,
            7000,
            512,
            false,
            &[
                O::Noop,
                O::Noop,
                O::Timestamp(11, 22),
                sack(7100, 7200),
                O::Noop,
                O::Noop,
            ],
            b"hello",
        );
        let t = real(&f, &adj);
        assert_eq!((t.sequence_number, t.acknowledgment_number), (5000, 8000));
        assert_eq!(
            t.options_iterator().map(Result::unwrap).collect::<Vec<_>>(),
            vec![
                O::Noop,
                O::Noop,
                O::Timestamp(11, 122),
                sack(8100, 8200),
                O::Noop,
                O::Noop
            ]
        );
        assert_eq!(t.window_size, 512);
    }

    #[test]
    fn a_syn_proxy_shift_moves_the_servers_stream_clock_and_window_towards_the_client() {
        let adj = SeqAdj {
            s_delta: 1000,
            ts_delta: 100,
            win_shift: 2,
            ..SeqAdj::default()
        };
        let f = seg(
            9000,
            5001,
            1000,
            false,
            &[O::Noop, O::Noop, O::Timestamp(500, 33)],
            b"",
        );
        let t = client(&f, &adj);
        assert_eq!((t.sequence_number, t.acknowledgment_number), (8000, 5001));
        assert_eq!(t.window_size, 4000);
        assert_eq!(
            t.options_iterator().map(Result::unwrap).collect::<Vec<_>>(),
            vec![O::Noop, O::Noop, O::Timestamp(400, 33)]
        );
        // Saturates rather than wraps; a smaller server scale divides.
        let t = client(&seg(9000, 1, 20000, false, &[], b""), &adj);
        assert_eq!(t.window_size, 0xffff);
        let down = SeqAdj {
            win_shift: -1,
            ..adj
        };
        assert_eq!(
            client(&seg(9000, 1, 1000, false, &[], b""), &down).window_size,
            500
        );
        // A SYN-ACK's window is never scaled.
        assert_eq!(
            client(&seg(9000, 1, 1000, true, &[], b""), &adj).window_size,
            1000
        );
    }

    #[test]
    fn inserted_bytes_shift_the_clients_later_bytes_but_not_its_syn_or_first_byte() {
        // 107 bytes in front of client byte 5001 (ISN 5000).
        let adj = SeqAdj {
            ins_at: 5001,
            ins_len: 107,
            ..SeqAdj::default()
        };
        assert_eq!(
            real(&seg(5000, 1, 9, true, &[], b""), &adj).sequence_number,
            5000
        );
        assert_eq!(
            real(&seg(5001, 1, 9, false, &[], b""), &adj).sequence_number,
            5001
        );
        assert_eq!(
            real(&seg(5050, 1, 9, false, &[], b"x"), &adj).sequence_number,
            5157
        );
        // Acks of the server's stream are untouched without a SYN proxy.
        assert_eq!(
            real(&seg(5050, 77, 9, false, &[], b""), &adj).acknowledgment_number,
            77
        );
    }

    #[test]
    fn the_servers_acks_of_inserted_bytes_fold_onto_the_clients_first_byte() {
        let adj = SeqAdj {
            ins_at: 5001,
            ins_len: 107,
            ..SeqAdj::default()
        };
        // Nothing, part of, all of the inserted bytes, then one client byte.
        for (ack, want) in [(5001, 5001), (5050, 5001), (5108, 5001), (5109, 5002)] {
            let t = client(&seg(1, ack, 9, false, &[], b""), &adj);
            assert_eq!(t.acknowledgment_number, want, "ack {ack}");
        }
        // SACK edges the same way; here at an odd offset of the segment,
        // so the checksum update covers the words the edges straddle.
        let f = seg(
            1,
            5001,
            9,
            false,
            &[O::Noop, sack(5120, 5300), O::Noop],
            b"",
        );
        let t = client(&f, &adj);
        assert_eq!(
            t.options_iterator().map(Result::unwrap).collect::<Vec<_>>(),
            vec![O::Noop, sack(5013, 5193), O::Noop]
        );
    }

    #[test]
    fn numbers_wrap_around_the_sequence_space() {
        let adj = SeqAdj {
            ins_at: u32::MAX - 9,
            ins_len: 20,
            s_delta: 5,
            ..SeqAdj::default()
        };
        // Client byte 2^32 - 5 is 5 past ins_at: at the server 20 further.
        assert_eq!(
            real(&seg(u32::MAX - 4, 1, 9, false, &[], b""), &adj).sequence_number,
            15
        );
        let t = client(&seg(2, 16, 9, false, &[], b""), &adj);
        assert_eq!(
            (t.sequence_number, t.acknowledgment_number),
            (u32::MAX - 2, u32::MAX - 3)
        );
    }

    #[test]
    fn other_protocols_and_an_identity_pass_unchanged() {
        let udp = frame(ip("10.0.0.1"), ip("10.0.0.2"), 64, &L4::Udp(1, 2), b"abc");
        let adj = SeqAdj {
            s_delta: 9,
            ..SeqAdj::default()
        };
        let (r, out) = run(&udp, |p| apply_to_real(p, &adj));
        assert_eq!((r, out), (Ok(()), udp));
        let f = seg(
            5000,
            7000,
            512,
            false,
            &[O::Noop, O::Noop, O::Timestamp(1, 2)],
            b"x",
        );
        let (r, out) = run(&f, |p| apply_to_client(p, &SeqAdj::default()));
        assert_eq!((r, out), (Ok(()), f));
        assert!(SeqAdj::default().is_identity());
    }
}
