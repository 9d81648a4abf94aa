"""learn_prompts: SemPLeS learned background prompts (off unless `learn_prompts.enabled`)."""

from __future__ import annotations

import statistics
import sys

from prefect import flow

from flows.cli import run_stage
from tasks import learn_prompts as prompt_tasks
from tasks.clip_model import load_clip_task
from tasks.common import PSEUDO_DIR, REFINED_STORE, core_config, dataset_root, flow_run_id, load_params, read_manifest, write_json
from tasks.learn_prompts import LEARN_PROMPTS_DIR
from tasks.reporting import link_written_files
from wsss.config import learn_prompts_settings
from wsss.datasets import file_sha256, manifest_sha256
from wsss.provenance import stage_attributes


@flow(name="wsss-learn-prompts")
def learn_prompts_flow(params_path: str = "params.yaml") -> dict:
    """Learn one background prompt per class on the pseudo masks; a quick record when disabled."""
    params = load_params(params_path)
    settings = learn_prompts_settings(params)
    if not settings.enabled:
        status = {"enabled": False, "reason": "learn_prompts.enabled is false"}
        write_json(LEARN_PROMPTS_DIR / "status.json", status)
        return status
    config = core_config(params)
    manifest = read_manifest()
    clip = load_clip_task(config)
    features, class_ids = prompt_tasks.background_features(
        clip, manifest.records, config.vocabulary, dataset_root(params), PSEUDO_DIR, REFINED_STORE, settings
    )
    tensors, record = prompt_tasks.learn_background_prompts(clip, config.vocabulary, features, class_ids, settings)
    pseudo_summary = PSEUDO_DIR / "summary.json"
    attributes = stage_attributes(
        "learn_prompts",
        {key: params.get(key) for key in ("clip", "classes", "learn_prompts")},
        manifest_sha256(manifest),
        clip=clip.identity(),
        class_names=list(config.vocabulary.class_names),
        prompt_names=list(config.vocabulary.prompt_names),
        pseudo_summary_sha256=file_sha256(pseudo_summary) if pseudo_summary.is_file() else None,
        flow_run_id=flow_run_id(),
    )
    prompt_tasks.write_learned_prompts(LEARN_PROMPTS_DIR, tensors, attributes)
    steady = record.step_seconds[1:] or record.step_seconds
    summary = {
        "pairs": int(len(class_ids)),
        "steps": len(record.losses),
        "loss_first": round(record.losses[0], 6),
        "loss_last": round(record.losses[-1], 6),
        "seconds_per_step_median": round(statistics.median(steady), 6),
        "device": config.device,
    }
    prompt_tasks.write_report(LEARN_PROMPTS_DIR, clip, tensors, list(config.vocabulary.class_names), settings, summary)
    status = {
        "enabled": True,
        **summary,
        "losses": [round(v, 6) for v in record.losses],
        "match": [round(v, 6) for v in record.matches],
        "push": [round(v, 6) for v in record.pushes],
        "clip": clip.identity(),
        "params_sha256": attributes["params_sha256"],
        "flow_run_id": attributes["flow_run_id"],
    }
    write_json(LEARN_PROMPTS_DIR / "status.json", status)
    link_written_files("wsss-learn-prompts-files", sorted(p for p in LEARN_PROMPTS_DIR.iterdir() if p.is_file()),
                       "Files written by this learn_prompts run")
    return status


if __name__ == "__main__":
    sys.exit(run_stage({"learn_prompts": learn_prompts_flow}))
