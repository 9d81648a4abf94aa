"""COCO instance annotations -> semantic label maps (pycocotools), checked before any C code sees them.

Rule (documented in the README, tested pixel for pixel):

* label value = index of the annotation's class in the class list + 1 (0 = background);
* polygons (a list of `[x1, y1, x2, y2, ...]` rings, merged) and RLE (`{"size": [h, w],
  "counts": [...] | "string"}`) are rasterised by pycocotools exactly as `COCO.annToMask` does;
* where instances overlap, the **smaller** instance (fewer mask pixels) wins, ties going to
  the one listed first in the JSON, as the coco2voc conversion that produced the CLIP-ES COCO
  masks does (it sorts by area, smallest first, and never overwrites a labelled pixel);
* crowd annotations (`iscrowd: 1`) become 255 (ignore) where no non-crowd instance lies.

pycocotools' C code trusts its input (an RLE whose counts overrun the image writes past its
buffer; a polygon whose first ring has four numbers is read as a box), so every segmentation
is validated here first and only well-formed data reaches it.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from wsss.datasets.ground_truth import IGNORE_LABEL
from wsss.errors import ArtifactWriteError, DatasetError
from wsss.io.atomic import write_bytes_atomic
from wsss.palette import palette_png_bytes
from wsss.stage_code import code_digest

_MIN_POLYGON_NUMBERS = 6  # three points; fewer enclose no area (and four would be read as a box)
_MAX_RUN_BITS = 64
_MAX_PERIMETER_PER_SIDE = 256
"""pycocotools rasterises a polygon through buffers of about 100 bytes per pixel of its outline (5x
upsampled), unchecked: a million vertices inside the image crashed the process. An annotation's
outline may be this many times width + height long (a 640x480 image: 286,720 pixels, ~30 MB)."""


def rle_string_counts(counts: str) -> list[int]:
    """The run lengths of a compressed COCO RLE string (pycocotools' `rleFrString`, in Python).

    Raises:
        ValueError: on a character outside the alphabet, a truncated number or a negative run.
    """
    runs: list[int] = []
    position = 0
    while position < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(counts):
                raise ValueError("the string ends inside a number")
            code = ord(counts[position]) - 48
            if not 0 <= code < 64:
                raise ValueError(f"character {counts[position]!r} at {position} is not in the RLE alphabet")
            value |= (code & 0x1F) << shift
            more = bool(code & 0x20)
            position += 1
            shift += 5
            if shift > _MAX_RUN_BITS:  # no image has 2**64 pixels; a longer number only costs time
                raise ValueError(f"a run length at {position} has more than {_MAX_RUN_BITS} bits")
            if not more and code & 0x10:
                value -= 1 << shift  # sign extension
        if len(runs) > 2:
            value += runs[-2]  # runs from the fourth on are stored as differences
        if value < 0:
            raise ValueError(f"run {len(runs)} is negative ({value})")
        runs.append(value)
    return runs


def _checked_rle(segmentation: Mapping[str, Any], height: int, width: int) -> dict[str, Any]:
    """An uncompressed RLE whose size is the image's and whose runs cover it exactly."""
    size = segmentation.get("size")
    if not (isinstance(size, list) and len(size) == 2 and list(size) == [height, width]):
        raise ValueError(f"RLE size {size!r} is not the image's [height, width] = [{height}, {width}]")
    counts = segmentation.get("counts")
    if isinstance(counts, str):
        runs = rle_string_counts(counts)
    elif isinstance(counts, list) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
        runs = list(counts)
    else:
        raise ValueError("RLE counts must be a string or a list of non-negative integers")
    if sum(runs) != height * width:
        raise ValueError(f"RLE runs cover {sum(runs)} pixels, the image has {height * width}")
    return {"size": [height, width], "counts": runs}


def _checked_polygons(segmentation: list[Any], height: int, width: int) -> list[list[float]]:
    """The rings with at least three points; coordinates finite and near the image, outline bounded."""
    rings, outline = [], 0.0
    for ring in segmentation:
        if not isinstance(ring, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in ring):
            raise ValueError("a polygon must be a list of number lists [x1, y1, x2, y2, ...]")
        if len(ring) % 2:
            raise ValueError(f"a polygon has an odd number of coordinates ({len(ring)})")
        xs, ys = ring[0::2], ring[1::2]
        # Far-away vertices make the rasteriser allocate per pixel of edge length; real ones are on the image.
        if not all(math.isfinite(v) and -width <= v <= 2 * width for v in xs) or not all(math.isfinite(v) and -height <= v <= 2 * height for v in ys):
            raise ValueError(f"a polygon has coordinates that are not finite or far outside the {width}x{height} image")
        if len(ring) >= _MIN_POLYGON_NUMBERS:
            rings.append([float(v) for v in ring])
            # pycocotools walks each edge in max(|dx|, |dy|) steps, the closing edge included.
            closed_x, closed_y = np.asarray([*xs, xs[0]], dtype=np.float64), np.asarray([*ys, ys[0]], dtype=np.float64)
            outline += float(np.maximum(np.abs(np.diff(closed_x)), np.abs(np.diff(closed_y))).sum())
    if outline > _MAX_PERIMETER_PER_SIDE * (width + height):
        raise ValueError(
            f"the polygons' outline is {outline:.0f} pixels long, more than {_MAX_PERIMETER_PER_SIDE} times the "
            f"{width}x{height} image's width + height"
        )
    return rings


def _decode(rles: list[dict[str, Any]]) -> np.ndarray:
    """`mask_utils.decode` of several RLEs as one `(n, W, H)` C-ordered view (pycocotools returns
    `(H, W, n)` in Fortran order; transposing is free), without its NumPy-2 deprecation noise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*__array__ implementation doesn't accept a copy keyword", category=DeprecationWarning)
        return mask_utils.decode(rles).transpose(2, 1, 0).view(bool)


def instance_rle(segmentation: Any, height: int, width: int) -> dict[str, Any] | None:
    """The compressed RLE of one annotation's segmentation (polygons merged), None when it is empty.

    Raises:
        ValueError: naming what is malformed.
    """
    if isinstance(segmentation, list):
        rings = _checked_polygons(segmentation, height, width)
        if not rings:
            return None
        return mask_utils.merge(mask_utils.frPyObjects(rings, height, width))
    if isinstance(segmentation, dict):
        return mask_utils.frPyObjects(_checked_rle(segmentation, height, width), height, width)
    raise ValueError(f"segmentation must be a polygon list or an RLE object, not {type(segmentation).__name__}")


def instance_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Binary mask `(H, W)` uint8 of one annotation's segmentation (polygons or RLE).

    Raises:
        ValueError: naming what is malformed.
    """
    rle = instance_rle(segmentation, height, width)
    if rle is None:
        return np.zeros((height, width), dtype=np.uint8)
    return np.ascontiguousarray(_decode([rle])[0].T, dtype=np.uint8)


def semantic_label_map(annotations: Sequence[Mapping[str, Any]], labels: Sequence[int], height: int, width: int) -> np.ndarray:
    """One image's label map from its annotations (the overlap and crowd rule of the module doc).

    Args:
        annotations: the image's annotations in JSON order, each with `segmentation` and
            optionally `iscrowd`.
        labels: label value (class index + 1) of each annotation.
        height, width: the image size.

    Returns:
        `(H, W)` uint8: 0 background, 1..C classes, 255 crowd.

    Raises:
        ValueError: naming the annotation (by its `id`, else its position) whose segmentation is malformed.
    """
    instances: list[tuple[int, int, int, Any]] = []
    crowds: list[tuple[int, int, int, Any]] = []
    for position, (annotation, label) in enumerate(zip(annotations, labels, strict=True)):
        try:
            rle = instance_rle(annotation.get("segmentation"), height, width)
        except ValueError as error:
            raise ValueError(f"annotation {annotation.get('id', f'#{position}')}: {error}") from None
        if rle is not None:
            area = int(mask_utils.area(rle))
            (crowds if annotation.get("iscrowd") else instances).append((area, position, label, rle))
    transposed = np.zeros((width, height), dtype=np.uint8)  # the decoder's memory order
    # Largest first, so every smaller instance is painted over it; equal areas: the first listed last.
    painted = sorted(instances, key=lambda item: (-item[0], -item[1]))
    if painted:
        masks = _decode([rle for *_, rle in painted])
        for mask, (_, _, label, _) in zip(masks, painted, strict=True):
            transposed[mask] = label
    if crowds:
        crowd = _decode([rle for *_, rle in crowds]).any(axis=0)
        transposed[crowd & (transposed == 0)] = IGNORE_LABEL
    return np.ascontiguousarray(transposed.T)


def label_map_key(annotations: Sequence[Mapping[str, Any]], labels: Sequence[int], height: int, width: int) -> str:
    """Content key of a label map: SHA-256 of the rasterising code (the prepare stage's key code, from
    the stage table: no version to bump by hand), size, labels, crowd flags and segmentations."""
    content = {
        "code": code_digest("prepare"),
        "size": [height, width],
        "instances": [
            [int(label), bool(annotation.get("iscrowd")), annotation.get("segmentation")]
            for annotation, label in zip(annotations, labels, strict=True)
        ],
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_label_map(path: Path, labels: np.ndarray) -> None:
    """Write a palette PNG atomically (`wsss.io.atomic`: no torn file after a kill)."""
    try:
        # Level 1: label maps are long runs, so this costs little size and a fraction of the time.
        write_bytes_atomic(path, palette_png_bytes(labels, compress_level=1))
    except ArtifactWriteError as error:
        raise DatasetError(str(error)) from None
