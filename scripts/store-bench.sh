#!/usr/bin/env bash
# Durable one-to-one and group fan-out on the embedded store and on
# PostgreSQL, at the same fixed rates in one session (BENCHMARKS.md,
# "Embedded store and PostgreSQL").
#
# usage: scripts/store-bench.sh [BIN_DIR]
#   BIN_DIR  directory holding release builds of chatgw and loadgen
#            (default: the workspace's target/release)
# Environment:
#   RATES        one-to-one offered rates (default "2000 10000 20000")
#   PAIRS        sender/recipient pairs (default 400)
#   DURATION     seconds per one-to-one run (default 10)
#   GROUP_RATE   group messages/s in total over 4 groups of 256 (default 100)
#   OUT          results directory (default target/store-bench/<timestamp>)
#
# PostgreSQL is a throwaway server made here with initdb (Debian's
# postgresql package, run as the `postgres` user) on its own port, with
# the durability settings a deployment keeps (fsync and synchronous_commit
# on) and shared_buffers 256MB. Each run gets a fresh database and a fresh
# gateway. Measured per run: delivered msg/s, send -> deliver p50/p99 (the
# load generator), gateway CPU per message (the load generator, from /proc
# over the load window), database CPU per message (every process of the
# throwaway server, from /proc, over the whole loadgen run: setup and drain
# included, when the database is nearly idle), requests per group commit
# (the gateway's chatgw_commit_batch_size), bytes handed to the store per
# message (chatgw_commit_bytes), and for PostgreSQL rows written (inserted +
# updated tuples) and WAL bytes per message. Bounded: about 3 minutes.
set -euo pipefail
# SIGTERM stops the gateways here at once: no balancer to drain them from.
export CHATGW_DRAIN_DELAY="${CHATGW_DRAIN_DELAY:-0s}" CHATGW_DRAIN_PERIOD="${CHATGW_DRAIN_PERIOD:-0s}"
cd "$(dirname "$0")/.."
BIN=${1:-${CARGO_TARGET_DIR:-target}/release}
RATES="${RATES:-2000 10000 20000}"
PAIRS="${PAIRS:-400}"
DURATION="${DURATION:-10}"
GROUP_RATE="${GROUP_RATE:-100}"
OUT="${OUT:-target/store-bench/$(date +%Y%m%d-%H%M%S)}"
PORT=18800
ADMIN=18801
PGPORT=18832
SECRET=store-bench-secret
for b in chatgw loadgen; do
    [ -x "$BIN/$b" ] || { echo "missing $BIN/$b: cargo build --release -p chatgw -p loadgen" >&2; exit 2; }
done
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$PGBIN/pg_ctl" ] || { echo "no PostgreSQL server binaries (apt-get install postgresql)" >&2; exit 2; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PGDATA=$(mktemp -d /tmp/chatgw-store-bench.XXXXXX)
chown postgres "$PGDATA"
GW=""
log() { printf '[store-bench] %s\n' "$*" >&2; }
as_pg() { (cd / && runuser -u postgres -- "$@"); }
stop_gateway() {
    if [ -n "$GW" ]; then
        kill -TERM "$GW" 2>/dev/null || true
        timeout 10 tail --pid="$GW" -f /dev/null 2>/dev/null || kill -KILL "$GW" 2>/dev/null || true
        GW=""
    fi
}
cleanup() {
    stop_gateway
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA/db" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PGDATA" "$OUT"/data-*
}
trap cleanup EXIT
ulimit -n 20000 || true

log "PostgreSQL: initdb and start on port $PGPORT"
as_pg "$PGBIN/initdb" -D "$PGDATA/db" -U postgres -A trust >"$OUT/initdb.log" 2>&1
as_pg "$PGBIN/pg_ctl" -D "$PGDATA/db" -l "$PGDATA/server.log" -w \
    -o "-p $PGPORT -k $PGDATA -c listen_addresses=127.0.0.1 -c shared_buffers=256MB -c fsync=on -c synchronous_commit=on -c max_connections=200" \
    start >/dev/null
PSQL=("$PGBIN/psql" -X -q -t -A -h 127.0.0.1 -p "$PGPORT" -U postgres)
POSTMASTER=$(head -n 1 "$PGDATA/db/postmaster.pid")

# CPU ticks (user + system) of the postmaster and every child.
pg_ticks() {
    local total=0 p
    for p in $POSTMASTER $(pgrep -P "$POSTMASTER"); do
        if [ -r "/proc/$p/stat" ]; then
            total=$((total + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
        fi
    done
    echo "$total"
}
# Inserted + updated tuples, and the WAL position in bytes.
pg_counters() {
    "${PSQL[@]}" -d "$1" -c "SELECT (SELECT tup_inserted + tup_updated FROM pg_stat_database WHERE datname = '$1'), pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint" | tr '|' ' '
}
# One counter or histogram sum/count from the gateway's /metrics.
metric() {
    curl -s "127.0.0.1:$ADMIN/metrics" | awk -v m="$1" '$1 == m { print $2; found = 1 } END { if (!found) print 0 }'
}

# start_gateway STORE NAME: a fresh gateway on the embedded store or on a
# fresh database NAME.
start_gateway() {
    local store=$1 name=$2 args=()
    if [ "$store" = postgres ]; then
        "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name"
        local url="postgres://postgres@127.0.0.1:$PGPORT/$name"
        "$BIN/chatgw" store init --store "$url" >/dev/null
        args=(--store "$url")
    fi
    rm -rf "$OUT/data-$name"
    CHATGW_LOG=warn "$BIN/chatgw" serve --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN" \
        --data "$OUT/data-$name" --secret "$SECRET" "${args[@]}" >"$OUT/gateway-$name.log" 2>&1 &
    GW=$!
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
        sleep 0.1
    done
    log "the gateway did not come up: see $OUT/gateway-$name.log"
    return 1
}

# measure STORE NAME LOADGEN-ARGS...: one loadgen run against a fresh
# gateway; writes NAME.json (loadgen) and NAME.store (the store figures).
measure() {
    local store=$1 name=$2
    shift 2
    start_gateway "$store" "$name"
    local t0 c0=(0 0) b0 n0 by0
    t0=$(pg_ticks)
    [ "$store" = postgres ] && read -r -a c0 < <(pg_counters "$name")
    b0=$(metric chatgw_commit_batch_size_sum)
    n0=$(metric chatgw_commit_batch_size_count)
    by0=$(metric chatgw_commit_bytes_total)
    r0=$(metric chatgw_commit_records_total)
    "$BIN/loadgen" "$@" --url "127.0.0.1:$PORT" --secret "$SECRET" --gateway-pid "$GW" --quiet \
        --json "$OUT/$name.json" >"$OUT/$name.txt" 2>&1 || log "loadgen $name failed: see $OUT/$name.txt"
    local t1 c1=(0 0) b1 n1 by1
    t1=$(pg_ticks)
    [ "$store" = postgres ] && read -r -a c1 < <(pg_counters "$name")
    b1=$(metric chatgw_commit_batch_size_sum)
    n1=$(metric chatgw_commit_batch_size_count)
    by1=$(metric chatgw_commit_bytes_total)
    r1=$(metric chatgw_commit_records_total)
    echo "db_ticks=$((t1 - t0)) rows=$((c1[0] - c0[0])) wal=$((c1[1] - c0[1])) batch_sum=$(echo "$b1 - $b0" | bc) batches=$(echo "$n1 - $n0" | bc) bytes=$(echo "$by1 - $by0" | bc) records=$(echo "$r1 - $r0" | bc)" \
        >"$OUT/$name.store"
    stop_gateway
}

for rate in $RATES; do
    for store in embedded postgres; do
        log "one-to-one at $rate msg/s on $store"
        measure "$store" "o2o_${store}_$rate" one-to-one --pairs "$PAIRS" --rate "$rate" --duration "$DURATION"
    done
done
for store in embedded postgres; do
    log "4 groups of 256 at $GROUP_RATE msg/s on $store"
    measure "$store" "group_${store}" group --groups 4 --size 256 --rate "$GROUP_RATE" --duration "$DURATION"
done

python3 - "$OUT" "$(getconf CLK_TCK)" <<'PY'
import json, os, sys
out, hz = sys.argv[1], int(sys.argv[2])
def load(name):
    j = json.load(open(os.path.join(out, name + ".json")))
    s = dict(kv.split("=") for kv in open(os.path.join(out, name + ".store")).read().split())
    return j, {k: float(v) for k, v in s.items()}
print("| offered msg/s | store | delivered msg/s | p50 deliver (ms) | p99 deliver (ms) | lost / dup | gateway CPU µs/msg | database CPU µs/msg | requests per commit | records/msg | store bytes/msg | database rows/msg | WAL bytes/msg |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
names = sorted((n[:-5] for n in os.listdir(out) if n.startswith("o2o_") and n.endswith(".json")),
               key=lambda n: (int(n.split("_")[2]), n.split("_")[1]))
for name in names:
    j, s = load(name)
    _, store, rate = name.split("_")
    msgs = max(j["sent"], 1)
    db = f'{s["db_ticks"] * 1e6 / hz / msgs:.1f}' if store == "postgres" else "-"
    rows = f'{s["rows"] / msgs:.1f}' if store == "postgres" else "-"
    wal = f'{s["wal"] / msgs:.0f}' if store == "postgres" else "-"
    batch = s["batch_sum"] / s["batches"] if s["batches"] else 0
    print(f'| {rate} | {store} | {j["delivered"] / j["config"]["duration"]:.0f} | {j["delivery_ms"]["p50_ms"]:.2f} | '
          f'{j["delivery_ms"]["p99_ms"]:.2f} | {j["lost"]} / {j["duplicated"]} | {j["cpu"]["gateway_us_per_msg"] or 0:.1f} | {db} | '
          f'{batch:.1f} | {s["records"] / msgs:.1f} | {s["bytes"] / msgs:.0f} | {rows} | {wal} |')
print()
print("| 4 groups of 256 | store | group msgs acked | fan-out p50 (ms) | fan-out p99 (ms) | fan-out max (ms) | one member p99 (ms) | lost / dup | gateway CPU µs/group msg | database CPU µs/group msg | database rows/group msg | WAL bytes/group msg | records/group msg | store bytes/group msg |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for store in ("embedded", "postgres"):
    name = f"group_{store}"
    if not os.path.exists(os.path.join(out, name + ".json")):
        continue
    j, s = load(name)
    msgs = max(j["acked"], 1)
    pg = store == "postgres"
    f = j["fanout_ms"]
    print(f'| {j["config"]["rate"]} msg/s | {store} | {j["acked"]} | {f["p50_ms"]:.2f} | {f["p99_ms"]:.2f} | {f["max_ms"]:.2f} | '
          f'{j["delivery_ms"]["p99_ms"]:.2f} | {j["lost"]} / {j["duplicated"]} | {(j.get("cpu") or {}).get("gateway_us_per_msg") or 0:.0f} | '
          + (f'{s["db_ticks"] * 1e6 / hz / msgs:.0f} | {s["rows"] / msgs:.0f} | {s["wal"] / msgs:.0f}' if pg else "- | - | -")
          + f' | {s["records"] / msgs:.0f} | {s["bytes"] / msgs:.0f} |')
PY
