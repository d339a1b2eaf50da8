#!/usr/bin/env bash
# A rolling restart under load, measured: a three-node fleet (scripts/fleet.sh,
# Redis registry, shared PostgreSQL store, node links) behind HAProxy in TCP
# mode (send-proxy-v2, health checks on /readyz; the nodes run with
# --proxy-protocol --proxy-from 127.0.0.1, docs/DEPLOY.md), one-to-one load
# at a steady rate through HAProxy with `loadgen one-to-one --reconnect`,
# and each node in turn drained (SIGTERM), waited for and started again.
# It stops by itself after the last node is back and the load has drained.
#
# Usage: scripts/rolling-restart.sh [--pairs N] [--rate R] [--drain-delay D]
#                                   [--drain-period P] [--dir DIR] [--no-build]
#   --pairs N         sender/recipient pairs (2N connections; default 300)
#   --rate R          messages per second in total (default 600)
#   --drain-delay D   the nodes' --drain-delay, seconds (default 2)
#   --drain-period P  the nodes' --drain-period, seconds (default 10)
#   --dir DIR         state, logs and results (default /tmp/chatgw-rolling)
#   --no-build        use the release binaries already built
#
# Reports (and writes DIR/summary.txt): messages acknowledged and lost or
# duplicated, reconnects (all from loadgen), p99 delivery during the
# restarts, and the peak new connections per second the surviving nodes
# accepted (chatgw_connections_accepted_total, sampled every second, less
# the health checks' own rate) against the bound C / P for a node of C
# connections. Exit status 1 if anything acknowledged was lost or duplicated.
set -euo pipefail
cd "$(dirname "$0")/.."

PAIRS=300
RATE=600
DELAY=2
PERIOD=10
DIR=/tmp/chatgw-rolling
BUILD=1
BASE=18400
while [[ $# -gt 0 ]]; do
    case "$1" in
        --pairs) PAIRS="$2"; shift 2 ;;
        --rate) RATE="$2"; shift 2 ;;
        --drain-delay) DELAY="$2"; shift 2 ;;
        --drain-period) PERIOD="$2"; shift 2 ;;
        --dir) DIR="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "rolling-restart: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

NODES=3
BIN="${CARGO_TARGET_DIR:-target}/release"
FLEET_DIR="$DIR/fleet"
HAPROXY_PORT=$((BASE + 200))
log() { echo "rolling-restart: $*" >&2; }
admin_port() { echo $((BASE + 10 * $1 + 1)); }
metric() { curl -s "http://127.0.0.1:$(admin_port "$1")/metrics" 2> /dev/null | awk -v m="$2" '$1 == m {print $2}'; }
accepted() { metric "$1" chatgw_connections_accepted_total; }

command -v haproxy > /dev/null || { log "haproxy is missing (apt-get install haproxy)"; exit 2; }
if [[ $BUILD == 1 ]]; then
    log "building the release binaries"
    cargo build --release -q -p chatgw -p loadgen
fi
rm -rf "$DIR"
mkdir -p "$DIR"

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2> /dev/null || true; done
    scripts/fleet.sh down --dir "$FLEET_DIR" > /dev/null 2>&1 || true
}
trap cleanup EXIT

CHATGW_DRAIN_DELAY="${DELAY}s" CHATGW_DRAIN_PERIOD="${PERIOD}s" \
    CHATGW_FLEET_SERVE_ARGS="--proxy-protocol --proxy-from 127.0.0.1" \
    scripts/fleet.sh up --no-build --nodes "$NODES" --dir "$FLEET_DIR" --base-port "$BASE"
export CHATGW_DRAIN_DELAY="${DELAY}s" CHATGW_DRAIN_PERIOD="${PERIOD}s"
export CHATGW_FLEET_SERVE_ARGS="--proxy-protocol --proxy-from 127.0.0.1"

{
    cat << EOF
global
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend chat
    bind 127.0.0.1:$HAPROXY_PORT
    default_backend chatgw
backend chatgw
    balance leastconn
    option httpchk GET /readyz
    http-check expect status 200
    default-server send-proxy-v2 check inter 200ms fall 2 rise 2
EOF
    for ((i = 1; i <= NODES; i++)); do echo "    server n$i 127.0.0.1:$((BASE + 10 * i))"; done
} > "$DIR/haproxy.cfg"
haproxy -f "$DIR/haproxy.cfg" -db > "$DIR/haproxy.log" 2>&1 &
PIDS+=($!)
sleep 1

# Health checks alone: the accepted-connections rate with no load.
declare -A BASE_ACC
for ((i = 1; i <= NODES; i++)); do BASE_ACC[$i]="$(accepted "$i")"; done
sleep 2
CHECKS_PER_S=0
for ((i = 1; i <= NODES; i++)); do
    CHECKS_PER_S=$(awk -v a="$(accepted "$i")" -v b="${BASE_ACC[$i]}" -v c="$CHECKS_PER_S" 'BEGIN { r = (a - b) / 2; print (r > c ? r : c) }')
done

# Each node: drain delay + period + restart and readiness, with margin.
PER_NODE=$((DELAY + PERIOD + 6))
DURATION=$((10 + NODES * PER_NODE + 5))
log "loadgen: $PAIRS pairs, $RATE msg/s for ${DURATION}s through HAProxy 127.0.0.1:$HAPROXY_PORT"
"$BIN/loadgen" one-to-one --reconnect --url "127.0.0.1:$HAPROXY_PORT" --secret "$(cat "$FLEET_DIR/secret")" \
    --pairs "$PAIRS" --rate "$RATE" --duration "${DURATION}s" --drain 30s --conn-rate 500 --quiet \
    --json "$DIR/loadgen.json" > "$DIR/loadgen.txt" 2>&1 &
LOADGEN=$!
PIDS+=("$LOADGEN")

# Sample every node's accepted-connections counter once a second.
(
    while true; do
        now=$(date +%s)
        for ((i = 1; i <= NODES; i++)); do echo "$now $i $(accepted "$i")"; done
        sleep 1
    done
) > "$DIR/accepted.samples" &
PIDS+=($!)

sleep 10
START=$(date +%s)
for ((i = 1; i <= NODES; i++)); do
    pid="$(cat "$FLEET_DIR/node$i.pid")"
    log "node $i: SIGTERM (drain ${DELAY}s + ${PERIOD}s)"
    echo "$(date +%s) $i drain $(metric "$i" chatgw_connections_open)" >> "$DIR/windows"
    kill -TERM "$pid"
    while kill -0 "$pid" 2> /dev/null; do sleep 0.2; done
    echo "$(date +%s) $i stopped" >> "$DIR/windows"
    log "node $i: stopped; starting it again"
    scripts/fleet.sh start-node "$i" --dir "$FLEET_DIR" --base-port "$BASE"
    # Back in HAProxy's rotation once its /readyz has answered 200 twice.
    until curl -fs -o /dev/null --haproxy-protocol "http://127.0.0.1:$((BASE + 10 * i))/readyz" 2> /dev/null; do
        sleep 0.2
    done
    echo "$(date +%s) $i ready" >> "$DIR/windows"
    sleep 2
done
log "all nodes restarted in $(($(date +%s) - START)) s; waiting for loadgen"
STATUS=0
wait "$LOADGEN" || STATUS=$?

# Peak new connections per second at the survivors while each node
# drained: per second, the sum over the other nodes of their counters'
# increase, less their health checks; against the bound C / P for the C
# connections the node held when it was told to drain.
awk -v nodes="$NODES" -v checks="$CHECKS_PER_S" -v period="$PERIOD" '
    FNR == NR { if ($3 == "drain") { from[$2] = $1; held[$2] = $4 } if ($3 == "stopped") to[$2] = $1; next }
    { v[$1, $2] = $3; if (!($1 in seen)) { seen[$1] = 1; ts[++n] = $1 } }
    END {
        for (k = 2; k <= n; k++) {
            t = ts[k]; p = ts[k - 1]; sum = 0; during = 0
            for (d in from) if (t > from[d] && t <= to[d] + 1) { during = d }
            if (!during) continue
            for (i = 1; i <= nodes; i++) {
                if (i == during || v[t, i] == "" || v[p, i] == "") continue
                sum += (v[t, i] - v[p, i]) / (t - p) - checks
            }
            if (sum > peak[during]) peak[during] = sum
            total[during] += sum; secs[during]++
        }
        for (d = 1; d <= nodes; d++)
            printf "node %d drained: held %d connections, bound C/P = %.0f/s; survivors took peak %.0f/s, mean %.0f/s over %d s\n",
                d, held[d], held[d] / period, peak[d], (secs[d] ? total[d] / secs[d] : 0), secs[d]
    }' "$DIR/windows" "$DIR/accepted.samples" > "$DIR/new-connections.txt"

J="$DIR/loadgen.json"
figure() { python3 -c 'import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): v = v[k]
print(v)' "$J" "$1"; }
{
    echo "rolling restart: $NODES nodes behind HAProxy, drain delay ${DELAY}s, period ${PERIOD}s"
    echo "load: $PAIRS pairs ($((2 * PAIRS)) connections), $RATE msg/s for ${DURATION}s"
    echo "acked: $(figure acked) of $(figure scheduled) scheduled; lost: $(figure lost); duplicated: $(figure duplicated)"
    echo "reconnects: $(figure reconnects) (failed attempts $(figure reconnect_failures), gave up $(figure gave_up)); resent: $(figure resent)"
    echo "delivery (intended send -> delivered): p50 $(figure delivery_ms.p50_ms) ms, p99 $(figure delivery_ms.p99_ms) ms, max $(figure delivery_ms.max_ms) ms"
    echo "end -> synced again: p50 $(figure catch_up_ms.p50_ms) ms, p99 $(figure catch_up_ms.p99_ms) ms"
    echo "survivors' new connections per second (1 s samples of chatgw_connections_accepted_total, health checks ${CHECKS_PER_S}/s per node subtracted):"
    cat "$DIR/new-connections.txt"
    echo "loadgen exit status: $STATUS"
} | tee "$DIR/summary.txt"
[[ "$(figure lost)" == 0 && "$(figure duplicated)" == 0 ]]
