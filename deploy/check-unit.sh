#!/usr/bin/env bash
# Checks deploy/omnichat.service with `systemd-analyze verify` against a built binary (the unit's
# ExecStart path is swapped for it, since verify insists the command exists). systemd-analyze
# prints problems as warnings and still exits 0, so any output fails the check.
# Usage: deploy/check-unit.sh [path/to/omnichat]   (default: target/debug/omnichat)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v systemd-analyze >/dev/null; then
  echo "check-unit: systemd-analyze not found (Debian package systemd); skipping the unit check"
  exit 0
fi
binary=$(realpath "${1:-target/debug/omnichat}")
[ -x "$binary" ] || { echo "check-unit: $binary is not an executable; build first" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s|^ExecStart=/usr/local/bin/omnichat |ExecStart=$binary |" deploy/omnichat.service >"$dir/omnichat.service"
grep -q "^ExecStart=$binary serve" "$dir/omnichat.service" || { echo "check-unit: no ExecStart to swap" >&2; exit 1; }
out=$(SYSTEMD_LOG_COLOR=0 systemd-analyze verify "$dir/omnichat.service" 2>&1) || { echo "$out" >&2; exit 1; }
if [ -n "$out" ]; then
  echo "check-unit: systemd-analyze verify found problems:" >&2
  echo "$out" >&2
  exit 1
fi
echo "check-unit: deploy/omnichat.service verified ($(systemd-analyze --version | head -n 1))"
