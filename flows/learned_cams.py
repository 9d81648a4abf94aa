"""learned_cams: the SemPLeS second pass, CAMs -> CAA -> pseudo masks with the learned background prompts.

The same `cams`, `refine` and `pseudo` entries as the main pass, on `artifacts/learned/`; a quick
status record only while `learn_prompts.enabled` is false.
"""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow

from tasks.command import run_stage, runner_overrides
from tasks.learned_cams import run_learned_cams
from tasks.run_names import stage_run_name
from tasks.runtime import link_written_files
from wsss.catalog import ArtifactLayout
from wsss.params import load_params


@flow(name="wsss-learned-cams", flow_run_name=stage_run_name("learned_cams"))
def learned_cams_flow(params_path: str = "params.yaml", runner: dict[str, Any] | None = None) -> dict[str, Any]:
    """Grad-CAM with learned background prompts, CAA refinement and pseudo masks into artifacts/learned."""
    params = load_params(params_path, runner)
    layout = ArtifactLayout.for_params(params)
    result = run_learned_cams(params, layout)
    if result.details["enabled"]:
        learned = layout.learned()
        link_written_files(
            "wsss-learned-cams-files",
            [layout.pass_status, learned.cams, learned.refined, learned.pseudo.root],
            "Files written by this learned_cams run",
        )
    return dict(result.details)


if __name__ == "__main__":
    sys.exit(run_stage({"learned_cams": lambda args: learned_cams_flow(args.params, runner_overrides(args))}, runner=True))
