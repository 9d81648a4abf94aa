"""pseudo: refined maps -> (dense CRF) -> pseudo masks (VOC palette PNG, 255 = ignore) + confidence."""

from __future__ import annotations

import io
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from prefect import task
from prefect.cache_policies import NONE

from tasks.common import Progress
from wsss import output_keys
from wsss.config import PseudoSettings
from wsss.datasets import safe_join
from wsss.imaging import load_rgb
from wsss.incremental import package_source_digest
from wsss.io import CamStore
from wsss.output_keys import content_key, write_bytes_atomic
from wsss.pseudo import crf_posterior_for_cams, make_pseudo_label
from wsss.viz import voc_palette

MASKS = "masks"
RAW = "raw"
CONFIDENCE = "confidence"
KEYS = "keys"


@dataclass(frozen=True)
class PseudoJob:
    """Everything one worker needs for one image (picklable)."""

    image_id: str
    refined_store: Path
    dataset_root: Path
    output: Path
    settings: PseudoSettings


def palette_png_bytes(labels: np.ndarray) -> bytes:
    """`(H, W)` labels as a VOC-palette PNG."""
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(voc_palette().flatten().tolist())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    """The `.npy` file content of an array (written atomically by the caller)."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def output_paths(output: Path, image_id: str) -> dict[str, Path]:
    """The three per-image output files, by output kind."""
    return {
        MASKS: output / MASKS / f"{image_id}.png",
        RAW: output / RAW / f"{image_id}.png",
        CONFIDENCE: output / CONFIDENCE / f"{image_id}.npy",
    }


@cache
def pseudo_code_digest() -> str:
    """Digest of the core code that turns refined maps into masks: a code change must not reuse
    masks now that the stage output persists between `dvc repro` runs."""
    return package_source_digest(("pseudo", "imaging.py", "viz.py"))


def make_pseudo_mask(job: PseudoJob) -> dict[str, Any]:
    """Pseudo mask, raw labels and confidence of one image; returns its summary row.

    Reused without recomputation when the image's key (refined maps, image SHA-256, pseudo
    settings) matches the key file of a previous run and all outputs exist.
    """
    stored = CamStore(job.refined_store).read(job.image_id, ["refined"], keep_dtype=True)
    cams = stored.arrays["refined"]  # float16, as the reference's saved maps
    class_ids = np.asarray(stored.attrs["class_ids"], dtype=np.int64)
    settings = job.settings
    paths = output_paths(job.output, job.image_id)
    keys_dir = job.output / KEYS
    key = content_key(
        [cams, class_ids],
        {
            "source_sha256": stored.attrs["source_sha256"],
            "settings": {**asdict(settings), "jobs": None},
            "code": pseudo_code_digest(),
        },
    )
    row = output_keys.reusable_row(keys_dir, job.image_id, key, paths.values())
    if row is not None:
        return row
    output_keys.forget(keys_dir, job.image_id)
    posterior = None
    if settings.crf and len(class_ids):
        rgb = np.asarray(load_rgb(safe_join(job.dataset_root, stored.attrs["source_path"])))
        posterior = crf_posterior_for_cams(
            rgb, cams, params=settings.crf_params, reference_image_quirk=settings.crf_reference_image_quirk
        )
    pseudo = make_pseudo_label(
        cams,
        class_ids,
        alpha=settings.background_alpha,
        confidence_threshold=settings.confidence_threshold,
        ignore_index=settings.ignore_index,
        posterior=posterior,
    )
    write_bytes_atomic(paths[MASKS], palette_png_bytes(pseudo.labels))
    write_bytes_atomic(paths[RAW], palette_png_bytes(pseudo.raw_labels))
    write_bytes_atomic(paths[CONFIDENCE], npy_bytes(pseudo.confidence.astype(np.float16)))
    labels, counts = np.unique(pseudo.labels, return_counts=True)
    row = {
        "image_id": job.image_id,
        "size": [int(v) for v in pseudo.labels.shape],
        "tags": list(stored.attrs["tags"]),
        "ignored_fraction": round(float((pseudo.labels == settings.ignore_index).mean()), 6),
        "mean_confidence": round(float(pseudo.confidence.mean()), 6),
        "label_pixels": {str(int(l)): int(c) for l, c in zip(labels, counts)},
        "source_sha256": stored.attrs["source_sha256"],
    }
    output_keys.record(keys_dir, job.image_id, key, row)
    return row


@task(cache_policy=NONE)
def make_pseudo_masks(jobs: Sequence[PseudoJob], workers: int, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Run the jobs, in `workers` processes when more than one (the CRF is CPU-bound)."""
    if jobs:
        for sub in (MASKS, RAW, CONFIDENCE, KEYS):
            (jobs[0].output / sub).mkdir(parents=True, exist_ok=True)
    rows = []
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            rows.append(make_pseudo_mask(job))
            if progress:
                progress.step()
        return rows
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for row in pool.map(make_pseudo_mask, jobs, chunksize=4):
            rows.append(row)
            if progress:
                progress.step()
    return rows


@task(cache_policy=NONE)
def remove_outputs_of_dropped_images(output: Path, image_ids: Sequence[str]) -> int:
    """Delete outputs (and keys) of images no longer in the refined store; returns how many files."""
    directories = [output / sub for sub in (MASKS, RAW, CONFIDENCE, KEYS)]
    return len(output_keys.remove_stale_outputs(directories, set(image_ids)))
