#!/usr/bin/env bash
# What --events costs and how late events reach Kafka: loadgen one-to-one at
# the main benchmark's rates, each rate run without and then with --events,
# back to back, on a fresh data directory (and, with --events, a fresh local
# tansu broker: in memory, 3 partitions).
#
# Per rate it reports:
#   - offered and achieved (delivered) msg/s, off / on;
#   - the gateway's CPU per message off / on and their ratio (loadgen
#     --gateway-pid: the server's utime+stime while messages are due, divided
#     by the messages scheduled), and the CPU per message of the publisher's
#     own threads (chatgw-events and librdkafka's rdk:*) over the whole run,
#     drain included;
#   - ack (`sent`) p99 off / on (loadgen, from each message's intended send);
#   - events published per second while they flowed, and all of them;
#   - the publish lag p50 / p99 / max: per event, the time from its commit
#     (the `at` its id carries) to Kafka's acknowledgement of its batch, from
#     the gateway's histogram chatgw_events_publish_lag_seconds scraped after
#     the drain (interpolated within its buckets, which grow by 1.5x; max is
#     the upper bound of the highest bucket used);
#   - the largest backlog (chatgw_events_lag_records, sampled every 0.2 s);
#   - the 1-minute load average when the rate began (the box is shared).
# A markdown table goes to stdout and $OUT/events-bench.md; raw files stay in $OUT.
#
# Usage: scripts/events-bench.sh          (builds release chatgw and loadgen)
# Environment: RATES (default "2000 5000 10000 20000 40000"), PAIRS (400, as
#   scripts/bench.sh; loadgen allows at most 150 msg/s per pair), DURATION (10),
#   DRAIN (most seconds to wait for the backlog after a run, 30),
#   TANSU (default $CHATGW_CACHE_DIR/tansu/bin/tansu), OUT (default target/events-bench)
# Every step is bounded: a run takes at most DURATION + 60 + DRAIN seconds.
set -euo pipefail
# SIGTERM stops the gateways here at once: no balancer to drain them from.
export CHATGW_DRAIN_DELAY="${CHATGW_DRAIN_DELAY:-0s}" CHATGW_DRAIN_PERIOD="${CHATGW_DRAIN_PERIOD:-0s}"
cd "$(dirname "$0")/.."
CHATGW_CACHE_DIR="${CHATGW_CACHE_DIR:-$HOME/.cache/chatgw}"
TANSU="${TANSU:-$CHATGW_CACHE_DIR/tansu/bin/tansu}"
RATES="${RATES:-2000 5000 10000 20000 40000}"; PAIRS="${PAIRS:-400}"; DURATION="${DURATION:-10}"; DRAIN="${DRAIN:-30}"
BIN="${CARGO_TARGET_DIR:-target}/release"
OUT="${OUT:-${CARGO_TARGET_DIR:-target}/events-bench}"
SECRET=bench-secret PORT=18180 ADMIN=18181 KAFKA=18192
mkdir -p "$OUT"
cargo build --release -q -p chatgw -p loadgen

TANSU_PID="" SERVER_PID=""
cleanup() {
    [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null
    [[ -n $TANSU_PID ]] && kill "$TANSU_PID" 2>/dev/null
    return 0
}
trap cleanup EXIT

start_broker() {
    "$TANSU" broker --listener-url "tcp://127.0.0.1:$KAFKA" --advertised-listener-url "tcp://127.0.0.1:$KAFKA" \
        --storage-engine memory://tansu/ > "$OUT/tansu-$1.log" 2>&1 &
    TANSU_PID=$!
    for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA") 2>/dev/null && break; sleep 0.1; done
    timeout 10 "$TANSU" topic create bench.events --partitions 3 --broker "tcp://127.0.0.1:$KAFKA" > /dev/null
}

stop_broker() {
    kill "$TANSU_PID" 2>/dev/null || true
    wait "$TANSU_PID" 2>/dev/null || true
    TANSU_PID=""
}

scrape() { curl -s -m 2 "http://127.0.0.1:$ADMIN/metrics" || true; }
metric() { scrape | awk -v m="$1" '$1 == m { print $2 }'; }

# CPU seconds of the server's threads named like the publisher's.
stream_threads_cpu() {
    local tick total=0 t comm utime stime
    tick=$(getconf CLK_TCK)
    for t in /proc/"$SERVER_PID"/task/*; do
        comm=$(cat "$t/comm" 2>/dev/null) || continue
        [[ $comm == chatgw-events || $comm == rdk:* ]] || continue
        read -r utime stime < <(sed 's/^.*) //' "$t/stat" | awk '{ print $12, $13 }')
        total=$((total + utime + stime))
    done
    awk -v t="$total" -v k="$tick" 'BEGIN { printf "%.3f", t / k }'
}

run() {
    local rate=$1 events=$2 name="$1-$2" data flags=()
    data=$(mktemp -d "$OUT/data.XXXXXX")
    [[ $events == on ]] && { start_broker "$rate"; flags=(--events "kafka://127.0.0.1:$KAFKA/bench"); }
    CHATGW_LOG=warn "$BIN/chatgw" serve --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN" \
        --data "$data" --secret "$SECRET" "${flags[@]}" > "$OUT/server-$name.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
    (
        while kill -0 "$SERVER_PID" 2>/dev/null; do
            text=$(scrape)
            l=$(awk '$1 == "chatgw_events_lag_records" { print $2 }' <<< "$text")
            p=$(awk '$1 == "chatgw_events_published_total" { print $2 }' <<< "$text")
            [[ -n $l && -n $p ]] && echo "$(date +%s.%N) $l $p"
            sleep 0.2
        done
    ) > "$OUT/lag-$name.txt" 2>/dev/null &
    local sampler=$!
    timeout "$((DURATION + 60))" "$BIN/loadgen" one-to-one --url "127.0.0.1:$PORT" --pairs "$PAIRS" --rate "$rate" \
        --duration "${DURATION}s" --secret "$SECRET" --gateway-pid "$SERVER_PID" --quiet \
        --json "$OUT/o2o-$name.json" > "$OUT/o2o-$name.txt" 2>&1 || true
    if [[ $events == on ]]; then
        local until=$((SECONDS + DRAIN))
        while [[ $SECONDS -lt $until && $(metric chatgw_events_lag_records) != 0 ]]; do sleep 0.2; done
        sleep 0.5
        scrape > "$OUT/metrics-$name.txt"
        stream_threads_cpu > "$OUT/stream-cpu-$name.txt"
        stop_broker
    fi
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    wait "$sampler" 2>/dev/null || true
    rm -rf "$data"
}

for rate in $RATES; do
    read -r load _ < /proc/loadavg
    echo "$load" > "$OUT/load-$rate.txt"
    run "$rate" off
    run "$rate" on
    echo "rate $rate done (load average at start $load)" >&2
done

python3 - "$OUT" "$DURATION" $RATES <<'PY' | tee "$OUT/events-bench.md"
import json, math, os, sys

out, duration, rates = sys.argv[1], float(sys.argv[2]), [int(r) for r in sys.argv[3:]]

def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}

def get(j, *keys):
    for k in keys:
        if not isinstance(j, dict) or k not in j:
            return None
        j = j[k]
    return j

def histogram(path, name):
    """Cumulative (bound, count) pairs of a Prometheus histogram."""
    buckets = []
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return buckets
    for line in lines:
        if line.startswith(name + "_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((math.inf if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    return sorted(buckets)

def quantile(buckets, q):
    """Prometheus histogram_quantile: linear within the bucket."""
    if not buckets or buckets[-1][1] == 0:
        return None
    rank, lower, below = q * buckets[-1][1], 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = bound, count
    return lower

def highest(buckets):
    last = None
    for bound, count in buckets:
        if last is None or count > last[1]:
            last = (bound, count)
    return last[0] if last else None

def samples(path):
    rows = []
    try:
        for line in open(path):
            t, l, p = line.split()
            rows.append((float(t), float(l), float(p)))
    except (OSError, ValueError):
        pass
    return rows

def ms(s):
    if s is None:
        return "n/a"
    return f"{s * 1000:.0f} ms" if s < 10 else f"{s:.0f} s"

def num(x, fmt="{:,.0f}"):
    return "n/a" if x is None else fmt.format(x)

print("| offered msg/s | achieved msg/s off / on | gateway CPU µs/msg off / on (on/off) | publisher threads µs/msg | ack p99 off / on | events published | events/s while flowing | publish lag p50 / p99 / max | largest backlog | load avg at start |")
print("|---|---|---|---|---|---|---|---|---|---|")
for rate in rates:
    off, on = load(f"{out}/o2o-{rate}-off.json"), load(f"{out}/o2o-{rate}-on.json")
    cpu_off, cpu_on = get(off, "cpu", "gateway_us_per_msg"), get(on, "cpu", "gateway_us_per_msg")
    ratio = f" ({cpu_on / cpu_off:.2f}x)" if cpu_off and cpu_on else ""
    msgs = get(on, "cpu", "messages") or rate * duration
    try:
        stream = float(open(f"{out}/stream-cpu-{rate}-on.txt").read()) * 1e6 / msgs
    except (OSError, ValueError):
        stream = None
    buckets = histogram(f"{out}/metrics-{rate}-on.txt", "chatgw_events_publish_lag_seconds")
    published = buckets[-1][1] if buckets else None
    rows = [r for r in samples(f"{out}/lag-{rate}-on.txt") if r[2] > 0]
    flowing = None
    if rows:
        final = rows[-1][2]
        done = next(r for r in rows if r[2] >= final)
        if done[0] > rows[0][0]:
            flowing = (done[2] - rows[0][2]) / (done[0] - rows[0][0])
    backlog = max((r[1] for r in samples(f"{out}/lag-{rate}-on.txt")), default=None)
    try:
        avg = open(f"{out}/load-{rate}.txt").read().strip()
    except OSError:
        avg = "n/a"
    print(f"| {rate:,} | {num(get(off, 'achieved_delivery_rate'))} / {num(get(on, 'achieved_delivery_rate'))}"
          f" | {num(cpu_off, '{:.0f}')} / {num(cpu_on, '{:.0f}')}{ratio} | {num(stream, '{:.1f}')}"
          f" | {num(get(off, 'ack_ms', 'p99_ms'), '{:.1f}')} / {num(get(on, 'ack_ms', 'p99_ms'), '{:.1f}')} ms"
          f" | {num(published)} | {num(flowing)}"
          f" | {ms(quantile(buckets, 0.5))} / {ms(quantile(buckets, 0.99))} / ≤ {ms(highest(buckets))}"
          f" | {num(backlog)} | {avg} |")
PY
