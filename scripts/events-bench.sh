#!/usr/bin/env bash
# What --events costs and how far behind Kafka lags: one-to-one runs with
# and without --events at a few rates against a local tansu broker, each on
# a fresh data directory. Prints, per run: the gateway's CPU per message
# (loadgen --gateway-pid), p99 ack latency, events published per second
# over the run, and the largest publish lag seen (records and seconds,
# sampled from /metrics every 0.2 s).
#
# Usage: scripts/events-bench.sh          (release build of chatgw and loadgen)
# Environment: RATES (default "2000 5000 10000"), PAIRS (200), DURATION (10),
#   TANSU (default $CHATGW_CACHE_DIR/tansu/bin/tansu), OUT (default target/events-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
CHATGW_CACHE_DIR="${CHATGW_CACHE_DIR:-$HOME/.cache/chatgw}"
TANSU="${TANSU:-$CHATGW_CACHE_DIR/tansu/bin/tansu}"
RATES="${RATES:-2000 5000 10000}"; PAIRS="${PAIRS:-200}"; DURATION="${DURATION:-10}"
BIN="${CARGO_TARGET_DIR:-target}/release"
OUT="${OUT:-${CARGO_TARGET_DIR:-target}/events-bench}"
SECRET=bench-secret PORT=18180 ADMIN=18181 KAFKA=18192
mkdir -p "$OUT"
cargo build --release -q -p chatgw -p loadgen

"$TANSU" broker --listener-url "tcp://127.0.0.1:$KAFKA" --advertised-listener-url "tcp://127.0.0.1:$KAFKA" \
    --storage-engine memory://tansu/ > "$OUT/tansu.log" 2>&1 &
TANSU_PID=$!
trap 'kill $TANSU_PID 2>/dev/null || true' EXIT
sleep 1
"$TANSU" topic create bench.events --partitions 3 --broker "tcp://127.0.0.1:$KAFKA" > /dev/null

metric() { curl -s "http://127.0.0.1:$ADMIN/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

run() {
    local rate=$1 events=$2 data
    data=$(mktemp -d "$OUT/data.XXXXXX")
    local flags=()
    [[ $events == on ]] && flags=(--events "kafka://127.0.0.1:$KAFKA/bench")
    CHATGW_LOG=warn "$BIN/chatgw" serve --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN" \
        --data "$data" --secret "$SECRET" "${flags[@]}" > "$OUT/server-$rate-$events.log" 2>&1 &
    local pid=$!
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
    local max_lag=0 max_secs=0
    (
        while kill -0 "$pid" 2>/dev/null; do
            l=$(metric chatgw_events_lag_records) s=$(metric chatgw_events_lag_seconds) p=$(metric chatgw_events_published_total)
            [[ -n $l && -n $s && -n $p ]] && echo "$l $s $p $(date +%s.%N)"
            sleep 0.2
        done
    ) > "$OUT/lag-$rate-$events.txt" 2>/dev/null &
    local sampler=$!
    "$BIN/loadgen" one-to-one --url "127.0.0.1:$PORT" --pairs "$PAIRS" --rate "$rate" --duration "${DURATION}s" \
        --secret "$SECRET" --gateway-pid "$pid" --quiet --json "$OUT/o2o-$rate-$events.json" > "$OUT/o2o-$rate-$events.txt" || true
    sleep 2
    kill "$pid"; wait "$pid" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    read -r max_lag max_secs < <(awk '$1 != "" { if ($1 > l) l = $1; if ($2 > s) s = $2 } END { print l + 0, s + 0 }' "$OUT/lag-$rate-$events.txt")
    local rate_pub
    rate_pub=$(awk '$3 != "" && $3 > 0 { if (!t0) { t0 = $4; p0 = $3 } t1 = $4; p1 = $3 } END { if (t1 > t0) printf "%.0f", (p1 - p0) / (t1 - t0); else print 0 }' "$OUT/lag-$rate-$events.txt")
    local figures
    figures=$(python3 - "$OUT/o2o-$rate-$events.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
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
us = find(j, "gateway_us_per_msg")
ack = find(j, "ack_ms") or {}
p99 = ack.get("p99_ms") if isinstance(ack, dict) else None
print(f"gateway {us:.1f} us/msg" if us is not None else "gateway n/a", end=" | ")
print(f"ack p99 {p99} ms" if p99 is not None else "ack p99 n/a")
PY
)
    printf '%6s msg/s events=%-3s | %s | published/s %s | max lag %s records, %s s\n' \
        "$rate" "$events" "$figures" "$rate_pub" "$max_lag" "$max_secs"
    rm -rf "$data"
}

for rate in $RATES; do
    run "$rate" off
    run "$rate" on
done
