//! Per-worker counters: written by one worker, read by control threads.
//!
//! Each counter has a single writer, so an increment is a relaxed load and
//! store (a plain `add` on x86), never a locked read-modify-write.
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }
    #[inline]
    pub fn inc(&self) {
        self.add(1)
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    /// For gauges the single writer keeps current (table sizes).
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed)
    }
}

/// Why a packet was dropped. Every drop in rvs is counted under one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Truncated or malformed header, bad checksum, bad length.
    BadHeader,
    /// Not addressed to this port's MAC or to an address rvs owns.
    NotForUs,
    /// A protocol or feature rvs does not handle (VLAN, fragments, ...).
    Unsupported,
    /// No route to the destination.
    NoRoute,
    /// The next hop did not answer ARP/ND in time.
    NoNeighbour,
    /// Too many packets already wait for the next hop's resolution.
    NeighbourQueueFull,
    /// The tx queue did not take the packet.
    TxFull,
    /// A redirect ring to another worker was full.
    RingFull,
    /// No mbuf to build a packet rvs originates.
    NoBuffer,
    /// A TCP segment other than a SYN (an SCTP packet other than an INIT)
    /// for a virtual service, with no conn.
    NoConn,
    /// The service has no real server that can take a new conn.
    NoDest,
    /// The worker's conn table is full of conns that are not embryonic
    /// (new conns only; the oldest embryonic conn is evicted first).
    ConnTableFull,
    /// FULLNAT: no local address and port free for the real server, or
    /// none of the service's local addresses is on the port (-F) the real
    /// server is reached through.
    NoLocalAddr,
    /// From a source no host may use (RFC 1812 5.3.7, RFC 4291, RFC 4861
    /// 7.1): a broadcast, multicast, zero or loopback sender address or MAC,
    /// or one of rvs's own addresses; or to a destination none may (0/8,
    /// 127/8, ::1, interface-local multicast), as the kernel's routing
    /// refuses them (`src/netstack/rxfilter.rs`).
    Martian,
    /// A persistent service with `--pe sip` got a packet opening a conn
    /// without a SIP Call-ID (or not UDP), which the kernel drops too.
    NoCallId,
    /// A fragment other than the first whose datagram has no tracked
    /// first fragment on this worker: it came first, the first was lost or
    /// dropped, or the 30 s the first fragment's decision is kept ran out.
    FragNoFirst,
    /// An IPv6 extension-header chain rvs does not follow: more than eight
    /// headers, or a routing header with segments left.
    IpExtHeader,
    /// Larger than the egress MTU and not to be fragmented (IPv4 with DF,
    /// or IPv6): answered with ICMP fragmentation needed / packet too big
    /// (unless the ICMP rate limits hold it back) and dropped.
    TooBig,
    /// A unicast frame for another host's MAC (the ports run promiscuous),
    /// as the kernel drops PACKET_OTHERHOST, unless the port is configured
    /// with `accept_other_mac`.
    OtherHost,
    /// An ARP reply or neighbour advertisement about an address rvs did not
    /// ask for and does not know: not learned (entries come only from
    /// answers to rvs's own requests and from requests addressed to it).
    Unsolicited,
    /// A packet that would open a conn from a source past its new-conn
    /// rate (`[limits] source_rate`).
    SourceRateLimit,
    /// A packet that would open a conn of a service holding its most
    /// (`[[limits.service]] max_conns`).
    ServiceConnLimit,
    /// A packet that would open a conn, dropped by the kernel's drop_packet
    /// defence (`[defense] drop_packet`).
    DefenseDropPacket,
    /// An ACK to a SYN-proxy service with no conn whose acknowledgement is
    /// not a cookie this worker minted in the last two minutes.
    SynproxyBadCookie,
    /// The SYN proxy could not hold a segment: the one a conn keeps while
    /// its real server answers is taken, or the worker's handshakes in
    /// progress fill its table.
    SynproxyQueueFull,
    /// A segment that does not fit the SYN proxy's handshake with the real
    /// server (a SYN-ACK acknowledging something else, a SYN from the
    /// client, anything but SYN-ACK or RST from the server).
    SynproxyHandshake,
    /// To an address this director holds as a VRRP backup: the master
    /// answers for it.
    VrrpBackup,
    /// A sync datagram that is not a version 1 message, or whose size,
    /// checksum or entries are broken (the rest of it is dropped).
    SyncBadMessage,
    /// A sync message for another syncid than the backup's (non-zero).
    SyncWrongSyncid,
    /// A synced entry the backup skips: an unknown mandatory option, a
    /// protocol or state it does not know, persistence-engine data, a
    /// forwarding method it has no conn for.
    SyncSkipped,
    /// A synced entry whose service or real server the backup lacks.
    SyncNoDest,
    /// A synced FULLNAT conn whose local port is another worker's slice
    /// than its client's: master and backup run different worker counts.
    SyncWrongWorker,
    /// A synced FULLNAT conn whose local port a conn here already uses.
    SyncPortTaken,
    /// A new NAT conn whose reply tuple found its bucket of the NAT reply
    /// index full (`dataplane::nat_replies`): refused, as with a full table.
    NatIndexFull,
}

impl DropReason {
    pub const ALL: [DropReason; 34] = [
        DropReason::BadHeader,
        DropReason::NotForUs,
        DropReason::Unsupported,
        DropReason::NoRoute,
        DropReason::NoNeighbour,
        DropReason::NeighbourQueueFull,
        DropReason::TxFull,
        DropReason::RingFull,
        DropReason::NoBuffer,
        DropReason::NoConn,
        DropReason::NoDest,
        DropReason::ConnTableFull,
        DropReason::NoLocalAddr,
        DropReason::Martian,
        DropReason::NoCallId,
        DropReason::FragNoFirst,
        DropReason::IpExtHeader,
        DropReason::TooBig,
        DropReason::OtherHost,
        DropReason::Unsolicited,
        DropReason::SourceRateLimit,
        DropReason::ServiceConnLimit,
        DropReason::DefenseDropPacket,
        DropReason::SynproxyBadCookie,
        DropReason::SynproxyQueueFull,
        DropReason::SynproxyHandshake,
        DropReason::VrrpBackup,
        DropReason::SyncBadMessage,
        DropReason::SyncWrongSyncid,
        DropReason::SyncSkipped,
        DropReason::SyncNoDest,
        DropReason::SyncWrongWorker,
        DropReason::SyncPortTaken,
        DropReason::NatIndexFull,
    ];

    /// The label value operators filter on.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::BadHeader => "bad_header",
            DropReason::NotForUs => "not_for_us",
            DropReason::Unsupported => "unsupported",
            DropReason::NoRoute => "no_route",
            DropReason::NoNeighbour => "no_neighbour",
            DropReason::NeighbourQueueFull => "neighbour_queue_full",
            DropReason::TxFull => "tx_full",
            DropReason::RingFull => "ring_full",
            DropReason::NoBuffer => "no_buffer",
            DropReason::NoConn => "no_conn",
            DropReason::NoDest => "no_dest",
            DropReason::ConnTableFull => "conn_table_full",
            DropReason::NoLocalAddr => "no_local_addr",
            DropReason::Martian => "martian",
            DropReason::NoCallId => "no_call_id",
            DropReason::FragNoFirst => "frag_no_first",
            DropReason::IpExtHeader => "ip_ext_header",
            DropReason::TooBig => "too_big",
            DropReason::OtherHost => "other_host",
            DropReason::Unsolicited => "unsolicited",
            DropReason::SourceRateLimit => "source_rate_limit",
            DropReason::ServiceConnLimit => "service_conn_limit",
            DropReason::DefenseDropPacket => "defense_drop_packet",
            DropReason::SynproxyBadCookie => "synproxy_bad_cookie",
            DropReason::SynproxyQueueFull => "synproxy_queue_full",
            DropReason::SynproxyHandshake => "synproxy_handshake",
            DropReason::VrrpBackup => "vrrp_backup",
            DropReason::SyncBadMessage => "sync_bad_message",
            DropReason::SyncWrongSyncid => "sync_wrong_syncid",
            DropReason::SyncSkipped => "sync_skipped",
            DropReason::SyncNoDest => "sync_no_dest",
            DropReason::SyncWrongWorker => "sync_wrong_worker",
            DropReason::SyncPortTaken => "sync_port_taken",
            DropReason::NatIndexFull => "nat_index_full",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Why a worker handed a packet to another over its ring. Where the port
/// spreads by RSS, rvs-native flows never are (DESIGN.md, "Per-lcore
/// ownership"); these are the cases that still are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RedirectReason {
    /// The rx port has no RSS rvs can read (af_packet, tap, one queue), or
    /// does not hash this protocol's ports: the owner is found by the
    /// client's network or the local port's slice.
    NoRss,
    /// A persistent service: its conns live on the worker of the client's
    /// network, where its templates are; and a reply to a conn of one.
    ClientOwned,
    /// A fragment or an ICMP error: the device hashed other fields than
    /// its flow's packets carry, so it landed on another queue.
    Derived,
    /// A sync message relayed to the other workers owning its conns.
    Sync,
    /// A NAT reply: its conn lives where RSS put the client's packets,
    /// found by the reply tuple (`dataplane::nat_replies`).
    NatReply,
}

impl RedirectReason {
    pub const ALL: [RedirectReason; 5] = [
        RedirectReason::NoRss,
        RedirectReason::ClientOwned,
        RedirectReason::Derived,
        RedirectReason::Sync,
        RedirectReason::NatReply,
    ];

    /// The `reason` label.
    pub fn name(self) -> &'static str {
        match self {
            RedirectReason::NoRss => "no_rss",
            RedirectReason::ClientOwned => "client_owned",
            RedirectReason::Derived => "derived",
            RedirectReason::Sync => "sync",
            RedirectReason::NatReply => "nat_reply",
        }
    }
}

/// One local address of one service as one worker uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaddrUse {
    /// The service's id (`Service::id`).
    pub service: u64,
    pub laddr: std::net::IpAddr,
    /// Ports of this worker's slice held by conns.
    pub in_use: u32,
    /// Candidate ports this worker found taken (DPVS's nport_conflict).
    pub conflicts: u64,
    /// Ports of this worker's slice of the address.
    pub ports: u32,
}

/// A counter per drop reason (std gives arrays a `Default` only up to 32).
#[derive(Debug)]
struct DropCounters([Counter; DropReason::ALL.len()]);

impl Default for DropCounters {
    fn default() -> DropCounters {
        DropCounters(std::array::from_fn(|_| Counter::default()))
    }
}

/// What one worker counts.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    pub rx_packets: Counter,
    pub tx_packets: Counter,
    /// Packets rvs took in and used up without a drop (ARP replies learned, ...).
    pub consumed: Counter,
    drops: DropCounters,
    pub arp_replies: Counter,
    pub arp_requests: Counter,
    pub nd_adverts: Counter,
    pub nd_solicits: Counter,
    pub echo_replies: Counter,
    pub gratuitous: Counter,
    /// ARP or NA from another host claiming an address rvs owns.
    pub address_conflicts: Counter,
    /// Packets handed to the worker that owns their flow, over its ring.
    pub redirected: Counter,
    /// The same by reason, counted where the worker decides (one a full
    /// ring then drops counts here and as `ring_full`).
    redirects: [Counter; RedirectReason::ALL.len()],
    /// Packets the express lane forwarded (established IPv4 conns'),
    /// published with the stats once a second.
    pub express: Counter,
    /// Conns (and templates) in this worker's table, and its capacity.
    pub conns: Counter,
    pub conn_capacity: Counter,
    /// FULLNAT local ports this worker holds, per service and local
    /// address; the worker publishes it once a second.
    pub laddr: arc_swap::ArcSwap<Vec<LaddrUse>>,
    /// Polls that received at least one packet, and polls that received none.
    pub busy_polls: Counter,
    pub idle_polls: Counter,
    /// The exception path: frames handed to the host's kernel, and frames
    /// from it sent on (or answered, for its ARP and ND).
    pub to_host: Counter,
    pub from_host: Counter,
    /// IPv4 datagrams over the egress MTU sent on in fragments, and the
    /// fragments made of them (the kernel's FragOKs and FragCreates).
    pub frag_ok: Counter,
    pub frag_creates: Counter,
    /// ICMP errors rvs sent (fragmentation needed, packet too big, time
    /// exceeded); echo replies count in `echo_replies`.
    pub icmp_errors: Counter,
    /// ICMP messages rvs did not send for its rate limits: the global
    /// budget (icmp_msgs_per_sec), or the one per destination
    /// (icmp_ratelimit); the kernel's RateLimitGlobal and RateLimitHost.
    pub icmp_limited_global: Counter,
    pub icmp_limited_host: Counter,
    /// Conn-table pressure: evictions, drop_entry, the defence levels.
    pub pressure: PressureCounters,
    pub sync: SyncCounters,
}

impl WorkerCounters {
    #[inline]
    pub fn dropped(&self, reason: DropReason) {
        self.drops.0[reason.index()].inc();
    }
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops.0[reason.index()].get()
    }
    pub fn total_drops(&self) -> u64 {
        DropReason::ALL.iter().map(|r| self.drops(*r)).sum()
    }
    #[inline]
    pub fn redirect(&self, reason: RedirectReason) {
        self.redirects[reason as usize].inc();
    }
    pub fn redirects(&self, reason: RedirectReason) -> u64 {
        self.redirects[reason as usize].get()
    }
}

/// What a worker's pressure handling (`dataplane::pressure`) counts (in `WorkerCounters`).
#[derive(Debug, Default)]
pub struct PressureCounters {
    /// Embryonic conns evicted to make room in a full table.
    pub evicted: Counter,
    /// Embryonic conns evicted for their FULLNAT local ports.
    pub evicted_ports: Counter,
    /// Conns (and templates) drop_entry removed.
    pub dropped_entries: Counter,
    /// The defence sysctls' current values (gauges, 0 to 3).
    pub drop_entry: Counter,
    pub drop_packet: Counter,
    pub secure_tcp: Counter,
}

/// The sync daemon on one worker (`dataplane::sync`): what it sent and
/// received.
#[derive(Debug, Default)]
pub struct SyncCounters {
    pub msgs_sent: Counter,
    pub conns_sent: Counter,
    /// The messages' bytes (the UDP payloads).
    pub bytes_sent: Counter,
    /// Datagrams this worker took off its port (not those relayed to it).
    pub msgs_received: Counter,
    /// Conns and templates installed or updated in this worker's table.
    pub conns_received: Counter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reasons_are_counted_apart() {
        let c = WorkerCounters::default();
        c.dropped(DropReason::NoRoute);
        c.dropped(DropReason::NoRoute);
        c.dropped(DropReason::NoBuffer);
        assert_eq!(c.drops(DropReason::NoRoute), 2);
        assert_eq!(c.drops(DropReason::NoBuffer), 1);
        assert_eq!(c.drops(DropReason::BadHeader), 0);
        assert_eq!(c.total_drops(), 3);
        let names: std::collections::HashSet<_> =
            DropReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), DropReason::ALL.len());
    }
}
