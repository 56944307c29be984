#!/usr/bin/env bash
# API conformance: schemathesis generates requests from the server's own OpenAPI document
# (GET /openapi.json) and runs all its checks on the answers: no 5xx, every status, content
# type, header and body as documented, invalid input refused with a 4xx, valid input accepted,
# 405 + Allow for undocumented methods, 401 without a token.
#
#   tests/api_conformance/run.sh target/debug/omnichat [extra schemathesis args...]
#   (or OMNICHAT_BIN=... tests/api_conformance/run.sh)
#
# Builds nothing. Installs the pinned schemathesis into a virtualenv (tests/api_conformance/.venv,
# or $ST_VENV) when it is missing. Starts the mock provider (all four wire formats) and the
# server on free ports over a temporary SQLite database, every provider configured against the
# mock, so a valid chat request gets a real stream whichever provider it names; signs up one
# user and passes its token to schemathesis; stops both at the end. ST_MAX_EXAMPLES (default 100)
# bounds the cases per operation: the run takes about a minute on two cores.
#
# Every check runs, none is loosened. hooks.py only (1) drops generated new passwords that the
# server's breach list or the email/username rule refuses, a rule JSON Schema cannot state (the
# document states it in words), (2) logs half the valid `POST /token` cases in as the run's user,
# so the 200 is checked too, and (3) drops made-up page tokens (`cursor`, `before`), valid only as
# the server gave them out. schemathesis.toml lets linked-call chains run longer.
set -euo pipefail

ST_VERSION=4.32.5
here="$(cd "$(dirname "$0")" && pwd)"
if [ $# -gt 0 ] && [ -f "$1" ]; then
  OMNICHAT_BIN="$1"
  shift
fi
if [ -z "${OMNICHAT_BIN:-}" ] || [ ! -x "$OMNICHAT_BIN" ]; then
  echo "usage: $0 path/to/omnichat [schemathesis args...]  (or set OMNICHAT_BIN)" >&2
  exit 2
fi

venv="${ST_VENV:-$here/.venv}"
if ! "$venv/bin/st" --version 2>/dev/null | grep -qF "$ST_VERSION"; then
  echo "installing schemathesis $ST_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$ST_VERSION"
fi

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

mock_port="$(free_port)"
"$OMNICHAT_BIN" mock-upstream --addr "127.0.0.1:$mock_port" --tokens 8 >"$work/mock.log" 2>&1 &
pids+=($!)

port="$(free_port)"
base="http://127.0.0.1:$port"
mock="http://127.0.0.1:$mock_port"
# A cheap scrypt cost (the run signs up many users), no pause between echo words, and room for
# every generation the run starts. Login throttling stays on per account (its 429 is documented
# and met), with short delays so the run stays quick; not per address, since every request of
# the run, the script's own logins included, comes from 127.0.0.1.
RUST_LOG=warn "$OMNICHAT_BIN" serve \
  --addr "127.0.0.1:$port" \
  --database-url "sqlite://$work/omnichat.db?mode=rwc" \
  --scrypt-log-n 4 \
  --echo-delay-ms 0 \
  --max-generations-per-user 1000 \
  --login-max-delay-ms 100 \
  --login-address-slow-after 1000000 --login-address-block-after 1000000 \
  --openai-api-key test --openai-base-url "$mock/v1" \
  --gemini-api-key test --gemini-base-url "$mock" \
  --anthropic-api-key test --anthropic-base-url "$mock" \
  --ollama-host "$mock" \
  >"$work/server.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$base/healthz" >/dev/null || { echo "the server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }

# One user for the protected operations; a random password that no generated value guesses.
password="conformance-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
curl -fsS -XPOST "$base/users/" -H 'content-type: application/json' \
  -d "{\"username\":\"conformance\",\"email\":\"conformance@example.com\",\"password\":\"$password\"}" >/dev/null
log_in() {
  curl -fsS -XPOST "$base/token" \
    --data-urlencode "username=conformance@example.com" --data-urlencode "password=$password" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}

st() {
  local token
  token="$(log_in)"
  # From the temporary directory: schemathesis keeps its cache of failures in the current one.
  (cd "$work" && PYTHONPATH="$here" SCHEMATHESIS_HOOKS=hooks \
    ST_LOGIN_EMAIL=conformance@example.com ST_LOGIN_PASSWORD="$password" \
    "$venv/bin/st" --config-file "$here/schemathesis.toml" run "$base/openapi.json" \
    --checks all \
    --header "Authorization: Bearer $token" \
    --max-examples "${ST_MAX_EXAMPLES:-100}" \
    --workers 1 \
    --request-timeout 30 \
    "$@")
}

status=0
# Everything but the logouts first: a logout revokes every token of the user, this run's
# included. Then each logout with a fresh token: its first success is the 204, and the calls
# after it get the documented 401. (No stateful phase there: two lone operations have no links.)
st --exclude-path-regex '^/logout' "$@" || status=$?
st --include-path-regex '^/logout$' --phases examples,coverage,fuzzing "$@" || status=$?
st --include-path-regex '^/logout/all$' --phases examples,coverage,fuzzing "$@" || status=$?

if [ "$status" -ne 0 ]; then
  echo "--- server log (warnings and errors) ---" >&2
  tail -n 50 "$work/server.log" >&2
fi
exit "$status"
