"""Tests of wsss.cam.boxes (the reference's multi-contour scoremap2bbox) on hand-built maps."""

from __future__ import annotations

import numpy as np
import pytest

from wsss.cam.boxes import box_mask, contour_boxes


def expected_mask(shape: tuple[int, int], boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    """Bool mask True on rows y0..y1-1 and columns x0..x1-1 of each box."""
    mask = np.zeros(shape, dtype=bool)
    for x0, y0, x1, y1 in boxes:
        mask[y0:y1, x0:x1] = True
    return mask


def test_single_blob_box_and_mask() -> None:
    """A 2x3 blob gives boundingRect x=1, y=1, w=3, h=2 -> box (1, 1, 4, 3)."""
    cam = np.zeros((6, 6), dtype=np.float32)
    cam[1:3, 1:4] = 1.0
    assert contour_boxes(cam, 0.4) == [(1, 1, 4, 3)]
    mask = box_mask(cam, 0.4)
    assert mask.dtype == bool
    truth = np.zeros((6, 6), dtype=bool)
    truth[1, 1:4] = True
    truth[2, 1:4] = True
    np.testing.assert_array_equal(mask, truth)


def test_box_is_the_bounding_rectangle_not_the_blob() -> None:
    """An L-shaped blob fills its whole bounding rectangle in the mask."""
    cam = np.zeros((6, 6), dtype=np.float32)
    cam[1, 1:4] = 1.0  # row 1, cols 1..3
    cam[1:4, 1] = 1.0  # col 1, rows 1..3
    # boundingRect x=1, y=1, w=3, h=3 -> (1, 1, 4, 4)
    assert contour_boxes(cam, 0.5) == [(1, 1, 4, 4)]
    np.testing.assert_array_equal(box_mask(cam, 0.5), expected_mask((6, 6), [(1, 1, 4, 4)]))


def test_border_blob_loses_last_row_and_column() -> None:
    """Reference quirk: x1 = min(3 + 3, 6 - 1) = 5 is an exclusive end, so row/col 5 stay out."""
    cam = np.zeros((6, 6), dtype=np.float32)
    cam[3:6, 3:6] = 1.0
    assert contour_boxes(cam, 0.4) == [(3, 3, 5, 5)]
    mask = box_mask(cam, 0.4)
    truth = np.zeros((6, 6), dtype=bool)
    truth[3:5, 3:5] = True
    np.testing.assert_array_equal(mask, truth)
    assert not mask[5].any() and not mask[:, 5].any()


def test_cutoff_is_strict_and_scores_truncate() -> None:
    """Scores are uint8(cam * 255) truncated and kept only when > int(threshold * max)."""
    cam = np.zeros((6, 6), dtype=np.float32)
    cam[1, 1] = 1.0  # 255 = max; cutoff = int(0.4 * 255) = int(102.0) = 102
    cam[1, 3] = 0.4  # 0.4 * 255 = 102 -> equal to the cutoff -> excluded
    cam[4, 1] = 0.403  # 0.403 * 255 = 102.765 -> truncated to 102 (rounding would give 103) -> excluded
    cam[4, 4] = 0.41  # 0.41 * 255 = 104.55 -> 104 > 102 -> kept
    # Kept single pixels: (x=1, y=1, w=1, h=1) -> (1, 1, 2, 2); (4, 4, 1, 1) -> (4, 4, 5, 5)
    assert sorted(contour_boxes(cam, 0.4)) == [(1, 1, 2, 2), (4, 4, 5, 5)]
    truth = np.zeros((6, 6), dtype=bool)
    truth[1, 1] = True
    truth[4, 4] = True
    np.testing.assert_array_equal(box_mask(cam, 0.4), truth)


def test_cutoff_is_relative_to_the_map_maximum() -> None:
    """The cutoff is threshold times the uint8 maximum, not times 255."""
    cam = np.zeros((6, 6), dtype=np.float32)
    cam[1, 1] = 0.5  # 127.5 -> 127 = max; cutoff = int(0.4 * 127) = int(50.8) = 50
    cam[1, 4] = 50.5 / 255  # -> 50, not > 50 -> excluded
    cam[4, 1] = 51.5 / 255  # -> 51 > 50 -> kept (it would be dropped under a cutoff of 102)
    assert sorted(contour_boxes(cam, 0.4)) == [(1, 1, 2, 2), (1, 4, 2, 5)]


def test_two_blobs_give_two_boxes_and_their_union() -> None:
    """Every contour gives a box; the mask is the union of the boxes."""
    cam = np.zeros((6, 6), dtype=np.float32)
    cam[0:2, 0:2] = 0.9  # x=0, y=0, w=2, h=2 -> (0, 0, 2, 2)
    cam[3:5, 2:5] = 0.8  # x=2, y=3, w=3, h=2 -> (2, 3, 5, 5)
    boxes = contour_boxes(cam, 0.4)
    assert sorted(boxes) == [(0, 0, 2, 2), (2, 3, 5, 5)]
    truth = np.zeros((6, 6), dtype=bool)
    truth[0:2, 0:2] = True
    truth[3:5, 2:5] = True
    np.testing.assert_array_equal(box_mask(cam, 0.4), truth)


def test_all_zero_map_has_no_box() -> None:
    """max = 0 gives cutoff 0 and nothing strictly above it: no box, empty mask."""
    cam = np.zeros((5, 7), dtype=np.float32)
    assert contour_boxes(cam, 0.4) == []
    mask = box_mask(cam, 0.4)
    assert mask.shape == (5, 7) and not mask.any()


def test_single_bright_pixel() -> None:
    """One pixel gives a 1x1 box (x=3, y=2) -> (3, 2, 4, 3) and a one-pixel mask."""
    cam = np.zeros((6, 6), dtype=np.float32)
    cam[2, 3] = 0.7
    assert contour_boxes(cam, 0.4) == [(3, 2, 4, 3)]
    truth = np.zeros((6, 6), dtype=bool)
    truth[2, 3] = True
    np.testing.assert_array_equal(box_mask(cam, 0.4), truth)


def test_single_pixel_in_last_corner_gives_empty_mask() -> None:
    """A pixel at (5, 5) gives box (5, 5, min(6, 5), min(6, 5)) = (5, 5, 5, 5): an empty slice."""
    cam = np.zeros((6, 6), dtype=np.float32)
    cam[5, 5] = 1.0
    assert contour_boxes(cam, 0.4) == [(5, 5, 5, 5)]
    assert not box_mask(cam, 0.4).any()


def test_rejects_non_2d_map() -> None:
    """A map that is not 2-D is a ValueError."""
    with pytest.raises(ValueError, match="2-D"):
        contour_boxes(np.zeros((1, 4, 4), dtype=np.float32), 0.4)
