//! Where the upper-layer header of an IP packet starts: past the IPv4
//! options, or along the IPv6 extension-header chain (RFC 8200 section 4),
//! and whether the packet is a fragment.
//!
//! The IPv6 walk is bounded ([`MAX_EXT_HEADERS`]) and reads only within
//! `payload_len`, so hostile chains end in an error, never a panic or a
//! long loop. It walks hop-by-hop (first only), routing, destination
//! options and fragment headers; anything else (TCP, UDP, ICMPv6, but also
//! AH, ESP, "no next header") is the upper layer, for the caller to take or
//! refuse.

use super::{be16, be32, Error, IpProtocol, Ipv4Packet, Ipv6Packet};

/// Extension headers walked at most before the chain counts as hostile.
/// RFC 8200's recommended order has at most six kinds, each once (the
/// destination options header twice).
pub const MAX_EXT_HEADERS: usize = 8;

const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const DEST_OPTS: u8 = 60;

/// One fragment of a larger datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// The IPv4 identification (16 bits) or the IPv6 fragment header's
    /// (32 bits).
    pub ident: u32,
    /// Offset of this fragment's data in the datagram, in bytes.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
}

impl Fragment {
    /// The first fragment carries the upper-layer header (the ports).
    pub fn is_first(&self) -> bool {
        self.offset == 0
    }
}

/// Where the upper layer of a packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// The protocol of what follows the IP headers.
    pub proto: IpProtocol,
    /// Offset of it from the start of the IP header. In a fragment other
    /// than the first, this is where the fragment's data starts.
    pub offset: usize,
    /// Set when the packet is part of a larger datagram. An IPv6 "atomic
    /// fragment" (offset 0, no more fragments, RFC 6946) is a whole
    /// datagram and shows `None`.
    pub frag: Option<Fragment>,
}

/// Why the IPv6 chain was not walked to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainError {
    /// A header runs past `payload_len`, or a field is not allowed
    /// (hop-by-hop not first, two fragment headers).
    Bad(Error),
    /// A chain this walker does not follow: longer than
    /// [`MAX_EXT_HEADERS`], or a routing header with segments left (the
    /// packet's final destination is not the address it came to).
    Unsupported,
}

impl From<Error> for ChainError {
    fn from(e: Error) -> Self {
        ChainError::Bad(e)
    }
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// The upper layer after the options (the header length), with the
    /// fragment fields when this is a fragment. Needs `check_len`.
    pub fn upper_layer(&self) -> UpperLayer {
        UpperLayer {
            proto: self.protocol(),
            offset: self.header_len(),
            frag: self.is_fragment().then(|| Fragment {
                ident: u32::from(self.ident()),
                offset: self.frag_offset(),
                more: self.more_frags(),
            }),
        }
    }
}

/// Whether `nh` is an extension header the walker follows.
pub fn is_walked_ext(nh: u8) -> bool {
    matches!(nh, HOP_BY_HOP | ROUTING | FRAGMENT | DEST_OPTS)
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Walks the extension headers to the upper layer. Needs `check_len`.
    /// Past the fragment header of a fragment other than the first there
    /// are no more headers, only data.
    pub fn upper_layer(&self) -> Result<UpperLayer, ChainError> {
        let b = self.as_ref();
        let end = Self::HEADER_LEN + usize::from(self.payload_len());
        let mut nh = self.next_header().0;
        let mut at = Self::HEADER_LEN;
        let mut frag: Option<Fragment> = None;
        let mut seen_frag = false;
        for i in 0..=MAX_EXT_HEADERS {
            if !is_walked_ext(nh) {
                return Ok(UpperLayer {
                    proto: IpProtocol(nh),
                    offset: at,
                    frag,
                });
            }
            if i == MAX_EXT_HEADERS {
                break;
            }
            if at + 8 > end {
                return Err(Error::Truncated.into());
            }
            let next = b[at];
            let len = match nh {
                HOP_BY_HOP if i != 0 => return Err(Error::Malformed.into()),
                FRAGMENT => {
                    if seen_frag {
                        return Err(Error::Malformed.into());
                    }
                    seen_frag = true;
                    let w = be16(b, at + 2);
                    let f = Fragment {
                        ident: be32(b, at + 4),
                        offset: w & 0xfff8,
                        more: w & 1 != 0,
                    };
                    if f.offset != 0 || f.more {
                        frag = Some(f);
                    }
                    if f.offset != 0 {
                        return Ok(UpperLayer {
                            proto: IpProtocol(next),
                            offset: at + 8,
                            frag,
                        });
                    }
                    8
                }
                ROUTING if b[at + 3] != 0 => return Err(ChainError::Unsupported),
                _ => (usize::from(b[at + 1]) + 1) * 8,
            };
            if at + len > end {
                return Err(Error::Truncated.into());
            }
            nh = next;
            at += len;
        }
        Err(ChainError::Unsupported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed IPv6 header (2001:db8::1 → 2001:db8::2, hop limit 64) with
    /// `next` and `rest` after it.
    fn v6(next: u8, rest: &[u8]) -> Vec<u8> {
        let mut v = vec![0x60, 0, 0, 0];
        v.extend_from_slice(&(rest.len() as u16).to_be_bytes());
        v.extend_from_slice(&[next, 64]);
        v.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        v.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        v.extend_from_slice(rest);
        v
    }

    fn walk(p: &[u8]) -> Result<UpperLayer, ChainError> {
        Ipv6Packet::new_checked(p).unwrap().upper_layer()
    }

    const UDP_HDR: [u8; 8] = [0x13, 0x88, 0x00, 0x35, 0x00, 0x08, 0x12, 0x34];

    #[test]
    fn plain_udp_has_no_chain() {
        let p = v6(17, &UDP_HDR);
        let u = walk(&p).unwrap();
        assert_eq!((u.proto, u.offset, u.frag), (IpProtocol::UDP, 40, None));
    }

    #[test]
    fn hop_by_hop_then_dest_opts_then_udp() {
        // Hop-by-hop, 8 bytes: next 60, len 0, PadN(4). Destination
        // options, 16 bytes: next 17, len 1, PadN(12).
        let mut rest = vec![60, 0, 1, 4, 0, 0, 0, 0];
        rest.extend_from_slice(&[17, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        rest.extend_from_slice(&UDP_HDR);
        let u = walk(&v6(0, &rest)).unwrap();
        assert_eq!((u.proto, u.offset, u.frag), (IpProtocol::UDP, 64, None));
    }

    #[test]
    fn routing_header_with_no_segments_left_is_walked() {
        // Routing type 4 (SRH) len 2 (24 bytes), segments left 0.
        let mut rest = vec![6, 2, 4, 0];
        rest.resize(24, 0);
        rest.extend_from_slice(&[0; 20]);
        let u = walk(&v6(43, &rest)).unwrap();
        assert_eq!((u.proto, u.offset), (IpProtocol::TCP, 64));
        rest[3] = 1;
        assert_eq!(walk(&v6(43, &rest)), Err(ChainError::Unsupported));
    }

    #[test]
    fn fragments_first_and_later() {
        // Fragment header: next 17, reserved, offset 0 with M, id 0xdeadbeef.
        let mut first = vec![17, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef];
        first.extend_from_slice(&UDP_HDR);
        let u = walk(&v6(44, &first)).unwrap();
        assert_eq!(u.proto, IpProtocol::UDP);
        assert_eq!(u.offset, 48);
        let f = u.frag.unwrap();
        assert_eq!((f.ident, f.offset, f.more), (0xdead_beef, 0, true));
        assert!(f.is_first());
        // Offset 1448 bytes = 181 units: 181 << 3 = 0x05a8, no M.
        let later = [17, 0, 0x05, 0xa8, 0xde, 0xad, 0xbe, 0xef, 9, 9, 9];
        let u = walk(&v6(44, &later)).unwrap();
        assert_eq!((u.proto, u.offset), (IpProtocol::UDP, 48));
        let f = u.frag.unwrap();
        assert_eq!((f.ident, f.offset, f.more), (0xdead_beef, 1448, false));
        assert!(!f.is_first());
        // A later fragment's data is not walked even when it looks like a
        // header: next header 0 there is just a byte.
        let later = [0, 0, 0x00, 0x08, 0, 0, 0, 1, 60, 0, 0, 0, 0, 0, 0, 0];
        let u = walk(&v6(44, &later)).unwrap();
        assert_eq!((u.proto.0, u.offset, u.frag.unwrap().offset), (0, 48, 8));
        // An atomic fragment is a whole datagram.
        let mut atomic = vec![17, 0, 0, 0, 0, 0, 0, 7];
        atomic.extend_from_slice(&UDP_HDR);
        let u = walk(&v6(44, &atomic)).unwrap();
        assert_eq!((u.proto, u.offset, u.frag), (IpProtocol::UDP, 48, None));
    }

    #[test]
    fn hostile_chains_are_refused() {
        // Hop-by-hop after another header.
        let rest = [0, 0, 1, 4, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0];
        assert_eq!(walk(&v6(60, &rest)), Err(ChainError::Bad(Error::Malformed)));
        // Two fragment headers.
        let rest = [44, 0, 0, 1, 0, 0, 0, 1, 17, 0, 0, 1, 0, 0, 0, 1];
        assert_eq!(walk(&v6(44, &rest)), Err(ChainError::Bad(Error::Malformed)));
        // A header longer than the payload.
        let rest = [17, 1, 1, 4, 0, 0, 0, 0];
        assert_eq!(walk(&v6(60, &rest)), Err(ChainError::Bad(Error::Truncated)));
        // Nine destination options headers.
        let mut rest = Vec::new();
        for i in 0..9 {
            rest.extend_from_slice(&[if i == 8 { 17 } else { 60 }, 0, 1, 4, 0, 0, 0, 0]);
        }
        assert_eq!(walk(&v6(60, &rest)), Err(ChainError::Unsupported));
        // Eight are fine.
        assert_eq!(walk(&v6(60, &rest[8..])).unwrap().offset, 40 + 64);
        // AH, ESP and no-next-header end the walk as the upper layer.
        for nh in [51, 50, 59] {
            let u = walk(&v6(60, &[nh, 0, 1, 4, 0, 0, 0, 0])).unwrap();
            assert_eq!((u.proto.0, u.offset), (nh, 48));
        }
    }

    #[test]
    fn ipv4_options_and_fragments() {
        // IHL 6 (a 4-byte option: router alert 0x94 0x04 0 0), MF set,
        // offset 0, id 0x1234, UDP.
        let mut h = vec![
            0x46, 0, 0, 32, 0x12, 0x34, 0x20, 0x00, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x94,
            0x04, 0, 0,
        ];
        h.extend_from_slice(&UDP_HDR);
        let p = Ipv4Packet::new_checked(&h[..]).unwrap();
        let u = p.upper_layer();
        assert_eq!((u.proto, u.offset), (IpProtocol::UDP, 24));
        assert_eq!(
            u.frag,
            Some(Fragment {
                ident: 0x1234,
                offset: 0,
                more: true
            })
        );
        // Offset 185 units = 1480 bytes, no MF.
        h[6] = 0x00;
        h[7] = 185;
        let p = Ipv4Packet::new_checked(&h[..]).unwrap();
        let f = p.upper_layer().frag.unwrap();
        assert_eq!((f.offset, f.more, f.is_first()), (1480, false, false));
        h[7] = 0;
        let p = Ipv4Packet::new_checked(&h[..]).unwrap();
        assert_eq!(p.upper_layer().frag, None);
    }

    #[test]
    fn fuzzed_chains_never_panic() {
        let mut rng = crate::wire::testutil::XorShift(0xf7a9);
        for _ in 0..20_000 {
            let n = (rng.next() % 120) as usize;
            let mut rest = rng.bytes(n);
            for b in rest.iter_mut().step_by(8) {
                *b = [0, 43, 44, 60, 17, 6][(*b % 6) as usize];
            }
            let first = [0u8, 43, 44, 60][(rng.next() % 4) as usize];
            let p = v6(first, &rest);
            if let Ok(u) = walk(&p) {
                assert!(u.offset <= p.len());
            }
        }
    }
}
