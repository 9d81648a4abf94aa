"""cams: Grad-CAM maps and attention affinity of every image into sharded HDF5 (only what changed).

Shards are mapped with the task runner of the `runner` section (or `--runner dask
--dask-address tcp://host:8786 --workers N`).
"""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow

from tasks.cams import run_cams
from tasks.command import run_stage, runner_overrides
from tasks.progress import Progress
from tasks.run_names import stage_run_name
from tasks.shards import published_shards
from wsss.catalog import ArtifactLayout
from wsss.params import load_params


@flow(name="wsss-cams", flow_run_name=stage_run_name("cams"))
def cams_flow(params_path: str = "params.yaml", runner: dict[str, Any] | None = None) -> dict[str, Any]:
    """Grad-CAM maps + attention affinity of every image into sharded HDF5 (only what changed)."""
    params = load_params(params_path, runner)
    progress = Progress("wsss-cams-progress", "Images through CLIP-ES CAM extraction", "cams")
    return published_shards("wsss-cams-shards", run_cams(params, ArtifactLayout.for_params(params), progress), progress)


if __name__ == "__main__":
    sys.exit(run_stage({"cams": lambda args: cams_flow(args.params, runner_overrides(args))}, runner=True))
