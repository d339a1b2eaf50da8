#!/usr/bin/env bash
# The end-to-end encryption figures (BENCHMARKS.md, "End-to-end encryption"):
# client CPU per encrypted message (criterion bench `e2ee`), envelope bytes
# against plaintext (`e2ee-sizes`), and key bundle fetches per second at a
# release gateway (`key-fetch`).
#
# usage: scripts/e2ee-bench.sh [BIN_DIR] [PORT]
#   BIN_DIR  release builds of chatgw, key-fetch and e2ee-sizes
#            (default: the workspace's target/release)
#   PORT     public port of the gateway (default 18560; admin on PORT+1)
# Environment: CONNECTIONS (default 8), WINDOW (8 fetches in flight each),
# SECONDS_RUN (2: the 128,000 keys last about that long), SKIP_CRITERION=1 to leave the criterion bench out.
# Bounded: about two minutes plus the criterion run.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-${CARGO_TARGET_DIR:-target}/release}
PORT=${2:-18560}
ADMIN=$((PORT + 1))
for b in chatgw key-fetch e2ee-sizes; do
    [ -x "$BIN/$b" ] || { echo "missing $BIN/$b: cargo build --release -p chatgw -p chatgw-benches" >&2; exit 2; }
done
WORK=$(mktemp -d)
GW=
trap '[ -n "$GW" ] && kill "$GW" 2>/dev/null; rm -rf "$WORK"' EXIT

echo "== envelope bytes (body literal) against plaintext"
"$BIN/e2ee-sizes"

echo "== key bundle fetches at a release gateway"
# The fetching connections' frame limit is raised so the gateway, not the
# limiter, sets the rate.
"$BIN/chatgw" serve --data "$WORK/data" --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN" \
    --secret e2ee-secret --rate-limit 100000 --rate-burst 100000 >"$WORK/gateway.log" 2>&1 &
GW=$!
sleep 1
"$BIN/key-fetch" --url "127.0.0.1:$PORT" --secret e2ee-secret --gateway-pid "$GW" \
    --connections "${CONNECTIONS:-8}" --window "${WINDOW:-8}" --seconds "${SECONDS_RUN:-2}"

if [ "${SKIP_CRITERION:-0}" != 1 ]; then
    echo "== client CPU per message (criterion)"
    cargo bench -p chatgw-benches --bench e2ee
fi
