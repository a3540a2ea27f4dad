#!/usr/bin/env bash
# The test command (README, .ci/run): installs what it needs, then runs the
# format check, clippy, unit tests, the DPDK (EAL, net_pcap) tests, the
# network-namespace tests, the Debian package and its check, a short run of
# every fuzz target, and bench/run --quick. Needs root for the namespaces
# and af_packet.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

if [ "$(id -u)" != 0 ]; then
    echo "scripts/test.sh: the DPDK and network-namespace tests need root (ip netns, af_packet); run as root" >&2
    exit 1
fi
if ! ip netns add rvs-probe-$$ 2>/dev/null; then
    echo "scripts/test.sh: this machine cannot create network namespaces; the netns tests cannot run" >&2
    exit 1
fi
ip netns del rvs-probe-$$

step() { printf '\n=== %s\n' "$*"; }

step "cargo fmt --check (rvs, and the fuzz crate beside it)"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test (unit, DPDK pcap, netns, start-up)"
cargo test --workspace --lib --bins --tests

# The debug build the tests just made: the package's assembly, units and
# config are what is checked here, and a release build would cost minutes.
step "scripts/package.sh --debug, then scripts/package/check.sh on the .deb"
deb=$(scripts/package.sh --debug)
scripts/package/check.sh "$deb"

step "scripts/fuzz.sh --ci 10 (every fuzz target 10 s over its committed corpus)"
scripts/fuzz.sh --ci 10

step "bench/run --quick (the benchmark harness works and packets flow; no speed asserted)"
bench/run --quick

echo
echo "scripts/test.sh: all passed"
