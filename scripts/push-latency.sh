#!/usr/bin/env bash
# Commit -> push notification latency through the whole fleet path: a
# gateway on PostgreSQL publishing --events to a tansu broker, `chatgw push`
# as a consumer-group member with --grace 0s (so the figure is the path's
# own latency, no grace period to subtract), asking the gateway who is live
# and the store for targets, and the webhook test server (TLS, HTTP/2)
# recording each arrival. Latency = arrival time - the commit time the
# message id carries (`at` of its record), both on this machine's clock.
# Every message goes to its own offline user, so each is one notification.
#
# It runs the ignored test `push_latency` of gateway/tests/push_worker.rs,
# which starts everything it needs (PostgreSQL by initdb, tansu from
# $CHATGW_CACHE_DIR/tansu/bin) and stops it again; bounded by TIMEOUT.
#
# usage: scripts/push-latency.sh
# Environment:
#   MESSAGES  notifications measured (default 200)
#   RATE      messages per second sent (default 50)
#   PROFILE   cargo profile of the build measured (default dev: the test
#             profile the CI builds; `release` is what production runs and
#             what docs/EVENTS.md quotes, and builds with LTO first, which
#             takes a while)
#   TIMEOUT   seconds before the run is stopped (default 900)
set -euo pipefail
cd "$(dirname "$0")/.."
MESSAGES="${MESSAGES:-200}"
RATE="${RATE:-50}"
PROFILE="${PROFILE:-dev}"
TIMEOUT="${TIMEOUT:-900}"
out=$(PUSH_LATENCY_MESSAGES="$MESSAGES" PUSH_LATENCY_RATE="$RATE" \
    timeout "$TIMEOUT" cargo test --profile "$PROFILE" -p chatgw --test push_worker push_latency \
    -- --ignored --exact --nocapture 2>&1) || { echo "$out" | tail -40 >&2; exit 1; }
line=$(echo "$out" | grep -A2 '^push latency' || true)
[ -n "$line" ] || { echo "$out" | tail -40 >&2; echo "no figure: was tansu installed? (.ci/run)" >&2; exit 1; }
echo "$line" | sed "1s/\$/ (profile $PROFILE)/"
