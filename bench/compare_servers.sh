#!/usr/bin/env bash
# Two builds of OmniChat side by side in one run: the same mock upstream (ttft 0, gap 0, 20
# tokens) and the same loadtest against both servers, legs alternating (direct, A, B) and
# repeated, so a shared, noisy machine moves both alike. For judging a change by its ratio.
#
#   bench/compare_servers.sh OLD_BINARY NEW_BINARY
#
# Build the old one from another checkout, e.g.
#   git worktree add /tmp/old <commit> && (cd /tmp/old && cargo build --release)
#   bench/compare_servers.sh /tmp/old/target/release/omnichat target/release/omnichat
# Environment: BENCH_LEG_SECS (4), BENCH_ROUNDS (2), BENCH_SESSION_TURNS (300), BENCH_PORT (19950).
# The mock and the loadtest are NEW_BINARY's. Needs jq and curl.
set -euo pipefail
[ $# -eq 2 ] || { sed -n 2,12p "$0" >&2; exit 2; }
OLD=$1
NEW=$2
LEG_SECS=${BENCH_LEG_SECS:-4}
ROUNDS=${BENCH_ROUNDS:-2}
SESSION_TURNS=${BENCH_SESSION_TURNS:-300}
PORT=${BENCH_PORT:-19950}
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
source "$(dirname "$0")/common.sh"

MOCK=127.0.0.1:$PORT
"$NEW" mock-upstream --addr "$MOCK" --ttft-ms 0 --gap-ms 0 --tokens 20 2>"$TMP/mock.log" &
PIDS+=($!)
wait_for "http://$MOCK/"
start_server() { # binary, port
  RUST_LOG=warn "$1" serve --addr "127.0.0.1:$2" --database-url "sqlite://$TMP/db-$2?mode=rwc" \
    --scrypt-log-n 4 --openai-base-url "http://$MOCK/v1" --openai-api-key x \
    --max-generations-per-user 100000 --max-connections 20000 2>"$TMP/serve-$2.log" &
  PIDS+=($!)
  wait_for "http://127.0.0.1:$2/healthz"
}
start_server "$OLD" $((PORT + 1))
start_server "$NEW" $((PORT + 2))

# leg LABEL loadtest-flags…: one line of results.
leg() {
  local label=$1
  shift
  "$NEW" loadtest "$@" --json "$TMP/leg.json" >/dev/null 2>"$TMP/leg.progress"
  jq -r --arg l "$label" '"| \($l) | \(.turns_per_sec) | \(.first_token_ms.p50) | \(.first_token_ms.p99) | \(.first_token_p50_ms_turns_1_10 // "-") | \(.errors) |"' "$TMP/leg.json"
}

echo "| leg | turns/s | TTFT p50 ms | TTFT p99 ms | p50 of turns 1-10 | errors |"
echo "| --- | --- | --- | --- | --- | --- |"
for round in $(seq "$ROUNDS"); do
  for c in 1 50; do
    leg "round $round, $c clients: mock directly" --direct-upstream "http://$MOCK/v1" \
      --concurrency "$c" --duration-secs "$LEG_SECS"
    for side in old new; do
      port=$([ "$side" = old ] && echo $((PORT + 1)) || echo $((PORT + 2)))
      leg "round $round, $c clients: $side" --url "http://127.0.0.1:$port" --concurrency "$c" \
        --users "$c" --duration-secs "$LEG_SECS"
    done
  done
done
for side in old new; do
  port=$([ "$side" = old ] && echo $((PORT + 1)) || echo $((PORT + 2)))
  leg "one session, $SESSION_TURNS turns: $side" --url "http://127.0.0.1:$port" --concurrency 1 \
    --users 1 --same-session --turns "$SESSION_TURNS"
done
