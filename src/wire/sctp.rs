//! SCTP (RFC 9260): the common header, the chunk walk, and the CRC32c
//! checksum (RFC 9260 appendix A, the Castagnoli polynomial of RFC 3720).
//!
//! The checksum covers the SCTP packet alone, no pseudo header: rewriting
//! addresses leaves it right, rewriting a port needs it computed afresh.

use super::{be16, be32, Error, Result};

/// Chunk types (RFC 9260 section 3.2) the load balancer looks at.
pub mod chunk {
    pub const DATA: u8 = 0;
    pub const INIT: u8 = 1;
    pub const INIT_ACK: u8 = 2;
    pub const SACK: u8 = 3;
    pub const HEARTBEAT: u8 = 4;
    pub const HEARTBEAT_ACK: u8 = 5;
    pub const ABORT: u8 = 6;
    pub const SHUTDOWN: u8 = 7;
    pub const SHUTDOWN_ACK: u8 = 8;
    pub const ERROR: u8 = 9;
    pub const COOKIE_ECHO: u8 = 10;
    pub const COOKIE_ACK: u8 = 11;
    pub const ECNE: u8 = 12;
    pub const CWR: u8 = 13;
    pub const SHUTDOWN_COMPLETE: u8 = 14;
}

/// A view of an SCTP packet. After `new_checked`, the buffer holds the
/// 12-byte common header and at least one chunk, and the chunks' lengths
/// tile the rest of the buffer exactly (each padded to 4 bytes, the last
/// one's padding optional), so no walk can run past the end.
#[derive(Debug, Clone, Copy)]
pub struct SctpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

/// One chunk of a walked packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk<'a> {
    pub kind: u8,
    pub flags: u8,
    /// The chunk's value: what its length field counts after the 4-byte
    /// chunk header, without padding.
    pub value: &'a [u8],
}

/// The byte offset of the checksum in the common header.
pub const CHECKSUM_AT: usize = 8;

impl<T: AsRef<[u8]>> SctpPacket<T> {
    pub const HEADER_LEN: usize = 12;
    pub const CHUNK_HEADER_LEN: usize = 4;

    /// No validation; getters panic on a buffer shorter than the common
    /// header, and `chunks` stops at the first chunk that does not fit.
    pub const fn new_unchecked(buffer: T) -> Self {
        SctpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Truncated: no room for the common header and one chunk header, or a
    /// chunk's length runs past the buffer. Malformed: a chunk length below
    /// 4, or bytes after the last chunk that no chunk header fits in. The
    /// walk takes at most one step per 4 bytes of buffer.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < Self::HEADER_LEN + Self::CHUNK_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let mut at = Self::HEADER_LEN;
        while at < b.len() {
            if b.len() - at < Self::CHUNK_HEADER_LEN {
                return Err(Error::Malformed);
            }
            let len = usize::from(be16(b, at + 2));
            if len < Self::CHUNK_HEADER_LEN {
                return Err(Error::Malformed);
            }
            if len > b.len() - at {
                return Err(Error::Truncated);
            }
            // The last chunk may go without its padding.
            at = (at + len + 3) & !3;
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }

    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    pub fn verification_tag(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }

    /// The checksum field as the CRC32c value it carries (sent least
    /// significant byte first).
    pub fn checksum(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_le_bytes([
            b[CHECKSUM_AT],
            b[CHECKSUM_AT + 1],
            b[CHECKSUM_AT + 2],
            b[CHECKSUM_AT + 3],
        ])
    }

    /// The chunks in order; stops early at one that does not fit (never
    /// after `new_checked`).
    pub fn chunks(&self) -> Chunks<'_> {
        Chunks {
            b: self.buffer.as_ref(),
            at: Self::HEADER_LEN,
        }
    }

    /// Whether the checksum field holds the packet's CRC32c.
    pub fn verify_checksum(&self) -> bool {
        packet_crc32c(self.buffer.as_ref()) == self.checksum()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> SctpPacket<T> {
    pub fn set_src_port(&mut self, v: u16) {
        super::set_be16(self.buffer.as_mut(), 0, v);
    }

    pub fn set_dst_port(&mut self, v: u16) {
        super::set_be16(self.buffer.as_mut(), 2, v);
    }

    /// Computes the packet's CRC32c and writes it into the checksum field.
    pub fn fill_checksum(&mut self) {
        let c = packet_crc32c(self.buffer.as_ref());
        self.buffer.as_mut()[CHECKSUM_AT..CHECKSUM_AT + 4].copy_from_slice(&c.to_le_bytes());
    }
}

/// Iterator over the chunks of an [`SctpPacket`].
#[derive(Debug, Clone)]
pub struct Chunks<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = Chunk<'a>;

    fn next(&mut self) -> Option<Chunk<'a>> {
        let h = self.b.get(self.at..self.at + 4)?;
        let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        let value = self.b.get(self.at + 4..self.at + len.max(4))?;
        let c = Chunk {
            kind: h[0],
            flags: h[1],
            value,
        };
        self.at = (self.at + len.max(4) + 3) & !3;
        Some(c)
    }
}

/// The chunk type the IPVS state machine reads from a packet: the first
/// chunk's, except that a COOKIE ECHO or COOKIE ACK followed by an ABORT
/// reads as the ABORT (RFC 9260 section 3.3.7: control chunks bundled with
/// an ABORT come before it). None when there is no room for the common
/// header and one chunk header. Looks at two chunk headers at most, with
/// no other validation: the packet path's cheap read.
pub fn state_chunk(l4: &[u8]) -> Option<u8> {
    let first = *l4.get(12)?;
    let len = usize::from(be16(l4.get(..16)?, 14));
    if (first == chunk::COOKIE_ECHO || first == chunk::COOKIE_ACK) && len >= 4 {
        let next = (12 + len + 3) & !3;
        if l4.get(next) == Some(&chunk::ABORT) && l4.len() >= next + 4 {
            return Some(chunk::ABORT);
        }
    }
    Some(first)
}

/// CRC32c (Castagnoli, reflected polynomial 0x82F63B78), RFC 3720 B.4.
pub fn crc32c(data: &[u8]) -> u32 {
    !crc32c_update(!0, data)
}

/// The CRC32c of an SCTP packet as its checksum field should hold it: over
/// the whole packet with the checksum field read as zeros. Short buffers
/// (no whole common header) are summed as they are.
pub fn packet_crc32c(pkt: &[u8]) -> u32 {
    if pkt.len() < CHECKSUM_AT + 4 {
        return crc32c(pkt);
    }
    let mut c = crc32c_update(!0, &pkt[..CHECKSUM_AT]);
    c = crc32c_update(c, &[0; 4]);
    !crc32c_update(c, &pkt[CHECKSUM_AT + 4..])
}

/// The checksum field's value after the first 4 bytes of an SCTP packet
/// (the ports) change from `old` to `new`, from the value `crc` it held
/// before, for a packet of `len` bytes; in O(log len), without reading the
/// packet. The CRC is linear: the change is the CRC (zero start, no final
/// inversion) of `old ^ new` moved through the `len - 4` bytes after it.
/// A checksum that was wrong stays wrong by as much, so the receiver still
/// sees the corruption (as RFC 1624 updates do for TCP and UDP).
pub fn crc32c_ports_update(crc: u32, old: [u8; 4], new: [u8; 4], len: usize) -> u32 {
    let x = [
        old[0] ^ new[0],
        old[1] ^ new[1],
        old[2] ^ new[2],
        old[3] ^ new[3],
    ];
    if x == [0; 4] {
        return crc;
    }
    let delta = crc32c_update(0, &x);
    crc ^ through_zeros(delta, len.saturating_sub(4))
}

/// The register `r` (no final inversion) carried through `n` zero bytes:
/// r times x^(8n) modulo the polynomial, one table step (4 lookups) per
/// bit set in n. IP lengths are 16-bit, so n < 2^16.
fn through_zeros(mut r: u32, n: usize) -> u32 {
    debug_assert!(n < 1 << ZERO_TABLES);
    for (k, t) in ZEROS.iter().enumerate() {
        if n >> k == 0 {
            break;
        }
        if (n >> k) & 1 != 0 {
            r = t[0][(r & 0xff) as usize]
                ^ t[1][((r >> 8) & 0xff) as usize]
                ^ t[2][((r >> 16) & 0xff) as usize]
                ^ t[3][(r >> 24) as usize];
        }
    }
    r
}

/// a(x) b(x) modulo the polynomial, in the reflected bit order (bit 31 is
/// x^0).
const fn multmodp(a: u32, mut b: u32) -> u32 {
    let mut m = 1u32 << 31;
    let mut p = 0u32;
    while m != 0 {
        if a & m != 0 {
            p ^= b;
        }
        m >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
    p
}

const ZERO_TABLES: usize = 16;

/// `ZEROS[k][j][b]`: byte b at byte j of a register times x^(8 * 2^k),
/// i.e. carried through 2^k zero bytes. Multiplying is linear, so a
/// register's product is the XOR of its four bytes' (64 KiB in all).
static ZEROS: [[[u32; 256]; 4]; ZERO_TABLES] = make_zeros();

const fn make_zeros() -> [[[u32; 256]; 4]; ZERO_TABLES] {
    let mut t = [[[0u32; 256]; 4]; ZERO_TABLES];
    // x^8 (one zero byte), then squared: x^(8 * 2^k).
    let mut c = multmodp(1 << 30, 1 << 30); // x^2
    c = multmodp(c, c); // x^4
    c = multmodp(c, c); // x^8
    let mut k = 0;
    while k < ZERO_TABLES {
        let mut j = 0;
        while j < 4 {
            let mut b = 0;
            while b < 256 {
                t[k][j][b] = multmodp((b as u32) << (8 * j), c);
                b += 1;
            }
            j += 1;
        }
        c = multmodp(c, c);
        k += 1;
    }
    t
}

const POLY: u32 = 0x82f6_3b78;

/// Slicing-by-8 tables: `TABLES[0]` is the classic byte table, `TABLES[k]`
/// the same byte pushed through k more zero bytes.
static TABLES: [[u32; 256]; 8] = make_tables();

const fn make_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut s = 1;
    while s < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        s += 1;
    }
    t
}

/// Runs the CRC register `crc` (not inverted) over `data`.
fn crc32c_update(mut crc: u32, data: &[u8]) -> u32 {
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let lo = crc ^ u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        crc = TABLES[7][(lo & 0xff) as usize]
            ^ TABLES[6][((lo >> 8) & 0xff) as usize]
            ^ TABLES[5][((lo >> 16) & 0xff) as usize]
            ^ TABLES[4][(lo >> 24) as usize]
            ^ TABLES[3][usize::from(w[4])]
            ^ TABLES[2][usize::from(w[5])]
            ^ TABLES[1][usize::from(w[6])]
            ^ TABLES[0][usize::from(w[7])];
    }
    for &byte in words.remainder() {
        crc = (crc >> 8) ^ TABLES[0][((crc ^ u32::from(byte)) & 0xff) as usize];
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::XorShift;

    /// Bit at a time from the polynomial's definition, to check the tables.
    fn crc32c_bitwise(data: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    (c >> 1) ^ 0x82f6_3b78
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    #[test]
    fn rfc3720_test_vectors() {
        // RFC 3720 appendix B.4, CRC shown there least significant byte
        // first ("aa 36 91 8a" is 0x8a9136aa).
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        let up: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&up), 0x46dd_794e);
        let down: Vec<u8> = (0..32).rev().collect();
        assert_eq!(crc32c(&down), 0x113f_db5c);
        // The iSCSI read command PDU of B.4.
        let pdu: [u8; 48] = [
            0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14,
            0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(crc32c(&pdu), 0xd996_3a56);
        // The usual check value.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn slicing_matches_bitwise_at_every_length_and_alignment() {
        let mut r = XorShift(0x5c7f);
        let data = r.bytes(300);
        for start in 0..9 {
            for end in start..data.len() {
                assert_eq!(
                    crc32c(&data[start..end]),
                    crc32c_bitwise(&data[start..end]),
                    "{start}..{end}"
                );
            }
        }
    }

    /// An INIT as a peer sends it: common header, one INIT chunk of 20
    /// bytes (initiate tag, a_rwnd, streams, initial TSN).
    fn init_packet() -> Vec<u8> {
        let mut p = vec![
            0x9c, 0x40, 0x00, 0x50, // ports 40000 -> 80
            0, 0, 0, 0, // verification tag 0 on an INIT
            0, 0, 0, 0, // checksum
            1, 0, 0, 20, // INIT, flags 0, length 20
            0x11, 0x22, 0x33, 0x44, // initiate tag
            0, 1, 0, 0, // a_rwnd
            0, 10, 0, 10, // out / in streams
            0, 0, 0, 1, // initial TSN
        ];
        let c = crc32c_bitwise(&p);
        p[8..12].copy_from_slice(&c.to_le_bytes());
        p
    }

    #[test]
    fn view_reads_header_chunks_and_checksum() {
        let p = init_packet();
        let v = SctpPacket::new_checked(&p[..]).unwrap();
        assert_eq!((v.src_port(), v.dst_port()), (40000, 80));
        assert_eq!(v.verification_tag(), 0);
        assert!(v.verify_checksum());
        let chunks: Vec<Chunk> = v.chunks().collect();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].kind, chunk::INIT);
        assert_eq!(chunks[0].value, &p[16..32]);
        assert_eq!(state_chunk(&p), Some(chunk::INIT));

        let mut q = p.clone();
        q[20] ^= 1;
        assert!(!SctpPacket::new_checked(&q[..]).unwrap().verify_checksum());
        let mut w = SctpPacket::new_checked(&mut q[..]).unwrap();
        w.set_dst_port(8080);
        w.fill_checksum();
        assert_eq!(&q[2..4], &[0x1f, 0x90]);
        let mut zeroed = q.clone();
        zeroed[8..12].fill(0);
        assert_eq!(&q[8..12], &crc32c_bitwise(&zeroed).to_le_bytes());
    }

    #[test]
    fn the_ports_update_matches_a_fresh_crc_and_keeps_an_error() {
        let mut r = XorShift(0x5c7f_0001);
        for len in (16..120).chain([300, 1452, 1480, 9000, 65_515]) {
            let mut p = r.bytes(len);
            p[8..12].fill(0);
            let crc = crc32c_bitwise(&p);
            let old = [p[0], p[1], p[2], p[3]];
            let new = (r.next() as u32).to_be_bytes();
            p[..4].copy_from_slice(&new);
            let want = crc32c_bitwise(&p);
            assert_eq!(crc32c_ports_update(crc, old, new, len), want, "len {len}");
            // Wrong by e before, wrong by e after.
            let e = 0x0000_4000;
            assert_eq!(
                crc32c_ports_update(crc ^ e, old, new, len),
                want ^ e,
                "len {len}"
            );
            assert_eq!(crc32c_ports_update(crc, old, old, len), crc);
        }
    }

    #[test]
    fn walk_bounds() {
        let hdr = [0u8; 12];
        let with = |chunks: &[u8]| {
            let mut v = hdr.to_vec();
            v.extend_from_slice(chunks);
            v
        };
        // No chunk at all, or a chunk header cut short.
        assert_eq!(
            SctpPacket::new_checked(&hdr[..]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(state_chunk(&hdr), None);
        assert_eq!(
            SctpPacket::new_checked(&with(&[0, 0, 0])[..]).unwrap_err(),
            Error::Truncated
        );
        // Length below the chunk header, and zero (which would never advance).
        for len in [0u8, 3] {
            assert_eq!(
                SctpPacket::new_checked(&with(&[0, 0, 0, len])[..]).unwrap_err(),
                Error::Malformed
            );
        }
        // Length past the end.
        assert_eq!(
            SctpPacket::new_checked(&with(&[0, 0, 0, 9, 1, 2, 3, 4])[..]).unwrap_err(),
            Error::Truncated
        );
        // The last chunk without its padding is fine; padding then bytes
        // too few for a chunk header are not.
        let ok = with(&[0, 3, 0, 5, 0xaa]);
        let v = SctpPacket::new_checked(&ok[..]).unwrap();
        assert_eq!(v.chunks().count(), 1);
        assert_eq!(v.chunks().next().unwrap().value, &[0xaa]);
        assert_eq!(
            SctpPacket::new_checked(&with(&[0, 3, 0, 5, 0xaa, 0, 0, 0, 9])[..]).unwrap_err(),
            Error::Malformed
        );
        // Two chunks, the first padded: SACK then DATA.
        let two = with(&[3, 0, 0, 5, 1, 0, 0, 0, 0, 3, 0, 4]);
        let kinds: Vec<u8> = SctpPacket::new_checked(&two[..])
            .unwrap()
            .chunks()
            .map(|c| c.kind)
            .collect();
        assert_eq!(kinds, [chunk::SACK, chunk::DATA]);
    }

    #[test]
    fn state_chunk_sees_an_abort_behind_a_cookie() {
        let with = |chunks: &[u8]| {
            let mut v = vec![0u8; 12];
            v.extend_from_slice(chunks);
            v
        };
        // COOKIE ECHO with 5 bytes of cookie (length 9, padded to 12), ABORT.
        let p = with(&[10, 0, 0, 9, 1, 2, 3, 4, 5, 0, 0, 0, 6, 0, 0, 4]);
        assert_eq!(state_chunk(&p), Some(chunk::ABORT));
        // COOKIE ACK then ABORT.
        let p = with(&[11, 0, 0, 4, 6, 0, 0, 4]);
        assert_eq!(state_chunk(&p), Some(chunk::ABORT));
        // A cut-off ABORT header does not count.
        let p = with(&[11, 0, 0, 4, 6, 0]);
        assert_eq!(state_chunk(&p), Some(chunk::COOKIE_ACK));
        // SACK then ABORT: only the cookie chunks look further.
        let p = with(&[3, 0, 0, 4, 6, 0, 0, 4]);
        assert_eq!(state_chunk(&p), Some(chunk::SACK));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut r = XorShift(77);
        for n in 0..2000 {
            let len = (r.next() % 80) as usize;
            let mut b = r.bytes(len);
            // Small chunk lengths, so that walks take several steps.
            if b.len() > 15 && n % 2 == 0 {
                b[14] = 0;
                b[15] = (r.next() % 24) as u8;
            }
            let _ = state_chunk(&b);
            if let Ok(p) = SctpPacket::new_checked(&b[..]) {
                let total: usize = p.chunks().map(|c| 4 + c.value.len()).sum();
                assert!(total <= b.len() - 12);
                let _ = p.verify_checksum();
            }
            let _ = SctpPacket::new_unchecked(&b[..]).chunks().count();
        }
    }
}
