#!/usr/bin/env bash
# Crash soak: SIGKILL the gateway again and again under load and check that
# nothing acknowledged was lost or duplicated, and that the store is intact.
#
# Starts `chatgw serve` on a fresh data directory, runs `loadgen soak` against
# it (direct pairs and groups, users with one or two devices, a modest
# open-loop rate; devices reconnect with backoff, sync from their cursor and
# resend unacknowledged messages with the same client id), and meanwhile
# SIGKILLs the gateway at random moments (every 0.5 to 5 s) and restarts it
# on the same port and data directory, waiting for /healthz each time. Once
# the sending time is over it stops killing; loadgen's devices settle, sync to
# the present and verify: every acknowledged message reached every device it
# was owed to exactly once, in per-conversation order. Then the gateway is
# stopped gracefully and `chatgw check` verifies the store's invariants.
#
# With --store postgres the messages live in a throwaway PostgreSQL server
# (initdb in a temporary directory, as the `postgres` user when run as root;
# listening on a free port of 127.0.0.1; binaries from /usr/lib/postgresql/*/bin
# or CHATGW_PG_BIN), prepared with `chatgw store init`. Besides the gateway
# kills, PostgreSQL itself is stopped with `pg_ctl stop -m immediate` --pg-stops
# times during the sending time and started again 2 to 5 s later: meanwhile
# devices get `unavailable`, never a `sent` for a message not committed, and
# the same gateway process must recover (/healthz answers 200 again within
# 30 s) without a restart, and /healthz must have answered 503 while the
# server was down (the gateway's liveness probe notices even when no device
# sends). `chatgw check --store URL` then checks the database.
#
# With --nodes N (N >= 2) the gateway is a fleet (docs/CLUSTER.md): N
# nodes on one throwaway PostgreSQL store (--store postgres is implied), their
# connection registry a redis-server of their own on a free port, loadgen's
# users spread over every node so most conversations cross nodes. Each kill
# SIGKILLs a random node and starts it again on the same addresses (a new
# epoch; its old placements are ghosts until its lease lapses), and Redis is
# SIGKILLed once halfway through and started again empty 2 s later (every
# node takes its lease again and republishes its users). PostgreSQL is not
# crashed in this mode unless --pg-stops says so. Order is then judged per
# sending device: an inbox is in commit order, which over several nodes is
# not id order (docs/PROTOCOL.md).
#
# Usage: scripts/crash-soak.sh [--duration SECS] [--kills N] [--rate R]
#                              [--settle SECS] [--no-build] [--out DIR]
#                              [--store embedded|postgres] [--pg-stops N]
#                              [--nodes N]
#   --duration SECS  how long loadgen sends and the gateway gets killed (default 300)
#   --kills N        stop killing after N kills (default: no limit within --duration)
#   --rate R         messages per second in total (default 300)
#   --settle SECS    quiet period after sending for devices to catch up (default 60)
#   --no-build       use the release binaries already built
#   --out DIR        results directory (default: a new /tmp/crash-soak.XXXXXX)
#   --store KIND     `embedded` (default) or `postgres` (a throwaway local server)
#   --pg-stops N     with --store postgres: PostgreSQL crashes, spread evenly
#                    over --duration (default 2; 0 with --nodes)
#   --nodes N        a fleet of N nodes and a Redis registry (default 1: one
#                    gateway, no registry)
# Exits 0 only if loadgen's verdict (lost=0, dup=0, order=0) and the integrity
# check both pass, at least one kill happened and, with PostgreSQL, every
# planned server crash happened, /healthz said 503 during each, and the
# gateway came back from each by itself. Bounded: at most about duration + settle + 3 minutes.
set -euo pipefail
# SIGTERM stops the gateways here at once: no balancer to drain them from.
export CHATGW_DRAIN_DELAY="${CHATGW_DRAIN_DELAY:-0s}" CHATGW_DRAIN_PERIOD="${CHATGW_DRAIN_PERIOD:-0s}"
cd "$(dirname "$0")/.."

DURATION=300
KILLS=0
RATE=300
SETTLE=60
BUILD=1
OUT=""
STORE=embedded
PG_STOPS=""
NODES=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --duration) DURATION="$2"; shift 2 ;;
        --kills) KILLS="$2"; shift 2 ;;
        --rate) RATE="$2"; shift 2 ;;
        --settle) SETTLE="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --out) OUT="$2"; shift 2 ;;
        --store) STORE="$2"; shift 2 ;;
        --pg-stops) PG_STOPS="$2"; shift 2 ;;
        --nodes) NODES="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "crash-soak: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

case "$STORE" in
    embedded|postgres) ;;
    *) echo "crash-soak: --store is embedded or postgres, not $STORE" >&2; exit 2 ;;
esac
if ! [[ $NODES =~ ^[0-9]+$ ]] || (( NODES < 1 || NODES > 16 )); then
    echo "crash-soak: --nodes is 1 to 16, not $NODES" >&2; exit 2
fi
if (( NODES > 1 )); then
    # Every node of a fleet shares the store: the embedded one cannot be.
    STORE=postgres
    PG_STOPS="${PG_STOPS:-0}"
    if ! command -v redis-server > /dev/null; then
        echo "crash-soak: --nodes needs redis-server (Debian: redis-server)" >&2; exit 2
    fi
fi
PG_STOPS="${PG_STOPS:-2}"

TARGET="${CARGO_TARGET_DIR:-target}"
BIN="$TARGET/release"
OUT="${OUT:-$(mktemp -d /tmp/crash-soak.XXXXXX)}"
mkdir -p "$OUT"
DATA="$OUT/data"
SECRET="crash-soak-$RANDOM$RANDOM"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Node i (0-based) listens on PORTS[i] and, in a fleet, takes links on LINKS[i].
PORTS=()
LINKS=()
for (( i = 0; i < NODES; i++ )); do
    PORTS+=("$(free_port)")
    LINKS+=("$(free_port)")
done
PORT="${PORTS[0]}"
log() { printf '[crash-soak %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ $BUILD == 1 ]]; then
    log "building release binaries"
    cargo build --release -q -p chatgw -p loadgen
fi

GW_PID=""
GW_PIDS=()
LG_PID=""
PG_DIR=""
REDIS_PID=""
cleanup() {
    [[ -n "$LG_PID" ]] && kill "$LG_PID" 2>/dev/null || true
    [[ -n "$GW_PID" ]] && kill -9 "$GW_PID" 2>/dev/null || true
    for pid in "${GW_PIDS[@]}"; do
        [[ -n "$pid" ]] && kill -9 "$pid" 2>/dev/null || true
    done
    [[ -n "$REDIS_PID" ]] && kill -9 "$REDIS_PID" 2>/dev/null || true
    if [[ -n "$PG_DIR" ]]; then
        pg pg_ctl -D "$PG_DIR/data" -m immediate -w stop > /dev/null 2>&1 || true
        cp "$PG_DIR/server.log" "$OUT/postgres.log" 2> /dev/null || true
        rm -rf "$PG_DIR"
    fi
}
trap cleanup EXIT

# A PostgreSQL program, as the `postgres` user when running as root (initdb
# refuses root).
pg() {
    local program="$1"; shift
    if (( EUID == 0 )); then
        runuser -u postgres -- "$PG_BIN/$program" "$@"
    else
        "$PG_BIN/$program" "$@"
    fi
}

pg_start() {
    pg pg_ctl -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
        -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1" start > /dev/null
}

STORE_ARGS=()
if [[ $STORE == postgres ]]; then
    PG_BIN="${CHATGW_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2> /dev/null | sort -V | tail -n 1)}"
    if [[ -z "$PG_BIN" || ! -x "$PG_BIN/pg_ctl" ]]; then
        echo "crash-soak: no PostgreSQL server binaries (install postgresql, or set CHATGW_PG_BIN)" >&2
        exit 2
    fi
    # Its own directory, not under $OUT: the server's user must own it.
    PG_DIR="$(mktemp -d /tmp/crash-soak-pg.XXXXXX)"
    (( EUID == 0 )) && chown postgres: "$PG_DIR"
    PG_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    pg initdb -D "$PG_DIR/data" -A trust -U postgres -E UTF8 --no-sync > "$OUT/initdb.log" 2>&1
    pg_start
    pg createdb -h 127.0.0.1 -p "$PG_PORT" -U postgres chatgw
    PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/chatgw"
    "$BIN/chatgw" store init --store "$PG_URL" > "$OUT/store-init.txt" 2>&1
    STORE_ARGS=(--store "$PG_URL")
    log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT; store $PG_URL"
else
    PG_STOPS=0
fi

# The fleet's registry: a redis-server that keeps nothing on disk, so a
# restart loses every key (the worst case for the nodes).
REDIS_PORT=""
CLUSTER_ARGS=()
start_redis() {
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$OUT" --logfile "$OUT/redis.log" &
    REDIS_PID=$!
    for _ in $(seq 100); do
        redis-cli -p "$REDIS_PORT" ping > /dev/null 2>&1 && return 0
        sleep 0.05
    done
    log "redis-server did not start; see $OUT/redis.log"
    return 1
}
if (( NODES > 1 )); then
    REDIS_PORT="$(free_port)"
    start_redis
    CLUSTER_ARGS=(--cluster "redis://127.0.0.1:$REDIS_PORT" --lease 3s)
fi

# Start node $1 (0-based) and wait for its /healthz (up to 30 s). One node:
# the plain gateway. A restarted fleet node waits for its previous run's
# lease to lapse (at most the 3 s lease) before it answers.
start_gateway() {
    local i="${1:-0}" pid
    local args=(serve --listen "127.0.0.1:${PORTS[$i]}" --admin-listen off --data "$DATA/$i" "${STORE_ARGS[@]}" --secret "$SECRET" --workers 2)
    if (( NODES > 1 )); then
        args+=("${CLUSTER_ARGS[@]}" --node-id "$(( i + 1 ))" --link-listen "127.0.0.1:${LINKS[$i]}")
    fi
    "$BIN/chatgw" "${args[@]}" >> "$OUT/gateway-$i.log" 2>&1 &
    pid=$!
    GW_PIDS[$i]=$pid
    (( i == 0 )) && GW_PID=$pid
    for _ in $(seq 300); do
        if curl -sf "http://127.0.0.1:${PORTS[$i]}/healthz" > /dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "$pid" 2> /dev/null; then
            log "node $i exited while starting; see $OUT/gateway-$i.log"
            return 1
        fi
        sleep 0.1
    done
    log "node $i did not answer /healthz within 30 s"
    return 1
}

URLS=""
for (( i = 0; i < NODES; i++ )); do
    start_gateway "$i"
    URLS="${URLS:+$URLS,}127.0.0.1:${PORTS[$i]}"
done
log "results in $OUT; $NODES gateway node(s) on $URLS${REDIS_PORT:+, registry redis://127.0.0.1:$REDIS_PORT}"

"$BIN/loadgen" soak --url "$URLS" --secret "$SECRET" --rate "$RATE" \
    --duration "${DURATION}s" --settle "${SETTLE}s" --handshake-timeout 5s \
    --json "$OUT/soak.json" --check lost=0,dup=0,order=0,idem=0 \
    > "$OUT/loadgen.txt" 2> "$OUT/loadgen.log" &
LG_PID=$!

# Crash PostgreSQL under the running gateway, start it again 2 to 5 s later,
# and wait for the same gateway process to report the store writable again.
pg_stops=0
pg_unrecovered=0
pg_healthy_while_down=0
pg_recover_ms_max=0
crash_postgres() {
    pg pg_ctl -D "$PG_DIR/data" -m immediate -w stop > /dev/null
    pg_stops=$(( pg_stops + 1 ))
    local down_ms=$(( 2000 + RANDOM % 3001 ))
    sleep "$(( down_ms / 1000 )).$(printf '%03d' $(( down_ms % 1000 )))"
    local t0 code down_code
    down_code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz" 2> /dev/null || true)"
    # A gateway killed meanwhile answers nothing (000): only a 200 is a lie.
    [[ $down_code == 200 ]] && pg_healthy_while_down=$(( pg_healthy_while_down + 1 ))
    pg_start
    t0=$(date +%s%N)
    for _ in $(seq 300); do
        code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz" 2> /dev/null || true)"
        [[ $code == 200 ]] && break
        kill -0 "$GW_PID" 2> /dev/null || break
        sleep 0.1
    done
    local took=$(( ($(date +%s%N) - t0) / 1000000 ))
    if [[ $code == 200 ]] && kill -0 "$GW_PID" 2> /dev/null; then
        (( took > pg_recover_ms_max )) && pg_recover_ms_max=$took
        log "PostgreSQL crash $pg_stops: down ${down_ms} ms (/healthz $down_code while down); gateway writable again ${took} ms after the restart"
    else
        pg_unrecovered=$(( pg_unrecovered + 1 ))
        log "PostgreSQL crash $pg_stops: the gateway did not recover by itself (/healthz $code); restarting it"
        kill -9 "$GW_PID" 2> /dev/null || true
        wait "$GW_PID" 2> /dev/null || true
        start_gateway
    fi
}

# Kill the registry and start it again, empty, 2 s later.
redis_restarts=0
restart_redis() {
    kill -9 "$REDIS_PID"
    wait "$REDIS_PID" 2> /dev/null || true
    sleep 2
    start_redis
    redis_restarts=$(( redis_restarts + 1 ))
    log "Redis killed and started again empty"
}

kills=0
restart_ms_max=0
started=$SECONDS
# The PostgreSQL crashes fall at k * duration / (pg-stops + 1) seconds in.
next_pg_stop() { echo $(( (pg_stops + 1) * DURATION / (PG_STOPS + 1) )); }
while (( SECONDS - started < DURATION )) && { (( KILLS == 0 || kills < KILLS || pg_stops < PG_STOPS )); }; do
    if (( pg_stops < PG_STOPS && SECONDS - started >= $(next_pg_stop) )); then
        kill -0 "$LG_PID" 2> /dev/null || break
        crash_postgres
        continue
    fi
    if (( NODES > 1 && redis_restarts == 0 && SECONDS - started >= DURATION / 2 )); then
        restart_redis
        continue
    fi
    if (( KILLS > 0 && kills >= KILLS )); then
        sleep 0.5
        continue
    fi
    gap_ms=$(( 500 + RANDOM % 4501 ))
    sleep "$(( gap_ms / 1000 )).$(printf '%03d' $(( gap_ms % 1000 )))"
    (( SECONDS - started < DURATION )) || break
    kill -0 "$LG_PID" 2> /dev/null || break
    victim=$(( RANDOM % NODES ))
    kill -9 "${GW_PIDS[$victim]}"
    wait "${GW_PIDS[$victim]}" 2> /dev/null || true
    kills=$(( kills + 1 ))
    t0=$(date +%s%N)
    start_gateway "$victim"
    took=$(( ($(date +%s%N) - t0) / 1000000 ))
    (( took > restart_ms_max )) && restart_ms_max=$took
    log "kill $kills (node $victim) after ${gap_ms} ms; back up in ${took} ms"
done
log "$kills kills, $pg_stops PostgreSQL crashes${REDIS_PORT:+, $redis_restarts Redis restarts}; quiet period: waiting for loadgen's verdict"

lg_rc=0
wait "$LG_PID" || lg_rc=$?
LG_PID=""
for pid in "${GW_PIDS[@]}"; do
    kill -TERM "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
done
GW_PID=""
GW_PIDS=()

check_rc=0
"$BIN/chatgw" check --data "$DATA/0" "${STORE_ARGS[@]}" > "$OUT/check.txt" 2>&1 || check_rc=$?

cat "$OUT/loadgen.txt"
echo
echo "== chatgw check =="
sed 's/^/  /' "$OUT/check.txt"
echo
echo "== crash soak =="
# The verdict is lg_rc and check_rc; the summary only reports them.
if python3 - "$OUT/soak.json" "$kills" "$restart_ms_max" "$lg_rc" "$check_rc" \
    "$STORE" "$PG_STOPS" "$pg_stops" "$pg_unrecovered" "$pg_recover_ms_max" "$pg_healthy_while_down" \
    "$NODES" "${redis_restarts:-0}" <<'PY'
import json, sys
path, kills, restart, lg_rc, check_rc = sys.argv[1], *map(int, sys.argv[2:6])
store, (pg_planned, pg_stops, pg_unrecovered, pg_recover, pg_lied, nodes, redis_restarts) = sys.argv[6], map(int, sys.argv[7:])
try:
    r = json.load(open(path))
except Exception as e:
    r = None
    print(f"  loadgen report unreadable: {e}")
print(f"  store                       {store}")
if nodes > 1:
    print(f"  fleet                       {nodes} nodes, {redis_restarts} Redis restart(s)")
print(f"  kills survived              {kills} (slowest restart to /healthz {restart} ms)")
if store == "postgres":
    print(f"  PostgreSQL crashes          {pg_stops} of {pg_planned} ({pg_stops - pg_unrecovered} recovered without a gateway restart, slowest {pg_recover} ms)")
    print(f"  /healthz 200 while down     {pg_lied} of {pg_stops} crashes")
if r:
    v, s = r["verdict"], r["stats"]
    print(f"  messages acked / checked    {v['acked']} / {v['owed']} device deliveries owed")
    print(f"  unacknowledged (given up)   {r['unacknowledged']}")
    print(f"  unacked when cut off        {s.get('unacked_at_drop', '?')} (resent {s['resent']}, answered duplicate:true {s['acked_as_duplicate']})")
    print(f"  reconnects                  {s['reconnects']}")
    errors = s.get("errors") or {}
    print(f"  error frames by code        {', '.join(f'{k} {v}' for k, v in errors.items()) or 'none'}")
    print(f"  lost / dup / order          {v['lost']} / {v['duplicated']} / {v['out_of_order']}")
print(f"  loadgen verdict             {'pass' if lg_rc == 0 else f'FAIL (exit {lg_rc})'}")
print(f"  integrity check             {'pass' if check_rc == 0 else f'FAIL (exit {check_rc})'}")
PY
then :; else log "could not summarise $OUT/soak.json"; fi
echo "  results                     $OUT"
if (( lg_rc != 0 || check_rc != 0 || kills == 0 || pg_stops < PG_STOPS || pg_unrecovered > 0 || pg_healthy_while_down > 0 )) \
    || (( NODES > 1 && redis_restarts == 0 )); then
    exit 1
fi
