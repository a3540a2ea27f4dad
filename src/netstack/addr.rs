//! The snapshot of interfaces, owned addresses and routes.
use std::net::IpAddr;

use hashbrown::HashMap;

use super::route::{NextHop, Route, RouteTable};
use super::rxfilter::{RxFilter, RxVerdict};
use crate::wire::MacAddr;

/// Why rvs owns an address; all kinds answer ARP/ND and ping the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrKind {
    Interface,
    Vip,
    Local,
    /// A health-check source: rvs answers ARP/ND for it on the dataplane
    /// and hands everything else sent to it to the host's kernel.
    Health,
}

/// The exception path: a port whose other end is the host's kernel (a
/// tap), and the MACs on either side of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPath {
    pub port: u16,
    /// What rvs answers the kernel's ARP and ND with.
    pub mac: MacAddr,
    /// The kernel interface's own MAC.
    pub host_mac: MacAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnedAddr {
    pub port: u16,
    pub kind: AddrKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfaceAddr {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

/// One port as the network stack sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    pub port: u16,
    pub name: String,
    pub mac: MacAddr,
    pub addrs: Vec<IfaceAddr>,
    /// The port's IP MTU: what TUN encapsulation must fit and what a
    /// forwarded SYN's MSS is clamped to.
    pub mtu: u16,
    /// The port computes IPv4, TCP and UDP checksums on transmit.
    pub tx_checksum: bool,
}

#[derive(Debug, Clone, Default)]
pub struct NetConfig {
    ifaces: Vec<Iface>,
    owned: HashMap<IpAddr, OwnedAddr>,
    routes: RouteTable,
    host: Option<HostPath>,
    rx: RxFilter,
    /// Addresses a VRRP backup keeps quiet about (`with_standby`).
    standby: hashbrown::HashSet<IpAddr>,
    /// rvsd runs VRRP: the workers hand adverts to the control thread.
    vrrp: bool,
    /// Unique to this configuration's content: every `new` and `with_*`
    /// takes a fresh one, so a cache of what was worked out under one
    /// configuration can tell it is still current (`generation`).
    generation: u64,
}

/// The next configuration's generation.
fn next_generation() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl NetConfig {
    /// Builds the snapshot: every interface address is owned and yields a
    /// connected route; `statics` are added after them.
    pub fn new(ifaces: Vec<Iface>, statics: Vec<Route>) -> NetConfig {
        let mut owned = HashMap::new();
        let mut routes = RouteTable::default();
        for ifc in &ifaces {
            for a in &ifc.addrs {
                owned.insert(
                    a.addr,
                    OwnedAddr {
                        port: ifc.port,
                        kind: AddrKind::Interface,
                    },
                );
                routes.add(Route::connected(a.addr, a.prefix_len, ifc.port));
            }
        }
        for r in statics {
            routes.add(r);
        }
        let rx = RxFilter::new(&ifaces);
        NetConfig {
            ifaces,
            owned,
            routes,
            host: None,
            rx,
            standby: hashbrown::HashSet::new(),
            vrrp: false,
            generation: next_generation(),
        }
    }

    /// This configuration's generation: no other configuration, earlier or
    /// later, has the same (the default one's is 0).
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Itself, under a generation of its own (the end of every `with_*`).
    fn renewed(mut self) -> NetConfig {
        self.generation = next_generation();
        self
    }

    /// A copy whose workers hand VRRP adverts to the control thread.
    pub fn with_vrrp(&self) -> NetConfig {
        (NetConfig {
            vrrp: true,
            ..self.clone()
        })
        .renewed()
    }

    /// Whether rvsd runs VRRP.
    #[inline]
    pub fn vrrp(&self) -> bool {
        self.vrrp
    }

    /// A copy in which `addrs` are held by a VRRP backup: not owned (no
    /// ARP/ND answers, no announcements), and packets to them dropped.
    /// They stay rvs's own to the martian filter.
    pub fn with_standby(&self, addrs: impl IntoIterator<Item = IpAddr>) -> NetConfig {
        let mut c = self.clone();
        for a in addrs {
            c.owned.remove(&a);
            c.rx.add_source(a);
            c.standby.insert(a);
        }
        c.renewed()
    }

    /// Whether `addr` is held by a VRRP backup; one compare when nothing is.
    #[inline]
    pub fn is_standby(&self, addr: IpAddr) -> bool {
        !self.standby.is_empty() && self.standby.contains(&addr)
    }

    /// A copy in which `port` takes frames for any unicast MAC (its
    /// `accept_other_mac`), not only for its own.
    pub fn with_accept_other_mac(&self, port: u16) -> NetConfig {
        let mut c = self.clone();
        c.rx.accept_other_mac(port);
        c.renewed()
    }

    /// Whether `port` takes frames for any unicast MAC.
    pub fn accepts_other_mac(&self, port: u16) -> bool {
        self.rx.accepts_other_mac(port)
    }

    /// The verdict on a frame's Ethernet header, received on `port`,
    /// before anything else looks at it: another host's MAC, a group or
    /// zero source (`rxfilter`).
    #[inline]
    pub fn rx_check(&self, port: u16, frame: &[u8]) -> RxVerdict {
        self.rx.check(port, frame)
    }

    /// Whether the IP packet in `frame` has a martian source or
    /// destination, as the kernel's routing refuses them (`rxfilter`).
    pub fn martian_frame(&self, frame: &[u8]) -> bool {
        self.rx.martian_frame(frame)
    }

    /// The same for a TCP, UDP or SCTP packet's addresses.
    #[inline]
    pub fn martian_flow(&self, src: IpAddr, dst: IpAddr) -> bool {
        self.rx.martian_flow(src, dst)
    }

    /// A copy with the exception path to the host's kernel.
    pub fn with_host_path(&self, host: HostPath) -> NetConfig {
        (NetConfig {
            host: Some(host),
            ..self.clone()
        })
        .renewed()
    }

    pub fn host_path(&self) -> Option<HostPath> {
        self.host
    }

    /// A copy with one more owned address (a VIP or a local address).
    pub fn with_owned(&self, addr: IpAddr, owner: OwnedAddr) -> NetConfig {
        let mut c = self.clone();
        c.owned.insert(addr, owner);
        c.rx.add_source(addr);
        c.renewed()
    }

    /// A copy that also owns `extra` (VIPs, local addresses), each on the
    /// port whose connected subnet holds it, else on the port the route to
    /// it leaves by, else on the first port. Interface addresses keep their
    /// owner.
    pub fn with_extra(&self, extra: impl IntoIterator<Item = (IpAddr, AddrKind)>) -> NetConfig {
        let mut c = self.clone();
        for (addr, kind) in extra {
            if c.owned.contains_key(&addr) {
                continue;
            }
            let port = self
                .ifaces
                .iter()
                .find(|i| {
                    i.addrs
                        .iter()
                        .any(|a| super::route::prefix_contains(a.addr, a.prefix_len, addr))
                })
                .map(|i| i.port)
                .or_else(|| self.routes.lookup(addr).map(|h| h.port))
                .or_else(|| self.ifaces.first().map(|i| i.port));
            if let Some(port) = port {
                c.owned.insert(addr, OwnedAddr { port, kind });
                c.rx.add_source(addr);
            }
        }
        c.renewed()
    }

    /// The interface a packet to `dst` leaves by.
    pub fn egress(&self, dst: IpAddr) -> Option<&Iface> {
        self.route(dst).and_then(|h| self.iface(h.port))
    }

    pub fn iface(&self, port: u16) -> Option<&Iface> {
        self.ifaces.iter().find(|i| i.port == port)
    }

    pub fn ifaces(&self) -> &[Iface] {
        &self.ifaces
    }

    pub fn owner(&self, addr: IpAddr) -> Option<OwnedAddr> {
        self.owned.get(&addr).copied()
    }

    /// Every owned address with its owner, for announcing.
    pub fn owned(&self) -> impl Iterator<Item = (IpAddr, OwnedAddr)> + '_ {
        self.owned.iter().map(|(a, o)| (*a, *o))
    }

    pub fn route(&self, dst: IpAddr) -> Option<NextHop> {
        self.routes.lookup(dst)
    }

    /// An address of ours on `port` of `dst`'s family, preferring one whose
    /// subnet holds `dst`: the source for packets rvs originates.
    pub fn source_for(&self, port: u16, dst: IpAddr) -> Option<IpAddr> {
        let ifc = self.iface(port)?;
        let same_family = ifc
            .addrs
            .iter()
            .filter(|a| a.addr.is_ipv4() == dst.is_ipv4());
        same_family
            .clone()
            .find(|a| super::route::prefix_contains(a.addr, a.prefix_len, dst))
            .or_else(|| same_family.clone().next())
            .map(|a| a.addr)
            .or_else(|| {
                self.owned
                    .iter()
                    .find(|(a, o)| o.port == port && a.is_ipv4() == dst.is_ipv4())
                    .map(|(a, _)| *a)
            })
    }
}
