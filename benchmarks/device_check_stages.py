"""Part 3 of the GPU check: the cams and refine stages' per-image work end to end, without Prefect/DVC.

`cams_then_refine` does, for a folder of JPEGs, what the stage entries `tasks/cams.py::run_cams`
and `tasks/refine.py::run_refine` do per shard, with the same core calls and the stage's settings
(`StoreSettings` / `CaaSettings` defaults unless given):

* cams: `wsss.cam.streaming.stream_cams` (decode + prepare on `decode_workers` threads ahead of the
  model, full `CamSettings.batch_size` batches per size bucket) -> `ShardWriter.add` of `gradcam` /
  `attention` with the stage's dtypes and compression, on a `BackgroundShardWriter` with `overlap`;
* refine: the stage's own per-image callback `wsss.cam.refine_stored.RefineStored` (read, CAA on
  `CaaSettings.device`, back to the host) -> `ShardWriter.add` of `refined`, written inline as the
  stage does (`REFINE_OVERLAP_IO`).

With a `ShardPool` the shards run on worker processes, as `runner.kind: dask` with
`runner.workers` maps the stage's shards (the pools are started before the clock, like a running
cluster; cams workers each hold CLIP on the same GPU). It calls the core, not the stage entries:
`tasks/` imports Prefect (through `tasks/runtime.py`), which the GPU machine does not have.
The cams loop reports where its time went: seconds inside `extract_batch`, forwards, and seconds
blocked handing images to the writer.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from wsss.cam import CaaSettings, ClipEsCamExtractor, PreparedImage
from wsss.cam.extractor import size_bucket
from wsss.cam.refine_stored import REFINE_OVERLAP_IO, RefineStored
from wsss.cam.stored_output import cam_image_output
from wsss.cam.streaming import stream_cams
from wsss.datasets import safe_join
from wsss.imaging import load_rgb
from wsss.io import CamStore, ShardWriter, assign_shards, shard_path
from wsss.io.pipelining import BackgroundShardWriter
from wsss.io.settings import StoreSettings


@dataclass(frozen=True)
class StageImage:
    """One image of the run as the manifest lists it: id, path under the root, tags, SHA-256."""

    image_id: str
    path: str
    class_ids: tuple[int, ...]
    tags: tuple[str, ...]
    sha256: str


def stage_images(root: Path, paths: dict[str, str], class_ids: dict[str, Sequence[int]], class_names: Sequence[str]) -> list[StageImage]:
    """Manifest-like records of images already written under `root` (hashing is the prepare stage's cost)."""
    return [
        StageImage(
            image_id,
            path,
            tuple(class_ids[image_id]),
            tuple(class_names[c] for c in class_ids[image_id]),
            hashlib.sha256(safe_join(root, path).read_bytes()).hexdigest(),
        )
        for image_id, path in sorted(paths.items())
    ]


class TimedExtractor:
    """The extractor, with the seconds spent in `extract_batch` (model + its host work) and the
    number of forwards counted; `add_seconds` is filled by the caller (time blocked handing
    images to the writer). What is left of the stage's time is waiting for decoded images."""

    def __init__(self, extractor: ClipEsCamExtractor) -> None:
        self.extractor, self.seconds, self.forwards, self.add_seconds = extractor, 0.0, 0, 0.0

    def extract_batch(self, items: Sequence[Any], refine: bool = True) -> list[Any]:
        started = time.perf_counter()
        results = self.extractor.extract_batch(items, refine=refine)
        self.seconds += time.perf_counter() - started
        self.forwards += len({size_bucket(p) for p, _ in items})
        return results


def write_cam_shard(
    extractor: ClipEsCamExtractor,
    index: int,
    items: Sequence[StageImage],
    root: Path,
    output: Path,
    store: StoreSettings,
    overlap: bool,
    decode_workers: int,
    deadline: float | None = None,
) -> tuple[int, dict[str, float]]:
    """One CAM shard, as the stage writes it; returns (images written, timings of its loop)."""
    batch_size = extractor.settings.batch_size
    model = TimedExtractor(extractor)

    def load(item: StageImage) -> tuple[PreparedImage, tuple[int, ...]]:
        return extractor.prepare(load_rgb(safe_join(root, item.path))), item.class_ids

    written = 0
    shard = ShardWriter(shard_path(output, index), {"stage": "cams"}, compression=store.compression)
    with BackgroundShardWriter(shard) if overlap else shard as writer:
        results = stream_cams(model, items, load, batch_size, overlap, decode_workers)
        for position, (item, result) in enumerate(results, 1):
            if isinstance(result, Exception):
                raise result
            waited = time.perf_counter()
            entry = cam_image_output(result, item.tags, item.path, item.sha256, store)  # as the stage stores it
            writer.add(item.image_id, entry.arrays, entry.attrs, entry.dtypes)
            model.add_seconds += time.perf_counter() - waited
            written += 1
            # Between batches only: a batch's forward is never thrown away.
            if position % batch_size == 0 and deadline is not None and time.perf_counter() > deadline:
                results.close()
                break
    return written, {"model_seconds": model.seconds, "forwards": model.forwards, "add_seconds": model.add_seconds}


_CAMS_WORKER: dict[str, ClipEsCamExtractor] = {}


def _limit_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def _start_worker(threads: int, make_extractor: Callable[[], ClipEsCamExtractor] | None) -> None:
    _limit_threads(threads)
    if make_extractor is not None:
        _CAMS_WORKER["extractor"] = make_extractor()


def _cams_worker_shard(*args: Any) -> tuple[int, dict[str, float]]:
    return write_cam_shard(_CAMS_WORKER["extractor"], *args)


def use_extractor(extractor: ClipEsCamExtractor) -> None:
    """The extractor of this process (a pool worker's is built by the pool)."""
    _CAMS_WORKER["extractor"] = extractor


def process_extractor() -> ClipEsCamExtractor:
    return _CAMS_WORKER["extractor"]


class ShardPool:
    """Worker processes for whole shards, as `runner.kind: dask` with `runner.workers` maps the
    stage's shards: spawned (the parent holds a CUDA context), each with an equal share of the
    cores for torch (or `threads`), started and warmed up before the clock, like a running cluster. With
    `make_extractor` every worker holds the CLIP extractor (all on the same GPU) and can write CAM
    shards: each process decodes, compresses and writes its own (one HDF5 writer per process)."""

    def __init__(self, workers: int, make_extractor: Callable[[], ClipEsCamExtractor] | None = None, threads: int | None = None) -> None:
        self.workers = workers
        threads = threads or max(1, (os.cpu_count() or 1) // workers)
        self.executor = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker, initargs=(threads, make_extractor)
        )
        list(self.executor.map(_limit_threads, [threads] * workers))

    def __enter__(self) -> ShardPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


def write_cam_shards(
    extractor: ClipEsCamExtractor,
    images: Sequence[StageImage],
    root: Path,
    output: Path,
    store: StoreSettings,
    deadline: float | None = None,
    overlap: bool = True,
    decode_workers: int = 1,
    timings: dict[str, Any] | None = None,
    pool: ShardPool | None = None,
) -> int:
    """The cams stage: Grad-CAM + mean attention of every image into shards; returns images written.

    Through `wsss.cam.streaming.stream_cams`, as `wsss.cam.stored_output.CamImages.stream` under the
    engine: full `batch_size` batches per size bucket; with `overlap` (`runner.overlap_io`, the
    stage's default) the next images are decoded on `decode_workers` threads and the shard is
    compressed and written by a `BackgroundShardWriter`. A `deadline` (perf_counter seconds) stops
    after the batch that passes it, closing the shard normally (in this process only). With a
    `pool` (made with `make_extractor`) the shards run on its processes.
    """
    by_id = {item.image_id: item for item in images}
    plan = assign_shards(list(by_id), store.images_per_shard)
    jobs = [(index, [by_id[i] for i in ids], root, output, store, overlap, decode_workers) for index, ids in plan.items()]
    if pool is not None:
        outcomes = list(pool.executor.map(_cams_worker_shard, *zip(*jobs, strict=True)))
    else:
        outcomes = []
        for job in jobs:
            if outcomes and deadline is not None and time.perf_counter() > deadline:
                break
            outcomes.append(write_cam_shard(extractor, *job, deadline=deadline))
    if timings is not None:
        for key in ("model_seconds", "forwards", "add_seconds"):
            timings[key] = round(sum(t[key] for _, t in outcomes), 2)
    return sum(count for count, _ in outcomes)


def refine_one_shard(cam_dir: Path, shard: Path, output: Path, settings: CaaSettings, compression: str | None, overlap: bool) -> int:
    """One refined shard (same index as its CAM shard) through the stage's `RefineStored`; returns images."""
    cams = CamStore(cam_dir)
    compute = RefineStored(cam_dir, settings)
    root = cams.root_attrs(shard)
    writer_shard = ShardWriter(shard_path(output, int(root["shard_index"])), {"stage": "refine"}, compression=compression)
    with BackgroundShardWriter(writer_shard) if overlap else writer_shard as writer:
        for image_id in root["image_ids"]:
            result = compute(image_id)
            writer.add(image_id, result.arrays, result.attrs, result.dtypes)
    return len(root["image_ids"])


def write_refined_shards(
    cam_dir: Path, output: Path, settings: CaaSettings, compression: str | None, overlap: bool = True, pool: ShardPool | None = None
) -> int:
    """The refine stage: CAA of every stored image to full resolution, same shard indices; returns
    images. With `overlap` each shard is written by a `BackgroundShardWriter`, as the stage does;
    with a `pool` the shards run on its worker processes."""
    shards = CamStore(cam_dir).shards
    arguments = [(cam_dir, shard, output, settings, compression, overlap) for shard in shards]
    if pool is None:
        return sum(refine_one_shard(*args) for args in arguments)
    return sum(pool.executor.map(refine_one_shard, *zip(*arguments, strict=True)))


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.h5"))


def cams_then_refine(
    extractor: ClipEsCamExtractor,
    images: Sequence[StageImage],
    root: Path,
    workdir: Path,
    store: StoreSettings | None = None,
    caa: CaaSettings | None = None,
    deadline: float | None = None,
    overlap: bool = True,
    decode_workers: int = 1,
    pool: ShardPool | None = None,
    cams_pool: ShardPool | None = None,
) -> dict[str, Any]:
    """Run cams then refine on `images` under `root`, writing stores into `workdir`; return the figures.

    images/s counts decode, resize, normalisation, the model, CAA and the HDF5 writes of both
    stages (the stages run one after the other, as `dvc repro` runs them).
    """
    store = store or StoreSettings()
    caa = caa or CaaSettings()
    cam_dir, refined_dir = workdir / "cams", workdir / "refined"
    synchronize = torch.cuda.synchronize if extractor.device.type == "cuda" else (lambda: None)
    started = time.perf_counter()
    timings: dict[str, Any] = {}
    count = write_cam_shards(extractor, images, root, cam_dir, store, deadline, overlap, decode_workers, timings, cams_pool)
    synchronize()
    cams_seconds = time.perf_counter() - started
    started = time.perf_counter()
    refined = write_refined_shards(cam_dir, refined_dir, caa, store.compression, overlap and REFINE_OVERLAP_IO, pool)
    if caa.device.startswith("cuda"):
        torch.cuda.synchronize()
    refine_seconds = time.perf_counter() - started
    if refined != count:
        raise RuntimeError(f"refine wrote {refined} images, cams {count}")
    return {
        "images": count,
        "images_requested": len(images),
        "batch_size": extractor.settings.batch_size,
        "overlap_io": overlap,
        "decode_workers": decode_workers,
        "caa_device": caa.device,
        "refine_processes": pool.workers if pool is not None else 1,
        "cams_processes": cams_pool.workers if cams_pool is not None else 1,
        "compression": store.compression,
        "images_per_shard": store.images_per_shard,
        "cams_seconds": round(cams_seconds, 2),
        "refine_seconds": round(refine_seconds, 2),
        "cams_images_per_s": round(count / cams_seconds, 2),
        "refine_images_per_s": round(count / refine_seconds, 2),
        "images_per_s": round(count / (cams_seconds + refine_seconds), 2),
        "cams_bytes_per_image": round(_bytes(cam_dir) / max(count, 1)),
        "refined_bytes_per_image": round(_bytes(refined_dir) / max(count, 1)),
        "refine_torch_threads": torch.get_num_threads(),
        "cams_breakdown_s": timings,
    }
