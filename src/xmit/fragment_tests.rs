//! The fragmenter against hand-worked layouts: the sizes and offsets below
//! are worked out from the MTU and header lengths by hand (8-byte aligned
//! data of MTU less header per fragment, the rest in the last), the header
//! checksums summed here from the raw bytes, and the data put back together
//! by offset to compare with the original datagram.
use super::*;
use crate::packet::VecPacket;
use crate::xmit::testkit::{fold, ones};

struct Sink {
    sent: Vec<Vec<u8>>,
    /// Buffers left to hand out (None: any number).
    buffers: Option<usize>,
}

impl Sink {
    fn new() -> Sink {
        Sink {
            sent: Vec::new(),
            buffers: None,
        }
    }
}

impl FragSink<VecPacket> for Sink {
    fn alloc(&mut self) -> Option<VecPacket> {
        match &mut self.buffers {
            Some(0) => None,
            Some(n) => {
                *n -= 1;
                Some(VecPacket::new())
            }
            None => Some(VecPacket::new()),
        }
    }
    fn send(&mut self, frag: VecPacket) {
        self.sent.push(frag.data().to_vec());
    }
}

/// An Ethernet frame holding an IPv4 datagram: header of 20 bytes plus
/// `opts` (a multiple of 4), flags/offset word `frag`, protocol UDP, TTL
/// 63, ident 0xbeef, `data_len` bytes of data counting up.
fn v4(opts: &[u8], frag: u16, data_len: usize) -> (Vec<u8>, Vec<u8>) {
    assert_eq!(opts.len() % 4, 0);
    let hl = 20 + opts.len();
    let data: Vec<u8> = (0..data_len).map(|i| (i * 7 % 251) as u8).collect();
    let mut f = vec![0u8; 14];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let mut h = vec![0x40 | (hl / 4) as u8, 0x2a];
    h.extend_from_slice(&((hl + data_len) as u16).to_be_bytes());
    h.extend_from_slice(&[0xbe, 0xef]);
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[63, 17, 0, 0, 192, 0, 2, 1, 198, 51, 100, 7]);
    h.extend_from_slice(opts);
    let c = !fold(ones(&h));
    h[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&h);
    f.extend_from_slice(&data);
    (f, data)
}

fn run(frame: &[u8], mtu: u16, sink: &mut Sink) -> Result<usize, DropReason> {
    fragment(VecPacket::from_bytes(frame, 0), mtu, sink)
}

/// One IPv4 fragment read by hand: (total length, flags/offset word,
/// header bytes, data); asserts its header checksum and the fields every
/// fragment keeps.
fn read_v4(f: &[u8]) -> (usize, u16, Vec<u8>, Vec<u8>) {
    let h = &f[14..];
    let hl = usize::from(h[0] & 0x0f) * 4;
    assert_eq!(fold(ones(&h[..hl])), 0xffff, "header checksum");
    assert_eq!(&h[4..6], &[0xbe, 0xef], "ident");
    assert_eq!((h[1], h[8], h[9]), (0x2a, 63, 17), "tos, ttl, protocol");
    assert_eq!(&h[12..20], &[192, 0, 2, 1, 198, 51, 100, 7]);
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    assert_eq!(f.len(), 14 + total, "frame length");
    let word = u16::from_be_bytes([h[6], h[7]]);
    (total, word, h[..hl].to_vec(), h[hl..total].to_vec())
}

#[test]
fn a_4000_byte_datagram_over_1500_is_1480_1480_and_1020_at_0_185_370() {
    let (f, data) = v4(&[], 0, 3980);
    let mut sink = Sink::new();
    assert_eq!(run(&f, 1500, &mut sink), Ok(3));
    let got: Vec<_> = sink.sent.iter().map(|f| read_v4(f)).collect();
    let layout: Vec<(usize, u16)> = got.iter().map(|g| (g.0, g.1)).collect();
    assert_eq!(
        layout,
        [(1500, 0x2000), (1500, 0x2000 | 185), (1040, 370)],
        "(total, MF | offset/8)"
    );
    let whole: Vec<u8> = got.iter().flat_map(|g| g.3.clone()).collect();
    assert_eq!(whole, data);
}

#[test]
fn options_not_copied_become_nops_after_the_first_fragment() {
    // Router alert (148, copied), record route (7, not copied) with one
    // slot, end of list: 4 + 7 + 1 = 12 bytes, a 32-byte header.
    let opts = [0x94, 4, 0, 0, 7, 7, 4, 10, 0, 0, 1, 0];
    let (f, data) = v4(&opts, 0, 2000);
    let mut sink = Sink::new();
    assert_eq!(run(&f, 1000, &mut sink), Ok(3));
    let got: Vec<_> = sink.sent.iter().map(|f| read_v4(f)).collect();
    // 1000 - 32 = 968, already a multiple of 8: 968 + 968 + 64.
    let layout: Vec<(usize, u16)> = got.iter().map(|g| (g.0, g.1)).collect();
    assert_eq!(layout, [(1000, 0x2000), (1000, 0x2000 | 121), (96, 242)]);
    assert_eq!(&got[0].2[20..], &opts, "the first fragment keeps them all");
    let later = [0x94, 4, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0];
    assert_eq!(&got[1].2[20..], &later);
    assert_eq!(&got[2].2[20..], &later);
    let whole: Vec<u8> = got.iter().flat_map(|g| g.3.clone()).collect();
    assert_eq!(whole, data);
}

#[test]
fn a_fragment_fragmented_again_keeps_its_offset_its_mf_and_its_header() {
    // Bytes 1000.. of some datagram (offset 125), with record route in the
    // header as the first fragmenter left it.
    let opts = [7, 7, 4, 0, 0, 0, 0, 0];
    for (mf, last_mf) in [(0x2000u16, 0x2000u16), (0, 0)] {
        let (f, data) = v4(&opts, mf | 125, 3000);
        let mut sink = Sink::new();
        assert_eq!(run(&f, 1500, &mut sink), Ok(3));
        let got: Vec<_> = sink.sent.iter().map(|f| read_v4(f)).collect();
        // 1500 - 28 = 1472: 1472 + 1472 + 56 at 1000, 2472 and 3944.
        let layout: Vec<(usize, u16)> = got.iter().map(|g| (g.0, g.1)).collect();
        assert_eq!(
            layout,
            [
                (1500, 0x2000 | 125),
                (1500, 0x2000 | 309),
                (84, last_mf | 493)
            ]
        );
        for g in &got {
            assert_eq!(&g.2[20..], &opts, "options as they came");
        }
        let whole: Vec<u8> = got.iter().flat_map(|g| g.3.clone()).collect();
        assert_eq!(whole, data);
    }
}

#[test]
fn an_unaligned_room_is_rounded_down_to_eight_bytes() {
    // 1006 - 20 = 986 -> 984 per fragment: 2000 = 984 + 984 + 32.
    let (f, _) = v4(&[], 0, 2000);
    let mut sink = Sink::new();
    assert_eq!(run(&f, 1006, &mut sink), Ok(3));
    let layout: Vec<(usize, u16)> = sink
        .sent
        .iter()
        .map(|f| read_v4(f))
        .map(|g| (g.0, g.1))
        .collect();
    assert_eq!(layout, [(1004, 0x2000), (1004, 0x2000 | 123), (52, 246)]);
}

#[test]
fn df_no_room_and_no_buffer_are_refused() {
    let (f, _) = v4(&[], 0x4000, 2000);
    assert_eq!(run(&f, 1500, &mut Sink::new()), Err(DropReason::TooBig));
    // A 60-byte header and MTU 67: room for 7 bytes, less than one unit.
    let (f, _) = v4(&[1; 40], 0, 100);
    assert_eq!(run(&f, 67, &mut Sink::new()), Err(DropReason::TooBig));
    let (f, _) = v4(&[], 0, 4000);
    let mut sink = Sink {
        sent: Vec::new(),
        buffers: Some(1),
    };
    assert_eq!(run(&f, 1500, &mut sink), Err(DropReason::NoBuffer));
    assert_eq!(sink.sent.len(), 1, "the first fragment had a buffer");
}

#[test]
fn a_datagram_that_fits_goes_as_it_is() {
    let (f, _) = v4(&[], 0, 1000);
    let mut sink = Sink::new();
    assert_eq!(run(&f, 1500, &mut sink), Ok(1));
    assert_eq!(sink.sent, [f]);
}

/// An IPv6 packet (ipip inside: next header 4) with `plen` bytes of payload.
fn v6(nh: u8, plen: usize) -> (Vec<u8>, Vec<u8>) {
    let data: Vec<u8> = (0..plen).map(|i| (i * 13 % 253) as u8).collect();
    let mut f = vec![0u8; 14];
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(plen as u16).to_be_bytes());
    f.extend_from_slice(&[nh, 64]);
    f.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    f.extend_from_slice(&data);
    (f, data)
}

#[test]
fn ipv6_gets_a_fragment_header_and_1448_byte_parts() {
    let (f, data) = v6(4, 3000);
    let mut sink = Sink::new();
    assert_eq!(run(&f, 1500, &mut sink), Ok(3));
    // 1500 - 40 - 8 = 1452 -> 1448: 1448 + 1448 + 104.
    let mut whole = Vec::new();
    let mut idents = Vec::new();
    let mut layout = Vec::new();
    for g in &sink.sent {
        let h = &g[14..];
        assert_eq!(&h[..4], &[0x60, 0, 0, 0]);
        assert_eq!((h[6], h[7]), (44, 64), "next header Fragment, hop limit");
        assert_eq!(&h[8..40], &f[22..54], "addresses");
        let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
        assert_eq!(g.len(), 14 + 40 + plen);
        let fh = &h[40..48];
        assert_eq!((fh[0], fh[1]), (4, 0), "the payload's next header");
        layout.push((plen, u16::from_be_bytes([fh[2], fh[3]])));
        idents.push(u32::from_be_bytes([fh[4], fh[5], fh[6], fh[7]]));
        whole.extend_from_slice(&h[48..]);
    }
    assert_eq!(layout, [(1456, 1), (1456, 1448 | 1), (112, 2896)]);
    assert!(idents.iter().all(|i| *i == idents[0]), "{idents:?}");
    assert_eq!(whole, data);
    let (g, _) = v6(4, 3000);
    let mut again = Sink::new();
    run(&g, 1500, &mut again).unwrap();
    let other = u32::from_be_bytes(again.sent[0][14 + 44..14 + 48].try_into().unwrap());
    assert_ne!(other, idents[0], "a new datagram, a new identification");
}

#[test]
fn ipv6_with_extension_headers_is_not_fragmented() {
    let (f, _) = v6(0, 3000);
    assert_eq!(run(&f, 1500, &mut Sink::new()), Err(DropReason::TooBig));
}
