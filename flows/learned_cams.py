"""learned_cams: CAMs -> CAA -> pseudo masks again, with the learned background prompts.

The second pass of the SemPLeS option. It reuses the `cams`, `refine` and `pseudo` task nodes
with outputs under `artifacts/learned/`; a quick record only when `learn_prompts.enabled` is false.
"""

from __future__ import annotations

import sys

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.cli import run_stage
from tasks import cams as cam_tasks
from tasks import pseudo as pseudo_tasks
from tasks import refine as refine_tasks
from tasks.clip_model import extractor_for, load_clip_task
from tasks.common import PROMPT_SCORES, Progress, core_config, dataset_root, flow_run_id, load_params, read_json, read_manifest, write_json
from tasks.learn_prompts import LEARN_PROMPTS_DIR, LEARNED_CAMS, LEARNED_DIR, LEARNED_PSEUDO, LEARNED_REFINED
from tasks.reporting import link_written_files
from wsss.cam.extractor import LearnedBackground
from wsss.config import learn_prompts_settings, store_settings
from wsss.datasets import file_sha256, manifest_sha256
from wsss.errors import StoreError
from wsss.io import CamStore
from wsss.prompts.learned_file import load_learned_prompts
from wsss.provenance import stage_attributes


@flow(name="wsss-learned-cams", task_runner=ThreadPoolTaskRunner(max_workers=1))  # shards one at a time, as `cams`
def learned_cams_flow(params_path: str = "params.yaml") -> dict:
    """Grad-CAM with learned background prompts, CAA refinement and pseudo masks into artifacts/learned."""
    params = load_params(params_path)
    settings = learn_prompts_settings(params)
    if not settings.enabled:
        status = {"enabled": False, "reason": "learn_prompts.enabled is false"}
        write_json(LEARNED_DIR / "status.json", status)
        return status
    config = core_config(params)
    store = store_settings(params)
    manifest = read_manifest()
    prompts_file = LEARN_PROMPTS_DIR / "prompts.safetensors"
    learned = load_learned_prompts(prompts_file)
    if learned.class_names != list(config.vocabulary.class_names):
        raise StoreError(f"{prompts_file}: learned for classes {learned.class_names[:5]}..., params name {list(config.vocabulary.class_names)[:5]}...")
    template = str(read_json(PROMPT_SCORES)["selected"])
    clip = load_clip_task(config)
    background = LearnedBackground(
        learned.background_text, settings.background_mode, settings.lambda_refine if settings.rescore else None
    )
    extractor = extractor_for(config, clip, manifest, (template,), background)
    cam_attributes = stage_attributes(
        "learned_cams",
        {key: params.get(key) for key in ("clip", "classes", "cam", "store", "learn_prompts")},
        manifest_sha256(manifest),
        clip=clip.identity(),
        template=template,
        class_names=list(config.vocabulary.class_names),
        prompt_names=list(config.vocabulary.prompt_names),
        background_words=[] if settings.background_mode == "replace" else list(config.vocabulary.background_words),
        learned_prompts_sha256=file_sha256(prompts_file),
        background_mode=settings.background_mode,
        rescore_weight=settings.lambda_refine if settings.rescore else None,
        dataset_root=str(dataset_root(params)),
        flow_run_id=flow_run_id(),
    )
    # Same shards, content keys and task nodes as the `cams` and `refine` stages; the spec carries
    # the learned prompts so that a Dask worker would rebuild this extractor, not the fixed one.
    spec = cam_tasks.ExtractorSpec(config, manifest, template, background)
    cam_tasks.remember_extractor(spec, extractor)
    progress = Progress("wsss-learned-cams-progress", len(manifest.records), "Images through CAM extraction with learned prompts")
    cam_tasks.extract_into_store(spec, manifest.records, dataset_root(params), LEARNED_CAMS, cam_attributes, store, "learned_cams", progress)
    refine_attributes = stage_attributes(
        "learned_refine",
        {"caa": params.get("caa"), "store": params.get("store")},
        manifest_sha256(manifest),
        upstream_cams={k: cam_attributes.get(k) for k in ("params_sha256", "clip", "template", "learned_prompts_sha256")},
        flow_run_id=flow_run_id(),
    )
    refine_tasks.refine_into_store(LEARNED_CAMS, LEARNED_REFINED, refine_attributes, config.caa, store.compression, "learned_refine")

    jobs = [
        pseudo_tasks.PseudoJob(image_id, LEARNED_REFINED, dataset_root(params), LEARNED_PSEUDO, config.pseudo)
        for image_id in CamStore(LEARNED_REFINED).image_ids()
    ]
    rows = pseudo_tasks.make_pseudo_masks(jobs, config.pseudo.jobs)
    write_json(LEARNED_PSEUDO / "summary.json", {
        "params": params.get("pseudo"),
        "input_manifest_sha256": manifest_sha256(manifest),
        "learned_prompts_sha256": cam_attributes["learned_prompts_sha256"],
        "flow_run_id": flow_run_id(),
        "images": rows,
    })
    status = {
        "enabled": True,
        "images": len(rows),
        "background_mode": settings.background_mode,
        "rescore_weight": cam_attributes["rescore_weight"],
        "learned_prompts_sha256": cam_attributes["learned_prompts_sha256"],
    }
    write_json(LEARNED_DIR / "status.json", status)
    link_written_files("wsss-learned-cams-files", [LEARNED_DIR / "status.json", LEARNED_CAMS, LEARNED_REFINED, LEARNED_PSEUDO],
                       "Files written by this learned_cams run")
    return status


if __name__ == "__main__":
    sys.exit(run_stage({"learned_cams": learned_cams_flow}))
