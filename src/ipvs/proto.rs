//! Per-protocol connection states and timeouts: the TCP state machine of
//! ip_vs_proto_tcp.c, UDP's single state of ip_vs_proto_udp.c, SCTP's
//! (ip_vs_proto_sctp.c, in proto_sctp.rs), and the timeout table that
//! `ipvsadm --set` edits.
use super::error::IpvsError;
use super::proto_sctp::{SctpState, SCTP_STATES, SCTP_UNKNOWN_STATE_TIMEOUT};
use super::service::Protocol;

pub const IPPROTO_IP: u8 = 0;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_SCTP: u8 = 132;

/// The TCP header flag bits the state machine looks at.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;
}

/// IP_VS_TCP_S_*, in the kernel's numbering (the sync protocol carries it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    None = 0,
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait = 4,
    TimeWait = 5,
    Close = 6,
    CloseWait = 7,
    LastAck = 8,
    Listen = 9,
    SynAck = 10,
}

pub const TCP_STATES: usize = 11;

impl TcpState {
    pub const ALL: [TcpState; TCP_STATES] = [
        TcpState::None,
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::SynAck,
    ];

    pub fn from_u8(v: u8) -> Option<TcpState> {
        Self::ALL.get(usize::from(v)).copied()
    }

    /// tcp_state_name_table: what `ipvsadm -Lc` prints.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::SynAck => "SYNACK",
        }
    }

    /// tcp_state_active_table: the states that count in ActiveConn.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            TcpState::Established | TcpState::SynSent | TcpState::SynRecv | TcpState::SynAck
        )
    }

    /// tcp_timeouts[], in seconds.
    pub fn default_timeout(self) -> u32 {
        match self {
            TcpState::None => 2,
            TcpState::Established => 900,
            TcpState::SynSent => 120,
            TcpState::SynRecv => 60,
            TcpState::FinWait => 120,
            TcpState::TimeWait => 120,
            TcpState::Close => 10,
            TcpState::CloseWait => 60,
            TcpState::LastAck => 30,
            TcpState::Listen => 120,
            TcpState::SynAck => 120,
        }
    }
}

/// Which way a packet travels relative to the conn. `InputOnly` is what
/// `Input` becomes while the conn has seen no output (every forwarding
/// method but NAT and FULLNAT: replies bypass the director).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client to real server.
    Input,
    /// Real server to client.
    Output,
    InputOnly,
}

use TcpState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI,
    SynRecv as SR, SynSent as SS, TimeWait as TW,
};

type Row = [TcpState; TCP_STATES];

/// tcp_states[] (not the secure_tcp table): [direction][syn, fin, ack, rst][state].
/// Columns: NO ES SS SR FW TW CL CW LA LI SA.
const TCP_TABLE: [[Row; 4]; 3] = [
    // INPUT
    [
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
    ],
    // OUTPUT
    [
        [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
        [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    // INPUT_ONLY
    [
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// tcp_state_idx: RST outranks SYN, SYN outranks FIN, FIN outranks ACK.
fn tcp_flag_row(flags: u8) -> Option<usize> {
    if flags & tcp_flags::RST != 0 {
        Some(3)
    } else if flags & tcp_flags::SYN != 0 {
        Some(0)
    } else if flags & tcp_flags::FIN != 0 {
        Some(1)
    } else if flags & tcp_flags::ACK != 0 {
        Some(2)
    } else {
        None
    }
}

/// set_tcp_state's table step. A segment with none of RST/SYN/FIN/ACK moves
/// the conn to CLOSE, as the kernel does.
pub fn tcp_transition(state: TcpState, dir: Direction, flags: u8) -> TcpState {
    let d = match dir {
        Direction::Input => 0,
        Direction::Output => 1,
        Direction::InputOnly => 2,
    };
    match tcp_flag_row(flags) {
        Some(row) => TCP_TABLE[d][row][state as usize],
        None => TcpState::Close,
    }
}

/// IP_VS_UDP_S_NORMAL's name.
pub const UDP_STATE_NAME: &str = "UDP";
pub const UDP_DEFAULT_TIMEOUT: u32 = 300;

/// The state name `ipvsadm -Lc` shows for a conn (ip_vs_state_name):
/// templates are NONE or ASSURED whatever their protocol.
pub fn state_name(proto: u8, state: u8, template: bool) -> &'static str {
    if template {
        return match state {
            0 => "NONE",
            1 => "ASSURED",
            _ => "ERR!",
        };
    }
    match proto {
        IPPROTO_TCP => TcpState::from_u8(state).map_or("ERR!", TcpState::name),
        IPPROTO_UDP if state == 0 => UDP_STATE_NAME,
        IPPROTO_SCTP => SctpState::from_u8(state).map_or("ERR!", SctpState::name),
        IPPROTO_IP => "NONE",
        _ => "ERR!",
    }
}

/// The largest timeout `--set` takes: ipvsadm's own limit, 31 days. A HZ=250
/// kernel (Debian's) takes up to INT_MAX / HZ, more than that, so ipvsadm's
/// is the one an operator meets.
pub const MAX_TIMEOUT_SECS: u32 = super::conn::MAX_TIMEOUT_MS / 1000;

/// The timeout of every state, in seconds; one per daemon, read by workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    tcp: [u32; TCP_STATES],
    udp: u32,
    sctp: [u32; SCTP_STATES],
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp: TcpState::ALL.map(TcpState::default_timeout),
            udp: UDP_DEFAULT_TIMEOUT,
            sctp: SctpState::ALL.map(SctpState::default_timeout),
        }
    }
}

impl Timeouts {
    pub fn new() -> Timeouts {
        Timeouts::default()
    }

    /// `ipvsadm --set tcp tcpfin udp` (ip_vs_set_timeout): ESTABLISHED,
    /// FIN_WAIT and UDP, in seconds; 0 leaves a value unchanged. Nothing
    /// changes when one value is out of range.
    pub fn set(&mut self, tcp: u32, tcpfin: u32, udp: u32) -> Result<(), IpvsError> {
        if tcp > MAX_TIMEOUT_SECS || tcpfin > MAX_TIMEOUT_SECS || udp > MAX_TIMEOUT_SECS {
            return Err(IpvsError::InvalidArgument("timeout too large"));
        }
        if tcp != 0 {
            self.tcp[TcpState::Established as usize] = tcp;
        }
        if tcpfin != 0 {
            self.tcp[TcpState::FinWait as usize] = tcpfin;
        }
        if udp != 0 {
            self.udp = udp;
        }
        Ok(())
    }

    /// `ipvsadm --timeout`: (tcp, tcpfin, udp).
    pub fn as_ipvsadm(&self) -> (u32, u32, u32) {
        (
            self.tcp[TcpState::Established as usize],
            self.tcp[TcpState::FinWait as usize],
            self.udp,
        )
    }

    pub fn tcp(&self, state: TcpState) -> u32 {
        self.tcp[state as usize]
    }

    /// Seconds a conn of `proto` in `state` lives without packets. An
    /// unknown TCP or SCTP state gets the kernel's [S_LAST] entry (2 s).
    pub fn get(&self, proto: Protocol, state: u8) -> u32 {
        self.by_number(proto.number(), state)
    }

    #[inline]
    pub(crate) fn by_number(&self, proto: u8, state: u8) -> u32 {
        match proto {
            IPPROTO_TCP => TcpState::from_u8(state).map_or(self.tcp[0], |s| self.tcp(s)),
            IPPROTO_SCTP => SctpState::from_u8(state)
                .map_or(SCTP_UNKNOWN_STATE_TIMEOUT, |s| self.sctp[s as usize]),
            _ => self.udp,
        }
    }

    /// The same in milliseconds, as the conn timers count.
    #[inline]
    pub(crate) fn ms(&self, proto: u8, state: u8) -> u32 {
        self.by_number(proto, state)
            .saturating_mul(1000)
            .min(super::conn::MAX_TIMEOUT_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::tcp_flags::{ACK, FIN, RST, SYN};
    use super::TcpState::SynAck as SA;
    use super::*;

    fn run(start: TcpState, steps: &[(Direction, u8)]) -> Vec<TcpState> {
        let mut s = start;
        steps
            .iter()
            .map(|&(d, f)| {
                s = tcp_transition(s, d, f);
                s
            })
            .collect()
    }

    use Direction::{Input as I, InputOnly as IO, Output as O};

    #[test]
    fn nat_open_and_client_close() {
        // Worked from the INPUT/OUTPUT tables by hand: SYN in (NO->SR),
        // SYN+ACK out (syn row, SR->SR), ACK in (SR->ES), FIN in (ES->CW),
        // FIN out (CW->TW), last ACK in (TW->TW).
        let got = run(
            TcpState::None,
            &[
                (I, SYN),
                (O, SYN | ACK),
                (I, ACK),
                (I, FIN | ACK),
                (O, FIN | ACK),
                (I, ACK),
            ],
        );
        assert_eq!(got, [SR, SR, ES, CW, TW, TW]);
    }

    #[test]
    fn nat_server_closes_first() {
        // ES + FIN out -> FW; FIN in from FW -> TW; ACK out stays TW.
        let got = run(ES, &[(O, FIN | ACK), (I, FIN | ACK), (O, ACK)]);
        assert_eq!(got, [FW, TW, TW]);
    }

    #[test]
    fn input_only_open_and_close() {
        // DR/TUN: SYN (NO->SR), ACK (SR->ES), FIN (ES->FW), ACK (FW->FW),
        // the client's last FIN after the server's (FW->FW).
        let got = run(
            TcpState::None,
            &[(IO, SYN), (IO, ACK), (IO, FIN | ACK), (IO, ACK), (IO, FIN)],
        );
        assert_eq!(got, [SR, ES, FW, FW, FW]);
        // A SYN+ACK in INPUT_ONLY from SYNACK stays SR, a RST closes.
        assert_eq!(tcp_transition(SA, IO, RST), CL);
        assert_eq!(
            tcp_transition(SA, I, RST),
            SR,
            "INPUT keeps SR on RST from SYNACK"
        );
    }

    #[test]
    fn output_initiated_open() {
        // A conn first seen from the server side (active FTP data): SYN out
        // (NO->SS), the client's SYN+ACK takes INPUT's syn row (SS->ES).
        let got = run(TcpState::None, &[(O, SYN), (I, SYN | ACK), (O, ACK)]);
        assert_eq!(got, [SS, ES, ES]);
    }

    #[test]
    fn rst_wins_and_no_flags_close() {
        assert_eq!(tcp_transition(ES, I, RST | SYN | FIN | ACK), CL);
        assert_eq!(tcp_transition(ES, O, RST), CL);
        assert_eq!(tcp_transition(SS, O, RST), SS);
        assert_eq!(tcp_transition(LA, I, RST), LA);
        assert_eq!(tcp_transition(ES, I, SYN | FIN), ES, "SYN outranks FIN");
        assert_eq!(tcp_transition(ES, I, FIN | ACK), CW, "FIN outranks ACK");
        assert_eq!(tcp_transition(ES, I, 0x08), CL, "PSH alone: no table row");
        assert_eq!(tcp_transition(ES, I, 0), CL);
    }

    #[test]
    fn names_active_set_and_default_timeouts() {
        let names: Vec<&str> = TcpState::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "NONE",
                "ESTABLISHED",
                "SYN_SENT",
                "SYN_RECV",
                "FIN_WAIT",
                "TIME_WAIT",
                "CLOSE",
                "CLOSE_WAIT",
                "LAST_ACK",
                "LISTEN",
                "SYNACK"
            ]
        );
        let active: Vec<TcpState> = TcpState::ALL
            .into_iter()
            .filter(|s| s.is_active())
            .collect();
        assert_eq!(active, [ES, SS, SR, SA]);
        let t = Timeouts::new();
        let secs: Vec<u32> = TcpState::ALL
            .iter()
            .map(|&s| t.get(Protocol::Tcp, s as u8))
            .collect();
        assert_eq!(secs, [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120]);
        assert_eq!(t.get(Protocol::Udp, 0), 300);
        assert_eq!(
            t.get(Protocol::Tcp, 200),
            2,
            "unknown state: the S_LAST entry"
        );
        assert_eq!(state_name(IPPROTO_UDP, 0, false), "UDP");
        assert_eq!(state_name(IPPROTO_TCP, 3, false), "SYN_RECV");
        assert_eq!(state_name(IPPROTO_TCP, 1, true), "ASSURED");
        assert_eq!(state_name(IPPROTO_TCP, 11, false), "ERR!");
        assert_eq!(TcpState::from_u8(11), None);
    }

    #[test]
    fn sctp_names_and_timeouts_by_state() {
        let t = Timeouts::new();
        assert_eq!(t.get(Protocol::Sctp, 0), 2, "NONE");
        assert_eq!(t.get(Protocol::Sctp, 1), 4, "INIT1");
        assert_eq!(t.get(Protocol::Sctp, 8), 900, "ESTABLISHED");
        assert_eq!(t.get(Protocol::Sctp, 13), 61, "CLOSED");
        assert_eq!(t.get(Protocol::Sctp, 14), 2, "unknown: the S_LAST entry");
        assert_eq!(state_name(IPPROTO_SCTP, 8, false), "ESTABLISHED");
        assert_eq!(state_name(IPPROTO_SCTP, 3, false), "C-SENT");
        assert_eq!(state_name(IPPROTO_SCTP, 14, false), "ERR!");
        assert_eq!(state_name(IPPROTO_SCTP, 1, true), "ASSURED");
    }

    #[test]
    fn set_changes_three_values_and_zero_keeps() {
        let mut t = Timeouts::new();
        assert_eq!(t.as_ipvsadm(), (900, 120, 300));
        t.set(3600, 0, 0).unwrap();
        assert_eq!(t.as_ipvsadm(), (3600, 120, 300));
        t.set(0, 30, 60).unwrap();
        assert_eq!(t.as_ipvsadm(), (3600, 30, 60));
        assert_eq!(t.tcp(TcpState::FinWait), 30);
        assert_eq!(t.tcp(TcpState::TimeWait), 120, "TIME_WAIT is not tcpfin");
        assert_eq!(t.get(Protocol::Udp, 0), 60);
        assert!(t.set(1, 1, 2_678_401).is_err(), "past ipvsadm's 31 days");
        assert_eq!(
            t.as_ipvsadm(),
            (3600, 30, 60),
            "a refused --set changes nothing"
        );
        // 31 days, past the 24.8 days of a signed 32-bit millisecond count.
        t.set(2_678_400, 0, 0).unwrap();
        assert_eq!(t.ms(IPPROTO_TCP, 1), 2_678_400_000);
    }
}
