"""refine: CAA refinement of the stored maps (no CLIP needed); only images whose CAMs changed."""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow

from tasks.command import run_stage, runner_overrides
from tasks.progress import Progress
from tasks.refine import run_refine
from tasks.run_names import stage_run_name
from tasks.shards import published_shards
from wsss.catalog import ArtifactLayout
from wsss.params import load_params


@flow(name="wsss-refine", flow_run_name=stage_run_name("refine"))
def refine_flow(params_path: str = "params.yaml", runner: dict[str, Any] | None = None) -> dict[str, Any]:
    """CAA refinement of the stored maps into full-resolution refined maps (HDF5)."""
    params = load_params(params_path, runner)
    progress = Progress("wsss-refine-progress", "Images through CAA refinement", "refine")
    return published_shards("wsss-refine-shards", run_refine(params, ArtifactLayout.for_params(params), progress), progress)


if __name__ == "__main__":
    sys.exit(run_stage({"refine": lambda args: refine_flow(args.params, runner_overrides(args))}, runner=True))
