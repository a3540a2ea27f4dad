//! The LVS model: services, real servers (dests), the 14 schedulers,
//! persistence templates, connection tracking and statistics.
//!
//! Pure Rust with no DPDK type anywhere: the dataplane drives it with packet
//! tuples, the control plane with ipvsadm-style commands. Behaviour follows
//! the kernel's net/netfilter/ipvs (see ipvs-reference.md in shared/).

pub mod conn;
pub mod conn_row;
pub mod defense;
pub mod dest;
pub mod dest_refs;
pub mod error;
pub mod estimator;
pub mod fwmark;
pub mod pe_sip;
pub mod persist;
pub mod proto;
pub mod proto_sctp;
pub mod proxy_proto;
pub mod sched;
pub mod seqadj;
pub mod service;
pub mod stats;
pub mod sync;
pub mod syncookie;
pub mod tunnel;
pub mod tuple;
pub mod wheel;

pub use conn::{Conn, ConnExpress, ConnId, ConnRef, ConnTable, TableFull};
pub use conn_row::ConnRow;
pub use dest::{Dest, DestConfig, FwdMethod};
pub use error::IpvsError;
pub use estimator::Rates;
pub use persist::{schedule, SchedCtx, SchedError, TemplateKey};
pub use proto::{Direction, TcpState, Timeouts};
pub use sched::{SchedFlags, Scheduler};
pub use service::{
    Netmask, Protocol, Service, ServiceConfig, ServiceKey, ServiceSet, ServiceTable,
};
pub use stats::{Stats, StatsSnapshot};
pub use tunnel::{Tunnel, TunnelCsum};
pub use tuple::Tuple;

/// Milliseconds on a monotonic clock (the same clock as the netstack's).
pub type Millis = u64;
