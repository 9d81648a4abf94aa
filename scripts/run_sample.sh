#!/usr/bin/env bash
# The main job on the embedded sample: set up, then run the whole DVC/Prefect pipeline offline.
#
#   bash scripts/run_sample.sh          # = make pipeline
#
# = scripts/setup.sh (venv from requirements.lock) + scripts/sample_pipeline.sh (CLIP weights
# check, one Prefect server, `dvc repro`, report). It never edits a tracked file: without CLIP
# weights it runs with random weights through the untracked params.local.yaml (see
# sample_pipeline.sh), and says so.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh

VENV="${WSSS_VENV:-$ROOT/.venv}"
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac
export PATH="$VENV/bin:$PATH"
exec bash scripts/sample_pipeline.sh
