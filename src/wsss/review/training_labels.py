"""Which mask training learns from: a human correction when one fits the image, else the pseudo mask.

`stage_training_labels` lays out one folder of masks and one of confidence maps, per image id,
for the trainer: the pseudo mask and its confidence (symbolic links, no copy), or the corrected
mask with a confidence of 1 everywhere (every pixel the human left labelled is learned from; 255
stays ignored). A correction whose image changed or left the manifest is not used, and never
deleted: it is listed as stale, so a person can re-check it. So is a stored mask that no longer
passes the checks of its import (its SHA-256, size, mode and label values: a hand edit or a merge
may have updated the record with it), a record that cannot be read, and a mask without a record:
each is listed with the reason, and training goes on with the pseudo mask.
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


def correction_problem(
    store: CorrectionStore, record: CorrectionRecord, spec: ImageSpec | None, num_classes: int, ignore_index: int = 255
) -> str | None:
    """Why training cannot use a stored correction (stale, or its mask refused on reading), None when it can.

    `num_classes`: label values 0..num_classes-1 (background included) besides `ignore_index`.
    """
    reason = stale_reason(record, spec)
    if reason is not None:
        return reason
    try:
        store.read_mask(record, num_classes, ignore_index)
    except CorrectionError as error:
        return f"refused: {error}"
    return None


def sort_corrections(
    store: CorrectionStore, images: Mapping[str, ImageSpec], num_classes: int, ignore_index: int = 255
) -> tuple[dict[str, CorrectionRecord], list[dict[str, Any]]]:
    """The corrections training may use by image id, and one entry (`image_id`, `reason`,
    `source_file`) for every one it may not: stale, refused on reading, an unreadable record, a
    mask without a record."""
    records, unreadable = store.read_records()
    usable: dict[str, CorrectionRecord] = {}
    unused = [{"image_id": image_id, "reason": reason, "source_file": None} for image_id, reason in unreadable.items()]
    for image_id, record in records.items():
        reason = correction_problem(store, record, images.get(image_id), num_classes, ignore_index)
        if reason is None:
            usable[image_id] = record
        else:
            unused.append({"image_id": image_id, "reason": reason, "source_file": record.source_file})
    unused.extend(
        {
            "image_id": path.stem,
            "reason": f"{path}: a mask without a record, never used (import it with `wsss import-corrections`, or delete it)",
            "source_file": None,
        }
        for path in store.masks_without_record()
    )
    return usable, sorted(unused, key=lambda entry: (entry["image_id"], entry["reason"]))


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
    num_classes: int,
    ignore_index: int = 255,
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
        num_classes, ignore_index: the label values a mask may hold (0..num_classes-1, background
            included, and the ignore index); a stored mask with others is not used.
    """
    wanted = set(image_ids)
    corrections, stale = sort_corrections(store, images, num_classes, ignore_index)
    usable = {image_id: record for image_id, record in sorted(corrections.items()) if image_id in wanted}
    used = [{key: value for key, value in asdict(record).items() if key != "labels"} for record in usable.values()]
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
        shutil.copyfile(store.mask_path(image_id), mask_target)  # checked by sort_corrections: size, labels, sha256
        write_bytes_atomic(confidence_target, _npy_bytes(np.ones((record.height, record.width), dtype=np.float16)))
    return StagedLabels(mask_dir, confidence_dir, used, stale)


def correction_lineage(
    directory: Path | str, image_id: str, spec: ImageSpec | None = None, num_classes: int | None = None, ignore_index: int = 255
) -> dict[str, Any] | None:
    """The lineage entry of a human-corrected mask, or None when the image has no correction.

    `summary` reads `human-corrected (file ..., sha256 ..., time ...)`: the imported file, its
    SHA-256 and the import time. `stale` says why training no longer uses it (None: it does; its
    mask is checked as training checks it when `num_classes` is given).
    """
    store = CorrectionStore(directory)
    record = store.get(image_id)
    if record is None:
        return None
    if spec is None:
        stale = None
    elif num_classes is None:
        stale = stale_reason(record, spec)
    else:
        stale = correction_problem(store, record, spec, num_classes, ignore_index)
    return {"status": "human-corrected", "summary": record.describe(), "artifact": str(store.mask_path(image_id)), **asdict(record), "stale": stale}
