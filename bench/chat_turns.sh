#!/usr/bin/env bash
# Chat-turn benchmark: OmniChat against the mock upstream it talks to, called directly, in one run.
# Builds release, starts `omnichat mock-upstream` (ttft 0, gap 0, 20 tokens) and `omnichat serve`
# (fresh SQLite, RUST_LOG=warn, openai pointed at the mock), runs `omnichat loadtest` legs, and
# prints a markdown table. Each row's direct and through-OmniChat legs run back to back, so the
# ratio holds on a noisy machine. Everything it started is killed on exit.
#
#   bench/chat_turns.sh
#
# Beside them runs a bare relay (examples/relay_floor.rs: hyper serving, reqwest calling, serde
# decoding, and nothing else: no login, no database, no actors), so the ratios can be read against
# the least any relay on these crates costs on the same machine in the same run.
#
# Environment: BENCH_LEG_SECS (5) seconds per leg, BENCH_HOLD_STREAMS (1000), BENCH_HOLD_SECS (10),
# BENCH_SESSION_TURNS (300), BENCH_PORT (19100: mocks on it and +1, servers on +10 to +12, the
# bare relays on +20 and +21).
#
# The held streams are measured twice: with the upstream over HTTP/1.1 (a connection per
# stream, as with a plain-http provider) and over HTTP/2 (streams sharing connections, as with
# the TLS providers, which negotiate it; here h2c, --upstream-h2c). Before each, 20 streams run
# for 3 s, so the code the stream path pages in and the tables built on first use are not
# counted as per-stream memory.
# Needs jq and curl.
set -euo pipefail
cd "$(dirname "$0")/.."

LEG_SECS=${BENCH_LEG_SECS:-5}
HOLD_STREAMS=${BENCH_HOLD_STREAMS:-1000}
HOLD_SECS=${BENCH_HOLD_SECS:-10}
SESSION_TURNS=${BENCH_SESSION_TURNS:-300}
PORT=${BENCH_PORT:-19100}
MOCK=127.0.0.1:$PORT
SLOW_MOCK=127.0.0.1:$((PORT + 1))
SERVER=127.0.0.1:$((PORT + 10))
SLOW_SERVER=127.0.0.1:$((PORT + 11))
SLOW_SERVER_H2=127.0.0.1:$((PORT + 12))
RELAY=127.0.0.1:$((PORT + 20))
SLOW_RELAY=127.0.0.1:$((PORT + 21))

# Each held stream is a socket in the loadtest and two in the server.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

cargo build --release --bin omnichat --example relay_floor
BIN=target/release/omnichat
source bench/common.sh

start_mock() { # addr, extra flags…
  local addr=$1
  shift
  "$BIN" mock-upstream --addr "$addr" "$@" 2>"$TMP/mock-$addr.log" &
  PIDS+=($!)
  wait_for "http://$addr/"
}

# start_relay ADDR UPSTREAM-ADDR: the bare relay (examples/relay_floor.rs); sets RELAY_PID.
start_relay() {
  target/release/examples/relay_floor "$1" "http://$2/v1" &
  RELAY_PID=$!
  PIDS+=("$RELAY_PID")
  wait_for "http://$1/"
}

start_server() { # addr, upstream addr, extra flags…; sets SERVER_PID
  local addr=$1 upstream=$2
  shift 2
  RUST_LOG=warn "$BIN" serve --addr "$addr" --database-url "sqlite://$TMP/omnichat-$addr.db?mode=rwc" \
    --scrypt-log-n 4 --openai-base-url "http://$upstream/v1" --openai-api-key x \
    --max-generations-per-user 100000 --max-connections 20000 "$@" 2>"$TMP/serve-$addr.log" &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  wait_for "http://$addr/healthz"
}

# leg NAME loadtest-flags…: runs one leg, its summary in $TMP/NAME.json.
leg() {
  local name=$1
  shift
  echo "== $name: omnichat loadtest $*" >&2
  "$BIN" loadtest "$@" --json "$TMP/$name.json" >&2 2>"$TMP/$name.progress"
}

start_mock "$MOCK" --ttft-ms 0 --gap-ms 0 --tokens 20
start_server "$SERVER" "$MOCK"
start_relay "$RELAY" "$MOCK"

for c in 1 50 200; do
  leg "direct-$c" --direct-upstream "http://$MOCK/v1" --concurrency "$c" --duration-secs "$LEG_SECS"
  leg "relay-$c" --direct-upstream "http://$RELAY/v1" --concurrency "$c" --duration-secs "$LEG_SECS"
  leg "omnichat-$c" --url "http://$SERVER" --concurrency "$c" --users "$c" \
    --duration-secs "$LEG_SECS"
done
leg session --url "http://$SERVER" --concurrency 1 --users 1 --same-session \
  --turns "$SESSION_TURNS"

start_mock "$SLOW_MOCK" --ttft-ms 0 --gap-ms 1000 --tokens 60
SLOW_MOCK_PID=${PIDS[-1]}
leg hold-direct --direct-upstream "http://$SLOW_MOCK/v1" --hold-streams "$HOLD_STREAMS" \
  --hold-secs "$HOLD_SECS" --watch-pid "$SLOW_MOCK_PID"
# hold NAME SERVER-ADDR: a warm-up, then the measured hold against that server.
hold() {
  leg "$1-warm-up" --url "http://$2" --hold-streams 20 --users 20 --hold-secs 3
  leg "$1" --url "http://$2" --hold-streams "$HOLD_STREAMS" --users 100 \
    --hold-secs "$HOLD_SECS" --watch-pid "$SERVER_PID"
}
start_relay "$SLOW_RELAY" "$SLOW_MOCK"
leg hold-relay-warm-up --direct-upstream "http://$SLOW_RELAY/v1" --hold-streams 20 --hold-secs 3
leg hold-relay --direct-upstream "http://$SLOW_RELAY/v1" --hold-streams "$HOLD_STREAMS" \
  --hold-secs "$HOLD_SECS" --watch-pid "$RELAY_PID"
start_server "$SLOW_SERVER" "$SLOW_MOCK"
hold hold-omnichat "$SLOW_SERVER"
start_server "$SLOW_SERVER_H2" "$SLOW_MOCK" --upstream-h2c openai
hold hold-omnichat-h2 "$SLOW_SERVER_H2"

# q NAME JQ-FILTER: a value from a leg's summary.
q() { jq -r "$2" "$TMP/$1.json"; }
ms='def ms: if . == null then "-" else (. * 100 | round / 100 | tostring) end;
  def minus(a; b): if a == null or b == null then null else a - b end;'
errors='def errs: if .errors > 0 then ", \(.errors) errors \(.errors_by_kind | tostring)" else "" end;'

echo
echo "| | mock called directly | through OmniChat | ratio | a bare relay (the floor) |"
echo "| --- | --- | --- | --- | --- |"
for c in 1 50 200; do
  d="direct-$c"
  o="omnichat-$c"
  label=$([ "$c" = 1 ] && echo "1 client" || echo "$c clients")
  direct=$(q "$d" "$ms $errors"'"\(.turns_per_sec) req/s, TTFT p50 \(.first_token_ms.p50 | ms) / p99 \(.first_token_ms.p99 | ms) ms\(errs)"')
  through=$(jq -rn --slurpfile d "$TMP/$d.json" --slurpfile o "$TMP/$o.json" "$ms $errors"'
    $d[0] as $d | $o[0] as $o |
    "\($o.turns_per_sec) turns/s, TTFT p50 \($o.first_token_ms.p50 | ms) / p99 \($o.first_token_ms.p99 | ms) ms, added TTFT p50 \(minus($o.first_token_ms.p50; $d.first_token_ms.p50) | ms) / p99 \(minus($o.first_token_ms.p99; $d.first_token_ms.p99) | ms) ms\($o | errs)"')
  ratio=$(jq -rn --slurpfile d "$TMP/$d.json" --slurpfile o "$TMP/$o.json" \
    'if $d[0].turns_per_sec > 0 then "\($o[0].turns_per_sec / $d[0].turns_per_sec * 100 | round / 100)x throughput" else "-" end')
  floor=$(jq -rn --slurpfile d "$TMP/$d.json" --slurpfile r "$TMP/relay-$c.json" "$ms $errors"'
    $d[0] as $d | $r[0] as $r |
    "\(if $d.turns_per_sec > 0 then $r.turns_per_sec / $d.turns_per_sec * 100 | round / 100 else "-" end)x, added TTFT p50 \(minus($r.first_token_ms.p50; $d.first_token_ms.p50) | ms) / p99 \(minus($r.first_token_ms.p99; $d.first_token_ms.p99) | ms) ms\($r | errs)"')
  echo "| $label | $direct | $through | $ratio | $floor |"
done
session=$(q session "$ms $errors"'"TTFT p50 \(.first_token_p50_ms_turns_1_10 | ms) ms over turns 1-10 vs \(.first_token_p50_ms_all_turns | ms) ms over turns 1-\(.turns + .errors)\(errs)"')
session_ratio=$(q session 'if .first_token_p50_ms_turns_1_10 > 0 then "\(.first_token_p50_ms_all_turns / .first_token_p50_ms_turns_1_10 * 100 | round / 100)x" else "-" end')
echo "| one session: first 10 turns vs $SESSION_TURNS turns | | $session | $session_ratio | |"
hold='def kb: if . == null then "-" else (. * 10 | round / 10 | tostring) end;
  .hold as $h | $h.memory as $m |
  "RSS \($m.rss_before_kb) kB before, \($m.rss_during_kb) kB with \($m.live_streams) streams live: \($m.rss_per_stream_kb | kb) kB per stream; \($h.events) events, \($h.lost_connections) lost\(errs)"'
echo "| $HOLD_STREAMS live slow streams (1 token/s, ${HOLD_SECS} s), upstream over HTTP/1.1 | mock: $(q hold-direct "$errors $hold") | $(q hold-omnichat "$errors $hold") | | $(q hold-relay "$errors $hold") |"
echo "| the same, upstream over HTTP/2 (h2c) | | $(q hold-omnichat-h2 "$errors $hold") | | |"
