"""The captioned overlay strip: legend in the dataset's colours, captions, GT panel, random mark, width."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from wsss.palette import palette_png_bytes
from wsss.viz import WARNING_FILL, OverlayInputs, class_palette, overlay_figure, voc_palette

CLASSES = ("alpha", "beta", "gamma")  # a custom class list, not VOC's


def _inputs(**changes) -> OverlayInputs:
    height, width = 120, 160
    rows, cols = np.mgrid[0:height, 0:width]
    rgb = np.full((height, width, 3), 128, np.uint8)
    maps = np.stack([cols / width, rows / height]).astype(np.float32)
    pseudo = np.zeros((height, width), np.uint8)
    pseudo[20:60, 20:60], pseudo[70:110, 90:150], pseudo[:5] = 1, 2, 255
    truth = np.zeros((height, width), np.uint8)
    truth[20:60, 20:60] = 1
    values = dict(rgb=rgb, maps=maps, tags=["alpha", "beta"], class_names=CLASSES, probabilities=[0.9, 0.1], pseudo_labels=pseudo, ground_truth=truth)
    values.update(changes)
    return OverlayInputs(**values)


def _has_block(image: np.ndarray, color, size: int) -> bool:
    """A solid `size` x `size` square of exactly `color` somewhere in `image`."""
    mask = np.all(image == np.asarray(color, np.uint8), axis=-1).astype(np.int32)
    integral = np.pad(mask, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    sums = integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]
    return bool((sums == size * size).any())


def test_class_palette_is_the_palette_of_the_mask_pngs() -> None:
    with Image.open(io.BytesIO(palette_png_bytes(np.zeros((2, 2), np.uint8)))) as mask:
        png_palette = np.asarray(mask.getpalette()[: 3 * 4], np.uint8).reshape(4, 3)
    np.testing.assert_array_equal(class_palette(4), png_palette)
    with pytest.raises(ValueError, match="holds 1 to 255 labels, got 256"):
        class_palette(256)


def test_legend_shows_the_present_labels_in_the_dataset_colours() -> None:
    figure = overlay_figure(_inputs())
    legend = figure[-40:]  # below the strip
    palette = class_palette(len(CLASSES) + 1)
    for label in (0, 1, 2):  # background, alpha, beta are in the masks
        assert _has_block(legend, palette[label], 8), label
    assert _has_block(legend, voc_palette()[255], 8)  # the ignored pixels
    assert not _has_block(legend, palette[3], 4)  # gamma is in no mask: no legend entry


def test_panels_image_maps_pseudo_and_ground_truth() -> None:
    with_gt = overlay_figure(_inputs())
    without_gt = overlay_figure(_inputs(ground_truth=None))
    # Five panels (image, 2 maps, pseudo, GT) at the full 160 px, four without GT.
    assert with_gt.shape[1] - without_gt.shape[1] == 160 + 6


def test_captions_are_drawn_where_the_caption_is() -> None:
    sure = overlay_figure(_inputs(probabilities=[0.9, 0.1]))
    unsure = overlay_figure(_inputs(probabilities=[0.2, 0.1]))
    assert sure.shape == unsure.shape
    changed_rows, changed_cols = np.nonzero(np.any(sure != unsure, axis=-1))
    assert changed_rows.size > 20  # "p=0.90" vs "p=0.20" really drawn
    # Only in the caption of the first map (panel 2: x in [8 + 166, 8 + 166 + 160)), above its tile.
    assert changed_cols.min() >= 8 + 166 and changed_cols.max() < 8 + 166 + 160
    first_tile_row = np.nonzero(np.all(sure[:, 8:168] == 128, axis=-1).all(axis=1))[0].min()
    assert changed_rows.max() < first_tile_row


def test_random_weights_are_marked() -> None:
    marked = overlay_figure(_inputs(random_weights=True))
    plain = overlay_figure(_inputs())
    assert _has_block(marked[:30], WARNING_FILL, 12)
    assert not _has_block(plain, WARNING_FILL, 4)
    assert marked.shape[0] > plain.shape[0]


def test_width_is_capped_for_a_large_photo_with_many_tags() -> None:
    rgb = np.zeros((1500, 2000, 3), np.uint8)
    maps = np.zeros((6, 1500, 2000), np.float32)
    figure = overlay_figure(OverlayInputs(rgb, maps, ["alpha"] * 6, CLASSES, pseudo_labels=np.zeros((1500, 2000), np.uint8)))
    assert figure.shape[1] <= 1600 and figure.shape[0] < 400


def test_labels_outside_the_class_list_are_an_error() -> None:
    bad = np.full((120, 160), 7, np.uint8)
    with pytest.raises(ValueError, match=r"label values \[7\]"):
        overlay_figure(_inputs(pseudo_labels=bad))
    with pytest.raises(ValueError, match="1 maps for 2 tags"):
        overlay_figure(_inputs(maps=np.zeros((1, 120, 160), np.float32)))
