#!/usr/bin/env bash
# Build the documentation site strictly, offline, into a temporary folder (or DEST=folder):
# any warning (a broken link or anchor, a page missing from the nav of mkdocs.yml) fails the build.
#
#   bash scripts/docs.sh              # after scripts/setup.sh (mkdocs-material is in requirements.lock)
#   DEST=site bash scripts/docs.sh    # keep the built site in ./site (git-ignored)
#
# Preview while writing: .venv/bin/mkdocs serve
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${WSSS_VENV:-$ROOT/.venv}"
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac
PY="${PYTHON:-$VENV/bin/python}"

if [ -n "${DEST:-}" ]; then
    dest="$DEST"
else
    dest="$(mktemp -d "${TMPDIR:-/tmp}/wsss-site.XXXXXX")"
    trap 'rm -rf "$dest"' EXIT
fi
export NO_MKDOCS_2_WARNING=1   # mkdocs-material's notice about its successor, not a finding
echo "[docs] $PY -m mkdocs build --strict -d $dest"
"$PY" -m mkdocs build --strict --clean -d "$dest"
echo "[docs] built $(find "$dest" -name '*.html' | wc -l) pages without a warning"
