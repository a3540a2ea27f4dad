#!/usr/bin/env bash
# scripts/package/check.sh DEB: checks a package built by scripts/package.sh
# without installing it on this machine (CI runs it from scripts/test.sh).
#   - dpkg-deb: the control fields, the conffiles and the files an operator
#     relies on are there; Depends names DPDK's libraries
#   - lintian: no errors or warnings
#   - unpacked into a scratch root: systemd-analyze verify on the units,
#     with ExecStart and Documentation resolved inside that root and any
#     complaint about the unit text a failure; both binaries' --version;
#     rvsd --check-config on the packaged /etc/rvs/rvsd.toml; the man pages
#     render without warnings
set -euo pipefail

DEB=${1:?usage: scripts/package/check.sh DEB}
[[ -f $DEB ]] || {
    echo "check.sh: no such package: $DEB" >&2
    exit 1
}
FAILED=0
ok() { printf 'ok    %s\n' "$*"; }
fail() {
    printf 'FAIL  %s\n' "$*"
    FAILED=1
}
# expect WHAT CMD...: ok WHAT when CMD succeeds, else a failure.
expect() {
    local what=$1
    shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}

# --- the archive ----------------------------------------------------------
field() { dpkg-deb --field "$DEB" "$1"; }
expect "Package: rvs" [ "$(field Package)" = rvs ]
depends=$(field Depends)
if [[ $depends == *librte-eal* && $depends == *libc6* && $depends == *librte-mempool-ring* ]]; then
    ok "Depends: $depends"
else
    fail "Depends lacks libc6, librte-eal or librte-mempool-ring: $depends"
fi
conffiles=$(dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./conffiles)
for c in /etc/rvs/rvsd.toml /etc/default/rvsd; do
    expect "conffile $c" grep -qx "$c" <<<"$conffiles"
done
contents=$(dpkg-deb --contents "$DEB")
for f in ./usr/sbin/rvsd ./usr/sbin/rvsadm ./lib/systemd/system/rvsd.service \
    ./lib/systemd/system/rvs-hugepages.service ./usr/lib/rvs/rvs-hugepages \
    ./lib/systemd/system/keepalived.service.d/rvsd.conf \
    ./usr/share/man/man8/rvsd.8.gz ./usr/share/man/man8/rvsadm.8.gz \
    ./usr/share/doc/rvs/copyright ./usr/share/doc/rvs/changelog.gz; do
    expect "contains $f" grep -q " $f\$" <<<"$contents"
done
if grep -v '^d' <<<"$contents" | grep -qv ' root/root '; then
    fail "files not owned by root:root"
else
    ok "every file owned by root:root"
fi

if command -v lintian >/dev/null 2>&1; then
    if out=$(lintian --fail-on error,warning --tag-display-limit 0 "$DEB" 2>&1); then
        ok "lintian: no errors or warnings"
    else
        fail "lintian:"
        printf '%s\n' "$out" | sed 's/^/      /'
    fi
else
    fail "lintian not installed (scripts/setup.sh installs it)"
fi

# --- unpacked -------------------------------------------------------------
ROOT=$(mktemp -d /tmp/rvs-pkgcheck.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
dpkg-deb -x "$DEB" "$ROOT"

# The units refer to units of systemd itself (dev-hugepages.mount,
# network-pre.target): the scratch root gets this machine's, as a root
# with systemd installed has them; the package's own files stay as they are.
mkdir -p "$ROOT/lib/systemd/system"
cp -rn /lib/systemd/system/. "$ROOT/lib/systemd/system/"
# Likewise ExecReload's /bin/kill, from procps, a dependency of the package.
grep -q '^Depends:.*\bprocps\b' <<<"$(dpkg-deb -f "$DEB")" || fail "Depends lacks procps (/bin/kill)"
mkdir -p "$ROOT/bin"
cp -n "$(readlink -f /bin/kill)" "$ROOT/bin/kill"
# --root makes systemd-analyze look for ExecStart's binaries in the root,
# and MANPATH makes Documentation=man: pages resolve to the package's.
# verify's status only counts fatal problems; a line it prints about the
# unit text (an unknown key, a bad value) is a failure too.
if out=$(MANPATH=$ROOT/usr/share/man systemd-analyze verify --root="$ROOT" \
    rvsd.service rvs-hugepages.service 2>&1) && [[ -z $out ]]; then
    ok "systemd-analyze verify rvsd.service rvs-hugepages.service"
else
    fail "systemd-analyze verify:"
    printf '%s\n' "$out" | sed 's/^/      /'
fi

for b in rvsd rvsadm; do
    if v=$("$ROOT/usr/sbin/$b" --version 2>&1); then
        ok "$b --version: $v"
    else
        fail "$b --version: $v"
    fi
done
if out=$("$ROOT/usr/sbin/rvsd" --check-config "$ROOT/etc/rvs/rvsd.toml" 2>&1); then
    ok "rvsd --check-config /etc/rvs/rvsd.toml: $out"
else
    fail "rvsd --check-config /etc/rvs/rvsd.toml:"
    printf '%s\n' "$out" | sed 's/^/      /'
fi
for m in rvsd rvsadm; do
    page=$ROOT/usr/share/man/man8/$m.8.gz
    if out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null) && [[ -z $out ]]; then
        ok "man --warnings -l $m.8.gz: no warnings"
    else
        fail "man --warnings -l $m.8.gz:"
        printf '%s\n' "$out" | sed 's/^/      /'
    fi
done
for s in rvs-hugepages; do
    expect "sh -n $s" sh -n "$ROOT/usr/lib/rvs/$s"
done

if ((FAILED)); then
    echo "check.sh: $DEB: FAILED"
    exit 1
fi
echo "check.sh: $DEB: all checks passed"
