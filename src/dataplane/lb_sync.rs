//! The load balancer's side of the sync daemons (src/dataplane/sync.rs):
//! a master's conns into its message, a backup's entries into the
//! table of the worker that owns them (ip_vs_proc_conn).
use std::net::IpAddr;

use super::{Lb, Outcome};
use crate::counters::DropReason;
use crate::dataplane::sync::{datagram_ok, next_owner};
use crate::ipvs::conn::{flags as conn_flags, Conn, ConnId, ConnRef};
use crate::ipvs::persist::TemplateKey;
use crate::ipvs::proto::Timeouts;
use crate::ipvs::sync::wire::{flags, Entry, Message};
use crate::ipvs::sync::SyncDaemons;
use crate::ipvs::{Dest, FwdMethod, Protocol, ServiceSet, Tuple};
use crate::netstack::{Millis, NetConfig, Output};
use crate::packet::Packet;

use std::sync::Arc;

use arc_swap::ArcSwap;

/// A conn or template as the message carries it; None for what the
/// format cannot say (families mixed by NAT64, a SYN-proxy handshake
/// under way, persistence-engine data) or a conn without a real server.
fn entry_of(
    c: &ConnRef<'_>,
    seq_adj: Option<crate::ipvs::seqadj::SeqAdj>,
) -> Option<Entry<'static>> {
    let d = c.dest()?;
    let template = c.is_template();
    if c.caddr().is_ipv6() != d.addr().is_ipv6()
        || c.flags() & (conn_flags::SYNPROXY | conn_flags::PE_DATA) != 0
    {
        return None;
    }
    let mut f = c.fwd() as u32 & flags::FWD_MASK;
    if template {
        f |= flags::TEMPLATE;
    } else if !c.is_active() {
        f |= flags::INACTIVE;
    }
    if c.flags() & conn_flags::NOOUTPUT != 0 {
        f |= flags::NOOUTPUT;
    }
    let fwmark = match (template, c.proto(), c.vaddr()) {
        (true, 0, IpAddr::V4(m)) => u32::from(m),
        _ => 0,
    };
    Some(Entry {
        proto: c.proto(),
        flags: f,
        state: u16::from(c.state()),
        caddr: c.caddr(),
        cport: c.cport(),
        vaddr: c.vaddr(),
        vport: c.vport(),
        daddr: d.addr(),
        dport: c.dport(),
        fwmark,
        timeout: c.timeout_ms() / 1000,
        local: (c.fwd() == FwdMethod::FullNat && !template).then(|| (c.laddr(), c.lport())),
        seq_adj,
        kernel_seq: false,
        pe_data: None,
        pe_name: None,
    })
}

fn fwd_of(f: u32) -> Option<FwdMethod> {
    match f & flags::FWD_MASK {
        flags::MASQ => Some(FwdMethod::Masq),
        flags::LOCALNODE => Some(FwdMethod::Local),
        flags::TUNNEL => Some(FwdMethod::Tunnel),
        flags::DROUTE => Some(FwdMethod::DirectRoute),
        flags::FULLNAT => Some(FwdMethod::FullNat),
        _ => None,
    }
}

/// The backup's real server for an entry (ip_vs_find_dest): the service by
/// mark or <proto, VIP, port>, then the dest by address and port (a
/// mark service's non-NAT dests by address alone). Borrowed from the
/// service: a synced conn takes no `Arc` clone either.
fn find_dest<'s>(svcs: &'s ServiceSet, e: &Entry) -> Option<&'s Arc<Dest>> {
    let proto =
        Protocol::from_number(e.proto).or_else(|| (e.fwmark != 0).then_some(Protocol::Tcp))?;
    let svc = svcs.lookup(e.fwmark, proto, e.vaddr, e.vport)?;
    let any_port = e.fwmark != 0 && e.flags & flags::FWD_MASK != flags::MASQ;
    svc.dests()
        .iter()
        .chain(svc.parked())
        .find(|d| d.addr() == e.daddr && (d.port() == e.dport || any_port || d.port() == 0))
}

/// What one entry did to the table.
enum Installed {
    Done,
    Dropped(DropReason),
}

impl Lb {
    /// The daemons this worker runs, as the control thread publishes them.
    pub fn set_sync(&mut self, daemons: Arc<ArcSwap<SyncDaemons>>) {
        self.sync.set_source(daemons);
    }

    /// Once a millisecond: the daemons' settings taken up, and a master's
    /// message sent once its first entry is 2 s old (IPVS_SYNC_FLUSH_TIME).
    pub fn poll_sync<P: Packet>(&mut self, net: &NetConfig, now: Millis, out: &mut impl Output<P>) {
        self.sync.refresh(net);
        let due = self.sync.master.as_ref().is_some_and(|m| {
            !m.msg.is_empty() && now.saturating_sub(m.first) >= crate::ipvs::sync::FLUSH_MS
        });
        if due {
            self.sync_send(out);
        }
    }

    /// Sends the master's message as it is and starts the next.
    fn sync_send<P: Packet>(&mut self, out: &mut impl Output<P>) {
        let Some(m) = self.sync.master.as_mut() else {
            return;
        };
        if m.msg.is_empty() {
            return;
        }
        let framed = out.alloc().and_then(|mut p| m.frame(&mut p).then_some(p));
        match framed {
            Some(pkt) => {
                let c = &self.counters.sync;
                c.msgs_sent.inc();
                c.conns_sent.add(u64::from(m.msg.count()));
                c.bytes_sent.add(m.msg.bytes().len() as u64);
                out.send(m.port, pkt);
            }
            None => self.counters.dropped(DropReason::NoBuffer),
        }
        m.msg.reset(m.cfg.syncid);
    }

    /// A client packet of conn `id` was handled on a master: the conn (and
    /// its template) into the message when the trigger says so.
    pub(super) fn sync_conn<P: Packet>(
        &mut self,
        id: ConnId,
        now: Millis,
        out: &mut impl Output<P>,
    ) {
        let (send, tpl) = self.conns.sync_input(id);
        for cid in [send.then_some(id), tpl].into_iter().flatten() {
            let Some(c) = self.conns.get(cid) else {
                continue;
            };
            let adj = match c.flags() & conn_flags::SEQ_ADJ {
                0 => None,
                _ => self.conns.seq_adj(cid).copied(),
            };
            let Some(e) = entry_of(&c, adj) else { continue };
            let Some(m) = self.sync.master.as_mut() else {
                return;
            };
            if !m.msg.fits(&e) {
                self.sync_send(out);
            }
            let Some(m) = self.sync.master.as_mut() else {
                return;
            };
            if m.msg.is_empty() {
                m.first = now;
            }
            m.msg.push(&e);
        }
    }

    /// A sync datagram on the backup's port: this worker's entries
    /// installed, the datagram handed on to the next worker owning any.
    pub(super) fn sync_in<P: Packet>(
        &mut self,
        net: &NetConfig,
        svcs: &ServiceSet,
        timeouts: &Timeouts,
        mut pkt: P,
        (off, len): (usize, usize),
        now: Millis,
    ) -> Outcome<P> {
        let Some(syncid) = self.sync.backup.as_ref().map(|b| b.cfg.syncid) else {
            return Outcome::Local(pkt);
        };
        let data = pkt.data();
        let spare = data
            .get(off + 6..off + 8)
            .map_or(0, |s| u16::from_be_bytes([s[0], s[1]]));
        // The spare field marks a relay between workers (the worker that
        // took it off the port, plus one), believed only of a datagram
        // that came through this worker's ring: off a port, a spare field
        // set is a version 0 message, which rvs does not read.
        let relayed_from = (self.relayed && spare != 0).then(|| usize::from(spare - 1));
        let origin = relayed_from.unwrap_or(self.worker);
        let first = relayed_from.is_none();
        if first {
            self.counters.sync.msgs_received.inc();
            if spare != 0 || !datagram_ok(data, off, len) {
                self.counters.dropped(DropReason::SyncBadMessage);
                return Outcome::Done;
            }
        }
        let Some(msg) = data
            .get(off..off + len)
            .and_then(|m| Message::parse(m).ok())
        else {
            self.counters.dropped(DropReason::SyncBadMessage);
            return Outcome::Done;
        };
        if first && syncid != 0 && msg.syncid() != syncid {
            self.counters.dropped(DropReason::SyncWrongSyncid);
            return Outcome::Done;
        }
        let mut others = 0u64;
        for r in msg.entries() {
            match r {
                Ok(Ok(e)) => {
                    let owner = self.synced_owner(
                        net,
                        svcs,
                        e.proto,
                        (e.caddr, e.cport),
                        (e.vaddr, e.vport),
                    );
                    if owner != self.worker {
                        others |= 1u64.checked_shl(owner as u32).unwrap_or(0);
                        continue;
                    }
                    match self.install(net, svcs, timeouts, &e, now) {
                        Installed::Done => self.counters.sync.conns_received.inc(),
                        Installed::Dropped(r) => self.counters.dropped(r),
                    }
                }
                Ok(Err(_)) if first => self.counters.dropped(DropReason::SyncSkipped),
                Ok(Err(_)) => {}
                Err(_) => {
                    if first {
                        self.counters.dropped(DropReason::SyncBadMessage);
                    }
                    break;
                }
            }
        }
        match next_owner(others, self.worker, origin, self.workers) {
            Some(w) => {
                if first {
                    let mark = (self.worker as u16 + 1).to_be_bytes();
                    if let Some(s) = pkt.data_mut().get_mut(off + 6..off + 8) {
                        s.copy_from_slice(&mark);
                    }
                }
                self.counters
                    .redirect(crate::counters::RedirectReason::Sync);
                Outcome::Redirect(w, pkt)
            }
            None => Outcome::Done,
        }
    }

    /// ip_vs_proc_conn for one entry this worker owns.
    fn install(
        &mut self,
        net: &NetConfig,
        svcs: &ServiceSet,
        timeouts: &Timeouts,
        e: &Entry,
        now: Millis,
    ) -> Installed {
        use Installed::Dropped;
        if e.pe_data.is_some() {
            return Dropped(DropReason::SyncSkipped);
        }
        let Some(fwd) = fwd_of(e.flags) else {
            return Dropped(DropReason::SyncSkipped);
        };
        let Ok(state) = u8::try_from(e.state) else {
            return Dropped(DropReason::SyncSkipped);
        };
        let Some(dest) = find_dest(svcs, e) else {
            return Dropped(DropReason::SyncNoDest);
        };
        let timeout_ms = match e.timeout {
            0 if e.is_template() => 180_000,
            0 => timeouts.ms(e.proto, state),
            t => t.saturating_mul(1000),
        };
        let active = e.flags & flags::INACTIVE == 0;
        if e.is_template() {
            let key = TemplateKey {
                proto: e.proto,
                client_net: e.caddr,
                vaddr: e.vaddr,
                vport: e.vport,
            };
            if let Some(id) = self.conns.lookup_template(&key) {
                self.conns.update_synced(id, state, true, timeout_ms, now);
                return Installed::Done;
            }
            let t = Conn::template(&key, dest, e.dport, timeout_ms).synced(state, true, timeout_ms);
            return match self.conns.insert_synced(t, dest, now) {
                Ok(_) => Installed::Done,
                Err(_) => Dropped(DropReason::ConnTableFull),
            };
        }
        let t = Tuple {
            proto: e.proto,
            saddr: e.caddr,
            sport: e.cport,
            daddr: e.vaddr,
            dport: e.vport,
        };
        if let Some(id) = self.conns.lookup_in(&t) {
            let same = self
                .conns
                .get(id)
                .is_some_and(|c| c.daddr() == e.daddr && c.dport() == e.dport);
            if same {
                self.conns.update_synced(id, state, active, timeout_ms, now);
                if let Some(adj) = e.seq_adj {
                    self.conns.set_seq_adj(id, adj);
                }
                return Installed::Done;
            }
            if !active {
                // The end of a conn this backup already replaced.
                return Installed::Done;
            }
            self.remove_conn(svcs, id, now);
        }
        let mut c = Conn::new(
            e.proto,
            (e.caddr, e.cport),
            (e.vaddr, e.vport),
            e.dport,
            fwd,
        );
        if fwd == FwdMethod::FullNat {
            let Some((laddr, lport)) = e.local else {
                return Dropped(DropReason::SyncSkipped);
            };
            // Replies come to the worker RSS or the port's slice names: it
            // must be this one, the client's (same worker count and, where
            // the device spreads, the same RSS on both).
            if self.reply_owner(net, e.proto, (e.daddr, e.dport), (laddr, lport)) != self.worker {
                return Dropped(DropReason::SyncWrongWorker);
            }
            let reply = Tuple {
                proto: e.proto,
                saddr: e.daddr,
                sport: e.dport,
                daddr: laddr,
                dport: lport,
            };
            if self.conns.lookup_out(&reply).is_some() {
                return Dropped(DropReason::SyncPortTaken);
            }
            c = c.with_local(laddr, lport);
        }
        let c = c.synced(state, active, timeout_ms);
        match self.conns.insert_synced(c, dest, now) {
            Ok(id) => {
                if !self.note_nat_reply(id) {
                    self.remove_conn(svcs, id, now);
                    return Dropped(DropReason::NatIndexFull);
                }
                if let Some(adj) = e.seq_adj {
                    self.conns.set_seq_adj(id, adj);
                }
                Installed::Done
            }
            Err(_) => Dropped(DropReason::ConnTableFull),
        }
    }
}
