"""cams: Grad-CAM maps + attention affinity per image into sharded HDF5 (what CAA needs), either pass.

One entry for the main pass (`layout`) and the SemPLeS second pass (`layout.learned()` with the
learned background prompts): the same attributes, content keys, engine and task nodes, so the
two passes cannot drift. Workers build the extractor themselves from an `ExtractorSpec` (a model
is never shipped) and keep it for every later shard of the process. A shard's images are
streamed: decoded and resized on a thread ahead of the model (`runner.overlap_io`), run
`cam.batch_size` at a time (batched by network input size), written by the background writer.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from tasks.clip_model import cam_extractor, load_stage_clip
from tasks.runtime import flow_run_id
from tasks.shards import shard_submit
from wsss.cam import ClipEsCamExtractor
from wsss.cam.extractor import LearnedBackground
from wsss.cam.stored_output import CamImages, CamSource
from wsss.catalog import ArtifactLayout
from wsss.clip import load_clip
from wsss.datasets import Manifest, file_sha256, manifest_sha256
from wsss.devices import torch_device
from wsss.errors import StoreError
from wsss.failures import settle_failures
from wsss.incremental import StageReport, key_identity, record_keys, run_sharded, scratch_name, shard_plan
from wsss.machine_layout import layout_record, resolve_auto, resolved
from wsss.params import Params
from wsss.prompts.learned_file import load_learned_prompts
from wsss.provenance import stage_attributes
from wsss.stage_code import code_digest
from wsss.stage_inputs import read_manifest, selected_template
from wsss.stage_result import StageResult
from wsss.stages import stage

STAGE_NAMES = {None: "cams", "learned": "learned_cams"}


@dataclass(frozen=True)
class ExtractorSpec:
    """What a worker needs to build the pass's extractor itself."""

    params: Params
    class_names: tuple[str, ...]  # the dataset's (checked against params)
    template: str
    learned: LearnedBackground | None = None

    def cache_key(self) -> str:
        identity = (self.params.clip, self.params.classes, self.params.cam, self.params.caa, self.class_names, self.template, self.learned)
        return hashlib.sha256(pickle.dumps(identity)).hexdigest()


# One extractor per process: Dask workers load CLIP once and keep it for every later shard.
_EXTRACTORS: dict[str, ClipEsCamExtractor] = {}


def remember_extractor(spec: ExtractorSpec, extractor: ClipEsCamExtractor) -> None:
    _EXTRACTORS.clear()
    _EXTRACTORS[spec.cache_key()] = extractor


def worker_extractor(spec: ExtractorSpec) -> ClipEsCamExtractor:
    key = spec.cache_key()
    if key not in _EXTRACTORS:
        clip = load_clip(spec.params.clip.source(), torch_device(spec.params.clip.device, "clip.device"), spec.params.clip.precision)
        remember_extractor(spec, cam_extractor(spec.params, clip, spec.class_names, (spec.template,), spec.learned))
    return _EXTRACTORS[key]


def learned_background(params: Params, layout: ArtifactLayout) -> tuple[LearnedBackground, str]:
    """The learned background prompts of the second pass, and the SHA-256 of their file."""
    learned = load_learned_prompts(layout.learned_prompts)
    if learned.class_names != list(params.vocabulary.class_names):
        raise StoreError(
            f"{layout.learned_prompts}: learned for classes {learned.class_names[:5]}..., params name {list(params.vocabulary.class_names)[:5]}..."
        )
    settings = params.learn_prompts
    background = LearnedBackground(learned.background_text, settings.background_mode, settings.lambda_refine if settings.rescore else None)
    return background, file_sha256(layout.learned_prompts)


def cam_attributes(
    params: Params,
    layout: ArtifactLayout,
    manifest: Manifest,
    clip_identity: Mapping[str, Any],
    template: str,
    learned_prompts_sha256: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Root attributes of a pass's CAM store; their run-independent part is every image's key identity."""
    vocabulary, learned = params.vocabulary, layout.pass_name is not None
    settings = params.learn_prompts
    extra: dict[str, Any] = (
        {
            "learned_prompts_sha256": learned_prompts_sha256,
            "background_mode": settings.background_mode,
            "rescore_weight": settings.lambda_refine if settings.rescore else None,
        }
        if learned
        else {}
    )
    return stage_attributes(
        STAGE_NAMES[layout.pass_name],
        params.sections(*stage("cams").params, *(("learn_prompts",) if learned else ())),
        manifest_sha256(manifest),
        clip=dict(clip_identity),
        template=template,
        class_names=list(vocabulary.class_names),
        prompt_names=list(vocabulary.prompt_names),
        background_words=[] if learned and settings.background_mode == "replace" else list(vocabulary.background_words),
        dataset_root=str(params.dataset_root),
        core_code_sha256=code_digest("cams"),  # the code that computes the maps (stage table): part of every key
        **extra,
        layout=layout_record(params),
        flow_run_id=run_id,
    )


def run_cams(params: Params, layout: ArtifactLayout, report: StageReport | None = None) -> StageResult:
    """Grad-CAM maps + attention of every manifest image into the pass's CAM store (only what changed).

    Shards go through the flow's task runner (`runner` section: in-process or Dask workers).
    """
    params = resolve_auto(params)  # batch size, decode threads, image processes for this machine
    manifest = read_manifest(layout)
    background, prompts_sha256 = learned_background(params, layout) if layout.pass_name else (None, None)
    template = selected_template(layout)
    clip = load_stage_clip(params)
    spec = ExtractorSpec(params, tuple(manifest.class_names), template, background)
    remember_extractor(spec, cam_extractor(params, clip, spec.class_names, (template,), background))
    attributes = cam_attributes(params, layout, manifest, clip.identity(), template, prompts_sha256, flow_run_id())
    keys = record_keys(manifest.records, key_identity(attributes))
    plan = shard_plan(list(keys), params.store.images_per_shard, params.store.shard_count)
    with shard_submit(params.runner, STAGE_NAMES[layout.pass_name]) as submit:
        summary = run_sharded(
            plan,
            keys,
            layout.cams,
            layout.scratch(scratch_name(STAGE_NAMES[layout.pass_name], attributes, keys)),
            attributes,
            CamImages(
                partial(worker_extractor, spec),
                params.dataset_root,
                {r.image_id: CamSource(r.image_id, r.image_path, tuple(r.tags), r.sha256) for r in manifest.records},
                params.cam.batch_size,
                params.runner,
                params.store,
            ),
            compression=params.store.compression,
            copied_arrays=("gradcam", "attention"),
            overlap=params.runner.overlap_io,
            processes=resolved(params.runner.image_processes, "runner.image_processes"),
            submit=submit,
            report=report,
        )
    settle_failures(STAGE_NAMES[layout.pass_name], summary.failed, len(keys), params.reliability.max_failed_share, layout.stage_failures(layout.cams))
    return summary.result(STAGE_NAMES[layout.pass_name])
