//! What `--version` shows.

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_REV: &str = env!("RVS_GIT_REV");
/// The DPDK version found by pkg-config when rvs was built.
pub const DPDK_BUILD: &str = env!("RVS_DPDK_VERSION");

/// e.g. "rvsd 0.1.0 (git 1234abcd, built against DPDK 22.11.11)".
pub fn long(prog: &str) -> String {
    format!("{prog} {VERSION} (git {GIT_REV}, built against DPDK {DPDK_BUILD})")
}
