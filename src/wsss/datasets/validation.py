"""Full-decode validation of a manifest's images and ground-truth masks at the pipeline boundary.

Loaders read only file headers (fast); before any model runs, every image is decoded in full
and every ground-truth mask is checked against its image (mode, values, size; see
`wsss.datasets.ground_truth` for the accepted encodings), so that later stages can trust the
manifest. Problems are per image: they go to a `FailureReport` and the image is left out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from wsss.datasets.ground_truth import GroundTruthFiles, decode_label_map, label_values_problem
from wsss.datasets.records import ImageRecord, Manifest, safe_join
from wsss.errors import DatasetError, ImageError
from wsss.failures import FailureReport
from wsss.imaging import TRANSPOSING_ORIENTATIONS, check_decodes, exif_orientation


@dataclass
class GroundTruthCensus:
    """What the kept images' ground truth holds, counted while it is checked.

    Attributes:
        masks: ground-truth masks of kept images.
        with_background: of them, masks with at least one background pixel (label 0).
    """

    masks: int = 0
    with_background: int = 0

    @property
    def no_background(self) -> bool:
        """Every pixel of every mask is a class or void: the dataset has no background label, so
        the pipeline's background pixels are wrong by construction."""
        return self.masks > 0 and self.with_background == 0

    def warning(self) -> str | None:
        """The line `prepare` logs and records when the ground truth has no background, else None."""
        if not self.no_background:
            return None
        return (
            f"ground truth has no background: none of the {self.masks} masks has a pixel labelled 0 (every pixel is a "
            "class or void), so every pixel the pipeline labels background is wrong by construction; if the classes "
            "cover the whole scene, set classes.background: [] (no background words) and consider listing the "
            "scene's classes"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"masks": self.masks, "with_background": self.with_background, "warning": self.warning()}


def ground_truth_problem(record: ImageRecord, files: GroundTruthFiles, num_classes: int, census: GroundTruthCensus | None = None) -> str | None:
    """Why the record's ground-truth mask is unusable, or None when it is fine (or absent).

    The mask must be a palette or single-channel image with values 0..num_classes or 255, of
    the image's raw (header) size: EXIF orientation is never applied, so a mask drawn on the
    rotated view is a mismatch, and the reason says so. A mask that is fine is counted in `census`.
    """
    if record.ground_truth_path is None:
        return None
    path = files.path(record)
    try:
        labels = decode_label_map(path)
    except DatasetError as error:
        return str(error)
    values = label_values_problem(labels, num_classes)
    if values is not None:
        return f"ground-truth mask {path} {values}"
    height, width = labels.shape
    if (width, height) == (record.width, record.height):
        if census is not None:
            census.masks += 1
            census.with_background += bool((labels == 0).any())
        return None
    reason = f"ground-truth mask {path} is {width}x{height} but its image is {record.width}x{record.height}"
    image_path = safe_join(files.dataset_root, record.image_path)
    if (width, height) == (record.height, record.width) and exif_orientation(image_path) in TRANSPOSING_ORIENTATIONS:
        reason += " (the mask matches the EXIF-rotated view; masks must use the raw pixel orientation)"
    return reason


def validate_images(
    manifest: Manifest,
    root: Path,
    max_pixels: int | None,
    failures: FailureReport,
    derived_ground_truth: Path | None = None,
    census: GroundTruthCensus | None = None,
) -> Manifest:
    """The manifest without images that fail a full decode, exceed `max_pixels`, carry no tags
    or have an unusable ground-truth mask; each of those is recorded in `failures`.

    Args:
        manifest: records from a dataset loader (header-checked only).
        root: the dataset root the records' paths are relative to.
        max_pixels: images with more pixels are refused before decoding; None = no limit.
        failures: receives one entry per refused image (file and reason).
        derived_ground_truth: folder of the label maps `prepare` derived (COCO masks), if any.
        census: counts the kept images' masks and those with background pixels.
    """
    files = GroundTruthFiles(Path(root), derived_ground_truth)
    num_classes = len(manifest.class_names)
    kept = []
    for record in manifest.records:
        image_path = safe_join(root, record.image_path)
        if not record.tags:
            failures.add(record.image_id, str(image_path), "empty tag list: the image has no class to localise")
            continue
        try:
            check_decodes(image_path, max_pixels=max_pixels)
        except ImageError as error:
            failures.add(record.image_id, str(image_path), str(error))
            continue
        try:
            problem = ground_truth_problem(record, files, num_classes, census)
        except DatasetError as error:
            problem = str(error)
        if problem is not None:
            failures.add(record.image_id, str(image_path), problem)
            continue
        kept.append(record)
    return replace(manifest, records=tuple(kept))
