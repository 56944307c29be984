# Sourced by the bench scripts: a scratch directory ($TMP) and the processes they start ($PIDS),
# both cleaned up on exit, and wait_for.

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for URL: until it answers at all (30 s at most).
wait_for() {
  for _ in $(seq 300); do
    if curl -s -o /dev/null -m 1 "$1"; then return 0; fi
    sleep 0.1
  done
  echo "nothing answers at $1; logs in $TMP" >&2
  exit 1
}
