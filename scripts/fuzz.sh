#!/usr/bin/env bash
# scripts/fuzz.sh: build rvs's fuzz targets (fuzz/, cargo-fuzz's layout)
# with libFuzzer and coverage instrumentation on stable Rust, then run them.
#
#   scripts/fuzz.sh --ci [SECONDS]   every target SECONDS (default 10) over
#                                    its committed corpus: a regression run
#   scripts/fuzz.sh TARGET [SECONDS] one target for as long as asked (hours:
#                                    e.g. 14400), adding what it finds to
#                                    fuzz/corpus/TARGET
#   scripts/fuzz.sh --list           the targets
#
# A crash leaves its input in fuzz/artifacts/TARGET/ and fails the run;
# `fuzz/target/x86_64-unknown-linux-gnu/release/TARGET FILE` replays it.
# No sanitizer: rvs's own code is safe Rust outside src/dpdk, and the
# sanitizers need a nightly compiler.
set -euo pipefail
cd "$(dirname "$0")/.."

triple=x86_64-unknown-linux-gnu
targets=(wire pipeline ctl_frame ipvsadm config)
bin=fuzz/target/$triple/release

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }

build() {
    # The instrumentation libFuzzer's coverage needs, as cargo-fuzz passes
    # it; --target keeps it off build scripts and proc macros.
    RUSTFLAGS="-Cpasses=sancov-module \
        -Cllvm-args=-sanitizer-coverage-level=4 \
        -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
        -Cllvm-args=-sanitizer-coverage-pc-table \
        -Cllvm-args=-sanitizer-coverage-trace-compares \
        --cfg fuzzing" \
        cargo build --release --manifest-path fuzz/Cargo.toml --target "$triple" --bins
}

run() { # TARGET SECONDS NEWDIR
    local t=$1 secs=$2 new=$3
    mkdir -p "fuzz/artifacts/$t" "$new"
    echo "fuzz: $t for ${secs}s over fuzz/corpus/$t"
    "$bin/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 \
        -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 \
        "$new" "fuzz/corpus/$t"
}

case "${1:-}" in
--list) printf '%s\n' "${targets[@]}" ;;
--ci)
    secs=${2:-10}
    build
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    for t in "${targets[@]}"; do
        run "$t" "$secs" "$scratch/$t"
    done
    ;;
"" | -h | --help) usage ;;
*)
    t=$1
    [[ " ${targets[*]} " == *" $t "* ]] || { echo "fuzz.sh: no target $t (--list)" >&2; exit 2; }
    build
    run "$t" "${2:-3600}" "fuzz/corpus/$t"
    ;;
esac
