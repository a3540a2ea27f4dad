//! SCTP's connection states as ip_vs_proto_sctp.c keeps them: the states
//! as the real server sees the association, one event per packet read from
//! its first chunk (an ABORT bundled behind a COOKIE ECHO or COOKIE ACK
//! wins), the transition table per direction, the state names `ipvsadm -Lc`
//! prints and the default timeouts. Only ESTABLISHED counts as active.
use crate::wire::sctp::chunk;

use super::proto::Direction;

/// IP_VS_SCTP_S_*, in the kernel's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SctpState {
    None = 0,
    /// The client's first INIT, waiting for INIT ACK (short timeout: a
    /// dropped INIT should not hold the conn long).
    Init1 = 1,
    /// A retransmitted INIT.
    Init = 2,
    /// The server's INIT ACK went out, waiting for COOKIE ECHO.
    CookieSent = 3,
    /// The client's COOKIE ECHO, waiting for COOKIE ACK.
    CookieReplied = 4,
    /// The server sent INIT (an association it opens).
    CookieWait = 5,
    Cookie = 6,
    CookieEchoed = 7,
    Established = 8,
    ShutdownSent = 9,
    ShutdownReceived = 10,
    ShutdownAckSent = 11,
    /// The server answered INIT with ABORT.
    Rejected = 12,
    Closed = 13,
}

pub const SCTP_STATES: usize = 14;

impl SctpState {
    pub const ALL: [SctpState; SCTP_STATES] = [
        SctpState::None,
        SctpState::Init1,
        SctpState::Init,
        SctpState::CookieSent,
        SctpState::CookieReplied,
        SctpState::CookieWait,
        SctpState::Cookie,
        SctpState::CookieEchoed,
        SctpState::Established,
        SctpState::ShutdownSent,
        SctpState::ShutdownReceived,
        SctpState::ShutdownAckSent,
        SctpState::Rejected,
        SctpState::Closed,
    ];

    pub fn from_u8(v: u8) -> Option<SctpState> {
        Self::ALL.get(usize::from(v)).copied()
    }

    /// sctp_state_name_table: what `ipvsadm -Lc` prints.
    pub fn name(self) -> &'static str {
        match self {
            SctpState::None => "NONE",
            SctpState::Init1 => "INIT1",
            SctpState::Init => "INIT",
            SctpState::CookieSent => "C-SENT",
            SctpState::CookieReplied => "C-REPLIED",
            SctpState::CookieWait => "C-WAIT",
            SctpState::Cookie => "COOKIE",
            SctpState::CookieEchoed => "C-ECHOED",
            SctpState::Established => "ESTABLISHED",
            SctpState::ShutdownSent => "S-SENT",
            SctpState::ShutdownReceived => "S-RECEIVED",
            SctpState::ShutdownAckSent => "S-ACK-SENT",
            SctpState::Rejected => "REJECTED",
            SctpState::Closed => "CLOSED",
        }
    }

    /// Only an established association counts in ActiveConn.
    pub fn is_active(self) -> bool {
        self == SctpState::Established
    }

    /// sctp_timeouts[], in seconds: 61 s is the largest RTO (60 s) and one.
    pub fn default_timeout(self) -> u32 {
        match self {
            SctpState::None => 2,
            SctpState::Init1 | SctpState::Rejected => 4,
            SctpState::Established => 900,
            _ => 61,
        }
    }
}

/// The timeout of a state number outside the table (the kernel's
/// [IP_VS_SCTP_S_LAST] entry).
pub const SCTP_UNKNOWN_STATE_TIMEOUT: u32 = 2;

/// ipvs_sctp_event_t: what a packet means to the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SctpEvent {
    /// DATA, SACK, HEARTBEAT(-ACK), ECNE, CWR and every unknown chunk.
    Data = 0,
    Init = 1,
    InitAck = 2,
    CookieEcho = 3,
    CookieAck = 4,
    Shutdown = 5,
    ShutdownAck = 6,
    ShutdownComplete = 7,
    Error = 8,
    Abort = 9,
}

pub const SCTP_EVENTS: usize = 10;

impl SctpEvent {
    /// The event of a chunk type (`wire::sctp::state_chunk`'s answer).
    pub fn of_chunk(kind: u8) -> SctpEvent {
        match kind {
            chunk::INIT => SctpEvent::Init,
            chunk::INIT_ACK => SctpEvent::InitAck,
            chunk::COOKIE_ECHO => SctpEvent::CookieEcho,
            chunk::COOKIE_ACK => SctpEvent::CookieAck,
            chunk::SHUTDOWN => SctpEvent::Shutdown,
            chunk::SHUTDOWN_ACK => SctpEvent::ShutdownAck,
            chunk::SHUTDOWN_COMPLETE => SctpEvent::ShutdownComplete,
            chunk::ERROR => SctpEvent::Error,
            chunk::ABORT => SctpEvent::Abort,
            _ => SctpEvent::Data,
        }
    }

    pub fn from_u8(v: u8) -> Option<SctpEvent> {
        use SctpEvent::*;
        [
            Data,
            Init,
            InitAck,
            CookieEcho,
            CookieAck,
            Shutdown,
            ShutdownAck,
            ShutdownComplete,
            Error,
            Abort,
        ]
        .get(usize::from(v))
        .copied()
    }
}

use SctpState::{
    Closed as CL, Cookie as CO, CookieEchoed as CE, CookieReplied as CR, CookieSent as CS,
    CookieWait as CW, Established as ES, Init as IN, Init1 as I1, Rejected as RJ,
    ShutdownAckSent as SA, ShutdownReceived as SR, ShutdownSent as SS,
};

type Row = [SctpState; SCTP_STATES];

/// sctp_states[direction][event][state].
/// Columns: NO I1 IN CS CR CW CO CE ES SS SR SA RJ CL.
const SCTP_TABLE: [[Row; SCTP_EVENTS]; 3] = [
    // INPUT
    [
        [ES, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL], // data
        [I1, IN, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, IN, IN], // init
        [CW, CW, CW, CS, CR, CO, CO, CE, ES, SS, SR, SA, RJ, CL], // init ack
        [CR, IN, IN, CR, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL], // cookie echo
        [ES, I1, IN, CS, CR, CW, CO, ES, ES, SS, SR, SA, RJ, CL], // cookie ack
        [SR, I1, IN, CS, CR, CW, CO, CE, SR, SS, SR, SA, RJ, CL], // shutdown
        [CL, IN, IN, CS, CR, CW, CO, CE, ES, CL, SR, CL, RJ, CL], // shutdown ack
        [CL, CL, CL, CS, CR, CW, CO, CE, ES, SS, SR, CL, RJ, CL], // shutdown complete
        [CL, I1, IN, CS, CR, CW, CO, CL, ES, SS, SR, SA, RJ, CL], // error
        [CL, CL, CL, CL, CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL], // abort
    ],
    // OUTPUT
    [
        [ES, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        [CW, CW, CW, CW, CW, CW, CW, CW, ES, CW, CW, CW, CW, CW],
        [CS, CS, CS, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        [CE, CE, CE, CE, CE, CE, CE, CE, ES, SS, SR, SA, RJ, CL],
        [ES, ES, ES, ES, ES, ES, ES, ES, ES, SS, SR, SA, RJ, CL],
        [SS, SS, SS, SS, SS, SS, SS, SS, SS, SS, SR, SA, RJ, CL],
        [SA, SA, SA, SA, SA, CW, CO, CE, ES, SA, SA, SA, RJ, CL],
        [CL, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        [CL, CL, CL, CL, CL, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        [CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL],
    ],
    // INPUT_ONLY
    [
        [ES, I1, IN, CS, CR, ES, CO, CE, ES, SS, SR, SA, RJ, CL],
        [I1, IN, IN, IN, IN, IN, CO, CE, ES, SS, SR, SA, IN, IN],
        [CE, CE, CE, CE, CE, CE, CO, CE, ES, SS, SR, SA, RJ, CL],
        [ES, ES, ES, ES, ES, ES, CO, CE, ES, SS, SR, SA, RJ, CL],
        [ES, I1, IN, ES, ES, CW, ES, ES, ES, SS, SR, SA, RJ, CL],
        [SR, I1, IN, CS, CR, CW, CO, CE, SR, SS, SR, SA, RJ, CL],
        [CL, IN, IN, CS, CR, CW, CO, CE, CL, CL, SR, CL, RJ, CL],
        [CL, CL, CL, CL, CL, CW, CO, CE, ES, SS, CL, CL, RJ, CL],
        [CL, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        [CL, CL, CL, CL, CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL],
    ],
];

/// set_sctp_state's table step. A state number outside the table is read
/// as NONE.
pub fn sctp_transition(state: SctpState, dir: Direction, event: SctpEvent) -> SctpState {
    let d = match dir {
        Direction::Input => 0,
        Direction::Output => 1,
        Direction::InputOnly => 2,
    };
    SCTP_TABLE[d][event as usize][state as usize]
}

#[cfg(test)]
mod tests {
    use super::SctpEvent as E;
    use super::SctpState as S;
    use super::*;
    use Direction::{Input as I, InputOnly as IO, Output as O};

    fn run(start: SctpState, steps: &[(Direction, SctpEvent)]) -> Vec<&'static str> {
        let mut s = start;
        steps
            .iter()
            .map(|&(d, e)| {
                s = sctp_transition(s, d, e);
                s.name()
            })
            .collect()
    }

    #[test]
    fn nat_association_opened_and_closed_by_the_client() {
        // Read off the kernel's INPUT and OUTPUT tables by hand: INIT in
        // (NO->I1), INIT ACK out (I1->CS), COOKIE ECHO in (CS->CR), COOKIE
        // ACK out (CR->ES), DATA in and SACK out stay, SHUTDOWN in (ES->SR),
        // SHUTDOWN ACK out (SR->SA), SHUTDOWN COMPLETE in (SA->CL).
        let got = run(
            S::None,
            &[
                (I, E::Init),
                (O, E::InitAck),
                (I, E::CookieEcho),
                (O, E::CookieAck),
                (I, E::Data),
                (O, E::Data),
                (I, E::Shutdown),
                (O, E::ShutdownAck),
                (I, E::ShutdownComplete),
            ],
        );
        assert_eq!(
            got,
            [
                "INIT1",
                "C-SENT",
                "C-REPLIED",
                "ESTABLISHED",
                "ESTABLISHED",
                "ESTABLISHED",
                "S-RECEIVED",
                "S-ACK-SENT",
                "CLOSED"
            ]
        );
    }

    #[test]
    fn nat_server_shuts_down_first() {
        // SHUTDOWN out (ES->SS), SHUTDOWN ACK in (SS->CL), SHUTDOWN
        // COMPLETE out stays CLOSED.
        let got = run(
            S::Established,
            &[
                (O, E::Shutdown),
                (I, E::ShutdownAck),
                (O, E::ShutdownComplete),
            ],
        );
        assert_eq!(got, ["S-SENT", "CLOSED", "CLOSED"]);
    }

    #[test]
    fn init_retransmitted_then_rejected_or_aborted() {
        // INIT, INIT again (I1->IN), INIT again stays IN; the server's ABORT
        // to a first INIT is REJECTED (OUTPUT abort row, I1 column), to a
        // retransmitted one CLOSED (IN column).
        assert_eq!(
            run(S::None, &[(I, E::Init), (I, E::Init), (I, E::Init)]),
            ["INIT1", "INIT", "INIT"]
        );
        assert_eq!(run(S::Init1, &[(O, E::Abort)]), ["REJECTED"]);
        assert_eq!(run(S::Init, &[(O, E::Abort)]), ["CLOSED"]);
        // An ABORT either way ends an established association; a new INIT
        // on a CLOSED or REJECTED conn goes back to INIT.
        assert_eq!(run(S::Established, &[(I, E::Abort)]), ["CLOSED"]);
        assert_eq!(run(S::Established, &[(O, E::Abort)]), ["CLOSED"]);
        assert_eq!(run(S::Closed, &[(I, E::Init)]), ["INIT"]);
        assert_eq!(run(S::Rejected, &[(I, E::Init)]), ["INIT"]);
    }

    #[test]
    fn dr_sees_only_the_client() {
        // INPUT_ONLY: INIT (NO->I1), COOKIE ECHO (I1->ES), DATA stays,
        // SHUTDOWN (ES->SR), SHUTDOWN COMPLETE (SR->CL).
        let got = run(
            S::None,
            &[
                (IO, E::Init),
                (IO, E::CookieEcho),
                (IO, E::Data),
                (IO, E::Shutdown),
                (IO, E::ShutdownComplete),
            ],
        );
        assert_eq!(
            got,
            [
                "INIT1",
                "ESTABLISHED",
                "ESTABLISHED",
                "S-RECEIVED",
                "CLOSED"
            ]
        );
        // The server shut down first: the client's SHUTDOWN ACK closes
        // (ES->CL), unlike INPUT, where it leaves ES alone.
        assert_eq!(run(S::Established, &[(IO, E::ShutdownAck)]), ["CLOSED"]);
        assert_eq!(run(S::Established, &[(I, E::ShutdownAck)]), ["ESTABLISHED"]);
    }

    #[test]
    fn server_opened_association() {
        // A conn first seen with the server's INIT (OUTPUT): NO->C-WAIT,
        // the client's INIT ACK (C-WAIT->COOKIE), the server's COOKIE ECHO
        // (COOKIE->C-ECHOED), the client's COOKIE ACK (C-ECHOED->ES).
        let got = run(
            S::None,
            &[
                (O, E::Init),
                (I, E::InitAck),
                (O, E::CookieEcho),
                (I, E::CookieAck),
            ],
        );
        assert_eq!(got, ["C-WAIT", "COOKIE", "C-ECHOED", "ESTABLISHED"]);
    }

    #[test]
    fn chunk_events_names_timeouts_and_activity() {
        use crate::wire::sctp::chunk as c;
        for (kind, want) in [
            (c::DATA, E::Data),
            (c::INIT, E::Init),
            (c::INIT_ACK, E::InitAck),
            (c::SACK, E::Data),
            (c::HEARTBEAT, E::Data),
            (c::HEARTBEAT_ACK, E::Data),
            (c::ABORT, E::Abort),
            (c::SHUTDOWN, E::Shutdown),
            (c::SHUTDOWN_ACK, E::ShutdownAck),
            (c::ERROR, E::Error),
            (c::COOKIE_ECHO, E::CookieEcho),
            (c::COOKIE_ACK, E::CookieAck),
            (c::ECNE, E::Data),
            (c::CWR, E::Data),
            (c::SHUTDOWN_COMPLETE, E::ShutdownComplete),
            (15, E::Data),
            (0x80, E::Data),
            (0xc1, E::Data),
        ] {
            assert_eq!(SctpEvent::of_chunk(kind), want, "chunk {kind}");
            assert_eq!(SctpEvent::from_u8(want as u8), Some(want));
        }
        assert_eq!(SctpEvent::from_u8(10), None);
        let names: Vec<&str> = SctpState::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "NONE",
                "INIT1",
                "INIT",
                "C-SENT",
                "C-REPLIED",
                "C-WAIT",
                "COOKIE",
                "C-ECHOED",
                "ESTABLISHED",
                "S-SENT",
                "S-RECEIVED",
                "S-ACK-SENT",
                "REJECTED",
                "CLOSED"
            ]
        );
        let secs: Vec<u32> = SctpState::ALL.iter().map(|s| s.default_timeout()).collect();
        assert_eq!(secs, [2, 4, 61, 61, 61, 61, 61, 61, 900, 61, 61, 61, 4, 61]);
        let active: Vec<SctpState> = SctpState::ALL
            .into_iter()
            .filter(|s| s.is_active())
            .collect();
        assert_eq!(active, [S::Established]);
        assert_eq!(SctpState::from_u8(14), None);
        assert_eq!(SctpState::from_u8(8), Some(S::Established));
    }
}
