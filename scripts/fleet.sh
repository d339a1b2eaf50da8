#!/usr/bin/env bash
# A three-node chatgw fleet on this box, to try: its own Redis (the
# connection registry) and its own PostgreSQL server (the shared store), and
# three `chatgw serve` processes, each with its own public, admin and link
# address (docs/CLUSTER.md).
#
# Usage: scripts/fleet.sh up [--nodes N] [--dir DIR] [--base-port P] [--no-build]
#        scripts/fleet.sh status [--dir DIR]
#        scripts/fleet.sh down [--dir DIR]
#        scripts/fleet.sh start-node I [--dir DIR] [--base-port P]
#   up          build (release), start Redis, PostgreSQL and N nodes, wait for
#               every node's /healthz, print how to connect; returns, the
#               fleet keeps running in the background
#   status      what runs, and each node's /healthz and live-node count
#   down        stop the nodes (SIGTERM: connections closed with 1012), Redis
#               and PostgreSQL, and remove DIR
#   start-node  start node I again (after it stopped) as `up` started it,
#               and wait for its /healthz (scripts/rolling-restart.sh)
#   --nodes N     nodes to start (default 3)
#   --dir DIR     where the fleet keeps its state, logs and pid files
#                 (default /tmp/chatgw-fleet)
#   --base-port P node i listens on P+10i (WebSocket), P+10i+1 (admin) and
#                 P+10i+2 (links); Redis on P+100, PostgreSQL on P+101
#                 (default 18000)
#   --no-build    use the release binary already built
# Needs redis-server and PostgreSQL's server binaries (Debian: redis-server,
# postgresql; .ci/run installs them). CHATGW_FLEET_SERVE_ARGS adds arguments
# to every node's `chatgw serve` (e.g. "--proxy-protocol --proxy-from 127.0.0.1"). When run as root, PostgreSQL runs as the
# `postgres` user, which then owns DIR/postgres.
set -euo pipefail
# SIGTERM stops the gateways here at once: no balancer to drain them from.
export CHATGW_DRAIN_DELAY="${CHATGW_DRAIN_DELAY:-0s}" CHATGW_DRAIN_PERIOD="${CHATGW_DRAIN_PERIOD:-0s}"
cd "$(dirname "$0")/.."

ACTION="${1:-}"
[[ $# -gt 0 ]] && shift
NODE=""
if [[ "$ACTION" == start-node ]]; then NODE="${1:-}"; [[ $# -gt 0 ]] && shift; fi
NODES=3
DIR=/tmp/chatgw-fleet
BASE=18000
BUILD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --nodes) NODES="$2"; shift 2 ;;
        --dir) DIR="$2"; shift 2 ;;
        --base-port) BASE="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "fleet: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

TARGET="${CARGO_TARGET_DIR:-target}"
BIN="$TARGET/release"
REDIS_PORT=$((BASE + 100))
PG_PORT=$((BASE + 101))
SECRET_FILE="$DIR/secret"

log() { echo "fleet: $*" >&2; }

pg() {
    local program="$1"; shift
    if (( EUID == 0 )); then
        runuser -u postgres -- "$PG_BIN/$program" "$@"
    else
        "$PG_BIN/$program" "$@"
    fi
}

find_pg() {
    PG_BIN="${CHATGW_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2> /dev/null | sort -V | tail -n 1)}"
    if [[ -z "$PG_BIN" || ! -x "$PG_BIN/pg_ctl" ]]; then
        log "no PostgreSQL server binaries (install postgresql, or set CHATGW_PG_BIN)"
        exit 2
    fi
}

health() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/healthz" 2> /dev/null || true; }

# Start node $1 in the background (its pid in DIR/node$1.pid).
start_node() {
    local i="$1" secret store
    local port=$((BASE + 10 * i)) admin=$((BASE + 10 * i + 1)) link=$((BASE + 10 * i + 2))
    secret="$(cat "$SECRET_FILE")"
    store="postgres://postgres@127.0.0.1:$PG_PORT/chatgw"
    mkdir -p "$DIR/node$i"
    # shellcheck disable=SC2086 # extra arguments are words
    CHATGW_LOG=info "$BIN/chatgw" serve --store "$store" --secret "$secret" \
        --cluster "redis://127.0.0.1:$REDIS_PORT" --node-id "$i" \
        --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
        --link-listen "127.0.0.1:$link" --data "$DIR/node$i" ${CHATGW_FLEET_SERVE_ARGS:-} \
        >> "$DIR/node$i.log" 2>&1 &
    echo $! > "$DIR/node$i.pid"
}

# Wait up to 10 s for node $1's /healthz.
wait_node() {
    local i="$1" admin=$((BASE + 10 * $1 + 1))
    for _ in $(seq 1 100); do
        [[ "$(health "$admin")" == 200 ]] && break
        if ! kill -0 "$(cat "$DIR/node$i.pid")" 2> /dev/null; then
            log "node $i did not start:"; tail -n 5 "$DIR/node$i.log" >&2; exit 1
        fi
        sleep 0.1
    done
    log "node $i: ws://127.0.0.1:$((BASE + 10 * i))/ws  admin http://127.0.0.1:$admin/metrics  log $DIR/node$i.log"
}

up() {
    if [[ -e "$DIR/redis.pid" ]]; then
        log "a fleet already runs in $DIR (scripts/fleet.sh down --dir $DIR first)"
        exit 2
    fi
    command -v redis-server > /dev/null || { log "redis-server is missing (apt-get install redis-server)"; exit 2; }
    find_pg
    if [[ $BUILD == 1 ]]; then
        log "building the release binary"
        cargo build --release -q -p chatgw
    fi
    mkdir -p "$DIR"
    head -c 32 /dev/urandom | base64 | tr -d '/+=' > "$SECRET_FILE"

    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --daemonize yes --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" --dir "$DIR"
    log "Redis on 127.0.0.1:$REDIS_PORT"

    mkdir -p "$DIR/postgres"
    (( EUID == 0 )) && chown postgres: "$DIR/postgres"
    pg initdb -D "$DIR/postgres/data" -A trust -U postgres -E UTF8 --no-sync > "$DIR/initdb.log" 2>&1
    pg pg_ctl -D "$DIR/postgres/data" -l "$DIR/postgres/server.log" -w -t 60 \
        -o "-p $PG_PORT -k $DIR/postgres -c listen_addresses=127.0.0.1" start > /dev/null
    pg createdb -h 127.0.0.1 -p "$PG_PORT" -U postgres chatgw
    local store="postgres://postgres@127.0.0.1:$PG_PORT/chatgw"
    "$BIN/chatgw" store init --store "$store" > "$DIR/store-init.log" 2>&1
    log "PostgreSQL on 127.0.0.1:$PG_PORT, store $store"

    for ((i = 1; i <= NODES; i++)); do start_node "$i"; done
    for ((i = 1; i <= NODES; i++)); do wait_node "$i"; done
    cat >&2 << EOF
fleet: up. Try it (two users on different nodes):
  $BIN/chatgw chat --connect 127.0.0.1:$((BASE + 10)) --secret \$(cat $SECRET_FILE) --user 1 --to 2
  $BIN/chatgw chat --connect 127.0.0.1:$((BASE + 20)) --secret \$(cat $SECRET_FILE) --user 2 --to 1
Load across nodes:
  $BIN/loadgen one-to-one --url 127.0.0.1:$((BASE + 10)),127.0.0.1:$((BASE + 20)),127.0.0.1:$((BASE + 30)) --cross-node --secret \$(cat $SECRET_FILE) --rate 1000 --duration 20s
Stop it: scripts/fleet.sh down --dir $DIR
EOF
}

status() {
    [[ -d "$DIR" ]] || { log "no fleet in $DIR"; exit 1; }
    for pidfile in "$DIR"/node*.pid; do
        [[ -e "$pidfile" ]] || continue
        local name i admin
        name="$(basename "$pidfile" .pid)"
        i="${name#node}"
        admin=$((BASE + 10 * i + 1))
        if kill -0 "$(cat "$pidfile")" 2> /dev/null; then
            local live
            live="$(curl -s "http://127.0.0.1:$admin/metrics" | awk '/^chatgw_fleet_live_nodes /{print $2}')"
            echo "$name: running, /healthz $(health "$admin"), live nodes ${live:-?}"
        else
            echo "$name: not running"
        fi
    done
    [[ -e "$DIR/redis.pid" ]] && kill -0 "$(cat "$DIR/redis.pid")" 2> /dev/null && echo "redis: running on $REDIS_PORT"
    return 0
}

down() {
    [[ -d "$DIR" ]] || { log "no fleet in $DIR"; return 0; }
    for pidfile in "$DIR"/node*.pid; do
        [[ -e "$pidfile" ]] && kill -TERM "$(cat "$pidfile")" 2> /dev/null || true
    done
    for pidfile in "$DIR"/node*.pid; do
        [[ -e "$pidfile" ]] || continue
        local pid
        pid="$(cat "$pidfile")"
        for _ in $(seq 1 50); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2> /dev/null || true
    done
    [[ -e "$DIR/redis.pid" ]] && kill "$(cat "$DIR/redis.pid")" 2> /dev/null || true
    if [[ -d "$DIR/postgres/data" ]]; then
        find_pg
        pg pg_ctl -D "$DIR/postgres/data" -m fast -w stop > /dev/null 2>&1 || true
    fi
    rm -rf "$DIR"
    log "down"
}

case "$ACTION" in
    up) up ;;
    status) status ;;
    down) down ;;
    start-node) [[ "$NODE" =~ ^[0-9]+$ ]] || { log "start-node needs a node number"; exit 2; }
        start_node "$NODE"; wait_node "$NODE" ;;
    *) echo "usage: scripts/fleet.sh up|status|down|start-node [options] (see --help)" >&2; exit 2 ;;
esac
