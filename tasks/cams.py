"""cams: Grad-CAM maps + attention affinity per image into sharded HDF5 (what CAA needs, no CLIP).

Shards are first written to a scratch folder keyed by everything that determines their content
(params, manifest, weights, template); finished shards found there are reused, so an interrupted
run resumes shard by shard even though DVC empties the stage output before running it.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from prefect import task
from prefect.cache_policies import NONE

from tasks.common import SCRATCH, Progress
from wsss.cam import ClipEsCamExtractor
from wsss.config import StoreSettings
from wsss.datasets import ImageRecord, safe_join
from wsss.errors import StoreError
from wsss.imaging import load_rgb
from wsss.io import CamStore, ShardWriter, assign_shards, shard_path
from wsss.provenance import sha256_of


def scratch_directory(stage: str, root_attrs: Mapping[str, Any]) -> Path:
    """Where a run with these attributes keeps its finished shards until the stage completes."""
    key = {k: v for k, v in root_attrs.items() if k not in ("code_version", "flow_run_id")}
    return SCRATCH / f"{stage}-{sha256_of(key)[:16]}"


def reusable_shard(path: Path, image_ids: Sequence[str]) -> bool:
    """A finished scratch shard holding exactly these images.

    Shards only appear by atomic rename once complete, so a readable file whose root `image_ids`
    match is a finished one; an unreadable file is simply rewritten.
    """
    if not path.is_file():
        return False
    try:
        return list(CamStore(path.parent).root_attrs(path).get("image_ids", [])) == list(image_ids)
    except StoreError:
        return False


@task(cache_policy=NONE, retries=1, retry_delay_seconds=2)
def extract_shard(
    extractor: ClipEsCamExtractor,
    records: Sequence[ImageRecord],
    root: Path,
    shard_index: int,
    scratch: Path,
    root_attrs: Mapping[str, Any],
    store: StoreSettings,
    progress: Progress | None = None,
) -> Path:
    """Write one shard of Grad-CAM maps and mean attention (dtypes from `store`) to scratch."""
    target = shard_path(scratch, shard_index)
    if reusable_shard(target, [r.image_id for r in records]):
        if progress:
            progress.step(len(records))
        return target
    vocabulary = extractor.vocabulary
    dtypes = {"gradcam": np.dtype(store.gradcam_dtype), "attention": np.dtype(store.attention_dtype)}
    with ShardWriter(target, {**root_attrs}, compression=store.compression) as writer:
        for record in records:
            image = load_rgb(safe_join(root, record.image_path))
            ids = [vocabulary.class_id(tag) for tag in record.tags]
            result = extractor.extract(image, ids, refine=False)
            writer.add(
                record.image_id,
                {"gradcam": result.gradcam, "attention": result.attention},
                {
                    "class_ids": result.class_ids,
                    "tags": list(record.tags),
                    "original_size": list(result.original_size),
                    "grid": list(result.grid),
                    "tag_probabilities": result.tag_probabilities,
                    "source_path": record.image_path,
                    "source_sha256": record.sha256,
                },
                dtypes,
            )
            if progress:
                progress.step()
    return target


def shard_plan(records: Sequence[ImageRecord], images_per_shard: int) -> dict[int, list[ImageRecord]]:
    by_id = {r.image_id: r for r in records}
    return {index: [by_id[i] for i in ids] for index, ids in assign_shards(sorted(by_id), images_per_shard).items()}


@task(cache_policy=NONE, retries=2, retry_delay_seconds=1)
def publish_shards(shards: Sequence[Path], output: Path) -> list[Path]:
    """Copy finished shards into the stage output, then drop the scratch folder."""
    output.mkdir(parents=True, exist_ok=True)
    published = []
    for shard in shards:
        destination = output / shard.name
        shutil.copyfile(shard, destination.with_name(destination.name + ".partial"))
        destination.with_name(destination.name + ".partial").replace(destination)
        published.append(destination)
    scratch_dirs = {s.parent for s in shards}
    for directory in scratch_dirs:
        shutil.rmtree(directory, ignore_errors=True)
    return published
