"""All stages in order as one Prefect flow, without DVC (`python -m flows.pipeline`).

DVC's `dvc repro` is the normal entry point (it skips what is up to date); this flow is for
running everything under one Prefect flow run, e.g. from a deployment.
"""

from __future__ import annotations

import sys

from prefect import flow

from flows.cams import run_cams
from flows.cli import run_stage
from flows.evaluate import evaluate_flow
from flows.learn_prompts import learn_prompts_flow
from flows.learned_cams import learned_cams_flow
from flows.prepare import prepare_flow, sample_flow
from flows.prompts import prompts_flow
from flows.pseudo import pseudo_flow
from flows.refine import refine_flow
from flows.train import train_flow

STAGE_FLOWS = {
    "sample": sample_flow,
    "prepare": prepare_flow,
    "prompts": prompts_flow,
    "cams": run_cams,  # with the task runner of the `runner` section (sequential or Dask)
    "refine": refine_flow,
    "pseudo": pseudo_flow,
    "train": train_flow,
    "learn_prompts": learn_prompts_flow,
    "learned_cams": learned_cams_flow,
    "evaluate": evaluate_flow,
}


@flow(name="wsss-pipeline")
def pipeline_flow(params_path: str = "params.yaml") -> None:
    """sample -> prepare -> prompts -> cams -> refine -> pseudo -> train -> [learn_prompts -> learned_cams] -> evaluate."""
    for stage_flow in STAGE_FLOWS.values():
        stage_flow(params_path)


if __name__ == "__main__":
    sys.exit(run_stage({"pipeline": pipeline_flow}))
