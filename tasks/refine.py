"""refine: CAA refinement from the stored Grad-CAM maps and attention, without CLIP."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from prefect import task
from prefect.cache_policies import NONE

from tasks.cams import reusable_shard
from tasks.common import Progress
from wsss.cam import CaaSettings, refine_image
from wsss.io import CamStore, ShardWriter, shard_path


@task(cache_policy=NONE, retries=1, retry_delay_seconds=2)
def refine_shard(
    cams: CamStore,
    image_ids: Sequence[str],
    shard_index: int,
    scratch: Path,
    root_attrs: Mapping[str, Any],
    settings: CaaSettings,
    compression: str,
    progress: Progress | None = None,
) -> Path:
    """Write one shard of full-resolution refined maps (float16), same images as the CAM shard."""
    target = shard_path(scratch, shard_index)
    if reusable_shard(target, image_ids):
        if progress:
            progress.step(len(image_ids))
        return target
    with ShardWriter(target, dict(root_attrs), compression=compression) as writer:
        for image_id in image_ids:
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
            if progress:
                progress.step()
    return target
