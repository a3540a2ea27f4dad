//! When the master sends a conn: ip_vs_sync_conn_needed with the kernel's
//! defaults (sync_threshold 3, sync_period 50, sync_refresh_period 0,
//! sync_persist_mode 0). Called for each packet from the client side.
use crate::ipvs::proto::TcpState;
use crate::ipvs::proto_sctp::SctpState;

/// sysctl sync_threshold's default.
pub const THRESHOLD: u8 = 3;
/// sysctl sync_period's default.
pub const PERIOD: u8 = 50;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_SCTP: u8 = 132;

/// What the kernel keeps per conn for the decision: its in_pkts (here
/// modulo the period, all the rule reads of it) and old_state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncMarks {
    pub pkts: u8,
    pub old_state: u8,
}

/// TCP states a conn is synced in, as a mask of 1 << state.
const TCP_SYNCS: u32 = 1 << TcpState::Established as u32
    | 1 << TcpState::FinWait as u32
    | 1 << TcpState::Close as u32
    | 1 << TcpState::CloseWait as u32
    | 1 << TcpState::TimeWait as u32;

const SCTP_SYNCS: u32 = 1 << SctpState::Established as u32
    | 1 << SctpState::ShutdownSent as u32
    | 1 << SctpState::ShutdownReceived as u32
    | 1 << SctpState::ShutdownAckSent as u32
    | 1 << SctpState::Closed as u32;

#[inline]
fn in_mask(mask: u32, state: u8) -> bool {
    state < 32 && mask & (1 << state) != 0
}

impl SyncMarks {
    /// A backup's freshly synced conn (ip_vs_proc_conn): in_pkts at the
    /// threshold, old_state the synced state.
    pub fn synced(state: u8) -> SyncMarks {
        SyncMarks {
            pkts: THRESHOLD,
            old_state: state,
        }
    }

    /// One more packet from the client for a conn (not a template) in
    /// `state`: whether it goes into the sync message now.
    #[inline]
    pub fn conn_packet(&mut self, proto: u8, state: u8) -> bool {
        self.pkts = if self.pkts + 1 >= PERIOD {
            0
        } else {
            self.pkts + 1
        };
        let est = match proto {
            IPPROTO_TCP if !in_mask(TCP_SYNCS, state) => return false,
            IPPROTO_SCTP if !in_mask(SCTP_SYNCS, state) => return false,
            IPPROTO_TCP => Some(TcpState::Established as u8),
            IPPROTO_SCTP => Some(SctpState::Established as u8),
            // UDP and the rest: one state, never forced.
            _ => None,
        };
        let force = est.is_some() && state != self.old_state;
        if force && Some(state) != est {
            self.old_state = state;
            return true;
        }
        if self.pkts != THRESHOLD {
            return false;
        }
        self.old_state = state;
        true
    }

    /// A template whose conn was just synced: always synced along (with
    /// sync_period set, a template skips the packet count).
    pub fn template(&mut self, state: u8) -> bool {
        self.old_state = state;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EST: u8 = 1;
    const SYN_RECV: u8 = 3;
    const FIN_WAIT: u8 = 4;
    const TIME_WAIT: u8 = 5;
    const CLOSE: u8 = 6;

    /// Which of a TCP conn's client packets are sent, given its state
    /// after each, per ip_vs_sync_conn_needed with threshold 3, period 50.
    fn sent(proto: u8, states: &[u8]) -> Vec<usize> {
        let mut m = SyncMarks::default();
        states
            .iter()
            .enumerate()
            .filter(|(_, s)| m.conn_packet(proto, **s))
            .map(|(i, _)| i + 1)
            .collect()
    }

    #[test]
    fn tcp_is_sent_at_the_third_packet_then_every_fiftieth() {
        // SYN (SYN_RECV), ACK (ESTABLISHED), then data.
        let mut states = vec![SYN_RECV, EST];
        states.extend(std::iter::repeat_n(EST, 210));
        // pkts % 50 == 3: packets 3, 53, 103, 153, 203 (the ESTABLISHED
        // change at packet 2 is forced but ESTABLISHED waits for the count).
        assert_eq!(sent(6, &states), vec![3, 53, 103, 153, 203]);
    }

    #[test]
    fn a_tcp_state_change_other_than_to_established_is_sent_at_once() {
        // 1 SYN, 2 ACK, 3 data (sent by count), 4 FIN → FIN_WAIT (forced),
        // 5 still FIN_WAIT (nothing), 6 → TIME_WAIT (forced), 7 → CLOSE.
        let states = [SYN_RECV, EST, EST, FIN_WAIT, FIN_WAIT, TIME_WAIT, CLOSE];
        assert_eq!(sent(6, &states), vec![3, 4, 6, 7]);
    }

    #[test]
    fn states_outside_the_list_are_never_sent() {
        assert_eq!(sent(6, &[SYN_RECV; 60]), Vec::<usize>::new());
        // SCTP: COOKIE_ECHOED (7) is not in the list; ESTABLISHED (8) counts.
        assert_eq!(sent(132, &[7, 7, 8]), vec![3]);
        // SHUTDOWN_SENT (9) after ESTABLISHED is forced.
        assert_eq!(sent(132, &[8, 8, 8, 9]), vec![3, 4]);
    }

    #[test]
    fn udp_follows_the_count_alone() {
        assert_eq!(sent(17, &[0; 110]), vec![3, 53, 103]);
    }

    #[test]
    fn a_synced_conn_on_a_backup_carries_on_counting_from_the_threshold() {
        let mut m = SyncMarks::synced(EST);
        let hits: Vec<usize> = (1..=60).filter(|_| m.conn_packet(6, EST)).collect();
        // in_pkts = 3, so the next hit is at in_pkts 53: 50 packets later.
        assert_eq!(hits, vec![50]);
    }
}
