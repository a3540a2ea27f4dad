//! A new conn, for a packet of a service's that no conn holds and that
//! may open one (classify, in `input_full`, said so): the pressure's
//! admission and room, the scheduler's pick with a FULLNAT conn's local
//! address bound (`pools.rs`), and the conn's first packet out.
use super::synproxy::Opening;
use super::*;
use crate::ipvs::persist::Bound;

impl Lb {
    /// A conn of service `svc` for `f`, which no conn holds and which may
    /// open one (`input_full`, whose lookup hashed its tuple as `in_hash`):
    /// `opening`, the SYN proxy's handshake that opens it. Out of line: the
    /// checks before it turn away a SYN flood's packets without its frame.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    pub(super) fn schedule<P: Packet>(
        &mut self,
        f: &Flow,
        in_hash: u64,
        svc: &Arc<Service>,
        opening: Option<Opening>,
        net: &NetConfig,
        svcs: &ServiceSet,
        timeouts: &Timeouts,
        pkt: P,
        now: Millis,
        stack: &mut Stack<P>,
        out: &mut impl Output<P>,
    ) -> Outcome<P> {
        let toa = svc.toa();
        if let Err(r) = self.pressure.admit(svc, f.t.saddr, now, self.worker) {
            self.counters.dropped(r);
            return Outcome::Done;
        }
        {
            // A persistent service may add a template as well as the conn.
            let need = 1 + usize::from(svc.config.persistent.is_some());
            let ends = &mut self.ends;
            self.pressure.make_room(
                &mut self.conns,
                need,
                now,
                &self.counters.pressure,
                |_, c| ends.ended(svcs, c, now),
            );
        }
        let Lb {
            conns,
            scheds,
            ends: ConnEnds { pools, .. },
            worker,
            workers,
            routes,
            express,
            laddr_seed,
            spreads,
            ..
        } = self;
        let Some(sched) = scheds.for_service(svc) else {
            self.counters.dropped(DropReason::NoDest);
            return Outcome::Done;
        };
        let me = *worker;
        let binding = Binding {
            net,
            svc,
            seed: *laddr_seed,
            worker: (me, *workers),
        };
        // Every local address was usable and every port probed taken.
        let mut ports_short = false;
        let mut bind = |table: &ConnTable, dest: &Arc<Dest>, inp: &Tuple| -> Option<Bound> {
            // The egress port is that of the next hop the express lane
            // keeps toward the server, else the route cache's the send
            // uses; the server's replies come in through it.
            let rs = dest.addr();
            let egress = express
                .server_port(net, rs)
                .or_else(|| routes.lookup(net, rs).hop.map(|h| h.port));
            let target = Lb::reply_target(spreads, egress, me);
            let short = &mut ports_short;
            pools.bind(&binding, table, dest, inp, egress, target, short)
        };
        let payload = match svc.config.pe {
            Some(_) if f.t.proto == IPPROTO_UDP => udp_payload(pkt.data()),
            _ => &[],
        };
        // The conn is made as its first packet leaves it, but for the SYN
        // proxy's, which the proxy moves as it opens it.
        let first = opening.is_none().then_some(FirstPacket {
            tcp_flags: f.tcp_flags,
            timeouts,
            in_hash: Some(in_hash),
        });
        let mut ctx = SchedCtx {
            local: Some(&mut bind),
            payload,
            first,
            ..SchedCtx::new(*worker, now)
        };
        let id = match persist::schedule(svc, sched, conns, &f.t, &mut ctx) {
            Ok(id) => {
                let pp = svc.config.proxy_protocol;
                if pp != ProxyProtocol::Disable {
                    let adj = self
                        .conns
                        .get(id)
                        .and_then(|c| xmit::proxy_proto::for_syn(pkt.data(), &c, pp));
                    if let Some(adj) = adj {
                        self.conns.set_seq_adj(id, adj);
                    }
                }
                if !self.note_nat_reply(id) {
                    self.remove_conn(svcs, id, now);
                    self.counters.dropped(DropReason::NatIndexFull);
                    return Outcome::Done;
                }
                // The conn looked at only where a session log wants it.
                if let Some(ring) = &self.ends.sessions {
                    if let Some(c) = self.conns.get(id) {
                        ring.push(Session::of(c, Event::Start, now, self.worker));
                    }
                }
                id
            }
            Err(e) => {
                if ports_short {
                    self.pressure.ports_short(now);
                }
                self.counters.dropped(match e {
                    SchedError::NoDest | SchedError::Ignored => DropReason::NoDest,
                    SchedError::TableFull => DropReason::ConnTableFull,
                    SchedError::NoLocalAddr => DropReason::NoLocalAddr,
                    SchedError::NoPeData => DropReason::NoCallId,
                });
                return Outcome::Done;
            }
        };
        if let Some(o) = opening {
            let (pp, n, s, tm) = (svc.config.proxy_protocol, net, svcs, timeouts);
            self.synproxy_open(id, o, pp, f, n, s, tm, pkt, now, stack, out);
            return Outcome::Done;
        }
        let pkt = match self.open(id, f, toa, net, svcs, timeouts, pkt, now, stack, out) {
            Ok(()) => return Outcome::Done,
            Err(p) => p,
        };
        // A conn whose very first packet cannot be forwarded (IP options,
        // TTL 1, a bad IPv6 UDP checksum, ...) must not linger holding a
        // dest slot and, under FULLNAT, a local port.
        if !self.forward(
            id,
            Direction::Input,
            true,
            f,
            net,
            svcs,
            timeouts,
            pkt,
            now,
            stack,
            out,
        ) {
            self.remove_conn(svcs, id, now);
        }
        Outcome::Done
    }
}
