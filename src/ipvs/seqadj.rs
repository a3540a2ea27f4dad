//! The numbers that tell how a conn's TCP sequence space differs between
//! its client's side and its real server's (proxy protocol, SYN proxy).
//! Kept with the conn (`ConnTable::set_seq_adj`); src/xmit/seqadj.rs
//! applies them to packets.

use super::proxy_proto::ProxyProtocol;

/// How a conn's TCP numbers differ between the client's side and the real
/// server's. All arithmetic is modulo 2^32, as sequence numbers are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqAdj {
    /// The client sequence number of its first payload byte (its ISN + 1),
    /// in front of which `ins_len` bytes were inserted.
    pub ins_at: u32,
    /// How many bytes the director inserted into the client's stream; 0:
    /// none.
    pub ins_len: u32,
    /// What those bytes are, so that a retransmitted first segment gets
    /// them again.
    pub ins_proto: ProxyProtocol,
    /// The real server's ISN minus the ISN the client was shown.
    pub s_delta: u32,
    /// The real server's TSval minus the TSval the client was shown; 0:
    /// timestamps pass as they are.
    pub ts_delta: u32,
    /// The real server's window scale minus the scale the client was
    /// promised: the server's windows are shifted left by this (right when
    /// negative) on the way to the client.
    pub win_shift: i8,
}

/// Whether sequence number `a` comes after `b` (RFC 1982 arithmetic).
#[inline]
pub fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl SeqAdj {
    /// Where the client's byte `seq` sits in the real server's view.
    #[inline]
    pub fn client_seq_to_server(&self, seq: u32) -> u32 {
        if self.ins_len != 0 && seq_after(seq, self.ins_at) {
            seq.wrapping_add(self.ins_len)
        } else {
            seq
        }
    }

    /// The real server's acknowledgement of the client's stream as the
    /// client must see it: inserted bytes are not the client's to have
    /// acknowledged.
    #[inline]
    pub fn server_ack_to_client(&self, ack: u32) -> u32 {
        if self.ins_len == 0 || !seq_after(ack, self.ins_at) {
            ack
        } else if seq_after(ack, self.ins_at.wrapping_add(self.ins_len)) {
            ack.wrapping_sub(self.ins_len)
        } else {
            self.ins_at
        }
    }

    /// Whether the adjustment changes nothing (a conn that needs none).
    pub fn is_identity(&self) -> bool {
        self.ins_len == 0 && self.s_delta == 0 && self.ts_delta == 0 && self.win_shift == 0
    }
}
