//! Connection tracking: the `Conn` entry (ip_vs_conn) and the per-worker
//! `ConnTable` that holds conns and persistence templates.
//!
//! A table is owned by one worker and never shared, so nothing in it is
//! locked or atomic except the dest counters it updates. Everything is
//! allocated by `with_capacity`: a slab of conns with a free list, an
//! index of cache-line buckets hashed with a per-table random seed
//! (`conn_index.rs`: each conn's in-tuple, for client→VIP packets, and its
//! out-tuple, for replies, side by side; a template's in-tuple alone) and
//! a timing wheel threaded through the slab. `insert` into a full table
//! refuses and counts the refusal; the load-balancing stage makes room
//! first by evicting the oldest embryonic conn (`conn_pressure.rs`, with
//! the kernel's drop_entry scan).
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, HashMap};
use thiserror::Error;

use super::dest::{Dest, FwdMethod};
use super::dest_refs::{DestIx, DestRefs};
use super::persist::TemplateKey;
use super::proto::{
    self, tcp_transition, Direction, TcpState, Timeouts, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP,
};
use super::proto_sctp::{sctp_transition, SctpEvent, SctpState};
use super::seqadj::SeqAdj;
use super::sync::trigger::SyncMarks;
use super::tuple::Tuple;
use super::wheel::{Wheel, WheelNode, MAX_INDEX, NIL};
use super::Millis;

#[path = "conn_index.rs"]
mod conn_index;
use crate::dpdk::prefetch;
use conn_index::Index;
pub use conn_index::Spot;

#[path = "conn_pressure.rs"]
mod pressure;

/// A conn's place in its worker's table. Valid until the conn is removed
/// (expiry or `remove`); after that the slot may hold another conn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u32);

impl ConnId {
    /// The id of slab slot `i`, live or not (`ConnTable::get` tells).
    pub fn from_index(i: u32) -> ConnId {
        ConnId(i)
    }
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// What `ConnTable::ask_conn` asked for: whether the lookup reads an
/// index line its first spilled into (the caller asks for the conn there
/// later, `ask_spilled`), and the slot the lookup compares first
/// (`lookup_v4_hinted`), or `NO_HINT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asked {
    pub spilled: bool,
    pub hint: u32,
}

/// An IPv4 tuple as host-order words: protocol, source and its port,
/// destination and its port.
type V4Words = (u8, u32, u16, u32, u16);

/// No conn to compare first: a slot no slab reaches (it holds at most
/// 2^31 - 2 conns).
pub const NO_HINT: u32 = u32::MAX;
/// A hint's conn is one the packet replies to (a reply tuple's entry).
const OUT_HINT: u32 = 1 << 31;

/// The table is at capacity; the new conn was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("connection table full")]
pub struct TableFull;

/// Conn flag bits. The kernel's IP_VS_CONN_F_* that rvs needs, in rvs's own
/// compact numbering, plus bookkeeping bits of the table.
pub mod flags {
    /// A persistence template (IP_VS_CONN_F_TEMPLATE).
    pub const TEMPLATE: u16 = 0x0001;
    /// Counted in the dest's InActConn (IP_VS_CONN_F_INACTIVE).
    pub const INACTIVE: u16 = 0x0002;
    /// UDP one-packet scheduling: never indexed, gone after its packet.
    pub const ONE_PACKET: u16 = 0x0004;
    /// No reply seen yet, and none expected (IP_VS_CONN_F_NOOUTPUT).
    pub const NOOUTPUT: u16 = 0x0008;
    pub const IN_HASHED: u16 = 0x0010;
    pub const OUT_HASHED: u16 = 0x0020;
    pub const LIVE: u16 = 0x0040;
    pub const CADDR_V6: u16 = 0x0080;
    pub const VADDR_V6: u16 = 0x0100;
    pub const LADDR_V6: u16 = 0x0200;
    /// A template keyed by persistence-engine data (a SIP Call-ID) as
    /// well: its cport, 0 in the kernel, holds a hash of the data.
    pub const PE_DATA: u16 = 0x0400;
    /// The conn's TCP sequence space differs between its two sides
    /// (`ConnTable::seq_adj` says how).
    pub const SEQ_ADJ: u16 = 0x0800;
    /// The SYN proxy is opening the conn to its real server: the client's
    /// and the server's segments go to the proxy, not through.
    pub const SYNPROXY: u16 = 0x1000;
    /// The kinds of conn the express lane leaves to the full path.
    pub const OFF_LANE: u16 = TEMPLATE | ONE_PACKET | SEQ_ADJ | SYNPROXY;
}

/// Template state bit set once a controlled conn is established
/// (IP_VS_CTPL_S_ASSURED).
pub const TPL_ASSURED: u8 = 1;

/// ip_vs_conn_new's timeout for a conn before its first packet is handled.
pub const INITIAL_TIMEOUT_MS: u32 = 3_000;

/// How long a conn whose timer fires while it still controls others lives
/// on (ip_vs_conn_expire's expire_later).
pub const CONTROL_GRACE_MS: u32 = 60_000;

/// The longest timeout a conn or template runs: ipvsadm's MAX_TIMEOUT,
/// 31 days, which a HZ=250 kernel (Debian's) takes for `--set` and `-p`.
pub const MAX_TIMEOUT_MS: u32 = 86_400 * 31 * 1000;

/// Timers count in milliseconds modulo 2^32 (4.3e9 ms, 49.7 days). A stored
/// expiry at most this far past `now` is ahead of it; anything further
/// round the circle is behind it. A timer is never set further ahead than
/// a timeout plus the control grace, so a due timer reads as due until it
/// is 2^32 - AHEAD_MS late (18 days): the wheel looks at it long before.
const AHEAD_MS: u32 = MAX_TIMEOUT_MS + CONTROL_GRACE_MS;

/// How far ahead of `now` a stored expiry is; None once due.
#[inline]
fn ahead(expires: u32, now: Millis) -> Option<u32> {
    let d = expires.wrapping_sub(now as u32);
    (d != 0 && d <= AHEAD_MS).then_some(d)
}

type Addr = [u8; 16];

#[inline]
fn addr_bytes(a: IpAddr) -> (Addr, bool) {
    match a {
        IpAddr::V4(v4) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&v4.octets());
            (b, false)
        }
        IpAddr::V6(v6) => (v6.octets(), true),
    }
}

#[inline]
fn addr_from(b: &Addr, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(*b))
    } else {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    }
}

/// The hashes of a new conn's client and reply tuples where its maker has
/// worked them out (its lookup, its local port's bind): the index takes
/// them rather than hashing the conn again.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hashes {
    pub client: Option<u64>,
    pub reply: Option<u64>,
}

/// A tuple keyed and hashed for the lookups (`ConnTable::probe`): its
/// key, its hash and the spot the hash leads to.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    key: Key,
    hash: u64,
    at: Spot,
}

impl Probe {
    /// The tuple's hash, which a conn made for it is indexed by as its
    /// client's tuple (`ConnTable::insert_first`).
    pub fn hash(&self) -> u64 {
        self.hash
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    a: Addr,
    b: Addr,
    ports: u32,
    meta: u16,
}

impl Hash for Key {
    #[inline]
    fn hash<H: Hasher>(&self, h: &mut H) {
        // An IPv4 address is its first four bytes, the rest zero: one word
        // carries both, which halves the hashing of the common key.
        if self.meta & (META_A_V6 | META_B_V6) == 0 {
            V4Hash::of(word(&self.a), word(&self.b), self.ports, self.meta).hash(h);
        } else {
            h.write_u128(u128::from_ne_bytes(self.a));
            h.write_u128(u128::from_ne_bytes(self.b));
            h.write_u64(u64::from(self.ports) | u64::from(self.meta) << 32);
        }
    }
}

/// What an all-IPv4 `Key` hashes: the same words, whether from a key or
/// straight from a packet's (`ConnTable::hash_v4_wire`). The words are the
/// wire's bytes as they lie in a frame, read little-endian: an IPv4
/// header's two addresses one 8-byte read, a TCP or UDP header's two
/// ports one 4-byte read, and nothing swapped on the way (a packet's
/// tuple is hashed for every packet the lane looks up).
struct V4Hash(u64, u64);

impl V4Hash {
    /// From host-order addresses and ports (`a`'s port the high half of
    /// `ports`, as a `Key` keeps them).
    #[inline]
    fn of(a: u32, b: u32, ports: u32, meta: u16) -> V4Hash {
        let addrs = u64::from(a.swap_bytes()) | u64::from(b.swap_bytes()) << 32;
        let (sp, dp) = ((ports >> 16) as u16, ports as u16);
        V4Hash::wire(addrs, sp.swap_bytes(), dp.swap_bytes(), meta)
    }

    /// From the wire's words: `addrs` the two addresses' eight bytes read
    /// little-endian, `sp` and `dp` the ports' bytes the same way.
    #[inline(always)]
    fn wire(addrs: u64, sp: u16, dp: u16, meta: u16) -> V4Hash {
        V4Hash(
            addrs,
            u64::from(sp) | u64::from(dp) << 16 | u64::from(meta) << 32,
        )
    }
}

impl Hash for V4Hash {
    #[inline]
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.0);
        h.write_u64(self.1);
    }
}

const META_A_V6: u16 = 0x100;
const META_B_V6: u16 = 0x200;
const META_TEMPLATE: u16 = 0x400;

impl Key {
    #[inline]
    fn new(proto: u8, a: (Addr, bool), ap: u16, b: (Addr, bool), bp: u16, template: bool) -> Key {
        // An IPv4 conn's address fields carry its `ConnExpress` after the
        // address's four bytes: no part of its key.
        let key_addr = |(x, v6): (Addr, bool)| -> Addr {
            if v6 {
                x
            } else {
                let mut k = [0u8; 16];
                k[..4].copy_from_slice(&x[..4]);
                k
            }
        };
        let (a, b) = ((key_addr(a), a.1), (key_addr(b), b.1));
        let mut meta = u16::from(proto);
        if a.1 {
            meta |= META_A_V6;
        }
        if b.1 {
            meta |= META_B_V6;
        }
        if template {
            meta |= META_TEMPLATE;
        }
        Key {
            a: a.0,
            b: b.0,
            ports: u32::from(ap) << 16 | u32::from(bp),
            meta,
        }
    }

    /// A conn's (not a template's) key of IPv4 addresses in host order.
    #[inline]
    fn v4(proto: u8, a: u32, ap: u16, b: u32, bp: u16) -> Key {
        let bytes = |x: u32| {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&x.to_be_bytes());
            b
        };
        Key {
            a: bytes(a),
            b: bytes(b),
            ports: u32::from(ap) << 16 | u32::from(bp),
            meta: u16::from(proto),
        }
    }

    #[inline]
    fn of(t: &Tuple, template: bool) -> Key {
        Key::new(
            t.proto,
            addr_bytes(t.saddr),
            t.sport,
            addr_bytes(t.daddr),
            t.dport,
            template,
        )
    }
}

/// An IPv4 conn's addresses and ports (`Conn::v4`): host-order words, the
/// ports as the conn holds them. `laddr`/`lport` are the out-tuple's
/// destination (FULLNAT's local address, else the client).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnV4 {
    pub caddr: u32,
    pub vaddr: u32,
    pub laddr: u32,
    pub cport: u16,
    pub vport: u16,
    pub lport: u16,
    pub dport: u16,
    pub proto: u8,
}

/// What the dataplane's express lane keeps in an IPv4 conn (`Conn::express`):
/// the rewrite it worked out for the conn and the packets and bytes it has
/// not yet counted in the stats. It lives in the twelve bytes after each of
/// the conn's three IPv4 addresses, which an IPv6 address would fill, so an
/// IPv4 conn carries it at no cost in memory. A new conn's is all zero but
/// its real server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnExpress {
    /// Per side: the dataplane's epoch the side was worked out in; 0: not
    /// yet. Each side is worked out as its first packet comes (a new
    /// conn's reply side a round trip after the client's, a SYN flood's
    /// never).
    pub epoch: [u32; 2],
    /// The real server's IPv4 address (its dest's, 0 for none), host
    /// order: written as the conn is inserted, and read by a reply's
    /// lookup as well (`Conn::set_dest`).
    pub rs: u32,
    /// Per side (client to server, back): the RFC 1624 sums of the IP
    /// header's and of the L4 checksum's changes, in the frame's byte
    /// order (as `u16::to_be` gives them), so the lane adds them to the
    /// fields as it reads them.
    pub sums: [[u16; 2]; 2],
    /// Per side: the dataplane's next-hop index + 1; 0: not looked up,
    /// `u16::MAX`: the side is not the express lane's.
    pub hop: [u16; 2],
    /// Per side: packets and bytes not yet counted in the stats.
    pub pkts: [u16; 2],
    pub bytes: [u32; 2],
}

/// Which address field a `ConnExpress` field sits in, after the IPv4
/// address's four bytes.
#[derive(Debug, Clone, Copy)]
enum SpareIn {
    Caddr,
    Vaddr,
    Laddr,
}

/// A `ConnExpress` field's place: its address field and byte offset.
type Spare = (SpareIn, usize);

/// The express block's layout, the one place it is written down (36 spare
/// bytes, all used). The per-side fields hold side 0 then side 1, next to
/// each other (`side16`, `side32`); a side's two sums (IP, L4) likewise,
/// so one side's are one word.
const X_EPOCH: Spare = (SpareIn::Caddr, 4);
const X_HOP: Spare = (SpareIn::Caddr, 12);
const X_SUMS: Spare = (SpareIn::Vaddr, 4);
const X_PKTS: Spare = (SpareIn::Vaddr, 12);
const X_BYTES: Spare = (SpareIn::Laddr, 4);
/// Written as the conn is inserted, for any conn whose out-tuple's
/// destination is IPv4 (`v4_word` of its dest's address), and read by a
/// reply's lookup as well as by the lane.
const X_RS: Spare = (SpareIn::Laddr, 12);

/// Side `s`'s u16 of a per-side field.
#[inline(always)]
fn side16((f, at): Spare, s: usize) -> Spare {
    (f, at + 2 * (s & 1))
}

/// Side `s`'s u32 of a per-side field.
#[inline(always)]
fn side32((f, at): Spare, s: usize) -> Spare {
    (f, at + 4 * (s & 1))
}

/// Side `s`'s two sums (IP, L4).
#[inline(always)]
fn sums_of(s: usize) -> Spare {
    side32(X_SUMS, s)
}

/// One tracked connection or persistence template (ip_vs_conn), laid out to
/// fit 92 bytes with IPv6-capable addresses. The fields of the in-tuple come
/// first and together (39 bytes), so checking a lookup's candidate touches
/// one cache line for seven slots in sixteen and two for the others (in
/// slots 96 apart, half and half, every pipeline case counted more
/// instructions: bench/RESULTS.md, twenty-fifth steps). The real server's
/// address is the dest's, which never changes, reached through the table
/// (`ConnRef`); a conn whose reply goes to an IPv4 address keeps its IPv4
/// word as well, in the local address's spare bytes, for a reply's lookup
/// (`set_dest`).
/// An IPv4 conn's address fields hold its `ConnExpress` after the address.
#[derive(Debug, Clone)]
#[repr(C)]
pub struct Conn {
    caddr: Addr,
    vaddr: Addr,
    cport: u16,
    vport: u16,
    /// The flags (in the machine's byte order), the protocol and the
    /// state in one array: the express lane asks of all three in one
    /// compare (`ConnTable::established_v4`), which the compiler did not
    /// make of three fields. Each is read and written alone through its
    /// accessor.
    head: [u8; 4],
    /// The out-tuple's destination: FULLNAT's local address, else the client.
    laddr: Addr,
    lport: u16,
    dport: u16,
    /// The template controlling this conn, NIL if none.
    control: u32,
    /// Where its worker's table holds its dest (`dest_refs.rs`).
    dest: DestIx,
    /// How many conns this one controls.
    n_control: u32,
    prev: u32,
    next: u32,
    /// Expiry in milliseconds modulo 2^32.
    expires: u32,
    timeout: u32,
    fwd: FwdMethod,
    /// Client packets seen, saturating (the kernel's in_pkts, which
    /// drop_entry reads).
    in_pkts: u8,
    /// The sync daemon's count and last synced state (ip_vs_sync.c).
    sync: SyncMarks,
}

/// `Conn::head` of these flags, protocol and state.
#[inline(always)]
const fn head(flags: u16, proto: u8, state: u8) -> [u8; 4] {
    let f = flags.to_ne_bytes();
    [f[0], f[1], proto, state]
}

/// A conn borrowed as what `Conn::as_v4` found it: IPv4 throughout. Its
/// tuple as words and its express block are read and written without
/// asking again; the rest of the conn is read through `Deref`, and the
/// only other write is the timer's (`touch`): no `&mut Conn` is handed
/// out, so nothing can change an address's family under the borrow.
pub struct V4Conn<'a>(&'a mut Conn);

impl V4Conn<'_> {
    /// `Conn::v4`.
    #[inline(always)]
    pub fn words(&self) -> ConnV4 {
        self.0.words()
    }

    /// What a packet on side `side` reads of the express block: the
    /// epoch, the real server, the side's sums and next hop.
    #[inline(always)]
    pub fn express_side(&self, side: usize) -> (u32, u32, [u16; 2], u16) {
        let at = sums_of(side);
        let c = &*self.0;
        let sums = [c.get16(at), c.get16(side16(at, 1))];
        let hop = c.get16(side16(X_HOP, side));
        (c.get32(side32(X_EPOCH, side)), c.get32(X_RS), sums, hop)
    }

    /// Keeps side `side`'s next hop in the express block.
    #[inline(always)]
    pub fn set_express_hop(&mut self, side: usize, hop: u16) {
        self.0.put16(side16(X_HOP, side), hop);
    }

    /// Whether side `side`'s packet count is at its most: its counts are
    /// folded before it counts another (`express_count`).
    #[inline(always)]
    pub fn express_full(&self, side: usize) -> bool {
        self.0.get16(side16(X_PKTS, side)) == u16::MAX
    }

    /// Counts one packet of `bytes` on side `side` (0 client to server,
    /// 1 back) in the express block, in place: whether the block had no
    /// counts before (its conn is new to the fold's list). The caller has
    /// folded a side whose count is full (`express_full`): counted on, it
    /// would wrap to 0. The byte count needs no check of its own: an IP
    /// packet is at most 65,535 bytes, and 65,535 of them, the most a side
    /// counts between folds, stay below 2^32.
    #[inline(always)]
    pub fn express_count(&mut self, side: usize, bytes: u16) -> bool {
        debug_assert!(!self.express_full(side));
        let c = &mut *self.0;
        let (p, b) = (side16(X_PKTS, side), side32(X_BYTES, side));
        // Both sides' packet counts, side by side, read as one word.
        let was_empty = c.get32(X_PKTS) == 0;
        c.put16(p, c.get16(p).wrapping_add(1));
        c.put32(b, c.get32(b).wrapping_add(u32::from(bytes)));
        was_empty
    }

    /// Keeps side `side`'s epoch, sums and next hop in the express block,
    /// leaving the other side, the real server (the conn's insert wrote
    /// it) and the counts as they are (what working a side out changes).
    #[inline]
    pub fn set_express_route(&mut self, side: usize, epoch: u32, sums: [u16; 2], hop: u16) {
        let c = &mut *self.0;
        c.put32(side32(X_EPOCH, side), epoch);
        c.put16(sums_of(side), sums[0]);
        c.put16(side16(sums_of(side), 1), sums[1]);
        c.put16(side16(X_HOP, side), hop);
    }

    /// `Conn::touch` of a conn the caller knows is not of one packet (the
    /// lane takes none).
    #[inline(always)]
    pub fn touch(&mut self, dir: Direction, t: u32, now: Millis) -> bool {
        debug_assert!(!self.0.has(flags::ONE_PACKET));
        self.0.touch_kept(dir, t, now)
    }
}

impl std::ops::Deref for V4Conn<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.0
    }
}

/// A conn as its table lends it out: the conn, and its worker's dests, for
/// what needs its real server (the address, the counts). Read as a `Conn`
/// otherwise.
#[derive(Clone, Copy)]
pub struct ConnRef<'a> {
    conn: &'a Conn,
    dests: &'a DestRefs,
}

impl<'a> ConnRef<'a> {
    /// Its dest (None for a conn without one).
    #[inline]
    pub fn dest(&self) -> Option<&'a Arc<Dest>> {
        self.conn.dest_in(self.dests)
    }

    /// The real server's address (unspecified for a conn without a dest).
    #[inline]
    pub fn daddr(&self) -> IpAddr {
        self.conn.daddr_in(self.dests)
    }

    /// The conn itself, for as long as the borrow.
    pub fn conn(&self) -> &'a Conn {
        self.conn
    }
}

impl std::ops::Deref for ConnRef<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl std::fmt::Debug for ConnRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnRef")
            .field("conn", self.conn)
            .field("daddr", &self.daddr())
            .finish()
    }
}

impl WheelNode for Conn {
    #[inline]
    fn wheel_links(&self) -> (u32, u32) {
        (self.prev, self.next)
    }
    #[inline]
    fn set_wheel_prev(&mut self, prev: u32) {
        self.prev = prev;
    }
    #[inline]
    fn set_wheel_next(&mut self, next: u32) {
        self.next = next;
    }
}

impl Conn {
    /// A new conn as ip_vs_conn_new makes it: state NONE, counted inactive,
    /// 3 s to live until its first packet is handled, and NOOUTPUT for the
    /// forwarding methods whose replies do not come back through rvs. The
    /// out-tuple's destination is the client until `with_local` says
    /// otherwise.
    pub fn new(
        proto: u8,
        client: (IpAddr, u16),
        vip: (IpAddr, u16),
        dport: u16,
        fwd: FwdMethod,
    ) -> Conn {
        let (caddr, c6) = addr_bytes(client.0);
        let (vaddr, v6) = addr_bytes(vip.0);
        let mut f = flags::INACTIVE;
        if c6 {
            f |= flags::CADDR_V6 | flags::LADDR_V6;
        }
        if v6 {
            f |= flags::VADDR_V6;
        }
        if !matches!(fwd, FwdMethod::Masq | FwdMethod::FullNat) {
            f |= flags::NOOUTPUT;
        }
        Conn {
            caddr,
            vaddr,
            laddr: caddr,
            cport: client.1,
            vport: vip.1,
            dport,
            lport: client.1,
            dest: DestIx::NONE,
            control: NIL,
            n_control: 0,
            prev: NIL,
            next: NIL,
            expires: 0,
            timeout: INITIAL_TIMEOUT_MS,
            head: head(f, proto, 0),
            fwd,
            in_pkts: 0,
            sync: SyncMarks::default(),
        }
    }

    /// FULLNAT: replies come to this local address and port.
    pub fn with_local(mut self, addr: IpAddr, port: u16) -> Conn {
        let (laddr, l6) = addr_bytes(addr);
        self.laddr = laddr;
        self.lport = port;
        if l6 {
            self.flag_on(flags::LADDR_V6);
        } else {
            self.flag_off(flags::LADDR_V6);
        }
        self
    }

    /// UDP one-packet scheduling (-o): the conn is not indexed and expires
    /// as soon as its packet is handled.
    pub fn with_one_packet(mut self) -> Conn {
        self.flag_on(flags::ONE_PACKET);
        self
    }

    /// A persistence template <proto, client net, 0, vaddr, vport> pointing
    /// at `dest`:`dport` (inserted with it), living `timeout_ms` after its
    /// last use.
    pub fn template(key: &TemplateKey, dest: &Dest, dport: u16, timeout_ms: u32) -> Conn {
        let fwd = dest.fwd();
        let mut c = Conn::new(
            key.proto,
            (key.client_net, 0),
            (key.vaddr, key.vport),
            dport,
            fwd,
        );
        c.set_flags((c.flags() & !(flags::INACTIVE | flags::NOOUTPUT)) | flags::TEMPLATE);
        c.timeout = timeout_ms.min(MAX_TIMEOUT_MS);
        c
    }

    #[inline]
    fn has(&self, f: u16) -> bool {
        self.flags() & f != 0
    }

    #[inline]
    fn flag_on(&mut self, f: u16) {
        self.set_flags(self.flags() | f);
    }

    #[inline]
    fn flag_off(&mut self, f: u16) {
        self.set_flags(self.flags() & !f);
    }

    #[inline]
    fn set_flags(&mut self, f: u16) {
        self.head[..2].copy_from_slice(&f.to_ne_bytes());
    }

    #[inline]
    fn set_state(&mut self, state: u8) {
        self.head[3] = state;
    }

    /// The IP protocol number (0 for a firewall-mark template).
    #[inline]
    pub fn proto(&self) -> u8 {
        self.head[2]
    }
    pub fn caddr(&self) -> IpAddr {
        addr_from(&self.caddr, self.has(flags::CADDR_V6))
    }
    pub fn cport(&self) -> u16 {
        if self.has(flags::PE_DATA) {
            0
        } else {
            self.cport
        }
    }
    /// The VIP (for a firewall-mark template: the mark as an IPv4 address).
    pub fn vaddr(&self) -> IpAddr {
        addr_from(&self.vaddr, self.has(flags::VADDR_V6))
    }
    pub fn vport(&self) -> u16 {
        self.vport
    }
    /// The real server's address, its dest's as `dests` holds it
    /// (unspecified for a conn without a dest).
    #[inline]
    fn daddr_in(&self, dests: &DestRefs) -> IpAddr {
        match dests.get(self.dest) {
            Some(d) => d.addr(),
            None => addr_from(&[0; 16], self.has(flags::CADDR_V6)),
        }
    }
    /// Its dest, held at `ix` of its worker's table, and the real
    /// server's IPv4 word with it (`X_RS`), which a reply's lookup
    /// compares in place rather than by way of the dest (`is_reply_v4`).
    /// Set once, as the conn is inserted: a conn's dest never changes.
    #[inline(always)]
    fn set_dest(&mut self, ix: DestIx, dest: Option<&Dest>) {
        self.dest = ix;
        if !self.has(flags::LADDR_V6) {
            self.put32(X_RS, v4_word(dest.map(Dest::addr)));
        }
    }
    /// Its dest, as its worker's `dests` holds it.
    #[inline]
    fn dest_in<'d>(&self, dests: &'d DestRefs) -> Option<&'d Arc<Dest>> {
        dests.get(self.dest)
    }
    pub fn dport(&self) -> u16 {
        self.dport
    }
    /// FULLNAT's local address, else the client's.
    pub fn laddr(&self) -> IpAddr {
        addr_from(&self.laddr, self.has(flags::LADDR_V6))
    }
    pub fn lport(&self) -> u16 {
        self.lport
    }
    /// Whether client, VIP and local address are all IPv4: only then do the
    /// address fields have room for the express block.
    #[inline]
    fn all_v4(&self) -> bool {
        !self.has(flags::CADDR_V6 | flags::VADDR_V6 | flags::LADDR_V6)
    }

    #[inline]
    fn spare(&self, (f, at): Spare) -> &[u8] {
        let a = match f {
            SpareIn::Caddr => &self.caddr,
            SpareIn::Vaddr => &self.vaddr,
            SpareIn::Laddr => &self.laddr,
        };
        &a[at..]
    }

    #[inline]
    fn spare_mut(&mut self, (f, at): Spare) -> &mut [u8] {
        let a = match f {
            SpareIn::Caddr => &mut self.caddr,
            SpareIn::Vaddr => &mut self.vaddr,
            SpareIn::Laddr => &mut self.laddr,
        };
        &mut a[at..]
    }

    #[inline]
    fn get16(&self, at: Spare) -> u16 {
        let b = self.spare(at);
        u16::from_ne_bytes([b[0], b[1]])
    }

    #[inline]
    fn get32(&self, at: Spare) -> u32 {
        let b = self.spare(at);
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
    }

    #[inline]
    fn put16(&mut self, at: Spare, v: u16) {
        self.spare_mut(at)[..2].copy_from_slice(&v.to_ne_bytes());
    }

    #[inline]
    fn put32(&mut self, at: Spare, v: u32) {
        self.spare_mut(at)[..4].copy_from_slice(&v.to_ne_bytes());
    }

    /// The express lane's block of an IPv4 conn (client, VIP and local
    /// address all IPv4); None for any other.
    #[inline]
    pub fn express(&self) -> Option<ConnExpress> {
        if !self.all_v4() {
            return None;
        }
        Some(ConnExpress {
            epoch: [0, 1].map(|s| self.get32(side32(X_EPOCH, s))),
            rs: self.get32(X_RS),
            sums: [0, 1].map(|s| [self.get16(sums_of(s)), self.get16(side16(sums_of(s), 1))]),
            hop: [0, 1].map(|s| self.get16(side16(X_HOP, s))),
            pkts: [0, 1].map(|s| self.get16(side16(X_PKTS, s))),
            bytes: [0, 1].map(|s| self.get32(side32(X_BYTES, s))),
        })
    }

    /// A packet's refresh of a conn it cannot change the state of (see
    /// `ConnTable::refresh`), in its commonest case done in place: the
    /// client's packet counted (the kernel's in_pkts), and the timer, `t`
    /// from now, moved later on a conn already on the wheel, which only
    /// restamps it. False when the timer needs the table
    /// (`ConnTable::repost`): a timer that would move earlier, a conn off
    /// the wheel or of one packet, a reply that assures a UDP template.
    #[inline(always)]
    pub fn touch(&mut self, dir: Direction, t: u32, now: Millis) -> bool {
        if self.has(flags::ONE_PACKET) {
            self.count_in(dir);
            return false;
        }
        self.touch_kept(dir, t, now)
    }

    /// `touch` of a conn not of one packet.
    #[inline(always)]
    fn touch_kept(&mut self, dir: Direction, t: u32, now: Millis) -> bool {
        self.count_in(dir);
        let assure = self.proto() == IPPROTO_UDP && dir == Direction::Output && self.control != NIL;
        if assure || self.prev == NIL {
            return false;
        }
        // The timer restarted with the timeout it last started with, from
        // a later now, moves later: the commonest case, asked first (the
        // timeout stays as it is). Else `ahead` of the new expiry (t, at
        // most AHEAD_MS) against the old one's, without the Options: an
        // old expiry that is due (d = 0) or behind (d > AHEAD_MS) is never
        // later.
        let expires = now.saturating_add(u64::from(t)) as u32;
        if t == self.timeout {
            self.expires = expires;
            return true;
        }
        let d = self.expires.wrapping_sub(now as u32);
        if t <= AHEAD_MS && (d.wrapping_sub(1) >= AHEAD_MS || t >= d) {
            self.timeout = t;
            self.expires = expires;
            return true;
        }
        false
    }

    /// Keeps `e` as the express lane's block, but for its real server,
    /// which is the dest's (`Conn::set_dest`); false (nothing kept) unless
    /// the conn is IPv4 throughout.
    #[inline]
    pub fn set_express(&mut self, e: &ConnExpress) -> bool {
        if !self.all_v4() {
            return false;
        }
        for s in 0..2 {
            self.put32(side32(X_EPOCH, s), e.epoch[s]);
            self.put16(sums_of(s), e.sums[s][0]);
            self.put16(side16(sums_of(s), 1), e.sums[s][1]);
            self.put16(side16(X_HOP, s), e.hop[s]);
            self.put16(side16(X_PKTS, s), e.pkts[s]);
            self.put32(side32(X_BYTES, s), e.bytes[s]);
        }
        true
    }

    /// The conn's client, VIP and out-tuple destination as IPv4 words, read
    /// in place (no `IpAddr` built); None unless all three are IPv4.
    #[inline]
    pub fn v4(&self) -> Option<ConnV4> {
        self.all_v4().then(|| self.words())
    }

    /// `v4` of a conn known to be IPv4.
    #[inline(always)]
    fn words(&self) -> ConnV4 {
        ConnV4 {
            caddr: word(&self.caddr),
            vaddr: word(&self.vaddr),
            laddr: word(&self.laddr),
            cport: self.cport,
            vport: self.vport,
            lport: self.lport,
            dport: self.dport,
            proto: self.proto(),
        }
    }

    /// The conn as an IPv4 conn (client, VIP and local address all IPv4),
    /// if it is one: the express lane's borrow, which asks once.
    #[inline(always)]
    pub fn as_v4(&mut self) -> Option<V4Conn<'_>> {
        if self.all_v4() {
            Some(V4Conn(self))
        } else {
            None
        }
    }
    pub fn fwd(&self) -> FwdMethod {
        self.fwd
    }
    #[inline]
    pub fn flags(&self) -> u16 {
        u16::from_ne_bytes([self.head[0], self.head[1]])
    }
    pub fn is_template(&self) -> bool {
        self.has(flags::TEMPLATE)
    }
    /// Counted in ActiveConn (never true of a template).
    pub fn is_active(&self) -> bool {
        !self.has(flags::INACTIVE | flags::TEMPLATE)
    }
    /// The raw state number: IP_VS_TCP_S_* for TCP, IP_VS_SCTP_S_* for
    /// SCTP, 0 for UDP, and for a template 0 or `TPL_ASSURED`.
    #[inline]
    pub fn state(&self) -> u8 {
        self.head[3]
    }
    pub fn tcp_state(&self) -> Option<TcpState> {
        (self.proto() == IPPROTO_TCP && !self.is_template())
            .then(|| TcpState::from_u8(self.state()))
            .flatten()
    }
    /// What `ipvsadm -Lc` shows in the state column.
    pub fn state_name(&self) -> &'static str {
        proto::state_name(self.proto(), self.state(), self.is_template())
    }
    /// The template controlling this conn.
    pub fn control(&self) -> Option<ConnId> {
        (self.control != NIL).then_some(ConnId(self.control))
    }
    pub fn n_control(&self) -> u32 {
        self.n_control
    }
    /// The timeout the timer restarts with, in milliseconds.
    pub fn timeout_ms(&self) -> u32 {
        self.timeout
    }
    /// Milliseconds until the timer fires (0 once due).
    pub fn expires_in(&self, now: Millis) -> Millis {
        ahead(self.expires, now).map_or(0, Millis::from)
    }

    #[inline]
    fn in_key(&self) -> Key {
        Key::new(
            self.proto(),
            (self.caddr, self.has(flags::CADDR_V6)),
            self.cport,
            (self.vaddr, self.has(flags::VADDR_V6)),
            self.vport,
            self.is_template(),
        )
    }

    /// Whether an IPv4 packet's tuple (host-order words) is this conn's
    /// in-key, the fields compared in place: an IPv4 conn (not a template)
    /// of this protocol, client and VIP (and `LIVE`, live, where the slot
    /// was not read through an index, which holds live conns only).
    #[inline(always)]
    fn is_in_v4<const LIVE: bool>(&self, proto: u8, s: u32, sp: u16, d: u32, dp: u16) -> bool {
        let live = if LIVE { flags::LIVE } else { 0 };
        // In the order the conn keeps them, so that its two ports are
        // compared as one word.
        let ports = u32::from(sp) | u32::from(dp) << 16;
        self.flags() & (flags::CADDR_V6 | flags::VADDR_V6 | flags::TEMPLATE | live) == live
            && self.proto() == proto
            && u32::from(self.cport) | u32::from(self.vport) << 16 == ports
            && self.caddr[..4] == s.to_be_bytes()
            && self.vaddr[..4] == d.to_be_bytes()
    }

    /// Whether an IPv4 packet `s`:`sp` → `d`:`dp` of `proto` is this
    /// conn's reply: `out_key() == Key::v4(..)`, the fields compared in
    /// place (no key built, no 16-byte addresses compared).
    #[inline(always)]
    fn is_reply_v4(&self, proto: u8, s: u32, sp: u16, d: u32, dp: u16) -> bool {
        // The real server's word (`X_RS`): its dest's IPv4 address, 0 for
        // none or an IPv6 one. It differs from the key's compare only for a
        // conn with an IPv6 client and no dest (or an IPv6 dest), which
        // takes a reply from 0.0.0.0 here: no real server has that address
        // for a bind to ask after, and such a conn has no block, so the
        // lane sends nothing on it and the full path's own lookup decides.
        let from = if matches!(self.fwd, FwdMethod::Masq | FwdMethod::FullNat) {
            self.dport == sp && self.get32(X_RS) == s
        } else {
            self.vport == sp && !self.has(flags::VADDR_V6) && self.vaddr[..4] == s.to_be_bytes()
        };
        self.proto() == proto
            && self.lport == dp
            && !self.has(flags::LADDR_V6)
            && self.laddr[..4] == d.to_be_bytes()
            && from
    }

    /// Where a reply comes from: the real server for NAT and FULLNAT, the
    /// VIP otherwise (ip_vs_conn_out_get), going to `laddr`:`lport`.
    #[inline]
    fn out_key(&self, dests: &DestRefs) -> Key {
        let src = if matches!(self.fwd, FwdMethod::Masq | FwdMethod::FullNat) {
            (addr_bytes(self.daddr_in(dests)), self.dport)
        } else {
            ((self.vaddr, self.has(flags::VADDR_V6)), self.vport)
        };
        Key::new(
            self.proto(),
            src.0,
            src.1,
            (self.laddr, self.has(flags::LADDR_V6)),
            self.lport,
            false,
        )
    }
}

/// What a packet did to its conn (`Conn::step`) that the table answers
/// for.
struct Step {
    /// The conn reached its established state (UDP: a reply came): its
    /// template is assured.
    assure: bool,
    /// It moved into or out of the embryonic states.
    embryonic_changed: bool,
    /// It now counts as active (true) or inactive (false) on its dest,
    /// having counted the other way.
    became: Option<bool>,
}

impl Conn {
    /// A client's packet counted (the kernel's in_pkts), saturating, by a
    /// compare (`saturating_add` took six instructions).
    #[inline(always)]
    fn count_in(&mut self, dir: Direction) {
        if dir != Direction::Output && self.in_pkts != u8::MAX {
            self.in_pkts += 1;
        }
    }

    /// One packet's move of the conn itself (ip_vs_set_state's): its
    /// input count, the protocol's state transition and its INACTIVE and
    /// NOOUTPUT flags. `on_packet` and `insert_first` answer for the rest.
    /// In line: in `insert_first` it meets the conn just built, whose state
    /// and flags are known there, and most of it folds (a new conn 64
    /// instructions fewer; out of line, it was a call of 104).
    #[inline(always)]
    fn step(&mut self, dir: Direction, tcp_flags: u8, secure_tcp: bool) -> Step {
        let mut m = Step {
            assure: false,
            embryonic_changed: false,
            became: None,
        };
        self.count_in(dir);
        if self.proto() == IPPROTO_TCP || self.proto() == IPPROTO_SCTP {
            let mut d = dir;
            if self.has(flags::NOOUTPUT) {
                if d == Direction::Output {
                    self.flag_off(flags::NOOUTPUT);
                } else {
                    d = Direction::InputOnly;
                }
            }
            // (state, counts as active, established)
            let (new, active, established) = if self.proto() == IPPROTO_TCP {
                let from = TcpState::from_u8(self.state()).unwrap_or(TcpState::None);
                let new = if secure_tcp {
                    super::defense::tcp_transition_dos(from, d, tcp_flags)
                } else {
                    tcp_transition(from, d, tcp_flags)
                };
                (new as u8, new.is_active(), new == TcpState::Established)
            } else {
                let new = sctp_transition(
                    SctpState::from_u8(self.state()).unwrap_or(SctpState::None),
                    d,
                    SctpEvent::from_u8(tcp_flags).unwrap_or(SctpEvent::Data),
                );
                (new as u8, new.is_active(), new == SctpState::Established)
            };
            if new != self.state() {
                // A conn without a dest is counted as neither.
                let inactive = self.has(flags::INACTIVE);
                if self.dest != DestIx::NONE {
                    if !inactive && !active {
                        self.flag_on(flags::INACTIVE);
                        m.became = Some(false);
                    } else if inactive && active {
                        self.flag_off(flags::INACTIVE);
                        m.became = Some(true);
                    }
                }
                m.assure = established;
                m.embryonic_changed = pressure::embryonic_state(self.proto(), self.state())
                    != pressure::embryonic_state(self.proto(), new);
                self.set_state(new);
            }
        } else if self.proto() == IPPROTO_UDP {
            m.assure = dir == Direction::Output;
        }
        m
    }
}

/// The timeout of conn `c`'s state (`--set`, or the secure_tcp table's).
fn state_timeout(c: &Conn, secure_tcp: bool, timeouts: &Timeouts) -> u32 {
    if c.proto() == IPPROTO_TCP {
        super::defense::tcp_timeout_ms(timeouts, secure_tcp, c.state())
    } else {
        timeouts.ms(c.proto(), c.state())
    }
}

/// An IPv4 address field's address, host order.
#[inline]
fn word(a: &Addr) -> u32 {
    u32::from_be_bytes([a[0], a[1], a[2], a[3]])
}

/// An IPv4 address as a number; 0 for none or an IPv6 one.
#[inline]
fn v4_word(a: Option<IpAddr>) -> u32 {
    match a {
        Some(IpAddr::V4(a)) => u32::from(a),
        _ => 0,
    }
}

/// Absolute expiry in ms of a 32-bit wrapping timestamp, read near `now`.
#[inline]
fn abs_ms(expires: u32, now: Millis) -> Millis {
    match ahead(expires, now) {
        Some(d) => now + Millis::from(d),
        None => now.saturating_sub(Millis::from((now as u32).wrapping_sub(expires))),
    }
}

#[inline]
fn is_due(expires: u32, now: Millis) -> bool {
    ahead(expires, now).is_none()
}

/// One worker's conns and templates.
#[derive(Debug)]
pub struct ConnTable {
    slab: Vec<Conn>,
    cap: usize,
    free: u32,
    live: usize,
    /// Its conns by client tuple and by reply tuple, in one
    /// (`conn_index.rs`).
    index: Index,
    hasher: DefaultHashBuilder,
    wheel: Wheel,
    full_drops: u64,
    /// The persistence-engine data of the templates flagged PE_DATA, by slot.
    pe_data: HashMap<u32, Box<[u8]>>,
    /// How the TCP numbers of the conns flagged SEQ_ADJ differ between
    /// their sides, by slot: few conns have one (proxy protocol, SYN
    /// proxy), so it stays out of every conn's bytes.
    seq_adj: HashMap<u32, SeqAdj>,
    /// Embryonic conns, oldest first (`conn_pressure.rs`).
    embryonic: pressure::Embryonic,
    /// secure_tcp: TCP conns follow the kernel's tcp_states_dos.
    secure_tcp: bool,
    /// The dests its conns hold, and those whose counts they changed, to
    /// fold (`dest_refs.rs`).
    dests: DestRefs,
}

impl ConnTable {
    /// A table for up to `n` conns and templates together (at least 1, at
    /// most 2^31 - 2). The slab and the index are reserved now, so that
    /// nothing allocates later; the slab's pages are touched as conns first
    /// fill its slots, so a table sized for the memory rvsd was given
    /// costs what it holds. The index asks for huge pages
    /// (`dpdk::hugepage`): every lookup lands somewhere in them first. The
    /// slab does not: in the VM measured (bench/RESULTS.md), a new conn on
    /// an untouched huge page cost the page's first touch, which made new
    /// conns a third slower while the table filled; the index, a fifth of
    /// the bytes, does not show it.
    pub fn with_capacity(n: usize) -> ConnTable {
        ConnTable::for_worker(0, n)
    }

    /// Worker `worker`'s table for `n` conns (`with_capacity`): its conns
    /// count in that worker's slot of each dest (`dest.rs`).
    pub fn for_worker(worker: usize, n: usize) -> ConnTable {
        let cap = n.clamp(1, MAX_INDEX as usize + 1);
        ConnTable {
            slab: Vec::with_capacity(cap),
            cap,
            free: NIL,
            live: 0,
            index: Index::with_capacity(2 * cap),
            hasher: DefaultHashBuilder::default(),
            wheel: Wheel::new(),
            full_drops: 0,
            pe_data: HashMap::new(),
            seq_adj: HashMap::new(),
            embryonic: pressure::Embryonic::with_capacity(cap),
            secure_tcp: false,
            dests: DestRefs::new(worker),
        }
    }

    /// Its conns' changes to their dests' counts since the last fold into
    /// the dests' totals, where the other workers see them (`Lb::poll`,
    /// every millisecond).
    pub fn fold_dest_counts(&mut self) {
        self.dests.fold();
    }

    /// Dests whose counts changed since the last fold (tests).
    pub fn dests_to_fold(&self) -> usize {
        self.dests.listed()
    }

    pub fn len(&self) -> usize {
        self.live
    }
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }
    pub fn capacity(&self) -> usize {
        self.cap
    }
    pub fn is_full(&self) -> bool {
        self.live >= self.cap
    }
    /// Conns refused because the table was full.
    pub fn full_drops(&self) -> u64 {
        self.full_drops
    }

    /// Bytes allocated for the slab, the index, the embryonic list and
    /// the wheel.
    pub fn memory_bytes(&self) -> usize {
        self.slab.capacity() * std::mem::size_of::<Conn>()
            + self.index.allocation_size()
            + self.embryonic.memory_bytes()
            + self.wheel.memory_bytes()
    }

    /// Counts a conn refused for want of room without building it.
    pub(crate) fn refuse(&mut self) {
        self.full_drops += 1;
    }

    #[inline]
    fn live(&self, i: u32) -> Option<&Conn> {
        self.slab.get(i as usize).filter(|c| c.has(flags::LIVE))
    }

    #[inline]
    pub fn get(&self, id: ConnId) -> Option<ConnRef<'_>> {
        let dests = &self.dests;
        self.live(id.0).map(|conn| ConnRef { conn, dests })
    }

    /// Mutable access to a conn; nothing reachable through it moves the
    /// conn in the index or on the wheel.
    #[inline]
    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.slab.get_mut(id.index()).filter(|c| c.has(flags::LIVE))
    }

    /// `get_mut` and `Conn::as_v4` of the express lane's commonest conn,
    /// asked in one compare of its flags, protocol and state together
    /// (adjacent in the `repr(C)` layout): a live established TCP conn of
    /// IPv4 throughout, no template, of more than one packet, with no
    /// sequence adjustment or SYN proxy between its sides, and for a reply
    /// (`REPLY`) not waiting on its first one (NOOUTPUT). None for any
    /// other, which the lane asks of field by field.
    #[inline(always)]
    pub fn established_v4<const REPLY: bool>(&mut self, id: ConnId) -> Option<V4Conn<'_>> {
        const OFF: u16 =
            flags::LIVE | flags::OFF_LANE | flags::CADDR_V6 | flags::VADDR_V6 | flags::LADDR_V6;
        let off = if REPLY { OFF | flags::NOOUTPUT } else { OFF };
        let mask = u32::from_ne_bytes(head(off, 0xff, 0xff));
        let want = u32::from_ne_bytes(head(flags::LIVE, IPPROTO_TCP, TcpState::Established as u8));
        let c = self.slab.get_mut(id.index())?;
        (u32::from_ne_bytes(c.head) & mask == want).then_some(V4Conn(c))
    }

    /// Conn `id` borrowed as IPv4 (`Conn::as_v4`), with its dest; None
    /// where there is no such conn.
    #[inline(always)]
    pub fn v4_with_dest(&mut self, id: ConnId) -> Option<(V4Conn<'_>, Option<&Dest>)> {
        let c = self
            .slab
            .get_mut(id.index())
            .filter(|c| c.has(flags::LIVE))?;
        let dest = self.dests.get(c.dest).map(|d| &**d);
        Some((c.as_v4()?, dest))
    }

    /// Every conn and template, for `ipvsadm -Lc`.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, ConnRef<'_>)> + '_ {
        self.iter_from(0)
    }

    /// The live conns and templates from slab slot `from` on, for a
    /// listing in chunks.
    pub fn iter_from(&self, from: u32) -> impl Iterator<Item = (ConnId, ConnRef<'_>)> + '_ {
        let dests = &self.dests;
        self.slab
            .iter()
            .enumerate()
            .skip(from as usize)
            .filter(|(_, c)| c.has(flags::LIVE))
            .map(move |(i, conn)| (ConnId(i as u32), ConnRef { conn, dests }))
    }

    /// Adds a conn or template of `dest`, counting it there
    /// (ip_vs_bind_dest: a conn in Active or InAct by its INACTIVE flag, a
    /// template in PersistConn), and starts its timer at `now` + its
    /// timeout.
    pub fn insert(
        &mut self,
        conn: Conn,
        dest: Option<&Arc<Dest>>,
        now: Millis,
    ) -> Result<ConnId, TableFull> {
        let mut conn = conn;
        self.hold(&mut conn, dest);
        self.insert_hashed(conn, dest, now, Hashes::default())
    }

    /// Where the table holds `dest` for one more conn, `conn`'s, kept in
    /// it (`Conn::set_dest`).
    #[inline(always)]
    fn hold(&mut self, conn: &mut Conn, dest: Option<&Arc<Dest>>) {
        let ix = match dest {
            Some(d) => self.dests.hold(d),
            None => DestIx::NONE,
        };
        conn.set_dest(ix, dest.map(|d| &**d));
    }

    /// `insert` of a conn whose `dest` the table holds for it already
    /// (`hold`: the hashes read the dest's address; let go here where the
    /// conn is refused), with the hashes of the conn's tuples its maker
    /// has (`known`): not worked out a second time.
    fn insert_hashed(
        &mut self,
        conn: Conn,
        dest: Option<&Arc<Dest>>,
        now: Millis,
        known: Hashes,
    ) -> Result<ConnId, TableFull> {
        let Some(id) = self.take_slot() else {
            self.dests.let_go(conn.dest);
            self.full_drops += 1;
            return Err(TableFull);
        };
        let (index_in, index_out) = if conn.has(flags::ONE_PACKET) {
            (false, false)
        } else {
            (true, !conn.is_template())
        };
        // Into the index first: a tuple with no room (after the cuckoo
        // moves: a table near full of keys that share lines) refuses the
        // conn as a full table would, before anything else is changed.
        debug_assert!(known.client.is_none_or(|h| h == self.hash_in(&conn)));
        debug_assert!(known.reply.is_none_or(|h| h == self.hash_out(&conn)));
        let h_in = index_in.then(|| known.client.unwrap_or_else(|| self.hash_in(&conn)));
        let h_out = index_out.then(|| known.reply.unwrap_or_else(|| self.hash_out(&conn)));
        let placed_in = h_in.is_none_or(|h| self.index.insert(h, id, false));
        let placed_out = placed_in && h_out.is_none_or(|h| self.index.insert(h, id, true));
        // Then into its slot, and finished there (finished where the
        // caller built it and moved after, it went by way of the stack); a
        // slot `take_slot` did not give, which cannot be, refuses it too.
        let held = conn.dest;
        let slot = if placed_out {
            Self::put(&mut self.slab, &mut self.embryonic, id, conn)
        } else {
            None
        };
        let Some(conn) = slot else {
            if let (true, Some(h)) = (placed_in, h_in) {
                self.index.remove(h, id, false);
            }
            if let (true, Some(h)) = (placed_out, h_out) {
                self.index.remove(h, id, true);
            }
            self.dests.let_go(held);
            self.return_slot(id);
            self.full_drops += 1;
            return Err(TableFull);
        };
        conn.set_flags((conn.flags() | flags::LIVE) & !(flags::IN_HASHED | flags::OUT_HASHED));
        if index_in {
            conn.flag_on(flags::IN_HASHED);
        }
        if index_out {
            conn.flag_on(flags::OUT_HASHED);
        }
        conn.prev = NIL;
        conn.next = NIL;
        conn.control = NIL;
        conn.n_control = 0;
        conn.in_pkts = 0;
        conn.timeout = conn.timeout.min(MAX_TIMEOUT_MS);
        let t = if conn.has(flags::ONE_PACKET) {
            0
        } else {
            conn.timeout
        };
        let at = now.saturating_add(u64::from(t));
        conn.expires = at as u32;
        // Counted on its dest in this worker's slot (`dest.rs`).
        if let Some(d) = dest {
            let (template, active) = (conn.is_template(), !conn.has(flags::INACTIVE));
            self.dests.change_held(conn.dest, d, |d, w| {
                if template {
                    d.template_bound(w, true)
                } else {
                    d.bind_conn(w, active)
                }
            });
        }
        let embryonic =
            !conn.is_template() && pressure::embryonic_state(conn.proto(), conn.state());
        self.live += 1;
        if embryonic {
            self.embryonic_push(id);
        }
        self.wheel.link(&mut self.slab, id, at, now);
        Ok(ConnId(id))
    }

    fn unindex(&mut self, id: u32) {
        let Some(c) = self.slab.get(id as usize) else {
            return;
        };
        if c.has(flags::IN_HASHED) {
            let h = self.hash_in(c);
            self.index.remove(h, id, false);
        }
        if c.has(flags::OUT_HASHED) {
            let h = self.hash_out(c);
            self.index.remove(h, id, true);
        }
        if let Some(c) = self.slab.get_mut(id as usize) {
            c.flag_off(flags::IN_HASHED | flags::OUT_HASHED);
        }
    }

    /// The conn a client→VIP packet belongs to (never a template).
    #[inline]
    pub fn lookup_in(&self, t: &Tuple) -> Option<ConnId> {
        self.probe_in(&self.probe(t))
    }

    /// The conn a reply packet belongs to.
    #[inline]
    pub fn lookup_out(&self, t: &Tuple) -> Option<ConnId> {
        self.probe_out(&self.probe(t))
    }

    /// A packet's tuple keyed and hashed once for `probe_in` and then
    /// `probe_out`: a packet no conn holds is looked up both ways.
    #[inline]
    pub fn probe(&self, t: &Tuple) -> Probe {
        let key = Key::of(t, false);
        let hash = self.hasher.hash_one(key);
        Probe {
            key,
            hash,
            at: self.spot(hash),
        }
    }

    /// `lookup_in` of a probed tuple.
    #[inline]
    pub fn probe_in(&self, p: &Probe) -> Option<ConnId> {
        self.index.find_at(p.at, self.client_is(p.key)).map(ConnId)
    }

    /// `lookup_out` of a probed tuple.
    #[inline]
    pub fn probe_out(&self, p: &Probe) -> Option<ConnId> {
        self.find_out_at(p.at, p.key)
    }

    /// `probe_in`, else `probe_out` (and true), the index's lines read
    /// once.
    #[inline]
    pub fn probe_either(&self, p: &Probe) -> Option<(ConnId, bool)> {
        let (client, reply) = (self.client_is(p.key), self.reply_is(p.key));
        self.index
            .find_either(p.at, client, reply)
            .map(|(j, out)| (ConnId(j), out))
    }

    /// Whether slab slot `j`'s conn has `key` as its client tuple (a
    /// lookup's check of a tag's match).
    #[inline(always)]
    fn client_is(&self, key: Key) -> impl Fn(u32) -> bool + '_ {
        let slab = &self.slab;
        move |j| slab.get(j as usize).is_some_and(|c| c.in_key() == key)
    }

    /// The same for its reply tuple.
    #[inline(always)]
    fn reply_is(&self, key: Key) -> impl Fn(u32) -> bool + '_ {
        let (slab, dests) = (&self.slab, &self.dests);
        move |j| {
            slab.get(j as usize)
                .is_some_and(|c| c.out_key(dests) == key)
        }
    }

    /// `client_is` of an IPv4 tuple given as host-order words, the
    /// conn's fields compared in place (`Conn::is_in_v4`).
    #[inline(always)]
    fn client_is_v4(&self, (proto, s, sp, d, dp): V4Words) -> impl Fn(u32) -> bool + '_ {
        let slab = &self.slab;
        move |j| {
            slab.get(j as usize)
                .is_some_and(|c| c.is_in_v4::<false>(proto, s, sp, d, dp))
        }
    }

    /// `reply_is` of an IPv4 tuple (`Conn::is_reply_v4`).
    #[inline(always)]
    fn reply_is_v4(&self, (proto, s, sp, d, dp): V4Words) -> impl Fn(u32) -> bool + '_ {
        let slab = &self.slab;
        move |j| {
            slab.get(j as usize)
                .is_some_and(|c| c.is_reply_v4(proto, s, sp, d, dp))
        }
    }

    /// The hash of a conn's `in_key`: for an IPv4 conn read straight from
    /// its words, as `hash_v4` hashes a packet's (no key built).
    #[inline]
    fn hash_in(&self, c: &Conn) -> u64 {
        if !c.has(flags::CADDR_V6 | flags::VADDR_V6 | flags::TEMPLATE) {
            let h = self.hash_v4(c.proto(), word(&c.caddr), c.cport, word(&c.vaddr), c.vport);
            debug_assert_eq!(h, self.hasher.hash_one(c.in_key()));
            return h;
        }
        self.hasher.hash_one(c.in_key())
    }

    /// The same for its `out_key`.
    #[inline]
    fn hash_out(&self, c: &Conn) -> u64 {
        let nat = matches!(c.fwd, FwdMethod::Masq | FwdMethod::FullNat);
        let src = match (nat, c.dest_in(&self.dests).map(|d| d.addr())) {
            (true, Some(IpAddr::V4(rs))) => Some((u32::from(rs), c.dport)),
            (false, _) if !c.has(flags::VADDR_V6) => Some((word(&c.vaddr), c.vport)),
            _ => None,
        };
        match src {
            Some((a, port)) if !c.has(flags::LADDR_V6) => {
                let h = self.hash_v4(c.proto(), a, port, word(&c.laddr), c.lport);
                debug_assert_eq!(h, self.hasher.hash_one(c.out_key(&self.dests)));
                h
            }
            _ => self.hasher.hash_one(c.out_key(&self.dests)),
        }
    }

    /// The hash an IPv4 tuple is looked up by (`spot`), from host-order
    /// addresses and ports.
    #[inline(always)]
    pub fn hash_v4(&self, proto: u8, s: u32, sp: u16, d: u32, dp: u16) -> u64 {
        let ports = u32::from(sp) << 16 | u32::from(dp);
        self.hasher
            .hash_one(V4Hash::of(s, d, ports, u16::from(proto)))
    }

    /// The same from a frame's bytes as they lie: `addrs` an IPv4
    /// header's source and destination read as one little-endian word,
    /// `ports` a TCP or UDP header's first four bytes the same way.
    #[inline(always)]
    pub fn hash_v4_wire(&self, proto: u8, addrs: u64, ports: u32) -> u64 {
        self.hasher.hash_one(V4Hash::wire(
            addrs,
            ports as u16,
            (ports >> 16) as u16,
            u16::from(proto),
        ))
    }

    /// Where a lookup of hash `h` (`hash_v4`) reads, as a client's tuple
    /// and (`Spot::reply`) as a reply's.
    #[inline(always)]
    pub fn spot(&self, h: u64) -> Spot {
        self.index.spot(h)
    }

    /// Asks for the index line a lookup at `p` reads first, both ways (the
    /// caller asks for the conn once it has come: `ask_conn`).
    #[inline(always)]
    pub fn ask_lines(&self, p: Spot) {
        prefetch(self.index.line(p), 1);
    }

    /// Asks for the conn a lookup at `p` would compare first, its index
    /// line come (`ask_lines`): the first client tuple's tag match in the
    /// first line, else the first reply's. A first line with neither that
    /// spilled entries into its other line has that line asked for
    /// instead: `spilled`, and the caller asks for the conn there once the
    /// line has come (`ask_spilled`). The conn asked for is the lookup's
    /// `hint` where no other can come first (`lookup_v4_hinted`).
    #[inline(always)]
    pub fn ask_conn(&self, p: Spot) -> Asked {
        if let Some(j) = self.index.first_match(p) {
            self.ask_slot(j);
            return Asked {
                spilled: false,
                hint: j,
            };
        }
        let spilled = self.index.other_line(p).inspect(|l| prefetch(*l, 1));
        if let Some(j) = self.index.first_match(p.reply()) {
            self.ask_slot(j);
            // A line that spilled may hold the tuple as a client's in its
            // other line, which the lookup reads first.
            let hint = if spilled.is_some() {
                NO_HINT
            } else {
                j | OUT_HINT
            };
            return Asked {
                spilled: spilled.is_some(),
                hint,
            };
        }
        Asked {
            spilled: spilled.is_some(),
            hint: NO_HINT,
        }
    }

    /// Asks for the conn a lookup at `p` would compare first in the other
    /// line `ask_conn` asked for: a client tuple's a hint, as any conn
    /// there under the tuple is the one the lookup finds.
    #[inline(always)]
    pub fn ask_spilled(&self, p: Spot) -> u32 {
        if let Some(j) = self.index.other_match(p) {
            self.ask_slot(j);
            return j;
        }
        if let Some(j) = self.index.other_match(p.reply()) {
            self.ask_slot(j);
        }
        NO_HINT
    }

    /// Asks for the conn at slab slot `j` (its two cache lines).
    #[inline(always)]
    fn ask_slot(&self, j: u32) {
        if let Some(c) = self.slab.get(j as usize) {
            prefetch(c, 2);
        }
    }

    /// `lookup_in` and then `lookup_out` for an IPv4 packet's tuple given
    /// as host-order words (no `IpAddr` built) and its spot (`spot` of
    /// `hash_v4`): the conn, and whether the packet is its reply.
    #[inline(always)]
    pub fn lookup_v4_probed(
        &self,
        p: Spot,
        proto: u8,
        s: u32,
        sp: u16,
        d: u32,
        dp: u16,
    ) -> Option<(ConnId, bool)> {
        debug_assert_eq!(
            self.spot(self.hasher.hash_one(Key::v4(proto, s, sp, d, dp))),
            p
        );
        let v = (proto, s, sp, d, dp);
        self.index
            .find_either(p, self.client_is_v4(v), self.reply_is_v4(v))
            .map(|(j, out)| (ConnId(j), out))
    }

    /// `lookup_v4_probed`, the conn `ask_conn` asked for (`Asked::hint`)
    /// compared first: a conn the index holds under the tuple is the one
    /// the probe would find (a tuple is in each index once), and the hint
    /// is given only where nothing the probe reads first could match. A
    /// slot that changed since is a miss (its conn gone: not live, or
    /// another tuple), and the probe decides.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn lookup_v4_hinted(
        &self,
        hint: u32,
        p: Spot,
        proto: u8,
        s: u32,
        sp: u16,
        d: u32,
        dp: u16,
    ) -> Option<(ConnId, bool)> {
        let (j, out) = (hint & !OUT_HINT, hint & OUT_HINT != 0);
        if let Some(c) = self.slab.get(j as usize) {
            let hit = if out {
                c.has(flags::LIVE) && c.is_reply_v4(proto, s, sp, d, dp)
            } else {
                c.is_in_v4::<true>(proto, s, sp, d, dp)
            };
            if hit {
                return Some((ConnId(j), out));
            }
        }
        self.lookup_v4_probed(p, proto, s, sp, d, dp)
    }

    /// `lookup_out` of an IPv4 reply tuple given as host-order words (no
    /// `IpAddr` built), with the tuple's hash (`hash_v4`): the local-port
    /// bind's check of each candidate, which keeps the free one's hash for
    /// its conn's reply entry.
    #[inline]
    pub fn lookup_out_v4(
        &self,
        proto: u8,
        s: u32,
        sp: u16,
        d: u32,
        dp: u16,
    ) -> (Option<ConnId>, u64) {
        let h = self.hash_v4(proto, s, sp, d, dp);
        (self.find_reply_v4(self.spot(h), proto, s, sp, d, dp), h)
    }

    /// The conn whose reply tuple is an IPv4 tuple at spot `p`, its fields
    /// compared in place (`Conn::is_reply_v4`).
    #[inline(always)]
    fn find_reply_v4(
        &self,
        p: Spot,
        proto: u8,
        s: u32,
        sp: u16,
        d: u32,
        dp: u16,
    ) -> Option<ConnId> {
        debug_assert_eq!(
            self.spot(self.hasher.hash_one(Key::v4(proto, s, sp, d, dp))),
            p
        );
        let v = (proto, s, sp, d, dp);
        self.index
            .find_at(p.reply(), self.reply_is_v4(v))
            .map(ConnId)
    }

    /// The conn whose reply tuple is `key`, at spot `p`.
    #[inline]
    fn find_out_at(&self, p: Spot, key: Key) -> Option<ConnId> {
        self.index
            .find_at(p.reply(), self.reply_is(key))
            .map(ConnId)
    }

    /// The template for `key` (ip_vs_ct_in_get), valid or not.
    pub fn lookup_template(&self, key: &TemplateKey) -> Option<ConnId> {
        let k = Key::new(
            key.proto,
            addr_bytes(key.client_net),
            0,
            addr_bytes(key.vaddr),
            key.vport,
            true,
        );
        let h = self.hasher.hash_one(k);
        let slab = &self.slab;
        self.index
            .find(h, |j| {
                slab.get(j as usize)
                    .is_some_and(|c| c.in_key() == k && !c.has(flags::PE_DATA))
            })
            .map(ConnId)
    }

    /// The template for `key` that also carries persistence-engine data
    /// `pe` (the pe's ct_match), valid or not.
    pub fn lookup_template_pe(&self, key: &TemplateKey, pe: &[u8]) -> Option<ConnId> {
        let k = Key::new(
            key.proto,
            addr_bytes(key.client_net),
            self.pe_hash(pe),
            addr_bytes(key.vaddr),
            key.vport,
            true,
        );
        let h = self.hasher.hash_one(k);
        let slab = &self.slab;
        self.index
            .find(h, |j| {
                slab.get(j as usize).is_some_and(|c| {
                    c.in_key() == k
                        && c.has(flags::PE_DATA)
                        && self.pe_data.get(&j).is_some_and(|d| **d == *pe)
                })
            })
            .map(ConnId)
    }

    /// Adds template `tpl` keyed by persistence-engine data `pe` as well
    /// (`lookup_template_pe` finds it, `pe_data` shows it).
    pub fn insert_template_pe(
        &mut self,
        mut tpl: Conn,
        dest: &Arc<Dest>,
        pe: &[u8],
        now: Millis,
    ) -> Result<ConnId, TableFull> {
        tpl.cport = self.pe_hash(pe);
        tpl.flag_on(flags::PE_DATA);
        let id = self.insert(tpl, Some(dest), now)?;
        self.pe_data.insert(id.0, pe.into());
        Ok(id)
    }

    /// A template's persistence-engine data.
    pub fn pe_data(&self, id: ConnId) -> Option<&[u8]> {
        self.live(id.0)?;
        self.pe_data.get(&id.0).map(|d| &**d)
    }

    /// Gives conn `id` a sequence adjustment (replacing any it had);
    /// false when there is no such conn.
    pub fn set_seq_adj(&mut self, id: ConnId, adj: SeqAdj) -> bool {
        let Some(c) = self.get_mut(id) else {
            return false;
        };
        c.flag_on(flags::SEQ_ADJ);
        self.seq_adj.insert(id.0, adj);
        true
    }

    /// Marks conn `id` as one the SYN proxy is opening (or no longer);
    /// false when there is no such conn.
    pub fn set_synproxy(&mut self, id: ConnId, on: bool) -> bool {
        let Some(c) = self.get_mut(id) else {
            return false;
        };
        if on {
            c.flag_on(flags::SYNPROXY);
        } else {
            c.flag_off(flags::SYNPROXY);
        }
        true
    }

    /// The sequence adjustment of conn `id`, if it has one.
    #[inline]
    pub fn seq_adj(&self, id: ConnId) -> Option<&SeqAdj> {
        let c = self.live(id.0)?;
        if !c.has(flags::SEQ_ADJ) {
            return None;
        }
        self.seq_adj.get(&id.0)
    }

    pub fn seq_adj_mut(&mut self, id: ConnId) -> Option<&mut SeqAdj> {
        let c = self.live(id.0)?;
        if !c.has(flags::SEQ_ADJ) {
            return None;
        }
        self.seq_adj.get_mut(&id.0)
    }

    /// Spreads the templates of one client net and service over the index
    /// by their data, as the kernel hashes them by it.
    fn pe_hash(&self, pe: &[u8]) -> u16 {
        self.hasher.hash_one(pe) as u16
    }

    /// Moves conn `i`'s timer to `at` (absolute ms). Later: only the stored
    /// expiry changes and the wheel finds out when the old slot comes due.
    /// Earlier: the conn is re-filed, or it would outlive its timeout.
    #[inline]
    fn set_expiry(&mut self, i: u32, at: Millis, now: Millis) {
        let Some(c) = self.slab.get_mut(i as usize) else {
            return;
        };
        let new = at as u32;
        let earlier = ahead(new, now).unwrap_or(0) < ahead(c.expires, now).unwrap_or(0);
        c.expires = new;
        if earlier || !Wheel::is_linked(&self.slab, i) {
            self.wheel.unlink(&mut self.slab, i);
            self.wheel.link(&mut self.slab, i, at, now);
        }
    }

    /// Restarts a conn's timer at its full timeout (ip_vs_conn_put).
    pub fn touch(&mut self, id: ConnId, now: Millis) -> bool {
        let Some(c) = self.live(id.0) else {
            return false;
        };
        let t = if c.has(flags::ONE_PACKET) {
            0
        } else {
            c.timeout
        };
        self.set_expiry(id.0, now.saturating_add(u64::from(t)), now);
        true
    }

    /// One packet of conn `id` (ip_vs_set_state + ip_vs_conn_put): the
    /// protocol's state transition, the dest's active/inactive counts when
    /// the conn crosses between them, the template marked ASSURED, and the
    /// timer restarted at the new state's timeout. `tcp_flags` is the TCP
    /// header's flag byte; for SCTP, the packet's `SctpEvent` as u8;
    /// ignored for other protocols. `dir` is Input or
    /// Output; Input becomes InputOnly while the conn has seen no output.
    /// False when there is no such conn (or it is a template).
    pub fn on_packet(
        &mut self,
        id: ConnId,
        dir: Direction,
        tcp_flags: u8,
        now: Millis,
        timeouts: &Timeouts,
    ) -> bool {
        let Some(c) = self
            .slab
            .get_mut(id.index())
            .filter(|c| c.has(flags::LIVE) && !c.has(flags::TEMPLATE))
        else {
            return false;
        };
        let m = c.step(dir, tcp_flags, self.secure_tcp);
        if let Some(active) = m.became {
            self.dests.change(c.dest, |d, w| d.conn_became(w, active));
        }
        self.conn_put(id.0, m.assure, now, timeouts);
        if m.embryonic_changed {
            self.embryonic_update(id.0);
        }
        true
    }

    /// `insert` of a conn a packet has just opened, moved by that packet
    /// first, as `on_packet` would move it once inserted: in the state the
    /// packet takes it to, counted on its dest as that state counts
    /// (Active or InAct) and timed by that state's timeout from the start.
    /// Half the work and none of the dest's counts moved across (two
    /// atomic writes to a line every worker writes). Nothing controls the
    /// conn yet, so a template has nothing to be assured of. `known`: the
    /// hashes of its tuples its maker has (`Hashes`). In line where the
    /// conn is built, so that its first step folds against what is known
    /// of it there.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn insert_first(
        &mut self,
        mut conn: Conn,
        dest: Option<&Arc<Dest>>,
        dir: Direction,
        tcp_flags: u8,
        now: Millis,
        timeouts: &Timeouts,
        known: Hashes,
    ) -> Result<ConnId, TableFull> {
        self.hold(&mut conn, dest);
        let m = conn.step(dir, tcp_flags, self.secure_tcp);
        // What opens a conn (a SYN, an SCTP INIT, a client's datagram)
        // establishes none: no template could be owed ASSURED.
        debug_assert!(!m.assure, "a first packet that establishes its conn");
        conn.timeout = state_timeout(&conn, self.secure_tcp, timeouts);
        let in_pkts = conn.in_pkts;
        let id = self.insert_hashed(conn, dest, now, known)?;
        if let Some(c) = self.slab.get_mut(id.index()) {
            c.in_pkts = in_pkts;
        }
        Ok(id)
    }

    /// `on_packet` for a packet that cannot change its conn's state: an
    /// ESTABLISHED TCP conn's segment without SYN, FIN or RST (which every
    /// TCP state table leaves ESTABLISHED, in either direction), or any
    /// UDP datagram, of a conn that is not a template. The caller has
    /// checked that much; debug builds check it again. False when there is
    /// no such conn.
    #[inline(always)]
    pub fn refresh(
        &mut self,
        id: ConnId,
        dir: Direction,
        now: Millis,
        timeouts: &Timeouts,
    ) -> bool {
        let secure = self.secure_tcp;
        let Some(c) = self.slab.get_mut(id.index()) else {
            return false;
        };
        if c.flags() & (flags::LIVE | flags::TEMPLATE) != flags::LIVE {
            return false;
        }
        debug_assert!(
            c.proto() == IPPROTO_UDP
                || (c.proto() == IPPROTO_TCP
                    && c.state() == TcpState::Established as u8
                    && !(dir == Direction::Output && c.has(flags::NOOUTPUT))),
            "a packet that may change its conn's state"
        );
        let t = state_timeout(c, secure, timeouts);
        if c.touch(dir, t, now) {
            return true;
        }
        self.repost(id, dir, now, timeouts);
        true
    }

    /// The timeouts `refresh` gives an ESTABLISHED TCP conn and a UDP
    /// conn under `timeouts` (secure_tcp's when it is on), in milliseconds.
    pub fn steady_ms(&self, timeouts: &Timeouts) -> [u32; 2] {
        [
            super::defense::tcp_timeout_ms(timeouts, self.secure_tcp, TcpState::Established as u8),
            timeouts.ms(IPPROTO_UDP, 0),
        ]
    }

    /// The rest of `refresh` for a conn `Conn::touch` could not restamp in
    /// place: `conn_put`, which also marks an assured template.
    #[cold]
    pub fn repost(&mut self, id: ConnId, dir: Direction, now: Millis, timeouts: &Timeouts) {
        let Some(c) = self.slab.get(id.index()) else {
            return;
        };
        let assure = c.proto() == IPPROTO_UDP && dir == Direction::Output && c.control != NIL;
        self.conn_put(id.0, assure, now, timeouts);
    }

    /// The end of a packet's work on conn `i` (ip_vs_conn_put): its
    /// timeout for its state as now configured, its template marked
    /// ASSURED if `assure`, and its timer restarted.
    #[inline]
    fn conn_put(&mut self, i: u32, assure: bool, now: Millis, timeouts: &Timeouts) {
        let secure = self.secure_tcp;
        let Some(c) = self.slab.get_mut(i as usize) else {
            return;
        };
        c.timeout = state_timeout(c, secure, timeouts);
        let t = if c.has(flags::ONE_PACKET) {
            0
        } else {
            c.timeout
        };
        let ctl = c.control;
        if assure && ctl != NIL {
            if let Some(ct) = self
                .slab
                .get_mut(ctl as usize)
                .filter(|ct| ct.is_template())
            {
                ct.set_state(ct.state() | TPL_ASSURED);
            }
        }
        self.set_expiry(i, now.saturating_add(u64::from(t)), now);
    }

    /// Links conn `cp` to template `ct` (ip_vs_control_add).
    pub(crate) fn control_add(&mut self, cp: ConnId, ct: ConnId) {
        if cp == ct || self.live(ct.0).is_none() {
            return;
        }
        let Some(c) = self.get_mut(cp) else { return };
        if c.control != NIL {
            return;
        }
        c.control = ct.0;
        if let Some(t) = self.get_mut(ct) {
            t.n_control = t.n_control.saturating_add(1);
        }
    }

    /// Makes a template unfindable (ip_vs_check_template's invalidation):
    /// its ports become 0xffff as the kernel shows them, and it lives on
    /// only for the conns it still controls.
    pub(crate) fn invalidate_template(&mut self, ct: ConnId) {
        if !self.get(ct).is_some_and(|c| c.is_template()) {
            return;
        }
        self.unindex(ct.0);
        if let Some(c) = self.get_mut(ct) {
            c.vport = 0xffff;
            c.dport = 0xffff;
            c.cport = 0;
        }
    }

    /// Removes a conn now. A template that still controls conns stays
    /// (false), as the kernel keeps it until they are gone.
    pub fn remove(&mut self, id: ConnId) -> bool {
        self.remove_with(id, |_, _| {})
    }

    /// `remove`, calling `on_remove` with the conn before it goes (a
    /// FULLNAT local port to give back, a sync message).
    pub fn remove_with(
        &mut self,
        id: ConnId,
        mut on_remove: impl FnMut(ConnId, ConnRef<'_>),
    ) -> bool {
        match self.live(id.0) {
            Some(c) if c.n_control == 0 => {
                self.wheel.unlink(&mut self.slab, id.0);
                self.free_conn(id.0, &mut on_remove);
                true
            }
            _ => false,
        }
    }

    /// Handles up to `budget` timer entries due at `now` and returns how
    /// many conns went. A conn touched since it was filed is filed again for
    /// its new expiry; one that still controls others gets 60 s more
    /// (ip_vs_conn_expire); the rest are unlinked from the index, their
    /// dest and their template, and their slot is freed.
    pub fn expire(&mut self, now: Millis, budget: usize) -> usize {
        self.expire_with(now, budget, |_, _| {})
    }

    /// `expire`, calling `on_remove` with each conn before it goes.
    pub fn expire_with(
        &mut self,
        now: Millis,
        budget: usize,
        mut on_remove: impl FnMut(ConnId, ConnRef<'_>),
    ) -> usize {
        let mut removed = 0;
        for _ in 0..budget {
            let Some(i) = self.wheel.pop_due(&mut self.slab, now) else {
                break;
            };
            let Some(c) = self.slab.get_mut(i as usize) else {
                continue;
            };
            if !c.has(flags::LIVE) {
                continue;
            }
            if !is_due(c.expires, now) {
                let at = abs_ms(c.expires, now);
                self.wheel.link(&mut self.slab, i, at, now);
            } else if c.n_control > 0 {
                // From when the timer was due, as the kernel's timer fires
                // then, however late this worker got round to it.
                c.timeout = CONTROL_GRACE_MS;
                let at = abs_ms(c.expires, now).saturating_add(u64::from(CONTROL_GRACE_MS));
                c.expires = at as u32;
                self.wheel.link(&mut self.slab, i, at, now);
            } else {
                self.free_conn(i, &mut on_remove);
                removed += 1;
            }
        }
        removed
    }

    /// Unlinks conn `i` (already off the wheel) from everything and frees
    /// its slot (ip_vs_conn_expire's unlink path + ip_vs_unbind_dest).
    fn free_conn(&mut self, i: u32, on_remove: &mut impl FnMut(ConnId, ConnRef<'_>)) {
        self.unindex(i);
        self.embryonic_unlink(i);
        let dests = &mut self.dests;
        let Some(c) = self.slab.get_mut(i as usize) else {
            return;
        };
        on_remove(
            ConnId(i),
            ConnRef {
                conn: &*c,
                dests: &*dests,
            },
        );
        // A conn without a dest holds nothing (`end` finds no entry).
        let (template, active) = (c.has(flags::TEMPLATE), !c.has(flags::INACTIVE));
        dests.end(std::mem::replace(&mut c.dest, DestIx::NONE), |d, w| {
            if template {
                d.template_bound(w, false)
            } else {
                d.unbind_conn(w, active)
            }
        });
        let ctl = std::mem::replace(&mut c.control, NIL);
        if c.has(flags::PE_DATA) {
            self.pe_data.remove(&i);
        }
        if c.has(flags::SEQ_ADJ) {
            self.seq_adj.remove(&i);
        }
        c.set_flags(0);
        c.n_control = 0;
        c.prev = NIL;
        c.next = self.free;
        self.free = i;
        self.live = self.live.saturating_sub(1);
        if ctl != NIL {
            if let Some(t) = self.slab.get_mut(ctl as usize) {
                t.n_control = t.n_control.saturating_sub(1);
            }
        }
    }
}

#[path = "sync/conn_sync.rs"]
mod conn_sync;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ipvs::dest::DestConfig;
    use crate::ipvs::proto::tcp_flags::{ACK, FIN, RST, SYN};

    pub(crate) fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    pub(crate) fn dest(fwd: FwdMethod) -> Arc<Dest> {
        let mut c = DestConfig::new(ip("192.168.1.10"), 8080);
        c.fwd = fwd;
        Arc::new(Dest::new(&c, 1))
    }

    pub(crate) fn conn(d: &Arc<Dest>, client: &str, cport: u16) -> Conn {
        Conn::new(
            IPPROTO_TCP,
            (ip(client), cport),
            (ip("10.0.0.1"), 80),
            8080,
            d.fwd(),
        )
    }

    /// The lane's in-place check of a reply's tuple (`is_reply_v4`) says
    /// what comparing the conn's out-key with the tuple's key says: in
    /// every mode, for the reply's own tuple and for tuples a field off
    /// (the protocol, either address, either port, the two sides swapped),
    /// for a FULLNAT conn with its local address and one with an IPv6 one,
    /// an IPv6 client's and a conn without a dest.
    #[test]
    fn a_replys_tuple_is_checked_in_place_as_its_key_is_compared() {
        let word = |a: &[u8]| u32::from_be_bytes([a[0], a[1], a[2], a[3]]);
        let mut replies = 0;
        for fwd in [
            FwdMethod::FullNat,
            FwdMethod::Masq,
            FwdMethod::DirectRoute,
            FwdMethod::Tunnel,
        ] {
            let d = dest(fwd);
            let mut dests = DestRefs::new(0);
            let of = |mut c: Conn, dests: &mut DestRefs| {
                c.set_dest(dests.hold(&d), Some(&d));
                c
            };
            let vip = (ip("10.0.0.1"), 80);
            let conns = [
                of(conn(&d, "192.0.2.7", 4321), &mut dests),
                of(
                    conn(&d, "192.0.2.7", 4321).with_local(ip("10.0.0.250"), 5001),
                    &mut dests,
                ),
                of(
                    conn(&d, "192.0.2.7", 4321).with_local(ip("2001:db8::1"), 5001),
                    &mut dests,
                ),
                of(conn(&d, "2001:db8::7", 4321), &mut dests),
                Conn::new(IPPROTO_UDP, (ip("192.0.2.7"), 53), vip, 8053, fwd),
            ];
            let dests = &dests;
            for c in &conns {
                let k = c.out_key(dests);
                let (proto, s, d) = (k.meta as u8, word(&k.a), word(&k.b));
                let (sp, dp) = ((k.ports >> 16) as u16, k.ports as u16);
                let other = if proto == IPPROTO_TCP {
                    IPPROTO_UDP
                } else {
                    IPPROTO_TCP
                };
                for (t, own) in [
                    ((proto, s, sp, d, dp), true),
                    ((other, s, sp, d, dp), false),
                    ((proto, s ^ 1, sp, d, dp), false),
                    ((proto, s, sp ^ 1, d, dp), false),
                    ((proto, s, sp, d ^ 1, dp), false),
                    ((proto, s, sp, d, dp ^ 1), false),
                    ((proto, d, dp, s, sp), false),
                ] {
                    let by_key = c.out_key(dests) == Key::v4(t.0, t.1, t.2, t.3, t.4);
                    assert_eq!(
                        c.is_reply_v4(t.0, t.1, t.2, t.3, t.4),
                        by_key,
                        "{fwd:?} {t:?} of {:?}",
                        k
                    );
                    if own && by_key {
                        replies += 1;
                    }
                }
            }
        }
        // Each mode's three IPv4 conns (the plain one, the local
        // address's, the dest-less one) took their own reply.
        assert_eq!(replies, 4 * 3, "the replies' own tuples");
    }

    /// The lane's one-compare ask (`established_v4`) takes exactly the
    /// conns it takes asked field by field: live, IPv4 throughout, no
    /// template, one-packet, sequence-adjusted or SYN-proxied conn, TCP
    /// established, and for a reply waiting on no first one. Over every combination of twelve flags
    /// (the three it ignores among them), four protocols and every state,
    /// both sides.
    #[test]
    fn the_lanes_one_compare_takes_the_conns_it_asks_of_field_by_field() {
        let mut t = ConnTable::with_capacity(8);
        let d = dest(FwdMethod::FullNat);
        let id = t.insert(conn(&d, "192.0.2.7", 4321), Some(&d), 0).unwrap();
        let bits = [
            flags::LIVE,
            flags::TEMPLATE,
            flags::ONE_PACKET,
            flags::NOOUTPUT,
            flags::SEQ_ADJ,
            flags::SYNPROXY,
            flags::CADDR_V6,
            flags::VADDR_V6,
            flags::LADDR_V6,
            flags::INACTIVE,
            flags::PE_DATA,
            flags::IN_HASHED,
        ];
        let mut taken = [0; 2];
        let mut asked = 0;
        for set in 0..1u32 << bits.len() {
            let f = (0..bits.len())
                .filter(|i| set & 1 << i != 0)
                .fold(0, |f, i| f | bits[i]);
            let has = |b: u16| f & b != 0;
            for proto in [IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, 0] {
                for state in (0..=12).chain([0xff]) {
                    t.slab[id.index()].head = head(f, proto, state);
                    for reply in [false, true] {
                        let plain = has(flags::LIVE)
                            && !has(flags::TEMPLATE | flags::ONE_PACKET)
                            && !has(flags::SEQ_ADJ | flags::SYNPROXY)
                            && !has(flags::CADDR_V6 | flags::VADDR_V6 | flags::LADDR_V6);
                        let established = proto == IPPROTO_TCP
                            && TcpState::from_u8(state) == Some(TcpState::Established)
                            && !(reply && has(flags::NOOUTPUT));
                        let got = if reply {
                            t.established_v4::<true>(id).is_some()
                        } else {
                            t.established_v4::<false>(id).is_some()
                        };
                        assert_eq!(got, plain && established, "{f:#x} {proto} {state} {reply}");
                        taken[usize::from(reply)] += usize::from(got);
                        asked += 1;
                    }
                }
            }
        }
        assert_eq!(asked, 4096 * 4 * 14 * 2);
        // Of the 2^12 flag sets, the plain ones are live with the eight
        // other asked bits clear: 2^3 (the ignored three) for a conn, and
        // for it TCP established, NOOUTPUT either way (a client's) or
        // clear (a reply).
        assert_eq!(taken, [8 * 2, 8]);
    }

    fn in_tuple(client: &str, cport: u16) -> Tuple {
        Tuple {
            proto: IPPROTO_TCP,
            saddr: ip(client),
            sport: cport,
            daddr: ip("10.0.0.1"),
            dport: 80,
        }
    }

    /// A conn made as its first packet leaves it (`insert_first`) is the
    /// conn `insert` and then `on_packet` make: state, flags, input count,
    /// timer, its dest's Active and InAct counts, the embryonic list, and
    /// then the same under the next packet and at its expiry. For TCP
    /// (secure_tcp off and on, DR's input-only conns, a conn without a
    /// dest), UDP and SCTP.
    #[test]
    fn a_conn_made_by_its_first_packet_is_the_one_on_packet_would_make() {
        use crate::ipvs::proto_sctp::SctpEvent as E;
        let sctp = |mut c: Conn| {
            c.head[2] = IPPROTO_SCTP;
            c
        };
        let udp = |mut c: Conn| {
            c.head[2] = IPPROTO_UDP;
            c
        };
        let same = |c: Conn| c;
        type Make = fn(Conn) -> Conn;
        // (what, fwd, secure_tcp, conn, first packet's flags, next packet's
        // direction and flags)
        let cases: [(&str, FwdMethod, bool, Make, u8, Direction, u8); 7] = [
            (
                "tcp",
                FwdMethod::FullNat,
                false,
                same,
                SYN,
                Direction::Output,
                SYN | ACK,
            ),
            (
                "secure tcp",
                FwdMethod::Masq,
                true,
                same,
                SYN,
                Direction::Output,
                SYN | ACK,
            ),
            (
                "dr tcp",
                FwdMethod::DirectRoute,
                false,
                same,
                SYN,
                Direction::Input,
                ACK,
            ),
            (
                "no dest",
                FwdMethod::FullNat,
                false,
                same,
                SYN,
                Direction::Input,
                RST,
            ),
            (
                "udp",
                FwdMethod::FullNat,
                false,
                udp,
                0,
                Direction::Output,
                0,
            ),
            (
                "sctp",
                FwdMethod::FullNat,
                false,
                sctp,
                E::Init as u8,
                Direction::Output,
                E::InitAck as u8,
            ),
            (
                "tcp syn-ack",
                FwdMethod::FullNat,
                false,
                same,
                SYN | ACK,
                Direction::Input,
                FIN,
            ),
        ];
        let to = Timeouts::default();
        let t0: Millis = 10_000;
        for (what, fwd, secure, make, first, dir, next) in cases {
            let (da, db) = (dest(fwd), dest(fwd));
            let mut a = ConnTable::with_capacity(8);
            let mut b = ConnTable::with_capacity(8);
            (a.secure_tcp, b.secure_tcp) = (secure, secure);
            let held = |d| Some(d).filter(|_| what != "no dest");
            let ia = a
                .insert(make(conn(&da, "192.0.2.7", 4321)), held(&da), t0)
                .unwrap();
            assert!(a.on_packet(ia, Direction::Input, first, t0, &to), "{what}");
            let ib = b
                .insert_first(
                    make(conn(&db, "192.0.2.7", 4321)),
                    held(&db),
                    Direction::Input,
                    first,
                    t0,
                    &to,
                    Hashes::default(),
                )
                .unwrap();
            let seen = |t: &ConnTable, id: ConnId, d: &Dest| {
                let c = t.get(id).expect("the conn");
                (
                    (c.state(), c.flags(), c.in_pkts, c.timeout, c.expires_in(t0)),
                    (d.activeconns(), d.inactconns(), t.embryonic_len()),
                )
            };
            assert_eq!(seen(&a, ia, &da), seen(&b, ib, &db), "{what}: made");
            let t1 = t0 + 1_000;
            assert!(a.on_packet(ia, dir, next, t1, &to));
            assert!(b.on_packet(ib, dir, next, t1, &to));
            assert_eq!(seen(&a, ia, &da), seen(&b, ib, &db), "{what}: moved on");
            // Gone at the same tick, not before.
            let end = t1 + u64::from(a.get(ia).unwrap().timeout);
            assert_eq!(a.expire(end - 100, usize::MAX), 0, "{what}");
            assert_eq!(b.expire(end - 100, usize::MAX), 0, "{what}");
            assert_eq!(a.expire(end + 100, usize::MAX), 1, "{what}");
            assert_eq!(b.expire(end + 100, usize::MAX), 1, "{what}");
            assert_eq!((da.activeconns(), da.inactconns()), (0, 0), "{what}");
            assert_eq!((db.activeconns(), db.inactconns()), (0, 0), "{what}");
        }
    }

    /// The express block rides in the IPv4 addresses' spare bytes: it
    /// reads back as written, side by side, and changes neither the
    /// conn's addresses nor the lookups that find it.
    #[test]
    fn the_express_block_reads_back_and_leaves_the_conn_as_it_was() {
        let d = dest(FwdMethod::FullNat);
        let mut t = ConnTable::with_capacity(4);
        let c = conn(&d, "192.0.2.7", 4321).with_local(ip("10.0.0.250"), 5001);
        let id = t.insert(c, Some(&d), 0).unwrap();
        let before = t.get(id).map(|c| (c.caddr(), c.vaddr(), c.laddr(), c.v4()));
        assert_eq!(
            t.get(id).and_then(|c| c.express()),
            Some(ConnExpress {
                rs: 0xc0a8_010a,
                ..ConnExpress::default()
            }),
            "a new conn's block: its real server alone"
        );
        let e = ConnExpress {
            epoch: [0x0102_0304, 0x0506_0708],
            rs: 0xc0a8_010a,
            sums: [[0x1111, 0x2222], [0x3333, 0x4444]],
            hop: [5, 6],
            pkts: [7, 8],
            bytes: [0x0909_0909, 0x0a0a_0a0a],
        };
        let c = t.get_mut(id).unwrap();
        assert!(c.set_express(&e));
        assert_eq!(c.express(), Some(e));
        let Some(mut b) = c.as_v4() else {
            panic!("an IPv4 conn");
        };
        assert_eq!(b.express_side(1), (e.epoch[1], e.rs, e.sums[1], 6));
        b.set_express_hop(0, 9);
        assert!(!b.express_count(1, 100), "counts were there");
        let got = c.express().unwrap();
        assert_eq!(
            (got.hop, got.pkts, got.bytes[1]),
            ([9, 6], [7, 9], 0x0a0a_0a0a + 100)
        );
        // A count at its most is told (the lane folds before counting).
        let c = t.get_mut(id).unwrap();
        c.set_express(&ConnExpress {
            pkts: [0, u16::MAX],
            ..e
        });
        let b = c.as_v4().unwrap();
        assert!(!b.express_full(0) && b.express_full(1));
        // A side worked out again: its route changes; the other side's
        // and the counts stay.
        let Some(mut b) = c.as_v4() else {
            panic!("an IPv4 conn");
        };
        b.set_express_route(1, 11, [15, 16], 18);
        let want = ConnExpress {
            epoch: [e.epoch[0], 11],
            sums: [e.sums[0], [15, 16]],
            hop: [e.hop[0], 18],
            pkts: [0, u16::MAX],
            ..e
        };
        assert_eq!(c.express(), Some(want));
        let after = t.get(id).map(|c| (c.caddr(), c.vaddr(), c.laddr(), c.v4()));
        assert_eq!(after, before);
        assert_eq!(t.lookup_in(&in_tuple("192.0.2.7", 4321)), Some(id));
        let out = Tuple {
            proto: IPPROTO_TCP,
            saddr: ip("192.168.1.10"),
            sport: 8080,
            daddr: ip("10.0.0.250"),
            dport: 5001,
        };
        assert_eq!(t.lookup_out(&out), Some(id));
        assert_eq!(
            t.lookup_out_v4(IPPROTO_TCP, 0xc0a8_010a, 8080, 0x0a00_00fa, 5001)
                .0,
            Some(id)
        );
        // The block's writers leave the real server, which the reply's
        // lookup compares, as the insert wrote it.
        let c = t.get_mut(id).unwrap();
        assert!(c.set_express(&ConnExpress { rs: 12, ..e }));
        assert_eq!(c.express().map(|x| x.rs), Some(0xc0a8_010a));
        assert_eq!(
            t.lookup_out_v4(IPPROTO_TCP, 0xc0a8_010a, 8080, 0x0a00_00fa, 5001)
                .0,
            Some(id)
        );
        assert_eq!(
            t.lookup_v4_probed(
                t.spot(t.hash_v4(IPPROTO_TCP, 0xc000_0207, 4321, 0x0a00_0001, 80)),
                IPPROTO_TCP,
                0xc000_0207,
                4321,
                0x0a00_0001,
                80
            ),
            Some((id, false))
        );
        // An IPv6 conn has no room: nothing is kept.
        let mut v6 = conn(&d, "2001:db8::7", 1);
        assert!(!v6.set_express(&e));
        assert!(v6.as_v4().is_none());
        assert_eq!(v6.express(), None);
    }

    /// A tuple that is one conn's client tuple and another's reply tuple
    /// (a real server, from the port it serves on, a client of a VIP that
    /// is the other conn's local address) is the client's conn to every
    /// lookup that looks both ways, the lane's and the full path's, as
    /// when the two sides lived in two indexes read in turn, though the
    /// reply's entry came first in their shared line; once the client's
    /// conn is gone it is the reply's.
    #[test]
    fn a_tuple_both_a_clients_and_a_reply_is_the_clients_conn() {
        let mut c = DestConfig::new(ip("192.0.2.7"), 4321);
        c.fwd = FwdMethod::FullNat;
        let rs = Arc::new(Dest::new(&c, 1));
        let d = dest(FwdMethod::FullNat);
        let mut t = ConnTable::with_capacity(64);
        let vip = (ip("10.0.0.1"), 80);
        let served = Conn::new(IPPROTO_TCP, (ip("198.51.100.9"), 1111), vip, 4321, rs.fwd())
            .with_local(vip.0, vip.1);
        let b = t.insert(served, Some(&rs), 0).unwrap();
        let a = t.insert(conn(&d, "192.0.2.7", 4321), Some(&d), 0).unwrap();
        let tuple = in_tuple("192.0.2.7", 4321);
        let both = |t: &ConnTable| {
            let (pr, s, sp, dd, dp) = (IPPROTO_TCP, 0xc000_0207, 4321, 0x0a00_0001, 80);
            let p = t.spot(t.hash_v4(pr, s, sp, dd, dp));
            (
                t.lookup_v4_probed(p, pr, s, sp, dd, dp),
                t.probe_either(&t.probe(&tuple)),
            )
        };
        assert_eq!(
            (t.lookup_in(&tuple), t.lookup_out(&tuple)),
            (Some(a), Some(b))
        );
        assert_eq!(both(&t), (Some((a, false)), Some((a, false))));
        assert!(t.remove(a));
        assert_eq!(both(&t), (Some((b, true)), Some((b, true))));
        assert!(t.remove(b));
        assert_eq!(both(&t), (None, None));
    }

    /// A lookup given the conn `ask_conn` asked for (`lookup_v4_hinted`)
    /// finds what the probe finds, for a client's packet and a server's:
    /// the hinted conn when it is the tuple's, on the side the hint names;
    /// the probe's answer when the hint is another conn's, the other
    /// side's, or none; and nothing through the hint of a conn that has
    /// ended (its slot no longer live, its bytes still the tuple's).
    #[test]
    fn a_hinted_lookup_finds_what_the_probe_finds() {
        type V4 = (u8, u32, u16, u32, u16);
        let d = dest(FwdMethod::FullNat);
        let mut t = ConnTable::with_capacity(64);
        let mut add = |client: &str, lport: u16| {
            let c = conn(&d, client, 4321).with_local(ip("10.0.0.250"), lport);
            t.insert(c, Some(&d), 0).unwrap()
        };
        let (a, b) = (add("192.0.2.7", 5001), add("192.0.2.8", 5002));
        // a's client packet (192.0.2.7:4321 → 10.0.0.1:80) and its server's
        // (192.168.1.10:8080 → 10.0.0.250:5001).
        let client: V4 = (IPPROTO_TCP, 0xc000_0207, 4321, 0x0a00_0001, 80);
        let server: V4 = (IPPROTO_TCP, 0xc0a8_010a, 8080, 0x0a00_00fa, 5001);
        let spot = |t: &ConnTable, (pr, s, sp, d, dp): V4| t.spot(t.hash_v4(pr, s, sp, d, dp));
        let look = |t: &ConnTable, hint: u32, v: V4| {
            let (pr, s, sp, d, dp) = v;
            let probed = t.lookup_v4_probed(spot(t, v), pr, s, sp, d, dp);
            let hinted = t.lookup_v4_hinted(hint, spot(t, v), pr, s, sp, d, dp);
            assert_eq!(hinted, probed, "hint {hint:#x}");
            hinted
        };
        let slot = |id: ConnId| id.index() as u32;
        assert_eq!(
            (t.ask_conn(spot(&t, client)), t.ask_conn(spot(&t, server))),
            (
                Asked {
                    spilled: false,
                    hint: slot(a)
                },
                Asked {
                    spilled: false,
                    hint: slot(a) | OUT_HINT
                }
            ),
            "the client's hint its client tuple's entry, the server's its reply tuple's"
        );
        for hint in [
            NO_HINT,
            slot(a),
            slot(b),
            slot(a) | OUT_HINT,
            slot(b) | OUT_HINT,
        ] {
            assert_eq!(look(&t, hint, client), Some((a, false)));
            assert_eq!(look(&t, hint, server), Some((a, true)));
        }
        assert!(t.remove(a));
        for hint in [slot(a), slot(a) | OUT_HINT, NO_HINT] {
            assert_eq!(look(&t, hint, client), None);
            assert_eq!(look(&t, hint, server), None);
        }
    }

    /// At a table's full load, where some index lines spill: each conn's
    /// client tuple is hinted with its own slot, asked for in its first
    /// line or, where its entry went to the other line, there
    /// (`ask_spilled`); a reply's hint is its own slot or none; and every
    /// hinted lookup finds what the probe finds.
    #[test]
    fn at_full_load_a_spilled_conn_is_hinted_from_its_other_line() {
        let d = dest(FwdMethod::FullNat);
        let n = 1000u32;
        let mut t = ConnTable::with_capacity(n as usize);
        let lip = 0x0a00_00fa;
        let client = |i: u32| (0xc633_0000 + i, 1024 + (i % 7) as u16);
        let mut ids = Vec::new();
        for i in 0..n {
            let (a, p) = client(i);
            let c = conn(&d, &Ipv4Addr::from(a).to_string(), p)
                .with_local(IpAddr::V4(Ipv4Addr::from(lip)), 1025 + i as u16);
            ids.push(t.insert(c, Some(&d), 0).expect("room at the table's size"));
        }
        let hinted = |t: &ConnTable, v: (u8, u32, u16, u32, u16)| {
            let (pr, s, sp, d, dp) = v;
            let p = t.spot(t.hash_v4(pr, s, sp, d, dp));
            let a = t.ask_conn(p);
            let hint = if a.spilled { t.ask_spilled(p) } else { a.hint };
            let got = t.lookup_v4_hinted(hint, p, pr, s, sp, d, dp);
            assert_eq!(got, t.lookup_v4_probed(p, pr, s, sp, d, dp), "{v:?}");
            (a.spilled, hint, got)
        };
        let mut spilled = 0;
        for (i, &id) in (0..n).zip(&ids) {
            let slot = id.index() as u32;
            let (a, p) = client(i);
            let (s, hint, got) = hinted(&t, (IPPROTO_TCP, a, p, 0x0a00_0001, 80));
            assert_eq!((hint, got), (slot, Some((id, false))), "client {i}");
            spilled += usize::from(s);
            let rs = (IPPROTO_TCP, 0xc0a8_010a, 8080, lip, 1025 + i as u16);
            let (_, hint, got) = hinted(&t, rs);
            assert!(
                hint == slot | OUT_HINT || hint == NO_HINT,
                "reply {i}: {hint:#x}"
            );
            assert_eq!(got, Some((id, true)), "reply {i}");
        }
        assert!(spilled > 0, "no client's line spilled at full load");
    }

    /// Only a conn IPv4 throughout is borrowed as one: an IPv6 client,
    /// VIP or local address (NAT64 mixes them) gets None, and the borrow
    /// reads the tuple `v4` reads and the block it wrote.
    #[test]
    fn only_a_conn_ipv4_throughout_is_borrowed_as_ipv4() {
        let d = dest(FwdMethod::FullNat);
        let v6_vip = Conn::new(
            IPPROTO_TCP,
            (ip("192.0.2.7"), 4321),
            (ip("2001:db8::1"), 80),
            8080,
            FwdMethod::FullNat,
        )
        .with_local(ip("10.0.0.250"), 5001);
        let mixed = [
            conn(&d, "2001:db8::7", 1).with_local(ip("10.0.0.250"), 5001),
            v6_vip,
            conn(&d, "192.0.2.7", 4321).with_local(ip("2001:db8::250"), 5001),
        ];
        for mut c in mixed {
            let what = format!("{:?} {:?} {:?}", c.caddr(), c.vaddr(), c.laddr());
            assert!(c.as_v4().is_none(), "{what}");
            assert_eq!(c.v4(), None, "{what}");
        }
        let mut c = conn(&d, "192.0.2.7", 4321).with_local(ip("10.0.0.250"), 5001);
        let v4 = c.v4();
        let Some(mut b) = c.as_v4() else {
            panic!("an IPv4 conn");
        };
        b.set_express_route(0, 3, [1, 2], 5);
        b.set_express_route(1, 3, [3, 4], 6);
        assert_eq!(Some(b.words()), v4);
        // Not in a table: no real server written yet (`set_dest`).
        assert_eq!(b.express_side(1), (3, 0, [3, 4], 6));
        b.set_express_hop(1, 9);
        assert!(b.express_count(1, 100));
        let e = c.express().map(|e| (e.hop, e.pkts, e.bytes));
        assert_eq!(e, Some(([5, 9], [0, 1], [0, 100])));
    }

    #[test]
    fn conn_is_92_bytes_and_a_million_cost_at_most_128_each() {
        assert_eq!(std::mem::size_of::<Conn>(), 92);
        let t = ConnTable::with_capacity(1_000_000);
        let per = t.memory_bytes() as f64 / 1_000_000.0;
        assert!(per <= 128.0, "{per} bytes per conn");
        assert!(per > 92.0);
    }

    /// The bind's IPv4 check of a reply tuple finds what `lookup_out` finds:
    /// the FULLNAT conn whose replies come from its real server to its
    /// local address and port, and nothing for another port or server.
    #[test]
    fn an_ipv4_reply_tuple_finds_its_conn_as_lookup_out_does() {
        let mut t = ConnTable::with_capacity(8);
        let d = dest(FwdMethod::FullNat);
        let c = conn(&d, "192.0.2.7", 4321).with_local(ip("10.0.0.250"), 5001);
        let id = t.insert(c, Some(&d), 0).unwrap();
        let word = |a: &str| match ip(a) {
            IpAddr::V4(v) => u32::from(v),
            IpAddr::V6(_) => unreachable!(),
        };
        let (rs, lip) = (word("192.168.1.10"), word("10.0.0.250"));
        let reply = |sport, dport| Tuple {
            proto: IPPROTO_TCP,
            saddr: ip("192.168.1.10"),
            sport,
            daddr: ip("10.0.0.250"),
            dport,
        };
        assert_eq!(t.lookup_out(&reply(8080, 5001)), Some(id));
        assert_eq!(
            t.lookup_out_v4(IPPROTO_TCP, rs, 8080, lip, 5001).0,
            Some(id)
        );
        assert_eq!(t.lookup_out_v4(IPPROTO_TCP, rs, 8080, lip, 5002).0, None);
        assert_eq!(
            t.lookup_out_v4(IPPROTO_TCP, rs + 1, 8080, lip, 5001).0,
            None
        );
        assert_eq!(t.lookup_out_v4(IPPROTO_UDP, rs, 8080, lip, 5001).0, None);
        assert_eq!(t.lookup_out(&reply(8080, 5002)), None);
    }

    /// The index asks for huge pages: what the table has touched of it
    /// is backed by huge pages where the kernel offers them (a lookup lands
    /// anywhere in them, and 4 KiB pages would cost a page walk nearly
    /// every time).
    #[test]
    fn the_index_is_backed_by_huge_pages() {
        use crate::dpdk::hugepage::{huge_kib, offered};
        let d = dest(FwdMethod::FullNat);
        // An index of 86 MB: past glibc's largest mmap threshold (32 MB),
        // so a fresh mapping whatever the tests before freed.
        let mut t = ConnTable::with_capacity(4_000_000);
        for i in 0..40_000u32 {
            let client = format!("198.51.{}.{}", i / 250, i % 250 + 1);
            t.insert(conn(&d, &client, 1024 + (i % 7) as u16), Some(&d), 0)
                .expect("room");
        }
        // Past each allocation's first page (madvise leaves it out).
        let at = |p: *const u8| p as usize + 4096;
        let kib = [at(t.index.words_ptr())].map(|a| huge_kib(a).expect("a mapping"));
        if offered() {
            assert!(kib.iter().all(|&k| k >= 2048), "KiB of huge pages: {kib:?}");
        } else {
            eprintln!("this kernel offers no transparent huge pages: {kib:?}");
        }
    }

    #[test]
    fn a_sequence_adjustment_lives_and_dies_with_its_conn() {
        let d = dest(FwdMethod::Masq);
        let mut t = ConnTable::with_capacity(1);
        let id = t.insert(conn(&d, "1.1.1.1", 1000), Some(&d), 0).unwrap();
        assert_eq!(t.seq_adj(id), None);
        let adj = SeqAdj {
            s_delta: 7,
            ..SeqAdj::default()
        };
        assert!(t.set_seq_adj(id, adj));
        assert_eq!(t.seq_adj(id), Some(&adj));
        t.seq_adj_mut(id).unwrap().ts_delta = 3;
        assert_eq!(t.seq_adj(id).map(|a| a.ts_delta), Some(3));
        assert!(t.remove(id));
        assert!(!t.set_seq_adj(id, adj));
        // The slot's next conn starts without one.
        let again = t.insert(conn(&d, "2.2.2.2", 1000), Some(&d), 0).unwrap();
        assert_eq!(again, id);
        assert_eq!(t.seq_adj(again), None);
        assert_eq!(t.seq_adj.len(), 0);
    }

    #[test]
    fn insert_and_lookup_by_both_tuples() {
        let d = dest(FwdMethod::Masq);
        let mut t = ConnTable::with_capacity(16);
        let a = t.insert(conn(&d, "192.0.2.1", 1000), Some(&d), 0).unwrap();
        let b = t
            .insert(conn(&d, "2001:db8::1", 1000), Some(&d), 0)
            .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.lookup_in(&in_tuple("192.0.2.1", 1000)), Some(a));
        assert_eq!(t.lookup_in(&in_tuple("192.0.2.1", 1001)), None);
        let v6 = Tuple {
            daddr: ip("10.0.0.1"),
            ..in_tuple("2001:db8::1", 1000)
        };
        assert_eq!(t.lookup_in(&v6), Some(b));
        // NAT reply: real server -> client.
        let reply = Tuple {
            proto: IPPROTO_TCP,
            saddr: ip("192.168.1.10"),
            sport: 8080,
            daddr: ip("192.0.2.1"),
            dport: 1000,
        };
        assert_eq!(t.lookup_out(&reply), Some(a));
        assert_eq!(t.lookup_out(&Tuple { sport: 80, ..reply }), None);
        let c = t.get(a).unwrap();
        assert_eq!(
            (c.caddr(), c.cport(), c.vaddr(), c.vport()),
            (ip("192.0.2.1"), 1000, ip("10.0.0.1"), 80)
        );
        assert_eq!(
            (c.daddr(), c.dport(), c.state_name()),
            (ip("192.168.1.10"), 8080, "NONE")
        );
        assert_eq!(
            (d.activeconns(), d.inactconns()),
            (0, 2),
            "new conns are inactive"
        );
    }

    #[test]
    fn fullnat_and_dr_out_tuples() {
        let fnat = dest(FwdMethod::FullNat);
        let dr = dest(FwdMethod::DirectRoute);
        let mut t = ConnTable::with_capacity(4);
        let f = t
            .insert(
                conn(&fnat, "192.0.2.1", 1000).with_local(ip("10.1.0.1"), 5000),
                Some(&fnat),
                0,
            )
            .unwrap();
        let g = t
            .insert(conn(&dr, "192.0.2.2", 1000), Some(&dr), 0)
            .unwrap();
        let reply = Tuple {
            proto: IPPROTO_TCP,
            saddr: ip("192.168.1.10"),
            sport: 8080,
            daddr: ip("10.1.0.1"),
            dport: 5000,
        };
        assert_eq!(t.lookup_out(&reply), Some(f));
        assert_eq!(t.lookup_in(&in_tuple("192.0.2.1", 1000)), Some(f));
        let dr_reply = Tuple {
            proto: IPPROTO_TCP,
            saddr: ip("10.0.0.1"),
            sport: 80,
            daddr: ip("192.0.2.2"),
            dport: 1000,
        };
        assert_eq!(
            t.lookup_out(&dr_reply),
            Some(g),
            "DR replies come from the VIP"
        );
        assert_eq!(t.get(f).unwrap().laddr(), ip("10.1.0.1"));
    }

    /// A worker's conns hold their dest once between them, not an `Arc`
    /// clone each (`dest_refs.rs`): a thousand conns on it add one count,
    /// each finds it (and its address) through the table, and the table
    /// lets it go at the fold after the last conn ends.
    #[test]
    fn a_tables_conns_hold_their_dest_once_and_let_it_go_after_the_last() {
        let d = dest(FwdMethod::FullNat);
        let mut t = ConnTable::with_capacity(2048);
        let ids: Vec<ConnId> = (0..1000)
            .map(|i| {
                t.insert(conn(&d, "192.0.2.1", 1000 + i), Some(&d), 0)
                    .unwrap()
            })
            .collect();
        assert_eq!(Arc::strong_count(&d), 2, "one count for the table");
        for &id in &ids {
            let c = t.get(id).unwrap();
            assert!(c.dest().is_some_and(|x| Arc::ptr_eq(x, &d)));
            assert_eq!(c.daddr(), d.addr());
        }
        assert_eq!(d.inactconns(), 1000);
        for &id in &ids[1..] {
            assert!(t.remove(id));
        }
        t.fold_dest_counts();
        assert_eq!(Arc::strong_count(&d), 2, "one conn still holds it");
        assert!(t.remove(ids[0]));
        assert_eq!(Arc::strong_count(&d), 2, "held until the fold");
        t.fold_dest_counts();
        assert_eq!(Arc::strong_count(&d), 1, "let go");
        assert_eq!((d.activeconns(), d.inactconns()), (0, 0));
    }

    /// A conn the table refuses holds nothing of its dest afterwards.
    #[test]
    fn a_refused_conn_leaves_no_hold_on_its_dest() {
        let (d, other) = (dest(FwdMethod::Masq), dest(FwdMethod::Masq));
        let mut t = ConnTable::with_capacity(1);
        let a = t.insert(conn(&d, "192.0.2.1", 1), Some(&d), 0).unwrap();
        let refused = t.insert(conn(&other, "192.0.2.1", 2), Some(&other), 0);
        assert_eq!(refused, Err(TableFull));
        t.fold_dest_counts();
        assert_eq!(Arc::strong_count(&other), 1);
        assert_eq!(other.inactconns(), 0);
        assert!(t.remove(a));
        t.fold_dest_counts();
        assert_eq!(Arc::strong_count(&d), 1);
    }

    #[test]
    fn remove_unbinds_and_frees_the_slot() {
        let d = dest(FwdMethod::Masq);
        let mut t = ConnTable::with_capacity(2);
        let a = t.insert(conn(&d, "192.0.2.1", 1000), Some(&d), 0).unwrap();
        let mut seen = None;
        assert!(t.remove_with(a, |id, c| seen = Some((id, c.cport()))));
        assert_eq!(seen, Some((a, 1000)));
        assert!(!t.remove(a));
        assert_eq!(t.get(a).map(|c| c.cport()), None);
        assert_eq!(t.lookup_in(&in_tuple("192.0.2.1", 1000)), None);
        assert_eq!((t.len(), d.inactconns()), (0, 0));
        let b = t.insert(conn(&d, "192.0.2.2", 1), Some(&d), 0).unwrap();
        assert_eq!(b, a, "the freed slot is reused");
        assert_eq!(
            t.expire(1_000_000, usize::MAX),
            1,
            "the removed conn left the wheel"
        );
    }

    #[test]
    fn a_full_table_refuses_and_counts() {
        let d = dest(FwdMethod::Masq);
        let mut t = ConnTable::with_capacity(2);
        t.insert(conn(&d, "192.0.2.1", 1), Some(&d), 0).unwrap();
        t.insert(conn(&d, "192.0.2.1", 2), Some(&d), 0).unwrap();
        assert!(t.is_full());
        assert_eq!(
            t.insert(conn(&d, "192.0.2.1", 3), Some(&d), 0),
            Err(TableFull)
        );
        assert_eq!((t.full_drops(), t.len(), d.inactconns()), (1, 2, 2));
        assert!(
            t.lookup_in(&in_tuple("192.0.2.1", 1)).is_some(),
            "nothing was evicted"
        );
    }

    #[test]
    fn expiry_is_on_time_and_a_touched_conn_lives() {
        let d = dest(FwdMethod::Masq);
        let to = Timeouts::new();
        let mut t = ConnTable::with_capacity(8);
        let t0 = 1_000_000;
        let a = t.insert(conn(&d, "192.0.2.1", 1), Some(&d), t0).unwrap();
        let b = t.insert(conn(&d, "192.0.2.1", 2), Some(&d), t0).unwrap();
        assert_eq!(t.get(a).unwrap().expires_in(t0), 3000);
        // b gets its SYN: SYN_RECV, 60 s.
        assert!(t.on_packet(b, Direction::Input, SYN, t0 + 1000, &to));
        assert_eq!(t.expire(t0 + 2999, usize::MAX), 0);
        assert_eq!(
            t.expire(t0 + 3000 + 15, usize::MAX),
            1,
            "a goes within one wheel tick"
        );
        assert!(t.get(a).is_none() && t.get(b).is_some());
        // b is kept alive by a packet every 50 s for 10 minutes.
        let mut now = t0 + 1000;
        for _ in 0..12 {
            now += 50_000;
            assert_eq!(t.expire(now, usize::MAX), 0);
            assert!(t.on_packet(b, Direction::Input, ACK, now, &to));
        }
        assert_eq!(t.get(b).unwrap().state_name(), "ESTABLISHED");
        assert_eq!(t.expire(now + 900_000 - 1, usize::MAX), 0);
        assert_eq!(t.expire(now + 900_000 + 15, usize::MAX), 1);
        assert!(t.is_empty());
        assert_eq!((d.activeconns(), d.inactconns()), (0, 0));
    }

    #[test]
    fn a_31_day_timeout_runs_its_whole_length() {
        // `--set 2678400 0 0`: longer than a signed 32-bit millisecond count
        // (24.8 days) can say.
        let d = dest(FwdMethod::Masq);
        let mut to = Timeouts::new();
        to.set(2_678_400, 0, 0).unwrap();
        let mut t = ConnTable::with_capacity(2);
        let t0 = 5_000_000_000u64;
        let a = t.insert(conn(&d, "192.0.2.1", 1), Some(&d), t0).unwrap();
        t.on_packet(a, Direction::Input, SYN, t0, &to);
        t.on_packet(a, Direction::Input, ACK, t0, &to);
        assert_eq!(t.get(a).unwrap().expires_in(t0), 2_678_400_000);
        let day = 86_400_000u64;
        assert_eq!(t.expire(t0 + 25 * day, usize::MAX), 0);
        assert_eq!(t.get(a).unwrap().expires_in(t0 + 25 * day), 6 * day);
        assert_eq!(t.expire(t0 + 31 * day - 1, usize::MAX), 0);
        assert_eq!(t.expire(t0 + 31 * day + 15, usize::MAX), 1);
    }

    #[test]
    fn a_timer_found_late_is_still_due() {
        // A worker that got round to its wheel hours late still ends the conn
        // (a late timer must not read as one far in the future).
        let d = dest(FwdMethod::Masq);
        let mut t = ConnTable::with_capacity(2);
        let a = t.insert(conn(&d, "192.0.2.1", 1), Some(&d), 0).unwrap();
        assert_eq!(t.get(a).unwrap().expires_in(3 * 3_600_000), 0);
        assert_eq!(t.expire(3 * 3_600_000, usize::MAX), 1);
    }

    #[test]
    fn a_shorter_timeout_refiles_the_timer() {
        let d = dest(FwdMethod::Masq);
        let to = Timeouts::new();
        let mut t = ConnTable::with_capacity(2);
        let a = t.insert(conn(&d, "192.0.2.1", 1), Some(&d), 0).unwrap();
        t.on_packet(a, Direction::Input, SYN, 0, &to);
        t.on_packet(a, Direction::Input, ACK, 0, &to);
        t.on_packet(a, Direction::Input, RST, 1000, &to);
        assert_eq!(t.get(a).unwrap().state_name(), "CLOSE");
        assert_eq!(
            t.expire(1000 + 10_000 + 15, usize::MAX),
            1,
            "CLOSE's 10 s, not ESTABLISHED's 900"
        );
    }

    #[test]
    fn dest_counts_follow_the_state_and_nooutput() {
        let nat = dest(FwdMethod::Masq);
        let to = Timeouts::new();
        let mut t = ConnTable::with_capacity(4);
        let a = t.insert(conn(&nat, "192.0.2.1", 1), Some(&nat), 0).unwrap();
        let counts = |d: &Dest| (d.activeconns(), d.inactconns());
        assert_eq!(counts(&nat), (0, 1));
        t.on_packet(a, Direction::Input, SYN, 1, &to);
        assert_eq!(counts(&nat), (1, 0), "SYN_RECV is active");
        t.on_packet(a, Direction::Output, SYN | ACK, 2, &to);
        t.on_packet(a, Direction::Input, ACK, 3, &to);
        assert_eq!(
            (counts(&nat), t.get(a).unwrap().state_name()),
            ((1, 0), "ESTABLISHED")
        );
        t.on_packet(a, Direction::Input, FIN | ACK, 4, &to);
        assert_eq!(
            (counts(&nat), t.get(a).unwrap().state_name()),
            ((0, 1), "CLOSE_WAIT")
        );
        assert_eq!(t.get(a).unwrap().timeout_ms(), 60_000);
        t.on_packet(a, Direction::Output, FIN | ACK, 5, &to);
        assert_eq!(t.get(a).unwrap().state_name(), "TIME_WAIT");
        assert_eq!(t.expire(5 + 120_000 + 15, usize::MAX), 1);
        assert_eq!(counts(&nat), (0, 0));

        // DR: INPUT_ONLY until an output packet shows up.
        let dr = dest(FwdMethod::DirectRoute);
        let b = t.insert(conn(&dr, "192.0.2.2", 1), Some(&dr), 0).unwrap();
        t.on_packet(b, Direction::Input, SYN, 1, &to);
        t.on_packet(b, Direction::Input, ACK, 2, &to);
        t.on_packet(b, Direction::Input, FIN | ACK, 3, &to);
        assert_eq!(
            t.get(b).unwrap().state_name(),
            "FIN_WAIT",
            "INPUT_ONLY fin from ES"
        );
        assert_ne!(t.get(b).unwrap().flags() & flags::NOOUTPUT, 0);
        t.on_packet(b, Direction::Output, ACK, 4, &to);
        assert_eq!(t.get(b).unwrap().flags() & flags::NOOUTPUT, 0);
        assert_eq!(counts(&dr), (0, 1));
    }

    #[test]
    fn udp_is_never_active_and_one_packet_is_not_indexed() {
        let d = dest(FwdMethod::Masq);
        let to = Timeouts::new();
        let mut t = ConnTable::with_capacity(4);
        let u = Conn::new(
            IPPROTO_UDP,
            (ip("192.0.2.1"), 53),
            (ip("10.0.0.1"), 53),
            53,
            d.fwd(),
        );
        let a = t.insert(u.clone(), Some(&d), 0).unwrap();
        t.on_packet(a, Direction::Input, SYN, 0, &to);
        t.on_packet(a, Direction::Output, 0, 0, &to);
        let c = t.get(a).unwrap();
        assert_eq!(
            (c.state_name(), c.timeout_ms(), d.activeconns()),
            ("UDP", 300_000, 0)
        );
        let o = t.insert(u.with_one_packet(), Some(&d), 0).unwrap();
        let tup = Tuple {
            proto: IPPROTO_UDP,
            saddr: ip("192.0.2.1"),
            sport: 53,
            daddr: ip("10.0.0.1"),
            dport: 53,
        };
        assert_eq!(t.lookup_in(&tup), Some(a));
        assert!(t.on_packet(o, Direction::Input, 0, 0, &to));
        assert_eq!(
            t.expire(TICK, usize::MAX),
            1,
            "the one-packet conn goes at once"
        );
        assert!(t.get(o).is_none() && t.get(a).is_some());
    }

    const TICK: Millis = crate::ipvs::wheel::TICK_MS;

    #[test]
    fn churn_never_grows_anything() {
        let d = dest(FwdMethod::Masq);
        let n = 1000;
        let mut t = ConnTable::with_capacity(n);
        let mem = t.memory_bytes();
        let mut now = 0;
        let mut port = 0u32;
        for _round in 0..40 {
            while !t.is_full() {
                port += 1;
                let c = conn(&d, "192.0.2.1", port as u16).with_local(ip("10.1.0.1"), port as u16);
                t.insert(c, Some(&d), now).unwrap();
            }
            now += 3000 + TICK;
            assert_eq!(t.expire(now, usize::MAX), n);
        }
        assert_eq!((t.capacity(), t.memory_bytes(), t.len()), (n, mem, 0));
        assert_eq!(d.inactconns(), 0);
    }

    #[test]
    fn expire_respects_the_budget() {
        let d = dest(FwdMethod::Masq);
        let mut t = ConnTable::with_capacity(10);
        for p in 0..10 {
            t.insert(conn(&d, "192.0.2.1", p), Some(&d), 0).unwrap();
        }
        assert_eq!(t.expire(10_000, 4), 4);
        assert_eq!(t.expire(10_000, 4), 4);
        assert_eq!(t.expire(10_000, 4), 2);
        assert_eq!(t.iter().count(), 0);
    }

    #[test]
    fn sctp_follows_its_own_states_active_only_while_established() {
        use crate::ipvs::proto_sctp::SctpEvent as E;
        let d = dest(FwdMethod::Masq);
        let to = Timeouts::new();
        let mut t = ConnTable::with_capacity(4);
        let a = t
            .insert(
                Conn::new(
                    IPPROTO_SCTP,
                    (ip("192.0.2.1"), 5000),
                    (ip("10.0.0.1"), 3868),
                    3868,
                    d.fwd(),
                ),
                Some(&d),
                0,
            )
            .unwrap();
        let mut seen = Vec::new();
        for (dir, ev) in [
            (Direction::Input, E::Init),
            (Direction::Output, E::InitAck),
            (Direction::Input, E::CookieEcho),
            (Direction::Output, E::CookieAck),
            (Direction::Input, E::Shutdown),
        ] {
            t.on_packet(a, dir, ev as u8, 0, &to);
            let c = t.get(a).unwrap();
            seen.push((c.state_name(), c.timeout_ms(), d.activeconns()));
        }
        // Timeouts from ip_vs_proto_sctp.c's table: INIT1 4 s, the
        // handshake and shutdown states 61 s, ESTABLISHED 15 min.
        assert_eq!(
            seen,
            [
                ("INIT1", 4_000, 0),
                ("C-SENT", 61_000, 0),
                ("C-REPLIED", 61_000, 0),
                ("ESTABLISHED", 900_000, 1),
                ("S-RECEIVED", 61_000, 0),
            ]
        );
        assert_eq!(d.inactconns(), 1);
    }

    #[test]
    fn templates_are_only_found_as_templates() {
        let d = dest(FwdMethod::DirectRoute);
        let mut t = ConnTable::with_capacity(4);
        let key = TemplateKey {
            proto: IPPROTO_TCP,
            client_net: ip("192.0.2.0"),
            vaddr: ip("10.0.0.1"),
            vport: 80,
        };
        let ct = t
            .insert(Conn::template(&key, &d, 80, 360_000), Some(&d), 0)
            .unwrap();
        assert_eq!(t.lookup_template(&key), Some(ct));
        assert_eq!(t.lookup_in(&in_tuple("192.0.2.0", 0)), None);
        assert_eq!((d.persistconns(), d.inactconns()), (1, 0));
        let c = t.get(ct).unwrap();
        assert_eq!(
            (c.state_name(), c.is_active(), c.expires_in(0)),
            ("NONE", false, 360_000)
        );
        t.invalidate_template(ct);
        assert_eq!(t.lookup_template(&key), None);
        assert_eq!(
            (t.get(ct).unwrap().vport(), t.get(ct).unwrap().dport()),
            (0xffff, 0xffff)
        );
        assert_eq!(t.expire(360_000 + TICK, usize::MAX), 1);
        assert_eq!(d.persistconns(), 0);
    }
}
