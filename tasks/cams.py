"""cams: Grad-CAM maps + attention affinity per image into sharded HDF5 (what CAA needs, no CLIP).

Incremental: every image carries a `content_key` (stage identity + its bytes, tags and path,
see `wsss.incremental`); a shard whose images all kept their keys is left untouched, and inside a
rewritten shard unchanged images are copied from the previous store instead of recomputed.
Shards are first written to a scratch folder keyed by everything that determines their content
(params, manifest, weights, template); finished shards found there are reused, so an interrupted
run resumes shard by shard. One task writes one shard file (one writer per file), so shards can
run on different Dask workers.
"""

from __future__ import annotations

import hashlib
import pickle
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from prefect import task
from prefect.cache_policies import NONE

from tasks.clip_model import extractor_for
from tasks.common import SCRATCH, Progress
from wsss.cam import ClipEsCamExtractor
from wsss.cam.extractor import LearnedBackground
from wsss.clip import load_clip
from wsss.config import CoreConfig, StoreSettings
from wsss.datasets import ImageRecord, Manifest, safe_join
from wsss.errors import StoreError
from wsss.imaging import load_rgb
from wsss.incremental import CONTENT_KEY_ATTR, record_keys, reusable_ids, shard_is_current, stage_identity, stale_shards, stored_keys
from wsss.io import CamStore, ShardWriter, assign_shards, shard_path
from wsss.io.shard_assignment import assign_shards_by_hash
from wsss.io.shard_writer import publish_copy
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


@dataclass(frozen=True)
class ExtractorSpec:
    """What a worker needs to build the stage's extractor itself (a model is never shipped)."""

    config: CoreConfig
    manifest: Manifest
    template: str
    learned: LearnedBackground | None = None  # SemPLeS background prompts (second CAM pass)

    def cache_key(self) -> str:
        identity = (self.config, self.manifest.class_names, self.template, self.learned)
        return hashlib.sha256(pickle.dumps(identity)).hexdigest()


# One extractor per process: Dask workers load CLIP once and keep it for every later shard.
_EXTRACTORS: dict[str, ClipEsCamExtractor] = {}


def remember_extractor(spec: ExtractorSpec, extractor: ClipEsCamExtractor) -> None:
    """Let tasks in this process use an extractor the flow has already built."""
    _EXTRACTORS.clear()
    _EXTRACTORS[spec.cache_key()] = extractor


def worker_extractor(spec: ExtractorSpec) -> ClipEsCamExtractor:
    """The process's extractor for `spec`, loading CLIP on first use."""
    key = spec.cache_key()
    if key not in _EXTRACTORS:
        clip = load_clip(spec.config.clip, spec.config.device, spec.config.precision)
        remember_extractor(spec, extractor_for(spec.config, clip, spec.manifest, (spec.template,), spec.learned))
    return _EXTRACTORS[key]


@dataclass(frozen=True)
class ShardOutcome:
    """One written shard: its scratch file, and which images were computed or copied."""

    path: Path
    computed: tuple[str, ...]
    reused: tuple[str, ...] = field(default_factory=tuple)


class PreviousOutputs:
    """Reads images of the previous store, opening each store directory once."""

    def __init__(self) -> None:
        self._stores: dict[Path, CamStore] = {}

    def read(self, shard: Path, image_id: str, names: Sequence[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        store = self._stores.setdefault(shard.parent, CamStore(shard.parent))
        stored = store.read(image_id, list(names), keep_dtype=True)
        return dict(stored.arrays), dict(stored.attrs)


@task(cache_policy=NONE, retries=1, retry_delay_seconds=2)
def extract_shard(
    spec: ExtractorSpec,
    records: Sequence[ImageRecord],
    root: Path,
    shard_index: int,
    scratch: Path,
    root_attrs: Mapping[str, Any],
    store: StoreSettings,
    keys: Mapping[str, str],
    reuse: Mapping[str, Path],
) -> ShardOutcome:
    """Write one shard of Grad-CAM maps and mean attention (dtypes from `store`) to scratch.

    Images listed in `reuse` (id -> previous shard with an equal content key) are copied,
    the others computed with the process's extractor (loaded on first use).
    """
    target = shard_path(scratch, shard_index)
    ids = [r.image_id for r in records]
    if reusable_shard(target, ids):
        return ShardOutcome(target, (), tuple(ids))
    dtypes = {"gradcam": np.dtype(store.gradcam_dtype), "attention": np.dtype(store.attention_dtype)}
    previous = PreviousOutputs()
    computed, copied = [], []
    with ShardWriter(target, {**root_attrs}, compression=store.compression) as writer:
        for record in records:
            if record.image_id in reuse:
                arrays, attrs = previous.read(reuse[record.image_id], record.image_id, ("gradcam", "attention"))
                writer.add(record.image_id, arrays, attrs, {name: a.dtype for name, a in arrays.items()})
                copied.append(record.image_id)
                continue
            extractor = worker_extractor(spec)
            image = load_rgb(safe_join(root, record.image_path))
            result = extractor.extract(image, [extractor.vocabulary.class_id(tag) for tag in record.tags], refine=False)
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
                    CONTENT_KEY_ATTR: keys[record.image_id],
                },
                dtypes,
            )
            computed.append(record.image_id)
    return ShardOutcome(target, tuple(computed), tuple(copied))


def extract_into_store(
    spec: ExtractorSpec,
    records: Sequence[ImageRecord],
    root: Path,
    output: Path,
    attributes: Mapping[str, Any],
    store: StoreSettings,
    stage: str,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Every shard of `records` into the store `output`, through the flow's task runner.

    Shards whose images all kept their content keys are left as they are; the others are
    written (unchanged images copied) by `extract_shard` tasks, then published. Must run
    inside a flow. Returns `shard_run_summary`.
    """
    keys = record_keys(records, stage_identity(attributes))
    previous = stored_keys(output)
    scratch = scratch_directory(stage, attributes)
    plan = shard_plan(records, store.images_per_shard, store.shard_count)
    futures, untouched = [], []
    for index, shard_records in plan.items():
        expected = {r.image_id: keys[r.image_id] for r in shard_records}
        if shard_is_current(shard_path(output, index), expected, previous):
            untouched.append(shard_path(output, index).name)
            if progress:
                progress.step(len(shard_records))
            continue
        futures.append(extract_shard.submit(
            spec, shard_records, root, index, scratch, attributes, store, expected, reusable_ids(expected, previous)
        ))
    outcomes = []
    for future in futures:
        outcomes.append(future.result())
        if progress:
            progress.step(len(outcomes[-1].computed) + len(outcomes[-1].reused))
    written = publish_shards([o.path for o in outcomes], output, [shard_path(output, i).name for i in plan], scratch)
    return shard_run_summary(written, untouched, outcomes)


def shard_run_summary(written: Sequence[Path], untouched: Sequence[str], outcomes: Sequence[ShardOutcome]) -> dict[str, Any]:
    """What a sharded stage run did: shard files written and left as they were, images computed and copied."""
    return {
        "written": sorted(str(p) for p in written),
        "untouched": list(untouched),
        "computed": sorted(i for o in outcomes for i in o.computed),
        "copied": sorted(i for o in outcomes for i in o.reused),
    }


def shard_plan(records: Sequence[ImageRecord], images_per_shard: int, shard_count: int | None = None) -> dict[int, list[ImageRecord]]:
    """Shard index -> its records in id order: by stable hash with `shard_count`, else by position."""
    by_id = {r.image_id: r for r in records}
    groups = assign_shards_by_hash(by_id, shard_count) if shard_count else assign_shards(sorted(by_id), images_per_shard)
    return {index: [by_id[i] for i in ids] for index, ids in groups.items()}


@task(cache_policy=NONE, retries=2, retry_delay_seconds=1)
def publish_shards(shards: Sequence[Path], output: Path, keep: Sequence[str] | None = None, scratch: Path | None = None) -> list[Path]:
    """Copy finished shards into the stage output, then drop the scratch folder.

    Args:
        keep: names of every shard the current plan holds; other shard files in `output`
            (their images were removed) are deleted. None keeps everything.
        scratch: the run's scratch folder, removed even when no shard had to be written.
    """
    output.mkdir(parents=True, exist_ok=True)
    published = []
    for shard in shards:
        published.append(publish_copy(shard, output / shard.name))
    if keep is not None:
        for stale in stale_shards(output, [output / name for name in keep]):
            stale.unlink()
    for directory in {s.parent for s in shards} | ({scratch} if scratch else set()):
        shutil.rmtree(directory, ignore_errors=True)
    return published
