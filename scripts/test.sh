#!/usr/bin/env bash
# Set up the venv (fast when already done), make sure Chromium is there for the browser tests,
# then run the test suite offline.
#
#   bash scripts/test.sh                      # the full suite on parallel workers: what CI runs (.ci/run)
#   bash scripts/test.sh --fast               # the fast selection: every test not marked `slow`
#   bash scripts/test.sh tests/unit -x -k cam # your own pytest arguments instead of the default ones
#   bash scripts/test.sh --fast tests/pipeline
#
# Chromium (Debian's `chromium`): installed with apt-get when it is missing and this user may
# (root, or password-less sudo); otherwise a warning says that the browser tests will skip.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

selection=()
if [ "${1:-}" = "--fast" ]; then
    shift
    selection=(-m "not slow")
fi
if [ "$#" -eq 0 ]; then
    # Parallel workers (pytest-xdist): one per core, at most 4 (docs/tests.md, "Parallel workers").
    cores="$(nproc 2>/dev/null || echo 2)"
    workers=$(( cores < 4 ? cores : 4 ))
    set -- tests -q --durations=30 -n "${WSSS_TEST_WORKERS:-$workers}" --dist worksteal
fi

bash "$ROOT/scripts/setup.sh"

VENV="${WSSS_VENV:-$ROOT/.venv}"
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac

chromium_path() { command -v chromium || command -v chromium-browser; }
if ! chromium_path >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    as_root=()
    if [ "$(id -u)" != 0 ] && sudo -n true 2>/dev/null; then
        as_root=(sudo -n)
    fi
    if [ "$(id -u)" = 0 ] || [ "${#as_root[@]}" -gt 0 ]; then
        echo "[test] installing chromium (apt-get) for the browser tests"
        for attempt in 1 2 3; do
            if "${as_root[@]}" apt-get update -qq >/dev/null 2>&1 \
                && "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; then
                break
            fi
            echo "[test] apt-get attempt $attempt failed; retrying"
            sleep 5
        done
    fi
fi
if chromium_path >/dev/null 2>&1; then
    echo "[test] $("$(chromium_path)" --version 2>/dev/null || echo chromium)"
else
    printf '[test] WARNING: chromium is not installed and could not be installed here (needs apt-get as root or\n' >&2
    printf '[test]          password-less sudo): the browser tests will SKIP. Install it: sudo apt-get install chromium\n' >&2
fi

# Prefect gets a throwaway home (its sqlite db, settings) for every run.
PREFECT_HOME="$(mktemp -d "${TMPDIR:-/tmp}/wsss-prefect-home.XXXXXX")"
trap 'rm -rf "$PREFECT_HOME"' EXIT
export PREFECT_HOME
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export DVC_NO_ANALYTICS=1
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=120

pytest_command=("$VENV/bin/python" -m pytest "${selection[@]}" "$@")
echo "[test] $(printf '%q ' "${pytest_command[@]}")"
rc=0
"${pytest_command[@]}" || rc=$?

if [ "$rc" -eq 5 ]; then
    printf '\n[test] ERROR: pytest collected no tests (exit code 5) for: %s\n' "$(printf '%q ' "${pytest_command[@]:3}")" >&2
    printf '[test] A run with no tests is a failure, not a pass.\n\n' >&2
    exit 1
fi
exit "$rc"
