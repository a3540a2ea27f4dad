//! rvs: a DPDK poll-mode L4 load balancer that does what Linux IPVS does.
//!
//! The map of the modules is ../DESIGN.md (shared/DESIGN.md in the team repo).

pub mod announce;
pub mod config;
pub mod ctl;
pub mod daemon;
pub mod dataplane;
pub mod dpdk;
pub mod health;
pub mod ipvs;
pub mod keepalived;
pub mod laddr;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod netstack;
pub mod notify;
pub mod sessionlog;
pub mod version;
pub mod vrrp;
pub mod wire;
pub mod xmit;
