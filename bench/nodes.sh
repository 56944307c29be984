#!/usr/bin/env bash
# Several nodes on one PostgreSQL: chat turns/s with 1, 2 and 3 `omnichat serve` processes on
# one database, against one `omnichat mock-upstream` (ttft 0, gap 0, 20 tokens). The client side
# is the same in every leg, three `omnichat loadtest` processes, each sent to a node in turn (as a
# load balancer would), so only the number of nodes changes. Prints a markdown table with the
# summed turns/s. Everything it started is killed on exit.
#
#   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/omni_bench bench/nodes.sh
#
# The database should be one for benchmarks (users and sessions pile up in it). Environment:
# BENCH_LEG_SECS (10) seconds per leg, BENCH_CLIENTS (16) clients per loadtest, BENCH_PORT (19200:
# mock on it, nodes on +1…+3), BENCH_PROFILE (`debug`; `release` builds with --release).
# Needs jq and curl.
set -euo pipefail
cd "$(dirname "$0")/.."

DATABASE_URL=${BENCH_DATABASE_URL:?set BENCH_DATABASE_URL to a PostgreSQL database}
LEG_SECS=${BENCH_LEG_SECS:-10}
CLIENTS=${BENCH_CLIENTS:-16}
PORT=${BENCH_PORT:-19200}
PROFILE=${BENCH_PROFILE:-debug}
MOCK=127.0.0.1:$PORT

if [ "$PROFILE" = release ]; then
  cargo build --release
else
  cargo build
fi
BIN=target/$PROFILE/omnichat
source bench/common.sh

"$BIN" mock-upstream --addr "$MOCK" --ttft-ms 0 --gap-ms 0 --tokens 20 2>"$TMP/mock.log" &
PIDS+=($!)
wait_for "http://$MOCK/"

# cpu_ticks PID…: user + system clock ticks the processes have used so far.
cpu_ticks() {
  local total=0 pid
  for pid in "$@"; do
    if [ -r "/proc/$pid/stat" ]; then
      total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    fi
  done
  echo "$total"
}
postgres_pids() { pgrep -u postgres -d ' ' postgres || true; }
HZ=$(getconf CLK_TCK)

NODES=()
NODE_PIDS=()
start_node() { # index
  local addr=127.0.0.1:$((PORT + $1))
  RUST_LOG=warn "$BIN" serve --addr "$addr" --node-id "bench-$1" --database-url "$DATABASE_URL" \
    --scrypt-log-n 4 --openai-base-url "http://$MOCK/v1" --openai-api-key x \
    --max-generations-per-user 100000 --max-connections 20000 2>"$TMP/serve-$1.log" &
  PIDS+=($!)
  NODE_PIDS+=($!)
  wait_for "http://$addr/healthz"
  NODES+=("$addr")
}

echo "| nodes | clients | turns/s (sum of 3 loadtests) | TTFT p50 / p99 ms (worst loadtest) | errors | CPU s: nodes / PostgreSQL (all of it) / loadtests+mock, of $((2 * LEG_SECS)) on 2 cores |"
echo "| --- | --- | --- | --- | --- | --- |"
for n in 1 2 3; do
  while [ "${#NODES[@]}" -lt "$n" ]; do start_node $((${#NODES[@]} + 1)); done
  LOADS=()
  nodes_before=$(cpu_ticks "${NODE_PIDS[@]}")
  # shellcheck disable=SC2046
  pg_before=$(cpu_ticks $(postgres_pids))
  mock_before=$(cpu_ticks "${PIDS[0]}")
  for i in 0 1 2; do
    "$BIN" loadtest --url "http://${NODES[$((i % n))]}" --concurrency "$CLIENTS" \
      --duration-secs "$LEG_SECS" --json "$TMP/leg-$n-$i.json" >/dev/null 2>"$TMP/leg-$n-$i.progress" &
    LOADS+=($!)
  done
  load_ticks=0
  while sleep 0.2; do
    # The loadtests' own ticks, read until they have exited (they are gone once waited for).
    now=$(cpu_ticks "${LOADS[@]}")
    [ "$now" -le "$load_ticks" ] || load_ticks=$now
    running=0
    for pid in "${LOADS[@]}"; do
      state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo gone)
      if [ "$state" != Z ] && [ "$state" != gone ]; then running=1; fi
    done
    [ "$running" = 1 ] || break
  done
  for pid in "${LOADS[@]}"; do wait "$pid"; done
  nodes_cpu=$(( $(cpu_ticks "${NODE_PIDS[@]}") - nodes_before ))
  # shellcheck disable=SC2046
  pg_cpu=$(( $(cpu_ticks $(postgres_pids)) - pg_before ))
  other_cpu=$(( load_ticks + $(cpu_ticks "${PIDS[0]}") - mock_before ))
  cpu=$(awk -v a="$nodes_cpu" -v b="$pg_cpu" -v c="$other_cpu" -v hz="$HZ" \
    'BEGIN { printf "%.1f / %.1f / %.1f", a / hz, b / hz, c / hz }')
  jq -rs --arg n "$n" --arg c "$((CLIENTS * 3))" --arg cpu "$cpu" '
    def r: . * 100 | round / 100;
    "| \($n) | \($c) | \(map(.turns_per_sec) | add | r) | \(map(.first_token_ms.p50) | max | r) / \(map(.first_token_ms.p99) | max | r) | \(map(.errors) | add) | \($cpu) |"' \
    "$TMP"/leg-"$n"-*.json
done
