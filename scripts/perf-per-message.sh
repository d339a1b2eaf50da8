#!/usr/bin/env bash
# System calls, context switches and CPU time per delivered message, for
# chatgw and the baseline relay side by side, at a few one-to-one rates.
#
# Why: at low rates most of chatgw's CPU per message is the kernel's, and
# much of that is waking threads: a message crosses a core, the committer,
# the writer and a core again, and each hop may find its thread asleep.
# Instruction counts (scripts/callgrind.sh) do not see that; these counts do.
# scripts/bench.sh reports CPU per message; this adds what it is made of.
#
# For each system and rate: a fresh server (chatgw: --io $IO, its store in
# a fresh directory on the disk, as bench.sh runs it, or on tmpfs with
# STORE=tmpfs), `loadgen one-to-one` (PAIRS pairs, DURATION), and, once the
# connections are up (SETTLE seconds after loadgen starts), a window of
# WINDOW seconds in which it counts:
#   - the whole box's context switches (`perf stat -a -e context-switches`);
#   - the server's system calls and context switches, per thread name
#     (`perf stat --per-thread -p`; threads of one name are summed);
#   - the server's user and kernel CPU time (/proc/PID/stat).
# Each is divided by the messages delivered in the window (loadgen's
# achieved delivery rate x WINDOW; below saturation that is the offered rate).
#
# Usage: scripts/perf-per-message.sh
# Environment: RATES ("2000 10000"), SYSTEMS ("chatgw baseline"), IO (uring),
#   PAIRS (400), DURATION (10s of sending), SETTLE (3), WINDOW (6),
#   STORE (disk|tmpfs, default disk), OUT (a fresh directory under
#   target/perf), CARGO_TARGET_DIR.
# Output: a table on stdout and in OUT/summary.txt, and every run's files.
set -euo pipefail
# SIGTERM stops the gateways here at once: no balancer to drain them from.
export CHATGW_DRAIN_DELAY="${CHATGW_DRAIN_DELAY:-0s}" CHATGW_DRAIN_PERIOD="${CHATGW_DRAIN_PERIOD:-0s}"
cd "$(dirname "$0")/.."

RATES="${RATES:-2000 10000}"
SYSTEMS="${SYSTEMS:-chatgw baseline}"
IO="${IO:-uring}"
PAIRS="${PAIRS:-400}"
DURATION="${DURATION:-10}"
SETTLE="${SETTLE:-3}"
WINDOW="${WINDOW:-6}"
STORE="${STORE:-disk}"
TARGET="${CARGO_TARGET_DIR:-target}"
BIN="$TARGET/release"
OUT="${OUT:-$TARGET/perf/$(date +%Y%m%d-%H%M%S)}"
PORT="${PORT:-18670}"
ADMIN_PORT="${ADMIN_PORT:-18671}"
SECRET=perf-secret
mkdir -p "$OUT"
log() { printf '[perf] %s\n' "$*" >&2; }
((SETTLE + WINDOW <= DURATION)) || { log "SETTLE + WINDOW must fit in DURATION"; exit 2; }
command -v perf >/dev/null || { log "perf is needed (apt-get install linux-perf)"; exit 2; }

ulimit -n 20000 || true
log "building release"
cargo build --release -q -p chatgw -p loadgen -p chatgw-benches --bins

SERVER=""
DATA=""
stop_server() {
    if [[ -n "$SERVER" ]]; then
        kill -TERM "$SERVER" 2>/dev/null || true
        timeout 15 tail --pid="$SERVER" -f /dev/null 2>/dev/null || kill -KILL "$SERVER" 2>/dev/null || true
    fi
    SERVER=""
    [[ -n "$DATA" ]] && rm -rf -- "$DATA"
    DATA=""
}
trap stop_server EXIT

start_server() {
    case $1 in
        chatgw)
            if [[ $STORE == tmpfs ]]; then DATA=$(mktemp -d /dev/shm/chatgw-perf.XXXXXX); else DATA=$(mktemp -d "$OUT/data.XXXXXX"); fi
            CHATGW_LOG=warn "$BIN/chatgw" serve --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" \
                --data "$DATA" --secret "$SECRET" --io "$IO" > "$OUT/server-$1-$2.log" 2>&1 &
            ;;
        baseline)
            "$BIN/baseline-relay" --listen "127.0.0.1:$PORT" --secret "$SECRET" > "$OUT/server-$1-$2.log" 2>&1 &
            ;;
        *) log "unknown system $1"; exit 2 ;;
    esac
    SERVER=$!
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
        sleep 0.1
    done
    log "$1 did not come up"; return 1
}

# cpu_ticks PID: user and system clock ticks so far.
cpu_ticks() { awk '{ print $14, $15 }' "/proc/$1/stat"; }
# thread_ticks PID: "name user system" per thread (the name has no spaces).
thread_ticks() {
    for t in /proc/"$1"/task/*; do
        printf '%s %s\n' "$(tr ' ' '_' < "$t/comm")" "$(awk '{ print $(NF-38), $(NF-37) }' "$t/stat")"
    done 2>/dev/null
}

for system in $SYSTEMS; do
    for rate in $RATES; do
        run="$system-$rate"
        log "$run: $PAIRS pairs, $rate msg/s for ${DURATION}s, counting ${WINDOW}s after ${SETTLE}s"
        start_server "$system" "$rate"
        "$BIN/loadgen" one-to-one --url "127.0.0.1:$PORT" --secret "$SECRET" --pairs "$PAIRS" --rate "$rate" \
            --duration "${DURATION}s" --gateway-pid "$SERVER" --quiet --json "$OUT/$run.json" > "$OUT/$run.txt" 2>&1 &
        lg=$!
        sleep "$SETTLE"
        read -r u0 s0 < <(cpu_ticks "$SERVER")
        thread_ticks "$SERVER" > "$OUT/$run.threads0"
        perf stat -a -x, -e context-switches -o "$OUT/$run.box.csv" -- sleep "$WINDOW" &
        box=$!
        perf stat --per-thread -p "$SERVER" -x, -e raw_syscalls:sys_enter,context-switches \
            -o "$OUT/$run.threads.csv" -- sleep "$WINDOW" 2>/dev/null || true
        wait "$box" || true
        read -r u1 s1 < <(cpu_ticks "$SERVER")
        thread_ticks "$SERVER" > "$OUT/$run.threads1"
        echo "$((u1 - u0)) $((s1 - s0)) $(getconf CLK_TCK)" > "$OUT/$run.cpu"
        wait "$lg" || log "$run: loadgen reported a failure (see $OUT/$run.txt)"
        stop_server
    done
done

python3 - "$OUT" "$WINDOW" "$RATES" "$SYSTEMS" <<'PY' | tee "$OUT/summary.txt"
import collections, csv, json, os, re, sys

out, window = sys.argv[1], float(sys.argv[2])
rates, systems = sys.argv[3].split(), sys.argv[4].split()

def counts(path):
    """{(thread name, event): count} from a perf stat -x, file."""
    got = collections.Counter()
    for row in csv.reader(l for l in open(path) if l.strip() and not l.startswith("#")):
        if len(row) < 4 or not row[1].replace(".", "").isdigit() and not row[0].replace(".", "").isdigit():
            continue
        if "-" in row[0] and not row[0].replace(".", "").isdigit():  # per thread: comm-tid,count,unit,event
            name = re.sub(r"-\d+$", "", row[0])
            got[(name, row[3])] += float(row[1]) if row[1] not in ("<not counted>", "") else 0
        else:  # whole box: count,unit,event
            got[("box", row[2])] += float(row[0])
    return got

print(f"per delivered message, {window:.0f} s window; gateway CPU in microseconds")
print(f"{'run':<18}{'msgs/s':>9}{'cpu us':>8}{'user':>7}{'kernel':>8}{'box cs':>8}{'srv cs':>8}{'syscalls':>9}")
detail = []
for system in systems:
    for rate in rates:
        run = f"{system}-{rate}"
        try:
            report = json.load(open(os.path.join(out, f"{run}.json")))
            u, s, hz = map(float, open(os.path.join(out, f"{run}.cpu")).read().split())
            box = counts(os.path.join(out, f"{run}.box.csv"))
            threads = counts(os.path.join(out, f"{run}.threads.csv"))
        except (OSError, ValueError) as e:
            print(f"{run:<18} missing ({e})")
            continue
        achieved = report.get("achieved_delivery_rate") or 0
        msgs = achieved * window
        if msgs <= 0:
            print(f"{run:<18} nothing delivered")
            continue
        user, kern = u / hz * 1e6 / msgs, s / hz * 1e6 / msgs
        box_cs = box[("box", "context-switches")] / msgs
        srv_cs = sum(v for (n, e), v in threads.items() if e == "context-switches") / msgs
        sysc = sum(v for (n, e), v in threads.items() if e == "raw_syscalls:sys_enter") / msgs
        print(f"{run:<18}{achieved:>9.0f}{user + kern:>8.1f}{user:>7.1f}{kern:>8.1f}{box_cs:>8.2f}{srv_cs:>8.2f}{sysc:>9.2f}")
        ticks = collections.Counter()
        for k, sign in (("threads1", 1), ("threads0", -1)):
            for line in open(os.path.join(out, f"{run}.{k}")):
                name, ut, st = line.split()
                name = re.sub(r"-\d+$", "", name) if not name.startswith("chatgw-core") else "chatgw-core-N"
                ticks[(name, "user")] += sign * int(ut)
                ticks[(name, "sys")] += sign * int(st)
        merged = collections.Counter()
        for (n, e), v in threads.items():
            merged[("chatgw-core-N" if n.startswith("chatgw-core") else n, e)] += v
        names = sorted({n for n, _ in merged} | {n for n, _ in ticks}, key=lambda n: -merged[(n, "context-switches")])
        for n in names:
            cs, sc = merged[(n, "context-switches")] / msgs, merged[(n, "raw_syscalls:sys_enter")] / msgs
            tu, tk = ticks[(n, "user")] / hz * 1e6 / msgs, ticks[(n, "sys")] / hz * 1e6 / msgs
            if cs >= 0.005 or sc >= 0.005 or tu + tk > 0:
                detail.append(f"  {run:<16} {n:<16} cs {cs:6.2f}  syscalls {sc:6.2f}  cpu us {tu + tk:6.1f} (user {tu:5.1f}, kernel {tk:5.1f})")
print("per server thread (threads of one name summed; the cores as chatgw-core-N):")
print("\n".join(detail))
PY
