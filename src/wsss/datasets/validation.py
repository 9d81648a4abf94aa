"""Full-decode validation of a manifest's images and ground-truth masks at the pipeline boundary.

Loaders read only file headers (fast); before any model runs, every image is decoded in full
and every ground-truth mask is checked against its image, so that later stages can trust the
manifest. Problems are per image: they go to a `FailureReport` and the image is left out.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from wsss.datasets.records import ImageRecord, Manifest, safe_join
from wsss.errors import DatasetError, ImageError
from wsss.failures import FailureReport
from wsss.imaging import TRANSPOSING_ORIENTATIONS, check_decodes, exif_orientation


def ground_truth_problem(record: ImageRecord, root: Path) -> str | None:
    """Why the record's ground-truth mask is unusable, or None when it is fine (or absent).

    The mask must decode and have the image's raw (header) size: EXIF orientation is never
    applied, so a mask drawn on the rotated view is a mismatch, and the reason says so.
    """
    if record.ground_truth_path is None:
        return None
    path = safe_join(root, record.ground_truth_path)
    try:
        with Image.open(path) as handle:
            handle.load()
            size = handle.size
    except FileNotFoundError:
        return f"ground-truth mask {path} not found"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        return f"ground-truth mask {path} cannot be decoded ({type(error).__name__}: {error})"
    if size == (record.width, record.height):
        return None
    reason = (
        f"ground-truth mask {path} is {size[0]}x{size[1]} but its image is {record.width}x{record.height}"
    )
    image_path = safe_join(root, record.image_path)
    if size == (record.height, record.width) and exif_orientation(image_path) in TRANSPOSING_ORIENTATIONS:
        reason += " (the mask matches the EXIF-rotated view; masks must use the raw pixel orientation)"
    return reason


def validate_images(manifest: Manifest, root: Path, max_pixels: int | None, failures: FailureReport) -> Manifest:
    """The manifest without images that fail a full decode, exceed `max_pixels`, carry no tags
    or have an unusable ground-truth mask; each of those is recorded in `failures`.

    Args:
        manifest: records from a dataset loader (header-checked only).
        root: the dataset root the records' paths are relative to.
        max_pixels: images with more pixels are refused before decoding; None = no limit.
        failures: receives one entry per refused image (file and reason).
    """
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
            problem = ground_truth_problem(record, root)
        except DatasetError as error:
            problem = str(error)
        if problem is not None:
            failures.add(record.image_id, str(image_path), problem)
            continue
        kept.append(record)
    return replace(manifest, records=tuple(kept))
