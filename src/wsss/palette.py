"""The colours of every label map this project writes, and the one palette-PNG encoder.

Pseudo masks, derived COCO ground truth, the sample's ground truth, corrected masks and the
validation label maps of training are all palette PNGs with the PASCAL VOC colour map indexed by
label (0 = background, 255 = ignore): readers take the palette indices, viewers see VOC colours.
No OpenCV here, so the stores and dataset code that write masks stay light to import.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def voc_palette(num_colors: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map, `(num_colors, 3)` uint8 (label 255 -> near white)."""
    palette = np.zeros((num_colors, 3), dtype=np.uint8)
    for label in range(num_colors):
        value, red, green, blue = label, 0, 0, 0
        for bit in range(8):
            red |= ((value >> 0) & 1) << (7 - bit)
            green |= ((value >> 1) & 1) << (7 - bit)
            blue |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette[label] = (red, green, blue)
    return palette


def palette_png_bytes(labels: np.ndarray, compress_level: int | None = None) -> bytes:
    """`(H, W)` labels (uint8 values) as a VOC-palette PNG; `compress_level` None = zlib's default.

    The same labels always give the same bytes (no timestamp), so stores can compare files.
    """
    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    image = Image.frombytes("P", (labels.shape[1], labels.shape[0]), labels.tobytes())
    image.putpalette(voc_palette().flatten().tolist())
    buffer = io.BytesIO()
    options = {} if compress_level is None else {"compress_level": compress_level}
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()
