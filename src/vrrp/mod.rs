//! VIP failover: rvsd speaks VRRP version 3 (RFC 5798, over IPv4) itself.
//!
//! The control thread runs one `machine::Machine` per `[[vrrp]]` instance
//! (`Vrrp`): workers hand it the adverts they receive
//! (`dataplane::vrrp::RxAdvert`), it builds the adverts to send
//! (`wire::vrrp`) and a worker sends them from the port's MAC. The
//! addresses an instance moves are owned only while it is master: as
//! backup they are published as standby (`NetConfig::with_standby`), so
//! rvs answers no ARP/ND for them, announces none, and drops packets to
//! them (`vrrp_backup`). On becoming master the new snapshot owns them
//! again and worker 0 announces each (gratuitous ARP, unsolicited NA).
//!
//! Unlike RFC 5798's virtual router MAC (00-00-5E-00-01-{VRID}), adverts
//! and answers use the port's own MAC: the gratuitous announcements move
//! the addresses, as keepalived's use_vmac-less default does.

pub mod machine;
mod notify;
pub mod status;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::VrrpConfig;
use crate::dataplane::vrrp::RxAdvert;
use crate::dataplane::ToWorker;
use crate::netstack::{AddrKind, NetConfig, OwnedAddr};
use crate::wire::vrrp::{VrrpRepr, GROUP_V4, PROTO, TTL, TYPE_ADVERTISEMENT, VERSION};
use crate::wire::{EtherType, EthernetFrame, IpProtocol, Ipv4Packet, Ipv4Repr, MacAddr};
use crossbeam_channel::Sender;
use machine::{Effects, Heard, Machine, Millis, Params, State};
use status::{InstanceStatus, RxDrop, Status};

/// How long after taking over a master announces its addresses again.
const REANNOUNCE_MS: Millis = 1000;

/// The Ethernet group 224.0.0.18 maps to.
const GROUP_MAC: MacAddr = MacAddr([0x01, 0x00, 0x5e, 0x00, 0x00, 0x12]);
const ETH: usize = 14;

/// What a worker must do for the machines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// Send an advert.
    Frame {
        port: u16,
        frame: Box<[u8]>,
        /// Routed to this unicast peer (the worker fills the Ethernet header).
        via: Option<IpAddr>,
    },
    /// Announce these owned addresses again.
    Announce(Box<[IpAddr]>),
}

struct Instance {
    cfg: VrrpConfig,
    port: u16,
    mac: MacAddr,
    primary: Ipv4Addr,
    /// `ADDR on PORT`, resolved to port ids.
    extra: Vec<(IpAddr, u16)>,
    machine: Machine,
    status_index: usize,
    /// A new master announces its addresses again this much later, in
    /// case the first gratuitous ARP / NA was lost.
    reannounce: Option<Millis>,
}

/// Every instance, on the control thread.
pub struct Vrrp {
    instances: Vec<Instance>,
    epoch: Instant,
    status: Arc<Status>,
    notifier: notify::Notifier,
    /// The service addresses (VIPs, local addresses): announced again by
    /// their instance's master; the IPv4 ones listed in its adverts.
    services: Vec<IpAddr>,
    service_v4: Vec<Ipv4Addr>,
    changed: bool,
}

impl Vrrp {
    /// The instances of `cfgs` on the ports of `net`.
    pub fn new(cfgs: &[VrrpConfig], net: &NetConfig) -> Result<Vrrp, String> {
        let port_of = |name: &str| net.ifaces().iter().find(|i| i.name == name);
        let mut instances = Vec::with_capacity(cfgs.len());
        let mut statuses = Vec::with_capacity(cfgs.len());
        for (i, c) in cfgs.iter().enumerate() {
            let ifc = port_of(&c.port)
                .ok_or_else(|| format!("vrrp[{i}].port: no port named {:?}", c.port))?;
            let primary = ifc
                .addrs
                .iter()
                .find_map(|a| match a.addr {
                    IpAddr::V4(v) => Some(v),
                    IpAddr::V6(_) => None,
                })
                .ok_or_else(|| format!("vrrp[{i}].port: {:?} has no IPv4 address", c.port))?;
            let mut extra = Vec::with_capacity(c.extra.len());
            for (a, p) in &c.extra {
                let port = port_of(p)
                    .ok_or_else(|| format!("vrrp[{i}].addresses: no port named {p:?}"))?
                    .port;
                extra.push((*a, port));
            }
            statuses.push(InstanceStatus::new(&c.name, c.vrid));
            instances.push(Instance {
                cfg: c.clone(),
                port: ifc.port,
                mac: ifc.mac,
                primary,
                extra,
                machine: Machine::new(Params {
                    priority: c.priority,
                    advert_int: c.advert_int,
                    preempt: c.preempt,
                    primary,
                }),
                status_index: i,
                reannounce: None,
            });
        }
        Ok(Vrrp {
            instances,
            epoch: Instant::now(),
            status: Arc::new(Status::new(statuses)),
            notifier: notify::Notifier::start(),
            services: Vec::new(),
            service_v4: Vec::new(),
            changed: true,
        })
    }

    pub fn status(&self) -> Arc<Status> {
        self.status.clone()
    }

    fn now(&self) -> Millis {
        self.epoch.elapsed().as_millis() as Millis
    }

    /// The Startup event of every instance.
    pub fn start(&mut self) -> Vec<Out> {
        let now = self.now();
        let mut out = Vec::new();
        for i in 0..self.instances.len() {
            let e = self.instances[i].machine.startup(now);
            self.effects(i, e, &mut out);
        }
        out
    }

    /// A VRRP message a worker received.
    pub fn heard(&mut self, a: RxAdvert) -> Vec<Out> {
        let mut out = Vec::new();
        let refused = if a.ttl != TTL {
            Some(RxDrop::Ttl)
        } else if a.version != VERSION {
            Some(RxDrop::Version)
        } else if !a.complete {
            Some(RxDrop::Length)
        } else if !a.checksum_ok {
            Some(RxDrop::Checksum)
        } else if a.kind != TYPE_ADVERTISEMENT {
            Some(RxDrop::Type)
        } else {
            None
        };
        if let Some(r) = refused {
            self.status.refused(r);
            return out;
        }
        let Some(i) = self
            .instances
            .iter()
            .position(|x| x.port == a.port && x.cfg.vrid == a.vrid)
        else {
            self.status.refused(RxDrop::Vrid);
            return out;
        };
        // Our own advert, looped back by the link.
        if a.src == self.instances[i].primary {
            return out;
        }
        self.status.instances[self.instances[i].status_index]
            .adverts_received
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = self.now();
        let e = self.instances[i].machine.advert(
            now,
            Heard {
                src: a.src,
                priority: a.priority,
                max_adver_int: a.max_adver_int,
            },
        );
        self.effects(i, e, &mut out);
        out
    }

    /// The timers that are due.
    pub fn poll(&mut self) -> Vec<Out> {
        let now = self.now();
        let mut out = Vec::new();
        for i in 0..self.instances.len() {
            if self.instances[i]
                .machine
                .deadline()
                .is_some_and(|d| d <= now)
            {
                let e = self.instances[i].machine.tick(now);
                self.effects(i, e, &mut out);
            }
            let x = &self.instances[i];
            if x.reannounce.is_some_and(|t| t <= now) {
                if x.machine.state() == State::Master {
                    out.push(Out::Announce(self.moved(x)));
                }
                self.instances[i].reannounce = None;
            }
        }
        out
    }

    /// When `poll` next has something to do.
    pub fn next_wake(&self) -> Option<Instant> {
        self.instances
            .iter()
            .flat_map(|x| [x.machine.deadline(), x.reannounce])
            .flatten()
            .min()
            .map(|ms| self.epoch + Duration::from_millis(ms))
    }

    /// The Shutdown event of every instance: a master sends priority 0.
    pub fn shutdown(&mut self) -> Vec<Out> {
        let mut out = Vec::new();
        for i in 0..self.instances.len() {
            let e = self.instances[i].machine.shutdown();
            self.effects(i, e, &mut out);
        }
        out
    }

    /// rvsd stops: a master sends its priority-0 advert through `to`
    /// (waiting a little for the worker to take it), and the notify
    /// commands get a moment to finish.
    pub fn stop(mut self, to: &Sender<ToWorker>) {
        send(self.shutdown(), to);
        let deadline = Instant::now() + Duration::from_millis(200);
        while !to.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        // The worker sends a frame as soon as it takes it off the queue.
        std::thread::sleep(Duration::from_millis(5));
        self.notifier.finish(Duration::from_secs(2));
    }

    /// Whether the addresses changed hands since the last call.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// `net` (which owns every service address) as the instances' states
    /// have it: a master's addresses owned (its `ADDR on PORT` ones
    /// added), the others' held on standby.
    pub fn apply(&mut self, net: &NetConfig) -> NetConfig {
        let services: Vec<IpAddr> = net
            .owned()
            .filter(|(_, o)| matches!(o.kind, AddrKind::Vip | AddrKind::Local))
            .map(|(a, _)| a)
            .collect();
        self.service_v4 = services
            .iter()
            .filter_map(|a| match a {
                IpAddr::V4(v) => Some(*v),
                IpAddr::V6(_) => None,
            })
            .collect();
        self.service_v4.sort();
        self.services = services.clone();
        let mut cfg = net.with_vrrp();
        let mut standby: HashSet<IpAddr> = HashSet::new();
        for x in &self.instances {
            let master = x.machine.state() == State::Master;
            if x.cfg.services && !master {
                standby.extend(services.iter().copied());
            }
            for &(a, port) in &x.extra {
                if master {
                    let kind = AddrKind::Interface;
                    cfg = cfg.with_owned(a, OwnedAddr { port, kind });
                } else {
                    standby.insert(a);
                }
            }
        }
        cfg.with_standby(standby)
    }

    fn effects(&mut self, i: usize, e: Effects, out: &mut Vec<Out>) {
        let x = &self.instances[i];
        let st = &self.status.instances[x.status_index];
        if let Some(prio) = e.send {
            out.extend(self.adverts(x, prio));
            st.adverts_sent
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if e.announce {
            log::info!(
                "vrrp {}: another router advertised a lower priority; announcing the addresses again",
                x.cfg.name
            );
            out.push(Out::Announce(self.moved(x)));
        }
        let Some(s) = e.became else { return };
        st.entered(s);
        let (name, vrid, prio) = (&x.cfg.name, x.cfg.vrid, x.cfg.priority);
        match s {
            State::Master => log::warn!(
                "vrrp {name} (vrid {vrid}, priority {prio}): MASTER; taking the addresses"
            ),
            State::Backup => log::warn!(
                "vrrp {name} (vrid {vrid}, priority {prio}): BACKUP; the addresses are the master's"
            ),
            State::Initialize => log::info!("vrrp {name} (vrid {vrid}): stopped"),
        }
        if let Some(cmd) = &x.cfg.notify {
            // keepalived's word for an instance that stops.
            let word = if s == State::Initialize {
                "STOP"
            } else {
                s.name()
            };
            self.notifier.run(cmd, name, word, prio);
        }
        self.changed = true;
        // Taking over, the new snapshot makes worker 0 announce each
        // address once; once more a second later.
        let again = (s == State::Master).then(|| self.now() + REANNOUNCE_MS);
        self.instances[i].reannounce = again;
    }

    /// The addresses instance `x` moves, as they are now.
    fn moved(&self, x: &Instance) -> Box<[IpAddr]> {
        let mut addrs: Vec<IpAddr> = x.extra.iter().map(|(a, _)| *a).collect();
        if x.cfg.services {
            addrs.extend(self.services.iter().copied());
        }
        addrs.into_boxed_slice()
    }

    /// The advert of instance `x` with `priority`: one to the group, or
    /// one per unicast peer.
    fn adverts(&self, x: &Instance, priority: u8) -> Vec<Out> {
        let mut addrs: Vec<Ipv4Addr> = Vec::new();
        if x.cfg.services {
            addrs.extend(self.service_v4.iter().copied());
        }
        addrs.extend(x.extra.iter().filter_map(|(a, _)| match a {
            IpAddr::V4(v) => Some(*v),
            IpAddr::V6(_) => None,
        }));
        let repr = VrrpRepr {
            vrid: x.cfg.vrid,
            priority,
            max_adver_int: x.cfg.advert_int,
            addrs: &addrs,
        };
        if x.cfg.unicast_peers.is_empty() {
            vec![Out::Frame {
                port: x.port,
                frame: build_advert(x.mac, GROUP_MAC, x.primary, GROUP_V4, &repr),
                via: None,
            }]
        } else {
            x.cfg
                .unicast_peers
                .iter()
                .map(|&peer| Out::Frame {
                    port: x.port,
                    frame: build_advert(x.mac, MacAddr::ZERO, x.primary, peer, &repr),
                    via: Some(IpAddr::V4(peer)),
                })
                .collect()
        }
    }
}

/// Hands `outs` to a worker; a full queue loses an advert, which the
/// protocol tolerates (a backup waits for three).
pub fn send(outs: Vec<Out>, to: &Sender<ToWorker>) {
    for o in outs {
        let msg = match o {
            Out::Frame { port, frame, via } => ToWorker::Frame { port, frame, via },
            Out::Announce(addrs) => ToWorker::Announce(addrs),
        };
        if to.try_send(msg).is_err() {
            log::warn!("vrrp: an advert was not sent: the worker's queue is full");
        }
    }
}

/// Ethernet + IPv4 (TTL 255, protocol 112) + the advert.
pub fn build_advert(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    repr: &VrrpRepr<'_>,
) -> Box<[u8]> {
    let len = repr.buffer_len();
    let mut f = vec![0u8; ETH + 20 + len];
    {
        let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
        eth.set_dst_addr(dst_mac);
        eth.set_src_addr(src_mac);
        eth.set_ethertype(EtherType::IPV4);
    }
    let ip = Ipv4Repr {
        src,
        dst,
        protocol: IpProtocol(PROTO),
        payload_len: len,
        ttl: TTL,
        dont_frag: false,
    };
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut f[ETH..]));
    repr.emit_v4(&mut f[ETH + 20..], src, dst);
    f.into_boxed_slice()
}

#[cfg(test)]
mod tests;
