"""Which mask training learns from: a human correction when one fits the image, else the pseudo mask.

`stage_training_labels` lays out one folder of masks and one of confidence maps, per image id,
for the trainer: the pseudo mask and its confidence (symbolic links, no copy), or the corrected
mask with a confidence of 1 everywhere (every pixel the human left labelled is learned from; 255
stays ignored). A correction whose image changed or left the manifest is not used, and never
deleted: it is listed as stale, so a person can re-check it.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wsss.io.atomic import write_bytes_atomic
from wsss.provenance import sha256_of
from wsss.review.corrections import CorrectionError, CorrectionRecord, CorrectionStore, ImageSpec


@dataclass(frozen=True)
class StagedLabels:
    """Where the trainer reads masks and confidence maps, and which corrections it uses."""

    mask_dir: Path
    confidence_dir: Path
    used: list[dict[str, Any]] = field(default_factory=list)
    stale: list[dict[str, Any]] = field(default_factory=list)

    @property
    def digest(self) -> str:
        """Changes whenever the set of used corrections (or their content) changes."""
        return sha256_of([(u["image_id"], u["mask_sha256"]) for u in self.used])

    def summary(self) -> dict[str, Any]:
        return {"used": self.used, "stale": self.stale, "digest": self.digest}


def stale_reason(record: CorrectionRecord, spec: ImageSpec | None) -> str | None:
    """Why a correction no longer fits its image (None when it does)."""
    if spec is None:
        return "the image is no longer in the manifest"
    if (spec.width, spec.height) != (record.width, record.height):
        return f"the image is now {spec.width}x{spec.height}, the correction {record.width}x{record.height}"
    if record.image_sha256 and spec.sha256 != record.image_sha256:
        return "the image's bytes changed since the correction was imported"
    return None


def _link_or_copy(source: Path, target: Path) -> None:
    target.unlink(missing_ok=True)
    try:
        os.symlink(source.resolve(), target)
    except OSError:
        shutil.copyfile(source, target)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def stage_training_labels(
    image_ids: Sequence[str],
    images: Mapping[str, ImageSpec],
    pseudo_mask_dir: Path,
    pseudo_confidence_dir: Path,
    store: CorrectionStore,
    output: Path,
) -> StagedLabels:
    """Masks and confidence maps for training `image_ids`, corrections taking precedence.

    Without any usable correction nothing is written and the pseudo folders are returned as
    they are, so training without corrections reads exactly what it read before.

    Args:
        image_ids: the images training uses.
        images: manifest size and hash per image id (to tell stale corrections).
        pseudo_mask_dir, pseudo_confidence_dir: the pseudo stage's `masks/` and `confidence/`.
        store: the corrections store.
        output: a scratch folder for the merged layout (`masks/`, `confidence/`).
    """
    records = store.records()
    used: list[dict[str, Any]] = []
    stale: list[dict[str, Any]] = []
    usable: dict[str, CorrectionRecord] = {}
    wanted = set(image_ids)
    for image_id, record in sorted(records.items()):
        reason = stale_reason(record, images.get(image_id))
        if reason is not None:
            stale.append({"image_id": image_id, "reason": reason, "source_file": record.source_file})
        elif image_id in wanted:
            usable[image_id] = record
            used.append({key: value for key, value in asdict(record).items() if key != "labels"})
    if not usable:
        return StagedLabels(pseudo_mask_dir, pseudo_confidence_dir, used, stale)
    mask_dir, confidence_dir = output / "masks", output / "confidence"
    for folder in (mask_dir, confidence_dir):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    for image_id in image_ids:
        mask_target, confidence_target = mask_dir / f"{image_id}.png", confidence_dir / f"{image_id}.npy"
        record = usable.get(image_id)
        if record is None:
            _link_or_copy(pseudo_mask_dir / f"{image_id}.png", mask_target)
            if (pseudo_confidence_dir / f"{image_id}.npy").is_file():
                _link_or_copy(pseudo_confidence_dir / f"{image_id}.npy", confidence_target)
            continue
        labels = store.read_mask(record)
        if labels.shape != (record.height, record.width):
            raise CorrectionError(f"{store.mask_path(image_id)}: stored mask has shape {labels.shape}, record says {record.height}x{record.width}")
        shutil.copyfile(store.mask_path(image_id), mask_target)
        write_bytes_atomic(confidence_target, _npy_bytes(np.ones(labels.shape, dtype=np.float16)))
    return StagedLabels(mask_dir, confidence_dir, used, stale)


def correction_lineage(directory: Path | str, image_id: str, spec: ImageSpec | None = None) -> dict[str, Any] | None:
    """The lineage entry of a human-corrected mask, or None when the image has no correction.

    `summary` reads `human-corrected (file ..., sha256 ..., time ...)`: the imported file, its
    SHA-256 and the import time. `stale` says why training no longer uses it (None: it does).
    """
    store = CorrectionStore(directory)
    record = store.get(image_id)
    if record is None:
        return None
    return {
        "status": "human-corrected",
        "summary": record.describe(),
        "artifact": str(store.directory / record.mask_file),
        **asdict(record),
        "stale": stale_reason(record, spec) if spec is not None else None,
    }
