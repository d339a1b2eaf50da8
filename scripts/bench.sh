#!/usr/bin/env bash
# Run the standard scenarios against chatgw and the baseline relay in one
# session on this machine, and write BENCHMARKS.md (tables side by side with
# ratios, latency percentile plots under docs/bench/). Sections written by
# hand after the marker line near its end (KEEP_MARKER below) are kept.
# It also writes $OUT/plan-input.json (the capacity planner's input, schema
# in docs/CAPACITY.md) and $OUT/plan.txt, plan.json, plan.svg from it.
#
# Usage: scripts/bench.sh [--quick]
#   --quick   shorter runs and fewer rates, no micro-benchmarks, report written
#             into the results directory instead of BENCHMARKS.md (a smoke test);
#             the variables below still apply when set
# Environment (rate lists: positive integers separated by spaces or commas,
# run in ascending order, repeats dropped):
#   RATES        one-to-one offered rates to sweep, both systems (default
#                "2000 5000 10000 15000 20000 30000 40000 50000 60000"; --quick "2000 5000");
#                a shorter sweep such as "2000 5000 10000 20000 40000" finds
#                saturation more coarsely (the report says when it is the top rate)
#   PAIRS        sender/recipient pairs (default 400)
#   DURATION     seconds per one-to-one run (default 10; --quick 3)
#   CONNS        idle connections per server process (default 19000; --quick 2000)
#   BOX_PROCS    gateway processes for the box-level connection run (default 3; 0 skips it; --quick 0)
#   EPOLL_RATES  one-to-one rates also run with --io epoll (default "5000 10000 20000"; --quick "5000");
#                every other chatgw run uses --io uring
#   TMPFS        a tmpfs directory for the runs of chatgw with its store off the
#                disk (default /dev/shm; empty skips them)
#   TMPFS_RATES  rates at which chatgw runs with --data on $TMPFS (default
#                "5000 10000 20000"; --quick "5000"), shown next to the baseline at
#                the same rate; a rate the sweep lacks is run for both systems
#                on the disk too. Half of chatgw's saturation is always one of
#                them, run right after a disk probe and a run on the disk.
#   TARGET_RATES offered rates of the report's targets table (default
#                "2000 5000 10000 20000 40000"); it shows what the runs above ran
#   OUT          results directory (default target/bench/<timestamp>)
# Every run is bounded and stops by itself; servers are stopped between runs.
set -euo pipefail
# SIGTERM stops the gateways here at once: no balancer to drain them from.
export CHATGW_DRAIN_DELAY="${CHATGW_DRAIN_DELAY:-0s}" CHATGW_DRAIN_PERIOD="${CHATGW_DRAIN_PERIOD:-0s}"
cd "$(dirname "$0")/.."

QUICK=0
[[ "${1:-}" == "--quick" ]] && QUICK=1
if [[ $QUICK == 1 ]]; then
    RATES="${RATES-2000 5000}"; DURATION="${DURATION:-3}"; CONNS="${CONNS:-2000}"; BOX_PROCS="${BOX_PROCS:-0}"
    EPOLL_RATES="${EPOLL_RATES-5000}"; TMPFS_RATES="${TMPFS_RATES-5000}"; DISK_PROBE=3
else
    RATES="${RATES-2000 5000 10000 15000 20000 30000 40000 50000 60000}"; DURATION="${DURATION:-10}"
    CONNS="${CONNS:-19000}"; BOX_PROCS="${BOX_PROCS:-3}"
    EPOLL_RATES="${EPOLL_RATES-5000 10000 20000}"; TMPFS_RATES="${TMPFS_RATES-5000 10000 20000}"; DISK_PROBE=20
fi
PAIRS="${PAIRS:-400}"
TMPFS="${TMPFS-/dev/shm}"
TARGET_RATES="${TARGET_RATES-2000 5000 10000 20000 40000}"

# rate_list NAME: the rates in $NAME (spaces or commas between them) in
# ascending order without repeats; exits on anything but a positive integer.
rate_list() {
    local name=$1 r
    local -a rates=()
    for r in ${!name//,/ }; do
        if [[ ! $r =~ ^[1-9][0-9]*$ ]]; then
            printf 'bench.sh: %s: "%s" is not a rate (messages/s, a positive integer)\n' "$name" "$r" >&2
            return 2
        fi
        rates+=("$r")
    done
    [[ ${#rates[@]} -gt 0 ]] && printf '%s\n' "${rates[@]}" | sort -n -u | paste -sd ' ' -
    return 0
}
RATES=$(rate_list RATES) || exit 2
EPOLL_RATES=$(rate_list EPOLL_RATES) || exit 2
TMPFS_RATES=$(rate_list TMPFS_RATES) || exit 2
TARGET_RATES=$(rate_list TARGET_RATES) || exit 2
[[ -n "$RATES" ]] || { echo "bench.sh: RATES is empty: the sweep needs at least one rate" >&2; exit 2; }
OUT="${OUT:-target/bench/$(date +%Y%m%d-%H%M%S)}"
REPORT=BENCHMARKS.md
PLOTS=docs/bench
[[ $QUICK == 1 ]] && { REPORT="$OUT/BENCHMARKS.md"; PLOTS="$OUT/plots"; }
SECRET="bench-secret"
PORT=18600
# Admin listeners (/metrics): gateway process i listens on ADMIN_PORT + i.
ADMIN_PORT=18700
TARGET="${CARGO_TARGET_DIR:-target}"
BIN="$TARGET/release"
mkdir -p "$OUT"
: > "$OUT/commands.txt"
log() { printf '[bench] %s\n' "$*" >&2; }
cmd() { printf '%s\n' "$*" >> "$OUT/commands.txt"; "$@"; }

ulimit -n 20000 || true
# Room for many loopback connections.
echo "1024 65535" > /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
echo 65535 > /proc/sys/net/core/somaxconn 2>/dev/null || true

log "building"
cargo build --release -q -p chatgw -p loadgen -p chatgw-benches --bins

{
    echo "date:    $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) x $(nproc)"
    echo "memory:  $(free -g | awk '/Mem:/{print $2}') GiB"
    echo "kernel:  $(uname -r)"
    echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    python3 - <<'PY' 2>/dev/null || true
import os, time, tempfile
fd, p = tempfile.mkstemp(dir="target")
lat = []
for i in range(500):
    os.pwrite(fd, b"x" * 256, i * 256)
    t = time.perf_counter(); os.fdatasync(fd); lat.append((time.perf_counter() - t) * 1e3)
os.close(fd); os.unlink(p); lat.sort()
print(f"fsync:   fdatasync of a 256-byte append p50 {lat[250]:.3f} ms, p99 {lat[495]:.3f} ms (500 samples)")
PY
} > "$OUT/machine.txt"

SERVER_PIDS=()
TMPFS_DATA=()
stop_servers() {
    for p in "${SERVER_PIDS[@]:-}"; do
        [[ -n "$p" ]] && kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${SERVER_PIDS[@]:-}"; do
        [[ -n "$p" ]] && { timeout 10 tail --pid="$p" -f /dev/null 2>/dev/null || kill -KILL "$p" 2>/dev/null || true; }
    done
    SERVER_PIDS=()
    for d in "${TMPFS_DATA[@]:-}"; do
        if [[ -n "$d" ]]; then rm -rf -- "$d"; fi
    done
    TMPFS_DATA=()
}
trap stop_servers EXIT

# disk_probe NAME: what the results directory's disk allows a durable
# acknowledgement right now (loadgen disk; no server running).
disk_probe() {
    log "disk probe ($1): ${DISK_PROBE} s of 4 KiB appends, each fdatasynced"
    sync
    cmd "$BIN/loadgen" disk --dir "$OUT" --duration "$DISK_PROBE" --quiet --json "$OUT/$1.json" \
        --hist "$OUT/$1.hgrm" > "$OUT/$1.txt" 2>&1 || log "disk probe $1 failed: see $OUT/$1.txt"
}

# usable_tmpfs: whether $TMPFS is a writable tmpfs with room for a store
# (1 GiB; a 64 MiB container /dev/shm is not).
usable_tmpfs() {
    [[ -n "$TMPFS" && -d "$TMPFS" && -w "$TMPFS" ]] || return 1
    [[ "$(stat -f -c %T "$TMPFS" 2>/dev/null)" == tmpfs ]] || return 1
    local avail_kb
    avail_kb=$(df -Pk "$TMPFS" | awk 'NR == 2 { print $4 }')
    [[ "${avail_kb:-0}" -ge 1048576 ]]
}

wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    log "server on port $1 did not come up"; return 1
}

# start_server SYSTEM [INDEX]: one server process on $PORT.
start_server() {
    local system=$1 index=${2:-0}
    local data="$OUT/data-$system-$index"
    rm -rf "$data"
    case $system in
        chatgw | chatgw-epoll | chatgw-disk | chatgw-tmpfs)
            local io=uring
            [[ $system == chatgw-epoll ]] && io=epoll
            if [[ $system == chatgw-tmpfs ]]; then
                data=$(mktemp -d "$TMPFS/chatgw-bench.XXXXXX") || { log "cannot create a directory in $TMPFS"; return 1; }
                TMPFS_DATA+=("$data")
            fi
            local admin="127.0.0.1:$((ADMIN_PORT + index))"
            printf '%s\n' "$BIN/chatgw serve --listen 127.0.0.1:$PORT --admin-listen $admin --data $data --secret \$SECRET --node-id $index --io $io" >> "$OUT/commands.txt"
            CHATGW_LOG=warn "$BIN/chatgw" serve --listen "127.0.0.1:$PORT" --admin-listen "$admin" --data "$data" --secret "$SECRET" --node-id "$index" --io "$io" \
                > "$OUT/server-$system-$index.log" 2>&1 &
            ;;
        baseline)
            printf '%s\n' "$BIN/baseline-relay --listen 127.0.0.1:$PORT --secret \$SECRET" >> "$OUT/commands.txt"
            "$BIN/baseline-relay" --listen "127.0.0.1:$PORT" --secret "$SECRET" > "$OUT/server-$system-$index.log" 2>&1 &
            ;;
    esac
    SERVER_PIDS+=("$!")
    wait_port "$PORT"
}

# one_to_one SYSTEM RATE [NOTE]: one one-to-one run against a fresh server.
one_to_one() {
    local system=$1 rate=$2
    log "one-to-one: $system at $rate msg/s${3:+ ($3)}"
    start_server "$system"
    cmd "$BIN/loadgen" one-to-one --url "127.0.0.1:$PORT" --pairs "$PAIRS" --rate "$rate" --duration "$DURATION" \
        --secret "$SECRET" --gateway-pid "${SERVER_PIDS[0]}" --quiet --json "$OUT/o2o-$system-$rate.json" \
        --hist "$OUT/o2o-$system-$rate.hgrm" \
        > "$OUT/o2o-$system-$rate.txt" || true
    stop_servers
}

disk_probe disk-start

for system in chatgw baseline; do
    log "idle connections: $system, $CONNS connections"
    start_server "$system"
    cmd "$BIN/loadgen" connect --url "127.0.0.1:$PORT" --gateway-admin "127.0.0.1:$ADMIN_PORT" --conns "$CONNS" --rate 2000 --hold 10 --secret "$SECRET" \
        --gateway-pid "${SERVER_PIDS[0]}" --quiet --json "$OUT/connect-$system.json" > "$OUT/connect-$system.txt" || true
    stop_servers

    for rate in $RATES; do
        one_to_one "$system" "$rate"
    done
done

# Half of chatgw's saturation, for both systems.
half=""
if sat=$("$BIN/bench-report" saturation --dir "$OUT" --system chatgw 2>/dev/null); then
    half=$((sat / 2))
    for system in chatgw baseline; do
        [[ -f "$OUT/o2o-$system-$half.json" ]] && continue
        one_to_one "$system" "$half" "half of chatgw's saturation"
    done
fi
# chatgw with its store on tmpfs (not durable across a power cut; a
# comparison only), at half its saturation and at each of TMPFS_RATES, each
# next to the baseline and chatgw on the disk at the same rate.
if usable_tmpfs; then
    if [[ -n "$half" && "$half" -gt 0 ]]; then
        # Back to back: a disk probe, chatgw on the disk, chatgw on tmpfs,
        # so the gap between the two runs is mostly the disk's as the
        # probe saw it.
        disk_probe disk-half
        one_to_one chatgw-disk "$half" "store on the disk, right after the probe"
        one_to_one chatgw-tmpfs "$half" "store on tmpfs" || log "the run on tmpfs at $half msg/s failed"
    fi
    for rate in $TMPFS_RATES; do
        for system in chatgw baseline; do
            [[ -f "$OUT/o2o-$system-$rate.json" ]] || one_to_one "$system" "$rate" "to compare with the run on tmpfs"
        done
        [[ -f "$OUT/o2o-chatgw-tmpfs-$rate.json" ]] && continue
        one_to_one chatgw-tmpfs "$rate" "store on tmpfs" || log "the run on tmpfs at $rate msg/s failed"
    done
else
    log "no usable tmpfs at '$TMPFS' (writable, tmpfs, 1 GiB free): skipping the runs with the store off the disk"
fi

# The same gateway on epoll, for the I/O driver comparison.
log "idle connections: chatgw-epoll, $CONNS connections"
start_server chatgw-epoll
cmd "$BIN/loadgen" connect --url "127.0.0.1:$PORT" --gateway-admin "127.0.0.1:$ADMIN_PORT" --conns "$CONNS" --rate 2000 --hold 10 --secret "$SECRET" \
    --gateway-pid "${SERVER_PIDS[0]}" --quiet --json "$OUT/connect-chatgw-epoll.json" > "$OUT/connect-chatgw-epoll.txt" || true
stop_servers
for rate in $EPOLL_RATES; do
    one_to_one chatgw-epoll "$rate"
done

log "group: 4 groups of 256 at 100 messages/s"
start_server chatgw
cmd "$BIN/loadgen" group --url "127.0.0.1:$PORT" --gateway-admin "127.0.0.1:$ADMIN_PORT" --groups 4 --size 256 --rate 100 --duration "$DURATION" \
    --secret "$SECRET" --gateway-pid "${SERVER_PIDS[0]}" --quiet --json "$OUT/group-chatgw.json" \
    --hist "$OUT/group-chatgw.hgrm" > "$OUT/group-chatgw.txt" || true
stop_servers

# The independent client needs Python's websockets package.
if command -v python3 >/dev/null && ! python3 -c 'import websockets' 2>/dev/null; then
    python3 -m pip install --quiet websockets >/dev/null 2>&1 || true
fi
if command -v python3 >/dev/null && python3 -c 'import websockets' 2>/dev/null; then
    for system in chatgw baseline; do
        log "spot-check: $system"
        start_server "$system"
        # Both clients at once, on their own users: the same server, disk
        # and box at the same moments, so a stall shows in both or neither.
        {
            cmd "$BIN/loadgen" one-to-one --url "127.0.0.1:$PORT" --pairs 50 --rate 1000 --duration "$DURATION" \
                --secret "$SECRET" --quiet --first-user 7000000 > "$OUT/spot-$system-loadgen.txt" 2>&1 &
            lg=$!
            cmd python3 scripts/spotcheck.py --url "127.0.0.1:$PORT" --secret "$SECRET" --pairs 50 --rate 1000 --duration "$DURATION"
            wait "$lg" || true
            echo "loadgen at the same rate, at the same time:"
            grep -E 'intended send -> delivered|latency  ' "$OUT/spot-$system-loadgen.txt"
        } > "$OUT/spot-$system.txt" 2>&1 || true
        stop_servers
    done
else
    log "python3 websockets missing: skipping the spot-check (pip install websockets)"
fi

if [[ "$BOX_PROCS" -gt 0 ]]; then
    # A little under 19,000 per process: SO_REUSEPORT spreads connections
    # evenly on average, not exactly, and each process has 20,000 descriptors.
    total=$((18500 * BOX_PROCS))
    log "box level: $BOX_PROCS chatgw processes, $total connections"
    for i in $(seq 0 $((BOX_PROCS - 1))); do start_server chatgw "$i"; done
    before=$(awk '/^Slab:|^MemAvailable:/{printf "%s=%s ", $1, $2}' /proc/meminfo)
    rss_before=0; for p in "${SERVER_PIDS[@]}"; do rss_before=$((rss_before + $(awk '/VmRSS/{print $2}' /proc/$p/status))); done
    pid_args=(); for p in "${SERVER_PIDS[@]}"; do pid_args+=(--gateway-pid "$p"); done
    cmd "$BIN/loadgen" connect --url "127.0.0.1:$PORT" --gateway-admin "127.0.0.1:$ADMIN_PORT" --conns "$total" --rate 3000 --hold 15 --secret "$SECRET" \
        --procs "$BOX_PROCS" "${pid_args[@]}" --quiet --json "$OUT/box-chatgw.json" > "$OUT/box-chatgw.txt" &
    lg=$!
    sleep $((total / 3000 + 8))
    rss_held=0; for p in "${SERVER_PIDS[@]}"; do rss_held=$((rss_held + $(awk '/VmRSS/{print $2}' /proc/$p/status))); done
    held=$(awk '/^Slab:|^MemAvailable:/{printf "%s=%s ", $1, $2}' /proc/meminfo)
    wait $lg || true
    est=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["established"]))' "$OUT/box-chatgw.json" 2>/dev/null || echo "$total")
    avail_before=$(echo "$before" | sed -E 's/.*MemAvailable:=([0-9]+).*/\1/')
    avail_held=$(echo "$held" | sed -E 's/.*MemAvailable:=([0-9]+).*/\1/')
    gw_per_conn=$(( (rss_held - rss_before) * 1024 / (est > 0 ? est : 1) ))
    box_per_conn=$(( (avail_before - avail_held) * 1024 / (est > 0 ? est : 1) ))
    {
        echo "gateway processes: $BOX_PROCS, connections established: $est (of $total)"
        echo "gateway RSS (sum): ${rss_before} kB before, ${rss_held} kB while holding: $gw_per_conn bytes per connection"
        echo "box memory used (MemAvailable drop, kernel and load generator included): $box_per_conn bytes per connection"
        echo "meminfo before:  $before"
        echo "meminfo holding: $held"
    } > "$OUT/box-memory.txt"
    # The same figures for the capacity planner (loadgen plan-input).
    printf '{"gateway_processes": %s, "established": %s, "gateway_bytes_per_connection": %s, "box_bytes_per_connection": %s}\n' \
        "$BOX_PROCS" "$est" "$gw_per_conn" "$box_per_conn" > "$OUT/box-memory.json"
    stop_servers
fi

log "abuse limits"
cmd "$BIN/abuse-report" --seconds "$((QUICK == 1 ? 2 : 5))" > "$OUT/abuse.txt" 2> "$OUT/abuse.log" || true

[[ $QUICK == 1 ]] || log "micro-benchmarks"
# Keep each benchmark's name, time and throughput (not criterion's comparison
# with whatever ran before on this machine).
[[ $QUICK == 1 ]] || cargo bench -q -p chatgw-benches --benches -- --warm-up-time 1 --measurement-time 3 2>/dev/null \
    | awk '/^[a-z_]+\// { print; t = ($0 ~ /time:/) ? 1 : 0; next }
           /time:/ && t == 0 { print; t = 1; next }
           /thrpt:/ && t == 1 { print; t = 2; next }' > "$OUT/micro.txt" || true

target_args=()
[[ -n "$TARGET_RATES" ]] && target_args=(--target-rates "${TARGET_RATES// /,}")
# bench-report writes the measured sections wholesale; the sections written
# by hand (other scripts' results, investigations) follow this marker line in
# BENCHMARKS.md and are carried over unchanged.
KEEP_MARKER='<!-- Hand-written sections below: scripts/bench.sh keeps everything from this line on. -->'
kept=$(awk -v m="$KEEP_MARKER" '$0 == m { keep = 1 } keep' BENCHMARKS.md 2>/dev/null || true)
"$BIN/bench-report" write --dir "$OUT" --out "$REPORT" --plots "$PLOTS" "${target_args[@]}"
[[ -n $kept ]] && printf '\n%s\n' "$kept" >> "$REPORT"

# The capacity planner's input from this run (docs/CAPACITY.md): the
# figures measured above, the rest kept from benchmarks/plan-input.json;
# and the plan for the design's target on it.
if cmd "$BIN/loadgen" plan-input --bench-dir "$OUT" --base benchmarks/plan-input.json --out "$OUT/plan-input.json"; then
    cmd "$BIN/loadgen" plan --input "$OUT/plan-input.json" --json "$OUT/plan.json" --svg "$OUT/plan.svg" \
        > "$OUT/plan.txt" || log "loadgen plan failed on $OUT/plan-input.json"
else
    log "loadgen plan-input failed: no $OUT/plan-input.json"
fi
log "wrote $REPORT and $PLOTS/*.svg from $OUT"
