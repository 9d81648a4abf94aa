"""Part 3 of the GPU check: the cams and refine stages' per-image work end to end, without Prefect/DVC.

`cams_then_refine` does, for a folder of JPEGs, what the stage entries `tasks/cams.py::run_cams`
and `tasks/refine.py::run_refine` do per image (their `ExtractImage` / refine callbacks under the
sharded engine `wsss.incremental.run_sharded`), with the same library calls and the stage's
settings (`StoreSettings` / `CaaSettings` defaults unless given):

* cams: `wsss.imaging.load_rgb` -> `ClipEsCamExtractor.prepare` -> `extract_batch(refine=False)`
  (images batched by size bucket, `CamSettings.batch_size`) -> `wsss.io.ShardWriter.add` of
  `gradcam` / `attention` with the stage's dtypes and compression;
* refine: `wsss.io.CamStore.read` -> `wsss.cam.refine_image` (on the CPU, as the stage runs it)
  -> `ShardWriter.add` of `refined`.

It calls the core directly, not the stage entries: `tasks/` imports Prefect (through
`tasks/runtime.py`), which the GPU machine does not have, and the engine's per-image callback
would hide what batching (`extract_batch`, `cam.batch_size`) gains on a GPU, which is what this
part measures. Shards are written as the stages write them (`ShardWriter`: in memory, one atomic write;
with `overlap`, the stages' default `runner.overlap_io`, decode runs ahead on a thread and shards
are compressed and written on another).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wsss.cam import CaaSettings, ClipEsCamExtractor, PreparedImage, refine_image
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


def write_cam_shards(
    extractor: ClipEsCamExtractor,
    images: Sequence[StageImage],
    root: Path,
    output: Path,
    store: StoreSettings,
    deadline: float | None = None,
    overlap: bool = True,
) -> int:
    """The cams stage: Grad-CAM + mean attention of every image into shards; returns images written.

    Through `wsss.cam.streaming.stream_cams`, as `tasks/cams.py::ExtractImage.stream` under the
    engine: consecutive `batch_size` images per `extract_batch`; with `overlap` (`runner.overlap_io`,
    the stage's default) the next images are decoded on a thread and the shard is compressed and
    written by a `BackgroundShardWriter`. A `deadline` (perf_counter seconds) stops after the batch
    that passes it, closing the shard normally.
    """
    dtypes = {"gradcam": np.dtype(store.gradcam_dtype), "attention": np.dtype(store.attention_dtype)}
    by_id = {item.image_id: item for item in images}
    batch_size = extractor.settings.batch_size

    def load(item: StageImage) -> tuple[PreparedImage, tuple[int, ...]]:
        return extractor.prepare(load_rgb(safe_join(root, item.path))), item.class_ids

    written = 0
    for index, ids in assign_shards(list(by_id), store.images_per_shard).items():
        if written and deadline is not None and time.perf_counter() > deadline:
            break
        shard = ShardWriter(shard_path(output, index), {"stage": "cams"}, compression=store.compression)
        with BackgroundShardWriter(shard) if overlap else shard as writer:
            results = stream_cams(extractor, [by_id[i] for i in ids], load, batch_size, overlap)
            for position, (item, result) in enumerate(results, 1):
                if isinstance(result, Exception):
                    raise result
                attrs = {
                    "class_ids": result.class_ids,
                    "tags": list(item.tags),
                    "original_size": list(result.original_size),
                    "grid": list(result.grid),
                    "tag_probabilities": result.tag_probabilities,
                    "source_path": item.path,
                    "source_sha256": item.sha256,
                }
                writer.add(item.image_id, {"gradcam": result.gradcam, "attention": result.attention}, attrs, dtypes)
                written += 1
                # Between batches only: a batch's forward is never thrown away.
                if position % batch_size == 0 and deadline is not None and time.perf_counter() > deadline:
                    results.close()
                    break
    return written


def write_refined_shards(cam_dir: Path, output: Path, settings: CaaSettings, compression: str | None, overlap: bool = True) -> int:
    """The refine stage: CAA of every stored image to full resolution, same shard indices; returns
    images. With `overlap` the shard is written by a `BackgroundShardWriter`, as the stage does."""
    cams = CamStore(cam_dir)
    written = 0
    for path in cams.shards:
        root = cams.root_attrs(path)
        shard = ShardWriter(shard_path(output, int(root["shard_index"])), {"stage": "refine"}, compression=compression)
        with BackgroundShardWriter(shard) if overlap else shard as writer:
            for image_id in root["image_ids"]:
                stored = cams.read(image_id, ["gradcam", "attention"])
                height, width = (int(v) for v in stored.attrs["original_size"])
                refined = refine_image(
                    torch.from_numpy(stored.arrays["gradcam"]),
                    torch.from_numpy(stored.arrays["attention"]),
                    (height, width),
                    settings,
                )
                attrs = {k: stored.attrs[k] for k in ("class_ids", "tags", "original_size", "source_path", "source_sha256")}
                writer.add(image_id, {"refined": refined.numpy()}, attrs)
                written += 1
    return written


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
    count = write_cam_shards(extractor, images, root, cam_dir, store, deadline, overlap)
    synchronize()
    cams_seconds = time.perf_counter() - started
    started = time.perf_counter()
    refined = write_refined_shards(cam_dir, refined_dir, caa, store.compression, overlap)
    refine_seconds = time.perf_counter() - started
    if refined != count:
        raise RuntimeError(f"refine wrote {refined} images, cams {count}")
    return {
        "images": count,
        "images_requested": len(images),
        "batch_size": extractor.settings.batch_size,
        "overlap_io": overlap,
        "compression": store.compression,
        "cams_seconds": round(cams_seconds, 2),
        "refine_seconds": round(refine_seconds, 2),
        "cams_images_per_s": round(count / cams_seconds, 2),
        "refine_images_per_s": round(count / refine_seconds, 2),
        "images_per_s": round(count / (cams_seconds + refine_seconds), 2),
        "cams_bytes_per_image": round(_bytes(cam_dir) / max(count, 1)),
        "refined_bytes_per_image": round(_bytes(refined_dir) / max(count, 1)),
        "refine_torch_threads": torch.get_num_threads(),
    }
