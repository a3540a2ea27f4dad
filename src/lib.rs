//! rvs: a DPDK poll-mode L4 load balancer that does what Linux IPVS does.
//!
//! The map of the modules is ../DESIGN.md (shared/DESIGN.md in the team repo).

// The packet seam and the vocabulary every layer counts in: below wire's
// users, xmit, netstack, ipvs and the dataplane, importing none of them.
pub mod counters;
pub mod packet;
// A worker's per-service table (schedulers, FULLNAT pools), below both.
pub mod slots;

pub mod announce;
pub mod config;
pub mod ctl;
pub mod daemon;
pub mod dataplane;
pub mod dpdk;
pub mod flowsteer;
pub mod health;
pub mod ipvs;
pub mod keepalived;
pub mod laddr;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod netstack;
pub mod notify;
pub mod rss;
pub mod sessionlog;
pub mod version;
pub mod vrrp;
pub mod wire;
pub mod xmit;
