//! Records what `rvsd --version` shows: the crate version, the git revision
//! the binary was built from and the DPDK version dpdk-sys was generated against.
use std::process::Command;

fn main() {
    let rev = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    let rev = if dirty { format!("{rev}-dirty") } else { rev };
    println!("cargo:rustc-env=RVS_GIT_REV={rev}");
    // dpdk-sys declares `links = "dpdk"` and prints `cargo:version=`.
    let dpdk = std::env::var("DEP_DPDK_VERSION").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=RVS_DPDK_VERSION={dpdk}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/index");
    println!("cargo:rerun-if-env-changed=DEP_DPDK_VERSION");
}
