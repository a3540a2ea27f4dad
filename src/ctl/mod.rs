//! The management plane's front: ipvsadm 1.31's command-line grammar,
//! shared by `rvsadm` (so `ln -s rvsadm ipvsadm` keeps scripts working)
//! and `rvsd`'s management socket.
//!
//! [`parse`] takes an argv without argv[0]; [`parse_restore_line`] takes
//! one line of `-R` input. Both give a [`Command`] or the [`ParseError`]
//! ipvsadm would print, with its exit code.
pub mod engine;
pub mod entry;
pub mod format;
pub mod frame;
mod grammar;
pub mod laddr;
pub mod names;
mod persist;
mod popt;
pub mod server;
pub mod usage;
mod values;

#[cfg(test)]
mod option_walk;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tunnel_tests;

pub use grammar::{
    parse, parse_as, parse_restore_line, parse_restore_line_as, Command, DaemonConfig, ListOptions,
    ListView, ParseError, ProxyProtocol, ServiceExtras, SyncState, Tunnel, TunnelCsum,
    DEFAULT_MCAST_INTERFACE, DEFAULT_PERSISTENT_TIMEOUT, DEFAULT_SCHEDULER, PROGRAM,
};
