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

from tasks.cams import PreviousOutputs, ShardOutcome, publish_shards, reusable_shard, scratch_directory, shard_run_summary
from tasks.common import Progress
from wsss.cam import CaaSettings, refine_image
from wsss.datasets import file_sha256
from wsss.incremental import CONTENT_KEY_ATTR, content_key, reusable_ids, shard_is_current, stage_identity, stored_keys
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


def refine_into_store(
    cam_dir: Path,
    output: Path,
    attributes: Mapping[str, Any],
    settings: CaaSettings,
    compression: str,
    stage: str,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Refine every shard of the CAM store `cam_dir` into the store `output` (same shard indices).

    An image's key is the refine identity plus its CAM content key (the CAM shard's hash for
    stores without keys), so shards whose images all kept their keys are left as they are and
    unchanged images are copied. Returns `shard_run_summary`.
    """
    cams = CamStore(cam_dir)
    shards = sorted(cam_dir.glob("shard-*.h5"))
    # The CAM content key already covers everything upstream; the shard-0 summary does not.
    identity = {k: v for k, v in stage_identity(attributes).items() if k != "upstream_cams"}
    cam_keys = stored_keys(cam_dir)
    previous = stored_keys(output)
    scratch = scratch_directory(stage, {**attributes, "cams": [file_sha256(p) for p in shards]})
    outcomes, untouched, planned = [], [], []
    for path in shards:
        root = cams.root_attrs(path)
        index, ids = int(root["shard_index"]), list(root["image_ids"])
        planned.append(shard_path(output, index).name)
        expected = {i: content_key(identity, cams_key=cam_keys[i].key or f"file:{file_sha256(path)}") for i in ids}
        if shard_is_current(shard_path(output, index), expected, previous):
            untouched.append(shard_path(output, index).name)
        else:
            outcomes.append(refine_shard(
                cams, ids, index, scratch, attributes, settings, compression, expected, reusable_ids(expected, previous)
            ))
        if progress:
            progress.step(len(ids))
    written = publish_shards([o.path for o in outcomes], output, planned, scratch)
    return shard_run_summary(written, untouched, outcomes)
