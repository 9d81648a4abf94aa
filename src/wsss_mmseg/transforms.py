"""Pipeline steps: the project's image decoding, and the per-pixel confidence map beside the pseudo mask.

``LoadImageAsStored`` replaces mmcv's ``LoadImageFromFile``: mmcv decodes with OpenCV's
``IMREAD_COLOR``, which applies the EXIF orientation, while every other stage (CAMs, pseudo
masks, GT checks, evaluation) uses the raw pixel grid of :func:`wsss.imaging.load_rgb`. With
mmcv's loader an EXIF-3 photo trained upside down under upright masks and an EXIF-6 photo
(width and height swapped) crashed training (issue 11, finding 6).

``LoadConfidenceMap`` registers ``gt_confidence_map`` in ``results['seg_fields']``. Every
mmseg 1.2.2 transform that moves pixels iterates ``seg_fields`` (checked in
``mmseg/datasets/transforms/transforms.py``): ``Resize`` (hence ``RandomResize``, whose
default ``resize_type='Resize'`` resolves to mmseg's ``Resize`` under ``default_scope='mmseg'``)
resizes each field with **nearest** interpolation, ``RandomCrop`` crops each with the same
box, ``RandomFlip`` flips each, and ``RandomRotate``/``RandomRotFlip``/``SegRescale`` do the
same. Nearest is what we want: a pixel's confidence then comes from the very source pixel
its label comes from, so ``label >= threshold`` decisions stay exactly aligned. Bilinear
would blend confidences across label boundaries. mmcv's own ``Resize``/``Pad``/``CenterCrop``
only touch ``gt_seg_map``; keep them out of a confidence pipeline. Padding to the crop size
happens later, in the data preprocessor, and the loss pads the confidence the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from mmcv.transforms import BaseTransform, to_tensor
from mmengine.structures import PixelData
from mmseg.datasets.transforms import PackSegInputs
from mmseg.registry import TRANSFORMS
from PIL import Image

from wsss.imaging import load_rgb

__all__ = ["LoadConfidenceMap", "LoadImageAsStored", "PackSegInputsWithConfidence", "read_confidence_map", "use_stored_orientation"]

CONFIDENCE_KEY = "gt_confidence_map"


def read_confidence_map(path: str | Path) -> np.ndarray:
    """Read a confidence map as float32 in ``[0, 1]``.

    Args:
        path: ``.npy`` (float16/float32, ``H x W``) or an 8-bit PNG (value / 255).

    Returns:
        The map.

    Raises:
        ValueError: For another suffix, a non-2-D array, or a PNG that is not 8-bit
            single-channel.

    Shape:
        Output: ``(H, W)`` float32.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        # allow_pickle=False: a confidence file is plain numbers, never objects. mmap_mode: a header
        # declaring more data than the file holds is refused instead of allocated (a 1 kB file
        # declaring 100000 x 100000 would ask for 18.6 GiB).
        try:
            array = np.load(path, allow_pickle=False, mmap_mode="r")
        except ValueError as error:
            raise ValueError(f"{path}: not a readable confidence .npy ({error})") from None
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"{path}: confidence .npy must be float16/float32, got {array.dtype}")
        # float32 because cv2's resize does not take float16 and the loss is float32 anyway.
        confidence = array.astype(np.float32)
    elif suffix == ".png":
        with Image.open(path) as image:
            if image.mode != "L":
                raise ValueError(f"{path}: confidence PNG must be 8-bit grayscale, got mode {image.mode}")
            confidence = np.asarray(image, dtype=np.float32) / 255.0
    else:
        raise ValueError(f"{path}: confidence maps must be .npy or .png")
    if confidence.ndim != 2:
        raise ValueError(f"{path}: confidence map must be H x W, got shape {confidence.shape}")
    return np.ascontiguousarray(confidence)


@TRANSFORMS.register_module()
class LoadImageAsStored(BaseTransform):
    """Load ``results['img_path']`` as every stage does: :func:`wsss.imaging.load_rgb`, EXIF not applied.

    The output follows mmcv's ``LoadImageFromFile`` (BGR uint8, which the data preprocessor's
    ``bgr_to_rgb=True`` turns back to RGB), so it is a drop-in replacement.

    Required Keys: ``img_path``. Added Keys: ``img`` (``H x W x 3`` BGR), ``img_shape``, ``ori_shape``.

    Args:
        to_float32: Return float32 pixels instead of uint8.
        max_pixels: Refuse images whose header announces more pixels (None = no limit).

    Raises:
        wsss.errors.ImageError: naming the file, when it cannot be decoded.
    """

    def __init__(self, to_float32: bool = False, max_pixels: int | None = None) -> None:
        self.to_float32 = to_float32
        self.max_pixels = max_pixels

    def transform(self, results: dict[str, Any]) -> dict[str, Any]:
        """Decode the image in its stored orientation."""
        rgb = np.asarray(load_rgb(results["img_path"], self.max_pixels))
        image = np.ascontiguousarray(rgb[..., ::-1])
        results["img"] = image.astype(np.float32) if self.to_float32 else image
        results["img_shape"] = image.shape[:2]
        results["ori_shape"] = image.shape[:2]
        return results


def use_stored_orientation(pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``pipeline`` with mmcv's ``LoadImageFromFile`` steps replaced by :class:`LoadImageAsStored`.

    For configs that still name mmcv's loader: one decoding rule for every stage.
    """
    replaced = []
    for step in pipeline:
        if step.get("type") in ("LoadImageFromFile", "mmcv.LoadImageFromFile"):
            kept = {key: step[key] for key in ("to_float32",) if key in step}
            replaced.append(dict(type="LoadImageAsStored", **kept))
        else:
            replaced.append(step)
    return replaced


@TRANSFORMS.register_module()
class LoadConfidenceMap(BaseTransform):
    """Load ``results['confidence_path']`` into ``results['gt_confidence_map']``.

    Put it after ``LoadAnnotations``. Without a ``confidence_path`` (or when it is None)
    the sample is left without a map and the loss uses its hard labels only.

    Required Keys: ``confidence_path`` (optional), ``gt_seg_map`` (optional, shape check).
    Added Keys: ``gt_confidence_map`` (float32 ``H x W``); ``seg_fields`` gains its name.

    Raises:
        ValueError: If the map's size differs from the mask's.
    """

    def transform(self, results: dict[str, Any]) -> dict[str, Any]:
        """Load the map and register it as a segmentation field."""
        path = results.get("confidence_path")
        if path is None:
            return results
        confidence = read_confidence_map(path)
        mask = results.get("gt_seg_map")
        if mask is not None and mask.shape[:2] != confidence.shape:
            raise ValueError(f"confidence map {path} has shape {confidence.shape}, its mask {results.get('seg_map_path')} has {mask.shape[:2]}")
        results[CONFIDENCE_KEY] = confidence
        seg_fields = results.setdefault("seg_fields", [])
        if CONFIDENCE_KEY not in seg_fields:
            seg_fields.append(CONFIDENCE_KEY)
        return results


@TRANSFORMS.register_module()
class PackSegInputsWithConfidence(PackSegInputs):
    """mmseg's ``PackSegInputs`` that also packs ``data_sample.gt_confidence_map``.

    The map becomes a ``PixelData`` whose ``.data`` is float32 ``(1, H, W)``, like
    ``gt_sem_seg``. Meta keys additionally include ``confidence_path``.
    """

    def __init__(
        self,
        meta_keys: tuple[str, ...] = (
            "img_path",
            "seg_map_path",
            "confidence_path",
            "ori_shape",
            "img_shape",
            "pad_shape",
            "scale_factor",
            "flip",
            "flip_direction",
            "reduce_zero_label",
        ),
    ) -> None:
        super().__init__(meta_keys=meta_keys)

    def transform(self, results: dict[str, Any]) -> dict[str, Any]:
        """Pack like ``PackSegInputs``, plus the confidence map when present."""
        packed = super().transform(results)
        confidence = results.get(CONFIDENCE_KEY)
        if confidence is not None:
            data = to_tensor(np.ascontiguousarray(confidence[None, ...], dtype=np.float32))
            packed["data_samples"].set_data({CONFIDENCE_KEY: PixelData(data=data)})
        return packed
