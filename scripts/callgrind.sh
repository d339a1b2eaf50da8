#!/usr/bin/env bash
# Count the gateway's instructions per delivered message with callgrind.
#
# Why instructions: the reference machine has two cores shared with the
# load generator (and, on a development box, with compilers), so CPU time
# per message moves by tens of percent between runs. An instruction count
# under callgrind moves by a few percent, so a change to the message path
# can be judged by one run before and one after, on any machine.
#
# What it does: builds release, starts `chatgw serve` under
# `valgrind --tool=callgrind` with its store on tmpfs, waits until it
# listens, switches counting on (`callgrind_control -i on`), runs
# `loadgen one-to-one` (PAIRS pairs, RATE msg/s, DURATION), switches
# counting off, stops the gateway with SIGTERM, and prints
#   - instructions (Ir) per delivered message, for the whole process and per
#     kind of thread: cores, committer, writer, store workers, other;
#   - the store's own share (inclusive Ir under the store's crates, whatever
#     thread runs them: fjall, lsm-tree, the embedded adapter);
#   - the top functions by exclusive Ir.
# The counted window is the whole loadgen run, so it includes the
# 2 x PAIRS connection handshakes and first syncs; with the defaults that
# is under 2% of the total (measured: a run with DURATION=1s).
#
# valgrind runs every thread of the gateway on one host thread, about 50
# times slower than native: keep RATE low (the default 200 msg/s keeps the
# gateway below saturation under valgrind on a 2-core VM). Only the epoll
# driver can be measured with valgrind 3.19: it knows the io_uring system
# calls, but holds its lock (one thread runs at a time) while a thread
# waits in io_uring_enter, so every other thread stalls until the core's
# one-second wait ends and the run's connections time out. Kernel time is
# never counted by callgrind: see scripts/perf-per-message.sh for that.
#
# Usage: scripts/callgrind.sh [--io epoll|uring] [--top N]
# Environment: PAIRS (50), RATE (200), DURATION (10s), OUT (a fresh
#   directory under target/callgrind), TMPFS (/dev/shm), CARGO_TARGET_DIR.
# Output: OUT/summary.txt (what is printed), OUT/callgrind.out.* (open with
#   callgrind_annotate or kcachegrind), OUT/loadgen.json.
set -euo pipefail
# SIGTERM stops the gateways here at once: no balancer to drain them from.
export CHATGW_DRAIN_DELAY="${CHATGW_DRAIN_DELAY:-0s}" CHATGW_DRAIN_PERIOD="${CHATGW_DRAIN_PERIOD:-0s}"
cd "$(dirname "$0")/.."

IO=epoll
TOP=25
while [[ $# -gt 0 ]]; do
    case $1 in
        --io) IO=$2; shift 2 ;;
        --top) TOP=$2; shift 2 ;;
        *) echo "usage: $0 [--io epoll|uring] [--top N]" >&2; exit 2 ;;
    esac
done
PAIRS="${PAIRS:-50}"
RATE="${RATE:-200}"
DURATION="${DURATION:-10s}"
TMPFS="${TMPFS:-/dev/shm}"
TARGET="${CARGO_TARGET_DIR:-target}"
BIN="$TARGET/release"
OUT="${OUT:-$TARGET/callgrind/$(date +%Y%m%d-%H%M%S)-$IO}"
PORT="${PORT:-18650}"
ADMIN_PORT="${ADMIN_PORT:-18651}"
SECRET=callgrind-secret
log() { printf '[callgrind] %s\n' "$*" >&2; }
if [[ $IO == uring && -z "${CALLGRIND_URING:-}" ]]; then
    log "--io uring: valgrind 3.19 keeps its one-thread-at-a-time lock while a thread waits in"
    log "io_uring_enter, so the other threads run only when a core's wait times out (once a"
    log "second) and loadgen's connections time out. Set CALLGRIND_URING=1 to try anyway"
    log "(a valgrind that releases the lock there would work)."
    exit 2
fi
mkdir -p "$OUT"

log "building release"
cargo build --release -q -p chatgw -p loadgen

DATA=$(mktemp -d "$TMPFS/chatgw-callgrind.XXXXXX")
GW=""
cleanup() {
    if [[ -n "$GW" ]] && kill -0 "$GW" 2>/dev/null; then
        kill -TERM "$GW" 2>/dev/null || true
        timeout 60 tail --pid="$GW" -f /dev/null 2>/dev/null || kill -KILL "$GW" 2>/dev/null || true
    fi
    rm -rf -- "$DATA"
}
trap cleanup EXIT

log "starting chatgw --io $IO under callgrind (store in $DATA)"
CHATGW_LOG=warn valgrind --tool=callgrind --instr-atstart=no --separate-threads=yes \
    --callgrind-out-file="$OUT/callgrind.out" \
    "$BIN/chatgw" serve --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" \
    --data "$DATA" --secret "$SECRET" --io "$IO" > "$OUT/gateway.log" 2>&1 &
GW=$!
for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    kill -0 "$GW" 2>/dev/null || { log "the gateway exited; see $OUT/gateway.log"; exit 1; }
    sleep 0.2
done
if grep -qi "unsupported\|unhandled syscall" "$OUT/gateway.log"; then
    log "valgrind does not support a system call the gateway made; see $OUT/gateway.log"
    exit 1
fi

callgrind_control -i on "$GW" > /dev/null
log "loadgen one-to-one: $PAIRS pairs, $RATE msg/s for $DURATION"
"$BIN/loadgen" one-to-one --url "127.0.0.1:$PORT" --secret "$SECRET" --pairs "$PAIRS" --rate "$RATE" \
    --duration "$DURATION" --quiet --json "$OUT/loadgen.json" > "$OUT/loadgen.txt" 2>&1 ||
    log "loadgen reported a failure; see $OUT/loadgen.txt"
callgrind_control -i off "$GW" > /dev/null
log "stopping the gateway"
kill -TERM "$GW"
timeout 120 tail --pid="$GW" -f /dev/null || { log "the gateway did not stop in 120 s"; exit 1; }
GW=""

python3 - "$OUT" "$TOP" "$IO" <<'PY' | tee "$OUT/summary.txt"
import collections, glob, json, os, re, subprocess, sys

out, top, io = sys.argv[1], int(sys.argv[2]), sys.argv[3]
report = json.load(open(os.path.join(out, "loadgen.json")))
delivered = report.get("delivered") or 0
if not delivered:
    sys.exit("no message was delivered; see loadgen.txt")

# A thread's kind, by the gateway code it ran (threads have no names in
# callgrind's files). The committer writes small batches itself, so the
# committer and the writer are one kind here.
KINDS = [
    ("cores", re.compile(r"chatgw_gateway::driver::(epoll::read_ready|epoll::EpollCore::run|uring::event_loop)")),
    ("committer+writer", re.compile(r"chatgw_gateway::commit::(prepare|writer::Writer)")),
    ("readers", re.compile(r"chatgw_gateway::query::")),
    ("store workers", re.compile(r"fjall::|lsm_tree::")),
]
STORE_API = re.compile(r"<chatgw_storage::embedded::EmbeddedStore as chatgw_storage::MessageStore>::(\w+)")
LINE = re.compile(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S.*)")

def annotate(f, inclusive):
    """(Ir, function) rows of one thread's file; the source file is dropped."""
    text = subprocess.run(["callgrind_annotate", f"--inclusive={inclusive}", "--threshold=100", "--auto=no", f],
                          capture_output=True, text=True).stdout
    rows = []
    for line in text.splitlines():
        m = LINE.match(line)
        if m and "PROGRAM TOTALS" not in m.group(2):
            where = m.group(2)
            binary = where.endswith("]")
            name = where.split(":", 1)[1] if ":" in where else where
            name = re.sub(r" \[[^\]]*\]$", "", name)
            rows.append((int(m.group(1).replace(",", "")), name, binary))
    return rows

per_kind = collections.Counter()
functions = collections.Counter()
core_functions = collections.Counter()
store = 0
total = 0
for f in sorted(glob.glob(os.path.join(out, "callgrind.out-*"))):
    ir = 0
    names = []
    for line in open(f, errors="replace"):
        if line.startswith("totals:"):
            ir = int(line.split()[1])
        elif line.startswith(("fn=(", "cfn=(")) and ") " in line:
            names.append(line.split(") ", 1)[1])
    if ir == 0:
        continue
    blob = "\n".join(names)
    kind = next((k for k, pat in KINDS if pat.search(blob)), "other")
    per_kind[kind] += ir
    total += ir
    for n, name, _ in annotate(f, "no"):
        functions[name] += n
        if kind == "cores":
            core_functions[name] += n
    # The store's share: the embedded store's entry points, inclusive (the
    # highest row of each: the function rather than its code inlined
    # elsewhere), wherever they ran; its own worker threads besides.
    entry = {}
    for n, name, _ in annotate(f, "yes"):
        m = STORE_API.search(name)
        if m:
            entry[m.group(1)] = max(entry.get(m.group(1), 0), n)
    store += sum(entry.values())
store += per_kind["store workers"]

cfg = report.get("config", {})
print(f"driver: {io}   delivered messages: {delivered:,}   (pairs {cfg.get('pairs')}, rate {cfg.get('rate')}/s)")
print(f"instructions (Ir) per delivered message: {total / delivered:,.0f}")
for kind in ("cores", "committer+writer", "readers", "store workers", "other"):
    print(f"  {kind:<18} {per_kind[kind] / delivered:>10,.0f}")
print(f"  of all these, in the store (its API calls inclusive + its workers): {store / delivered:,.0f}")
print(f"top {top} functions, exclusive Ir per delivered message:")
for name, n in functions.most_common(top):
    print(f"  {n / delivered:>9,.0f}  {name[:160]}")
print(f"top {top} functions of the core threads, exclusive Ir per delivered message:")
for name, n in core_functions.most_common(top):
    print(f"  {n / delivered:>9,.0f}  {name[:160]}")
PY
