"""refine: CAA refinement of a pass's stored maps (no CLIP), into full-resolution refined maps.

Refined shards mirror the CAM shards (same index, same images). An image's key is the refine
identity plus its CAM content key, so unchanged images are copied from the previous refined store
and a shard whose images all kept their keys is not rewritten. Shards go through the flow's task
runner, like `cams`.
"""

from __future__ import annotations

from typing import Any

from tasks.runtime import flow_run_id, log_protocol
from tasks.shards import shard_submit
from wsss.cam.refine_stored import REFINE_OVERLAP_IO, RefineStored
from wsss.catalog import ArtifactLayout
from wsss.datasets import file_sha256
from wsss.incremental import StageReport, content_key, key_identity, run_sharded, scratch_name, stored_keys
from wsss.io import CamStore
from wsss.machine_layout import layout_record, resolve_auto, resolved
from wsss.params import Params
from wsss.provenance import stage_attributes
from wsss.stage_code import code_digest
from wsss.stage_result import StageResult
from wsss.stages import stage

STAGE_NAMES = {None: "refine", "learned": "learned_refine"}
# What a refined shard records about the CAM store it was made from.
UPSTREAM_KEYS = ("params_sha256", "clip", "template", "code_version", "learned_prompts_sha256")


def refine_attributes(params: Params, layout: ArtifactLayout, upstream: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """Root attributes of a pass's refined store (the CAM store's summary recorded as `upstream_cams`)."""
    return stage_attributes(
        STAGE_NAMES[layout.pass_name],
        params.sections(*stage("refine").params),
        str(upstream.get("input_manifest_sha256", "")),
        upstream_cams={k: upstream.get(k) for k in UPSTREAM_KEYS if k in upstream},
        core_code_sha256=code_digest("refine"),
        layout=layout_record(params),
        flow_run_id=run_id,
    )


def run_refine(params: Params, layout: ArtifactLayout, report: StageReport | None = None) -> StageResult:
    """Refine every image of the pass's CAM store into its refined store (only what changed)."""
    params = resolve_auto(params)  # CAA device and image processes for this machine
    cams = CamStore(layout.cams)
    upstream = cams.root_attrs(cams.shards[0]) if cams.shards else {}
    attributes = refine_attributes(params, layout, upstream, flow_run_id())
    log_protocol(params, "caa")
    # The CAM content key already covers everything upstream; the shard-0 summary does not.
    identity = {k: v for k, v in key_identity(attributes).items() if k != "upstream_cams"}
    cam_keys = stored_keys(layout.cams, strict=True)  # the input store: a damaged shard stops the stage, naming it
    plan: dict[int, list[str]] = {}
    keys: dict[str, str] = {}
    for path in cams.shards:
        root = cams.root_attrs(path)
        plan[int(root["shard_index"])] = list(root["image_ids"])
        for image_id in root["image_ids"]:
            keys[image_id] = content_key(identity, cams_key=cam_keys[image_id].key or f"file:{file_sha256(path)}")
    with shard_submit(params.runner, STAGE_NAMES[layout.pass_name]) as submit:
        summary = run_sharded(
            plan,
            keys,
            layout.refined,
            layout.scratch(scratch_name(STAGE_NAMES[layout.pass_name], attributes, keys)),
            attributes,
            RefineStored(layout.cams, params.caa),
            compression=params.store.compression,
            copied_arrays=("refined",),
            overlap=REFINE_OVERLAP_IO,
            processes=resolved(params.runner.image_processes, "runner.image_processes"),
            submit=submit,
            report=report,
        )
    return summary.result(STAGE_NAMES[layout.pass_name])
