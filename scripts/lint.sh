#!/usr/bin/env bash
# Lint, format check and type check with the pinned tools (requirements.lock; config in pyproject.toml).
#
#   bash scripts/lint.sh          # ruff check, ruff format --check, mypy (strict on src, tasks, flows)
#   bash scripts/lint.sh --fix    # apply ruff's safe fixes and the formatter first
#
# The suite runs the same checks (tests/unit/test_lint.py), so CI fails on a finding.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${WSSS_VENV:-$ROOT/.venv}"
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac
if [ "${1:-}" = "--fix" ]; then
    "$VENV/bin/ruff" check --fix .
    "$VENV/bin/ruff" format .
fi
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
"$VENV/bin/mypy"
