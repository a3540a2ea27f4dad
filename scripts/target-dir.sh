# shellcheck shell=bash
# Sourced by the scripts that run what cargo built. rvs_target_dir prints
# cargo's target directory for this workspace as cargo itself resolves it
# (CARGO_TARGET_DIR, build.target-dir in a .cargo/config.toml, else
# target/), so the scripts find the binaries wherever cargo put them.
rvs_target_dir() {
    local repo=${1:-.} json dir
    json=$(cd "$repo" && cargo metadata --format-version 1 --no-deps) || {
        echo "cannot run cargo metadata in $repo" >&2
        return 1
    }
    dir=$(sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p' <<<"$json")
    [[ -n $dir ]] || {
        echo "cargo metadata names no target_directory" >&2
        return 1
    }
    printf '%s\n' "$dir"
}
