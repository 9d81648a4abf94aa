"""All stages in order as one Prefect flow, without DVC (`python -m flows.pipeline`).

DVC's `dvc repro` is the normal entry point (it skips what is up to date); this flow is for
running everything under one Prefect flow run, e.g. from a deployment.
"""

from __future__ import annotations

import sys

from prefect import flow, tags

from flows.cams import cams_flow
from flows.evaluate import evaluate_flow
from flows.learn_prompts import learn_prompts_flow
from flows.learned_cams import learned_cams_flow
from flows.prepare import prepare_flow, sample_flow
from flows.prompts import prompts_flow
from flows.pseudo import pseudo_flow
from flows.refine import refine_flow
from flows.review import review_flow
from flows.train import train_flow
from tasks.command import run_stage
from tasks.run_names import stage_run_name

STAGE_FLOWS = (sample_flow, prepare_flow, prompts_flow, cams_flow, refine_flow, pseudo_flow, review_flow, train_flow,
               learn_prompts_flow, learned_cams_flow, evaluate_flow)


@flow(name="wsss-pipeline", flow_run_name=stage_run_name("pipeline"))
def pipeline_flow(params_path: str = "params.yaml") -> None:
    """sample -> prepare -> prompts -> cams -> refine -> pseudo -> review -> train -> [learn_prompts -> learned_cams] -> evaluate."""
    for stage_flow in STAGE_FLOWS:
        with tags(f"stage:{stage_flow.name.removeprefix('wsss-').replace('-', '_')}"):  # besides stage:pipeline
            stage_flow(params_path)


if __name__ == "__main__":
    sys.exit(run_stage({"pipeline": lambda args: pipeline_flow(args.params)}))
