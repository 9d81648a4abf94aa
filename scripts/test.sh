#!/usr/bin/env bash
# Set up the venv (fast when already done), then run the test suite offline.
#
#   scripts/test.sh                     # pytest tests -q --durations=30
#   scripts/test.sh tests/unit -x -k cam
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash "$ROOT/scripts/setup.sh"

VENV="${WSSS_VENV:-$ROOT/.venv}"
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac

# Prefect gets a throwaway home (its sqlite db, settings) for every run.
PREFECT_HOME="$(mktemp -d "${TMPDIR:-/tmp}/wsss-prefect-home.XXXXXX")"
trap 'rm -rf "$PREFECT_HOME"' EXIT
export PREFECT_HOME
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export DVC_NO_ANALYTICS=1
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=120

if [ "$#" -eq 0 ]; then
    set -- tests -q --durations=30
fi

echo "[test] $VENV/bin/python -m pytest $*"
rc=0
"$VENV/bin/python" -m pytest "$@" || rc=$?

if [ "$rc" -eq 5 ]; then
    printf '\n[test] ERROR: pytest collected no tests (exit code 5) for: %s\n' "$*" >&2
    printf '[test] A run with no tests is a failure, not a pass.\n\n' >&2
    exit 1
fi
exit "$rc"
