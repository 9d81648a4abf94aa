#!/usr/bin/env bash
# The pipeline part of `make pipeline` (after scripts/setup.sh; `python`, `dvc`, `wsss` on PATH):
# `wsss run --random-weights-if-missing`, then the closing report.
#
# `wsss run` (src/wsss/loop/) owns what this script used to do in shell: the CLIP weights check
# (without weights it writes `clip.random_init: true` into the untracked, git-ignored
# params.local.yaml, says so, and removes that key again once real weights are found; every
# artifact then records "random-init"), one Prefect server for all stages with its database in
# .prefect/, one parent flow run, and a rerun of every stage when params.local.yaml changed
# (DVC does not see it). params.yaml and every other tracked file stay as they are.
# Set `clip.checkpoint: path/to/ViT-B-16.pt` in params.yaml for real CLIP-ES maps.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export HF_HUB_OFFLINE=1

start=$SECONDS
wsss run --random-weights-if-missing
echo "[sample] pipeline finished in $((SECONDS - start)) s"
bash scripts/sample_report.sh
