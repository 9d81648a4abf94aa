#!/usr/bin/env bash
# The pipeline part of `make pipeline` (after scripts/setup.sh; `python`, `dvc`, `wsss` on PATH):
# CLIP weights check -> one Prefect server for all stages -> `dvc repro` -> report.
#
# CLIP weights: if the ones params.yaml names cannot be found (no `clip.checkpoint`, no cached
# `openai` tag, no network), this script writes `clip.random_init: true` into the untracked,
# git-ignored params.local.yaml, which every stage merges over params.yaml and records, and
# says so; every artifact then records "random-init". When real weights are found it removes
# that key again. params.yaml and every other tracked file stay as they are. DVC does not see
# params.local.yaml, so whenever this script changes it the whole pipeline is rerun (`--force`).
# Set `clip.checkpoint: path/to/ViT-B-16.pt` in params.yaml for real CLIP-ES maps.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export HF_HUB_OFFLINE=1 DVC_NO_ANALYTICS=1 PREFECT_SERVER_ANALYTICS_ENABLED=false \
    PREFECT_HOME="${PREFECT_HOME:-$ROOT/.prefect}" PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=120

LOCAL=params.local.yaml
before="$(cat "$LOCAL" 2>/dev/null || true)"
weights=$(python - <<'PY'
import sys
from pathlib import Path

import yaml

from wsss.bounded_parsing import load_yaml
from wsss.clip import load_clip
from wsss.errors import CheckpointError
from wsss.local_params import LOCAL_PARAMS, merge_params, read_local_params
from wsss.params import Params

local = read_local_params(Path("params.yaml"))
local_clip = {k: v for k, v in (local.get("clip") or {}).items() if k != "random_init"}  # decided anew below
local = {**local, "clip": local_clip} if local_clip else {k: v for k, v in local.items() if k != "clip"}
params = Params.from_mapping(merge_params(load_yaml(Path("params.yaml").read_text(), "params.yaml") or {}, local))
if params.clip.random_init:
    print("random-init (clip.random_init: true in params.yaml)")
else:
    try:
        print(load_clip(params.clip.source()).identity()["weights"])
    except CheckpointError as error:
        if params.clip.checkpoint is not None:  # a named file that fails is an error, never a fallback
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        local = merge_params(local, {"clip": {"random_init": True}})
        print("MISSING")
path = Path(LOCAL_PARAMS)
if local:
    path.write_text("# Written by scripts/sample_pipeline.sh (untracked): merged over params.yaml by every stage.\n"
                    + yaml.safe_dump(local, sort_keys=False))
else:
    path.unlink(missing_ok=True)
PY
)
if [ "$weights" = "MISSING" ]; then
    weights="random-init (no CLIP weights found; clip.random_init: true in the untracked $LOCAL)"
    echo "[sample] NOTE: no CLIP weights found (clip.checkpoint unset, 'openai' tag not cached, offline)."
    echo "[sample]       Running with RANDOM CLIP weights via $LOCAL (params.yaml is unchanged);"
    echo "[sample]       maps and masks will NOT be meaningful. For real maps set clip.checkpoint in params.yaml."
fi
echo "[sample] CLIP weights: $weights"
repro_args=()
if [ "$before" != "$(cat "$LOCAL" 2>/dev/null || true)" ] && [ -f dvc.lock ]; then
    echo "[sample] $LOCAL changed since the last run (DVC does not track it): rerunning every stage"
    repro_args=(--force)
fi

# One Prefect server for all stages (a temporary server per stage costs 10-20 s each).
if [ -z "${PREFECT_API_URL:-}" ]; then
    port=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    prefect server start --host 127.0.0.1 --port "$port" >"$PREFECT_HOME.server.log" 2>&1 &
    server=$!
    trap 'kill $server 2>/dev/null || true' EXIT
    export PREFECT_API_URL="http://127.0.0.1:$port/api"
    for _ in $(seq 120); do
        python -c "import urllib.request,sys; urllib.request.urlopen('$PREFECT_API_URL/health', timeout=2)" 2>/dev/null && break
        sleep 1
    done
fi

start=$SECONDS
dvc repro "${repro_args[@]}"
echo "[sample] pipeline finished in $((SECONDS - start)) s with CLIP weights: $weights"
bash scripts/sample_report.sh
