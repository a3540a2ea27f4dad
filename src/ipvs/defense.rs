//! The kernel's defence strategies against a conn table running out of
//! room: drop_entry, drop_packet and secure_tcp with their automatic levels
//! (ip_vs_ctl.c update_defense_level), drop_packet's 1-in-N drop of new
//! conns (ip_vs_todrop), drop_entry's choice of conns to remove
//! (ip_vs_conn.c todrop_entry; the scan itself is `ConnTable::drop_entry_scan`)
//! and secure_tcp's TCP state table (ip_vs_proto_tcp.c tcp_states_dos).
//!
//! The kernel measures free memory in pages against `amemthresh`; rvs's
//! conns live in a fixed table per worker, so the resource that runs out is
//! that table's free slots, and each worker judges its own table once a
//! second. Everything else follows the kernel's arithmetic.
use super::proto::{tcp_flags, Direction, TcpState, Timeouts, TCP_STATES};

/// What `/proc/sys/net/ipv4/vs/amemthresh` defaults to (pages there, free
/// conn-table slots here).
pub const DEFAULT_AMEMTHRESH: u32 = 1024;
/// `am_droprate`'s default: drop_packet=3 drops one new conn in 10.
pub const DEFAULT_AM_DROPRATE: u32 = 10;

/// The values of the kernel's defence sysctls, as rvsd's `[defense]` sets
/// them. A strategy's level: 0 never, 1 automatic and off now (it turns to
/// 2 when the table runs short), 2 automatic and on now (back to 1 when it
/// recovers), 3 always.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefenseConfig {
    /// Free slots of a worker's table below which it counts as short.
    pub amemthresh: u32,
    /// drop_packet=3 drops one new conn in `am_droprate`.
    pub am_droprate: u32,
    pub drop_entry: u8,
    pub drop_packet: u8,
    pub secure_tcp: u8,
}

impl Default for DefenseConfig {
    fn default() -> Self {
        DefenseConfig {
            amemthresh: DEFAULT_AMEMTHRESH,
            am_droprate: DEFAULT_AM_DROPRATE,
            drop_entry: 0,
            drop_packet: 0,
            secure_tcp: 0,
        }
    }
}

/// One worker's defence state (the kernel keeps one per netns).
#[derive(Debug, Clone)]
pub struct Defense {
    amemthresh: i64,
    am_droprate: i64,
    /// The sysctls, which the automatic levels move between 1 and 2.
    drop_entry: u8,
    drop_packet: u8,
    secure_tcp: u8,
    old_secure_tcp: u8,
    dropentry: bool,
    drop_rate: i64,
    drop_counter: i64,
    /// Which TCP state table is in use (tcp_timeout_change).
    secure_on: bool,
}

impl Defense {
    /// The state right after the sysctls are written, before the first
    /// judgement (the caller runs `update` then, as the kernel's sysctl
    /// handler does).
    pub fn new(cfg: &DefenseConfig) -> Defense {
        Defense {
            amemthresh: i64::from(cfg.amemthresh),
            am_droprate: i64::from(cfg.am_droprate),
            drop_entry: cfg.drop_entry.min(3),
            drop_packet: cfg.drop_packet.min(3),
            secure_tcp: cfg.secure_tcp.min(3),
            old_secure_tcp: 0,
            dropentry: false,
            drop_rate: 0,
            drop_counter: 0,
            secure_on: false,
        }
    }

    /// update_defense_level, with `free` slots left in the worker's table
    /// where the kernel counts free pages.
    pub fn update(&mut self, free: u64) {
        let avail = i64::try_from(free).unwrap_or(i64::MAX);
        let nomem = avail < self.amemthresh;

        match self.drop_entry {
            0 => self.dropentry = false,
            1 => {
                self.dropentry = nomem;
                if nomem {
                    self.drop_entry = 2;
                }
            }
            2 => {
                self.dropentry = nomem;
                if !nomem {
                    self.drop_entry = 1;
                }
            }
            _ => self.dropentry = true,
        }

        match self.drop_packet {
            0 => self.drop_rate = 0,
            1 | 2 => {
                if nomem {
                    // nomem: avail < amemthresh, so the divisor is positive.
                    self.drop_rate = self.amemthresh / (self.amemthresh - avail);
                    self.drop_counter = self.drop_rate;
                    self.drop_packet = 2;
                } else {
                    self.drop_rate = 0;
                    self.drop_packet = 1;
                }
            }
            _ => self.drop_rate = self.am_droprate,
        }

        let mut change = None;
        match self.secure_tcp {
            0 => {
                if self.old_secure_tcp >= 2 {
                    change = Some(());
                }
            }
            1 | 2 => {
                if nomem {
                    if self.old_secure_tcp < 2 {
                        change = Some(());
                    }
                    self.secure_tcp = 2;
                } else {
                    if self.old_secure_tcp >= 2 {
                        change = Some(());
                    }
                    self.secure_tcp = 1;
                }
            }
            _ => {
                if self.old_secure_tcp < 2 {
                    change = Some(());
                }
            }
        }
        self.old_secure_tcp = self.secure_tcp;
        if change.is_some() {
            self.secure_on = self.secure_tcp > 1;
        }
    }

    /// ip_vs_todrop: whether drop_packet drops this packet, which would
    /// open a conn.
    pub fn todrop(&mut self) -> bool {
        if self.drop_rate == 0 {
            return false;
        }
        self.drop_counter -= 1;
        if self.drop_counter > 0 {
            return false;
        }
        self.drop_counter = self.drop_rate;
        true
    }

    /// drop_entry is on: the table is scanned for conns to remove.
    pub fn drop_entry_on(&self) -> bool {
        self.dropentry
    }

    /// secure_tcp is on: TCP conns follow `tcp_transition_dos` and
    /// `timeout_ms`'s shorter embryonic timeouts.
    pub fn secure_tcp_on(&self) -> bool {
        self.secure_on
    }

    /// drop_packet drops one new conn in this many (0: none).
    pub fn drop_rate(&self) -> u32 {
        u32::try_from(self.drop_rate).unwrap_or(u32::MAX)
    }

    /// The sysctls' current values: (drop_entry, drop_packet, secure_tcp).
    pub fn levels(&self) -> (u8, u8, u8) {
        (self.drop_entry, self.drop_packet, self.secure_tcp)
    }
}

/// todrop_entry's per-table counters: of the conns drop_entry finds idle
/// with `n` (1 to 8) input packets, every `n`th goes, so those that carried
/// least go first.
#[derive(Debug, Clone, Default)]
pub struct DropEntryCounters([i8; 8]);

/// todrop_entry spares a conn that had a packet in the last 60 s.
pub const DROP_ENTRY_MIN_IDLE_MS: u64 = 60_000;

impl DropEntryCounters {
    /// todrop_entry for a conn idle for `idle_ms` that has seen `in_pkts`
    /// client packets (saturating at 255).
    pub fn todrop(&mut self, idle_ms: u64, in_pkts: u8) -> bool {
        if idle_ms < DROP_ENTRY_MIN_IDLE_MS || !(1..=8).contains(&in_pkts) {
            return false;
        }
        let i = usize::from(in_pkts - 1);
        self.0[i] -= 1;
        if self.0[i] > 0 {
            return false;
        }
        self.0[i] = in_pkts as i8;
        true
    }
}

use TcpState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI,
    SynAck as SA, SynRecv as SR, SynSent as SS, TimeWait as TW,
};

type Row = [TcpState; TCP_STATES];

/// tcp_states_dos: [direction][syn, fin, ack, rst][state], columns
/// NO ES SS SR FW TW CL CW LA LI SA. Against the normal table: a client's
/// ACK does not establish a NAT conn until the server's SYN+ACK was seen
/// (SYN_RECV becomes SYNACK on it), and a SYN seen in one direction only
/// (DR, TUN) opens in SYNACK.
const TCP_DOS_TABLE: [[Row; 4]; 3] = [
    // INPUT
    [
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SA],
        [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, SA],
        [ES, ES, SS, SR, FW, TW, CL, CW, CL, LI, SA],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
    // OUTPUT
    [
        [SS, ES, SS, SA, SS, SS, SS, SS, SS, LI, SA],
        [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    // INPUT_ONLY
    [
        [SA, ES, ES, SR, SA, SA, SA, SA, SA, SA, SA],
        [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// set_tcp_state's step through tcp_states_dos (flag priority as in
/// `proto::tcp_transition`: RST, SYN, FIN, ACK; none of them: CLOSE).
pub fn tcp_transition_dos(state: TcpState, dir: Direction, flags: u8) -> TcpState {
    let d = match dir {
        Direction::Input => 0,
        Direction::Output => 1,
        Direction::InputOnly => 2,
    };
    let row = if flags & tcp_flags::RST != 0 {
        3
    } else if flags & tcp_flags::SYN != 0 {
        0
    } else if flags & tcp_flags::FIN != 0 {
        1
    } else if flags & tcp_flags::ACK != 0 {
        2
    } else {
        return TcpState::Close;
    };
    TCP_DOS_TABLE[d][row][state as usize]
}

/// The embryonic TCP states' timeouts while secure_tcp is on, in seconds:
/// Linux 2.4's vs_timeout_table_dos (SYN_SENT 60, SYN_RECV 10, SYNACK
/// 100), where today's kernels keep the normal timeouts (that table sits
/// under `#if 0` in ip_vs_ctl.c). Every other state keeps its timeout,
/// `--set` values included.
pub fn dos_timeout_secs(state: TcpState) -> Option<u32> {
    match state {
        TcpState::SynSent => Some(60),
        TcpState::SynRecv => Some(10),
        TcpState::SynAck => Some(100),
        _ => None,
    }
}

/// A TCP conn's timeout in `state`, in milliseconds, with secure_tcp on
/// or off.
#[inline]
pub fn tcp_timeout_ms(timeouts: &Timeouts, secure: bool, state: u8) -> u32 {
    if secure {
        if let Some(s) = TcpState::from_u8(state).and_then(dos_timeout_secs) {
            return s * 1000;
        }
    }
    timeouts.ms(super::proto::IPPROTO_TCP, state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::proto::tcp_flags::{ACK, FIN, RST, SYN};
    use Direction::{Input as I, InputOnly as IO, Output as O};

    fn cfg(amemthresh: u32, entry: u8, packet: u8, secure: u8) -> DefenseConfig {
        DefenseConfig {
            amemthresh,
            am_droprate: 10,
            drop_entry: entry,
            drop_packet: packet,
            secure_tcp: secure,
        }
    }

    #[test]
    fn level_0_never_and_3_always() {
        let mut d = Defense::new(&cfg(1024, 0, 0, 0));
        d.update(0);
        assert!(!d.drop_entry_on() && !d.secure_tcp_on() && !d.todrop());
        assert_eq!(d.levels(), (0, 0, 0));
        let mut d = Defense::new(&cfg(1024, 3, 3, 3));
        d.update(1_000_000);
        assert!(d.drop_entry_on() && d.secure_tcp_on());
        assert_eq!(d.levels(), (3, 3, 3), "3 is never moved");
    }

    #[test]
    fn automatic_levels_move_between_1_and_2_at_amemthresh() {
        // nomem = free < amemthresh: 1024 free of a 1024 threshold is not
        // short, 1023 is.
        let mut d = Defense::new(&cfg(1024, 1, 1, 1));
        d.update(1024);
        assert_eq!(d.levels(), (1, 1, 1));
        assert!(!d.drop_entry_on() && !d.secure_tcp_on() && d.drop_rate() == 0);
        d.update(1023);
        assert_eq!(d.levels(), (2, 2, 2));
        assert!(d.drop_entry_on() && d.secure_tcp_on());
        d.update(1023);
        assert_eq!(d.levels(), (2, 2, 2), "stays on while short");
        d.update(5000);
        assert_eq!(d.levels(), (1, 1, 1));
        assert!(!d.drop_entry_on() && !d.secure_tcp_on() && d.drop_rate() == 0);
        // A configured 2 is "automatic, on now": the first judgement
        // decides.
        let mut d = Defense::new(&cfg(1024, 2, 2, 2));
        d.update(5000);
        assert_eq!(d.levels(), (1, 1, 1));
        assert!(!d.secure_tcp_on());
    }

    #[test]
    fn drop_packet_rate_is_amemthresh_over_the_shortfall() {
        // drop_rate = amemthresh / (amemthresh - free), integer division:
        // 1000 / (1000 - 0) = 1, 1000 / 500 = 2, 1000 / 1 = 1000,
        // 1000 / (1000 - 990) = 100, 1000 / (1000 - 700) = 3.
        for (free, rate) in [(0, 1), (500, 2), (999, 1000), (990, 100), (700, 3)] {
            let mut d = Defense::new(&cfg(1000, 0, 1, 0));
            d.update(free);
            assert_eq!(d.drop_rate(), rate, "free {free}");
        }
    }

    #[test]
    fn todrop_drops_every_nth_from_the_first_after_a_judgement() {
        // Short by half: rate 2, the counter set to 2: pass, drop, pass,
        // drop, ...
        let mut d = Defense::new(&cfg(1000, 0, 1, 0));
        d.update(500);
        let got: Vec<bool> = (0..6).map(|_| d.todrop()).collect();
        assert_eq!(got, [false, true, false, true, false, true]);
        // Mode 3 sets the rate but not the counter, which starts at 0: the
        // first conn goes, then one in am_droprate (10).
        let mut d = Defense::new(&cfg(1000, 0, 3, 0));
        d.update(1_000_000);
        let at: Vec<usize> = (0..25).filter(|_| d.todrop()).collect();
        assert_eq!(at, [0, 10, 20]);
    }

    #[test]
    fn todrop_entry_prefers_conns_with_fewer_packets() {
        let mut c = DropEntryCounters::default();
        let idle = 60_000;
        // Busy within the last 60 s, no packet yet or more than 8: spared.
        assert!(!c.todrop(59_999, 1));
        assert!(!c.todrop(idle, 0));
        assert!(!c.todrop(idle, 9));
        // One packet: every candidate goes.
        assert!((0..5).all(|_| c.todrop(idle, 1)));
        // Three packets: the first, then every third.
        let got: Vec<bool> = (0..7).map(|_| c.todrop(idle, 3)).collect();
        assert_eq!(got, [true, false, false, true, false, false, true]);
        // Eight: the first, then every eighth; counters are per count.
        let got: Vec<bool> = (0..9).map(|_| c.todrop(idle, 8)).collect();
        assert_eq!(got.iter().filter(|&&x| x).count(), 2);
        assert!(got[0] && got[8]);
    }

    #[test]
    fn the_dos_table_waits_for_the_servers_answer() {
        // Walked through tcp_states_dos by hand. NAT: SYN in NO->SR; the
        // client's ACK before the server's SYN+ACK stays SR (the normal
        // table says ES); SYN+ACK out SR->SA; ACK in SA->SA; the server's
        // ACK SA->ES.
        let mut s = TcpState::None;
        let mut seen = Vec::new();
        for (d, f) in [(I, SYN), (I, ACK), (O, SYN | ACK), (I, ACK), (O, ACK)] {
            s = tcp_transition_dos(s, d, f);
            seen.push(s);
        }
        assert_eq!(seen, [SR, SR, SA, SA, ES]);
        // DR (input only): SYN opens in SYNACK, the ACK establishes.
        assert_eq!(tcp_transition_dos(TcpState::None, IO, SYN), SA);
        assert_eq!(tcp_transition_dos(SA, IO, ACK), ES);
        // RST in SYNACK closes; FIN in SYNACK stays; no flag at all closes.
        assert_eq!(tcp_transition_dos(SA, I, RST), CL);
        assert_eq!(tcp_transition_dos(SA, I, FIN), SA);
        assert_eq!(tcp_transition_dos(ES, I, 0), CL);
        // Where the tables agree: ES + FIN in -> CW, CW + FIN out -> TW.
        assert_eq!(tcp_transition_dos(ES, I, FIN | ACK), CW);
        assert_eq!(tcp_transition_dos(CW, O, FIN | ACK), TW);
    }

    #[test]
    fn secure_tcp_shortens_only_the_embryonic_timeouts() {
        let mut t = Timeouts::new();
        t.set(100, 0, 0).unwrap();
        let es = TcpState::Established as u8;
        let sr = TcpState::SynRecv as u8;
        assert_eq!(tcp_timeout_ms(&t, false, sr), 60_000);
        assert_eq!(tcp_timeout_ms(&t, true, sr), 10_000);
        assert_eq!(tcp_timeout_ms(&t, true, TcpState::SynAck as u8), 100_000);
        assert_eq!(tcp_timeout_ms(&t, true, TcpState::SynSent as u8), 60_000);
        assert_eq!(tcp_timeout_ms(&t, true, es), 100_000, "--set's value");
        assert_eq!(tcp_timeout_ms(&t, true, TcpState::TimeWait as u8), 120_000);
    }
}
