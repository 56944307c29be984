#!/usr/bin/env bash
# Instructions per chat turn, counted by callgrind (repeatable on a noisy machine, unlike time):
# the release server under valgrind, the release mock beside it, N turns in one session (and a
# run with no turns, to subtract start-up and sign-up). Prints instructions per turn and the
# functions that cost the most, inclusive.
#
#   bench/profile_turns.sh [turns]        (default 300; needs valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
TURNS=${1:-300}
PORT=${BENCH_PORT:-19200}
cargo build --release
BIN=target/release/omnichat
source bench/common.sh

"$BIN" mock-upstream --addr "127.0.0.1:$((PORT + 1))" --tokens 20 2>/dev/null &
PIDS+=($!)

# profile TURNS OUT: one server under callgrind, TURNS turns through it, then a clean stop.
profile() {
  local turns=$1 out=$2
  RUST_LOG=warn OMNICHAT_DB_TIMEOUT_MS=60000 valgrind --tool=callgrind --callgrind-out-file="$out" "$BIN" serve \
    --addr "127.0.0.1:$PORT" --database-url "sqlite://$TMP/db-$turns?mode=rwc" --scrypt-log-n 4 \
    --openai-base-url "http://127.0.0.1:$((PORT + 1))/v1" --openai-api-key x 2>"$TMP/vg-$turns.log" &
  local pid=$!
  for _ in $(seq 600); do curl -s -o /dev/null -m 1 "http://127.0.0.1:$PORT/healthz" && break; sleep 0.2; done
  if [ "$turns" -gt 0 ]; then
    "$BIN" loadtest --url "http://127.0.0.1:$PORT" --same-session --turns "$turns" \
      --timeout-secs 60 >/dev/null 2>&1
  else
    "$BIN" loadtest --url "http://127.0.0.1:$PORT" --same-session --turns 1 \
      --timeout-secs 60 >/dev/null 2>&1
  fi
  kill -TERM "$pid"
  wait "$pid" || true
}

profile 0 "$TMP/base.out"
profile "$TURNS" "$TMP/turns.out"
total() { grep -m1 '^summary:' "$1" | awk '{print $2}'; }
base=$(total "$TMP/base.out")
full=$(total "$TMP/turns.out")
echo "instructions: $full for $TURNS turns (+1 setup turn), $base for the setup turn alone"
echo "per turn: $(( (full - base) / (TURNS - 1 > 0 ? TURNS - 1 : 1) ))"
echo
out=${PROFILE_OUT:-/tmp/omnichat-turns.callgrind}
cp "$TMP/turns.out" "$out"
cp "$TMP/base.out" "$out.base"
echo "(the whole profile: callgrind_annotate $out)"
callgrind_annotate --inclusive=yes "$out" 2>/dev/null | head -60 || true
