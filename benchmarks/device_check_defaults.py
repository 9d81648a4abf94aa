"""Part 0 of the GPU check, printed first: what the stages do with their defaults.

(a) cams + refine end to end on the profile's VOC-like JPEGs (500 on a GPU) with the params the
    stages get from the shipped `params.yaml`, where only `clip.device` (cuda where there is one)
    and `clip.precision` (fp16 on a GPU) are set, through the stages' engine
    (`wsss.incremental.run_sharded`: shard plan, scratch shards, publish copies) with the stages'
    per-image work: the stage's own callback, `wsss.cam.stored_output.CamImages` (`stream_cams`
    with the stage's batch size, decode threads or image processes and overlap, its attributes and
    dtypes) and the refine stage's own `RefineStored`. Everything that shapes the run (batch size,
    decode threads, image processes, overlap, CAA device, codec, shard plan, worker processes:
    `RunnerSettings.local_processes`) is read from those params after the stages' own resolution
    of `auto` for this machine (`wsss.machine_layout.resolve_auto`), never set here, so a change
    of the defaults shows in this figure. The image processes are started before the clock (the
    seconds they took are printed beside), as a Dask pool is.
    The tasks/ entries themselves import Prefect, which the GPU machine does not have.
    `tests/pipeline/test_device_check_defaults.py` checks that this path stores what the stage entries store.
(b) CAM+CAA images/s of the extractor those params build (its batch size, by size bucket) on
    500x375 images, against the reference's own one-image loop on the same device, and the ratio.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import TaggedImage, timed, write_jpegs
from benchmarks.device_check_parts import ROOT, build_clips, reference_loop
from benchmarks.device_check_stages import ShardPool, StageImage, process_extractor, stage_images, use_extractor
from wsss.bounded_parsing import load_yaml
from wsss.cam import ClipEsCamExtractor
from wsss.cam.refine_stored import REFINE_OVERLAP_IO, RefineStored
from wsss.cam.stored_output import CamImages, CamSource
from wsss.clip import LoadedClip
from wsss.incremental import run_now, run_sharded, shard_plan, write_shard
from wsss.io import CamStore
from wsss.io.pipelining import image_processes
from wsss.machine_layout import Machine, resolve_auto
from wsss.params import Params
from wsss.text import REFERENCE_TEMPLATE, ClassVocabulary, voc_vocabulary


def shipped_params(device: str, precision: str) -> Params:
    """`params.yaml` as the repository ships it (no `params.local.yaml`), CLIP on `device` in
    `precision`, every `auto` resolved for this machine as the stages resolve it."""
    path = ROOT / "params.yaml"
    params = Params.from_mapping(load_yaml(path.read_text(), str(path)))
    return resolve_auto(params.replace(clip=replace(params.clip, device=device, precision=precision)))


def default_extractor(
    params: Params, clip: LoadedClip, vocabulary: ClassVocabulary | None = None, template: str = REFERENCE_TEMPLATE
) -> ClipEsCamExtractor:
    """The extractor the cams stage builds from `params` (`tasks/clip_model.py::cam_extractor`); VOC
    classes unless `vocabulary` is given, `template` in place of the one the prompts stage selects."""
    return ClipEsCamExtractor(clip, vocabulary or voc_vocabulary(), replace(params.cam, templates=(template,)), params.caa)


@dataclass(frozen=True)
class DefaultExtractor:
    """Builds the default extractor in a worker process (picklable): the same weights as the parent's."""

    params: Params
    checkpoint: Path | None
    sharpen: float

    def __call__(self) -> ClipEsCamExtractor:
        clip32, clip16 = build_clips(self.params.clip.device, self.checkpoint, self.sharpen)
        return default_extractor(self.params, clip16 if self.params.clip.precision == "fp16" else clip32)


def default_layout(params: Params) -> dict[str, Any]:
    """What shapes the stages' run, as the params decide it (printed next to the figure)."""
    return {
        "clip": f"{params.clip.device} {params.clip.precision}",
        "cam.batch_size": params.cam.batch_size,
        "runner.kind": params.runner.kind,
        "processes": params.runner.local_processes(),
        "runner.overlap_io": params.runner.overlap_io,
        "runner.decode_workers": params.runner.decode_workers,
        "runner.image_processes": params.runner.image_processes,
        "cores": Machine.here().cores,
        "caa.device": params.caa.device,
        "store.compression": params.store.compression,
        "store.images_per_shard": params.store.images_per_shard,
        "store.shard_count": params.store.shard_count,
    }


def _keys(ids: Sequence[str], stage: str) -> dict[str, str]:
    return {i: hashlib.sha256(f"{stage}:{i}".encode()).hexdigest() for i in ids}


def run_default_stages(params: Params, root: Path, records: Sequence[StageImage], workdir: Path, pool: ShardPool | None = None) -> dict[str, float]:
    """cams then refine through the engine as the stage entries call it; seconds per stage.
    Shards run in this process, or on `pool`'s processes (`runner.kind: dask`)."""
    submit = run_now if pool is None else (lambda job, compute: pool.executor.submit(write_shard, job, compute))
    synchronize = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    by_id = {record.image_id: record for record in records}
    cams, refined = workdir / "cams", workdir / "refined"
    started = time.perf_counter()
    keys = _keys(list(by_id), "cams")
    plan = shard_plan(list(keys), params.store.images_per_shard, params.store.shard_count)
    run_sharded(
        plan,
        keys,
        cams,
        workdir / "scratch-cams",
        {"stage": "cams"},
        CamImages(
            process_extractor,
            root,
            {i: CamSource(i, r.path, r.tags, r.sha256) for i, r in by_id.items()},
            params.cam.batch_size,
            params.runner,
            params.store,
        ),
        compression=params.store.compression,
        copied_arrays=("gradcam", "attention"),
        overlap=params.runner.overlap_io,
        processes=params.runner.image_processes,
        submit=submit,
    )
    synchronize()
    cams_seconds = time.perf_counter() - started
    started = time.perf_counter()
    store = CamStore(cams)
    plan = {int(store.root_attrs(p)["shard_index"]): list(store.root_attrs(p)["image_ids"]) for p in store.shards}
    keys = _keys([i for ids in plan.values() for i in ids], "refine")
    run_sharded(
        plan,
        keys,
        refined,
        workdir / "scratch-refine",
        {"stage": "refine"},
        RefineStored(cams, params.caa),
        compression=params.store.compression,
        copied_arrays=("refined",),
        overlap=REFINE_OVERLAP_IO,
        processes=params.runner.image_processes,
        submit=submit,
    )
    synchronize()
    return {"cams_seconds": cams_seconds, "refine_seconds": time.perf_counter() - started}


def _import_stage_modules(_: int) -> None:
    import wsss.cam.refine_stored
    import wsss.cam.streaming
    import wsss.incremental.engine  # noqa: F401


def warm_image_processes(count: int) -> float:
    """Start the stages' image processes (and their imports) before the clock; the seconds it took."""
    if not count:
        return 0.0
    seconds, _ = timed(lambda: list(image_processes(count).map(_import_stage_modules, range(4 * count))))
    return round(seconds, 2)


def default_stages_end_to_end(
    params: Params, clip: LoadedClip, images: list[TaggedImage], workdir: Path, make_extractor: DefaultExtractor
) -> dict[str, Any]:
    """(a): the JPEGs written, then cams + refine with the defaults; images/s of both together."""
    root = workdir / "images"
    records = stage_images(root, write_jpegs(images, root), {i.image_id: i.class_ids for i in images}, voc_vocabulary().class_names)
    use_extractor(default_extractor(params, clip))
    warm_up = warm_image_processes(params.runner.image_processes)
    processes = params.runner.local_processes()
    if processes > 1:  # a LocalCluster's workers (one torch thread each, as Dask's nanny sets), started before the clock
        with ShardPool(processes, make_extractor, threads=1) as pool:
            seconds = run_default_stages(params, root, records, workdir / "stores", pool)
    else:
        seconds = run_default_stages(params, root, records, workdir / "stores")
    count = len(CamStore(workdir / "stores" / "refined").image_ids())
    total = seconds["cams_seconds"] + seconds["refine_seconds"]
    return {
        "images": len(images),
        "images_refined": count,
        "layout": default_layout(params),
        "image_processes_start_seconds": warm_up,
        "cams_seconds": round(seconds["cams_seconds"], 2),
        "refine_seconds": round(seconds["refine_seconds"], 2),
        "cams_images_per_s": round(count / seconds["cams_seconds"], 2),
        "refine_images_per_s": round(count / seconds["refine_seconds"], 2),
        "images_per_s": round(count / total, 2),
    }


def default_path_vs_reference(
    params: Params, clip: LoadedClip, clip32: LoadedClip, images: list[TaggedImage], reference_images: int
) -> dict[str, Any]:
    """(b): CAM+CAA images/s of the default extractor (network-ready inputs to numpy results) and
    of the reference's one-image loop on the same device (its first `reference_images` images)."""
    extractor = default_extractor(params, clip)
    prepared = [(extractor.prepare(item.image), item.class_ids) for item in images]
    extractor.extract_batch(prepared[: max(2, params.cam.batch_size)])
    seconds, _ = timed(lambda: extractor.extract_batch(prepared))
    ours = round(len(prepared) / seconds, 1)
    reference = reference_loop(clip32, images[:reference_images])
    return {
        "images": len(images),
        "batch_size": params.cam.batch_size,
        "clip": f"{params.clip.device} {params.clip.precision}",
        "images_per_s": ours,
        "reference": reference,
        "ratio": round(ours / reference["images_per_s"], 2),
    }
