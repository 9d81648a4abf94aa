"""refine: CAA refinement of the stored maps (no CLIP needed); only images whose CAMs changed."""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow

from flows.cli import run_stage
from tasks import cams as cam_tasks
from tasks import refine as refine_tasks
from tasks.common import CAM_STORE, REFINED_STORE, Progress, core_config, flow_run_id, load_params
from tasks.reporting import link_written_shards
from wsss.config import store_settings
from wsss.datasets import file_sha256
from wsss.incremental import content_key, package_source_digest, reusable_ids, shard_is_current, stage_identity, stored_keys
from wsss.io import CamStore, shard_path
from wsss.provenance import stage_attributes

REFINE_CODE = ("cam/caa.py", "cam/boxes.py")


@flow(name="wsss-refine")
def refine_flow(params_path: str = "params.yaml") -> dict[str, Any]:
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
        core_code_sha256=package_source_digest(REFINE_CODE),
        flow_run_id=flow_run_id(),
    )
    # The CAM content key already covers everything upstream; the shard-0 summary does not.
    identity = {k: v for k, v in stage_identity(attributes).items() if k != "upstream_cams"}
    cam_keys = stored_keys(CAM_STORE)
    previous = stored_keys(REFINED_STORE)
    scratch = cam_tasks.scratch_directory("refine", {**attributes, "cams": [file_sha256(p) for p in shards]})
    progress = Progress("wsss-refine-progress", len(cam_keys), "Images through CAA refinement")
    outcomes, untouched, planned = [], [], []
    for path in shards:
        root = cams.root_attrs(path)
        index, ids = int(root["shard_index"]), list(root["image_ids"])
        planned.append(shard_path(REFINED_STORE, index).name)
        expected = {
            i: content_key(identity, cams_key=cam_keys[i].key or f"file:{file_sha256(path)}") for i in ids
        }
        if shard_is_current(shard_path(REFINED_STORE, index), expected, previous):
            untouched.append(shard_path(REFINED_STORE, index).name)
        else:
            outcomes.append(refine_tasks.refine_shard(
                cams, ids, index, scratch, attributes, config.caa, store.compression, expected, reusable_ids(expected, previous)
            ))
        progress.step(len(ids))
    written = cam_tasks.publish_shards([o.path for o in outcomes], REFINED_STORE, planned, scratch)
    link_written_shards("wsss-refine-shards", written, untouched)
    return cam_tasks.shard_run_summary(written, untouched, outcomes)


if __name__ == "__main__":
    sys.exit(run_stage({"refine": refine_flow}))
