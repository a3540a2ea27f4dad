# shellcheck shell=bash disable=SC2034 # a library: its variables are for callers
# scripts/netns.sh: a library (source it, do not run it) that builds the rvs
# test topology out of network namespaces, so that all traffic stays inside
# them. Needs root and iproute2.
#
#   source scripts/netns.sh
#   RVS_NS_PREFIX=mytest        # optional, default "rvsdemo"; 1-13 characters
#   rvs_topo_up                 # create (re-create) the namespaces
#   rvs_topo_write_config FILE [RUN_DIR [RULES]]
#   ip netns exec "$(rvs_ns gw)" target/release/rvsd --config FILE
#   rvs_topo_down               # kill what runs inside, delete the namespaces
#
# With prefix P:
#
#   P-cli                 P-gw (rvsd)                P-sw              P-rs1
#   Pc0  <--- veth --->  gwc       gws  <--- veth ---> sw-gw  \         rs1
#   198.18.0.2/24        (no kernel addresses:         br0 ---- sw-rs1 <-> 198.19.0.11/24
#   fd00:18::2/64         rvsd owns 198.18.0.1/24,          \              fd00:19::11/64
#                         fd00:18::1/64 on gwc and          sw-rs2 <-> rs2 (P-rs2)
#                         198.19.0.1/24, fd00:19::1/64              198.19.0.12/24
#                         on gws via af_packet)                     fd00:19::12/64
#
# Default routes: the client via 198.18.0.1 / fd00:18::1, the real servers
# via 198.19.0.1 / fd00:19::1. Every function returns non-zero on failure
# (it does not rely on the caller's `set -e`) and sets no shell options.

# The namespaces' suffixes, in the order rvs_topo_down removes them.
RVS_NS_SUFFIXES=(cli rs1 rs2 sw gw)

# Addresses of the topology, for callers (tests, demo).
RVS_CLI_V4=198.18.0.2
RVS_CLI_V6=fd00:18::2
RVS_GW_CLI_V4=198.18.0.1
RVS_GW_CLI_V6=fd00:18::1
RVS_GW_SRV_V4=198.19.0.1
RVS_GW_SRV_V6=fd00:19::1
RVS_RS1_V4=198.19.0.11
RVS_RS1_V6=fd00:19::11
RVS_RS2_V4=198.19.0.12
RVS_RS2_V6=fd00:19::12
# Where rvsd's health checks leave from (its exception path to the kernel).
RVS_CHECK_V4=198.19.0.250

# rvs_prefix: the namespace prefix in use.
rvs_prefix() { printf '%s\n' "${RVS_NS_PREFIX:-rvsdemo}"; }

# rvs_ns SUFFIX: the full name of one namespace (rvs_ns gw -> rvsdemo-gw).
rvs_ns() { printf '%s-%s\n' "$(rvs_prefix)" "$1"; }

# rvs_ns_exec SUFFIX CMD...: run a command inside one namespace.
rvs_ns_exec() {
    local ns
    ns=$(rvs_ns "$1") || return 1
    shift
    ip netns exec "$ns" "$@"
}

# rvs_run_dir: where the demo and configs keep pid files, logs and sockets.
rvs_run_dir() { printf '%s\n' "${RVS_RUN_DIR:-/tmp/rvs-demo/$(rvs_prefix)}"; }

# rvs_ns_exists NAME: whether the namespace NAME (full name) exists.
rvs_ns_exists() {
    ip netns list 2>/dev/null | awk '{print $1}' | grep -qxF -- "$1"
}

# rvs_topo_exists: whether any namespace of the topology exists.
rvs_topo_exists() {
    local s
    for s in "${RVS_NS_SUFFIXES[@]}"; do
        rvs_ns_exists "$(rvs_ns "$s")" && return 0
    done
    return 1
}

_rvs_check_prefix() {
    local p
    p=$(rvs_prefix)
    # "${p}c0" is an interface name and must fit IFNAMSIZ-1 = 15 characters.
    if [[ ! $p =~ ^[A-Za-z0-9][A-Za-z0-9_-]{0,12}$ ]]; then
        echo "netns.sh: RVS_NS_PREFIX '$p' is invalid: 1 to 13 characters from A-Z a-z 0-9 _ - (the interface ${p}c0 must fit in 15)" >&2
        return 1
    fi
}

# Run a command; on failure say which, and fail.
_rvs() {
    "$@" || {
        echo "netns.sh: failed: $*" >&2
        return 1
    }
}

# Turn off checksum and segmentation offloads of a kernel veth end, so that
# what af_packet hands rvsd carries full checksums and is at most MTU sized.
# Best effort: without ethtool, ping and ARP/ND still work (setup.sh installs it).
_rvs_no_offload() {
    if ! command -v ethtool >/dev/null 2>&1; then
        echo "netns.sh: warning: ethtool not found; with checksum offload on $2, forwarded TCP and UDP get bad checksums" >&2
        return 0
    fi
    ip netns exec "$1" ethtool -K "$2" tx off tso off gso off gro off >/dev/null 2>&1 || true
}

# rvs_topo_up: create the topology (removing a leftover one first).
rvs_topo_up() {
    _rvs_check_prefix || return 1
    local p cli gw sw rs1 rs2 ns ifc i
    p=$(rvs_prefix)
    cli="$p-cli" gw="$p-gw" sw="$p-sw" rs1="$p-rs1" rs2="$p-rs2"

    if rvs_topo_exists; then
        echo "netns.sh: removing leftover namespaces with prefix $p"
        rvs_topo_down || return 1
    fi

    for ns in "$cli" "$gw" "$sw" "$rs1" "$rs2"; do
        _rvs ip netns add "$ns" || return 1
        _rvs ip -n "$ns" link set lo up || return 1
    done
    # The gateway's kernel must stay silent on gwc/gws (rvsd owns them), and
    # the switch is plain layer 2: no IPv6 on interfaces created there.
    for ns in "$gw" "$sw"; do
        _rvs ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 || return 1
    done
    # Elsewhere, no duplicate address detection delay, link-local included.
    for ns in "$cli" "$rs1" "$rs2"; do
        _rvs ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.accept_dad=0 || return 1
    done

    # Links. Each pair is created inside a namespace with its peer placed
    # directly into another, so nothing ever appears in the caller's one.
    _rvs ip -n "$gw" link add gwc type veth peer name "${p}c0" netns "$cli" || return 1
    _rvs ip -n "$gw" link add gws type veth peer name sw-gw netns "$sw" || return 1
    _rvs ip -n "$rs1" link add rs1 type veth peer name sw-rs1 netns "$sw" || return 1
    _rvs ip -n "$rs2" link add rs2 type veth peer name sw-rs2 netns "$sw" || return 1

    # The switch: a bridge without STP delay or multicast snooping, so that
    # ARP and ND multicast reach every port from the first packet.
    _rvs ip -n "$sw" link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0 || return 1
    for ifc in sw-gw sw-rs1 sw-rs2; do
        _rvs ip -n "$sw" link set "$ifc" master br0 || return 1
        _rvs ip -n "$sw" link set "$ifc" up || return 1
    done
    _rvs ip -n "$sw" link set br0 up || return 1

    # The gateway: up, no kernel addresses, no IPv6, not promiscuous (the
    # af_packet PMD asks for promiscuous reception itself when configured).
    for ifc in gwc gws; do
        _rvs ip netns exec "$gw" sysctl -qw "net.ipv6.conf.$ifc.disable_ipv6=1" || return 1
        _rvs ip -n "$gw" link set "$ifc" promisc off || return 1
        _rvs ip -n "$gw" link set "$ifc" up || return 1
        _rvs_no_offload "$gw" "$ifc"
    done

    # The client.
    _rvs ip netns exec "$cli" sysctl -qw "net.ipv6.conf.${p}c0.accept_dad=0" || return 1
    _rvs_no_offload "$cli" "${p}c0"
    _rvs ip -n "$cli" link set "${p}c0" up || return 1
    _rvs ip -n "$cli" addr add "$RVS_CLI_V4/24" dev "${p}c0" || return 1
    _rvs ip -n "$cli" addr add "$RVS_CLI_V6/64" dev "${p}c0" nodad || return 1
    _rvs ip -n "$cli" route add default via "$RVS_GW_CLI_V4" dev "${p}c0" || return 1
    _rvs ip -n "$cli" -6 route add default via "$RVS_GW_CLI_V6" dev "${p}c0" || return 1

    # The real servers.
    for i in 1 2; do
        ns="$p-rs$i" ifc="rs$i"
        local v4="RVS_RS${i}_V4" v6="RVS_RS${i}_V6"
        _rvs ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$ifc.accept_dad=0" || return 1
        _rvs_no_offload "$ns" "$ifc"
        _rvs ip -n "$ns" link set "$ifc" up || return 1
        _rvs ip -n "$ns" addr add "${!v4}/24" dev "$ifc" || return 1
        _rvs ip -n "$ns" addr add "${!v6}/64" dev "$ifc" nodad || return 1
        _rvs ip -n "$ns" route add default via "$RVS_GW_SRV_V4" dev "$ifc" || return 1
        _rvs ip -n "$ns" -6 route add default via "$RVS_GW_SRV_V6" dev "$ifc" || return 1
    done
    echo "netns.sh: topology up: $cli $gw $sw $rs1 $rs2"
}

# rvs_topo_down: kill every process inside the topology's namespaces (TERM,
# then KILL after 5 s) and delete them. Missing namespaces are fine.
rvs_topo_down() {
    _rvs_check_prefix || return 1
    local s ns pids i rc=0
    for s in "${RVS_NS_SUFFIXES[@]}"; do
        ns=$(rvs_ns "$s")
        rvs_ns_exists "$ns" || continue
        pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ' || true)
        if [[ -n ${pids// /} ]]; then
            echo "netns.sh: stopping processes in $ns: $pids"
            # shellcheck disable=SC2086 # a list of pids
            kill -TERM $pids 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do
                pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ' || true)
                [[ -z ${pids// /} ]] && break
                sleep 0.1
            done
            if [[ -n ${pids// /} ]]; then
                echo "netns.sh: killing processes left in $ns: $pids"
                # shellcheck disable=SC2086 # a list of pids
                kill -KILL $pids 2>/dev/null || true
            fi
        fi
        if ip netns del "$ns"; then
            echo "netns.sh: deleted namespace $ns"
        else
            echo "netns.sh: could not delete namespace $ns" >&2
            rc=1
        fi
    done
    return "$rc"
}

# rvs_topo_write_config FILE [RUN_DIR [RULES]]: write an rvsd configuration
# for this topology: port "client" on gwc and port "servers" on gws, the
# management socket under RUN_DIR (default: rvs_run_dir), metrics on
# 127.0.0.1:9360 inside the gateway namespace. RULES (an absolute path, in
# ipvsadm-save syntax) becomes [ctl] rules: services rvsd sets up at start.
rvs_topo_write_config() {
    local file=${1:?rvs_topo_write_config: FILE missing} run rules=${3:-}
    run=${2:-$(rvs_run_dir)}
    local sock="$run/rvsd.sock" rules_line=""
    if [[ -n $rules ]]; then
        if [[ $rules != /* ]]; then
            echo "netns.sh: rules file $rules must be an absolute path" >&2
            return 1
        fi
        rules_line="rules = \"$rules\""
    fi
    if ((${#sock} > 107)); then
        echo "netns.sh: socket path $sock is longer than 107 bytes; use a shorter RVS_RUN_DIR" >&2
        return 1
    fi
    _rvs mkdir -p "$(dirname "$file")" "$run" || return 1
    cat >"$file" <<EOF || return 1
# rvsd configuration for the network-namespace topology of scripts/netns.sh
# (prefix $(rvs_prefix)). Written by rvs_topo_write_config; see
# conf/rvsd.toml for every key.

[eal]
# No hugepages and no files left behind: fine for af_packet on veth pairs.
args = ["--no-huge", "--no-shconf", "-m", "256"]

[dataplane]
main_lcore = 0
workers = [1]

[[port]]
name = "client"
devargs = "net_af_packet0,iface=gwc"
queues = 1
addresses = ["$RVS_GW_CLI_V4/24", "$RVS_GW_CLI_V6/64"]

[[port]]
name = "servers"
devargs = "net_af_packet1,iface=gws"
queues = 1
addresses = ["$RVS_GW_SRV_V4/24", "$RVS_GW_SRV_V6/64"]

# No [[route]]: the client and the real servers are on the ports' connected
# subnets.

[health]
# Health checks leave from this address, which rvsd owns on the servers
# port and connects to this namespace's kernel through a tap (rvs-hc0).
sources = ["$RVS_CHECK_V4"]

[ctl]
socket = "$sock"
$rules_line

[metrics]
# Inside the gateway namespace: ip netns exec $(rvs_ns gw) curl http://127.0.0.1:9360/metrics
listen = "127.0.0.1:9360"

[log]
level = "info"
EOF
}
