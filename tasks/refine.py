"""refine: CAA refinement from the stored Grad-CAM maps and attention, without CLIP.

Refined shards mirror the CAM shards (same index, same images). An image's refined maps are
keyed by the refine identity and its CAM content key, so unchanged images are copied from the
previous refined store and a shard whose images all kept their keys is not rewritten.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from prefect import task
from prefect.cache_policies import NONE

from tasks.cams import PreviousOutputs, ShardOutcome, reusable_shard
from wsss.cam import CaaSettings, refine_image
from wsss.incremental import CONTENT_KEY_ATTR
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
    keys: Mapping[str, str] | None = None,
    reuse: Mapping[str, Path] | None = None,
) -> ShardOutcome:
    """Write one shard of full-resolution refined maps (float16), same images as the CAM shard.

    Images in `reuse` (id -> previous refined shard with an equal key) are copied, not refined.
    """
    target = shard_path(scratch, shard_index)
    if reusable_shard(target, image_ids):
        return ShardOutcome(target, (), tuple(image_ids))
    keys, reuse = keys or {}, reuse or {}
    previous = PreviousOutputs()
    computed, copied = [], []
    with ShardWriter(target, dict(root_attrs), compression=compression) as writer:
        for image_id in image_ids:
            if image_id in reuse:
                arrays, attrs = previous.read(reuse[image_id], image_id, ("refined",))
                writer.add(image_id, arrays, attrs, {name: a.dtype for name, a in arrays.items()})
                copied.append(image_id)
                continue
            stored = cams.read(image_id, ["gradcam", "attention"])
            height, width = (int(v) for v in stored.attrs["original_size"])
            refined = refine_image(
                torch.from_numpy(stored.arrays["gradcam"]),
                torch.from_numpy(stored.arrays["attention"]),
                (height, width),
                settings,
            )
            attrs = {k: stored.attrs[k] for k in ("class_ids", "tags", "original_size", "source_path", "source_sha256")}
            if image_id in keys:
                attrs[CONTENT_KEY_ATTR] = keys[image_id]
            writer.add(image_id, {"refined": refined.numpy()}, attrs)
            computed.append(image_id)
    return ShardOutcome(target, tuple(computed), tuple(copied))
