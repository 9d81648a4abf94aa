"""refine: CAA refinement of the stored maps (no CLIP needed); only images whose CAMs changed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from prefect import flow

from flows.cli import run_stage
from tasks import refine as refine_tasks
from tasks.common import CAM_STORE, REFINED_STORE, Progress, core_config, flow_run_id, load_params
from tasks.reporting import link_written_shards
from wsss.config import store_settings
from wsss.incremental import package_source_digest
from wsss.io import CamStore
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
    progress = Progress("wsss-refine-progress", len(cams.image_ids()), "Images through CAA refinement")
    summary = refine_tasks.refine_into_store(CAM_STORE, REFINED_STORE, attributes, config.caa, store.compression, "refine", progress)
    link_written_shards("wsss-refine-shards", [Path(p) for p in summary["written"]], summary["untouched"])
    return summary


if __name__ == "__main__":
    sys.exit(run_stage({"refine": refine_flow}))
