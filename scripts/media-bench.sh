#!/usr/bin/env bash
# Media by signed URL, embedded backend: upload and download throughput of
# one 100 MB file (MB/s, one stream each way), the gateway's CPU per MB and
# its peak RSS while the bytes move, and signed-URL requests per second
# (upload_media, download_media) pipelined over 8 connections of one user
# (the per-connection frame rate limit is lifted for this). Release build,
# a fresh data directory, the gateway with one event loop.
#
# Usage: scripts/media-bench.sh
# Environment: MB (100), REQUESTS (20000), CONNS (8), OUT (target/media-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
MB="${MB:-100}" REQUESTS="${REQUESTS:-20000}" CONNS="${CONNS:-8}"
BIN="${CARGO_TARGET_DIR:-target}/release"
OUT="${OUT:-${CARGO_TARGET_DIR:-target}/media-bench}"
SECRET=bench-secret PORT=18300 MEDIA=18302
rm -rf "$OUT/data"; mkdir -p "$OUT"
cargo build --release -q -p chatgw --bin chatgw --example media_bench
SERVER_PID=""
cleanup() { [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null; return 0; }
trap cleanup EXIT
"$BIN/chatgw" serve --listen 127.0.0.1:$PORT --admin-listen off --media-listen 127.0.0.1:$MEDIA \
    --data "$OUT/data" --secret $SECRET --workers 1 --rate-limit 1000000 --rate-burst 1000000 \
    > "$OUT/gateway.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
timeout 600 "$BIN/examples/media_bench" --ws 127.0.0.1:$PORT --pid "$SERVER_PID" --secret $SECRET \
    --mb "$MB" --requests "$REQUESTS" --conns "$CONNS" | tee "$OUT/media-bench.md"
