//! The sync message, version 1 (ip_vs_sync.c's `struct ip_vs_sync_mesg`,
//! `ip_vs_sync_v4` / `ip_vs_sync_v6` and their options), read as a view
//! over the datagram's bytes and written into a buffer made once.
//!
//! ```text
//! header   u8 0 | u8 syncid | be16 size | u8 nr_conns | s8 version=1 | u16 spare=0
//! entry    u8 type (bit 0: IPv6) | u8 protocol | be16 version<<12 | size
//!          be32 flags | be16 state | be16 cport | be16 vport | be16 dport
//!          be32 fwmark | be32 timeout (s) | caddr | vaddr | daddr (4 or 16 each)
//!          options: u8 type | u8 len | data; entries start 32-bit aligned
//! ```
//!
//! rvs's own options have IPVS_OPT_F_PARAM (0x40) set in their type: a
//! kernel backup skips an unknown option with that bit and drops the
//! entry for one without it (ip_vs_proc_sync_conn).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::ipvs::proxy_proto::ProxyProtocol;
use crate::ipvs::seqadj::SeqAdj;

pub const HEADER_LEN: usize = 8;
pub const ENTRY_V4_LEN: usize = 36;
pub const ENTRY_V6_LEN: usize = 72;
pub const VERSION: u8 = 1;
const STYPE_F_INET6: u8 = 1;
const SVER_SHIFT: u16 = 12;
const SVER_MASK: u16 = 0x0fff;

pub const OPT_SEQ_DATA: u8 = 1;
pub const OPT_PE_DATA: u8 = 2;
pub const OPT_PE_NAME: u8 = 3;
/// An optional parameter: a receiver that does not know it skips it.
pub const OPT_F_PARAM: u8 = 1 << (7 - 1);
/// rvs: FULLNAT's local address and port (family by length: 6 or 18).
pub const OPT_RVS_LOCAL: u8 = OPT_F_PARAM | 0x10;
/// rvs: the conn's sequence adjustment (`SeqAdj`, 18 bytes).
pub const OPT_RVS_SEQADJ: u8 = OPT_F_PARAM | 0x11;
const SEQ_DATA_LEN: usize = 24;
const SEQADJ_LEN: usize = 18;
/// IP_VS_PEDATA_MAXLEN and IP_VS_PENAME_MAXLEN.
const PEDATA_MAX: usize = 255;
const PENAME_MAX: usize = 16;

/// IP_VS_CONN_F_* as the message carries them.
pub mod flags {
    pub const FWD_MASK: u32 = 0x0007;
    pub const MASQ: u32 = 0x0000;
    pub const LOCALNODE: u32 = 0x0001;
    pub const TUNNEL: u32 = 0x0002;
    pub const DROUTE: u32 = 0x0003;
    /// DPVS's code for FULLNAT (rvs's FwdMethod::FullNat); a kernel has none.
    pub const FULLNAT: u32 = 0x0005;
    pub const SYNC: u32 = 0x0020;
    pub const HASHED: u32 = 0x0040;
    pub const NOOUTPUT: u32 = 0x0080;
    pub const INACTIVE: u32 = 0x0100;
    pub const SEQ_MASK: u32 = 0x0600;
    pub const NO_CPORT: u32 = 0x0800;
    pub const TEMPLATE: u32 = 0x1000;
    pub const ONE_PACKET: u32 = 0x2000;
    /// IP_VS_CONN_F_BACKUP_MASK: what a backup takes from the message.
    pub const BACKUP_MASK: u32 = FWD_MASK | NOOUTPUT | INACTIVE | SEQ_MASK | NO_CPORT | TEMPLATE;
}

/// One conn or template as the message carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    pub proto: u8,
    pub flags: u32,
    pub state: u16,
    pub caddr: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    pub fwmark: u32,
    /// Seconds.
    pub timeout: u32,
    /// rvs: FULLNAT's local address and port.
    pub local: Option<(IpAddr, u16)>,
    /// rvs: the sequence adjustment.
    pub seq_adj: Option<SeqAdj>,
    /// The kernel's SEQ_DATA (in_seq, out_seq): read, not used by rvs.
    pub kernel_seq: bool,
    /// A persistence engine's data and name (PE_DATA, PE_NAME).
    pub pe_data: Option<&'a [u8]>,
    pub pe_name: Option<&'a [u8]>,
}

impl Entry<'_> {
    pub fn is_v6(&self) -> bool {
        self.caddr.is_ipv6()
    }

    pub fn is_template(&self) -> bool {
        self.flags & flags::TEMPLATE != 0
    }

    /// The bytes it takes in a message, options included, without padding.
    pub fn wire_len(&self) -> usize {
        let mut n = if self.is_v6() {
            ENTRY_V6_LEN
        } else {
            ENTRY_V4_LEN
        };
        if let Some((a, _)) = self.local {
            n += 2 + if a.is_ipv6() { 18 } else { 6 };
        }
        if self.seq_adj.is_some() {
            n += 2 + SEQADJ_LEN;
        }
        n
    }
}

/// Why a message, or the rest of it, is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgError {
    /// Shorter than a header, or its size is not the datagram's.
    BadSize,
    /// Not version 1 (a version 0 message, which rvs does not read).
    NotVersion1,
    /// An entry's header, size or options run past the message, or
    /// break the format (ip_vs_proc_sync_conn's negative returns).
    BadEntry,
}

/// Why one entry is skipped while the rest of the message is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntrySkip {
    /// An unknown option without IPVS_OPT_F_PARAM.
    MandatoryOption(u8),
    /// A protocol the backup does not know.
    Protocol(u8),
    /// A state past the protocol's last.
    State(u16),
    /// PE data without a PE name.
    PeData,
}

/// A version 1 message, checked as ip_vs_process_message does.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    data: &'a [u8],
}

impl<'a> Message<'a> {
    /// The whole datagram; `spare` is the 16 bits rvs may use to mark a
    /// message it relays between its own workers (0 on the wire).
    pub fn parse(data: &'a [u8]) -> Result<Message<'a>, MsgError> {
        if data.len() < 4 {
            return Err(MsgError::BadSize);
        }
        if usize::from(u16::from_be_bytes([data[2], data[3]])) != data.len() {
            return Err(MsgError::BadSize);
        }
        if data.len() < HEADER_LEN || data[0] != 0 || data[5] != VERSION {
            return Err(MsgError::NotVersion1);
        }
        Ok(Message { data })
    }

    pub fn syncid(&self) -> u8 {
        self.data[1]
    }

    pub fn nr_conns(&self) -> u8 {
        self.data[4]
    }

    pub fn spare(&self) -> u16 {
        u16::from_be_bytes([self.data[6], self.data[7]])
    }

    pub fn entries(&self) -> Entries<'a> {
        Entries {
            data: self.data,
            at: HEADER_LEN,
            left: self.nr_conns(),
            failed: false,
        }
    }
}

/// The entries in order: each Ok, or skipped, until the first error that
/// drops the rest of the message (the iterator ends after it).
pub struct Entries<'a> {
    data: &'a [u8],
    at: usize,
    left: u8,
    failed: bool,
}

/// One entry read: Ok, skipped, or the end of the message's use.
pub type EntryResult<'a> = Result<Result<Entry<'a>, EntrySkip>, MsgError>;

impl<'a> Iterator for Entries<'a> {
    type Item = EntryResult<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 || self.failed {
            return None;
        }
        self.left -= 1;
        let r = self.read();
        if r.is_err() {
            self.failed = true;
        }
        Some(r)
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn addr(b: &[u8], v6: bool) -> IpAddr {
    if v6 {
        let mut o = [0u8; 16];
        o.copy_from_slice(&b[..16]);
        IpAddr::V6(Ipv6Addr::from(o))
    } else {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    }
}

/// The number of states the kernel knows for a protocol (pp->num_states).
fn num_states(proto: u8) -> Option<u16> {
    match proto {
        6 => Some(crate::ipvs::proto::TCP_STATES as u16),
        17 => Some(1),
        132 => Some(crate::ipvs::proto_sctp::SCTP_STATES as u16),
        _ => None,
    }
}

impl<'a> Entries<'a> {
    fn read(&mut self) -> EntryResult<'a> {
        let d = self.data;
        let p = self.at;
        if p + ENTRY_V4_LEN > d.len() {
            return Err(MsgError::BadEntry);
        }
        let ver_size = be16(d, p + 2);
        let size = usize::from(ver_size & SVER_MASK);
        let end = p + size;
        // Shorter than the fixed part of an IPv4 entry: the kernel drops
        // the rest of the buffer ("too small") and so does this reader.
        if size < ENTRY_V4_LEN || end > d.len() || ver_size >> SVER_SHIFT != 0 {
            return Err(MsgError::BadEntry);
        }
        // The next entry starts 32-bit aligned after this one.
        self.at = p + ((size + 3) & !3);
        let e = &d[p..end];
        let v6 = match e[0] {
            STYPE_F_INET6 => true,
            0 => false,
            _ => return Err(MsgError::BadEntry),
        };
        let fixed = if v6 { ENTRY_V6_LEN } else { ENTRY_V4_LEN };
        if fixed > e.len() {
            return Err(MsgError::BadEntry);
        }
        let alen = if v6 { 16 } else { 4 };
        let mut entry = Entry {
            proto: e[1],
            flags: be32(e, 4),
            state: be16(e, 8),
            cport: be16(e, 10),
            vport: be16(e, 12),
            dport: be16(e, 14),
            fwmark: be32(e, 16),
            timeout: be32(e, 20),
            caddr: addr(&e[24..], v6),
            vaddr: addr(&e[24 + alen..], v6),
            daddr: addr(&e[24 + 2 * alen..], v6),
            local: None,
            seq_adj: None,
            kernel_seq: false,
            pe_data: None,
            pe_name: None,
        };
        let mut skip = None;
        let mut o = fixed;
        while o < e.len() {
            if o + 2 > e.len() {
                return Err(MsgError::BadEntry);
            }
            let (ptype, plen) = (e[o], usize::from(e[o + 1]));
            o += 2;
            if plen == 0 || o + plen > e.len() {
                return Err(MsgError::BadEntry);
            }
            let data = &e[o..o + plen];
            o += plen;
            // rvs's own types first: they have OPT_F_PARAM set.
            match ptype {
                OPT_RVS_LOCAL => {
                    entry.local = Some(match plen {
                        6 => (addr(data, false), be16(data, 4)),
                        18 => (addr(data, true), be16(data, 16)),
                        _ => return Err(MsgError::BadEntry),
                    });
                    continue;
                }
                OPT_RVS_SEQADJ => {
                    if plen != SEQADJ_LEN {
                        return Err(MsgError::BadEntry);
                    }
                    entry.seq_adj = Some(SeqAdj {
                        ins_at: be32(data, 0),
                        ins_len: be32(data, 4),
                        ins_proto: proxy_protocol_of(data[8]),
                        s_delta: be32(data, 9),
                        ts_delta: be32(data, 13),
                        win_shift: data[17] as i8,
                    });
                    continue;
                }
                _ => {}
            }
            match ptype & !OPT_F_PARAM {
                OPT_SEQ_DATA => {
                    if plen != SEQ_DATA_LEN || entry.kernel_seq {
                        return Err(MsgError::BadEntry);
                    }
                    entry.kernel_seq = true;
                }
                OPT_PE_DATA => {
                    if plen > PEDATA_MAX || entry.pe_data.is_some() {
                        return Err(MsgError::BadEntry);
                    }
                    entry.pe_data = Some(data);
                }
                OPT_PE_NAME => {
                    if plen > PENAME_MAX || entry.pe_name.is_some() {
                        return Err(MsgError::BadEntry);
                    }
                    entry.pe_name = Some(data);
                }
                _ if ptype & OPT_F_PARAM == 0 => {
                    // The kernel stops reading this entry here.
                    return Ok(Err(EntrySkip::MandatoryOption(ptype)));
                }
                _ => {}
            }
        }
        entry.flags = (entry.flags & flags::BACKUP_MASK) | flags::SYNC;
        if !entry.is_template() {
            match num_states(entry.proto) {
                None => skip = Some(EntrySkip::Protocol(entry.proto)),
                Some(n) if entry.state >= n => skip = Some(EntrySkip::State(entry.state)),
                _ => {}
            }
        }
        if skip.is_none() && entry.pe_data.is_some() && entry.pe_name.is_none() {
            skip = Some(EntrySkip::PeData);
        }
        Ok(match skip {
            Some(s) => Err(s),
            None => Ok(entry),
        })
    }
}

fn proxy_protocol_of(b: u8) -> ProxyProtocol {
    match b {
        1 => ProxyProtocol::V1,
        2 => ProxyProtocol::V2,
        3 => ProxyProtocol::V1Insecure,
        4 => ProxyProtocol::V2Insecure,
        _ => ProxyProtocol::Disable,
    }
}

fn proxy_protocol_byte(p: ProxyProtocol) -> u8 {
    match p {
        ProxyProtocol::Disable => 0,
        ProxyProtocol::V1 => 1,
        ProxyProtocol::V2 => 2,
        ProxyProtocol::V1Insecure => 3,
        ProxyProtocol::V2Insecure => 4,
    }
}

/// Writes `a` at `at`; the bytes written.
#[inline]
fn put_addr(out: &mut [u8], at: usize, a: IpAddr) -> usize {
    match a {
        IpAddr::V4(a) => {
            out[at..at + 4].copy_from_slice(&a.octets());
            4
        }
        IpAddr::V6(a) => {
            out[at..at + 16].copy_from_slice(&a.octets());
            16
        }
    }
}

/// A message being filled: its buffer is made once, with room for the
/// largest message, and written in place.
#[derive(Debug)]
pub struct MsgBuilder {
    buf: Vec<u8>,
    len: usize,
}

/// At most this many entries: nr_conns is 8 bits.
pub const MAX_ENTRIES: u8 = 255;

impl MsgBuilder {
    pub fn new(syncid: u8, maxlen: usize) -> MsgBuilder {
        let maxlen = maxlen.clamp(HEADER_LEN + ENTRY_V6_LEN + 64, 65535);
        let mut b = MsgBuilder {
            buf: vec![0; maxlen],
            len: 0,
        };
        b.reset(syncid);
        b
    }

    /// Empty again, for `syncid`.
    pub fn reset(&mut self, syncid: u8) {
        self.buf[..HEADER_LEN].copy_from_slice(&[0, syncid, 0, HEADER_LEN as u8, 0, VERSION, 0, 0]);
        self.len = HEADER_LEN;
    }

    pub fn is_empty(&self) -> bool {
        self.buf[4] == 0
    }

    pub fn count(&self) -> u8 {
        self.buf[4]
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Whether `e` fits after what is there.
    #[inline]
    pub fn fits(&self, e: &Entry) -> bool {
        let pad = (4 - self.len % 4) % 4;
        self.count() < MAX_ENTRIES && self.len + pad + e.wire_len() <= self.buf.len()
    }

    /// Appends `e`; false (and nothing written) when it does not fit.
    pub fn push(&mut self, e: &Entry) -> bool {
        if !self.fits(e) {
            return false;
        }
        let mut at = self.len;
        while at % 4 != 0 {
            self.buf[at] = 0;
            at += 1;
        }
        let len = e.wire_len();
        let out = &mut self.buf[at..at + len];
        out[0] = if e.is_v6() { STYPE_F_INET6 } else { 0 };
        out[1] = e.proto;
        out[2..4].copy_from_slice(&((len as u16) & SVER_MASK).to_be_bytes());
        out[4..8].copy_from_slice(&(e.flags & !flags::HASHED).to_be_bytes());
        out[8..10].copy_from_slice(&e.state.to_be_bytes());
        out[10..12].copy_from_slice(&e.cport.to_be_bytes());
        out[12..14].copy_from_slice(&e.vport.to_be_bytes());
        out[14..16].copy_from_slice(&e.dport.to_be_bytes());
        out[16..20].copy_from_slice(&e.fwmark.to_be_bytes());
        out[20..24].copy_from_slice(&e.timeout.to_be_bytes());
        let mut o = 24;
        o += put_addr(out, o, e.caddr);
        o += put_addr(out, o, e.vaddr);
        o += put_addr(out, o, e.daddr);
        if let Some((a, port)) = e.local {
            out[o] = OPT_RVS_LOCAL;
            out[o + 1] = if a.is_ipv6() { 18 } else { 6 };
            o += 2;
            o += put_addr(out, o, a);
            out[o..o + 2].copy_from_slice(&port.to_be_bytes());
            o += 2;
        }
        if let Some(s) = e.seq_adj {
            out[o] = OPT_RVS_SEQADJ;
            out[o + 1] = SEQADJ_LEN as u8;
            let d = &mut out[o + 2..o + 2 + SEQADJ_LEN];
            d[0..4].copy_from_slice(&s.ins_at.to_be_bytes());
            d[4..8].copy_from_slice(&s.ins_len.to_be_bytes());
            d[8] = proxy_protocol_byte(s.ins_proto);
            d[9..13].copy_from_slice(&s.s_delta.to_be_bytes());
            d[13..17].copy_from_slice(&s.ts_delta.to_be_bytes());
            d[17] = s.win_shift as u8;
        }
        self.len = at + len;
        let size = self.len as u16;
        self.buf[2..4].copy_from_slice(&size.to_be_bytes());
        self.buf[4] += 1;
        true
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
