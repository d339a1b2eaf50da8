#!/usr/bin/env bash
# Run the cargo-fuzz targets for a bounded time each and print libFuzzer's
# closing stats line per target.
#
# Usage: fuzz/run.sh [--install] [SECONDS] [TARGET...]
#
#   SECONDS    time per target (default 20)
#   TARGET     http_upgrade, ws_frames, client_frame, link_frames, proxy_header (default: all five)
#   --install  install cargo-fuzz (cargo install --locked) when it is missing
#
# Needs a nightly toolchain (`cargo +nightly`). Each target starts from the
# checked-in seeds in fuzz/corpus/<target> and writes what it discovers to
# fuzz/run-corpus/<target> (ignored by git), so the checked-in corpus only
# changes by hand. Crashing inputs go to fuzz/artifacts/<target>/.
#
# Environment: FUZZ_MAX_LEN (default 16384), longest input tried.
# Exit status: 0 when no target crashed, 1 when one did, 2 when the tools
# are missing or a build fails.
set -euo pipefail
SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$SELF")"

install=0
if [[ "${1:-}" == "--install" ]]; then
    install=1
    shift
fi
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,/^set -e/{/^set -e/d;s/^# \{0,1\}//;p}' "$SELF"
    exit 0
fi
secs="${1:-20}"
[[ "$secs" =~ ^[0-9]+$ ]] || { echo "SECONDS must be a whole number" >&2; exit 2; }
shift || true
targets=("$@")
((${#targets[@]})) || targets=(http_upgrade ws_frames client_frame link_frames proxy_header)

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: no nightly toolchain (cargo +nightly); skipped" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    if ((install)); then
        echo "fuzz: installing cargo-fuzz"
        timeout 1200 cargo install --locked cargo-fuzz >/dev/null || { echo "fuzz: cargo-fuzz install failed" >&2; exit 2; }
    else
        echo "fuzz: cargo-fuzz is missing (cargo install cargo-fuzz, or pass --install)" >&2
        exit 2
    fi
fi

# Safe Rust needs no AddressSanitizer; without it each target runs about twice as fast.
build=(cargo +nightly fuzz build --sanitizer none)
echo "fuzz: building the targets"
"${build[@]}" >/dev/null 2>build.log || { tail -n 30 build.log >&2; exit 2; }
rm -f build.log

crashed=0
for t in "${targets[@]}"; do
    mkdir -p "run-corpus/$t" "artifacts/$t"
    log="run-corpus/$t.log"
    echo "fuzz: $t for ${secs}s"
    rc=0
    cargo +nightly fuzz run --sanitizer none "$t" "run-corpus/$t" "corpus/$t" -- \
        -max_total_time="$secs" -max_len="${FUZZ_MAX_LEN:-16384}" -print_final_stats=1 >"$log" 2>&1 || rc=$?
    # The last progress line ("#N DONE cov: ... exec/s: ...") and the execution count.
    grep -E '^#[0-9]+' "$log" | tail -n 1 | sed "s/^/fuzz: $t: /"
    grep -E '^stat::number_of_executed_units' "$log" | sed "s/^/fuzz: $t: /"
    if ((rc != 0)); then
        crashed=1
        echo "fuzz: $t FAILED (exit $rc); the input is in fuzz/artifacts/$t/:" >&2
        grep -E 'panicked at|SUMMARY|Test unit written' "$log" | head -n 5 >&2
    fi
done
exit "$crashed"
