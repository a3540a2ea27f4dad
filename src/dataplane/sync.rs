//! The sync daemons on the workers. Each worker is its own master: it
//! keeps its own message, appends the conns that meet the kernel's
//! trigger as its packets go by, and sends a full message (or one 2 s
//! old) itself, on its own tx queue of the daemon's port, as a UDP
//! datagram to the group (Ethernet to the group's MAC, IPv4 from the
//! port's address, the daemon's TTL). No other core is involved and
//! nothing is allocated per packet: the message buffer is made when the
//! daemon starts.
//!
//! A backup's datagrams arrive on whichever worker RSS picks; that worker
//! installs the entries it owns (the client's worker, `client_owner`) and
//! hands the same mbuf on, through the redirect rings, to the next worker
//! that owns any, which does the same: a chain in worker order starting
//! after the receiver, marked in the header's spare field (0 on the wire)
//! with the receiver's index + 1, so that it ends before coming back.
//! No copy, no allocation. The table work is in `lb_sync.rs`.
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::ipvs::sync::wire::MsgBuilder;
use crate::ipvs::sync::{SyncConfig, SyncDaemons};
use crate::netstack::{Millis, NetConfig};
use crate::packet::Packet;
use crate::wire::checksum;

const ETH: usize = 14;
const IPV4: usize = 20;
const UDP: usize = 8;
/// Ethernet, IPv4 and UDP headers in front of a message.
pub const FRAME_HEADERS: usize = ETH + IPV4 + UDP;

/// A running master on this worker.
#[derive(Debug)]
pub struct Master {
    pub cfg: SyncConfig,
    /// The DPDK port and what its frames carry.
    pub port: u16,
    src_mac: [u8; 6],
    src: Ipv4Addr,
    group: Ipv4Addr,
    pub msg: MsgBuilder,
    /// When the message's first entry went in.
    pub first: Millis,
    ident: u16,
}

/// A running backup on this worker.
#[derive(Debug)]
pub struct Backup {
    pub cfg: SyncConfig,
    pub port: u16,
    pub group: Ipv4Addr,
}

/// The daemons as this worker runs them.
#[derive(Debug, Default)]
pub struct SyncWorker {
    source: Option<Arc<ArcSwap<SyncDaemons>>>,
    seen: Option<Arc<SyncDaemons>>,
    pub(super) master: Option<Master>,
    /// `master.is_some()`, kept as `refresh` changes it: a flag byte the
    /// express lane tests once a packet (the option's own test took three
    /// instructions).
    on: bool,
    pub backup: Option<Backup>,
}

/// 01:00:5e and the group's low 23 bits (RFC 1112).
fn group_mac(g: Ipv4Addr) -> [u8; 6] {
    let o = g.octets();
    [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
}

fn v4(a: IpAddr) -> Option<Ipv4Addr> {
    match a {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

impl SyncWorker {
    pub fn set_source(&mut self, daemons: Arc<ArcSwap<SyncDaemons>>) {
        self.source = Some(daemons);
    }

    #[inline(always)]
    pub fn master_on(&self) -> bool {
        self.on
    }

    /// Takes up the daemons as the control thread last published them and
    /// the ports as `net` has them (between bursts, once a millisecond).
    pub fn refresh(&mut self, net: &NetConfig) {
        self.refresh_daemons(net);
        self.on = self.master.is_some();
    }

    fn refresh_daemons(&mut self, net: &NetConfig) {
        let Some(src) = &self.source else { return };
        let now = src.load();
        let changed = !self.seen.as_ref().is_some_and(|s| Arc::ptr_eq(s, &now));
        if changed {
            self.seen = Some(arc_swap::Guard::into_inner(now));
        }
        let Some(d) = self.seen.clone() else { return };
        let iface = |name: &str| net.ifaces().iter().find(|i| i.name == name);
        // The master: started, stopped, or its port's addresses changed.
        match &d.master {
            None => self.master = None,
            Some(cfg) => {
                let Some(i) = iface(&cfg.ifname) else {
                    self.master = None;
                    return self.refresh_backup(&d, net);
                };
                let src = i
                    .addrs
                    .iter()
                    .find_map(|a| v4(a.addr))
                    .unwrap_or(Ipv4Addr::UNSPECIFIED);
                let group = v4(cfg.group).unwrap_or(crate::ipvs::sync::DEFAULT_GROUP);
                // Never more than the port carries unfragmented.
                let room = usize::from(i.mtu).saturating_sub(IPV4 + UDP);
                let limit = usize::from(cfg.maxlen).min(room);
                let same = self.master.as_ref().is_some_and(|m| {
                    m.cfg == *cfg && m.port == i.port && m.src == src && m.src_mac == i.mac.0
                });
                if !same {
                    self.master = Some(Master {
                        cfg: cfg.clone(),
                        port: i.port,
                        src_mac: i.mac.0,
                        src,
                        group,
                        msg: MsgBuilder::new(cfg.syncid, limit),
                        first: 0,
                        ident: 0,
                    });
                }
            }
        }
        self.refresh_backup(&d, net);
    }

    fn refresh_backup(&mut self, d: &SyncDaemons, net: &NetConfig) {
        self.backup = d.backup.as_ref().and_then(|cfg| {
            let i = net.ifaces().iter().find(|i| i.name == cfg.ifname)?;
            Some(Backup {
                cfg: cfg.clone(),
                port: i.port,
                group: v4(cfg.group)?,
            })
        });
    }

    /// Where the message is in a frame on the backup's port, to the group
    /// and port: the UDP payload's offset and length. None for any other
    /// frame (left to the network stack, as before).
    #[inline]
    pub fn backup_datagram(&self, rx_port: u16, d: &[u8]) -> Option<(usize, usize)> {
        let b = self.backup.as_ref()?;
        if rx_port != b.port || d.len() < FRAME_HEADERS || d[12..14] != [0x08, 0x00] {
            return None;
        }
        let ip = &d[ETH..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if ip[0] >> 4 != 4 || ip[9] != 17 || ip[16..20] != b.group.octets() {
            return None;
        }
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let udp = ip.get(ihl..total.min(ip.len()))?;
        if udp.len() < UDP || u16::from_be_bytes([udp[2], udp[3]]) != b.cfg.port {
            return None;
        }
        // The checks after this are the backup's: a frame that gets this
        // far is a sync datagram, kept or dropped here.
        let off = ETH + ihl + UDP;
        let len = usize::from(u16::from_be_bytes([udp[4], udp[5]])).saturating_sub(UDP);
        Some((off, len))
    }
}

/// Whether a sync datagram's UDP length and checksum hold (a zero
/// checksum is none, as IPv4 allows).
pub fn datagram_ok(d: &[u8], off: usize, len: usize) -> bool {
    let ip = &d[ETH..];
    let Some(udp) = d.get(off - UDP..off + len) else {
        return false;
    };
    if udp.len() < UDP || u16::from_be_bytes([udp[6], udp[7]]) == 0 {
        return udp.len() >= UDP;
    }
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let s = checksum::pseudo_header_v4(src, dst, 17, udp.len() as u16) + checksum::sum(udp);
    checksum::fold(s) == 0xffff || checksum::fold(s) == 0
}

impl Master {
    /// Writes the message as a whole frame into `pkt` (empty, fresh from
    /// the pool); false when it has no room.
    pub fn frame<P: Packet>(&mut self, pkt: &mut P) -> bool {
        let msg = self.msg.bytes();
        let n = FRAME_HEADERS + msg.len();
        if !pkt.append(n) || pkt.len() != n {
            return false;
        }
        self.ident = self.ident.wrapping_add(1);
        let d = pkt.data_mut();
        d[0..6].copy_from_slice(&group_mac(self.group));
        d[6..12].copy_from_slice(&self.src_mac);
        d[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut d[ETH..ETH + IPV4];
        ip[0] = 0x45;
        ip[1] = 0;
        ip[2..4].copy_from_slice(&((IPV4 + UDP + msg.len()) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&self.ident.to_be_bytes());
        // The kernel's socket sets IP_PMTUDISC_DONT: no DF.
        ip[6..8].copy_from_slice(&[0, 0]);
        ip[8] = self.cfg.ttl;
        ip[9] = 17;
        ip[10..12].copy_from_slice(&[0, 0]);
        ip[12..16].copy_from_slice(&self.src.octets());
        ip[16..20].copy_from_slice(&self.group.octets());
        let c = checksum::checksum(ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let udp_len = (UDP + msg.len()) as u16;
        let udp = &mut d[ETH + IPV4..];
        // The kernel's socket has an ephemeral source port; rvs uses the
        // group's port on both sides.
        udp[0..2].copy_from_slice(&self.cfg.port.to_be_bytes());
        udp[2..4].copy_from_slice(&self.cfg.port.to_be_bytes());
        udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
        udp[6..8].copy_from_slice(&[0, 0]);
        udp[UDP..].copy_from_slice(msg);
        let s = checksum::pseudo_header_v4(self.src, self.group, 17, udp_len)
            + checksum::sum(&udp[..usize::from(udp_len)]);
        let c = !checksum::fold(s);
        let c = if c == 0 { 0xffff } else { c };
        udp[6..8].copy_from_slice(&c.to_be_bytes());
        true
    }
}

/// The next worker after `from`, in worker order and round past the last,
/// that owns an entry (`mask`), stopping before `origin`, where the chain
/// began.
pub fn next_owner(mask: u64, from: usize, origin: usize, workers: usize) -> Option<usize> {
    (1..workers)
        .map(|step| (from + step) % workers)
        .take_while(|&w| w != origin)
        .find(|&w| w < 64 && mask & (1 << w) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_chain_visits_each_owner_once_and_ends_before_the_receiver() {
        // Received by worker 2 of 4; entries for 0, 1 and 3.
        let mask = 0b1011;
        assert_eq!(next_owner(mask, 2, 2, 4), Some(3));
        assert_eq!(next_owner(mask, 3, 2, 4), Some(0));
        assert_eq!(next_owner(mask, 0, 2, 4), Some(1));
        assert_eq!(next_owner(mask, 1, 2, 4), None);
        // Nothing for others: the receiver keeps it.
        assert_eq!(next_owner(0b0100, 2, 2, 4), None);
        assert_eq!(next_owner(0, 0, 0, 1), None);
    }

    #[test]
    fn the_group_mac_is_rfc_1112s() {
        assert_eq!(
            group_mac(Ipv4Addr::new(224, 0, 0, 81)),
            [0x01, 0x00, 0x5e, 0x00, 0x00, 0x51]
        );
        assert_eq!(
            group_mac(Ipv4Addr::new(239, 200, 1, 2)),
            [0x01, 0x00, 0x5e, 0x48, 0x01, 0x02]
        );
    }
}
