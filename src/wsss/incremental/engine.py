"""The sharded incremental engine of the HDF5 stages (`cams`, `refine`, and both for the second pass).

A stage hands the engine its shard plan (shard index -> image ids), every image's content key,
the root attributes and a per-image `compute` callback; the engine decides what to do:

* a shard whose file already holds exactly its images under their keys, and records the same
  params, is left untouched (a change of a key that is not part of the reuse keys, such as the
  codec or the shard size, rewrites the shard by copying its arrays, without computing);
* every other shard is one job: unchanged images are copied from the previous store, the rest
  computed, into a scratch folder keyed by the stage identity and the keys (a killed run resumes
  shard by shard: a finished scratch shard is reused);
* finished shards are then published into the store (atomic renames, `publish_move`), shards of removed images
  deleted, the scratch folder dropped.

Jobs go through `submit` (injected by the caller: the task runner's `.submit`, e.g. onto Dask
workers, so the core never imports an orchestrator); one job writes one shard file. An image
whose input cannot be read (`ImageError`, `DatasetError`) is left out of its shard and reported
as failed; the others proceed.

A callback with a `stream(ids, overlap)` method computes a shard's images together (the `cams`
stage: decode prefetched on a thread, batches by size bucket); with `overlap` the shard is
written by a `BackgroundShardWriter`, so compression and checksums run while the next images
are computed. With image processes (`ShardJob.processes`, `runner.image_processes`) a streamed
image is encoded on them (`wsss.io.shard_encoding`), and a plain callback (`refine`) runs there
whole, a few images per task, computing and encoding; this process only places the finished
chunks in order. None of this changes a stored value: images are added in the same order with
the same bytes (tests/unit/test_engine_processes.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from wsss.errors import DatasetError, ImageError, StoreError
from wsss.incremental.keys import CONTENT_KEY_ATTR, reusable_ids, shard_is_current, stored_keys
from wsss.incremental.shard_files import publish, records_params
from wsss.io import CamStore, ShardWriter, shard_path
from wsss.io.pipelining import BackgroundShardWriter, image_processes, prefetch
from wsss.io.shard_encoding import EncodedImage, encode_image
from wsss.io.shard_writer import storage_array
from wsss.io.shared_arrays import MIN_SHARED_BYTES, shared
from wsss.stage_result import StageResult

# Per-image problems that cost the image, not the run.
IMAGE_FAILURES = (ImageError, DatasetError)
# Images per task of a plain callback on image processes (amortises shipping the callback), and
# tasks in flight per process (bounds the encoded images held in memory, ~0.5 MB each).
IMAGES_PER_TASK = 4
TASKS_AHEAD_PER_PROCESS = 2


@dataclass(frozen=True)
class ImageOutput:
    """One image's arrays and attributes as the compute callback returns them (`dtypes`: storage dtypes)."""

    arrays: Mapping[str, np.ndarray]
    attrs: Mapping[str, Any]
    dtypes: Mapping[str, Any] | None = None


class ImageCompute(Protocol):
    """Per-image callback (picklable: it may run on another process or machine). A callback with a
    `for_images(ids)` method is narrowed to each shard's images before it is shipped."""

    def __call__(self, image_id: str) -> ImageOutput: ...


class StreamingCompute(ImageCompute, Protocol):
    """A callback that computes many images at once (prefetch, batches), yielding them in input order."""

    def stream(self, image_ids: Sequence[str], overlap: bool) -> Iterator[tuple[str, ImageOutput | Exception]]:
        """`(id, output)` per image in the order given; an image that cannot be read yields its
        `IMAGE_FAILURES` error instead of an output."""
        ...


class StageReport(Protocol):
    """Progress hook of a stage entry: told about images as their shards finish."""

    def start(self, total: int) -> None: ...

    def advance(self, image_ids: Sequence[str], outcome: str) -> None:
        """`outcome`: "computed", "copied", "untouched" or "failed"."""


class SilentReport:
    """A report that says nothing (library use, tests)."""

    def start(self, total: int) -> None:
        pass

    def advance(self, image_ids: Sequence[str], outcome: str) -> None:
        pass


@dataclass(frozen=True)
class ShardJob:
    """Everything one shard's writer needs (picklable)."""

    index: int
    keys: Mapping[str, str]  # image id -> content key
    reuse: Mapping[str, Path]  # image id -> previous shard holding it under the same key
    target: Path  # the scratch shard to write
    root_attrs: Mapping[str, Any]
    compression: str
    copied_arrays: tuple[str, ...]  # what a reused image carries over
    overlap: bool = False  # background writer, and prefetch in a streaming callback
    processes: int = 0  # image processes computing/encoding beside this one (0: all here)


@dataclass(frozen=True)
class ShardOutcome:
    """One shard job's result: the scratch file (None when every image failed) and image counts."""

    path: Path | None
    computed: tuple[str, ...] = ()
    copied: tuple[str, ...] = ()
    failed: Mapping[str, str] = field(default_factory=dict)


class Finished:
    """A job already run, shaped like a future (for callers without a task runner)."""

    def __init__(self, value: ShardOutcome) -> None:
        self.value = value

    def result(self) -> ShardOutcome:
        return self.value


Submit = Callable[[ShardJob, ImageCompute], Any]  # returns something with .result() -> ShardOutcome


def run_now(job: ShardJob, compute: ImageCompute) -> Finished:
    """`submit` that writes the shard in this process, at once."""
    return Finished(write_shard(job, compute))


@dataclass(frozen=True)
class StageSummary:
    """What a sharded stage run did."""

    written: tuple[str, ...]  # shard files published by this run
    untouched: tuple[str, ...]  # shard file names left as they were
    computed: tuple[str, ...]
    copied: tuple[str, ...]
    failed: Mapping[str, str] = field(default_factory=dict)  # image id -> reason

    kept: tuple[str, ...] = ()  # images of the untouched shards

    def as_dict(self) -> dict[str, Any]:
        return {
            "written": list(self.written),
            "untouched": list(self.untouched),
            "computed": list(self.computed),
            "copied": list(self.copied),
            "failed": dict(self.failed),
        }

    def result(self, stage: str) -> StageResult:
        """The stage entry's result: reused = copied into a new shard or kept in an untouched one."""
        return StageResult(
            stage,
            self.computed,
            tuple(sorted((*self.copied, *self.kept))),
            dict(self.failed),
            written=self.written,
            details={"copied": list(self.copied), "untouched": list(self.untouched)},
        )


def _finished_scratch_shard(path: Path, image_ids: Sequence[str]) -> bool:
    """A shard only appears by atomic rename once complete, so a readable one with these ids is done."""
    if not path.is_file():
        return False
    try:
        return list(CamStore(path.parent).root_attrs(path).get("image_ids", [])) == list(image_ids)
    except StoreError:
        return False


def write_shard(job: ShardJob, compute: ImageCompute) -> ShardOutcome:
    """Write one shard to scratch: reused images copied, the others computed (failures left out)."""
    ids = sorted(job.keys)
    if _finished_scratch_shard(job.target, ids):
        return ShardOutcome(job.target, copied=tuple(ids))
    computed, copied, failed = [], [], {}
    stores: dict[Path, CamStore] = {}
    todo = [i for i in ids if i not in job.reuse]
    outputs = _computed_outputs(todo, compute, job) if job.processes else _computed_here(todo, compute, job.overlap)
    try:
        writer = ShardWriter(job.target, dict(job.root_attrs), compression=job.compression)
        background = job.overlap or (job.processes and hasattr(compute, "stream"))
        ahead = max(8, TASKS_AHEAD_PER_PROCESS * job.processes)
        with BackgroundShardWriter(writer, max_pending=ahead) if background else writer as sink:
            for image_id in ids:
                if image_id in job.reuse:
                    store = stores.setdefault(job.reuse[image_id].parent, CamStore(job.reuse[image_id].parent))
                    stored = store.read(image_id, list(job.copied_arrays), keep_dtype=True)
                    sink.add(image_id, stored.arrays, stored.attrs, {n: a.dtype for n, a in stored.arrays.items()})
                    copied.append(image_id)
                    continue
                output = next(outputs)
                if isinstance(output, Exception):
                    failed[image_id] = str(output)
                    continue
                if isinstance(output, (EncodedImage, Future)):
                    sink.add_encoded(image_id, output)  # type: ignore[arg-type]
                else:
                    sink.add(image_id, output.arrays, {**output.attrs, CONTENT_KEY_ATTR: job.keys[image_id]}, output.dtypes)
                computed.append(image_id)
    finally:
        outputs.close()  # stops a streaming callback's prefetch when the shard failed half-way
        close = getattr(compute, "close", None)
        if close is not None:
            close()  # e.g. the input shard a narrowed refine callback kept open
    if not computed and not copied:
        job.target.unlink(missing_ok=True)
        return ShardOutcome(None, failed=failed)
    return ShardOutcome(job.target, tuple(computed), tuple(copied), failed)


def _computed_here(image_ids: Sequence[str], compute: ImageCompute, overlap: bool) -> Generator[ImageOutput | Exception, None, None]:
    """Each image's output (or its `IMAGE_FAILURES` error) in order, computed in this process:
    streamed when the callback can."""
    stream = getattr(compute, "stream", None)
    if stream is not None:
        for expected, (image_id, output) in zip(image_ids, stream(image_ids, overlap), strict=True):
            if image_id != expected:
                raise StoreError(f"streamed output for {image_id!r} where {expected!r} was due")
            yield output
        return
    for image_id in image_ids:
        try:
            yield compute(image_id)
        except IMAGE_FAILURES as error:
            yield error


def _computed_outputs(
    image_ids: Sequence[str], compute: ImageCompute, job: ShardJob
) -> Generator[Future[EncodedImage] | EncodedImage | Exception, None, None]:
    """Each image's encoded entry (or its `IMAGE_FAILURES` error) in order, with image processes:
    a streamed output is encoded there (a future, placed by the background writer in its turn);
    a plain callback runs there whole, `IMAGES_PER_TASK` images per task."""
    pool = image_processes(job.processes)
    if hasattr(compute, "stream"):
        for image_id, output in zip(image_ids, _computed_here(image_ids, compute, job.overlap), strict=True):
            if isinstance(output, Exception):
                yield output
                continue
            attrs = {**output.attrs, CONTENT_KEY_ATTR: job.keys[image_id]}
            yield pool.submit(encode_image, image_id, _portable(image_id, output), attrs, output.dtypes, job.compression)
        return
    tasks = [[(i, job.keys[i]) for i in image_ids[start : start + IMAGES_PER_TASK]] for start in range(0, len(image_ids), IMAGES_PER_TASK)]
    work = functools.partial(compute_encoded, compute, job.compression)
    for _, results in prefetch(tasks, work, depth=TASKS_AHEAD_PER_PROCESS * job.processes, pool=pool):
        yield from results


def _portable(image_id: str, output: ImageOutput) -> dict[str, Any]:
    """The arrays of a streamed output as they go to an image process: large ones cast to their
    storage dtype here (the cast `add` makes; half the bytes of float32 attention to move) and
    moved through shared memory."""
    dtypes = output.dtypes or {}
    return {
        name: shared(storage_array(f"image {image_id!r}: array", name, array, dtypes.get(name)))
        if np.asarray(array).nbytes >= MIN_SHARED_BYTES
        else array
        for name, array in output.arrays.items()
    }


def compute_encoded(compute: ImageCompute, compression: str, images: Sequence[tuple[str, str]]) -> list[EncodedImage | Exception]:
    """On an image process: a few images computed and encoded for their shard (id, content key),
    an unreadable one as its error."""
    results: list[EncodedImage | Exception] = []
    try:
        for image_id, key in images:
            try:
                output = compute(image_id)
            except IMAGE_FAILURES as error:
                results.append(error)
                continue
            results.append(encode_image(image_id, output.arrays, {**output.attrs, CONTENT_KEY_ATTR: key}, output.dtypes, compression))
    finally:
        close = getattr(compute, "close", None)
        if close is not None:
            close()
    return results


def run_sharded(
    plan: Mapping[int, Sequence[str]],
    keys: Mapping[str, str],
    output: Path,
    scratch: Path,
    root_attrs: Mapping[str, Any],
    compute: ImageCompute,
    *,
    compression: str,
    copied_arrays: Sequence[str],
    overlap: bool = False,
    processes: int = 0,
    submit: Submit = run_now,
    report: StageReport | None = None,
) -> StageSummary:
    """Bring the store `output` to the plan: only shards with added, changed or removed images are written.

    Args:
        plan: shard index -> image ids (`shard_plan`).
        keys: content key of every planned image.
        output: the store directory.
        scratch: this run's scratch folder (`scratch_name`), removed once published.
        root_attrs: provenance written into every new shard.
        compute: per-image callback for images without a reusable output.
        compression: shard codec.
        copied_arrays: array names of a reused image.
        overlap: write shards on a background thread (and let a streaming callback prefetch).
        processes: image processes per shard job (`runner.image_processes`; 0: none).
        submit: runs a `write_shard` job (task runner); the default writes in this process.
        report: progress hook.
    """
    report = report or SilentReport()
    report.start(sum(len(ids) for ids in plan.values()))
    previous = stored_keys(output)
    futures: list[Any] = []
    untouched: list[str] = []
    kept: list[str] = []
    for index, ids in plan.items():
        expected = {i: keys[i] for i in ids}
        if shard_is_current(shard_path(output, index), expected, previous) and records_params(shard_path(output, index), root_attrs):
            untouched.append(shard_path(output, index).name)
            kept.extend(ids)
            report.advance(ids, "untouched")
            continue
        job = ShardJob(
            index,
            expected,
            reusable_ids(expected, previous),
            shard_path(scratch, index),
            dict(root_attrs),
            compression,
            tuple(copied_arrays),
            overlap,
            processes,
        )
        narrow = getattr(compute, "for_images", None)
        futures.append(submit(job, narrow(ids) if narrow else compute))
    outcomes = []
    for future in futures:
        outcomes.append(future.result())
        for outcome_name, ids in (("computed", outcomes[-1].computed), ("copied", outcomes[-1].copied), ("failed", list(outcomes[-1].failed))):
            if ids:
                report.advance(ids, outcome_name)
    written = publish(outcomes, output, untouched, scratch)
    return StageSummary(
        written=tuple(sorted(str(p) for p in written)),
        untouched=tuple(untouched),
        computed=tuple(sorted(i for o in outcomes for i in o.computed)),
        copied=tuple(sorted(i for o in outcomes for i in o.copied)),
        failed={i: reason for o in outcomes for i, reason in sorted(o.failed.items())},
        kept=tuple(sorted(kept)),
    )
