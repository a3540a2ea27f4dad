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
use crate::wire::{
    checksum, EtherType, EthernetFrame, EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr, MacAddr,
    UdpPacket, UdpRepr,
};

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
        // The frame holds the fixed header: the views' reads are in it.
        let ip = Ipv4Packet::new_unchecked(&d[ETH..]);
        if ip.version() != 4 || ip.protocol() != IpProtocol::UDP || ip.dst_addr() != b.group {
            return None;
        }
        let ihl = ip.header_len();
        let total = usize::from(ip.total_len());
        let udp = d[ETH..].get(ihl..total.min(d.len() - ETH))?;
        if udp.len() < UDP {
            return None;
        }
        let udp = UdpPacket::new_unchecked(udp);
        if udp.dst_port() != b.cfg.port {
            return None;
        }
        // The checks after this are the backup's: a frame that gets this
        // far is a sync datagram, kept or dropped here.
        let off = ETH + ihl + UDP;
        let len = usize::from(udp.len()).saturating_sub(UDP);
        Some((off, len))
    }
}

/// Whether a sync datagram's UDP length and checksum hold (a zero
/// checksum is none, as IPv4 allows).
pub fn datagram_ok(d: &[u8], off: usize, len: usize) -> bool {
    let Some(udp) = d.get(off - UDP..off + len) else {
        return false;
    };
    if udp.len() < UDP || UdpPacket::new_unchecked(udp).checksum() == 0 {
        return udp.len() >= UDP;
    }
    // `backup_datagram` found the IPv4 header in front.
    let ip = Ipv4Packet::new_unchecked(&d[ETH..]);
    let proto = IpProtocol::UDP.0;
    let s = checksum::pseudo_header_v4(ip.src_addr(), ip.dst_addr(), proto, udp.len() as u16)
        + checksum::sum(udp);
    let folded = checksum::fold(s);
    folded == 0xffff || folded == 0
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
        EthernetRepr {
            src: MacAddr(self.src_mac),
            dst: MacAddr(group_mac(self.group)),
            ethertype: EtherType::IPV4,
        }
        .emit(&mut EthernetFrame::new_unchecked(&mut d[..ETH]));
        let mut ip = Ipv4Packet::new_unchecked(&mut d[ETH..ETH + IPV4]);
        // The kernel's socket sets IP_PMTUDISC_DONT: no DF.
        Ipv4Repr {
            src: self.src,
            dst: self.group,
            protocol: IpProtocol::UDP,
            payload_len: UDP + msg.len(),
            ttl: self.cfg.ttl,
            dont_frag: false,
        }
        .emit(&mut ip);
        // The repr writes ident 0 and sums that; the daemon counts its
        // datagrams, so the header is summed again with the count (20
        // bytes, once a message).
        ip.set_ident(self.ident);
        ip.fill_checksum();
        let mut udp = UdpPacket::new_unchecked(&mut d[ETH + IPV4..]);
        // The kernel's socket has an ephemeral source port; rvs uses the
        // group's port on both sides.
        UdpRepr {
            src_port: self.cfg.port,
            dst_port: self.cfg.port,
            payload_len: msg.len(),
        }
        .emit(&mut udp);
        udp.payload_mut().copy_from_slice(msg);
        udp.fill_checksum_v4(self.src, self.group);
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
