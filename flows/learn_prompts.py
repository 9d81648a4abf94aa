"""learn_prompts: SemPLeS learned background prompts (off unless `learn_prompts.enabled`)."""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow

from tasks.command import run_stage
from tasks.learn_prompts import run_learn_prompts
from tasks.run_names import stage_run_name
from tasks.runtime import link_written_files, markdown
from wsss.catalog import ArtifactLayout
from wsss.params import load_params


@flow(name="wsss-learn-prompts", flow_run_name=stage_run_name("learn_prompts"))
def learn_prompts_flow(params_path: str = "params.yaml") -> dict[str, Any]:
    """Learn one background prompt per class on the pseudo masks; a quick record when disabled."""
    params = load_params(params_path)
    result = run_learn_prompts(params, ArtifactLayout.for_params(params))
    if result.details["report"] is not None:
        markdown("wsss-learned-prompts", result.details["report"], "Nearest vocabulary words of each learned background prompt")
        link_written_files("wsss-learn-prompts-files", result.written, "Files written by this learn_prompts run")
    return dict(result.details["status"])


if __name__ == "__main__":
    sys.exit(run_stage({"learn_prompts": lambda args: learn_prompts_flow(args.params)}))
