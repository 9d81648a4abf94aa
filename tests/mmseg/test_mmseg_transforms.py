"""Image, pseudo mask and confidence stay aligned through RandomResize + RandomCrop + RandomFlip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mmseg")

import wsss_mmseg  # noqa: F401  (registers the transforms; first: its mmcv.ops shim goes in before mmseg)

# isort: split

from mmengine.dataset import Compose
from mmengine.registry import init_default_scope
from PIL import Image

from wsss_mmseg.transforms import read_confidence_map

HEIGHT, WIDTH, CROP = 48, 60, 32


def _mask_of(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Label of source pixel (row, col): varies between neighbours, 255 on a sparse lattice."""
    labels = (rows + 2 * cols) % 21
    return np.where((rows * 7 + cols * 3) % 11 == 0, 255, labels).astype(np.uint8)


def _write_sample(root: Path, confidence_format: str) -> dict:
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    # Image: red = 4 * row, green = 4 * col (bilinear-resized, so decoded approximately).
    image = np.stack([4 * rows, 4 * cols, np.zeros_like(rows)], axis=-1).astype(np.uint8)
    Image.fromarray(image).save(root / "image.png")
    Image.fromarray(_mask_of(rows, cols)).save(root / "mask.png")
    if confidence_format == "npy":
        # Confidence encodes the source pixel index exactly (float32 resolves 1/2880 steps).
        confidence = ((rows * WIDTH + cols + 0.5) / (HEIGHT * WIDTH)).astype(np.float32)
        path = root / "confidence.npy"
        np.save(path, confidence)
    else:
        path = root / "confidence.png"
        Image.fromarray(((rows * WIDTH + cols) % 256).astype(np.uint8), mode="L").save(path)
    return dict(
        img_path=str(root / "image.png"), seg_map_path=str(root / "mask.png"), confidence_path=str(path), reduce_zero_label=False, seg_fields=[]
    )


def _pipeline() -> Compose:
    init_default_scope("mmseg")
    return Compose(
        [
            dict(type="LoadImageAsStored"),  # as the shipped configs
            dict(type="LoadAnnotations"),
            dict(type="LoadConfidenceMap"),
            dict(type="RandomResize", scale=(WIDTH, HEIGHT), ratio_range=(0.5, 1.5), keep_ratio=True),
            dict(type="RandomCrop", crop_size=(CROP, CROP)),
            dict(type="RandomFlip", prob=0.5),
            dict(type="PackSegInputsWithConfidence"),
        ]
    )


def test_pipeline_keeps_image_mask_and_confidence_aligned(tmp_path: Path) -> None:
    info = _write_sample(tmp_path, "npy")
    pipeline = _pipeline()
    flips, shapes = set(), set()
    for seed in range(10):
        np.random.seed(seed)
        packed = pipeline(dict(info, seg_fields=[]))
        sample = packed["data_samples"]
        bgr = packed["inputs"].numpy()  # (3, h, w), BGR as mmcv loads it
        mask = sample.gt_sem_seg.data.numpy()[0]
        confidence = sample.gt_confidence_map.data.numpy()[0]
        assert sample.gt_confidence_map.data.dtype.is_floating_point
        assert bgr.shape[1:] == mask.shape == confidence.shape
        assert max(mask.shape) <= CROP
        flips.add(bool(sample.flip))
        shapes.add(mask.shape)

        # Mask and confidence are both nearest-resampled: the same source pixel, exactly.
        index = np.floor(confidence * HEIGHT * WIDTH).astype(np.int64)
        source_rows, source_cols = index // WIDTH, index % WIDTH
        np.testing.assert_array_equal(mask, _mask_of(source_rows, source_cols))
        # The image is bilinear-resampled (pixel-centre aligned) while cv2's nearest floors
        # dst * (1 / s): they differ by < 1 + |1/s - 1| / 2 <= 1.5 source pixels at s >= 0.5.
        # A crop or flip mismatch would be off by many pixels.
        image_rows, image_cols = bgr[2] / 4.0, bgr[1] / 4.0
        assert np.abs(image_rows - source_rows).max() <= 1.6
        assert np.abs(image_cols - source_cols).max() <= 1.6
        # A horizontal flip reverses the column order (upscaling repeats columns: steps of 0).
        steps = np.diff(source_cols, axis=1)
        assert (steps <= 0).all() if sample.flip else (steps >= 0).all()
        assert (steps != 0).any()
    assert flips == {True, False}
    assert len(shapes) > 1  # some crops were limited by a small rescale


def test_png_confidence_is_scaled_to_unit_range(tmp_path: Path) -> None:
    info = _write_sample(tmp_path, "png")
    confidence = read_confidence_map(info["confidence_path"])
    assert confidence.dtype == np.float32 and confidence.shape == (HEIGHT, WIDTH)
    assert confidence.max() == pytest.approx(1.0) and confidence.min() == 0.0


def test_missing_confidence_path_leaves_sample_without_map(tmp_path: Path) -> None:
    info = _write_sample(tmp_path, "npy")
    del info["confidence_path"]
    np.random.seed(0)
    packed = _pipeline()(dict(info, seg_fields=[]))
    assert "gt_confidence_map" not in packed["data_samples"]


def test_confidence_with_wrong_size_is_rejected(tmp_path: Path) -> None:
    info = _write_sample(tmp_path, "npy")
    np.save(tmp_path / "confidence.npy", np.ones((HEIGHT, WIDTH + 1), np.float16))
    with pytest.raises(ValueError, match="shape"):
        _pipeline()(dict(info, seg_fields=[]))
