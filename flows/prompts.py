"""prompts: prompt sharpness ranking and the template the CAM stage uses."""

from __future__ import annotations

import sys

from prefect import flow

from tasks.command import run_stage
from tasks.prompts import run_prompts
from tasks.run_names import stage_run_name
from tasks.runtime import link_written_files, table
from wsss.catalog import ArtifactLayout
from wsss.params import load_params


@flow(name="wsss-prompts", flow_run_name=stage_run_name("prompts"))
def prompts_flow(params_path: str = "params.yaml") -> str:
    """Rank candidate templates by sharpness; record the template later stages use."""
    params = load_params(params_path)
    layout = ArtifactLayout.for_params(params)
    result = run_prompts(params, layout)
    scores = result.details
    rows = scores["ranking"][:10] or [{"template": scores["selected"], "note": scores["note"]}]
    table(rows, "wsss-prompt-ranking", "Prompt sharpness (lower ranks first)")
    link_written_files("wsss-prompts-files", result.written, "Files written by this prompts run")
    return str(scores["selected"])


if __name__ == "__main__":
    sys.exit(run_stage({"prompts": lambda args: prompts_flow(args.params)}))
