"""Training and evaluation decode images like every other stage: raw pixel grid, EXIF not applied.

(issue 11, finding 6) mmcv's LoadImageFromFile applies the EXIF orientation: an EXIF-3 photo
trained upside down under its upright pseudo mask, an EXIF-6 one (non-square: width and height
swap) crashed `train`. The photos here are non-square JPEGs with the Orientation tag set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mmseg")

import wsss_mmseg  # first: its mmcv.ops shim goes in before mmengine and mmseg are imported

# isort: split

from mmengine.dataset import Compose
from mmengine.registry import init_default_scope
from PIL import Image

from tests.mmseg.test_mmseg_training import _data_args
from wsss.imaging import EXIF_ORIENTATION_TAG, exif_orientation, load_rgb
from wsss_mmseg.training import build_train_config, score_segmenter, train_segmenter

TINY_CONFIG = wsss_mmseg.CONFIG_DIR / "deeplabv2_tiny_cpu.py"
CLASSES = ("background", "left", "top")
HEIGHT, WIDTH = 40, 64  # stored grid; EXIF 6 shows it as 64 x 40


@pytest.fixture(scope="module")
def exif_photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`exif3.jpg` and `exif6.jpg` (Orientation 3 and 6) with masks and confidences on the stored grid."""
    root = tmp_path_factory.mktemp("exif")
    for folder in ("images", "masks", "confidence"):
        (root / folder).mkdir()
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    # Left third red (class 1), top band blue (class 2): any rotation or flip moves them.
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[:, : WIDTH // 3] = 1
    mask[: HEIGHT // 4, WIDTH // 3 :] = 2
    image = np.stack([4 * cols, 2 * rows, 40 + 0 * rows], axis=-1).astype(np.uint8)
    image[mask == 1] = (230, 30, 30)
    image[mask == 2] = (30, 30, 230)
    for orientation in (3, 6):
        exif = Image.Exif()
        exif[EXIF_ORIENTATION_TAG] = orientation
        Image.fromarray(image).save(root / "images" / f"exif{orientation}.jpg", exif=exif, quality=95)
        Image.fromarray(mask).save(root / "masks" / f"exif{orientation}.png")
        np.save(root / "confidence" / f"exif{orientation}.npy", np.ones((HEIGHT, WIDTH), np.float16))
    (root / "train.txt").write_text("exif3\nexif6\n")
    return root


def _config(root: Path, work_dir: Path, **overrides: object):
    return build_train_config(TINY_CONFIG, work_dir, **_data_args(root, img_suffix=".jpg", class_names=CLASSES), **overrides)


@pytest.mark.parametrize("orientation", [3, 6])
def test_training_pipeline_decodes_the_stored_pixel_grid(exif_photos: Path, tmp_path: Path, orientation: int) -> None:
    path = exif_photos / "images" / f"exif{orientation}.jpg"
    assert exif_orientation(path) == orientation
    init_default_scope("mmseg")
    cfg = _config(exif_photos, tmp_path)
    loading = Compose(cfg.train_dataloader.dataset.pipeline[:2])  # the configured image + mask loading
    results = loading(
        dict(img_path=str(path), seg_map_path=str(exif_photos / "masks" / f"exif{orientation}.png"), reduce_zero_label=False, seg_fields=[])
    )
    expected = np.asarray(load_rgb(path))[..., ::-1]  # BGR, as mmcv's loader hands images on
    assert results["img"].shape[:2] == results["gt_seg_map"].shape == (HEIGHT, WIDTH)
    np.testing.assert_array_equal(results["img"], expected)

    # Control: mmcv's own loader applies the EXIF orientation (what training used to see).
    mmcv_image = Compose([dict(type="LoadImageFromFile")])(dict(img_path=str(path)))["img"]
    assert not np.array_equal(mmcv_image, expected)
    if orientation == 6:
        assert mmcv_image.shape[:2] == (WIDTH, HEIGHT)


def test_a_config_naming_mmcvs_loader_still_decodes_the_stored_grid(exif_photos: Path, tmp_path: Path) -> None:
    cfg = _config(exif_photos, tmp_path)
    assert cfg.train_dataloader.dataset.pipeline[0]["type"] == "LoadImageAsStored"
    from wsss_mmseg.transforms import use_stored_orientation

    pipeline = use_stored_orientation([dict(type="LoadImageFromFile", to_float32=True), dict(type="LoadAnnotations")])
    assert pipeline == [dict(type="LoadImageAsStored", to_float32=True), dict(type="LoadAnnotations")]


def test_exif_photos_train_and_evaluate_on_the_grid_of_their_masks(exif_photos: Path, tmp_path: Path) -> None:
    last = train_segmenter(_config(exif_photos, tmp_path, max_iters=2, batch_size=2))
    scores = score_segmenter(
        TINY_CONFIG,
        last,
        image_dir=exif_photos / "images",
        gt_dir=exif_photos / "masks",
        split_file=exif_photos / "train.txt",
        class_names=CLASSES,
        img_suffix=".jpg",
    )
    assert scores.num_pixels == 2 * HEIGHT * WIDTH  # every GT pixel scored: prediction and GT share the grid
