"""refine: CAA refinement of the stored maps (no CLIP needed)."""

from __future__ import annotations

import sys

from prefect import flow

from flows.cli import run_stage
from tasks import cams as cam_tasks
from tasks import refine as refine_tasks
from tasks.common import CAM_STORE, REFINED_STORE, Progress, core_config, flow_run_id, load_params
from wsss.config import store_settings
from wsss.datasets import file_sha256
from wsss.io import CamStore
from wsss.provenance import stage_attributes


@flow(name="wsss-refine")
def refine_flow(params_path: str = "params.yaml") -> list[str]:
    """CAA refinement of the stored maps into full-resolution refined maps (HDF5)."""
    params = load_params(params_path)
    config = core_config(params)
    store = store_settings(params)
    cams = CamStore(CAM_STORE)
    shards = sorted(CAM_STORE.glob("shard-*.h5"))
    upstream = cams.root_attrs(shards[0]) if shards else {}
    attributes = stage_attributes(
        "refine",
        {"caa": params.get("caa"), "store": params.get("store")},
        str(upstream.get("input_manifest_sha256", "")),
        upstream_cams={k: upstream.get(k) for k in ("params_sha256", "clip", "template", "code_version")},
        flow_run_id=flow_run_id(),
    )
    scratch = cam_tasks.scratch_directory("refine", {**attributes, "cams": [file_sha256(p) for p in shards]})
    progress = Progress("wsss-refine-progress", len(cams.image_ids()), "Images through CAA refinement")
    written = [
        refine_tasks.refine_shard(cams, cams.root_attrs(path)["image_ids"], index, scratch, attributes, config.caa, store.compression, progress)
        for index, path in enumerate(shards)
    ]
    return [str(p) for p in cam_tasks.publish_shards(written, REFINED_STORE)]


if __name__ == "__main__":
    sys.exit(run_stage({"refine": refine_flow}))
