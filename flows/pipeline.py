"""All stages in order as one Prefect flow, without DVC (`python -m flows.pipeline`).

DVC's `dvc repro` is the normal entry point (it skips what is up to date); this flow is for
running everything under one Prefect flow run, e.g. from a deployment. The stages and their
order are the stage table's (`wsss.stages.STAGES`), as in dvc.yaml.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

from prefect import flow, tags

from tasks.command import run_stage
from tasks.run_names import stage_run_name
from wsss.stages import STAGES, Stage


def stage_flow(stage: Stage) -> Callable[..., Any]:
    """The Prefect flow of a stage (`<stage>_flow` in its flow module)."""
    return getattr(importlib.import_module(stage.flow), stage.flow_function)


@flow(name="wsss-pipeline", flow_run_name=stage_run_name("pipeline"))
def pipeline_flow(params_path: str = "params.yaml") -> None:
    """Every stage of the table in its order (sample -> prepare -> ... -> evaluate)."""
    for stage in STAGES:
        with tags(f"stage:{stage.name}"):  # besides stage:pipeline
            stage_flow(stage)(params_path)


if __name__ == "__main__":
    sys.exit(run_stage({"pipeline": lambda args: pipeline_flow(args.params)}))
