"""Overlays for visual checks: CAM heat maps and label maps in the dataset's class colours.

Label colours are the PASCAL VOC colour map indexed by label id, for any class list (VOC, COCO,
custom): the pseudo masks and the sample's ground truth are palette PNGs with the same colours,
so a legend drawn with `class_palette` matches them. `overlay_figure` is the captioned strip
(image | one map per tag with its probability | pseudo mask | ground truth) with a legend, used
by `evaluate`'s overlays, `wsss overlay` and `wsss demo`. Everything here is pure: arrays and
names in, an image array out.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from wsss.palette import voc_palette

IGNORE_LABEL = 255
RANDOM_WEIGHTS_MARK = "RANDOM WEIGHTS - NOT MEANINGFUL"
BACKGROUND_TEXT = (255, 255, 255)
CAPTION_TEXT = (20, 20, 20)
WARNING_FILL = (200, 16, 16)


def class_palette(num_labels: int) -> np.ndarray:
    """Colours of labels `0 .. num_labels - 1` (background first), `(num_labels, 3)` uint8.

    The same colours the pseudo-mask PNGs carry, for any class count up to 255.

    Raises:
        ValueError: If `num_labels` is not in [1, 255].
    """
    if not 1 <= num_labels <= IGNORE_LABEL:
        raise ValueError(f"a label map holds 1 to {IGNORE_LABEL} labels, got {num_labels}")
    return voc_palette()[:num_labels]


def cam_overlay(rgb: np.ndarray, cam: np.ndarray, weight: float = 0.5) -> np.ndarray:
    """Blend a `(H, W)` map in [0, 1] as a jet heat map over an `(H, W, 3)` uint8 image."""
    heat = cv2.applyColorMap(np.clip(cam * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)
    return (rgb.astype(np.float32) * (1 - weight) + heat.astype(np.float32) * weight).astype(np.uint8)


def label_overlay(rgb: np.ndarray, labels: np.ndarray, weight: float = 0.6) -> np.ndarray:
    """Blend a `(H, W)` uint8 label map (VOC palette) over an `(H, W, 3)` uint8 image."""
    colors = voc_palette()[labels]
    blended = rgb.astype(np.float32) * (1 - weight) + colors.astype(np.float32) * weight
    keep = labels == 0
    blended[keep] = rgb[keep]
    return blended.astype(np.uint8)


def tile_horizontally(panels: list[np.ndarray]) -> np.ndarray:
    """Panels of equal height side by side."""
    return np.concatenate(panels, axis=1)


@lru_cache(maxsize=8)
def caption_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans as shipped inside matplotlib (a registry package, not a system font path);
    Pillow's built-in font when matplotlib is absent."""
    spec = importlib.util.find_spec("matplotlib")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size)


@dataclass(frozen=True)
class OverlayInputs:
    """What one overlay shows.

    Attributes:
        rgb: The image, `(H, W, 3)` uint8.
        maps: One refined (or raw) map per tag, `(K, H, W)` float in [0, 1].
        tags: Tag (class) name of each map, K names.
        class_names: Foreground class names; label `i + 1` is `class_names[i]` (0 = background).
        probabilities: CLIP probability of each tag (K values) or None.
        pseudo_labels: Pseudo mask `(H, W)` uint8 (255 = ignored) or None.
        ground_truth: Ground-truth labels `(H, W)` uint8 (255 = not scored) or None.
        random_weights: The CLIP weights were random: the figure is marked as not meaningful.
        title: Text of the top line (image id, weights), or "".
        mask_caption: Caption of the `pseudo_labels` panel (`wsss predict` shows a model's prediction there).
    """

    rgb: np.ndarray
    maps: np.ndarray | Sequence[np.ndarray]
    tags: Sequence[str]
    class_names: Sequence[str]
    probabilities: Sequence[float] | None = None
    pseudo_labels: np.ndarray | None = None
    ground_truth: np.ndarray | None = None
    random_weights: bool = False
    title: str = ""
    mask_caption: str = "pseudo mask"


def _panels(inputs: OverlayInputs) -> list[tuple[str, np.ndarray]]:
    rgb = inputs.rgb
    if len(inputs.maps) != len(inputs.tags):
        raise ValueError(f"{len(inputs.maps)} maps for {len(inputs.tags)} tags")
    if inputs.probabilities is not None and len(inputs.probabilities) != len(inputs.tags):
        raise ValueError(f"{len(inputs.probabilities)} probabilities for {len(inputs.tags)} tags")
    panels = [("image", rgb)]
    for index, (tag, cam) in enumerate(zip(inputs.tags, inputs.maps, strict=True)):
        caption = tag if inputs.probabilities is None else f"{tag}  p={float(inputs.probabilities[index]):.2f}"
        panels.append((caption, cam_overlay(rgb, np.asarray(cam, dtype=np.float32))))
    for caption, labels in ((inputs.mask_caption, inputs.pseudo_labels), ("ground truth", inputs.ground_truth)):
        if labels is not None:
            if labels.shape != rgb.shape[:2]:
                raise ValueError(f"{caption}: labels {labels.shape} do not match the image {rgb.shape[:2]}")
            panels.append((caption, label_overlay(rgb, labels)))
    return panels


def _legend_entries(inputs: OverlayInputs) -> list[tuple[str, tuple[int, ...]]]:
    """Labels present in the pseudo mask or ground truth, in label order (+ ignored)."""
    names = ["background", *inputs.class_names]
    palette = class_palette(len(names))
    present: set[int] = set()
    for labels in (inputs.pseudo_labels, inputs.ground_truth):
        if labels is not None:
            present |= {int(v) for v in np.unique(labels)}
    unknown = sorted(v for v in present if v >= len(names) and v != IGNORE_LABEL)
    if unknown:
        raise ValueError(f"label values {unknown} are not classes of the {len(inputs.class_names)}-class list")
    entries = [(names[v], tuple(int(c) for c in palette[v])) for v in sorted(present) if v < len(names)]
    if IGNORE_LABEL in present:
        entries.append(("ignored / not scored", tuple(int(c) for c in voc_palette()[IGNORE_LABEL])))
    return entries


def overlay_figure(inputs: OverlayInputs, *, max_width: int = 1600, max_panel_height: int = 360) -> np.ndarray:
    """A captioned strip with a class legend, `(H', W', 3)` uint8 with `W' <= max_width`.

    Panels: the image, each tag's map as a heat map captioned with the tag and its probability,
    the pseudo mask and the ground truth (when given) in the dataset's class colours. Under the
    strip a legend lists every label present in the masks with its colour (`class_palette`).
    With `random_weights` a red band across the top says the maps are not meaningful.
    """
    panels = _panels(inputs)
    height, width = inputs.rgb.shape[:2]
    gap, pad = 6, 8
    usable = max_width - 2 * pad - gap * (len(panels) - 1)
    scale = min(1.0, max_panel_height / height, usable / (width * len(panels)))
    tile_w, tile_h = max(1, int(width * scale)), max(1, int(height * scale))
    font_size = int(np.clip(tile_w / 14, 11, 16))
    font = caption_font(font_size)
    caption_h = font_size + 10
    legend = _legend_entries(inputs)
    strip_w = len(panels) * tile_w + gap * (len(panels) - 1)
    canvas_w = min(max_width, strip_w + 2 * pad)

    # Lay the legend out in rows that fit the canvas.
    swatch, row_w = font_size, 0
    legend_rows: list[list[tuple[str, tuple[int, ...], int]]] = []
    row: list[tuple[str, tuple[int, ...], int]] = []
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    for name, color in legend:
        item_w = swatch + 6 + int(measure.textlength(name, font=font)) + 18
        if row and row_w + item_w > canvas_w - 2 * pad:
            legend_rows.append(row)
            row, row_w = [], 0
        row.append((name, color, item_w))
        row_w += item_w
    if row:
        legend_rows.append(row)

    banner_h = font_size + 14 if inputs.random_weights else 0
    title_h = caption_h if inputs.title else 0
    legend_h = len(legend_rows) * (swatch + 8) + (pad if legend_rows else 0)
    canvas_h = banner_h + title_h + caption_h + tile_h + legend_h + pad
    canvas = Image.new("RGB", (canvas_w, canvas_h), BACKGROUND_TEXT)
    draw = ImageDraw.Draw(canvas)
    y = 0
    if inputs.random_weights:
        draw.rectangle((0, 0, canvas_w, banner_h - 1), fill=WARNING_FILL)
        draw.text((pad, 7), f"{RANDOM_WEIGHTS_MARK}: CLIP was randomly initialised", fill=(255, 255, 255), font=font)
        y += banner_h
    if inputs.title:
        draw.text((pad, y + 5), inputs.title, fill=CAPTION_TEXT, font=font)
        y += title_h
    for index, (caption, panel) in enumerate(panels):
        x = pad + index * (tile_w + gap)
        draw.text((x, y + 5), _fit(caption, tile_w, font, draw), fill=CAPTION_TEXT, font=font)
        tile = cv2.resize(panel, (tile_w, tile_h), interpolation=cv2.INTER_AREA)
        canvas.paste(Image.fromarray(tile), (x, y + caption_h))
    y += caption_h + tile_h + pad
    for row in legend_rows:
        x = pad
        for name, color, item_w in row:
            draw.rectangle((x, y, x + swatch - 1, y + swatch - 1), fill=color, outline=(90, 90, 90))
            draw.text((x + swatch + 6, y - 1), name, fill=CAPTION_TEXT, font=font)
            x += item_w
        y += swatch + 8
    return np.asarray(canvas)


def _fit(text: str, width: int, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, draw: ImageDraw.ImageDraw) -> str:
    """The caption, shortened with an ellipsis to fit the tile width."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."
