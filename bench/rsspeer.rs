//! A software NIC with RSS, for rvsd on a multi-queue net_memif port with
//! `rss = "software"`: the peer end of the memif places every frame it
//! sends on the queue a device would (`rvs::rss::Spread::software`: the
//! Toeplitz hash of the frame's addresses and ports, then the redirection
//! table), and receives on all queues. Shared by tests/rss.rs (included by
//! path) and bench/rssgen.rs.
#![allow(dead_code)]

use std::path::Path;

use rvs::dpdk::{Burst, Mbuf, Mempool, Port, PortSetup, RxQueue, TxQueue};
use rvs::packet::Packet;
use rvs::rss::{RssTuple, Spread};

pub struct Peer {
    port: Port,
    rx: Vec<RxQueue>,
    tx: Vec<TxQueue>,
    spread: Spread,
    /// Frames waiting per queue, sent by `flush`.
    pending: Vec<Burst>,
    burst: Burst,
}

/// The started server end of memif `socket` (rvsd connects as the
/// client) with `queues` queue pairs, as ethdev `net_memif{index}`.
pub fn memif_server(index: usize, socket: &Path, queues: u16, pool: &Mempool) -> Port {
    let devargs = format!(
        "net_memif{index},role=server,socket={},id=0,socket-abstract=no",
        socket.display()
    );
    let setup = PortSetup {
        devargs: &devargs,
        rx_queues: queues,
        tx_queues: queues,
        rx_descriptors: 1024,
        tx_descriptors: 1024,
        promiscuous: false,
        mtu: None,
        mac: None,
    };
    let mut port = Port::open(&setup, pool).expect("memif server port");
    port.start().expect("start memif server");
    port
}

impl Peer {
    /// `memif_server`'s port as a software NIC; frames are built from
    /// `pool`.
    pub fn open(index: usize, socket: &Path, queues: u16, pool: &Mempool) -> Peer {
        let port = memif_server(index, socket, queues, pool);
        Peer {
            rx: (0..queues).filter_map(|q| port.rx_queue(q)).collect(),
            tx: (0..queues).filter_map(|q| port.tx_queue(q)).collect(),
            port,
            spread: Spread::software(queues),
            pending: (0..queues).map(|_| Burst::default()).collect(),
            burst: Burst::default(),
        }
    }

    pub fn link_up(&self) -> bool {
        self.port.link().up
    }

    pub fn queue_of(&self, frame: &[u8]) -> u16 {
        queue_of(&self.spread, frame)
    }

    /// Queues `frame` on its RSS queue; sent at once when that queue's
    /// burst is full, else by `flush`. False when the pool is empty.
    pub fn send(&mut self, pool: &Mempool, frame: &[u8]) -> bool {
        let q = usize::from(self.queue_of(frame));
        let Some(mut m) = Mbuf::alloc(pool) else {
            return false;
        };
        if !m.append(frame.len()) {
            return false;
        }
        m.data_mut().copy_from_slice(frame);
        if self.pending[q].push(m).is_err() {
            self.flush();
            return self.send(pool, frame);
        }
        true
    }

    /// Sends every queued frame, waiting out a full ring.
    pub fn flush(&mut self) {
        for (q, b) in self.pending.iter_mut().enumerate() {
            let mut spins = 0u32;
            while !b.is_empty() {
                if self.tx[q].tx(b) == 0 {
                    spins += 1;
                    if spins > 1_000_000 {
                        // The other end is gone: drop what is left.
                        for m in b.drain() {
                            drop(m);
                        }
                    }
                    std::hint::spin_loop();
                }
            }
        }
    }

    /// Every frame waiting on any queue, handed to `f` with its queue.
    pub fn poll(&mut self, mut f: impl FnMut(u16, &[u8])) -> usize {
        let mut n = 0;
        for (q, rx) in self.rx.iter_mut().enumerate() {
            loop {
                let got = rx.rx(&mut self.burst, 32);
                if got == 0 {
                    break;
                }
                n += got;
                for m in self.burst.drain() {
                    f(q as u16, m.data());
                }
            }
        }
        n
    }
}

/// The queue a device with `spread` puts `frame` on (0 for what it does
/// not hash: ARP, ICMPv6 without ports...).
pub fn queue_of(spread: &Spread, frame: &[u8]) -> u16 {
    tuple_of(frame).map_or(0, |(t, frag)| spread.queue(&t, frag))
}

/// What RSS reads of an Ethernet frame: its IPv4 or IPv6 addresses, its
/// TCP or UDP ports unless it is a fragment, and whether it is one.
pub fn tuple_of(frame: &[u8]) -> Option<(RssTuple, bool)> {
    let et = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let ip = frame.get(14..)?;
    let (proto, src, dst, l4, frag) = match et {
        0x0800 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let fo = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]);
            let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
            (ip[9], src.into(), dst.into(), ihl, fo & 0x3fff != 0)
        }
        0x86dd => {
            let src: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            (ip[6], src.into(), dst.into(), 40, ip[6] == 44)
        }
        _ => return None,
    };
    let ports = (!frag && (proto == 6 || proto == 17))
        .then(|| {
            let p = ip.get(l4..l4 + 4)?;
            Some((
                u16::from_be_bytes([p[0], p[1]]),
                u16::from_be_bytes([p[2], p[3]]),
            ))
        })
        .flatten()
        .unwrap_or((0, 0));
    Some((
        RssTuple {
            proto,
            src,
            dst,
            sport: ports.0,
            dport: ports.1,
        },
        frag,
    ))
}
