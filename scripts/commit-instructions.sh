#!/usr/bin/env bash
# Instructions per durable direct message of the embedded store's commit,
# counted by callgrind on storage-adapter/examples/commit_loop.rs, for
# commits of 1, 16 and 128 messages. Three figures per size: inside
# `Tables::commit` only (the committing thread's own work), inside the
# batched client id lookup the gateway's committer makes before each
# commit (`EmbeddedStore::messages_by_client_ids`), and the whole process (the
# engine's background work and the workload's message building included). Each is the difference between a run of M measured
# messages and a run of none (the same warm-up), divided by M, so the
# warm-up and the process's start cancel out.
#
# usage: scripts/commit-instructions.sh [COMMIT_LOOP_BINARY...]
#   default: $CARGO_TARGET_DIR/release/examples/commit_loop (build it with
#   `cargo build --release -p chatgw-storage --example commit_loop`).
#   Several binaries are measured side by side, in the order given.
# Environment: MEASURED (default 4096), SIZES (default "1 16 128").
set -euo pipefail
MEASURED="${MEASURED:-4096}"
SIZES="${SIZES:-1 16 128}"
BINS=("$@")
[ ${#BINS[@]} -gt 0 ] || BINS=("${CARGO_TARGET_DIR:-target}/release/examples/commit_loop")
count() { # binary, per commit, measured, toggle (or "")
    local out
    out=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file="$out" ${4:+--toggle-collect="$4"} "$1" "$2" "$3" 2>/dev/null |
        sed -n 's/.*: \(.*\) records and \(.*\) bytes per message/\1 \2/p' >"$out.stats"
    local total
    total=$(callgrind_annotate "$out" 2>/dev/null | sed -n 's/^\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
    echo "${total:-0} $(cat "$out.stats")"
    rm -f "$out" "$out.stats"
}
printf '%-40s %5s %14s %14s %14s %9s %9s\n' binary batch commit_ins/msg lookup_ins/msg total_ins/msg records bytes
for size in $SIZES; do
    for bin in "${BINS[@]}"; do
        read -r c0 _ _ < <(count "$bin" "$size" 0 '*Tables::commit*')
        read -r c1 records bytes < <(count "$bin" "$size" "$MEASURED" '*Tables::commit*')
        read -r l0 _ _ < <(count "$bin" "$size" 0 '*MessageStore>::messages_by_client_ids')
        read -r l1 _ _ < <(count "$bin" "$size" "$MEASURED" '*MessageStore>::messages_by_client_ids')
        read -r t0 _ _ < <(count "$bin" "$size" 0 '')
        read -r t1 _ _ < <(count "$bin" "$size" "$MEASURED" '')
        printf '%-40s %5s %14d %14d %14d %9s %9s\n' "$(basename "$(dirname "$bin")")/$(basename "$bin")" "$size" \
            $(((c1 - c0) / MEASURED)) $(((l1 - l0) / MEASURED)) $(((t1 - t0) / MEASURED)) "$records" "$bytes"
    done
done
