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
# Usage: scripts/crash-soak.sh [--duration SECS] [--kills N] [--rate R]
#                              [--settle SECS] [--no-build] [--out DIR]
#   --duration SECS  how long loadgen sends and the gateway gets killed (default 300)
#   --kills N        stop killing after N kills (default: no limit within --duration)
#   --rate R         messages per second in total (default 300)
#   --settle SECS    quiet period after sending for devices to catch up (default 60)
#   --no-build       use the release binaries already built
#   --out DIR        results directory (default: a new /tmp/crash-soak.XXXXXX)
# Exits 0 only if loadgen's verdict (lost=0, dup=0, order=0) and the integrity
# check both pass and at least one kill happened. Bounded: at most about
# duration + settle + 3 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=300
KILLS=0
RATE=300
SETTLE=60
BUILD=1
OUT=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --duration) DURATION="$2"; shift 2 ;;
        --kills) KILLS="$2"; shift 2 ;;
        --rate) RATE="$2"; shift 2 ;;
        --settle) SETTLE="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --out) OUT="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "crash-soak: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

TARGET="${CARGO_TARGET_DIR:-target}"
BIN="$TARGET/release"
OUT="${OUT:-$(mktemp -d /tmp/crash-soak.XXXXXX)}"
mkdir -p "$OUT"
DATA="$OUT/data"
SECRET="crash-soak-$RANDOM$RANDOM"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
log() { printf '[crash-soak %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ $BUILD == 1 ]]; then
    log "building release binaries"
    cargo build --release -q -p chatgw -p loadgen
fi

GW_PID=""
LG_PID=""
cleanup() {
    [[ -n "$LG_PID" ]] && kill "$LG_PID" 2>/dev/null || true
    [[ -n "$GW_PID" ]] && kill -9 "$GW_PID" 2>/dev/null || true
}
trap cleanup EXIT

# Start the gateway and wait for /healthz (up to 30 s).
start_gateway() {
    "$BIN/chatgw" serve --listen "127.0.0.1:$PORT" --admin-listen off --data "$DATA" --secret "$SECRET" --workers 2 \
        >> "$OUT/gateway.log" 2>&1 &
    GW_PID=$!
    for _ in $(seq 300); do
        if curl -sf "http://127.0.0.1:$PORT/healthz" > /dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "$GW_PID" 2> /dev/null; then
            log "the gateway exited while starting; see $OUT/gateway.log"
            return 1
        fi
        sleep 0.1
    done
    log "the gateway did not answer /healthz within 30 s"
    return 1
}

log "results in $OUT; gateway on 127.0.0.1:$PORT"
start_gateway

"$BIN/loadgen" soak --url "127.0.0.1:$PORT" --secret "$SECRET" --rate "$RATE" \
    --duration "${DURATION}s" --settle "${SETTLE}s" --handshake-timeout 5s \
    --json "$OUT/soak.json" --check lost=0,dup=0,order=0,idem=0 \
    > "$OUT/loadgen.txt" 2> "$OUT/loadgen.log" &
LG_PID=$!

kills=0
restart_ms_max=0
started=$SECONDS
while (( SECONDS - started < DURATION )) && { (( KILLS == 0 )) || (( kills < KILLS )); }; do
    gap_ms=$(( 500 + RANDOM % 4501 ))
    sleep "$(( gap_ms / 1000 )).$(printf '%03d' $(( gap_ms % 1000 )))"
    (( SECONDS - started < DURATION )) || break
    kill -0 "$LG_PID" 2> /dev/null || break
    kill -9 "$GW_PID"
    wait "$GW_PID" 2> /dev/null || true
    kills=$(( kills + 1 ))
    t0=$(date +%s%N)
    start_gateway
    took=$(( ($(date +%s%N) - t0) / 1000000 ))
    (( took > restart_ms_max )) && restart_ms_max=$took
    log "kill $kills after ${gap_ms} ms; back up in ${took} ms"
done
log "$kills kills; quiet period: waiting for loadgen's verdict"

lg_rc=0
wait "$LG_PID" || lg_rc=$?
LG_PID=""
kill -TERM "$GW_PID"
wait "$GW_PID" 2> /dev/null || true
GW_PID=""

check_rc=0
"$BIN/chatgw" check --data "$DATA" > "$OUT/check.txt" 2>&1 || check_rc=$?

cat "$OUT/loadgen.txt"
echo
echo "== chatgw check =="
sed 's/^/  /' "$OUT/check.txt"
echo
echo "== crash soak =="
# The verdict is lg_rc and check_rc; the summary only reports them.
if python3 - "$OUT/soak.json" "$kills" "$restart_ms_max" "$lg_rc" "$check_rc" <<'PY'
import json, sys
path, kills, restart, lg_rc, check_rc = sys.argv[1], *map(int, sys.argv[2:])
try:
    r = json.load(open(path))
except Exception as e:
    r = None
    print(f"  loadgen report unreadable: {e}")
print(f"  kills survived              {kills} (slowest restart to /healthz {restart} ms)")
if r:
    v, s = r["verdict"], r["stats"]
    print(f"  messages acked / checked    {v['acked']} / {v['owed']} device deliveries owed")
    print(f"  unacknowledged (given up)   {r['unacknowledged']}")
    print(f"  unacked when cut off        {s.get('unacked_at_drop', '?')} (resent {s['resent']}, answered duplicate:true {s['acked_as_duplicate']})")
    print(f"  reconnects                  {s['reconnects']}")
    print(f"  lost / dup / order          {v['lost']} / {v['duplicated']} / {v['out_of_order']}")
print(f"  loadgen verdict             {'pass' if lg_rc == 0 else f'FAIL (exit {lg_rc})'}")
print(f"  integrity check             {'pass' if check_rc == 0 else f'FAIL (exit {check_rc})'}")
PY
then :; else log "could not summarise $OUT/soak.json"; fi
echo "  results                     $OUT"
if (( lg_rc != 0 || check_rc != 0 || kills == 0 )); then
    exit 1
fi
