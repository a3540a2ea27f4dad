#!/usr/bin/env bash
# scripts/demo.sh: rvsd as a FULLNAT load balancer between a client and two
# real HTTP servers, all in network namespaces (see scripts/netns.sh), on
# this machine: the client's requests to the VIP 198.18.0.100:80 reach both
# servers (round robin), which see rvsd's address 198.19.0.1 as the source.
# Root only.
#
#   scripts/demo.sh up      set up packages, build, start everything, leave it running
#   scripts/demo.sh down    stop rvsd (showing its counters) and remove everything
#   scripts/demo.sh smoke   up, check, down; exit 0 only if every check passed
#                           (the default)
#
# Environment:
#   RVS_NS_PREFIX      namespace prefix (default rvsdemo, 1-13 characters)
#   RVS_RUN_DIR        pid files, logs, configs (default /tmp/rvs-demo/PREFIX)
#   RVSD               rvsd binary (default TARGET/release/rvsd, TARGET being
#                      cargo's target directory: CARGO_TARGET_DIR or target/)
#   RVSADM             rvsadm binary (default TARGET/release/rvsadm)
#   RVS_SKIP_SETUP=1   do not run scripts/setup.sh
#   RVS_SKIP_BUILD=1   do not run cargo build --release
#   RVS_HTTP=nginx|python   real server implementation (default: nginx if
#                      installed, else python3 -m http.server)
#   RVS_READY_TIMEOUT  seconds to wait for rvsd to answer ping (default 20)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
# shellcheck source=scripts/netns.sh
source "$SCRIPT_DIR/netns.sh"
# shellcheck source=scripts/target-dir.sh
source "$SCRIPT_DIR/target-dir.sh"

P=$(rvs_prefix)
RUN=$(rvs_run_dir)
CFG=$RUN/rvsd.toml
LOG=$RUN/rvsd.log
PIDF=$RUN/rvsd.pid
RULES=$RUN/rules
# `down` must work without cargo (after a broken install): target/ then.
CARGO_BIN="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin"
[[ -d $CARGO_BIN && ":$PATH:" != *":$CARGO_BIN:"* ]] && PATH="$CARGO_BIN:$PATH"
TARGET=$(rvs_target_dir "$REPO" 2>/dev/null) || TARGET=$REPO/target
RVSD=${RVSD:-$TARGET/release/rvsd}
RVSADM=${RVSADM:-$TARGET/release/rvsadm}
# Where rvsadm looks when neither --socket nor RVS_SOCKET says otherwise
# (rvs::config::DEFAULT_CTL_SOCKET): `up` links it to the demo's socket
# when nothing else is there, so a plain `rvsadm -Ln` reaches the demo.
DEFAULT_SOCKET=/run/rvsd.sock
# The virtual service: FULLNAT, round robin over both real servers.
VIP=198.18.0.100
SMOKE_REQUESTS=10
READY_TIMEOUT=${RVS_READY_TIMEOUT:-20}
NS_CLI=$(rvs_ns cli)
NS_GW=$(rvs_ns gw)
# Exit status of rvsd when this shell started and reaped it; "" if unknown.
RVSD_STATUS=""

say() { printf '==> %s\n' "$*"; }
warn() { printf 'demo.sh: warning: %s\n' "$*" >&2; }
die() {
    printf 'demo.sh: error: %s\n' "$*" >&2
    exit 1
}

need_root() {
    [[ $EUID -eq 0 ]] || die "network namespaces need root; run: sudo $0 ${1:-}"
}

# Whether PID is a live (not zombie) process.
pid_alive() {
    [[ -n $1 && -e /proc/$1 ]] || return 1
    ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# Whether PID is a live process whose command name is NAME.
pid_is() {
    pid_alive "$1" && [[ $(cat "/proc/$1/comm" 2>/dev/null) == "$2" ]]
}

# Wait up to $2 seconds (polling) for PID $1 to exit; fail if it did not.
wait_exit() {
    local pid=$1 deadline=$((SECONDS + $2))
    while pid_alive "$pid"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

http_impl() {
    case ${RVS_HTTP:-auto} in
    nginx | python) echo "$RVS_HTTP" ;;
    auto) if command -v nginx >/dev/null 2>&1; then echo nginx; else echo python; fi ;;
    *) die "RVS_HTTP must be nginx, python or auto, not '$RVS_HTTP'" ;;
    esac
}

# --- real servers -----------------------------------------------------------

# start_http NAME V4 V6: an HTTP server on port 80 in namespace PREFIX-NAME,
# serving a page that names it, with its pid, logs and temp files in RUN/NAME.
start_http() {
    local name=$1 v4=$2 v6=$3 ns dir impl user
    ns=$(rvs_ns "$name")
    dir=$RUN/$name
    impl=$(http_impl)
    mkdir -p "$dir/www" "$dir/tmp"
    chmod a+rx "$RUN"
    printf 'rvs demo real server %s (%s, %s)\n' "$name" "$v4" "$v6" >"$dir/www/index.html"
    chmod -R a+rX "$dir"
    if [[ $impl == nginx ]]; then
        if id -u www-data >/dev/null 2>&1; then user="www-data www-data"; else user="nobody nogroup"; fi
        cat >"$dir/nginx.conf" <<EOF
# nginx for the rvs demo's real server $name (namespace $ns)
user $user;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 256; }
http {
    access_log $dir/access.log;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    default_type text/plain;
    server {
        listen 80 default_server;
        listen [::]:80 default_server;
        root $dir/www;
        index index.html;
        add_header X-Real-Server $name;
    }
}
EOF
        say "starting nginx in $ns ($v4, $v6)"
        ip netns exec "$ns" nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf" ||
            die "nginx failed to start in $ns; see $dir/error.log"
    else
        say "starting python3 -m http.server in $ns ($v4, $v6) (nginx not installed)"
        setsid ip netns exec "$ns" python3 -m http.server 80 --bind :: --directory "$dir/www" \
            </dev/null >"$dir/http.log" 2>&1 &
        echo "$!" >"$dir/http.pid"
    fi
}

# Wait (bounded) until the HTTP server of NAME answers on its loopback.
wait_http() {
    local name=$1 deadline=$((SECONDS + 10))
    until rvs_ns_exec "$name" curl -fsS --max-time 1 -o /dev/null http://127.0.0.1/ 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            warn "the HTTP server in $(rvs_ns "$name") does not answer yet"
            return 0
        fi
        sleep 0.1
    done
}

stop_http() {
    local name=$1 dir pid
    dir=$RUN/$name
    if [[ -f $dir/nginx.pid ]]; then
        pid=$(<"$dir/nginx.pid")
        if pid_is "$pid" nginx; then
            say "stopping nginx in $(rvs_ns "$name") (pid $pid)"
            kill -QUIT "$pid" 2>/dev/null || true
            wait_exit "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    if [[ -f $dir/http.pid ]]; then
        pid=$(<"$dir/http.pid")
        if pid_is "$pid" python3; then
            say "stopping python3 http.server in $(rvs_ns "$name") (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
            wait_exit "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$dir/nginx.pid" "$dir/http.pid"
}

# --- rvsd -------------------------------------------------------------------

start_rvsd() {
    say "starting rvsd in $NS_GW (log $LOG)"
    # setsid: rvsd outlives this script and the terminal (for `up`); run
    # from a script without job control, it execs in place, so $! is rvsd.
    setsid ip netns exec "$NS_GW" "$RVSD" --config "$CFG" </dev/null >"$LOG" 2>&1 &
    echo "$!" >"$PIDF"
}

# Poll until the client can ping rvsd's client-side address, at most
# READY_TIMEOUT seconds; fail early if rvsd exits.
wait_ready() {
    local pid deadline=$((SECONDS + READY_TIMEOUT))
    pid=$(<"$PIDF")
    say "waiting up to ${READY_TIMEOUT}s for rvsd to answer ping $RVS_GW_CLI_V4 from $NS_CLI"
    while :; do
        if ! pid_alive "$pid"; then
            echo "---- $LOG" >&2
            cat "$LOG" >&2 || true
            die "rvsd (pid $pid) exited during start-up"
        fi
        if ip netns exec "$NS_CLI" ping -n -q -c 1 -W 1 "$RVS_GW_CLI_V4" >/dev/null 2>&1; then
            say "rvsd answers ping after $((READY_TIMEOUT - (deadline - SECONDS)))s"
            return 0
        fi
        if ((SECONDS >= deadline)); then
            echo "---- $LOG" >&2
            cat "$LOG" >&2 || true
            die "rvsd did not answer ping $RVS_GW_CLI_V4 within ${READY_TIMEOUT}s"
        fi
        sleep 0.2
    done
}

# Find rvsd: from the pid file, else by name inside the gateway namespace
# (after a crash of this script or a half-made `up`).
find_rvsd() {
    local pid=""
    [[ -f $PIDF ]] && pid=$(<"$PIDF")
    if [[ -n $pid ]] && pid_is "$pid" rvsd; then
        echo "$pid"
        return 0
    fi
    if rvs_ns_exists "$NS_GW"; then
        for pid in $(ip netns pids "$NS_GW" 2>/dev/null); do
            if pid_is "$pid" rvsd; then
                echo "$pid"
                return 0
            fi
        done
    fi
    return 0
}

stop_rvsd() {
    local pid
    pid=$(find_rvsd)
    if [[ -z $pid ]]; then
        say "rvsd is not running"
    else
        say "stopping rvsd (pid $pid) with SIGTERM"
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_exit "$pid" 15; then
            warn "rvsd (pid $pid) still runs 15s after SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            wait_exit "$pid" 5 || warn "rvsd (pid $pid) survived SIGKILL"
        fi
        # When this shell started rvsd, collect its exit status.
        if wait "$pid" 2>/dev/null; then
            RVSD_STATUS=0
        else
            local st=$?
            if [[ $st -ne 127 ]]; then RVSD_STATUS=$st; fi
        fi
        if [[ -n $RVSD_STATUS ]]; then say "rvsd exited with status $RVSD_STATUS"; fi
    fi
    rm -f "$PIDF"
    if [[ -f $LOG ]]; then
        if grep -q '^rvsd: stopped' "$LOG"; then
            say "rvsd counter summary (from $LOG):"
            sed -n '/^rvsd: stopped/,$p' "$LOG" | sed 's/^/    /'
        elif [[ -n $pid ]]; then
            warn "no counter summary in $LOG; its last lines:"
            tail -n 20 "$LOG" | sed 's/^/    /' >&2
        else
            warn "rvsd had already exited without a counter summary (crashed or killed?); last lines of $LOG:"
            tail -n 20 "$LOG" | sed 's/^/    /' >&2
        fi
    fi
}

# Links DEFAULT_SOCKET to the demo's socket unless something else is there
# (a packaged rvsd's socket, say): that one is left alone.
link_default_socket() {
    local sock=$1
    # A link whose socket is gone is what a crashed demo leaves behind.
    if [[ -L $DEFAULT_SOCKET && ! -e $DEFAULT_SOCKET ]]; then
        rm -f "$DEFAULT_SOCKET"
    fi
    if [[ -e $DEFAULT_SOCKET || -L $DEFAULT_SOCKET ]]; then
        warn "$DEFAULT_SOCKET exists (another rvsd?); rvsadm needs RVS_SOCKET=$sock for the demo"
        return 0
    fi
    mkdir -p "$(dirname "$DEFAULT_SOCKET")"
    ln -s "$sock" "$DEFAULT_SOCKET"
    say "linked $DEFAULT_SOCKET to $sock: rvsadm reaches the demo without RVS_SOCKET"
}

# Whether DEFAULT_SOCKET is the demo's link.
default_socket_is_ours() {
    [[ -L $DEFAULT_SOCKET && $(readlink "$DEFAULT_SOCKET") == "$RUN/rvsd.sock" ]]
}

unlink_default_socket() {
    if default_socket_is_ours; then
        rm -f "$DEFAULT_SOCKET"
        say "removed the link $DEFAULT_SOCKET"
    fi
}

# --- commands ---------------------------------------------------------------

ensure_cargo() {
    local bin="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin"
    if [[ -d $bin && ":$PATH:" != *":$bin:"* ]]; then
        PATH="$bin:$PATH"
        export PATH
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo not found; run scripts/setup.sh"
}

# A value of a `key = "value"` line of the config.
config_value() {
    sed -n "s/^$1 = \"\(.*\)\"\$/\1/p" "$CFG" | head -n 1
}

cmd_up() {
    need_root up
    if [[ ${RVS_SKIP_SETUP:-0} != 1 ]]; then
        say "package setup: scripts/setup.sh"
        bash "$SCRIPT_DIR/setup.sh"
    fi
    if [[ ${RVS_SKIP_BUILD:-0} != 1 ]]; then
        ensure_cargo
        say "building: cargo build --release"
        (cd "$REPO" && cargo build --release)
    fi
    [[ -x $RVSD ]] || die "$RVSD not found or not executable (build with cargo build --release, or set RVSD)"
    say "$("$RVSD" --version | head -n 1)"

    # Whatever an earlier run left behind goes first.
    if rvs_topo_exists || [[ -f $PIDF ]]; then
        say "cleaning up an earlier run"
        cmd_down
    fi
    mkdir -p "$RUN"
    rm -rf "$RUN/rs1" "$RUN/rs2"
    rm -f "$LOG" "$PIDF" "$CFG" "$RULES" "$RUN/rvsd.sock"

    say "creating namespaces ($P-*)"
    rvs_topo_up || die "could not create the topology"

    start_http rs1 "$RVS_RS1_V4" "$RVS_RS1_V6"
    start_http rs2 "$RVS_RS2_V4" "$RVS_RS2_V6"

    write_rules
    rvs_topo_write_config "$CFG" "$RUN" "$RULES" || die "could not write $CFG"
    "$RVSD" --check-config "$CFG" || die "rvsd rejects $CFG"

    start_rvsd
    wait_ready
    link_default_socket "$(config_value socket)"
    wait_http rs1
    wait_http rs2
}

# The services rvsd sets up at start ([ctl] rules), in ipvsadm-save syntax:
# -b is FULLNAT (DPVS's spelling); with no -P local address, rvsd takes the
# servers port's own address, 198.19.0.1, as the source the servers see.
write_rules() {
    cat >"$RULES" <<EOF
-A -t $VIP:80 -s rr
-a -t $VIP:80 -r $RVS_RS1_V4:80 -b -w 1
-a -t $VIP:80 -r $RVS_RS2_V4:80 -b -w 1
--check-set -t $VIP:80 checktype=negotiate service=http request=/ 'receive=rvs demo real server' checkinterval=0.5 checktimeout=1 fall=3 rise=1
EOF
}

# rvsadm ARGS...: rvsadm on the demo's management socket.
rvsadm() {
    RVS_SOCKET=$(config_value socket) "$RVSADM" "$@"
}

print_usage_info() {
    local sock metrics listing env socket_note
    sock=$(config_value socket)
    if default_socket_is_ours; then
        env=""
        socket_note="(rvsadm's default socket $DEFAULT_SOCKET links to the demo's $sock until \`$0 down\`)"
    else
        env="RVS_SOCKET=$sock "
        socket_note="($DEFAULT_SOCKET, rvsadm's default, belongs to something else: RVS_SOCKET names the demo's)"
    fi
    metrics=$(config_value listen)
    if [[ -x $RVSADM ]]; then
        listing=$(rvsadm -Ln 2>&1) || listing="(rvsadm -Ln failed: $listing)"
    else
        listing="($RVSADM not found; build with cargo build --release)"
    fi
    cat <<EOF

rvs demo is up (prefix $P). Namespaces:
  $P-cli   client          $RVS_CLI_V4/24  $RVS_CLI_V6/64   (interface ${P}c0)
  $P-gw    rvsd            client port gwc: $RVS_GW_CLI_V4, $RVS_GW_CLI_V6
                             servers port gws: $RVS_GW_SRV_V4, $RVS_GW_SRV_V6
  $P-sw    bridge br0 joining gws, rs1 and rs2
  $P-rs1   real server     $RVS_RS1_V4, $RVS_RS1_V6   ($(http_impl) on port 80)
  $P-rs2   real server     $RVS_RS2_V4, $RVS_RS2_V6   ($(http_impl) on port 80)

The load balancer: FULLNAT service $VIP:80, round robin over rs1 and rs2,
set up from $RULES. Run this twice, and each server answers in turn:
  ip netns exec $P-cli curl http://$VIP/
The services; the conns, with FULLNAT's local address; the counters:
  $env$RVSADM -Ln
  $env$RVSADM -Lnc
  $env$RVSADM -Ln --stats
$socket_note

rvsadm -Ln:
$(printf '%s\n' "$listing" | sed 's/^/  /')

Also:
  ip netns exec $P-cli ping $VIP
  ip netns exec $P-cli ping $RVS_GW_CLI_V4
  ip netns exec $P-cli ping $RVS_GW_CLI_V6
  ip netns exec $P-rs1 ping $RVS_GW_SRV_V4
  ip netns exec $P-rs1 curl http://127.0.0.1/

rvsd:    pid $(cat "$PIDF"), log $LOG
config:  $CFG
ctl:     socket $sock (for rvsadm$(default_socket_is_ours && echo ", linked from $DEFAULT_SOCKET"))
metrics: ip netns exec $P-gw curl http://$metrics/metrics
Stop:    $0 down
EOF
}

cmd_down() {
    need_root down
    stop_rvsd
    unlink_default_socket
    stop_http rs1
    stop_http rs2
    rvs_topo_down || warn "some namespaces could not be removed"
    rm -f "$RUN/rvsd.sock"
    if [[ -d $RUN ]]; then
        say "down; logs kept in $RUN"
    else
        say "down"
    fi
}

# --- smoke ------------------------------------------------------------------

RESULTS=()
FAILED=0

# check NAME CMD...: run a check, record and print PASS/FAIL with its output
# on failure.
check() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then
        RESULTS+=("PASS  $name")
        printf 'PASS  %s\n' "$name"
    else
        RESULTS+=("FAIL  $name")
        FAILED=1
        printf 'FAIL  %s\n' "$name"
        printf '%s\n' "$out" | sed 's/^/      /'
    fi
}

# ping3 NS-SUFFIX ADDR: 3 pings, all of which must be answered.
ping3() {
    local out
    out=$(rvs_ns_exec "$1" ping -n -c 3 -i 0.2 -W 2 "$2" 2>&1) || true
    printf '%s\n' "$out"
    grep -Eq '3 packets transmitted, 3 received' <<<"$out"
}

# http_local NAME: the real server answers on its namespace's loopback, v4 and v6.
http_local() {
    local body4 body6
    body4=$(rvs_ns_exec "$1" curl -fsS --max-time 5 http://127.0.0.1/) || return 1
    body6=$(rvs_ns_exec "$1" curl -fsS --max-time 5 'http://[::1]/') || return 1
    printf '127.0.0.1: %s\n[::1]: %s\n' "$body4" "$body6"
    [[ $body4 == *"server $1 "* && $body6 == *"server $1 "* ]]
}

# The summary rvsd printed on exit shows echo replies > 0.
summary_echo_replies() {
    local n
    grep -q '^rvsd: stopped' "$LOG" || {
        echo "no summary in $LOG"
        return 1
    }
    n=$(sed -n 's/.*echo replies \([0-9][0-9]*\).*/\1/p' "$LOG" | awk '{s += $1} END {print s + 0}')
    echo "echo replies: $n"
    ((n > 0))
}

# N curls from the client through the VIP: all must succeed and both real
# servers must answer.
curl_vip() {
    local i body rs1=0 rs2=0
    for ((i = 0; i < SMOKE_REQUESTS; i++)); do
        body=$(rvs_ns_exec cli curl -fsS --noproxy '*' --max-time 5 "http://$VIP/") || {
            echo "request $((i + 1)) of $SMOKE_REQUESTS failed"
            return 1
        }
        case $body in
        *"server rs1 "*) rs1=$((rs1 + 1)) ;;
        *"server rs2 "*) rs2=$((rs2 + 1)) ;;
        *) echo "unexpected answer: $body" ;;
        esac
    done
    echo "$SMOKE_REQUESTS requests: rs1 answered $rs1, rs2 answered $rs2"
    ((rs1 > 0 && rs2 > 0 && rs1 + rs2 == SMOKE_REQUESTS))
}

# The weight rvsadm -Ln shows for a real server of the VIP.
weight_of() {
    rvsadm -Ln | awk -v rs="$1:80" '$1 == "->" && $2 == rs { print $4 }'
}

# Both real servers pass rvsd's HTTP check, which reaches them through
# rvsd's exception path from $RVS_CHECK_V4.
checks_pass() {
    local out deadline=$((SECONDS + 10))
    until out=$(rvsadm --check-list) &&
        grep -Eq "$RVS_RS1_V4:80 up passed [1-9]" <<<"$out" &&
        grep -Eq "$RVS_RS2_V4:80 up passed [1-9]" <<<"$out"; do
        if ((SECONDS >= deadline)); then
            printf '%s\n' "$out"
            return 1
        fi
        sleep 0.2
    done
    printf '%s\n' "$out"
}

# wait_weight ADDR W: wait until the real server's listed weight is W.
wait_weight() {
    local deadline=$((SECONDS + 10))
    until [[ $(weight_of "$1") == "$2" ]]; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

# Stop rs1's HTTP server: the check quiesces it (weight 0) and every request
# reaches rs2; start it again: it gets its weight back and answers again.
health_failover() {
    local i body
    stop_http rs1
    wait_weight "$RVS_RS1_V4" 0 || {
        echo "rs1 was not quiesced: $(rvsadm -Ln)"
        return 1
    }
    echo "rs1 stopped: quiesced, weight $(weight_of "$RVS_RS1_V4")"
    for ((i = 0; i < 6; i++)); do
        body=$(rvs_ns_exec cli curl -fsS --noproxy '*' --max-time 5 "http://$VIP/") || return 1
        [[ $body == *"server rs2 "* ]] || {
            echo "answer from elsewhere than rs2: $body"
            return 1
        }
    done
    echo "6 requests, all answered by rs2"
    start_http rs1 "$RVS_RS1_V4" "$RVS_RS1_V6"
    wait_http rs1
    wait_weight "$RVS_RS1_V4" 1 || {
        echo "rs1 did not come back: $(rvsadm -Ln)"
        return 1
    }
    echo "rs1 started: back with weight 1"
    grep -E "health: .* is (gone|back)" "$LOG"
}

# The real servers saw rvsd's local address (FULLNAT), never the client's.
servers_see_laddr() {
    local name f seen=0
    for name in rs1 rs2; do
        for f in "$RUN/$name/access.log" "$RUN/$name/http.log"; do
            [[ -f $f ]] || continue
            if grep -Eq "^(::ffff:)?$RVS_CLI_V4 " "$f"; then
                echo "$f: the client's address $RVS_CLI_V4 reached $name"
                return 1
            fi
            if grep -Eq "^(::ffff:)?$RVS_GW_SRV_V4 " "$f"; then
                echo "$name: requests from $RVS_GW_SRV_V4"
                seen=$((seen + 1))
            fi
        done
    done
    ((seen == 2))
}

# rvsadm -Lnc lists the FULLNAT conns with their local address.
fullnat_conns() {
    local out
    out=$(rvsadm -Lnc) || return 1
    printf '%s\n' "$out"
    grep -Eq " $VIP:80 +$RVS_GW_SRV_V4:[0-9]+ " <<<"$out"
}

# A plain rvsadm, with neither --socket nor RVS_SOCKET, reaches the demo
# through the link `up` made (when the default socket was free).
default_socket_answers() {
    if ! default_socket_is_ours; then
        echo "$DEFAULT_SOCKET is not the demo's (something else was there); nothing to check"
        return 0
    fi
    local out
    out=$(env -u RVS_SOCKET "$RVSADM" -Ln) || return 1
    printf '%s\n' "$out"
    grep -q "TCP  $VIP:80 rr" <<<"$out"
}

rvsd_exit_zero() {
    echo "exit status: ${RVSD_STATUS:-unknown}"
    [[ $RVSD_STATUS == 0 ]]
}

smoke_cleanup() {
    local rc=$?
    trap - EXIT
    set +e
    echo
    echo "FAIL  smoke aborted (status $rc); tearing down"
    cmd_down
    exit $((rc == 0 ? 1 : rc))
}

cmd_smoke() {
    need_root smoke
    trap smoke_cleanup EXIT
    cmd_up
    echo
    say "checks"
    check "client pings $RVS_GW_CLI_V4" ping3 cli "$RVS_GW_CLI_V4"
    check "client pings $RVS_GW_CLI_V6" ping3 cli "$RVS_GW_CLI_V6"
    check "rs1 pings $RVS_GW_SRV_V4" ping3 rs1 "$RVS_GW_SRV_V4"
    check "rs1 pings $RVS_GW_SRV_V6" ping3 rs1 "$RVS_GW_SRV_V6"
    check "rs2 pings $RVS_GW_SRV_V4" ping3 rs2 "$RVS_GW_SRV_V4"
    check "rs2 pings $RVS_GW_SRV_V6" ping3 rs2 "$RVS_GW_SRV_V6"
    check "rs1 HTTP on its loopback" http_local rs1
    check "rs2 HTTP on its loopback" http_local rs2
    check "client pings the VIP $VIP" ping3 cli "$VIP"
    check "$SMOKE_REQUESTS curls through the VIP $VIP, both servers answer" curl_vip
    check "real servers see rvsd's local address $RVS_GW_SRV_V4" servers_see_laddr
    check "rvsadm -Lnc shows the FULLNAT conns" fullnat_conns
    check "rvsadm -Ln without RVS_SOCKET reaches the demo ($DEFAULT_SOCKET)" default_socket_answers
    check "health checks reach both servers via rvsd's exception path" checks_pass
    check "rs1 stopped: the check quiesces it; started: it is back" health_failover
    echo
    cmd_down
    trap - EXIT
    echo
    check "rvsd exited with status 0" rvsd_exit_zero
    check "rvsd summary shows echo replies > 0" summary_echo_replies

    echo
    say "smoke results"
    printf '  %s\n' "${RESULTS[@]}"
    if ((FAILED)); then
        echo "smoke: FAIL"
        return 1
    fi
    echo "smoke: PASS"
}

main() {
    local cmd=${1:-smoke}
    case $cmd in
    up)
        # A failed `up` leaves nothing half-made behind.
        trap 'rc=$?; trap - EXIT; set +e; if ((rc)); then echo "up failed; tearing down" >&2; cmd_down; fi; exit $rc' EXIT
        trap 'exit 130' INT TERM
        cmd_up
        trap - EXIT
        print_usage_info
        ;;
    down) cmd_down ;;
    smoke)
        trap 'exit 130' INT TERM
        cmd_smoke
        ;;
    -h | --help | help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown command '$cmd' (use up, down or smoke)" ;;
    esac
}

main "$@"
