//! RFC 5798 §6.4's state machine for one virtual router, as pure code: the
//! caller hands it the time (milliseconds on any monotonic clock) with
//! every event and does what the returned `Effects` say (send an advert,
//! take or give up the addresses). Timers are one deadline: the
//! Adver_Timer while Master, the Master_Down_Timer while Backup.
use std::net::Ipv4Addr;

pub type Millis = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Initialize,
    Backup,
    Master,
}

impl State {
    /// The name keepalived's notify scripts get.
    pub fn name(self) -> &'static str {
        match self {
            State::Initialize => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
        }
    }
}

/// One virtual router's own settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// 1..=255; 255 is the address owner, which takes over at start.
    pub priority: u8,
    /// Advertisement_Interval, in centiseconds (1..=4095).
    pub advert_int: u16,
    pub preempt: bool,
    /// The address adverts come from: ties between equal priorities go
    /// to the higher one.
    pub primary: Ipv4Addr,
}

/// The fields of a received advert the machine looks at; the caller has
/// already checked TTL, version, type, VRID and checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heard {
    pub src: Ipv4Addr,
    pub priority: u8,
    /// Centiseconds.
    pub max_adver_int: u16,
}

/// What the caller must do after an event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Effects {
    /// Send an advert with this priority (0 on shutdown).
    pub send: Option<u8>,
    /// The machine entered this state.
    pub became: Option<State>,
    /// Announce the addresses again (gratuitous ARP, unsolicited NA).
    pub announce: bool,
}

#[derive(Debug, Clone)]
pub struct Machine {
    p: Params,
    state: State,
    /// The interval the current master advertises, in centiseconds.
    master_adver_int: u16,
    timer: Option<Millis>,
}

impl Machine {
    pub fn new(p: Params) -> Machine {
        Machine {
            p,
            state: State::Initialize,
            master_adver_int: p.advert_int,
            timer: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn params(&self) -> &Params {
        &self.p
    }

    /// The interval learned from the master's adverts, in centiseconds.
    pub fn master_adver_int(&self) -> u16 {
        self.master_adver_int
    }

    /// When `tick` next has something to do.
    pub fn deadline(&self) -> Option<Millis> {
        self.timer
    }

    /// Skew_Time, in milliseconds: ((256 − Priority) × Master_Adver_Interval) / 256.
    pub fn skew_ms(&self) -> Millis {
        (256 - Millis::from(self.p.priority)) * Millis::from(self.master_adver_int) * 10 / 256
    }

    /// Master_Down_Interval, in milliseconds: 3 × Master_Adver_Interval + Skew_Time.
    pub fn master_down_ms(&self) -> Millis {
        3 * Millis::from(self.master_adver_int) * 10 + self.skew_ms()
    }

    fn advert_ms(&self) -> Millis {
        Millis::from(self.p.advert_int) * 10
    }

    fn enter_master(&mut self, now: Millis) -> Effects {
        self.state = State::Master;
        self.timer = Some(now + self.advert_ms());
        Effects {
            send: Some(self.p.priority),
            became: Some(State::Master),
            announce: false,
        }
    }

    fn enter_backup(&mut self, now: Millis, learned: u16) -> Effects {
        self.state = State::Backup;
        self.master_adver_int = learned;
        self.timer = Some(now + self.master_down_ms());
        Effects {
            send: None,
            became: Some(State::Backup),
            announce: false,
        }
    }

    /// The Startup event (§6.4.1).
    pub fn startup(&mut self, now: Millis) -> Effects {
        if self.state != State::Initialize {
            return Effects::default();
        }
        if self.p.priority == 255 {
            self.enter_master(now)
        } else {
            self.enter_backup(now, self.p.advert_int)
        }
    }

    /// The Shutdown event: a master sends a priority-0 advert so that a
    /// backup takes over after Skew_Time instead of Master_Down_Interval.
    pub fn shutdown(&mut self) -> Effects {
        let send = (self.state == State::Master).then_some(0);
        let became = (self.state != State::Initialize).then_some(State::Initialize);
        self.state = State::Initialize;
        self.timer = None;
        Effects {
            send,
            became,
            announce: false,
        }
    }

    /// The timers (§6.4.2 Master_Down_Timer, §6.4.3 Adver_Timer).
    pub fn tick(&mut self, now: Millis) -> Effects {
        match (self.state, self.timer) {
            (State::Backup, Some(t)) if now >= t => self.enter_master(now),
            (State::Master, Some(t)) if now >= t => {
                self.timer = Some(now + self.advert_ms());
                Effects {
                    send: Some(self.p.priority),
                    became: None,
                    announce: false,
                }
            }
            _ => Effects::default(),
        }
    }

    /// A valid advert for this virtual router (§6.4.2, §6.4.3).
    pub fn advert(&mut self, now: Millis, h: Heard) -> Effects {
        match self.state {
            State::Initialize => Effects::default(),
            State::Backup => {
                if h.priority == 0 {
                    self.timer = Some(now + self.skew_ms());
                } else if !self.preempts() || h.priority >= self.p.priority {
                    self.master_adver_int = h.max_adver_int.max(1);
                    self.timer = Some(now + self.master_down_ms());
                }
                Effects::default()
            }
            State::Master => {
                if h.priority == 0 {
                    self.timer = Some(now + self.advert_ms());
                    return Effects {
                        send: Some(self.p.priority),
                        became: None,
                        announce: false,
                    };
                }
                let wins = h.priority > self.p.priority
                    || (h.priority == self.p.priority && h.src > self.p.primary);
                if wins {
                    self.enter_backup(now, h.max_adver_int.max(1))
                } else {
                    // RFC 5798 discards it. Another router believes it is
                    // master (it started, or missed our adverts) and may
                    // have taken the addresses' ARP/ND entries: as
                    // keepalived does, advertise at once and announce the
                    // addresses again, so the network comes back to us.
                    self.timer = Some(now + self.advert_ms());
                    Effects {
                        send: Some(self.p.priority),
                        became: None,
                        announce: true,
                    }
                }
            }
        }
    }

    /// The address owner always preempts (§6.1).
    fn preempts(&self) -> bool {
        self.p.preempt || self.p.priority == 255
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const PEER_HIGH: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
    const PEER_LOW: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

    fn machine(priority: u8, preempt: bool) -> Machine {
        Machine::new(Params {
            priority,
            advert_int: 100,
            preempt,
            primary: ME,
        })
    }

    fn heard(src: Ipv4Addr, priority: u8) -> Heard {
        Heard {
            src,
            priority,
            max_adver_int: 100,
        }
    }

    #[test]
    fn intervals_follow_the_rfc_formulas() {
        // Priority 100, 1 s: skew = (156 × 100 cs) / 256 = 60.9375 cs.
        let m = machine(100, true);
        assert_eq!(m.skew_ms(), 609);
        assert_eq!(m.master_down_ms(), 3000 + 609);
        // Priority 254: skew 2 × 1000 ms / 256 = 7.8 ms.
        assert_eq!(machine(254, true).skew_ms(), 7);
        // Priority 1: 255/256 of the interval.
        assert_eq!(machine(1, true).skew_ms(), 996);
    }

    #[test]
    fn a_lone_router_becomes_master_after_master_down_interval() {
        let mut m = machine(100, true);
        let e = m.startup(1000);
        assert_eq!(e.became, Some(State::Backup));
        assert_eq!(e.send, None);
        assert_eq!(m.deadline(), Some(1000 + 3609));
        assert_eq!(m.tick(1000 + 3608), Effects::default());
        let e = m.tick(1000 + 3609);
        assert_eq!(e.became, Some(State::Master));
        assert_eq!(e.send, Some(100));
        // Then an advert every interval.
        assert_eq!(m.deadline(), Some(4609 + 1000));
        let e = m.tick(5609);
        assert_eq!((e.became, e.send), (None, Some(100)));
        assert_eq!(m.deadline(), Some(6609));
    }

    #[test]
    fn the_address_owner_is_master_at_once() {
        let mut m = machine(255, false);
        let e = m.startup(0);
        assert_eq!(e.became, Some(State::Master));
        assert_eq!(e.send, Some(255));
    }

    #[test]
    fn adverts_from_the_master_keep_a_backup_backup() {
        let mut m = machine(100, true);
        m.startup(0);
        for t in (1000..20_000).step_by(1000) {
            assert_eq!(m.advert(t, heard(PEER_HIGH, 200)), Effects::default());
            assert_eq!(m.tick(t + 1), Effects::default());
            assert_eq!(m.deadline(), Some(t + 3609));
        }
        assert_eq!(m.state(), State::Backup);
    }

    #[test]
    fn a_backup_learns_the_masters_interval() {
        let mut m = machine(100, true);
        m.startup(0);
        m.advert(
            0,
            Heard {
                src: PEER_HIGH,
                priority: 200,
                max_adver_int: 10,
            },
        );
        assert_eq!(m.master_adver_int(), 10);
        // 3 × 100 ms + (156 × 10 cs / 256 = 6.09 cs = 60 ms).
        assert_eq!(m.master_down_ms(), 360);
        assert_eq!(m.deadline(), Some(360));
    }

    #[test]
    fn a_priority_zero_advert_cuts_the_wait_to_skew_time() {
        let mut m = machine(100, true);
        m.startup(0);
        m.advert(500, heard(PEER_HIGH, 0));
        assert_eq!(m.deadline(), Some(500 + 609));
        assert_eq!(m.tick(1109).became, Some(State::Master));
    }

    #[test]
    fn with_preempt_a_higher_backup_ignores_a_lower_master_and_takes_over() {
        let mut m = machine(200, true);
        m.startup(0);
        let down = m.deadline().unwrap();
        // A lower master's adverts do not reset the timer.
        assert_eq!(m.advert(1000, heard(PEER_HIGH, 100)), Effects::default());
        assert_eq!(m.deadline(), Some(down));
        assert_eq!(m.tick(down).became, Some(State::Master));
    }

    #[test]
    fn without_preempt_a_higher_backup_stays_backup_under_a_lower_master() {
        let mut m = machine(200, false);
        m.startup(0);
        for t in (1000..20_000).step_by(1000) {
            m.advert(t, heard(PEER_HIGH, 100));
            m.tick(t + 1);
        }
        assert_eq!(m.state(), State::Backup);
    }

    #[test]
    fn a_master_yields_to_a_higher_priority_and_to_a_higher_address_at_equal_priority() {
        let mut m = machine(100, true);
        m.startup(0);
        m.tick(10_000);
        assert_eq!(m.state(), State::Master);
        // Lower priority, or equal from a lower address: stays master,
        // and answers the other would-be master at once, announcing again.
        let again = Effects {
            send: Some(100),
            became: None,
            announce: true,
        };
        assert_eq!(m.advert(10_100, heard(PEER_HIGH, 50)), again);
        assert_eq!(m.deadline(), Some(11_100));
        assert_eq!(m.advert(10_200, heard(PEER_LOW, 100)), again);
        assert_eq!(m.state(), State::Master);
        // Equal priority from a higher address: backup.
        let e = m.advert(10_300, heard(PEER_HIGH, 100));
        assert_eq!(e.became, Some(State::Backup));
        assert_eq!(m.deadline(), Some(10_300 + 3609));

        let mut m = machine(100, true);
        m.startup(0);
        m.tick(10_000);
        assert_eq!(
            m.advert(10_100, heard(PEER_LOW, 101)).became,
            Some(State::Backup)
        );
    }

    #[test]
    fn a_master_answers_a_priority_zero_advert_at_once() {
        let mut m = machine(100, true);
        m.startup(0);
        m.tick(10_000);
        let e = m.advert(10_100, heard(PEER_HIGH, 0));
        assert_eq!(
            e,
            Effects {
                send: Some(100),
                became: None,
                announce: false
            }
        );
        assert_eq!(m.deadline(), Some(11_100));
    }

    #[test]
    fn shutdown_of_a_master_sends_priority_zero() {
        let mut m = machine(100, true);
        m.startup(0);
        m.tick(10_000);
        let e = m.shutdown();
        assert_eq!(e.send, Some(0));
        assert_eq!(e.became, Some(State::Initialize));
        assert_eq!(m.deadline(), None);
        // A backup's shutdown sends nothing.
        let mut b = machine(100, true);
        b.startup(0);
        assert_eq!(b.shutdown().send, None);
        // Adverts in Initialize do nothing.
        assert_eq!(b.advert(5, heard(PEER_HIGH, 0)), Effects::default());
    }
}
