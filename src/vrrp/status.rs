//! What /metrics reads of the virtual routers: written by the control
//! thread, read by the exporter.
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use super::machine::State;

/// Why a received VRRP message was not given to a machine (RFC 5798 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxDrop {
    Ttl,
    Version,
    Type,
    Length,
    Checksum,
    /// No instance on the port has the message's VRID.
    Vrid,
}

impl RxDrop {
    pub const ALL: [RxDrop; 6] = [
        RxDrop::Ttl,
        RxDrop::Version,
        RxDrop::Type,
        RxDrop::Length,
        RxDrop::Checksum,
        RxDrop::Vrid,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RxDrop::Ttl => "ttl",
            RxDrop::Version => "version",
            RxDrop::Type => "type",
            RxDrop::Length => "length",
            RxDrop::Checksum => "checksum",
            RxDrop::Vrid => "vrid",
        }
    }
}

/// The states as /metrics numbers them.
pub const STATES: [State; 3] = [State::Initialize, State::Backup, State::Master];

fn state_index(s: State) -> usize {
    match s {
        State::Initialize => 0,
        State::Backup => 1,
        State::Master => 2,
    }
}

/// One instance's numbers.
#[derive(Debug)]
pub struct InstanceStatus {
    pub name: String,
    pub vrid: u8,
    state: AtomicU8,
    transitions: [AtomicU64; 3],
    pub adverts_sent: AtomicU64,
    pub adverts_received: AtomicU64,
}

impl InstanceStatus {
    pub fn new(name: &str, vrid: u8) -> InstanceStatus {
        InstanceStatus {
            name: name.to_owned(),
            vrid,
            state: AtomicU8::new(0),
            transitions: Default::default(),
            adverts_sent: AtomicU64::new(0),
            adverts_received: AtomicU64::new(0),
        }
    }

    pub fn state(&self) -> State {
        STATES[usize::from(self.state.load(Ordering::Relaxed)).min(2)]
    }

    /// Records a transition into `s`.
    pub fn entered(&self, s: State) {
        let i = state_index(s);
        self.state.store(i as u8, Ordering::Relaxed);
        self.transitions[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn transitions(&self, to: State) -> u64 {
        self.transitions[state_index(to)].load(Ordering::Relaxed)
    }
}

/// All instances' numbers and the refused messages.
#[derive(Debug, Default)]
pub struct Status {
    pub instances: Vec<InstanceStatus>,
    dropped: [AtomicU64; 6],
}

impl Status {
    pub fn new(instances: Vec<InstanceStatus>) -> Status {
        Status {
            instances,
            dropped: Default::default(),
        }
    }

    pub fn refused(&self, r: RxDrop) {
        self.dropped[r as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn dropped(&self, r: RxDrop) -> u64 {
        self.dropped[r as usize].load(Ordering::Relaxed)
    }
}
