"""Pictures of the review report: small panels (photo, map heat, mask overlays, confidence).

Kept separate from `wsss.viz` on purpose: the report needs downscaled panels, colour maps that
match its CSS colour bars and ignored pixels drawn visibly, and must not change the overlays the
`evaluate` stage writes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from wsss.io.atomic import write_bytes_atomic
from wsss.palette import voc_palette as _voc_palette

HEAT_COLORMAP = cv2.COLORMAP_JET  # refined maps, as the project's overlays
CONFIDENCE_COLORMAP = cv2.COLORMAP_VIRIDIS
# JPEG: ~1.5 ms per panel against ~40 ms for WebP at a third less size; 10,000 images x 6 panels matter.
IMAGE_SUFFIX = ".jpg"
PALETTE = _voc_palette()  # the pipeline's mask colours (label 255: the ignore colour)


def voc_palette() -> np.ndarray:
    return PALETTE


def colormap_stops(colormap: int, count: int = 9) -> list[str]:
    """CSS colours of a cv2 colour map at `count` evenly spaced values (for the HTML colour bars)."""
    rgb = cv2.applyColorMap(np.linspace(0, 255, count).astype(np.uint8)[None], colormap)[0][:, ::-1]
    return [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb.tolist()]


def panel_shape(height: int, width: int, max_side: int) -> tuple[int, int]:
    """`(h, w)` of a panel: the image scaled so its longer side is at most `max_side`."""
    scale = min(1.0, max_side / max(height, width, 1))
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_rgb(rgb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return cv2.resize(rgb, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def resize_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return cv2.resize(labels, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def resize_map(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return cv2.resize(values.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def heat(values: np.ndarray, colormap: int) -> np.ndarray:
    """`(H, W)` values in [0, 1] as an RGB heat map."""
    scaled = np.clip(np.nan_to_num(values) * 255.0, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(scaled, colormap)[..., ::-1].copy()


def heat_overlay(rgb: np.ndarray, values: np.ndarray, weight: float = 0.55) -> np.ndarray:
    """A refined map as a jet heat map blended over the photo."""
    mixed = rgb.astype(np.float32) * (1 - weight) + heat(values, HEAT_COLORMAP).astype(np.float32) * weight
    return mixed.astype(np.uint8)


def label_overlay(rgb: np.ndarray, labels: np.ndarray, ignore_index: int = 255, weight: float = 0.6) -> np.ndarray:
    """Labels in the dataset palette over a dimmed photo; background shows the photo, ignored
    pixels are hatched in the ignore colour so they stand out from background."""
    colours = voc_palette()[labels].astype(np.float32)
    mixed = rgb.astype(np.float32) * (1 - weight) + colours * weight
    background = labels == 0
    mixed[background] = rgb[background].astype(np.float32) * 0.85
    ignored = labels == ignore_index
    if ignored.any():
        rows, cols = np.indices(labels.shape)
        stripes = ((rows + cols) // 3) % 2 == 0
        mixed[ignored & stripes] = voc_palette()[ignore_index]
        mixed[ignored & ~stripes] = rgb[ignored & ~stripes].astype(np.float32) * 0.5
    return np.clip(mixed, 0, 255).astype(np.uint8)


def encode_image(rgb: np.ndarray, quality: int = 82) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def save_panel(path: Path, rgb: np.ndarray) -> None:
    write_bytes_atomic(path, encode_image(rgb), durable=False)  # no fsync: panels are rebuilt, never precious


def render_panels(
    directory: Path,
    stem: str,
    rgb: np.ndarray,
    cams: np.ndarray,
    mask: np.ndarray,
    confidence: np.ndarray,
    ground_truth: np.ndarray | None,
    corrected: np.ndarray | None,
    ignore_index: int = 255,
    max_side: int = 320,
) -> dict[str, str | list[str]]:
    """Write an image's panels as `<directory>/<stem>-<panel><suffix>`; returns their file names.

    Shape:
        rgb: `(H, W, 3)` uint8; cams: `(K, H, W)`; mask, confidence, ground_truth, corrected: `(H, W)`.
    """
    height, width = rgb.shape[:2]
    shape = panel_shape(height, width, max_side)
    small = resize_rgb(rgb, shape)
    names: dict[str, str | list[str]] = {}

    def save(panel: str, picture: np.ndarray) -> str:
        name = f"{stem}-{panel}{IMAGE_SUFFIX}"
        save_panel(directory / name, picture)
        return name

    names["photo"] = save("photo", small)
    maps: list[str] = []
    for index in range(cams.shape[0]):
        maps.append(save(f"map{index}", heat_overlay(small, resize_map(cams[index], shape))))
    names["maps"] = maps
    names["mask"] = save("mask", label_overlay(small, resize_labels(mask, shape), ignore_index))
    names["confidence"] = save("confidence", heat(resize_map(confidence, shape), CONFIDENCE_COLORMAP))
    if ground_truth is not None:
        names["ground_truth"] = save("gt", label_overlay(small, resize_labels(ground_truth, shape), ignore_index))
    if corrected is not None:
        names["corrected"] = save("corrected", label_overlay(small, resize_labels(corrected, shape), ignore_index))
    return names


def legend_entries(labels: Sequence[int], class_names: Sequence[str], ignore_index: int = 255) -> list[tuple[int, str, str]]:
    """(label, name, CSS colour) for the labels given, in label order (ignore last)."""
    palette = voc_palette()
    entries = []
    for label in sorted({int(v) for v in labels}, key=lambda v: (v == ignore_index, v)):
        name = "ignored" if label == ignore_index else class_names[label] if label < len(class_names) else f"label {label}"
        r, g, b = (int(c) for c in palette[label])
        entries.append((label, name, f"#{r:02x}{g:02x}{b:02x}"))
    return entries
