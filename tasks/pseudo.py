"""pseudo: a pass's refined maps -> (dense CRF) -> pseudo masks, raw labels, confidence, summary.

An image's key is the pseudo settings and code plus its refined content key (which covers
everything upstream) and image hash: whatever interrupted an earlier run, a mask whose refined
maps changed is recomputed and one whose maps did not is kept. Relabeling calls this entry too,
archiving each mask it replaces or removes (`archive_to`).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tasks.runtime import flow_run_id
from wsss.catalog import ArtifactLayout, PseudoLayout
from wsss.datasets import manifest_sha256, safe_join
from wsss.errors import DatasetError, ImageError
from wsss.failures import settle_failures
from wsss.imaging import load_rgb
from wsss.incremental import CONTENT_KEY_ATTR, StageReport, array_digest, content_key, key_identity
from wsss.io import CamStore
from wsss.io.cam_store import ShardReader
from wsss.io.pseudo_store import PseudoMaskStore, mask_row
from wsss.io.records import PseudoSummary
from wsss.machine_layout import resolve_auto, resolved
from wsss.params import Params
from wsss.pseudo import PseudoSettings, pseudo_label
from wsss.stage_code import code_digest
from wsss.stage_inputs import read_manifest
from wsss.stage_result import StageResult


def pseudo_identity(params: Params) -> dict[str, Any]:
    """What every pseudo key holds besides the image's inputs: the `pseudo` params and the code
    that writes the mask files (the stage table's import closure), by the one key rule."""
    return key_identity({"params": params.sections("pseudo"), "code": code_digest("pseudo")})


@dataclass(frozen=True)
class RefinedImage:
    """What the stage knows of a refined image before computing its mask: its pseudo key, the shard
    that holds it (read directly: no index of the whole store per image) and its pixel count."""

    key: str
    shard: Path
    pixels: int


def refined_images(identity: dict[str, Any], refined: CamStore) -> dict[str, RefinedImage]:
    """Every refined image's pseudo key, shard and size (attributes only: no map is read, except for
    stores written before content keys existed, whose maps are then the key input)."""
    found = {}
    for image_id, stored in refined.iter_images(names=[]):
        refined_key = stored.attrs.get(CONTENT_KEY_ATTR)
        if refined_key is None:
            refined_key = array_digest([refined.read(image_id, ["refined"], keep_dtype=True).arrays["refined"]])
        key = content_key(identity, refined=str(refined_key), source_sha256=str(stored.attrs["source_sha256"]))
        height, width = (int(v) for v in stored.attrs.get("original_size", (0, 0)))
        found[image_id] = RefinedImage(key, stored.shard, height * width)
    return found


@dataclass(frozen=True)
class PseudoJob:
    """One image's work (picklable, for the process pool)."""

    image_id: str
    key: str
    shard: Path  # the refined shard holding the image
    dataset_root: Path
    output: PseudoLayout
    settings: PseudoSettings
    pixels: int = 0  # the CRF's work grows with it: the largest images go first


def make_pseudo_mask(job: PseudoJob) -> tuple[str, dict[str, Any] | str]:
    """("computed", row) after writing the image's outputs, or ("failed", reason) when its input is gone."""
    with ShardReader(job.shard) as reader:  # its one shard; opening the store indexed every shard, per image
        stored = reader.read(job.image_id, ["refined"], keep_dtype=True)
    cams = stored.arrays["refined"]  # float16, as the reference's saved maps
    class_ids = np.asarray(stored.attrs["class_ids"], dtype=np.int64)
    try:
        rgb = np.asarray(load_rgb(safe_join(job.dataset_root, stored.attrs["source_path"]))) if job.settings.needs_image(class_ids) else None
    except (ImageError, DatasetError) as error:
        return "failed", str(error)
    label = pseudo_label(rgb, cams, class_ids, job.settings)
    row = mask_row(job.image_id, label, stored.attrs["tags"], stored.attrs["source_sha256"], job.settings.ignore_index)
    PseudoMaskStore(job.output).write(job.image_id, job.key, label, row)
    return "computed", row


def _run_jobs(jobs: Sequence[PseudoJob], workers: int, report: StageReport | None) -> list[tuple[str, dict[str, Any] | str]]:
    """The jobs in `workers` processes when more than one (the CRF is CPU-bound), one image per
    task, largest first: the last tasks are the shortest, so no process idles while another
    finishes a long one (chunks of 4 in input order left up to 4 images' work to one process)."""
    if workers <= 1 or len(jobs) <= 1:
        results = []
        for job in jobs:
            results.append(make_pseudo_mask(job))
            if report:
                report.advance([job.image_id], results[-1][0])
        return results
    done: dict[str, tuple[str, dict[str, Any] | str]] = {}
    pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)))
    try:
        futures = {pool.submit(make_pseudo_mask, job): job for job in sorted(jobs, key=lambda job: -job.pixels)}
        for future in as_completed(futures):
            job = futures[future]
            done[job.image_id] = future.result()
            if report:
                report.advance([job.image_id], done[job.image_id][0])
    finally:
        pool.shutdown(cancel_futures=True)
    return [done[job.image_id] for job in jobs]


def run_pseudo(params: Params, layout: ArtifactLayout, report: StageReport | None = None, archive_to: Path | None = None) -> StageResult:
    """Pseudo outputs for every image of the pass's refined store; a summary row per image.

    Args:
        archive_to: a relabel run's history folder: the previous outputs of every image recomputed
            or removed are copied there first (listed as `details["archived"]`).
    """
    params = resolve_auto(params)  # pseudo.jobs: every core by default (recorded resolved in the summary's params)
    settings, store, run_id = params.pseudo, PseudoMaskStore(layout.pseudo), flow_run_id()
    refined = CamStore(layout.refined)
    images = refined_images(pseudo_identity(params), refined)
    keys = {image_id: image.key for image_id, image in images.items()}
    previous = store.read_summary()
    rows = {i: row for i, key in keys.items() if (row := store.reusable_row(i, key)) is not None}
    todo = sorted(set(keys) - set(rows))
    reused, removed = sorted(rows), sorted(store.image_ids() - set(keys))
    if report:
        report.start(len(keys))
        report.advance(reused, "copied")
    archived = [str(p) for p in store.archive([*todo, *removed], archive_to)] if archive_to is not None else []
    jobs = [PseudoJob(i, keys[i], images[i].shard, params.dataset_root, layout.pseudo, settings, images[i].pixels) for i in todo]
    computed, failed = [], {}
    for job, (outcome, value) in zip(jobs, _run_jobs(jobs, resolved(settings.jobs, "pseudo.jobs"), report), strict=True):
        if outcome == "failed":
            failed[job.image_id] = str(value)
        else:
            rows[job.image_id] = value  # type: ignore[assignment]
            computed.append(job.image_id)
    store.keep_only(rows)
    old_ids = previous.image_flow_run_ids if previous else {}
    store.write_summary(
        PseudoSummary(
            params=params.section_dict("pseudo"),
            input_manifest_sha256=manifest_sha256(read_manifest(layout)),
            flow_run_id=run_id,
            images=[rows[i] for i in sorted(rows)],
            image_flow_run_ids={i: run_id if i in computed else old_ids.get(i, previous.flow_run_id if previous else None) for i in sorted(rows)},
            learned_prompts_sha256=_learned_prompts_sha256(refined) if layout.pass_name else None,
        )
    )
    settle_failures("pseudo", failed, len(keys), params.reliability.max_failed_share, layout.stage_failures(layout.pseudo.root))
    written = [str(p) for i in computed for p in layout.pseudo.outputs(i).values()] + [str(layout.pseudo.summary)]
    return StageResult(
        "learned_pseudo" if layout.pass_name else "pseudo",
        tuple(computed),
        tuple(reused),
        failed,
        tuple(removed),
        tuple(written),
        {"archived": archived},
    )


def _learned_prompts_sha256(refined: CamStore) -> str | None:
    """The learned prompts the second pass's maps were made with (recorded in its refined store)."""
    upstream = refined.root_attrs(refined.shards[0]).get("upstream_cams", {}) if refined.shards else {}
    return upstream.get("learned_prompts_sha256")
