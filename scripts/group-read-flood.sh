#!/usr/bin/env bash
# What one client flooding group `read` frames costs other users' sends
# (BENCHMARKS.md, "A client flooding group reads").
#
# usage: scripts/group-read-flood.sh [BIN_DIR] [PORT]
#   BIN_DIR  directory holding release builds of chatgw, loadgen and
#            group-read-flood (default: the workspace's target/release)
#   PORT     public port of the gateway (default 18500; the admin port is PORT+1)
#
# It starts a gateway on a fresh data directory, writes 15,000 group
# messages of history, then runs the same group load twice, alone and with
# the flood, and prints both latency tables. Bounded: about 70 s.
set -euo pipefail
# SIGTERM stops the gateways here at once: no balancer to drain them from.
export CHATGW_DRAIN_DELAY="${CHATGW_DRAIN_DELAY:-0s}" CHATGW_DRAIN_PERIOD="${CHATGW_DRAIN_PERIOD:-0s}"
cd "$(dirname "$0")/.."
BIN=${1:-${CARGO_TARGET_DIR:-target}/release}
PORT=${2:-18500}
ADMIN=$((PORT + 1))
for b in chatgw loadgen group-read-flood; do
    [ -x "$BIN/$b" ] || { echo "missing $BIN/$b: cargo build --release -p chatgw -p loadgen -p chatgw-benches" >&2; exit 2; }
done
WORK=$(mktemp -d)
trap 'kill "$GW" 2>/dev/null || true; rm -rf "$WORK"' EXIT
# The flooding connection's frame limit is raised so it is not throttled;
# every other client stays far below the default.
"$BIN/chatgw" serve --data "$WORK/data" --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN" \
    --secret flood-secret --rate-limit 20000 --rate-burst 20000 >"$WORK/gateway.log" 2>&1 &
GW=$!
sleep 1
group() { "$BIN/loadgen" group --url "127.0.0.1:$PORT" --gateway-admin "127.0.0.1:$ADMIN" --secret flood-secret --groups 2 --size 32 "$@"; }
group --rate 1000 --duration 15 --quiet >/dev/null
echo "== group load alone"
group --rate 200 --duration 20 2>/dev/null | sed -n '/latency  *count/,/^$/p'
# User 2 is a member of every group of these runs.
"$BIN/group-read-flood" --url "127.0.0.1:$PORT" --secret flood-secret --user 2 --duration 24 --rate 1000 >"$WORK/flood.txt" 2>&1 &
FLOOD=$!
sleep 1
echo "== group load with one member flooding reads"
group --rate 200 --duration 20 2>/dev/null | sed -n '/latency  *count/,/^$/p'
wait "$FLOOD"
tail -n 1 "$WORK/flood.txt"
curl -s "127.0.0.1:$ADMIN/metrics" | grep -E '^chatgw_group_read_rows_scanned_total' || true
