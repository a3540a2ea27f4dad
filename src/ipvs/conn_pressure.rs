//! A conn table under pressure: the embryonic conns a full table gives up
//! first (oldest first, in O(1): a list threaded through a side array of
//! the slab), the kernel's drop_entry scan (ip_vs_random_dropentry), and
//! what a table of a given capacity costs, for sizing it from memory.
//!
//! A child of `conn`, so that it reaches the slab without widening the
//! conn's public API.
use super::*;
use crate::ipvs::defense::DropEntryCounters;

/// A `prev` link marking the head of the list (NIL: not on it).
const HEAD: u32 = NIL - 1;

/// Embryonic conns (TCP NONE, SYN_RECV and SYNACK; SCTP NONE, INIT1 and
/// INIT) in the order they became embryonic: `links[i]` is slot i's
/// (prev, next). Grown with the slab, never beyond its capacity.
#[derive(Debug)]
pub(super) struct Embryonic {
    links: Vec<[u32; 2]>,
    head: u32,
    tail: u32,
    len: usize,
}

impl Embryonic {
    pub(super) fn with_capacity(cap: usize) -> Embryonic {
        Embryonic {
            links: Vec::with_capacity(cap),
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }

    pub(super) fn memory_bytes(&self) -> usize {
        self.links.capacity() * std::mem::size_of::<[u32; 2]>()
    }

    fn is_linked(&self, i: u32) -> bool {
        self.links.get(i as usize).is_some_and(|l| l[0] != NIL)
    }

    #[inline]
    fn push_back(&mut self, i: u32) {
        let prev = if self.tail == NIL { HEAD } else { self.tail };
        if let Some(l) = self.links.get_mut(i as usize) {
            *l = [prev, NIL];
        } else {
            return;
        }
        match self.links.get_mut(self.tail as usize) {
            Some(t) => t[1] = i,
            None => self.head = i,
        }
        self.tail = i;
        self.len += 1;
    }

    fn unlink(&mut self, i: u32) {
        let Some([prev, next]) = self.links.get(i as usize).copied() else {
            return;
        };
        if prev == NIL {
            return;
        }
        if prev == HEAD {
            self.head = next;
        } else if let Some(p) = self.links.get_mut(prev as usize) {
            p[1] = next;
        }
        if next == NIL {
            self.tail = if prev == HEAD { NIL } else { prev };
        } else if let Some(n) = self.links.get_mut(next as usize) {
            n[0] = prev;
        }
        if let Some(l) = self.links.get_mut(i as usize) {
            *l = [NIL, NIL];
        }
        self.len -= 1;
    }
}

/// Whether a conn of `proto` in `state` is still opening.
#[inline]
pub(super) fn embryonic_state(proto: u8, state: u8) -> bool {
    match proto {
        IPPROTO_TCP => matches!(
            TcpState::from_u8(state),
            Some(TcpState::None | TcpState::SynRecv | TcpState::SynAck)
        ),
        IPPROTO_SCTP => matches!(
            SctpState::from_u8(state),
            Some(SctpState::None | SctpState::Init1 | SctpState::Init)
        ),
        _ => false,
    }
}

/// Whether `c` is a conn still opening: what a full table evicts first.
fn is_embryonic(c: &Conn) -> bool {
    c.has(flags::LIVE) && !c.is_template() && embryonic_state(c.proto(), c.state())
}

impl ConnTable {
    /// A slot for a new conn: a freed one, or the next one never used
    /// (`slab.len()`, which `put` then pushes: its pages are touched only
    /// now).
    pub(super) fn take_slot(&mut self) -> Option<u32> {
        if self.free != NIL {
            let i = self.free;
            self.free = self.slab.get(i as usize).map_or(NIL, |c| c.next);
            return Some(i);
        }
        (self.slab.len() < self.cap).then_some(self.slab.len() as u32)
    }

    /// Gives back slot `i`, which `take_slot` gave and nothing was put in.
    pub(super) fn return_slot(&mut self, i: u32) {
        if (i as usize) < self.slab.len() {
            if let Some(c) = self.slab.get_mut(i as usize) {
                c.next = self.free;
                self.free = i;
            }
        }
    }

    /// Puts `conn` in slot `i` of `slab`, which `take_slot` gave, and
    /// gives it back there (None for a slot `take_slot` did not give). Of
    /// the table's slab and list alone: the caller finishes the conn there
    /// while it counts it in the table's `folds`.
    pub(super) fn put<'a>(
        slab: &'a mut Vec<Conn>,
        embryonic: &mut Embryonic,
        i: u32,
        conn: Conn,
    ) -> Option<&'a mut Conn> {
        let i = i as usize;
        if i == slab.len() {
            slab.push(conn);
            embryonic.links.push([NIL, NIL]);
        } else if let Some(slot) = slab.get_mut(i) {
            *slot = conn;
        }
        slab.get_mut(i)
    }

    /// Files conn `i` on the embryonic list, or takes it off, as its state
    /// says.
    pub(super) fn embryonic_update(&mut self, i: u32) {
        let want = self.slab.get(i as usize).is_some_and(is_embryonic);
        match (want, self.embryonic.is_linked(i)) {
            (true, false) => self.embryonic.push_back(i),
            (false, true) => self.embryonic.unlink(i),
            _ => {}
        }
    }

    /// Files conn `i`, new and embryonic, at the back of the list.
    #[inline]
    pub(super) fn embryonic_push(&mut self, i: u32) {
        self.embryonic.push_back(i);
    }

    pub(super) fn embryonic_unlink(&mut self, i: u32) {
        self.embryonic.unlink(i);
    }

    /// Whether the timer wheel has ticks that have passed unhandled: a
    /// new conn's `expire` then has work.
    #[inline]
    pub fn expiry_due(&self, now: Millis) -> bool {
        self.wheel.behind(now)
    }

    /// Slots free for new conns and templates.
    pub fn free_slots(&self) -> usize {
        self.cap.saturating_sub(self.live)
    }

    /// Embryonic conns in the table.
    pub fn embryonic_len(&self) -> usize {
        self.embryonic.len
    }

    /// The oldest embryonic conn, the next `evict_embryonic` takes.
    pub fn oldest_embryonic(&self) -> Option<ConnId> {
        (self.embryonic.head != NIL).then_some(ConnId(self.embryonic.head))
    }

    /// secure_tcp on or off: TCP conns take their next step through
    /// tcp_states_dos, with its shorter embryonic timeouts, or the normal
    /// table.
    pub fn set_secure_tcp(&mut self, on: bool) {
        self.secure_tcp = on;
    }

    pub fn secure_tcp(&self) -> bool {
        self.secure_tcp
    }

    /// Removes the oldest embryonic conn, calling `on_remove` with it
    /// first; false when there is none.
    pub fn evict_embryonic(&mut self, mut on_remove: impl FnMut(ConnId, ConnRef<'_>)) -> bool {
        let i = self.embryonic.head;
        if i == NIL {
            return false;
        }
        self.wheel.unlink(&mut self.slab, i);
        self.free_conn(i, &mut on_remove);
        true
    }

    /// One step of ip_vs_random_dropentry over slab slots `from` to
    /// `from + count` (wrapping round the slots in use): TCP conns in
    /// SYN_RECV or SYNACK and SCTP ones in INIT1 or INIT go, and
    /// ESTABLISHED ones, UDP and the rest of SCTP as `todrop_entry`
    /// decides; a removed conn's template goes too, or, while it still
    /// controls others, lives 60 s more (the kernel's expire_now of it).
    /// Templates themselves are left to their timers. Returns the slot to
    /// go on from and how many conns went.
    pub fn drop_entry_scan(
        &mut self,
        from: u32,
        count: usize,
        now: Millis,
        counters: &mut DropEntryCounters,
        mut on_remove: impl FnMut(ConnId, ConnRef<'_>),
    ) -> (u32, usize) {
        let used = self.slab.len();
        if used == 0 {
            return (0, 0);
        }
        let mut i = from as usize % used;
        let mut removed = 0;
        for _ in 0..count.min(used) {
            let at = i as u32;
            i = (i + 1) % used;
            let Some(c) = self.live(at).filter(|c| !c.is_template()) else {
                continue;
            };
            let idle = u64::from(c.timeout).saturating_sub(c.expires_in(now));
            let drop = match c.proto() {
                IPPROTO_TCP => match TcpState::from_u8(c.state()) {
                    Some(TcpState::SynRecv | TcpState::SynAck) => true,
                    Some(TcpState::Established) => counters.todrop(idle, c.in_pkts),
                    _ => false,
                },
                IPPROTO_SCTP => match SctpState::from_u8(c.state()) {
                    Some(SctpState::Init1 | SctpState::Init) => true,
                    Some(SctpState::Established) => counters.todrop(idle, c.in_pkts),
                    _ => false,
                },
                _ => counters.todrop(idle, c.in_pkts),
            };
            if !drop {
                continue;
            }
            let ctl = c.control;
            self.wheel.unlink(&mut self.slab, at);
            self.free_conn(at, &mut on_remove);
            removed += 1;
            if ctl == NIL || !self.live(ctl).is_some_and(Conn::is_template) {
                continue;
            }
            if self.live(ctl).is_some_and(|t| t.n_control == 0) {
                self.wheel.unlink(&mut self.slab, ctl);
                self.free_conn(ctl, &mut on_remove);
            } else if let Some(t) = self.slab.get_mut(ctl as usize) {
                t.timeout = CONTROL_GRACE_MS;
                self.set_expiry(ctl, now.saturating_add(u64::from(CONTROL_GRACE_MS)), now);
            }
        }
        (i as u32, removed)
    }

    /// Slots of the slab in use (touched) so far: where a scan wraps.
    pub fn slots_used(&self) -> usize {
        self.slab.len()
    }

    /// What `with_capacity(n).memory_bytes()` comes to, without making the
    /// table: slab, index, the embryonic list and the wheel.
    pub fn bytes_for(n: usize) -> usize {
        let cap = n.clamp(1, MAX_INDEX as usize + 1);
        cap * (std::mem::size_of::<Conn>() + std::mem::size_of::<[u32; 2]>())
            + super::conn_index::Index::bytes_for(2 * cap)
            + Wheel::bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::conn::tests::{conn, dest, ip};
    use crate::ipvs::proto::tcp_flags::{ACK, SYN};

    fn tcp(d: &Arc<Dest>, cport: u16) -> Conn {
        conn(d, "192.0.2.1", cport)
    }

    fn cports(t: &ConnTable) -> Vec<u16> {
        let mut v: Vec<u16> = t.iter().map(|(_, c)| c.cport()).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn a_full_table_gives_up_its_oldest_embryonic_conn() {
        let d = dest(FwdMethod::Masq);
        let to = Timeouts::new();
        let mut t = ConnTable::with_capacity(4);
        // Conns 1..4 made in that order; 2 gets its handshake done, 3 and
        // 1 their SYN (SYN_RECV), 4 nothing (NONE).
        let ids: Vec<ConnId> = (1..=4)
            .map(|p| t.insert(tcp(&d, p), Some(&d), 0).unwrap())
            .collect();
        t.on_packet(ids[1], Direction::Input, SYN, 1, &to);
        t.on_packet(ids[1], Direction::Output, SYN | ACK, 2, &to);
        t.on_packet(ids[1], Direction::Input, ACK, 3, &to);
        t.on_packet(ids[2], Direction::Input, SYN, 4, &to);
        t.on_packet(ids[0], Direction::Input, SYN, 5, &to);
        assert!(t.is_full());
        assert_eq!(t.embryonic_len(), 3);
        let mut gone = Vec::new();
        let mut evict = |t: &mut ConnTable| t.evict_embryonic(|_, c| gone.push(c.cport()));
        // Oldest by when they became embryonic (made): 1, then 3, then 4;
        // never the established 2.
        assert!(evict(&mut t));
        assert!(evict(&mut t));
        assert!(evict(&mut t));
        assert!(!evict(&mut t), "only the established conn is left");
        assert_eq!(gone, [1, 3, 4]);
        assert_eq!(cports(&t), [2]);
        assert_eq!((d.activeconns(), d.inactconns()), (1, 0));
        assert_eq!(
            t.expire(10_000_000, usize::MAX),
            1,
            "evicted conns left the wheel"
        );
    }

    #[test]
    fn a_conn_leaves_the_list_when_it_establishes_and_rejoins_at_the_back() {
        let d = dest(FwdMethod::Masq);
        let to = Timeouts::new();
        let mut t = ConnTable::with_capacity(8);
        let a = t.insert(tcp(&d, 1), Some(&d), 0).unwrap();
        let b = t.insert(tcp(&d, 2), Some(&d), 0).unwrap();
        assert_eq!(t.oldest_embryonic(), Some(a));
        t.on_packet(a, Direction::Input, SYN, 1, &to);
        t.on_packet(a, Direction::Input, ACK, 2, &to);
        assert_eq!((t.oldest_embryonic(), t.embryonic_len()), (Some(b), 1));
        // ESTABLISHED -> CLOSE (RST) -> a new SYN on it: SYN_RECV again,
        // behind b.
        t.on_packet(
            a,
            Direction::Input,
            crate::ipvs::proto::tcp_flags::RST,
            3,
            &to,
        );
        t.on_packet(a, Direction::Input, SYN, 4, &to);
        assert_eq!(t.get(a).unwrap().state_name(), "SYN_RECV");
        assert_eq!(t.oldest_embryonic(), Some(b));
        assert!(t.remove(b));
        assert_eq!((t.oldest_embryonic(), t.embryonic_len()), (Some(a), 1));
        assert!(t.remove(a));
        assert_eq!((t.oldest_embryonic(), t.embryonic_len()), (None, 0));
    }

    #[test]
    fn udp_and_templates_are_never_embryonic() {
        let d = dest(FwdMethod::Masq);
        let mut t = ConnTable::with_capacity(4);
        let u = Conn::new(
            IPPROTO_UDP,
            (ip("192.0.2.1"), 53),
            (ip("10.0.0.1"), 53),
            53,
            d.fwd(),
        );
        t.insert(u, Some(&d), 0).unwrap();
        let key = crate::ipvs::TemplateKey {
            proto: IPPROTO_TCP,
            client_net: ip("192.0.2.0"),
            vaddr: ip("10.0.0.1"),
            vport: 80,
        };
        t.insert(Conn::template(&key, &d, 80, 360_000), Some(&d), 0)
            .unwrap();
        assert_eq!(t.embryonic_len(), 0);
        assert!(!t.evict_embryonic(|_, _| {}));
    }

    #[test]
    fn secure_tcp_switches_the_table_and_the_synrecv_timeout() {
        let d = dest(FwdMethod::Masq);
        let to = Timeouts::new();
        let mut t = ConnTable::with_capacity(4);
        t.set_secure_tcp(true);
        let a = t.insert(tcp(&d, 1), Some(&d), 0).unwrap();
        t.on_packet(a, Direction::Input, SYN, 0, &to);
        assert_eq!(t.get(a).unwrap().timeout_ms(), 10_000, "SYN_RECV: 10 s");
        t.on_packet(a, Direction::Input, ACK, 1, &to);
        assert_eq!(
            t.get(a).unwrap().state_name(),
            "SYN_RECV",
            "the client's ACK alone does not establish"
        );
        t.on_packet(a, Direction::Output, SYN | ACK, 2, &to);
        assert_eq!(t.get(a).unwrap().state_name(), "SYNACK");
        assert_eq!(t.embryonic_len(), 1, "SYNACK is still embryonic");
        t.on_packet(a, Direction::Output, ACK, 3, &to);
        assert_eq!(t.get(a).unwrap().state_name(), "ESTABLISHED");
        assert_eq!(t.embryonic_len(), 0);
        t.set_secure_tcp(false);
        let b = t.insert(tcp(&d, 2), Some(&d), 0).unwrap();
        t.on_packet(b, Direction::Input, SYN, 0, &to);
        assert_eq!(t.get(b).unwrap().timeout_ms(), 60_000);
    }

    #[test]
    fn the_drop_entry_scan_takes_what_the_kernel_takes() {
        let d = dest(FwdMethod::Masq);
        let to = Timeouts::new();
        let mut t = ConnTable::with_capacity(16);
        let t0 = 1_000_000;
        // 1: SYN_RECV (goes); 2: established, 2 packets, idle 100 s (goes:
        // the first of its count); 3: the same but idle 30 s (stays); 4:
        // established, 20 packets (stays); 5: UDP, 1 packet, idle 100 s
        // (goes); 6: TIME_WAIT (stays).
        let syn = t.insert(tcp(&d, 1), Some(&d), t0).unwrap();
        t.on_packet(syn, Direction::Input, SYN, t0, &to);
        let est = |t: &mut ConnTable, p: u16, at: Millis, pkts: usize| {
            // SYN in, SYN+ACK out, ACK in: ESTABLISHED with 2 client
            // packets; more ACKs in for more. The server's side (output)
            // does not count.
            let id = t.insert(tcp(&d, p), Some(&d), at).unwrap();
            t.on_packet(id, Direction::Input, SYN, at, &to);
            t.on_packet(id, Direction::Output, SYN | ACK, at, &to);
            for _ in 1..pkts {
                t.on_packet(id, Direction::Input, ACK, at, &to);
            }
            assert_eq!(t.get(id).unwrap().state_name(), "ESTABLISHED");
            id
        };
        let now = t0 + 100_000;
        let _old = est(&mut t, 2, t0, 2);
        let _recent = est(&mut t, 3, now - 30_000, 2);
        let _busy = est(&mut t, 4, t0, 20);
        let u = Conn::new(
            IPPROTO_UDP,
            (ip("192.0.2.1"), 5),
            (ip("10.0.0.1"), 53),
            53,
            d.fwd(),
        );
        let udp = t.insert(u, Some(&d), t0).unwrap();
        t.on_packet(udp, Direction::Input, 0, t0, &to);
        let tw = est(&mut t, 6, t0, 2);
        t.on_packet(
            tw,
            Direction::Input,
            crate::ipvs::proto::tcp_flags::FIN,
            t0,
            &to,
        );
        t.on_packet(
            tw,
            Direction::Output,
            crate::ipvs::proto::tcp_flags::FIN,
            t0,
            &to,
        );
        assert_eq!(t.get(tw).unwrap().state_name(), "TIME_WAIT");
        let mut counters = DropEntryCounters::default();
        let mut gone = Vec::new();
        let (next, n) = t.drop_entry_scan(0, usize::MAX, now, &mut counters, |_, c| {
            gone.push(c.cport())
        });
        gone.sort_unstable();
        assert_eq!(next, 0, "wrapped round");
        assert_eq!((n, gone.clone()), (3, vec![1, 2, 5]));
        assert_eq!(cports(&t), [3, 4, 6]);
    }

    #[test]
    fn drop_entry_ends_a_template_with_its_last_conn() {
        let d = dest(FwdMethod::Masq);
        let to = Timeouts::new();
        let mut t = ConnTable::with_capacity(8);
        let key = crate::ipvs::TemplateKey {
            proto: IPPROTO_TCP,
            client_net: ip("192.0.2.0"),
            vaddr: ip("10.0.0.1"),
            vport: 80,
        };
        let ct = t
            .insert(Conn::template(&key, &d, 80, 360_000), Some(&d), 0)
            .unwrap();
        let a = t.insert(tcp(&d, 1), Some(&d), 0).unwrap();
        let b = t.insert(tcp(&d, 2), Some(&d), 0).unwrap();
        t.control_add(a, ct);
        t.control_add(b, ct);
        t.on_packet(a, Direction::Input, SYN, 0, &to);
        let mut c = DropEntryCounters::default();
        // a (SYN_RECV) goes; the template still controls b: 60 s more.
        assert_eq!(t.drop_entry_scan(0, 8, 10, &mut c, |_, _| {}).1, 1);
        let tpl = t.get(ct).unwrap();
        assert_eq!((tpl.n_control(), tpl.expires_in(10)), (1, 60_000));
        t.on_packet(b, Direction::Input, SYN, 20, &to);
        assert_eq!(t.drop_entry_scan(0, 8, 30, &mut c, |_, _| {}).1, 1);
        assert!(t.get(ct).is_none(), "gone with its last conn");
        assert!(t.is_empty());
        assert_eq!(d.persistconns(), 0);
    }

    #[test]
    fn bytes_for_is_what_a_table_allocates() {
        for n in [1, 7, 8, 1000, 1024, 262_144, 1_000_000, 1_234_567] {
            assert_eq!(
                ConnTable::bytes_for(n),
                ConnTable::with_capacity(n).memory_bytes(),
                "{n}"
            );
        }
    }

    #[test]
    fn an_unused_table_touches_no_slab_page() {
        let t = ConnTable::with_capacity(1 << 20);
        assert_eq!(t.slots_used(), 0);
        assert_eq!(t.free_slots(), 1 << 20);
    }
}
