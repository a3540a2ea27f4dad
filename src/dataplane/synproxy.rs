//! The SYN proxy (DPVS's per-service `--synproxy`): the worker answers a
//! SYN to the service itself, with a SYN cookie for its ISN, and keeps
//! nothing; only an ACK carrying a valid cookie makes a conn. The worker
//! then opens the connection to the real server it schedules (a SYN with
//! the client's ISN and the options the cookie kept), resends that SYN
//! while the server is silent (DPVS's defaults: three times, three seconds
//! apart), keeps one segment of the client's meanwhile, and on the
//! server's SYN-ACK completes the server's handshake and splices the two
//! halves: the sequence core (`xmit::seqadj`) shifts the server's stream,
//! timestamps and windows onto what the client was shown for the rest of
//! the conn. A reset or silence from the server resets the client.
//!
//! A SYN flood therefore costs a SYN-ACK per SYN and no conn, no local
//! port, no timer; forged ACKs cost a hash and a counted drop.
//!
//! This is a child of `lb`: conns are scheduled by `Lb::input` as any
//! other, and every segment the proxy sends goes through `Lb::forward`, so
//! it is rewritten (FULLNAT or NAT), counted, routed and given TOA as the
//! conn's own packets are.
use std::net::IpAddr;

use hashbrown::HashMap;

use super::{parse_flow, Flow, Lb};
use crate::counters::DropReason;
use crate::ipvs::conn::{flags as conn_flags, ConnId};
use crate::ipvs::proto::{Direction, Timeouts, IPPROTO_TCP};
use crate::ipvs::proxy_proto::{self, ProxyProtocol};
use crate::ipvs::seqadj::SeqAdj;
use crate::ipvs::syncookie::{self, CookieTuple, Secret, TsOptions};
use crate::ipvs::{FwdMethod, Service, ServiceSet, Tuple};
use crate::netstack::{Millis, NetConfig, Output, Stack};
use crate::packet::Packet;
use crate::wire::tcp::{ACK, CWR, ECE, FIN, RST, SYN};
use crate::xmit::synproxy::{self as seg, Options, Write, DEFAULT_MSS, SYNACK_WSCALE};

/// How often the SYN to a silent real server is sent again, and how far
/// apart (DPVS's rs_syn_max_retry and its SYN_SENT timeout); after the
/// last one's interval the client is reset.
pub const RS_SYN_RETRIES: u8 = 3;
pub const RS_SYN_INTERVAL_MS: Millis = 3_000;
/// Handshakes with real servers one worker keeps at once, at most.
const MAX_HANDSHAKES: usize = 16_384;
/// Client segments kept while real servers answer, per worker, and the
/// largest frame kept (a full-sized segment: the SYN-ACK's window lets
/// the client send one before the server is there).
const MAX_HELD: usize = 256;
const HELD_BYTES: usize = 2048;
/// The window the SYN-ACK offers: one segment, which is all the proxy
/// keeps until the real server's own window takes over.
const SYNACK_WINDOW: u16 = 1460;
const TTL: u8 = 64;
/// Expired handshakes handled per poll, at most.
const POLL_BUDGET: usize = 64;
const NIL: u32 = u32::MAX;
const NO_HELD: u16 = u16::MAX;

/// What a valid cookie ACK says about the conn to open.
pub(super) struct Opening {
    isn: u32,
    cookie: u32,
    mss: u16,
    opts: TsOptions,
    /// The client's TSval and TSecr (the TSecr is the TSval the client was
    /// shown), when the client uses timestamps.
    ts: Option<(u32, u32)>,
    window: u16,
    /// The ACK carries data: the one segment kept.
    keep: bool,
}

/// One handshake with a real server.
#[derive(Debug, Clone, Copy)]
struct Shake {
    conn: Option<ConnId>,
    client: (IpAddr, u16),
    /// The port the client's segments come in by.
    rx_port: u16,
    isn: u32,
    cookie: u32,
    mss: u16,
    opts: TsOptions,
    /// The TSval the client was shown in the SYN-ACK.
    ts_shown: u32,
    /// The client's latest TSval and TSecr, when it uses timestamps.
    ts: Option<(u32, u32)>,
    window: u16,
    retries: u8,
    due: Millis,
    held: u16,
    prev: u32,
    next: u32,
}

impl Shake {
    fn empty(next: u32) -> Shake {
        Shake {
            conn: None,
            client: (IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0),
            rx_port: 0,
            isn: 0,
            cookie: 0,
            mss: 0,
            opts: TsOptions::default(),
            ts_shown: 0,
            ts: None,
            window: 0,
            retries: 0,
            due: 0,
            held: NO_HELD,
            prev: NIL,
            next,
        }
    }
}

/// A worker's SYN-proxy state: its cookie secret and the handshakes with
/// real servers in progress, in a slab allocated up front, on a list in
/// the order they come due (every one is armed for the same interval, so
/// that is the order they were armed in).
pub(super) struct SynProxy {
    pub(super) secret: Secret,
    shakes: Vec<Shake>,
    free: u32,
    head: u32,
    tail: u32,
    live: usize,
    /// The handshake of each conn the proxy is opening, by conn slot.
    by_conn: HashMap<u32, u32>,
    held: Vec<u8>,
    held_len: Vec<u16>,
    held_free: Vec<u16>,
}

impl SynProxy {
    /// State for a worker whose conn table holds `conns`, with a fresh
    /// secret.
    pub(super) fn new(conns: usize) -> SynProxy {
        let n = conns.clamp(1, MAX_HANDSHAKES);
        let held = n.min(MAX_HELD);
        SynProxy {
            secret: Secret::random(),
            shakes: (0..n)
                .map(|i| Shake::empty(if i + 1 < n { i as u32 + 1 } else { NIL }))
                .collect(),
            free: 0,
            head: NIL,
            tail: NIL,
            live: 0,
            // Twice the slots: removals leave tombstones, and hashbrown
            // clears them in place only while the table is at most half
            // full, so it never allocates on the packet path.
            by_conn: HashMap::with_capacity(2 * n),
            held: vec![0; held * HELD_BYTES],
            held_len: vec![0; held],
            held_free: (0..held as u16).rev().collect(),
        }
    }

    #[cfg(test)]
    pub(super) fn set_secret(&mut self, s: Secret) {
        self.secret = s;
    }

    /// Handshakes in progress.
    pub(super) fn len(&self) -> usize {
        self.live
    }

    fn link_tail(&mut self, i: u32) {
        self.shakes[i as usize].prev = self.tail;
        self.shakes[i as usize].next = NIL;
        match self.tail {
            NIL => self.head = i,
            t => self.shakes[t as usize].next = i,
        }
        self.tail = i;
    }

    fn unlink(&mut self, i: u32) {
        let (p, n) = (self.shakes[i as usize].prev, self.shakes[i as usize].next);
        match p {
            NIL => self.head = n,
            p => self.shakes[p as usize].next = n,
        }
        match n {
            NIL => self.tail = p,
            n => self.shakes[n as usize].prev = p,
        }
    }

    /// A handshake for `conn`, due to resend its SYN an interval from now;
    /// None when all are taken.
    fn start(
        &mut self,
        conn: ConnId,
        client: (IpAddr, u16),
        rx_port: u16,
        o: &Opening,
        now: Millis,
    ) -> Option<u32> {
        if self.free == NIL {
            return None;
        }
        let i = self.free;
        self.free = self.shakes[i as usize].next;
        self.shakes[i as usize] = Shake {
            conn: Some(conn),
            client,
            rx_port,
            isn: o.isn,
            cookie: o.cookie,
            mss: o.mss,
            opts: o.opts,
            ts_shown: o.ts.map_or(0, |(_, ecr)| ecr),
            ts: o.ts,
            window: o.window,
            retries: RS_SYN_RETRIES,
            due: now + RS_SYN_INTERVAL_MS,
            ..Shake::empty(NIL)
        };
        self.link_tail(i);
        self.live += 1;
        // A stale entry for the slot (its conn went without the proxy
        // hearing of it) is replaced; its handshake finds out when due.
        self.by_conn.insert(conn.index() as u32, i);
        Some(i)
    }

    fn release(&mut self, i: u32) {
        self.unlink(i);
        let s = &mut self.shakes[i as usize];
        let (conn, held) = (s.conn.take(), s.held);
        s.held = NO_HELD;
        if held != NO_HELD {
            self.held_free.push(held);
        }
        if let Some(slot) = conn.map(|c| c.index() as u32) {
            if self.by_conn.get(&slot) == Some(&i) {
                self.by_conn.remove(&slot);
            }
        }
        self.shakes[i as usize].next = self.free;
        self.free = i;
        self.live -= 1;
    }

    fn rearm(&mut self, i: u32, now: Millis) {
        self.unlink(i);
        self.shakes[i as usize].due = now + RS_SYN_INTERVAL_MS;
        self.link_tail(i);
    }

    /// The first handshake due at `now`.
    fn due(&self, now: Millis) -> Option<u32> {
        (self.head != NIL && self.shakes[self.head as usize].due <= now).then_some(self.head)
    }

    /// Keeps `frame` for handshake `i`; false when it already keeps one,
    /// none is free or the frame is too big.
    fn hold(&mut self, i: u32, frame: &[u8]) -> bool {
        if self.shakes[i as usize].held != NO_HELD || frame.len() > HELD_BYTES {
            return false;
        }
        let Some(h) = self.held_free.pop() else {
            return false;
        };
        let at = usize::from(h) * HELD_BYTES;
        self.held[at..at + frame.len()].copy_from_slice(frame);
        self.held_len[usize::from(h)] = frame.len() as u16;
        self.shakes[i as usize].held = h;
        true
    }

    /// The segment kept for handshake `i`, copied into `pkt`, which then
    /// keeps nothing; false when there was none.
    fn take_held<P: Packet>(&mut self, i: u32, pkt: &mut P) -> bool {
        let h = std::mem::replace(&mut self.shakes[i as usize].held, NO_HELD);
        if h == NO_HELD {
            return false;
        }
        self.held_free.push(h);
        let (at, len) = (
            usize::from(h) * HELD_BYTES,
            usize::from(self.held_len[usize::from(h)]),
        );
        if !pkt.set_len(len) || pkt.len() != len {
            return false;
        }
        pkt.data_mut().copy_from_slice(&self.held[at..at + len]);
        true
    }
}

/// The MSS the SYN-ACK announces: what the smallest port's MTU carries,
/// since the real server (and the port towards it) is not chosen yet.
fn synack_mss(net: &NetConfig, v6: bool) -> u16 {
    let mtu = net.ifaces().iter().map(|i| i.mtu).min().unwrap_or(1500);
    mtu.saturating_sub(if v6 { 60 } else { 40 })
}

/// The smallest MSS Linux takes from a peer (TCP_MIN_MSS).
const MIN_MSS: u16 = 88;

/// How many bytes the proxy protocol puts in front of this flow's data.
fn pp_len(pp: ProxyProtocol, f: &Flow) -> usize {
    if pp == ProxyProtocol::Disable {
        return 0;
    }
    let mut hdr = [0u8; proxy_proto::MAX_LEN];
    proxy_proto::header(pp, (f.t.saddr, f.t.sport), (f.t.daddr, f.t.dport), &mut hdr)
}

/// The tuple of a TCP segment from the client to the VIP (the ones the
/// proxy writes toward the real server on the client's behalf).
fn client_to_vip(client: (IpAddr, u16), vip: (IpAddr, u16)) -> Tuple {
    Tuple {
        proto: IPPROTO_TCP,
        saddr: client.0,
        sport: client.1,
        daddr: vip.0,
        dport: vip.1,
    }
}

fn tuple(f: &Flow) -> CookieTuple {
    CookieTuple {
        saddr: f.t.saddr,
        daddr: f.t.daddr,
        sport: f.t.sport,
        dport: f.t.dport,
    }
}

impl Lb {
    /// Whether conn `id` is one the SYN proxy is still opening.
    #[inline]
    pub(super) fn synproxy_holds(&self, id: ConnId) -> bool {
        self.conns
            .get(id)
            .is_some_and(|c| c.flags() & conn_flags::SYNPROXY != 0)
    }

    /// Handshakes with real servers this worker has in progress.
    pub fn synproxy_handshakes(&self) -> usize {
        self.synproxy.len()
    }

    /// A SYN to a SYN-proxy service: answered in place with the cookie
    /// SYN-ACK, straight back to the MAC it came from (no route or
    /// neighbour lookup: a flood from random sources costs no neighbour
    /// entries either). A service with no real server to take the conn
    /// (all of weight 0) answers nothing, as DPVS does.
    pub(super) fn synproxy_answer<P: Packet>(
        &mut self,
        net: &NetConfig,
        f: &Flow,
        svc: &Service,
        mut pkt: P,
        now: Millis,
        out: &mut impl Output<P>,
    ) {
        if !svc.dests().iter().any(|d| d.weight() > 0) {
            self.counters.dropped(DropReason::NoDest);
            return;
        }
        let pp = svc.config.proxy_protocol;
        let s = match seg::read_parsed(&pkt, f.ip()) {
            Ok(s) => s,
            Err(r) => {
                self.counters.dropped(r);
                return;
            }
        };
        let v6 = f.t.saddr.is_ipv6();
        let (index, _) = syncookie::mss_index(s.mss.unwrap_or(DEFAULT_MSS), v6);
        let cookie = syncookie::make(
            &self.synproxy.secret,
            &tuple(f),
            s.seq,
            syncookie::count_at(now),
            index,
        );
        // ECN, window scale and SACK live in the timestamp: without one
        // the conn has none of them, as with Linux's cookies.
        let ecn = s.flags & (ECE | CWR) == ECE | CWR;
        let ts = s.ts.map(|(val, _)| {
            let o = TsOptions {
                wscale: s.wscale,
                sack: s.sack_ok,
                ecn,
            };
            (syncookie::ts_encode(now as u32, o), val)
        });
        // With the proxy protocol the client's first segment carries its
        // header too, as the server's own SYN-ACK would say.
        let mss = synack_mss(net, v6)
            .saturating_sub(pp_len(pp, f) as u16)
            .max(MIN_MSS);
        let opts = Options::handshake(
            mss,
            ts.is_some() && s.sack_ok,
            ts,
            ts.and(s.wscale).map(|_| SYNACK_WSCALE),
        );
        let flags = SYN | ACK | if ts.is_some() && ecn { ECE } else { 0 };
        let rx = pkt.rx_port();
        let w = Write {
            src: (f.t.daddr, f.t.dport),
            dst: (f.t.saddr, f.t.sport),
            seq: cookie,
            ack: s.seq.wrapping_add(1),
            flags,
            window: SYNACK_WINDOW.min(mss),
            ttl: TTL,
            options: &opts,
            payload: &[],
        };
        if let Err(r) = seg::write(&mut pkt, &w) {
            self.counters.dropped(r);
            return;
        }
        let mine = net.iface(rx).map(|i| i.mac.0);
        let b = pkt.data_mut();
        let (dst, src) = b.split_at_mut(6);
        dst.swap_with_slice(&mut src[..6]);
        if let Some(mac) = mine {
            b[6..12].copy_from_slice(&mac);
        }
        out.send(rx, pkt);
    }

    /// An ACK to a SYN-proxy service with no conn: what its cookie says,
    /// or why it opens nothing.
    pub(super) fn synproxy_check<P: Packet>(
        &self,
        pkt: &P,
        f: &Flow,
        now: Millis,
    ) -> Result<Opening, DropReason> {
        if !seg::is_bare_ack(f.tcp_flags) {
            return Err(DropReason::NoConn);
        }
        let s = seg::read_parsed(pkt, f.ip())?;
        let isn = s.seq.wrapping_sub(1);
        let cookie = s.ack.wrapping_sub(1);
        let count = syncookie::count_at(now);
        let index = syncookie::check(&self.synproxy.secret, &tuple(f), isn, cookie, count)
            .ok_or(DropReason::SynproxyBadCookie)?;
        Ok(Opening {
            isn,
            cookie,
            mss: syncookie::mss_of(index, f.t.saddr.is_ipv6()),
            opts: s
                .ts
                .map_or(TsOptions::default(), |(_, ecr)| syncookie::ts_decode(ecr)),
            ts: s.ts,
            window: s.window,
            keep: s.data > 0,
        })
    }

    /// A conn `input` scheduled for a valid cookie ACK (`pkt`): its
    /// handshake with the real server starts with the SYN.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn synproxy_open<P: Packet>(
        &mut self,
        id: ConnId,
        o: Opening,
        pp: ProxyProtocol,
        f: &Flow,
        net: &NetConfig,
        svcs: &ServiceSet,
        timeouts: &Timeouts,
        pkt: P,
        now: Millis,
        stack: &mut Stack<P>,
        out: &mut impl Output<P>,
    ) {
        // The engine keeps DR and TUN real servers out of SYN-proxy
        // services; a conn to one could not be spliced.
        if !self
            .conns
            .get(id)
            .is_some_and(|c| matches!(c.fwd(), FwdMethod::FullNat | FwdMethod::Masq))
        {
            self.remove_conn(svcs, id, now);
            self.counters.dropped(DropReason::Unsupported);
            return;
        }
        let Some(i) = self
            .synproxy
            .start(id, (f.t.saddr, f.t.sport), pkt.rx_port(), &o, now)
        else {
            self.remove_conn(svcs, id, now);
            self.counters.dropped(DropReason::SynproxyQueueFull);
            return;
        };
        if !o.keep {
            self.counters.consumed.inc();
        } else if !self.synproxy.hold(i, pkt.data()) {
            self.counters.dropped(DropReason::SynproxyQueueFull);
        }
        drop(pkt);
        // The proxy protocol's header goes in front of the client's first
        // byte, as for a conn opened by its SYN.
        let ins_len = pp_len(pp, f) as u32;
        if ins_len != 0 {
            let adj = SeqAdj {
                ins_at: o.isn.wrapping_add(1),
                ins_len,
                ins_proto: pp,
                ..SeqAdj::default()
            };
            self.conns.set_seq_adj(id, adj);
        }
        self.conns.set_synproxy(id, true);
        if !self.synproxy_send_syn(id, i, net, svcs, timeouts, now, stack, out) {
            self.synproxy.release(i);
            self.remove_conn(svcs, id, now);
        }
    }

    /// The handshake of conn `id`, if it is the one the proxy keeps for it.
    fn synproxy_shake(&self, id: ConnId) -> Option<u32> {
        let i = *self.synproxy.by_conn.get(&(id.index() as u32))?;
        let s = &self.synproxy.shakes[i as usize];
        let c = self.conns.get(id)?;
        (s.conn == Some(id) && (c.caddr(), c.cport()) == s.client).then_some(i)
    }

    /// Sends (again) the SYN of handshake `i` to conn `id`'s real server:
    /// the client's ISN, the MSS, and the window scale, SACK permission,
    /// timestamps and ECN the cookie kept. False when the conn cannot be
    /// forwarded at all.
    #[allow(clippy::too_many_arguments)]
    fn synproxy_send_syn<P: Packet>(
        &mut self,
        id: ConnId,
        i: u32,
        net: &NetConfig,
        svcs: &ServiceSet,
        timeouts: &Timeouts,
        now: Millis,
        stack: &mut Stack<P>,
        out: &mut impl Output<P>,
    ) -> bool {
        let Some(c) = self.conns.get(id) else {
            return false;
        };
        let (client, vip) = ((c.caddr(), c.cport()), (c.vaddr(), c.vport()));
        let s = self.synproxy.shakes[i as usize];
        let Some(mut p) = out.alloc() else {
            // The next interval tries again.
            self.counters.dropped(DropReason::NoBuffer);
            return true;
        };
        let ts = s.ts.map(|(val, _)| (val, 0));
        let opts = Options::handshake(s.mss, s.opts.sack, ts, s.opts.wscale);
        let flags = SYN | if s.opts.ecn { ECE | CWR } else { 0 };
        // A SYN's window is not scaled; the client's ACK's is.
        let window = (u32::from(s.window) << s.opts.wscale.unwrap_or(0)).min(0xffff) as u16;
        let w = Write {
            src: client,
            dst: vip,
            seq: s.isn,
            ack: 0,
            flags,
            window,
            ttl: TTL,
            options: &opts,
            payload: &[],
        };
        if let Err(r) = seg::write(&mut p, &w) {
            self.counters.dropped(r);
            return false;
        }
        let f = Flow::written(client_to_vip(client, vip), flags);
        self.forward(
            id,
            Direction::Input,
            false,
            &f,
            net,
            svcs,
            timeouts,
            p,
            now,
            stack,
            out,
        )
    }

    /// A reset to the client of handshake `i` (conn `id`): its server
    /// refused or never answered.
    fn synproxy_reset_client<P: Packet>(
        &mut self,
        id: ConnId,
        i: u32,
        net: &NetConfig,
        now: Millis,
        stack: &mut Stack<P>,
        out: &mut impl Output<P>,
    ) {
        let Some(c) = self.conns.get(id) else {
            return;
        };
        let vip = (c.vaddr(), c.vport());
        let s = self.synproxy.shakes[i as usize];
        let Some(mut p) = out.alloc() else {
            self.counters.dropped(DropReason::NoBuffer);
            return;
        };
        let opts = Options::default();
        let w = Write {
            src: vip,
            dst: s.client,
            seq: s.cookie.wrapping_add(1),
            ack: s.isn.wrapping_add(1),
            flags: RST | ACK,
            window: 0,
            ttl: TTL,
            options: &opts,
            payload: &[],
        };
        match seg::write(&mut p, &w) {
            Ok(()) => stack.route_out(net, p, s.client.0, s.rx_port, now, out),
            Err(r) => self.counters.dropped(r),
        }
    }

    /// Ends the handshake `i` of conn `id` and the conn.
    fn synproxy_abort(&mut self, id: ConnId, i: u32, svcs: &ServiceSet, now: Millis) {
        self.synproxy.release(i);
        self.remove_conn(svcs, id, now);
    }

    /// A client's segment while its conn waits for the real server: a
    /// pure ACK refreshes what the ACK to the server will say, one segment
    /// with data is kept, a reset ends it all.
    pub(super) fn synproxy_client<P: Packet>(
        &mut self,
        id: ConnId,
        svcs: &ServiceSet,
        pkt: P,
        now: Millis,
    ) {
        let Some(i) = self.synproxy_shake(id) else {
            // Marked, yet no handshake: nothing can finish this conn.
            self.remove_conn(svcs, id, now);
            self.counters.dropped(DropReason::SynproxyHandshake);
            return;
        };
        let s = match seg::read(&pkt) {
            Ok(s) => s,
            Err(r) => {
                self.counters.dropped(r);
                return;
            }
        };
        if s.flags & RST != 0 {
            self.synproxy_abort(id, i, svcs, now);
            self.counters.consumed.inc();
            return;
        }
        if s.flags & SYN != 0 || s.flags & ACK == 0 {
            self.counters.dropped(DropReason::SynproxyHandshake);
            return;
        }
        let sh = &mut self.synproxy.shakes[i as usize];
        if sh.ts.is_some() && s.ts.is_some() {
            sh.ts = s.ts;
        }
        sh.window = s.window;
        if s.data == 0 && s.flags & FIN == 0 {
            self.counters.consumed.inc();
        } else if !self.synproxy.hold(i, pkt.data()) {
            self.counters.dropped(DropReason::SynproxyQueueFull);
        }
    }

    /// The real server's answer to the proxy's SYN. A SYN-ACK for the
    /// client's ISN splices the conn: the server's handshake is completed
    /// with the client's ACK, the kept segment follows, and the SYN-ACK
    /// itself goes on to the client as an ACK carrying the server's
    /// window. A reset resets the client.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn synproxy_server<P: Packet>(
        &mut self,
        id: ConnId,
        f: &Flow,
        net: &NetConfig,
        svcs: &ServiceSet,
        timeouts: &Timeouts,
        mut pkt: P,
        now: Millis,
        stack: &mut Stack<P>,
        out: &mut impl Output<P>,
    ) {
        let Some(i) = self.synproxy_shake(id) else {
            self.remove_conn(svcs, id, now);
            self.counters.dropped(DropReason::SynproxyHandshake);
            return;
        };
        let s = match seg::read(&pkt) {
            Ok(s) => s,
            Err(r) => {
                self.counters.dropped(r);
                return;
            }
        };
        let sh = self.synproxy.shakes[i as usize];
        if s.flags & RST != 0 {
            self.synproxy_reset_client(id, i, net, now, stack, out);
            self.synproxy_abort(id, i, svcs, now);
            self.counters.consumed.inc();
            return;
        }
        if s.flags & (SYN | ACK) != SYN | ACK || s.ack != sh.isn.wrapping_add(1) {
            self.counters.dropped(DropReason::SynproxyHandshake);
            return;
        }
        // Window scaling holds between the proxy and the server when both
        // offered it; the client was promised SYNACK_WSCALE when it did.
        let scaled = sh.opts.wscale.is_some();
        let rs_wscale = if scaled {
            s.wscale.map_or(0, |w| w.min(syncookie::MAX_WSCALE))
        } else {
            0
        };
        let ts_on = sh.ts.is_some() && s.ts.is_some();
        // Added to what the conn already has (the proxy protocol's).
        let mut adj = self.conns.seq_adj(id).copied().unwrap_or_default();
        adj.s_delta = s.seq.wrapping_sub(sh.cookie);
        adj.ts_delta = match s.ts {
            Some((val, _)) if ts_on => val.wrapping_sub(sh.ts_shown),
            _ => 0,
        };
        adj.win_shift = if scaled {
            rs_wscale as i8 - SYNACK_WSCALE as i8
        } else {
            0
        };
        self.conns.set_seq_adj(id, adj);
        self.conns.set_synproxy(id, false);
        let held = out
            .alloc()
            .and_then(|mut p| self.synproxy.take_held(i, &mut p).then_some(p));
        self.synproxy.release(i);

        // The server's handshake completes as the client's ACK, in the
        // client's numbers: the sequence core moves them to the server's.
        let Some(c) = self.conns.get(id) else {
            return;
        };
        let (client, vip) = ((c.caddr(), c.cport()), (c.vaddr(), c.vport()));
        if let Some(mut p) = out.alloc() {
            let opts = Options::established(sh.ts.filter(|_| ts_on));
            let w = Write {
                src: client,
                dst: vip,
                seq: sh.isn.wrapping_add(1),
                ack: sh.cookie.wrapping_add(1),
                flags: ACK,
                window: sh.window,
                ttl: TTL,
                options: &opts,
                payload: &[],
            };
            let f = Flow::written(client_to_vip(client, vip), ACK);
            match seg::write(&mut p, &w) {
                Ok(()) => {
                    self.forward(
                        id,
                        Direction::Input,
                        false,
                        &f,
                        net,
                        svcs,
                        timeouts,
                        p,
                        now,
                        stack,
                        out,
                    );
                }
                Err(r) => self.counters.dropped(r),
            }
        } else {
            // The server resends its SYN-ACK; the client's next segment
            // completes the handshake then.
            self.counters.dropped(DropReason::NoBuffer);
        }
        if let Some(p) = held {
            match parse_flow(p.data()) {
                Some(hf) => {
                    self.forward(
                        id,
                        Direction::Input,
                        false,
                        &hf,
                        net,
                        svcs,
                        timeouts,
                        p,
                        now,
                        stack,
                        out,
                    );
                }
                None => self.counters.dropped(DropReason::BadHeader),
            }
        }
        // The SYN-ACK goes on as the ACK the client's window waits for, in
        // the server's numbers, as the server would send it.
        let opts = Options::established(s.ts.filter(|_| ts_on));
        let w = Write {
            src: (f.t.saddr, f.t.sport),
            dst: (f.t.daddr, f.t.dport),
            seq: s.seq.wrapping_add(1),
            ack: s.ack,
            flags: ACK,
            window: s.window >> rs_wscale,
            ttl: TTL,
            options: &opts,
            payload: &[],
        };
        if let Err(r) = seg::write(&mut pkt, &w) {
            self.counters.dropped(r);
            return;
        }
        // The segment was written anew: no parse of the old one holds.
        let f = Flow {
            tcp_flags: ACK,
            plain_v4_end: 0,
            ..*f
        };
        self.forward(
            id,
            Direction::Output,
            false,
            &f,
            net,
            svcs,
            timeouts,
            pkt,
            now,
            stack,
            out,
        );
    }

    /// The handshakes' timers: a SYN to a silent server is sent again, and
    /// after the last try the client is reset and the conn ends.
    #[allow(clippy::too_many_arguments)]
    pub fn poll_synproxy<P: Packet>(
        &mut self,
        net: &NetConfig,
        svcs: &ServiceSet,
        timeouts: &Timeouts,
        now: Millis,
        stack: &mut Stack<P>,
        out: &mut impl Output<P>,
    ) {
        for _ in 0..POLL_BUDGET {
            let Some(i) = self.synproxy.due(now) else {
                return;
            };
            let conn = self.synproxy.shakes[i as usize].conn;
            let Some(id) = conn.filter(|&id| self.synproxy_shake(id) == Some(i)) else {
                self.synproxy.release(i);
                continue;
            };
            if !self.synproxy_holds(id) {
                // Its conn went another way.
                self.synproxy.release(i);
                continue;
            }
            if self.synproxy.shakes[i as usize].retries > 0 {
                self.synproxy.shakes[i as usize].retries -= 1;
                self.synproxy.rearm(i, now);
                if !self.synproxy_send_syn(id, i, net, svcs, timeouts, now, stack, out) {
                    self.synproxy_abort(id, i, svcs, now);
                }
            } else {
                self.synproxy_reset_client(id, i, net, now, stack, out);
                self.synproxy_abort(id, i, svcs, now);
            }
        }
    }
}
