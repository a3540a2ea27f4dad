//! An ICMP or ICMPv6 error about a tracked conn, found by the conn its
//! quote names: the quote rewritten as the conn's other side sent it and
//! the error routed on, as the kernel's ip_vs_in_icmp and ip_vs_out_icmp
//! do. Classify hands it here when the packet has no flow of its own.
use super::*;

impl Lb {
    /// An ICMP or ICMPv6 error about a tracked conn (port unreachable,
    /// need-frag / too big, time exceeded) goes on to the other side with
    /// its quoted headers rewritten, as ip_vs_in_icmp / ip_vs_out_icmp do.
    /// Anything else is the network stack's.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn icmp_error<P: Packet>(
        &mut self,
        net: &NetConfig,
        svcs: &ServiceSet,
        mut pkt: P,
        now: Millis,
        stack: &mut Stack<P>,
        out: &mut impl Output<P>,
    ) -> Outcome<P> {
        let Some(q) = xmit::icmp::inner_tuple(pkt.data()) else {
            return Outcome::Local(pkt);
        };
        let t = q.tuple;
        let f = Flow::written(t, 0);
        let owner = self.owner(&f, pkt.rx_port(), true, net, svcs);
        if owner != self.worker {
            return Outcome::Redirect(owner, pkt);
        }
        let (id, res) = if let Some((id, c)) = self
            .conns
            .lookup_in(&t)
            .and_then(|id| Some((id, self.conns.get(id)?)))
        {
            (
                id,
                xmit::icmp::to_real(&mut pkt, &c, &XmitOpts::default()).map(|n| (n, false)),
            )
        } else if let Some((id, c)) = self
            .conns
            .lookup_out(&t)
            .and_then(|id| Some((id, self.conns.get(id)?)))
        {
            (id, xmit::icmp::to_client(&mut pkt, &c).map(|n| (n, true)))
        } else {
            return Outcome::Local(pkt);
        };
        let res = res.map(|(next, towards_client)| {
            if let Some(adj) = self.conns.seq_adj(id) {
                xmit::icmp::adjust_quoted_seq(&mut pkt, adj, towards_client);
            }
            next
        });
        match res {
            Ok(next) => {
                let rx = pkt.rx_port();
                stack.route_out(net, pkt, next, rx, now, out);
            }
            Err(e) => self.counters.dropped(XmitError::drop_reason(e)),
        }
        Outcome::Done
    }
}
