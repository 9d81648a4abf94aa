"""Ground-truth label maps: the accepted encodings, the one reader every consumer uses, tags from masks.

Accepted files (PNG or anything PIL decodes as one of these modes):

* mode "P" (palette PNG, how VOC ships SegmentationClass): the pixel values are the palette
  *indices*; the colours are ignored;
* mode "L" (8-bit single channel) or a 16/32-bit single-channel image ("I;16", "I"): the values.

Values: 0 = background, k = the k-th class of the class list (class index + 1, k = 1..C),
255 = ignore (never scored). Any other value, and colour (RGB/RGBA) or two-level ("1") images,
are refused naming the file: a colour-to-class mapping is ambiguous, and a value outside the
range would otherwise be dropped by one metric and wrapped to another class by a uint8 cast
in another. Every reader of ground truth (map metrics, model metric, relabel metrics,
`prepare`'s checks and `tags_from: ground_truth`) goes through `read_label_map`, so every
score counts the same pixels.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from wsss.datasets.records import ImageRecord, safe_join, validate_relative_path
from wsss.errors import DatasetError

IGNORE_LABEL = 255
GROUND_TRUTH_MODES: tuple[str, ...] = ("P", "L", "I;16", "I;16L", "I;16B", "I")
ENCODING_HELP = "label maps must be palette (mode P) or single-channel index PNGs with 0 = background, class index + 1 for each class, 255 = ignore"


def read_label_pixels(
    path: Path,
    *,
    what: str = "ground-truth mask",
    size: tuple[int, int] | None = None,
    modes: Sequence[str] = GROUND_TRUTH_MODES,
    data: bytes | None = None,
) -> tuple[np.ndarray, str]:
    """The pixels and PIL mode of a label-map file, its mode and (given `size`, `(width, height)`)
    its size checked on the header, before anything is decoded: a decompression bomb declares a
    size no image of the manifest has.

    Args:
        path: the file (named in errors; read unless `data` holds its bytes).
        what: what the file is, for the errors ("ground-truth mask", "corrected mask").
        size: the image's size the map must have; None = any (checked by the caller).
        modes: the accepted PIL modes.
        data: the file's bytes, when the caller has read them already.

    Raises:
        DatasetError: naming the file when it is missing, cannot be decoded, has a refused mode or
            another size than `size`.
    """
    try:
        with warnings.catch_warnings():
            if size is not None:  # checked below, before decoding: PIL's warning would only be noise
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            handle = Image.open(io.BytesIO(data) if data is not None else path)
        with handle:
            mode = handle.mode
            if mode not in modes:
                raise DatasetError(f"{what} {path} is a mode {mode!r} image; {ENCODING_HELP}")
            if size is not None and handle.size != tuple(size):
                raise DatasetError(f"{what} {path} is {handle.size[0]}x{handle.size[1]} but its image is {size[0]}x{size[1]}")
            handle.load()
            labels = np.asarray(handle)
    except FileNotFoundError:
        raise DatasetError(f"{what} {path} not found") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DatasetError(f"{what} {path} cannot be decoded ({type(error).__name__}: {error})") from None
    return labels, mode


def decode_label_map(path: Path) -> np.ndarray:
    """The pixel values of a label-map file as an integer array `(H, W)`, mode checked.

    Raises:
        DatasetError: naming the file when it is missing, cannot be decoded or is not a
            palette/single-channel image.
    """
    labels, _ = read_label_pixels(path)
    if labels.ndim != 2:
        raise DatasetError(f"ground-truth mask {path} has shape {labels.shape}; {ENCODING_HELP}")
    return labels


def label_values_problem(labels: np.ndarray, num_classes: int, ignore_label: int = IGNORE_LABEL) -> str | None:
    """Why `labels` holds values other than 0..num_classes and `ignore_label`, or None.

    Shape:
        labels: `(H, W)` integer.
    """
    wide = labels.astype(np.int64, copy=False)
    bad = ((wide < 0) | (wide > num_classes)) & (wide != ignore_label)
    if not bad.any():
        return None
    values = np.unique(wide[bad])
    shown = ", ".join(str(int(value)) for value in values[:8]) + (", ..." if len(values) > 8 else "")
    return f"has values outside 0..{num_classes} and {ignore_label} ({shown}; {int(bad.sum())} pixels) for {num_classes} classes; {ENCODING_HELP}"


def read_label_map(path: Path, num_classes: int) -> np.ndarray:
    """A validated label map as uint8 `(H, W)`: values 0..num_classes or 255.

    Args:
        path: the label-map file.
        num_classes: foreground classes C (background excluded).

    Raises:
        DatasetError: naming the file for a missing/undecodable file, a refused mode or a value
            outside the accepted range.
    """
    labels = decode_label_map(path)
    problem = label_values_problem(labels, num_classes)
    if problem is not None:
        raise DatasetError(f"ground-truth mask {path} {problem}")
    return labels.astype(np.uint8)


def tags_from_label_map(labels: np.ndarray, class_names: Sequence[str]) -> tuple[str, ...]:
    """The classes present in a validated label map, in class order (0 and 255 are not tags).

    This is how the CLIP-ES reference derives VOC image labels (its `cls_labels.npy`).
    """
    present = np.unique(labels)
    return tuple(class_names[int(value) - 1] for value in present if 0 < value <= len(class_names))


def check_ground_truth_dir(root: Path, ground_truth_dir: str | None) -> str | None:
    """A configured ground-truth folder must exist under the root (DatasetError naming the key)."""
    if ground_truth_dir is None:
        return None
    validate_relative_path(ground_truth_dir, "ground_truth_dir")
    if not safe_join(root, ground_truth_dir).is_dir():
        raise DatasetError(
            f"ground_truth_dir {ground_truth_dir!r}: no such folder under the dataset root {root} "
            "(set data.ground_truth_dir to the folder of label PNGs, or to null for a dataset without ground truth)"
        )
    return ground_truth_dir


def existing_ground_truth(root: Path, ground_truth_dir: str | None, image_id: str, stem_path: str | None = None) -> str | None:
    """`<ground_truth_dir>/<stem_path or image_id>.png` relative to `root` when that file exists, else None."""
    if ground_truth_dir is None:
        return None
    relative = f"{ground_truth_dir}/{stem_path or image_id}.png"
    validate_relative_path(relative, "ground-truth path")
    return relative if safe_join(root, relative).is_file() else None


@dataclass(frozen=True)
class GroundTruthFiles:
    """Where the records' ground truth lives: the dataset root, and the folder of derived label
    maps (e.g. COCO masks rasterised by `prepare`) when there is one.

    Attributes:
        dataset_root: root of the dataset (`ground_truth_root == "dataset"` paths).
        derived_root: folder of derived label maps (`"derived"` paths); None when none exist.
    """

    dataset_root: Path
    derived_root: Path | None = None

    def path(self, record: ImageRecord) -> Path:
        """The record's label-map file; safe_join keeps it inside its root.

        Raises:
            DatasetError: when the record has no ground truth, or a derived one and no derived root.
        """
        if record.ground_truth_path is None:
            raise DatasetError(f"image {record.image_id!r} has no ground truth")
        if record.ground_truth_root == "derived":
            if self.derived_root is None:
                raise DatasetError(
                    f"image {record.image_id!r}: derived ground truth {record.ground_truth_path} but no folder of derived label maps was given"
                )
            return safe_join(self.derived_root, record.ground_truth_path)
        return safe_join(self.dataset_root, record.ground_truth_path)

    def read(self, record: ImageRecord, num_classes: int) -> np.ndarray:
        """The record's validated label map, uint8 `(H, W)` (see `read_label_map`)."""
        return read_label_map(self.path(record), num_classes)
