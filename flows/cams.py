"""cams: Grad-CAM maps and attention affinity of every image into sharded HDF5."""

from __future__ import annotations

import sys

from prefect import flow

from flows.cli import run_stage
from tasks import cams as cam_tasks
from tasks.clip_model import extractor_for, load_clip_task
from tasks.common import CAM_STORE, PROMPT_SCORES, Progress, core_config, dataset_root, flow_run_id, load_params, read_json, read_manifest
from wsss.config import store_settings
from wsss.datasets import manifest_sha256
from wsss.provenance import stage_attributes


@flow(name="wsss-cams")
def cams_flow(params_path: str = "params.yaml") -> list[str]:
    """Grad-CAM maps + attention affinity of every image into sharded HDF5."""
    params = load_params(params_path)
    config = core_config(params)
    store = store_settings(params)
    manifest = read_manifest()
    template = str(read_json(PROMPT_SCORES)["selected"])
    clip = load_clip_task(config)
    extractor = extractor_for(config, clip, manifest, (template,))
    attributes = stage_attributes(
        "cams",
        {key: params.get(key) for key in ("clip", "classes", "cam", "store")},
        manifest_sha256(manifest),
        clip=clip.identity(),
        template=template,
        class_names=list(config.vocabulary.class_names),
        prompt_names=list(config.vocabulary.prompt_names),
        background_words=list(config.vocabulary.background_words),
        dataset_root=str(dataset_root(params)),
        flow_run_id=flow_run_id(),
    )
    scratch = cam_tasks.scratch_directory("cams", attributes)
    plan = cam_tasks.shard_plan(manifest.records, store.images_per_shard)
    progress = Progress("wsss-cams-progress", len(manifest.records), "Images through CLIP-ES CAM extraction")
    shards = [
        cam_tasks.extract_shard(extractor, records, dataset_root(params), index, scratch, attributes, store, progress)
        for index, records in plan.items()
    ]
    return [str(p) for p in cam_tasks.publish_shards(shards, CAM_STORE)]


if __name__ == "__main__":
    sys.exit(run_stage({"cams": cams_flow}))
