//! The per-worker caches in front of the published configuration: the
//! service a conn's packets count to (`SvcCache`) and the next hop towards
//! a real server or client (`RouteCache`, `egress`).
use super::*;

/// A direct-mapped cache of service lookups by (proto, VIP, vport) for the
/// packet path: a conn does not name its service, and looking it up in the
/// published set (a SipHash map, then the mark rules) for every packet cost
/// more than the rewrite. A slot keeps the service's index in the set and
/// its address, to check that the index still holds it; the cache is valid
/// for one published set (address and generation): a new set empties it.
/// IPv4 keys pack into one word; IPv6 keys go to a smaller second table.
pub(super) struct SvcCache {
    set: usize,
    generation: u64,
    v4: Vec<SvcSlot4>,
    v6: Vec<Option<SvcSlot6>>,
}

#[derive(Clone, Copy, Default)]
pub(super) struct SvcSlot4 {
    /// proto << 48 | port << 32 | address, with bit 56 set when filled.
    key: u64,
    svc: SvcRef,
}

#[derive(Clone, Copy)]
pub(super) struct SvcSlot6 {
    proto: u8,
    port: u16,
    addr: std::net::Ipv6Addr,
    svc: SvcRef,
}

/// Index in the set's `services()` and the service's address; `NONE`: the
/// key has no service.
#[derive(Clone, Copy, Default)]
pub(super) struct SvcRef {
    index: u32,
    ptr: usize,
}

impl SvcRef {
    const NONE: SvcRef = SvcRef {
        index: u32::MAX,
        ptr: 0,
    };

    #[inline]
    pub(super) fn get(self, svcs: &ServiceSet) -> Option<&Arc<Service>> {
        svcs.services()
            .get(self.index as usize)
            .filter(|s| Arc::as_ptr(s) as usize == self.ptr)
    }

    pub(super) fn of(svcs: &ServiceSet, found: Option<&Arc<Service>>) -> SvcRef {
        let Some(f) = found else {
            return SvcRef::NONE;
        };
        svcs.services()
            .iter()
            .position(|x| Arc::ptr_eq(x, f))
            .map_or(SvcRef::NONE, |i| SvcRef {
                index: i as u32,
                ptr: Arc::as_ptr(f) as usize,
            })
    }
}

pub(super) const SVC_CACHE_V4: usize = 4096;
pub(super) const SVC_CACHE_V6: usize = 256;
pub(super) const SVC_FILLED: u64 = 1 << 56;

impl SvcCache {
    pub(super) fn new() -> SvcCache {
        SvcCache {
            set: 0,
            generation: 0,
            v4: vec![SvcSlot4::default(); SVC_CACHE_V4],
            v6: vec![None; SVC_CACHE_V6],
        }
    }

    /// `svcs.lookup(0, proto, addr, port)`, cached.
    #[inline]
    pub(super) fn lookup<'s>(
        &mut self,
        svcs: &'s ServiceSet,
        proto: u8,
        addr: IpAddr,
        port: u16,
    ) -> Option<&'s Arc<Service>> {
        self.lookup_in_line(svcs, proto, addr, port)
    }

    /// `lookup` in line, for a new conn's way, where the call cost a
    /// third of the lookup (the express lane's rare lookups keep the
    /// call: in line there, they moved its registers).
    #[inline(always)]
    pub(super) fn lookup_in_line<'s>(
        &mut self,
        svcs: &'s ServiceSet,
        proto: u8,
        addr: IpAddr,
        port: u16,
    ) -> Option<&'s Arc<Service>> {
        let set = svcs as *const ServiceSet as usize;
        if set != self.set || svcs.generation() != self.generation {
            self.v4.iter_mut().for_each(|s| *s = SvcSlot4::default());
            self.v6.iter_mut().for_each(|s| *s = None);
            self.set = set;
            self.generation = svcs.generation();
        }
        let slow = || Protocol::from_number(proto).and_then(|p| svcs.lookup(0, p, addr, port));
        match addr {
            IpAddr::V4(a) => {
                let key = SVC_FILLED
                    | u64::from(proto) << 48
                    | u64::from(port) << 32
                    | u64::from(u32::from(a));
                let h = key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 52;
                let slot = &mut self.v4[h as usize % SVC_CACHE_V4];
                if slot.key == key {
                    if slot.svc.index == u32::MAX {
                        return None;
                    }
                    if let Some(s) = slot.svc.get(svcs) {
                        return Some(s);
                    }
                }
                let found = slow();
                *slot = SvcSlot4 {
                    key,
                    svc: SvcRef::of(svcs, found),
                };
                found
            }
            IpAddr::V6(a) => {
                let x = u128::from(a);
                let h =
                    ((x as u64) ^ ((x >> 64) as u64) ^ u64::from(port) ^ u64::from(proto) << 16)
                        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                        >> 56;
                let slot = &mut self.v6[h as usize % SVC_CACHE_V6];
                if let Some(s) = slot.filter(|s| s.proto == proto && s.port == port && s.addr == a)
                {
                    if s.svc.index == u32::MAX {
                        return None;
                    }
                    if let Some(s) = s.svc.get(svcs) {
                        return Some(s);
                    }
                }
                let found = slow();
                *slot = Some(SvcSlot6 {
                    proto,
                    port,
                    addr: a,
                    svc: SvcRef::of(svcs, found),
                });
                found
            }
        }
    }
}

/// The routes to real servers, per worker: a direct-mapped cache of
/// `next_hop` and the egress port's MTU and checksum offload by address,
/// valid for one network configuration (`NetConfig::generation`); a new
/// one empties the cache. A slot
/// also keeps the next hop's Ethernet header (`l2`), used while the
/// neighbour table says it holds (`Stack::l2_fresh`), so that a packet to
/// a known real server or client costs no neighbour lookup.
pub(super) struct RouteCache {
    pub(super) net: u64,
    pub(super) slots: [Option<RouteSlot>; ROUTE_CACHE_SLOTS],
}

#[derive(Clone, Copy)]
pub(super) struct RouteSlot {
    pub(super) dst: IpAddr,
    pub(super) hop: Option<NextHop>,
    pub(super) mtu: u16,
    pub(super) tx_checksum: bool,
    pub(super) l2: Option<L2>,
    /// The egress port's source address for `dst` (TUN's outer source),
    /// worked out on the first packet that asks.
    pub(super) src: Option<Option<IpAddr>>,
}

pub(super) const ROUTE_CACHE_SLOTS: usize = 64;

impl RouteCache {
    #[inline]
    pub(super) fn index(dst: IpAddr) -> usize {
        let low = match dst {
            IpAddr::V4(a) => u32::from(a),
            IpAddr::V6(a) => u128::from(a) as u32,
        };
        (low.wrapping_mul(0x9e37_79b1) >> 26) as usize % ROUTE_CACHE_SLOTS
    }

    #[inline]
    pub(super) fn lookup(&mut self, net: &NetConfig, dst: IpAddr) -> RouteSlot {
        let key = net.generation();
        if key != self.net {
            self.slots = [None; ROUTE_CACHE_SLOTS];
            self.net = key;
        }
        let link_local = matches!(dst, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80);
        let i = Self::index(dst);
        // Compared in place: a slot copied out before the compare costs
        // more than the compare.
        if let Some(s) = self.slots[i].as_ref().filter(|s| s.dst == dst) {
            return *s;
        }
        let hop = net.route(dst);
        let egress = hop.and_then(|h| net.iface(h.port));
        let slot = RouteSlot {
            dst,
            hop,
            mtu: egress.map_or(1500, |i| i.mtu),
            tx_checksum: egress.is_some_and(|i| i.tx_checksum),
            l2: None,
            src: None,
        };
        // Link-local destinations are routed by the port a packet came in
        // on (`Stack::next_hop`), which is not part of the key.
        if !link_local {
            self.slots[i] = Some(slot);
        }
        slot
    }

    /// The source address of the egress port towards `dst` by `hop`
    /// (`lookup`'s answer for it), kept with the route.
    #[inline]
    pub(super) fn source_for(
        &mut self,
        net: &NetConfig,
        dst: IpAddr,
        hop: NextHop,
    ) -> Option<IpAddr> {
        let slot = self.slots[Self::index(dst)]
            .as_mut()
            .filter(|s| s.dst == dst && s.hop == Some(hop));
        match slot {
            Some(RouteSlot { src: Some(a), .. }) => *a,
            Some(s) => *s.src.insert(net.source_for(hop.port, dst)),
            None => net.source_for(hop.port, dst),
        }
    }

    /// Sends a packet to `dst` by `hop` (`lookup`'s answer for it): with
    /// the slot's Ethernet header while it is fresh, else through the
    /// stack's resolution, after which the slot keeps what it found.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(super) fn send<P: Packet>(
        &mut self,
        stack: &mut Stack<P>,
        net: &NetConfig,
        dst: IpAddr,
        hop: NextHop,
        pkt: P,
        now: Millis,
        out: &mut impl Output<P>,
    ) {
        let Some(slot) = self.slots[Self::index(dst)]
            .as_mut()
            .filter(|s| s.dst == dst && s.hop == Some(hop))
        else {
            stack.send_via(net, pkt, hop, now, out);
            return;
        };
        if let Some(l2) = slot.l2.filter(|l2| stack.l2_fresh(l2, now)) {
            stack.send_l2(pkt, &l2, out);
            return;
        }
        stack.send_via(net, pkt, hop, now, out);
        slot.l2 = stack.l2_for(net, hop, now);
    }
}

/// The next hop towards `dst` for a packet that came in on `rx`, and the
/// egress port's MTU and checksum offload.
#[inline]
pub(super) fn egress<P: Packet>(
    routes: &mut RouteCache,
    net: &NetConfig,
    dst: IpAddr,
    rx: u16,
) -> (Option<NextHop>, u16, bool) {
    match dst {
        // Link-local: on the link the packet came from.
        IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80 => {
            let hop = Stack::<P>::next_hop(net, dst, rx);
            let port = hop.and_then(|h| net.iface(h.port));
            (
                hop,
                port.map_or(1500, |i| i.mtu),
                port.is_some_and(|i| i.tx_checksum),
            )
        }
        _ => {
            let r = routes.lookup(net, dst);
            (r.hop, r.mtu, r.tx_checksum)
        }
    }
}
