#!/usr/bin/env bash
# scripts/setup.sh: install what building, testing and demonstrating rvs
# needs on Debian 12. Idempotent: it only runs `apt-get update` and
# `apt-get install` when a package is missing, and only adds rustup
# components that are not there yet. It also reserves 256 hugepages (2 MiB)
# and mounts hugetlbfs, which DPDK's capture and telemetry tools need.
#
#   scripts/setup.sh            # as root, or as a user with sudo
#
# Rust itself is not installed from Debian: the machine image provides
# rustup's toolchain (~/.cargo/bin); this script fails with a message if
# cargo cannot be found.
set -euo pipefail

PACKAGES=(
    # DPDK 22.11: headers and libraries, basic tools, dpdk-testpmd
    libdpdk-dev dpdk-dev dpdk
    # bindgen and the C side of the build
    clang libclang-dev pkg-config build-essential
    # the demo and the integration tests (ethtool: veth checksum offload
    # off, or af_packet hands rvsd frames whose checksums nobody completes)
    iproute2 iputils-ping curl python3 procps ethtool
    # /etc/services: rvsadm's port names without -n
    netbase
    # an independent decoder of what reached a real server (IP options)
    tshark
    # pcap vdevs and capture files
    libpcap-dev
    # real HTTP servers behind the load balancer in the demo
    nginx-light
    # a short burst of real load through rvsd in the integration tests
    wrk iperf3
    # dissecting the GUE/GRE tunnel frames of the forwarding tests
    tshark
    # promtool and a Prometheus server for the metrics tests
    prometheus
    # BGP from each director and multipath at the router in the ECMP tests
    bird2
    # self-signed certificates for the HTTPS health-check tests
    openssl
    # bench/run: instructions per packet (callgrind)
    valgrind
    # scripts/package.sh and its check: dpkg-shlibdeps, fakeroot,
    # systemd-analyze verify, man --warnings, lintian
    dpkg-dev fakeroot systemd man-db lintian
)

log() { printf 'setup: %s\n' "$*"; }
warn() { printf 'setup: warning: %s\n' "$*" >&2; }
die() {
    printf 'setup: error: %s\n' "$*" >&2
    exit 1
}

# --- Debian packages ------------------------------------------------------
command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script is for Debian 12"

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ $status == "install ok installed" ]]; then
        log "installed: $pkg"
    else
        log "missing:   $pkg"
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} > 0)); then
    SUDO=()
    if [[ $EUID -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 ||
            die "not root and sudo not found; run as root to install: ${missing[*]}"
        SUDO=(sudo)
    fi
    log "running: apt-get update"
    "${SUDO[@]}" apt-get update
    log "running: apt-get install -y --no-install-recommends ${missing[*]}"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}"
else
    log "all ${#PACKAGES[@]} Debian packages are installed; apt-get not needed"
fi

if dpdk_version=$(pkg-config --modversion libdpdk 2>/dev/null); then
    log "pkg-config libdpdk: $dpdk_version"
else
    die "pkg-config cannot find libdpdk after installing libdpdk-dev"
fi

# --- Hugepages -------------------------------------------------------------
# dpdk-dumpcap and dpdk-telemetry.py attach to rvsd through a shared EAL
# config, which cannot live in --no-huge memory. Without root, or in a
# container that refuses, only capture and telemetry are lost: warn.
HUGEPAGES=256 # x 2 MiB
hugepages() {
    local nr=/proc/sys/vm/nr_hugepages have
    have=$(cat "$nr" 2>/dev/null || echo 0)
    if ((have >= HUGEPAGES)); then
        log "hugepages: $have reserved"
    elif [[ $EUID -ne 0 ]]; then
        warn "hugepages: $have reserved, want $HUGEPAGES; run as root to reserve them"
        return
    elif echo "$HUGEPAGES" >"$nr" 2>/dev/null && have=$(cat "$nr") && ((have >= HUGEPAGES)); then
        log "hugepages: reserved $have"
    else
        warn "hugepages: only $have of $HUGEPAGES reserved (memory too fragmented, or a container?); capture and telemetry need them"
    fi
    if grep -qs ' /dev/hugepages hugetlbfs ' /proc/mounts; then
        log "hugetlbfs: mounted on /dev/hugepages"
    elif [[ $EUID -ne 0 ]]; then
        warn "hugetlbfs: not mounted on /dev/hugepages; run as root to mount it"
    elif mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null; then
        log "hugetlbfs: mounted on /dev/hugepages"
    else
        warn "hugetlbfs: cannot mount on /dev/hugepages; capture and telemetry need it"
    fi
}
hugepages

# --- Rust -----------------------------------------------------------------
cargo_bin="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin"
if [[ -d $cargo_bin && ":$PATH:" != *":$cargo_bin:"* ]]; then
    PATH="$cargo_bin:$PATH"
    export PATH
fi
command -v cargo >/dev/null 2>&1 ||
    die "cargo not found (looked in PATH and $cargo_bin). The machine image is expected to provide rustup's Rust toolchain (rust-version 1.77 or newer, see Cargo.toml); install it with rustup (https://rustup.rs) and run this again."
log "cargo: $(cargo --version)"

components=()
if rustfmt --version >/dev/null 2>&1; then
    log "rustfmt: $(rustfmt --version)"
else
    components+=(rustfmt)
fi
if cargo clippy --version >/dev/null 2>&1; then
    log "clippy: $(cargo clippy --version)"
else
    components+=(clippy)
fi
if ((${#components[@]} > 0)); then
    if command -v rustup >/dev/null 2>&1; then
        log "running: rustup component add ${components[*]}"
        if ! rustup component add "${components[@]}"; then
            warn "rustup component add ${components[*]} failed (offline?); building works without them, but cargo fmt / cargo clippy will not"
        fi
    else
        warn "rustup not found; cannot add ${components[*]} (cargo fmt / cargo clippy will not work)"
    fi
fi

log "done"
