#!/usr/bin/env bash
# The broker unreachable for a while under load: does `sent` latency stay
# as it was, is any event lost, how long does the backlog take to drain,
# and does the backlog wait in the store rather than in memory?
#
# Two runs back to back, each on a fresh data directory and a fresh tansu
# broker (in memory, 3 partitions): loadgen one-to-one at RATE msg/s for
# DURATION s against a release gateway with --events on the embedded
# store; in the second run the broker is stopped with SIGSTOP (it keeps its
# data and its sockets but answers nothing) OUTAGE_AT s into the load and
# let go on with SIGCONT OUTAGE s later. After each run every record of the
# topic is read back with a consumer and its event ids are counted.
#
# Prints per run: ack (`sent`) p50/p99/max, messages acknowledged vs
# distinct message events in the topic, largest lag, the time from SIGCONT
# until the lag is under 5,000 records again, and the gateway's RSS
# (before, largest during the outage, at the end).
#
# usage: scripts/events-outage.sh     (builds chatgw and loadgen --release)
# Environment: RATE (5000), PAIRS (200), DURATION (75), OUTAGE_AT (25),
#   OUTAGE (30), TANSU (default $CHATGW_CACHE_DIR/tansu/bin/tansu),
#   OUT (default target/events-outage). Bounded: every wait has a limit.
set -euo pipefail
# SIGTERM stops the gateways here at once: no balancer to drain them from.
export CHATGW_DRAIN_DELAY="${CHATGW_DRAIN_DELAY:-0s}" CHATGW_DRAIN_PERIOD="${CHATGW_DRAIN_PERIOD:-0s}"
cd "$(dirname "$0")/.."
CHATGW_CACHE_DIR="${CHATGW_CACHE_DIR:-$HOME/.cache/chatgw}"
TANSU="${TANSU:-$CHATGW_CACHE_DIR/tansu/bin/tansu}"
RATE="${RATE:-5000}" PAIRS="${PAIRS:-200}" DURATION="${DURATION:-75}"
OUTAGE_AT="${OUTAGE_AT:-25}" OUTAGE="${OUTAGE:-30}"
TARGET="${CARGO_TARGET_DIR:-target}"
OUT="${OUT:-$TARGET/events-outage}"
SECRET=bench-secret PORT=18280 ADMIN=18281 KAFKA=18292 TOPIC=outage.events
mkdir -p "$OUT"
cargo build --release -q -p chatgw -p loadgen
cargo build -q -p chatgw-events --example count_events
BIN="$TARGET/release" COUNT="$TARGET/debug/examples/count_events"

pids=()
cleanup() { for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

metric() { curl -s --max-time 1 "http://127.0.0.1:$ADMIN/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# run NAME OUTAGE(yes|no)
run() {
    local name=$1 outage=$2 data
    data=$(mktemp -d "$OUT/data.XXXXXX")
    "$TANSU" broker --listener-url "tcp://127.0.0.1:$KAFKA" --advertised-listener-url "tcp://127.0.0.1:$KAFKA" \
        --storage-engine memory://tansu/ > "$OUT/tansu-$name.log" 2>&1 &
    local tansu=$!; pids+=("$tansu")
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA") 2>/dev/null && break; sleep 0.1; done
    "$TANSU" topic create "$TOPIC" --partitions 3 --broker "tcp://127.0.0.1:$KAFKA" > /dev/null
    CHATGW_LOG=warn "$BIN/chatgw" serve --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN" \
        --data "$data" --secret "$SECRET" --events "kafka://127.0.0.1:$KAFKA/outage" > "$OUT/server-$name.log" 2>&1 &
    local gw=$!; pids+=("$gw")
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
    # Samples: unix time, lag records, lag seconds, published, RSS kB.
    (
        while kill -0 "$gw" 2>/dev/null; do
            echo "$(date +%s.%N) $(metric chatgw_events_lag_records) $(metric chatgw_events_lag_seconds) $(metric chatgw_events_published_total) $(rss_kb "$gw")"
            sleep 0.5
        done
    ) > "$OUT/samples-$name.txt" 2>/dev/null &
    local sampler=$!
    local start; start=$(date +%s.%N)
    "$BIN/loadgen" one-to-one --url "127.0.0.1:$PORT" --pairs "$PAIRS" --rate "$RATE" --duration "${DURATION}s" \
        --secret "$SECRET" --quiet --json "$OUT/o2o-$name.json" > "$OUT/o2o-$name.txt" 2>&1 &
    local lg=$!
    local stop_at=0 cont_at=0
    if [[ $outage == yes ]]; then
        sleep "$OUTAGE_AT"
        kill -STOP "$tansu"; stop_at=$(date +%s.%N)
        sleep "$OUTAGE"
        kill -CONT "$tansu"; cont_at=$(date +%s.%N)
    fi
    wait "$lg" || true
    # Let the backlog drain (bounded): the lag must reach 0.
    for _ in $(seq 1 240); do [[ $(metric chatgw_events_lag_records) == 0 ]] && break; sleep 0.5; done
    sleep 1
    kill "$gw"; wait "$gw" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    local counted
    counted=$("$COUNT" "127.0.0.1:$KAFKA" "$TOPIC" 3 5 2> "$OUT/count-$name.log" || echo "count failed")
    kill "$tansu"; wait "$tansu" 2>/dev/null || true
    rm -rf "$data"
    OUTAGE_AT=$OUTAGE_AT OUTAGE=$OUTAGE python3 - "$name" "$OUT/o2o-$name.json" "$OUT/samples-$name.txt" "$start" "$stop_at" "$cont_at" "$counted" <<'PY'
import json, os, sys
name, jpath, spath, start, stop_at, cont_at, counted = sys.argv[1:]
start, stop_at, cont_at = float(start), float(stop_at), float(cont_at)
def find(o, key):
    if isinstance(o, dict):
        for k, v in o.items():
            if k == key:
                return v
            r = find(v, key)
            if r is not None:
                return r
    elif isinstance(o, list):
        for v in o:
            r = find(v, key)
            if r is not None:
                return r
    return None
j = json.load(open(jpath))
ack = find(j, "ack_ms") or {}
acked, lost = find(j, "acked"), find(j, "lost")
figs = dict(kv.split("=", 1) for kv in counted.split() if "=" in kv)
samples = []
for line in open(spath):
    f = line.split()
    if len(f) == 5:
        samples.append((float(f[0]), int(f[1]), int(f[2]), int(f[3]), int(f[4])))
max_lag = max((s[1] for s in samples), default=0)
rss_before = next((s[4] for s in samples if s[0] >= start + 5), 0)
if stop_at:
    during = [s[4] for s in samples if stop_at <= s[0] <= cont_at]
    rss_outage = max(during, default=0)
    # Drained: the lag back under 5,000 records (half a second of events;
    # the lag of the run without an outage stays below that).
    drained = next((s[0] - cont_at for s in samples if s[0] > cont_at and s[1] < 5000), None)
    lag_at_cont = max((s[1] for s in samples if s[0] <= cont_at + 1), default=0)
    outage = (f"backlog at SIGCONT {lag_at_cont} records, under 5,000 "
              f"{drained:.1f} s after SIGCONT" if drained is not None else "backlog never drained")
    outage += f" | RSS before {rss_before // 1024} MB, largest during the outage {rss_outage // 1024} MB"
else:
    # The same window as the other run's outage, for comparison.
    at, length = float(os.environ["OUTAGE_AT"]), float(os.environ["OUTAGE"])
    during = [s[4] for s in samples if start + at <= s[0] <= start + at + length]
    outage = (f"largest lag {max_lag} records | RSS before {rss_before // 1024} MB, "
              f"largest in the outage's window {max(during, default=0) // 1024} MB")
rss_end = samples[-1][4] // 1024 if samples else 0
print(f"{name:8} | ack p50 {ack.get('p50_ms')} ms p99 {ack.get('p99_ms')} ms max {ack.get('max_ms')} ms"
      f" | acked {acked} lost {lost} | message events in topic {figs.get('messages')}"
      f" (receipts {figs.get('receipts')}, records {figs.get('records')}, repeated {figs.get('repeated')})"
      f" | {outage} | RSS at the end {rss_end} MB")
PY
}

run baseline no
run outage yes
