//! A tracked conn's packet on the full path: the conn moved by it, the
//! rewrite of its forwarding mode (`xmit`), its stats, and the send on the
//! next hop towards the client or the real server, in fragments where it
//! is over the egress MTU, or the ICMP error back to its sender where it
//! cannot go. The express lane does the same for the common case in its
//! own way (`express.rs`).
use super::*;

impl Lb {
    /// Sends a packet of conn `id` on its way, having moved the conn by it
    /// (`ConnTable::on_packet`) unless it was `moved` already: the conn
    /// was made as this, its first packet, leaves it
    /// (`ConnTable::insert_first`). False where it could not be sent.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward<P: Packet>(
        &mut self,
        id: ConnId,
        dir: Direction,
        moved: bool,
        f: &Flow,
        net: &NetConfig,
        svcs: &ServiceSet,
        timeouts: &Timeouts,
        mut pkt: P,
        now: Millis,
        stack: &mut Stack<P>,
        out: &mut impl Output<P>,
    ) -> bool {
        let Some(c) = self.conns.get(id) else {
            self.counters.dropped(DropReason::NoConn);
            return false;
        };
        let dir = match dir {
            Direction::Input if c.flags() & conn_flags::NOOUTPUT != 0 => Direction::InputOnly,
            d => d,
        };
        // The state the packet found (a first packet found none).
        let was_synrecv = !moved
            && match c.tcp_state() {
                Some(TcpState::SynRecv) => true,
                Some(TcpState::SynAck) => crate::dataplane::pressure::tcp_without_data(pkt.data()),
                _ => false,
            };
        // A later fragment has no TCP flags of its own: no state change.
        if !matches!(f.frag, Some((_, false))) {
            if !moved {
                self.conns.on_packet(id, dir, f.tcp_flags, now, timeouts);
            }
            if self.sync.master_on() && dir != Direction::Output {
                self.sync_conn(id, now, out);
            }
        }
        let Lb {
            conns,
            svc_cache,
            counters,
            worker,
            routes,
            ..
        } = self;
        let Some(conn) = conns.get(id) else {
            counters.dropped(DropReason::NoConn);
            return false;
        };
        // The IP packet's bytes: where the first parse found its end, from
        // that end, else from its header (`ip_len`).
        let len = match f.plain_v4_end {
            0 => ip_len(pkt.data()),
            end => end as usize - ETH,
        } as u64;
        let svc = svc_cache.lookup(svcs, conn.proto(), conn.vaddr(), conn.vport());
        let w = *worker;
        let rx = pkt.rx_port();
        // The route towards the packet's destination (the client, or the
        // real server) is looked up once, before the rewrite, for the MTU
        // every mode checks, TUN's source, checksum offload and the send.
        let to = if dir == Direction::Output {
            conn.caddr()
        } else {
            conn.daddr()
        };
        let (hop, mtu, tx_checksum) = egress::<P>(routes, net, to, rx);
        // A proxy-protocol or SYN-proxy conn: its two sides count TCP
        // sequence numbers differently.
        let seq_adj = match conn.flags() & conn_flags::SEQ_ADJ {
            0 => None,
            _ => conns.seq_adj(id),
        };
        let res = if dir == Direction::Output {
            xmit::to_client_mtu(&mut pkt, &conn, mtu, f.ip())
        } else {
            let rs = to;
            let tunnel_src = (conn.fwd() == FwdMethod::Tunnel)
                .then(|| hop.and_then(|h| routes.source_for(net, rs, h)))
                .flatten();
            let toa = svc.is_some_and(|s| s.toa());
            // The SYN's MSS never promises more than the real server's side
            // of rvs carries. TOA rides only on segments without payload
            // (the SYN and the handshake's ACK), so it takes nothing off.
            // Across families (NAT64) the IPv6 side's headers count, with
            // its MTU taken to be the server side's.
            let hdrs = if rs.is_ipv4() && conn.caddr().is_ipv4() {
                40
            } else {
                60
            };
            // The proxy protocol's header goes in before the rewrite, so
            // that a too-big answer quotes what the client sent (and the
            // rewrite parses the grown frame anew).
            let (pp, parsed) = match seq_adj.filter(|a| a.ins_len != 0) {
                Some(adj) => (
                    xmit::proxy_proto::insert(&mut pkt, &conn, adj, mtu).map(|_| ()),
                    None,
                ),
                None => (Ok(()), f.ip()),
            };
            let opts = XmitOpts {
                toa,
                toa_on_ack: toa && was_synrecv,
                mss_clamp: Some(mtu.saturating_sub(hdrs)),
                mtu,
                tunnel_src,
                parsed,
            };
            pp.and_then(|()| xmit::to_real(&mut pkt, &conn, &opts))
        };
        let res = match (res, seq_adj) {
            (Ok(next), Some(adj)) => if dir == Direction::Output {
                xmit::seqadj::apply_to_client(&mut pkt, adj)
            } else {
                xmit::seqadj::apply_to_real(&mut pkt, adj)
            }
            .map(|()| next)
            .map_err(XmitError::Drop),
            (r, _) => r,
        };
        let svc = svc.map(|s| &**s);
        count_stats(conn.dest(), svc, svcs, w, dir == Direction::Output, 1, len);
        let one_packet = conn.flags() & conn_flags::ONE_PACKET != 0;
        let sent = match res {
            Ok(next) => {
                let (hop, mtu, tx_checksum) = if next == to {
                    (hop, mtu, tx_checksum)
                } else {
                    egress::<P>(routes, net, next, rx)
                };
                match hop {
                    // Over the MTU after the checks before the rewrite:
                    // IPv4 without DF (or a tunnel packet around it).
                    Some(hop) if pkt.len() > ETH + usize::from(mtu) => {
                        let mut sink = FragOut {
                            net,
                            hop,
                            now,
                            stack,
                            out,
                            counters: &self.counters,
                        };
                        match xmit::fragment::fragment(pkt, mtu, &mut sink) {
                            Ok(_) => self.counters.frag_ok.inc(),
                            Err(r) => self.counters.dropped(r),
                        }
                    }
                    Some(hop) => {
                        // Offload where the egress port offers it: the
                        // rewrite left correct checksums, which the NIC then
                        // recomputes cheaply.
                        if tx_checksum {
                            let _ = xmit::request_checksum_offload(&mut pkt);
                        }
                        routes.send(stack, net, next, hop, pkt, now, out);
                    }
                    None => self.counters.dropped(DropReason::NoRoute),
                }
                true
            }
            Err(e) => {
                self.counters.dropped(XmitError::drop_reason(e));
                if matches!(e, XmitError::TtlExceeded | XmitError::TooBig { .. }) {
                    answer_sender(net, &pkt, f.t.saddr, e, now, stack, out, &self.counters);
                }
                false
            }
        };
        if one_packet {
            self.remove_conn(svcs, id, now);
        }
        sent
    }
}

/// Time exceeded, need-frag or packet too big back to whoever sent `pkt`,
/// from our address on the port it came in by, as the ICMP rate limits
/// allow.
#[allow(clippy::too_many_arguments)]
fn answer_sender<P: Packet>(
    net: &NetConfig,
    pkt: &P,
    sender: IpAddr,
    err: XmitError,
    now: Millis,
    stack: &mut Stack<P>,
    out: &mut impl Output<P>,
    counters: &WorkerCounters,
) {
    let rx = pkt.rx_port();
    let Some(src) = net.source_for(rx, sender) else {
        return;
    };
    let (msg_type, code) = match (err, sender.is_ipv6()) {
        (XmitError::TtlExceeded, false) => (icmpv4::TIME_EXCEEDED, 0),
        (XmitError::TtlExceeded, true) => (icmpv6::TIME_EXCEEDED, 0),
        (XmitError::TooBig { .. }, false) => (icmpv4::DEST_UNREACH, icmpv4::CODE_FRAG_NEEDED),
        (XmitError::TooBig { .. }, true) => (icmpv6::PACKET_TOO_BIG, 0),
        (XmitError::Drop(_), _) => return,
    };
    if !stack.icmp_allow(sender, msg_type, code, now) {
        return;
    }
    let Some(mut icmp) = out.alloc() else {
        counters.dropped(DropReason::NoBuffer);
        return;
    };
    if let Ok(to) = xmit::icmp::build_for(&mut icmp, pkt.data(), err, src) {
        counters.icmp_errors.inc();
        stack.route_out(net, icmp, to, rx, now, out);
    }
}

/// Fragments of a datagram over the egress MTU: buffers from the pool,
/// each fragment routed to the datagram's next hop and counted.
struct FragOut<'a, P, O> {
    net: &'a NetConfig,
    hop: NextHop,
    now: Millis,
    stack: &'a mut Stack<P>,
    out: &'a mut O,
    counters: &'a WorkerCounters,
}

impl<P: Packet, O: Output<P>> xmit::fragment::FragSink<P> for FragOut<'_, P, O> {
    fn alloc(&mut self) -> Option<P> {
        self.out.alloc()
    }
    fn send(&mut self, frag: P) {
        self.counters.frag_creates.inc();
        self.stack
            .send_via(self.net, frag, self.hop, self.now, self.out);
    }
}
