"""The colours of every label map this project writes, and the one palette-PNG encoder.

Pseudo masks, derived COCO ground truth, the sample's ground truth, corrected masks and the
validation label maps of training are all palette PNGs with the PASCAL VOC colour map indexed by
label (0 = background, 255 = ignore): readers take the palette indices, viewers see VOC colours.
No OpenCV here, so the stores and dataset code that write masks stay light to import.
"""

from __future__ import annotations

import functools
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


@functools.cache
def _palette_entries() -> tuple[int, ...]:
    """`voc_palette()` as PIL's `putpalette` takes it, built once (the bit loop took ~0.5 ms per mask)."""
    return tuple(voc_palette().flatten().tolist())


def palette_png_bytes(labels: np.ndarray, compress_level: int | None = None) -> bytes:
    """`(H, W)` labels (uint8 values) as a VOC-palette PNG; `compress_level` None = zlib's default.

    The same labels always give the same bytes (no timestamp), so stores can compare files.
    """
    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    image = Image.frombytes("P", (labels.shape[1], labels.shape[0]), labels.tobytes())
    image.putpalette(list(_palette_entries()))
    buffer = io.BytesIO()
    options = {} if compress_level is None else {"compress_level": compress_level}
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def labels_from_colours(rgb: np.ndarray, values: list[int]) -> np.ndarray:
    """The label values of an image drawn in the palette colours of `values` (an RGB(A) mask, as
    CVAT's Segmentation Mask export writes them), `(H, W)` uint8.

    Raises:
        ValueError: naming the first colour that is none of them and its pixel count.
    """
    palette = voc_palette()
    codes = {tuple(int(c) for c in palette[v]): v for v in values}
    channels = rgb[..., :3].astype(np.uint32)
    packed = (channels[..., 0] << 16) | (channels[..., 1] << 8) | channels[..., 2]
    colours, inverse = np.unique(packed.ravel(), return_inverse=True)
    lookup = np.zeros(len(colours), dtype=np.uint8)
    for position, code in enumerate(colours):
        colour = (int(code) >> 16, (int(code) >> 8) & 255, int(code) & 255)
        if colour not in codes:
            raise ValueError(f"colour {colour} ({int(np.sum(inverse == position))} pixels) is not a class colour of the dataset palette")
        lookup[position] = codes[colour]
    return lookup[inverse].reshape(packed.shape)
