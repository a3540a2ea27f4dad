//! Stage one of the express lane (see the lane's comment in
//! `express.rs`): a frame's parse (the port's filter, the header sum, the
//! tuple's hash) into a `Head`, and its conn's lookup, with the asks for
//! the index lines and conns of the packets ahead past the prefetch size.
use super::super::Lb;
use crate::ipvs::conn::{ConnId, ConnTable, Spot, NO_HINT};
use crate::ipvs::proto::{tcp_flags, Timeouts};
use crate::ipvs::ServiceSet;
use crate::netstack::{NetConfig, RxVerdict};
use crate::packet::Packet;
use crate::wire::PlainFrame;

/// A frame stage one parsed: plain IPv4 TCP or UDP that the port's filter
/// passes (the first parse's checks, the header checksum unless the device
/// checked it) with a TTL above 1, no TCP segment with SYN, FIN or RST or
/// without ACK (which may change a conn's state: the full path's), its
/// tuple and where the tuple's lookup reads.
#[derive(Debug, Clone, Copy)]
pub(in crate::dataplane::lb) struct Head {
    data: usize,
    at: Spot,
    proto: u8,
    /// The source port in the low half, the destination's in the high
    /// (as `Conn` keeps a client's two), from the wire's word in two steps
    /// rather than from two ports read and joined.
    ports: u32,
    src: u32,
    dst: u32,
    end: u32,
    /// Its conn is looked for in an index line it spilled into
    /// (`ConnTable::ask_conn`).
    spilled: bool,
    /// The conn asked for, compared first (`ConnTable::lookup_v4_hinted`).
    hint: u32,
}

/// A frame `Head` accepted, of a conn.
#[derive(Debug, Clone, Copy)]
pub(in crate::dataplane::lb) struct Lane {
    pub(super) id: ConnId,
    /// Whether it is the conn's reply.
    pub(super) out: bool,
    /// Where the IP datagram ends in the frame.
    pub(super) end: u32,
}

impl Head {
    /// The frame of `pkt`, the header checksum summed unless the device
    /// found it right.
    #[inline(always)]
    fn of<P: Packet>(conns: &ConnTable, net: &NetConfig, pkt: &P) -> Option<Head> {
        let data = pkt.data();
        let f = PlainFrame::new(data)?;
        // A segment that may change its conn's state is the full path's:
        // no filter, sum or lookup here for a SYN flood's packets. So is
        // one without ACK (and without SYN, FIN or RST), which the kernel's
        // table moves to CLOSE (tcp_state_idx finds it no row).
        let state_flags = tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST | tcp_flags::ACK;
        if f.tcp_flags_early()
            .is_some_and(|f| f & state_flags != tcp_flags::ACK)
        {
            return None;
        }
        if net.rx_check(pkt.rx_port(), data) != RxVerdict::Pass {
            return None;
        }
        // One the device found wrong is summed as one it did not check:
        // the full path, which sums every header, would find the same.
        let checked = pkt.rx_ipv4_checksum() == Some(true);
        let ip = f.ipv4(checked)?;
        // A TTL that runs out here: the full path's (time exceeded).
        if ip.ttl() <= 1 {
            return None;
        }
        let proto = ip.protocol();
        // Its checks (a TCP header's length, a UDP length); the ports
        // themselves are taken from the word the hash reads.
        ip.ports()?;
        let (src, dst) = (ip.src(), ip.dst());
        let wire = u32::from_le_bytes(*ip.port_bytes()?);
        // Hashed as the bytes lie (`ConnTable::hash_v4_wire`).
        let h = conns.hash_v4_wire(proto, u64::from_le_bytes(*ip.addr_bytes()?), wire);
        Some(Head {
            data: data.as_ptr() as usize,
            at: conns.spot(h),
            proto,
            ports: wire.swap_bytes().rotate_left(16),
            src,
            dst,
            // The end `ipv4` held the frame to, as it worked it out: read
            // again from the header's total length, the compiler swapped
            // and added it a second time; from the L4 slice's length, it
            // kept the length in three forms, on the stack.
            end: ip.end(),
            spilled: false,
            hint: NO_HINT,
        })
    }

    /// Asks for its conn (`ConnTable::ask_conn`), its index lines come.
    #[inline(always)]
    fn ask_conn(&mut self, conns: &ConnTable) {
        let a = conns.ask_conn(self.at);
        (self.spilled, self.hint) = (a.spilled, a.hint);
    }

    /// Its tuple as the lookups take it: protocol, source and its port,
    /// destination and its port (the ports split from their word).
    #[inline(always)]
    fn tuple(&self) -> (u8, u32, u16, u32, u16) {
        let p = self.ports;
        (self.proto, self.src, p as u16, self.dst, (p >> 16) as u16)
    }

    /// Its lane, if it is of a conn.
    #[inline(always)]
    fn lane(&self, conns: &ConnTable) -> Option<Lane> {
        let (pr, s, sp, d, dp) = self.tuple();
        let (id, out) = conns.lookup_v4_probed(self.at, pr, s, sp, d, dp)?;
        Some(Lane {
            id,
            out,
            end: self.end,
        })
    }

    /// The same, past the prefetch size: the conn asked for first.
    #[inline(always)]
    fn lane_hinted(&self, conns: &ConnTable) -> Option<Lane> {
        let (pr, s, sp, d, dp) = self.tuple();
        let (id, out) = conns.lookup_v4_hinted(self.hint, self.at, pr, s, sp, d, dp)?;
        Some(Lane {
            id,
            out,
            end: self.end,
        })
    }
}

/// Conns from which on stage one prefetches: a table this full (about
/// 260 KiB with its index) is served from the second-level cache at
/// best, and its lookups wait. Below, each packet's lookup is left to
/// stage two (one pass over the burst), which costs a third fewer
/// instructions (fnat-est-1k 309 against 472) and ran as fast at 1K conns
/// on the Xeon measured, 11 % slower on an AMD EPYC (1 MiB of L2). From
/// 4K conns on, the single pass ran 21 % slower there, and 48 % at 15K
/// (bench/RESULTS.md's eighteenth steps; 16K was the bound before).
pub(in crate::dataplane::lb) const PREFETCH_FROM: usize = 2 * 1024;

/// How far ahead of the packet stage two is at it asks for a packet's
/// index lines, and for its conn (whose index line has come by then). Far
/// enough that a miss is served while the packets in between are worked
/// on, near enough that a few misses are out at a time (fnat-est-1m ran
/// fastest from about 8 and 4 to 12 and 6 on the bench's machine; a
/// burst's worth at once, as before, ran 15 % slower).
const INDEX_AHEAD: usize = 10;
pub(in crate::dataplane::lb) const CONN_AHEAD: usize = 5;
/// How far ahead it asks for a conn whose index line spilled (an index
/// nearly full spills some lines: a lookup in a table of 1M conns at its
/// size read a second line for one packet in eight). The other line was
/// asked for at `CONN_AHEAD`, as the first line came.
const SPILL_AHEAD: usize = 2;
/// How many frames stage one parses after a burst's first frame before
/// it asks for that frame's conn: the first packets' index lines, asked
/// for as each is parsed, have come by then, and their conns come while
/// the rest is parsed. Asked for once the parse was done, packet one
/// waited for its index line and then for its conn, in every burst
/// (fnat-est-1m 9.4 Mpps against 10.2 with this lag on an AMD EPYC; lags
/// of 12 and 19 ran about as 16, all 32 index lines asked for in the parse
/// slower: bench/RESULTS.md's eighteenth steps).
pub(in crate::dataplane::lb) const CONN_LAG: usize = 16;

impl Lb {
    /// Stage one of a burst (see the lane's comment in `express.rs`). In a
    /// table too big for the caches it parses and hashes every frame and
    /// asks for the first packets' index lines and conns; stage two asks
    /// for the rest as it goes (`lane`). In a smaller table nothing would overlap: each
    /// packet is parsed and looked up when stage two comes to it.
    /// `timeouts` are those the burst's packets are handed to `input` with.
    pub fn prepare<'a, P: Packet + 'a>(
        &mut self,
        net: &NetConfig,
        svcs: &ServiceSet,
        timeouts: &Timeouts,
        burst: impl Iterator<Item = &'a P>,
    ) {
        let steady = self.conns.steady_ms(timeouts);
        self.express.begin(net, svcs.generation(), steady);
        let conns = &self.conns;
        let x = &mut self.express;
        if conns.len() < x.two_pass_from {
            x.one_pass = true;
            return;
        }
        for p in burst {
            // A frame refused is pushed as nothing but that: pushed as the
            // same `Option` as a head, its fields were stored as well (a
            // SYN flood's packets are refused).
            match Head::of(conns, net, p) {
                Some(h) => {
                    if x.heads.len() < INDEX_AHEAD {
                        conns.ask_lines(h.at);
                    }
                    x.heads.push(Some(h));
                }
                None => x.heads.push(None),
            }
            let last = x.heads.len() - 1;
            if let Some(Some(h)) = last
                .checked_sub(CONN_LAG)
                .filter(|&k| k < CONN_AHEAD)
                .and_then(|k| x.heads.get_mut(k))
            {
                h.ask_conn(conns);
            }
        }
        // A burst too short to have asked for them all as it was parsed.
        let asked = x.heads.len().saturating_sub(CONN_LAG);
        for h in x.heads.iter_mut().take(CONN_AHEAD).skip(asked).flatten() {
            h.ask_conn(conns);
        }
    }

    /// Conns from which on stage one parses a burst ahead of stage two
    /// (`PREFETCH_FROM` unless set): 0 takes every burst the two-pass way,
    /// however small the table (the fuzz target's worker that does).
    pub fn set_two_pass_from(&mut self, conns: usize) {
        self.express.two_pass_from = conns;
    }

    /// Whether the express lane opens new conns (`Lb::open`; on unless
    /// set): off, a conn's first packet takes the full path's forward. A
    /// director that leaves out `prepare` as well sends every packet the
    /// full way (the fuzz target's reference worker).
    pub fn set_express_opens(&mut self, on: bool) {
        self.express.opening = on;
    }

    /// Whether stage one has asked for the conn of each frame of the burst
    /// it parsed, in order (tests).
    #[cfg(test)]
    pub(in crate::dataplane::lb) fn conns_asked(&self) -> Vec<bool> {
        let asked = |h: &Option<Head>| h.is_some_and(|h| h.hint != NO_HINT);
        self.express.heads.iter().map(asked).collect()
    }

    /// The end of the burst `prepare` began: packets handed to `input` from
    /// now on until the next `prepare` are the full path's.
    pub fn end_burst(&mut self) {
        self.express.one_pass = false;
        self.express.heads.clear();
    }

    /// The lane of the packet stage two has come to, if it may take one:
    /// its conn looked up now, from the frame stage one parsed (or, in one
    /// pass, parsed now). A packet that is not the one stage one parsed
    /// next (a caller out of step) takes the full path, and so do the
    /// rest of the burst.
    #[inline(always)]
    pub(in crate::dataplane::lb) fn lane<P: Packet>(
        &mut self,
        net: &NetConfig,
        pkt: &P,
    ) -> Option<Lane> {
        let x = &mut self.express;
        let conns = &self.conns;
        if x.one_pass {
            return Head::of(conns, net, pkt).and_then(|h| h.lane(conns));
        }
        self.lane_ahead(pkt.data().as_ptr() as usize)
    }

    /// `lane` past the prefetch size: the frame stage one parsed for the
    /// packet at `data`, and the asks for the packets ahead. In line: out
    /// of it (once measured as keeping the small table's lane's registers)
    /// it came to cost every case, the small table's too, nine
    /// instructions a packet or more.
    #[inline(always)]
    fn lane_ahead(&mut self, data: usize) -> Option<Lane> {
        let x = &mut self.express;
        let conns = &self.conns;
        let i = x.next;
        x.next += 1;
        if let Some(Some(h)) = x.heads.get(i + INDEX_AHEAD) {
            conns.ask_lines(h.at);
        }
        if let Some(Some(h)) = x.heads.get_mut(i + CONN_AHEAD) {
            h.ask_conn(conns);
        }
        if let Some(Some(h)) = x.heads.get_mut(i + SPILL_AHEAD) {
            if h.spilled {
                h.hint = conns.ask_spilled(h.at);
            }
        }
        // Read in place: a frame stage one passed over (a SYN flood's) is
        // not copied out first.
        let h = x.heads.get(i)?.as_ref()?;
        if h.data != data {
            x.heads.clear();
            return None;
        }
        h.lane_hinted(conns)
    }
}
