"""prompts: prompt sharpness ranking and the template the CAM stage uses."""

from __future__ import annotations

import sys

from prefect import flow

from flows.cli import run_stage
from prefect.artifacts import create_table_artifact
from tasks import prompts as prompt_tasks
from tasks.clip_model import extractor_for, load_clip_task
from tasks.common import PROMPT_SCORES, core_config, dataset_root, load_params, read_manifest
from tasks.reporting import link_written_files
from wsss.config import prompt_settings


@flow(name="wsss-prompts")
def prompts_flow(params_path: str = "params.yaml") -> str:
    """Rank candidate templates by sharpness; record the template later stages use."""
    params = load_params(params_path)
    config = core_config(params)
    manifest = read_manifest()
    clip = load_clip_task(config)
    extractor = extractor_for(config, clip, manifest, config.cam.templates)
    scores = prompt_tasks.score_templates(extractor, manifest, dataset_root(params), prompt_settings(params))
    prompt_tasks.write_scores(scores, clip.identity())
    rows = scores["ranking"][:10] or [{"template": scores["selected"], "note": scores["note"]}]
    create_table_artifact(rows, key="wsss-prompt-ranking", description="Prompt sharpness (lower ranks first)")
    link_written_files("wsss-prompts-files", [PROMPT_SCORES], "Files written by this prompts run")
    return str(scores["selected"])


if __name__ == "__main__":
    sys.exit(run_stage({"prompts": prompts_flow}))
