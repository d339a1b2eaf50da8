#!/usr/bin/env bash
# Run the Autobahn WebSocket testsuite (wstest -m fuzzingclient) against chatgw's
# echo endpoint and print a summary of the report.
#
# Usage: scripts/autobahn.sh [options]
#
#   --cases LIST        case patterns to run (env AUTOBAHN_CASES). Default: the list in
#                       scripts/autobahn/fuzzingclient.json: every case but compression
#                       (12.*, 13.*), i.e. 1.* .. 7.*, 9.* (messages and frames up to 16 MiB)
#                       and 10.*.
#                       Comma/space separated; a pattern prefixed with '!' (or '-') is
#                       excluded. Only exclusions means "everything but", e.g.
#                       AUTOBAHN_CASES='!12.*,!13.*'  or  --cases '*,!12.*,!13.*'
#   --server-url URL    test an already running server (env AUTOBAHN_SERVER_URL),
#                       e.g. ws://127.0.0.1:9001/echo. No build, no start/stop.
#   --server-cmd CMD    start this command instead of target/release/chatgw (env
#                       AUTOBAHN_SERVER_CMD); run with bash -c, and it sees
#                       $AUTOBAHN_PORT and $AUTOBAHN_DATA_DIR. It must serve
#                       ws://127.0.0.1:$AUTOBAHN_PORT/echo and GET /healthz, and accept
#                       messages of 16 MiB for the 9.* cases. No build.
#   --no-build          use the existing chatgw binary (env AUTOBAHN_NO_BUILD=1).
#   --report-dir DIR    where the report goes (env CHATGW_AUTOBAHN_REPORT,
#                       default target/autobahn). index.html there is the full report.
#   -h, --help
#
# Other environment:
#   CHATGW_CACHE_DIR          cache root (default ~/.cache/chatgw); the Python 2.7 venv with
#                             wstest lives in $CHATGW_CACHE_DIR/autobahn-venv, built on first
#                             run from scripts/autobahn/requirements.txt and reused after.
#   AUTOBAHN_PYTHON2          path to a Python 2.7 interpreter (else PATH, then pyenv).
#   AUTOBAHN_STARTUP_TIMEOUT  seconds to wait for /healthz (default 60).
#   AUTOBAHN_RUN_TIMEOUT      seconds wstest may run at most (default 3600).
#   CARGO_TARGET_DIR          honoured when locating the built binary.
#
# The chatgw started here runs with --max-frame 16 MiB and --max-outbound 64 MiB, for
# this run only: the 9.* cases echo messages of up to 16 MiB, far above the bounded
# production defaults (128 KiB frames, 1 MiB outbound queue).
#
# Exit status: 0 when the report exists and no case FAILED; 1 when any case FAILED;
# 2 on any other problem (no Python 2.7, venv install, build, server start, no report).

set -euo pipefail
# SIGTERM stops the gateways here at once: no balancer to drain them from.
export CHATGW_DRAIN_DELAY="${CHATGW_DRAIN_DELAY:-0s}" CHATGW_DRAIN_PERIOD="${CHATGW_DRAIN_PERIOD:-0s}"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
SPEC_TEMPLATE="$SCRIPT_DIR/autobahn/fuzzingclient.json"
REQUIREMENTS="$SCRIPT_DIR/autobahn/requirements.txt"
VIRTUALENV_SPEC='virtualenv<20.22' # last virtualenv line that can still create 2.7 envs
# Limits of the server under test: 9.1.6 / 9.2.6 send one 16 MiB message, and the echo
# queues all of it at once.
CONFORMANCE_MAX_FRAME=$((16 << 20))
CONFORMANCE_MAX_OUTBOUND=$((64 << 20))

CASES="${AUTOBAHN_CASES:-}"
SERVER_URL="${AUTOBAHN_SERVER_URL:-}"
SERVER_CMD="${AUTOBAHN_SERVER_CMD:-}"
NO_BUILD="${AUTOBAHN_NO_BUILD:-0}"
REPORT_DIR="${CHATGW_AUTOBAHN_REPORT:-target/autobahn}"
CACHE_DIR="${CHATGW_CACHE_DIR:-$HOME/.cache/chatgw}"
STARTUP_TIMEOUT="${AUTOBAHN_STARTUP_TIMEOUT:-60}"
RUN_TIMEOUT="${AUTOBAHN_RUN_TIMEOUT:-3600}"

log() { printf '[autobahn] %s\n' "$*" >&2; }
die() {
    printf '[autobahn] ERROR: %s\n' "$*" >&2
    exit 2
}
usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

need_arg() { [[ $# -ge 2 ]] || die "option $1 needs a value (see --help)"; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --cases) need_arg "$@"; CASES="$2"; shift 2 ;;
        --cases=*) CASES="${1#*=}"; shift ;;
        --server-url) need_arg "$@"; SERVER_URL="$2"; shift 2 ;;
        --server-url=*) SERVER_URL="${1#*=}"; shift ;;
        --server-cmd) need_arg "$@"; SERVER_CMD="$2"; shift 2 ;;
        --server-cmd=*) SERVER_CMD="${1#*=}"; shift ;;
        --no-build) NO_BUILD=1; shift ;;
        --report-dir) need_arg "$@"; REPORT_DIR="$2"; shift 2 ;;
        --report-dir=*) REPORT_DIR="${1#*=}"; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

[[ -n "$SERVER_URL" && -n "$SERVER_CMD" ]] && die "--server-url and --server-cmd exclude each other"
[[ "$STARTUP_TIMEOUT" =~ ^[0-9]+$ ]] || die "AUTOBAHN_STARTUP_TIMEOUT must be a whole number of seconds"
[[ "$RUN_TIMEOUT" =~ ^[0-9]+$ ]] || die "AUTOBAHN_RUN_TIMEOUT must be a whole number of seconds"
[[ -f "$SPEC_TEMPLATE" ]] || die "missing $SPEC_TEMPLATE"
[[ -f "$REQUIREMENTS" ]] || die "missing $REQUIREMENTS"

# Relative paths are relative to the repository root.
[[ "$REPORT_DIR" = /* ]] || REPORT_DIR="$REPO_ROOT/$REPORT_DIR"
[[ "$CACHE_DIR" = /* ]] || CACHE_DIR="$REPO_ROOT/$CACHE_DIR"
VENV="$CACHE_DIR/autobahn-venv"

# ---------------------------------------------------------------- cleanup
WORK_DIR=""
SERVER_PID=""
SERVER_PGID=""
WSTEST_PID=""
PROGRESS_PID=""

stop_server() {
    [[ -n "$SERVER_PID" ]] || return 0
    local pid="$SERVER_PID" target="$SERVER_PID"
    SERVER_PID=""
    [[ -n "$SERVER_PGID" ]] && target="-$SERVER_PGID"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "$target" 2>/dev/null || true
        local i
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "server (pid $pid) still running 10s after SIGTERM; sending SIGKILL"
            kill -KILL -- "$target" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -n "$WSTEST_PID" ]] && { kill -TERM "$WSTEST_PID" 2>/dev/null || true; }
    [[ -n "$PROGRESS_PID" ]] && { kill -TERM "$PROGRESS_PID" 2>/dev/null || true; }
    stop_server
    [[ -n "$WORK_DIR" && -d "$WORK_DIR" ]] && rm -rf -- "$WORK_DIR"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/chatgw-autobahn.XXXXXX")"

# ---------------------------------------------------------------- python 2.7
is_py27() { "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (2, 7) else 1)' >/dev/null 2>&1; }

find_python27() {
    local c
    if [[ -n "${AUTOBAHN_PYTHON2:-}" ]]; then
        is_py27 "$AUTOBAHN_PYTHON2" && { echo "$AUTOBAHN_PYTHON2"; return 0; }
        die "AUTOBAHN_PYTHON2=$AUTOBAHN_PYTHON2 is not a working Python 2.7 interpreter"
    fi
    for c in python2.7 python2; do
        # (a pyenv shim exists even when 2.7 is not the selected version; is_py27 runs it)
        if command -v "$c" >/dev/null 2>&1 && is_py27 "$(command -v "$c")"; then
            command -v "$c"
            return 0
        fi
    done
    local roots=()
    command -v pyenv >/dev/null 2>&1 && roots+=("$(pyenv root 2>/dev/null || true)")
    roots+=("${PYENV_ROOT:-$HOME/.pyenv}")
    local r
    for r in "${roots[@]}"; do
        [[ -n "$r" && -d "$r/versions" ]] || continue
        for c in $(ls -d "$r"/versions/2.7* 2>/dev/null | sort -rV); do
            is_py27 "$c/bin/python" && { echo "$c/bin/python"; return 0; }
        done
    done
    return 1
}

no_python27() {
    cat >&2 <<'EOF'
[autobahn] ERROR: no Python 2.7 interpreter found.
  The Autobahn testsuite (autobahntestsuite 0.8.2, the `wstest` tool) runs only on Python 2.7.
  Looked at: $AUTOBAHN_PYTHON2, python2.7 / python2 on PATH, and pyenv versions 2.7.*.
  To get one:
    - with pyenv:   pyenv install 2.7.18       (needs build deps: gcc, make, libssl-dev,
                                                zlib1g-dev, libbz2-dev, libreadline-dev, libffi-dev)
    - or point AUTOBAHN_PYTHON2 at any CPython 2.7 binary.
  It also needs a C compiler (gcc) and the 2.7 headers, which pyenv builds include.
EOF
    exit 2
}

# ---------------------------------------------------------------- venv
# The venv is complete iff its stamp matches the requirements file and interpreter.
venv_stamp() {
    "$PY27" - "$REQUIREMENTS" <<'EOF'
import hashlib, sys
print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest() + " " + sys.executable + " " + sys.version.split()[0])
EOF
}

ensure_venv() {
    local want have=""
    mkdir -p "$CACHE_DIR"
    if command -v flock >/dev/null 2>&1; then
        # two runs at once must not build the same venv; fd 9 stays open until exit
        exec 9>"$CACHE_DIR/autobahn-venv.lock"
        flock 9
    fi
    want="$(venv_stamp)"
    [[ -f "$VENV/.chatgw-stamp" ]] && have="$(cat "$VENV/.chatgw-stamp")"
    if [[ "$have" == "$want" && -x "$VENV/bin/wstest" ]]; then
        log "using cached venv $VENV"
        return 0
    fi

    local t0=$SECONDS
    log "creating venv $VENV (first run or requirements changed; takes about a minute)"
    rm -rf -- "$VENV"
    local boot="$CACHE_DIR/autobahn-virtualenv-bootstrap" boot_py=""
    # virtualenv itself, installed privately (never into the system Python).
    # Prefer Python 2.7's own pip; fall back to a python3 with pip.
    if [[ -f "$boot/.ok" ]]; then
        boot_py="$(cat "$boot/.ok")"
    else
        rm -rf -- "$boot"
        if "$PY27" -m pip --version >/dev/null 2>&1 &&
            "$PY27" -m pip install --disable-pip-version-check -q --target "$boot" "$VIRTUALENV_SPEC" >"$WORK_DIR/boot.log" 2>&1; then
            boot_py="$PY27"
        elif command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1 &&
            { rm -rf -- "$boot"; python3 -m pip install --disable-pip-version-check -q --target "$boot" "$VIRTUALENV_SPEC" >>"$WORK_DIR/boot.log" 2>&1; }; then
            boot_py="$(command -v python3)"
        else
            cat "$WORK_DIR/boot.log" >&2 2>/dev/null || true
            die "could not install '$VIRTUALENV_SPEC' with the pip of $PY27 or of python3; install pip for one of them (e.g. '$PY27 -m ensurepip --user' or 'apt-get install python3-pip')"
        fi
        echo "$boot_py" >"$boot/.ok"
    fi
    if ! PYTHONPATH="$boot" "$boot_py" -m virtualenv --no-periodic-update \
        --app-data "$CACHE_DIR/autobahn-virtualenv-appdata" -p "$PY27" "$VENV" >"$WORK_DIR/venv.log" 2>&1; then
        cat "$WORK_DIR/venv.log" >&2
        rm -rf -- "$VENV"
        die "virtualenv failed to create $VENV with $PY27"
    fi
    log "installing $(grep -c '==' "$REQUIREMENTS") pinned packages from ${REQUIREMENTS#"$REPO_ROOT"/}"
    if ! PYTHONWARNINGS=ignore "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input \
        -r "$REQUIREMENTS" >"$WORK_DIR/pip.log" 2>&1; then
        tail -n 40 "$WORK_DIR/pip.log" >&2
        rm -rf -- "$VENV"
        die "pip install into the Python 2.7 venv failed (see above). wsaccel and zope.interface are compiled: they need gcc and the Python 2.7 headers"
    fi
    if ! PYTHONWARNINGS=ignore "$VENV/bin/wstest" -a >"$WORK_DIR/wstest-version.log" 2>&1; then
        cat "$WORK_DIR/wstest-version.log" >&2
        rm -rf -- "$VENV"
        die "wstest was installed but does not run"
    fi
    echo "$want" >"$VENV/.chatgw-stamp"
    log "venv ready in $((SECONDS - t0))s"
}

# ---------------------------------------------------------------- main
T_START=$SECONDS
PY27="$(find_python27)" || no_python27
log "python 2.7: $PY27"
ensure_venv
VPY="$VENV/bin/python"
export PYTHONWARNINGS=ignore # silence cryptography's Python 2 deprecation warning

command -v curl >/dev/null 2>&1 || [[ -n "$SERVER_URL" ]] || die "curl is needed to poll /healthz (apt-get install curl)"

SERVER_LOG=""
if [[ -n "$SERVER_URL" ]]; then
    URL="$SERVER_URL"
    log "using already running server at $URL (no build, no start/stop)"
else
    PORT="$("$VPY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
    DATA_DIR="$WORK_DIR/data"
    mkdir -p "$DATA_DIR" "$REPORT_DIR"
    URL="ws://127.0.0.1:$PORT/echo"
    SERVER_LOG="$REPORT_DIR/server.log"
    : >"$SERVER_LOG"

    if [[ -n "$SERVER_CMD" ]]; then
        log "starting server command on port $PORT: $SERVER_CMD"
        export AUTOBAHN_PORT="$PORT" AUTOBAHN_DATA_DIR="$DATA_DIR"
        if command -v setsid >/dev/null 2>&1; then
            # own process group, so stopping it also stops whatever CMD spawned
            setsid bash -c "$SERVER_CMD" >>"$SERVER_LOG" 2>&1 </dev/null &
            SERVER_PID=$!
            SERVER_PGID=$SERVER_PID
        else
            bash -c "$SERVER_CMD" >>"$SERVER_LOG" 2>&1 </dev/null &
            SERVER_PID=$!
        fi
    else
        TARGET_DIR="${CARGO_TARGET_DIR:-target}"
        [[ "$TARGET_DIR" = /* ]] || TARGET_DIR="$REPO_ROOT/$TARGET_DIR"
        BIN="$TARGET_DIR/release/chatgw"
        if [[ "$NO_BUILD" != 1 ]]; then
            command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust, or use --no-build / --server-cmd / --server-url)"
            log "building: cargo build --release -p chatgw"
            t0=$SECONDS
            (cd "$REPO_ROOT" && cargo build --release -p chatgw) || die "cargo build --release -p chatgw failed"
            log "build done in $((SECONDS - t0))s"
        fi
        [[ -x "$BIN" ]] || die "no chatgw binary at $BIN"
        log "starting $BIN serve on 127.0.0.1:$PORT"
        "$BIN" serve --listen "127.0.0.1:$PORT" --admin-listen off --data "$DATA_DIR" --workers 2 --echo-endpoint \
            --max-frame "$CONFORMANCE_MAX_FRAME" --max-outbound "$CONFORMANCE_MAX_OUTBOUND" \
            >>"$SERVER_LOG" 2>&1 </dev/null &
        SERVER_PID=$!
    fi

    log "waiting up to ${STARTUP_TIMEOUT}s for http://127.0.0.1:$PORT/healthz"
    deadline=$((SECONDS + STARTUP_TIMEOUT))
    until curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/healthz" 2>/dev/null; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            tail -n 30 "$SERVER_LOG" >&2 || true
            SERVER_PID=""
            die "server exited before /healthz answered (log: $SERVER_LOG)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 30 "$SERVER_LOG" >&2 || true
            die "server did not answer 200 on /healthz within ${STARTUP_TIMEOUT}s (log: $SERVER_LOG)"
        fi
        sleep 0.2
    done
    log "server ready"
fi

# ---------------------------------------------------------------- spec
mkdir -p "$REPORT_DIR"
# Never read a stale report: remove what a previous run left.
rm -f -- "$REPORT_DIR/index.json" "$REPORT_DIR/index.html" "$REPORT_DIR"/*_case_*.json "$REPORT_DIR"/*_case_*.html
SPEC="$WORK_DIR/fuzzingclient.json"
"$VPY" - "$SPEC_TEMPLATE" "$SPEC" "$URL" "$REPORT_DIR" "$CASES" <<'EOF'
import json, re, sys
template, out, url, outdir, cases = sys.argv[1:6]
spec = json.load(open(template))
spec.pop("_comment", None)
spec["outdir"] = outdir
spec["servers"][0]["url"] = url
if cases.strip():
    inc, exc = [], []
    for tok in re.split(r"[\s,]+", cases.strip()):
        if tok[:1] in ("!", "-"):
            exc.append(tok[1:])
        elif tok:
            inc.append(tok)
    spec["cases"] = inc or ["*"]
    spec["exclude-cases"] = exc
json.dump(spec, open(out, "w"), indent=2)
sys.stderr.write("[autobahn] cases: %s%s\n" % (
    " ".join(spec["cases"]),
    ("  excluding: " + " ".join(spec["exclude-cases"])) if spec.get("exclude-cases") else ""))
EOF

# ---------------------------------------------------------------- run
log "running wstest -m fuzzingclient against $URL (report: ${REPORT_DIR#"$REPO_ROOT"/})"
WSTEST_LOG="$REPORT_DIR/wstest.log"
t0=$SECONDS
wstest_cmd=("$VENV/bin/wstest" -m fuzzingclient -s "$SPEC")
command -v timeout >/dev/null 2>&1 && wstest_cmd=(timeout --foreground --kill-after=10 "$RUN_TIMEOUT" "${wstest_cmd[@]}")
# In the background, so that INT/TERM reach our trap at once (bash only runs traps between
# foreground commands); progress lines are echoed from the log.
(cd "$WORK_DIR" && exec "${wstest_cmd[@]}") >"$WSTEST_LOG" 2>&1 </dev/null &
WSTEST_PID=$!
tail -n +1 -F --pid="$WSTEST_PID" "$WSTEST_LOG" 2>/dev/null |
    grep --line-buffered -E '^(Running test case|Ok, will run|Connection to|Traceback|[A-Za-z.]*(Error|Exception))' &
PROGRESS_PID=$!
wstest_rc=0
wait "$WSTEST_PID" || wstest_rc=$?
WSTEST_PID=""
wait "$PROGRESS_PID" 2>/dev/null || true
PROGRESS_PID=""
WSTEST_SECS=$((SECONDS - t0))
log "wstest finished in ${WSTEST_SECS}s (exit $wstest_rc, log: ${WSTEST_LOG#"$REPO_ROOT"/})"
((wstest_rc == 124)) && log "ERROR: wstest was stopped after AUTOBAHN_RUN_TIMEOUT=${RUN_TIMEOUT}s"

server_died=0
if [[ -n "$SERVER_PID" ]]; then
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        server_died=1
        SERVER_PID=""
    fi
    stop_server
fi

# ---------------------------------------------------------------- summary
set +e
# wstest stops at the first refused connection (e.g. the server crashed) and still exits 0
# with a partial report: compare against the case count it announced.
expected="$(sed -n 's/^Ok, will run \([0-9][0-9]*\) test cases.*/\1/p' "$WSTEST_LOG" | head -n 1)"
"$VPY" - "$REPORT_DIR/index.json" "${REPORT_DIR#"$REPO_ROOT"/}" "${expected:-0}" <<'EOF'
import json, os, re, sys
path, shown, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    report = json.load(open(path))
except (IOError, OSError, ValueError) as e:
    sys.stderr.write("[autobahn] ERROR: no usable report at %s: %s\n" % (path, e))
    sys.exit(2)
if not report or not any(report.values()):
    sys.stderr.write("[autobahn] ERROR: report %s has no results (could wstest connect to the server? see wstest.log)\n" % path)
    sys.exit(2)

def case_key(cid):
    return tuple(int(p) if p.isdigit() else p for p in cid.split("."))

ORDER = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
rc = 0
for agent in sorted(report):
    cases = report[agent]
    counts = dict((b, 0) for b in ORDER)
    close_counts = {}
    failed = []
    for cid, res in cases.items():
        b = res.get("behavior", "?")
        counts[b] = counts.get(b, 0) + 1
        if b == "FAILED":
            failed.append(cid)
        bc = res.get("behaviorClose", "?")
        close_counts[bc] = close_counts.get(bc, 0) + 1
    print("Autobahn summary for agent %s: %d cases (full report: %s/index.html)" % (agent, len(cases), shown))
    for b in ORDER + sorted(set(counts) - set(ORDER)):
        print("  %-14s %5d" % (b, counts[b]))
    print("  %-14s %5d" % ("total", len(cases)))
    # Where the time goes, by case group (9.* dominates: messages up to 16 MiB).
    group_ms = {}
    for cid, res in cases.items():
        g = cid.split(".")[0] + ".*"
        group_ms[g] = group_ms.get(g, 0) + int(res.get("duration") or 0)
    print("  seconds by group: " + ", ".join(
        "%s %.1f" % (g, group_ms[g] / 1000.0) for g in sorted(group_ms, key=case_key)))
    print("  close behavior: " + ", ".join("%s %d" % (k, close_counts[k]) for k in sorted(close_counts)))
    if failed:
        failed.sort(key=case_key)
        rc = 1
        print("  FAILED cases (%d): %s" % (len(failed), " ".join(failed)))
        for cid in failed[:20]:  # why, from each case's own report file
            why = ""
            try:
                case = json.load(open(os.path.join(os.path.dirname(path), cases[cid]["reportfile"])))
                why = re.sub(r"<[^>]*>", " ", case.get("result") or case.get("description") or "")
            except Exception:
                pass
            why = " ".join(why.split())
            print("    %-8s %s" % (cid, why[:150] + ("..." if len(why) > 150 else "")))
        if len(failed) > 20:
            print("    ... (%d more)" % (len(failed) - 20))
    else:
        print("  no FAILED cases")
    if len(cases) < expected:
        sys.stderr.write("[autobahn] ERROR: incomplete report: %d of the %d cases ran "
                         "(wstest lost the server; see wstest.log and server.log)\n" % (len(cases), expected))
        rc = 2
sys.exit(rc)
EOF
summary_rc=$?
set -e

[[ $server_died == 1 ]] && {
    tail -n 30 "$SERVER_LOG" >&2 || true
    log "ERROR: the server exited during the run (log: $SERVER_LOG)"
}
log "total $((SECONDS - T_START))s (wstest ${WSTEST_SECS}s)"
((summary_rc != 0)) && exit "$summary_rc"
((wstest_rc == 124)) && exit 2
((wstest_rc != 0)) && die "wstest exited with status $wstest_rc (log: $WSTEST_LOG)"
((server_died == 1)) && exit 2
exit 0
