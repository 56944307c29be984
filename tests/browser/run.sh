#!/usr/bin/env bash
# Runs the browser tests (pytest + selenium + headless Chromium) against an omnichat binary that
# is already built: tests/browser/run.sh target/debug/omnichat [pytest args...]
# (or OMNICHAT_BIN=... tests/browser/run.sh). Installs Chromium, chromedriver, selenium and
# pytest only when they are missing; builds nothing.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
if [ $# -gt 0 ] && [ -f "$1" ]; then
  OMNICHAT_BIN="$1"
  shift
fi
if [ -z "${OMNICHAT_BIN:-}" ] || [ ! -x "$OMNICHAT_BIN" ]; then
  echo "usage: $0 path/to/omnichat [pytest args...]  (or set OMNICHAT_BIN)" >&2
  exit 2
fi
OMNICHAT_BIN="$(cd "$(dirname "$OMNICHAT_BIN")" && pwd)/$(basename "$OMNICHAT_BIN")"
export OMNICHAT_BIN

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

if ! python3 -c "import selenium, pytest" 2>/dev/null; then
  python3 -m pip install --quiet selenium pytest \
    || python3 -m pip install --quiet --break-system-packages selenium pytest
fi

cd "$here"
exec python3 -m pytest -q -p no:cacheprovider "$@"
