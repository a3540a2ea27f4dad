#!/usr/bin/env bash
# scripts/package.sh: builds rvs's Debian package (rvs_VERSION_ARCH.deb)
# with dpkg-deb, from this checkout, on Debian 12 (scripts/setup.sh
# installs what it needs). Install it with `dpkg -i` or `apt install ./FILE`.
#
#   scripts/package.sh                 release build (the default)
#   scripts/package.sh --debug         package the debug build (CI: the tests
#                                      already built it; minutes cheaper)
#   scripts/package.sh --profile NAME  package cargo profile NAME
#   scripts/package.sh --no-build      package what is already built
#   scripts/package.sh --out DIR       write the .deb to DIR (default:
#                                      TARGET/package, TARGET being cargo's
#                                      target directory)
#   RVS_MAINTAINER='Name <mail>'       the Maintainer field
#
# Prints the path of the .deb as its last line. What goes in it:
#   /usr/sbin/rvsd, /usr/sbin/rvsadm (stripped)
#   ipvsadm, ipvsadm-save, ipvsadm-restore -> rvsadm (alternatives, postinst)
#   /etc/rvs/rvsd.toml (conf/rvsd-production.toml), /etc/default/rvsd
#   rvsd.service, rvs-hugepages.service (conf/systemd) and their helpers;
#   a keepalived.service drop-in ordering keepalived after rvsd
#   rvsd(8), rvsadm(8); copyright, changelog, example configs
# Depends: dpkg-shlibdeps over the binaries, plus the DPDK drivers EAL loads
# as plugins (mempool, buses, af_packet, tap), found with dpkg -S.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
SRC=$SCRIPT_DIR/package
# shellcheck source=scripts/target-dir.sh
source "$SCRIPT_DIR/target-dir.sh"

die() {
    printf 'package.sh: error: %s\n' "$*" >&2
    exit 1
}
say() { printf 'package.sh: %s\n' "$*" >&2; }

PROFILE=release BUILD=1 OUT=""
while (($#)); do
    case $1 in
    --debug) PROFILE=dev ;;
    --release) PROFILE=release ;;
    --profile)
        (($# > 1)) || die "--profile needs a name"
        PROFILE=$2
        shift
        ;;
    --no-build) BUILD=0 ;;
    --out)
        (($# > 1)) || die "--out needs a directory"
        OUT=$2
        shift
        ;;
    -h | --help)
        # The comment at the top of this file, up to the first code line.
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
        exit 0
        ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done

for t in cargo dpkg-deb dpkg-shlibdeps dpkg-architecture fakeroot gzip strip; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found (scripts/setup.sh installs it)"
done

cd "$REPO"
TARGET=$(rvs_target_dir "$REPO") || die "cannot find cargo's target directory"
# cargo's directory for a profile: dev builds land in debug/.
case $PROFILE in
dev) BIN_DIR=$TARGET/debug ;;
*) BIN_DIR=$TARGET/$PROFILE ;;
esac
if ((BUILD)); then
    say "cargo build --profile $PROFILE --bins"
    cargo build --profile "$PROFILE" --bins
fi
for b in rvsd rvsadm; do
    [[ -x $BIN_DIR/$b ]] || die "$BIN_DIR/$b not built (run without --no-build)"
done

# Version: Cargo.toml's, and the commit it was built from, so two builds of
# different commits never share a version. The commit count keeps them
# ordered along one branch.
CARGO_VERSION=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"name":"rvs","version":"\([^"]*\)".*/\1/p')
[[ -n $CARGO_VERSION ]] || die "cannot read rvs's version from cargo metadata"
VERSION=$CARGO_VERSION
if rev=$(git -C "$REPO" rev-parse --short=8 HEAD 2>/dev/null); then
    count=$(git -C "$REPO" rev-list --count HEAD)
    VERSION="$VERSION+git$count.$rev"
    if [[ -n $(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
        VERSION="$VERSION.dirty"
    fi
fi
ARCH=$(dpkg-architecture -qDEB_HOST_ARCH)
MAINTAINER=${RVS_MAINTAINER:-rvs developers <rvs@example.org>}
[[ -n $OUT ]] || OUT=$TARGET/package
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$TARGET/package/work
ROOT=$WORK/root
rm -rf "$WORK"
mkdir -p "$ROOT/DEBIAN"

# install MODE SRC DEST (DEST relative to the package root)
put() {
    install -D -m "$1" "$2" "$ROOT/$3"
}

say "assembling rvs $VERSION ($ARCH) from $BIN_DIR"
for b in rvsd rvsadm; do
    put 0755 "$BIN_DIR/$b" "usr/sbin/$b"
    # As dh_strip does: debug info stays in the build tree, not on servers.
    strip --remove-section=.comment --remove-section=.note --strip-unneeded "$ROOT/usr/sbin/$b"
done
put 0755 "$SRC/rvs-hugepages" usr/lib/rvs/rvs-hugepages
put 0644 "$REPO/conf/systemd/keepalived-after-rvsd.conf" lib/systemd/system/keepalived.service.d/rvsd.conf
put 0644 "$REPO/conf/systemd/rvsd.service" lib/systemd/system/rvsd.service
put 0644 "$REPO/conf/systemd/rvs-hugepages.service" lib/systemd/system/rvs-hugepages.service
put 0644 "$REPO/conf/rvsd-production.toml" etc/rvs/rvsd.toml
put 0644 "$REPO/conf/systemd/rvsd.default" etc/default/rvsd
for m in rvsd rvsadm; do
    put 0644 "$SRC/$m.8" "usr/share/man/man8/$m.8"
    gzip -9n "$ROOT/usr/share/man/man8/$m.8"
done
DOC=usr/share/doc/rvs
put 0644 "$REPO/README.md" "$DOC/README.md"
put 0644 "$REPO/conf/rvsd.toml" "$DOC/examples/rvsd.toml"
put 0644 "$REPO/conf/prometheus.yml" "$DOC/examples/prometheus.yml"
put 0644 "$REPO/conf/rvs-alerts.yml" "$DOC/examples/rvs-alerts.yml"

# copyright: rvs's licence, and the Rust crates linked into the binaries
# with theirs (cargo tree: normal dependencies only, no dev/build ones).
crates=$(cargo tree --offline -e normal --prefix none --format '{p} | {l}' -p rvs |
    sed 's/ (\*)$//' | grep -v ' (/' | sort -u) || die "cargo tree failed"
{
    cat <<EOF2
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: rvs
Comment: rvs is a DPDK poll-mode L4 load balancer that does what Linux IPVS
 does. The binaries link these Rust crates statically (name version |
 licence, from Cargo.lock):
EOF2
    printf ' %s\n' "${crates//$'\n'/$'\n' }"
    cat <<EOF2

Files: *
Copyright: 2026 the rvs authors
License: Apache-2.0

License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the "License"); you may not
 use this file except in compliance with the License.
 .
 On Debian systems, the complete text of the Apache License, Version 2.0,
 can be found in "/usr/share/common-licenses/Apache-2.0".
EOF2
} >"$WORK/copyright"
put 0644 "$WORK/copyright" "$DOC/copyright"

DATE=$(date -R -d "@$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || date +%s)")
{
    echo "rvs ($VERSION) unstable; urgency=medium"
    echo
    echo "  * Built from $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo 'a source tree without git')."
    echo
    echo " -- $MAINTAINER  $DATE"
} >"$WORK/changelog"
gzip -9nc "$WORK/changelog" >"$WORK/changelog.gz"
put 0644 "$WORK/changelog.gz" "$DOC/changelog.gz"

# Depends. dpkg-shlibdeps wants a debian/control to read; a minimal one.
mkdir -p "$WORK/debian"
printf 'Source: rvs\n\nPackage: rvs\nArchitecture: any\n' >"$WORK/debian/control"
shlibs=$(cd "$WORK" && dpkg-shlibdeps -O -e"$ROOT/usr/sbin/rvsd" -e"$ROOT/usr/sbin/rvsadm" 2>"$WORK/shlibdeps.err") || {
    cat "$WORK/shlibdeps.err" >&2
    die "dpkg-shlibdeps failed"
}
shlibs=${shlibs#shlibs:Depends=}
# EAL loads its drivers from its plugin directory, unseen by the linker:
# the mempool handler every packet pool needs, the buses, and the ports
# rvsd opens without a NIC driver (af_packet ports, the health checks' tap).
PMD_DIR=$(find "$(pkg-config --variable=libdir libdpdk)/dpdk" -maxdepth 1 -name 'pmds-*' | head -n 1)
[[ -d $PMD_DIR ]] || die "no DPDK plugin directory under $(pkg-config --variable=libdir libdpdk)/dpdk"
plugins=""
for p in mempool_ring bus_pci bus_vdev net_af_packet net_tap; do
    f=$(find "$PMD_DIR" -maxdepth 1 -name "librte_$p.so.*" | head -n 1)
    [[ -n $f ]] || die "DPDK driver librte_$p not found in $PMD_DIR"
    pkg=$(dpkg -S "$(readlink -f "$f")" 2>/dev/null | head -n 1 | cut -d: -f1) ||
        die "no installed package holds $f"
    [[ -n $pkg ]] || die "no installed package holds $f"
    plugins="$plugins, $pkg"
done
# rvsd.service's ExecReload sends SIGHUP with /bin/kill (procps).
DEPENDS="$shlibs$plugins, procps"
INSTALLED_SIZE=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)

cat >"$ROOT/DEBIAN/control" <<EOF2
Package: rvs
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $INSTALLED_SIZE
Depends: $DEPENDS
Recommends: dpdk
Suggests: prometheus
Section: net
Priority: optional
Homepage: https://github.com/rvs/rvs
Description: DPDK L4 load balancer, a drop-in for Linux IPVS
 rvs forwards packets for virtual services as the kernel's IPVS does, in
 user space on DPDK ports: FULLNAT, NAT, DR and TUN, IPv4 and IPv6, all 13
 IPVS schedulers, persistence and firewall-mark services, with its own
 health checks and Prometheus metrics.
 .
 rvsd is the daemon, run as a systemd service; rvsadm takes ipvsadm's
 commands and prints ipvsadm's output, and is installed as ipvsadm,
 ipvsadm-save and ipvsadm-restore through alternatives.
EOF2
cat >"$ROOT/DEBIAN/conffiles" <<EOF2
/etc/default/rvsd
/etc/rvs/rvsd.toml
EOF2
for s in postinst prerm postrm; do
    install -m 0755 "$SRC/$s" "$ROOT/DEBIAN/$s"
done
(cd "$ROOT" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' |
    sort -z | xargs -0 md5sum) >"$ROOT/DEBIAN/md5sums"
chmod 0644 "$ROOT/DEBIAN/control" "$ROOT/DEBIAN/conffiles" "$ROOT/DEBIAN/md5sums"

DEB=$OUT/rvs_${VERSION}_$ARCH.deb
# fakeroot: files owned by root:root in the archive, whoever builds it.
fakeroot dpkg-deb --build -Zxz "$ROOT" "$DEB" >/dev/null
say "built $DEB ($(du -h "$DEB" | cut -f1))"
echo "$DEB"
