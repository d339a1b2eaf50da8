#!/usr/bin/env bash
# Fleet figures on one box (BENCHMARKS.md, "Fleet"): a three-node fleet
# (scripts/fleet.sh: its own Redis and PostgreSQL) measured in one session.
#
# usage: scripts/fleet-bench.sh [BIN_DIR]
#   BIN_DIR  directory holding release builds of chatgw and loadgen
#            (default: the workspace's target/release)
# Environment:
#   RATES       one-to-one offered rates, each run same-node and cross-node
#               (default "1000 3000")
#   PAIRS       sender/recipient pairs (default 300)
#   DURATION    seconds per one-to-one run (default 10)
#   GROUP_RATE  group messages/s over 4 groups of 256 spread over the nodes
#               (default 50)
#   CONNS       idle connections over the three nodes (default 45000)
#   OUT         results directory (default target/fleet-bench/<timestamp>)
#
# Measured per one-to-one run: delivered msg/s, send -> deliver p50/p99 and
# gateway CPU per message (the load generator; the three node processes
# summed), Redis CPU and PostgreSQL CPU per message (from /proc over the
# whole loadgen run), Redis commands per delivered message (Redis's own
# total_commands_processed), link frames and link targets per message (the
# nodes' chatgw_fleet_* counters). Then a group run (fan-out p99 with
# members on all three nodes), idle connections over the nodes (memory per
# connection, Redis memory per online user), and a failover: node 2 is
# SIGKILLed under load, its users reconnect to the others and sync; the
# time until each is synced and the ghost window (until the survivors stop
# counting the dead node live) are reported. Bounded: about 5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-${CARGO_TARGET_DIR:-target}/release}
RATES="${RATES:-1000 3000}"
PAIRS="${PAIRS:-300}"
DURATION="${DURATION:-10}"
GROUP_RATE="${GROUP_RATE:-50}"
CONNS="${CONNS:-45000}"
OUT="${OUT:-target/fleet-bench/$(date +%Y%m%d-%H%M%S)}"
BASE=18400
DIR=/tmp/chatgw-fleet-bench
for b in chatgw loadgen; do
    [ -x "$BIN/$b" ] || { echo "missing $BIN/$b: cargo build --release -p chatgw -p loadgen" >&2; exit 2; }
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
log() { printf '[fleet-bench] %s\n' "$*" >&2; }

fleet() { CARGO_TARGET_DIR="$(dirname "$BIN")" scripts/fleet.sh "$@" --dir "$DIR" --base-port "$BASE"; }
cleanup() { fleet down >/dev/null 2>&1 || true; }
trap cleanup EXIT
ulimit -n 20000 || true

start_fleet() {
    fleet down >/dev/null 2>&1 || true
    fleet up --no-build 2>"$OUT/fleet-up.log"
    SECRET=$(cat "$DIR/secret")
    PIDS=$(cat "$DIR"/node{1,2,3}.pid | paste -sd,)
    URLS="127.0.0.1:$((BASE + 10)),127.0.0.1:$((BASE + 20)),127.0.0.1:$((BASE + 30))"
    ADMINS="127.0.0.1:$((BASE + 11)),127.0.0.1:$((BASE + 21)),127.0.0.1:$((BASE + 31))"
    REDIS_PID=$(cat "$DIR/redis.pid")
    POSTMASTER=$(head -n 1 "$DIR/postgres/data/postmaster.pid")
}
REDIS=(redis-cli -p $((BASE + 100)))
ticks() {
    local total=0 p
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] && total=$((total + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
pg_ticks() { ticks "$POSTMASTER" $(pgrep -P "$POSTMASTER"); }
redis_info() { "${REDIS[@]}" info "$1" | tr -d '\r' | awk -F: -v k="$2" '$1 == k { print $2 }'; }
# A counter summed over the three nodes' /metrics.
fleet_metric() {
    local total=0 i v
    for i in 1 2 3; do
        v=$(curl -s "127.0.0.1:$((BASE + 10 * i + 1))/metrics" | awk -v m="$1" '$1 == m { print $2; f = 1 } END { if (!f) print 0 }')
        total=$(echo "$total + $v" | bc)
    done
    echo "$total"
}
# measure NAME LOADGEN-ARGS...: one loadgen run on the running fleet;
# NAME.json (loadgen) and NAME.fleet (Redis, PostgreSQL, link figures).
measure() {
    local name=$1
    shift
    local p0 r0 c0 l0 t0 g0
    p0=$(pg_ticks); r0=$(ticks "$REDIS_PID"); c0=$(redis_info stats total_commands_processed)
    l0=$(fleet_metric chatgw_fleet_link_events_sent_total); t0=$(fleet_metric chatgw_fleet_link_targets_sent_total)
    g0=$(fleet_metric chatgw_fleet_registry_commands_total)
    # Redis's command counter every half second: its median rate is the
    # steady state (users connecting and leaving fall at the ends).
    (while true; do echo "$(date +%s%N) $(redis_info stats total_commands_processed)"; sleep 0.5; done) \
        >"$OUT/$name.redis" 2>/dev/null &
    local sampler=$!
    "$BIN/loadgen" "$@" --secret "$SECRET" --quiet --json "$OUT/$name.json" >"$OUT/$name.txt" 2>&1 \
        || log "loadgen $name failed: see $OUT/$name.txt"
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    local p1 r1 c1 l1 t1 g1
    p1=$(pg_ticks); r1=$(ticks "$REDIS_PID"); c1=$(redis_info stats total_commands_processed)
    l1=$(fleet_metric chatgw_fleet_link_events_sent_total); t1=$(fleet_metric chatgw_fleet_link_targets_sent_total)
    g1=$(fleet_metric chatgw_fleet_registry_commands_total)
    echo "pg_ticks=$((p1 - p0)) redis_ticks=$((r1 - r0)) redis_cmds=$((c1 - c0)) link_frames=$(echo "$l1 - $l0" | bc) link_targets=$(echo "$t1 - $t0" | bc) node_cmds=$(echo "$g1 - $g0" | bc)" \
        >"$OUT/$name.fleet"
}

start_fleet
log "fleet up: $URLS (pids $PIDS); results in $OUT"
for rate in $RATES; do
    for placement in same cross; do
        log "one-to-one at $rate msg/s, $placement-node"
        measure "o2o_${placement}_$rate" one-to-one --url "$URLS" "--$placement-node" --pairs "$PAIRS" \
            --rate "$rate" --duration "$DURATION" --gateway-pid "$PIDS"
    done
done
log "4 groups of 256 over three nodes at $GROUP_RATE msg/s"
measure group_cross group --url "$URLS" --cross-node --groups 4 --size 256 --rate "$GROUP_RATE" \
    --duration "$DURATION" --gateway-pid "$PIDS" --gateway-admin "$ADMINS"

log "$CONNS idle connections over three nodes"
used0=$(redis_info memory used_memory)
keys0=$("${REDIS[@]}" dbsize)
"$BIN/loadgen" connect --url "$URLS" --conns "$CONNS" --procs 3 --rate 5000 --hold 15 --secret "$SECRET" \
    --gateway-pid "$PIDS" --gateway-admin "$ADMINS" --quiet --json "$OUT/connect.json" >"$OUT/connect.txt" 2>&1 &
lg=$!
peak_keys=0
peak_used=0
while kill -0 "$lg" 2>/dev/null; do
    k=$("${REDIS[@]}" dbsize)
    if [ "$k" -gt "$peak_keys" ]; then
        peak_keys=$k
        peak_used=$(redis_info memory used_memory)
    fi
    sleep 1
done
wait "$lg" || log "loadgen connect failed: see $OUT/connect.txt"
echo "keys0=$keys0 used0=$used0 peak_keys=$peak_keys peak_used=$peak_used" >"$OUT/connect.redis"

log "failover: node 2 SIGKILLed under load"
start_fleet
victim_pid=$(cat "$DIR/node2.pid")
survivors="$(cat "$DIR/node1.pid"),$(cat "$DIR/node3.pid")"
"$BIN/loadgen" failover --url "$URLS" --pairs "$PAIRS" --rate 1000 --duration 30 --kill-after 10 \
    --cross-node --victim-url "127.0.0.1:$((BASE + 20))" --victim-pid "$victim_pid" --settle 30 \
    --gateway-admin "$ADMINS" --gateway-pid "$survivors" --secret "$SECRET" --quiet \
    --json "$OUT/failover.json" >"$OUT/failover.txt" 2>&1 || log "loadgen failover failed: see $OUT/failover.txt"

python3 - "$OUT" "$(getconf CLK_TCK)" <<'PY'
import json, os, sys
out, hz = sys.argv[1], int(sys.argv[2])
def load(name):
    j = json.load(open(os.path.join(out, name + ".json")))
    s = dict(kv.split("=") for kv in open(os.path.join(out, name + ".fleet")).read().split())
    return j, {k: float(v) for k, v in s.items()}
def steady_cmds(name):
    """Median Redis commands/s between half-second samples."""
    pts = [tuple(map(int, l.split())) for l in open(os.path.join(out, name + ".redis")) if len(l.split()) == 2]
    rates = sorted((c1 - c0) / ((t1 - t0) / 1e9) for (t0, c0), (t1, c1) in zip(pts, pts[1:]) if t1 > t0)
    return rates[len(rates) // 2] if rates else 0.0
def cpu(j):
    return (j.get("cpu") or {}).get("gateway_us_per_msg") or 0
print("| offered msg/s | placement | delivered msg/s | p50 deliver (ms) | p99 deliver (ms) | lost / dup | gateways CPU µs/msg | Redis CPU µs/msg | PostgreSQL CPU µs/msg | Redis commands/msg (whole run) | Redis commands/s (steady, median) | link frames/msg |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
names = sorted((n[:-5] for n in os.listdir(out) if n.startswith("o2o_") and n.endswith(".json")),
               key=lambda n: (int(n.split("_")[2]), n.split("_")[1] != "same"))
for name in names:
    j, s = load(name)
    _, placement, rate = name.split("_")
    msgs = max(j["sent"], 1)
    print(f'| {rate} | {placement}-node | {j["delivered"] / j["config"]["duration"]:.0f} | {j["delivery_ms"]["p50_ms"]:.2f} | '
          f'{j["delivery_ms"]["p99_ms"]:.2f} | {j["lost"]} / {j["duplicated"]} | {cpu(j):.1f} | '
          f'{s["redis_ticks"] * 1e6 / hz / msgs:.1f} | {s["pg_ticks"] * 1e6 / hz / msgs:.1f} | '
          f'{s["redis_cmds"] / msgs:.4f} | {steady_cmds(name):.1f} | {s["link_frames"] / msgs:.2f} |')
print()
if os.path.exists(os.path.join(out, "group_cross.json")):
    j, s = load("group_cross")
    msgs = max(j["acked"], 1)
    f = j["fanout_ms"]
    print("| 4 groups of 256, members on 3 nodes | group msgs acked | fan-out p50 (ms) | fan-out p99 (ms) | fan-out max (ms) | lost / dup | gateways CPU µs/group msg | PostgreSQL CPU µs/group msg | link frames/group msg | link targets/group msg | Redis commands/group msg (whole run) | Redis commands/s (steady, median) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(f'| {j["config"]["rate"]} msg/s | {j["acked"]} | {f["p50_ms"]:.2f} | {f["p99_ms"]:.2f} | {f["max_ms"]:.2f} | '
          f'{j["lost"]} / {j["duplicated"]} | {cpu(j):.0f} | {s["pg_ticks"] * 1e6 / hz / msgs:.0f} | '
          f'{s["link_frames"] / msgs:.2f} | {s["link_targets"] / msgs:.1f} | {s["redis_cmds"] / msgs:.3f} | {steady_cmds("group_cross"):.1f} |')
    print()
for name in ("connect", "failover"):
    p = os.path.join(out, name + ".json")
    if os.path.exists(p):
        print(f"{name}: see {p}")
r = os.path.join(out, "connect.redis")
if os.path.exists(r):
    s = dict(kv.split("=") for kv in open(r).read().split())
    users = int(s["peak_keys"]) - int(s["keys0"])
    if users > 0:
        print(f'Redis: {users} user keys at peak, used_memory {int(s["peak_used"]) - int(s["used0"])} bytes more: '
              f'{(int(s["peak_used"]) - int(s["used0"])) / users:.0f} B per online user')
PY
