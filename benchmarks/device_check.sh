#!/usr/bin/env bash
# The one-call GPU check (issue 14 §3): installs the wheels the machine lacks, then prints one table.
#
#   bash scripts/fetch_device_wheels.sh        # once, where a package registry is reachable: fills .whl/
#   bash benchmarks/device_check.sh [--json figures.json] [--clip-checkpoint ViT-B-16.pt]
#
# On a machine without a registry that has torch, numpy, h5py, opencv and Pillow but not
# open_clip/mmseg/..., the wheels in .whl/ (CPython 3.12) are installed into /tmp/site and put on
# PYTHONPATH after the repository, so nothing of the machine's own Python changes. Where every
# package is importable already (this project's venv), nothing is installed. Without CUDA the
# script runs its small CPU profile. Figures also go to $OUT/device_check.{json,txt} when OUT is set.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SITE=${DEVICE_CHECK_SITE:-/tmp/site}

if ! "$PY" -c "import open_clip, ftfy, mmseg, mmengine, mmcv, hdf5plugin, pycocotools" 2>/dev/null; then
    if ! ls .whl/*.whl >/dev/null 2>&1; then
        echo "open_clip/mmseg are missing and .whl/ is empty: run scripts/fetch_device_wheels.sh first" >&2
        exit 2
    fi
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
        || { echo "installing .whl/*.whl into $SITE failed" >&2; exit 2; }
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
# The repository first (the `benchmarks` package and the sources): mmsegmentation's wheel ships
# top-level packages of its own (`tests`), which must not shadow ours.
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
exec "$PY" -m benchmarks.device_check "$@"
