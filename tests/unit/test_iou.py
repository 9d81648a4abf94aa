"""Tests of wsss.metrics.iou on hand-built label maps with hand-computed scores."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from wsss.metrics import ConfusionAccumulator, confusion_matrix, scores_from_confusion

# Three classes. Pixel pairs (gt, pred): (0,0) (0,0) (0,1) / (1,1) (1,2) (2,2)
GT = np.array([[0, 0, 0], [1, 1, 2]])
PRED = np.array([[0, 0, 1], [1, 2, 2]])
# Confusion matrix (rows GT, cols prediction):
#   [[2, 1, 0],
#    [0, 1, 1],
#    [0, 0, 1]]
# row sums (3, 2, 1), column sums (2, 2, 2), diagonal (2, 1, 1)
EXPECTED_MATRIX = np.array([[2, 1, 0], [0, 1, 1], [0, 0, 1]])
# IoU = diag / (row + col - diag): 2/(3+2-2) = 2/3, 1/(2+2-1) = 1/3, 1/(1+2-1) = 1/2
EXPECTED_IOU = np.array([2 / 3, 1 / 3, 1 / 2])


def test_confusion_matrix_by_hand() -> None:
    matrix = confusion_matrix(GT, PRED, num_classes=3)
    assert matrix.dtype == np.int64
    np.testing.assert_array_equal(matrix, EXPECTED_MATRIX)


def test_scores_by_hand() -> None:
    accumulator = ConfusionAccumulator(3)
    accumulator.update(GT, PRED)
    scores = accumulator.scores()
    np.testing.assert_allclose(scores.per_class_iou, EXPECTED_IOU)
    # (2/3 + 1/3 + 1/2) / 3 = 1/2
    assert scores.mean_iou == pytest.approx(0.5)
    # 4 correct of 6
    assert scores.pixel_accuracy == pytest.approx(4 / 6)
    # recall (2/3, 1/2, 1) -> mean 13/18
    assert scores.mean_accuracy == pytest.approx(13 / 18)
    # frequencies (3/6, 2/6, 1/6): 1/2 * 2/3 + 1/3 * 1/3 + 1/6 * 1/2 = 19/36
    assert scores.frequency_weighted_iou == pytest.approx(19 / 36)
    assert scores.num_pixels == 6


def test_gt_ignore_label_is_not_counted() -> None:
    gt = np.concatenate([GT, [[255, 255, 255]]])
    pred = np.concatenate([PRED, [[1, 255, 0]]])
    np.testing.assert_array_equal(confusion_matrix(gt, pred, 3), EXPECTED_MATRIX)
    accumulator = ConfusionAccumulator(3)
    accumulator.update(gt, pred)
    assert accumulator.scores().num_pixels == 6
    np.testing.assert_array_equal(accumulator.ignored_predictions, [0, 0, 0])


def test_class_absent_from_gt_is_left_out_of_the_mean() -> None:
    # Four classes; class 2 is predicted once but never in the GT, class 3 appears nowhere.
    gt = np.array([[0, 0], [1, 1]])
    pred = np.array([[0, 2], [1, 1]])
    # matrix rows: [1, 0, 1, 0], [0, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]
    # IoU: 1/(2+1-1) = 1/2, 2/(2+2-2) = 1, 0/(0+1-0) = 0, 0/0 = NaN
    accumulator = ConfusionAccumulator(4)
    accumulator.update(gt, pred)
    scores = accumulator.scores()
    np.testing.assert_allclose(scores.per_class_iou[:3], [0.5, 1.0, 0.0])
    assert math.isnan(scores.per_class_iou[3])
    # Only classes 0 and 1 have GT: (1/2 + 1) / 2, not (1/2 + 1 + 0) / 3.
    assert scores.mean_iou == pytest.approx(0.75)


def test_ignored_prediction_counts_as_a_miss() -> None:
    gt = np.array([[0, 0], [1, 1]])
    pred = np.array([[0, 255], [1, 1]])
    # The 255 is in neither row nor column of the matrix ...
    np.testing.assert_array_equal(confusion_matrix(gt, pred, 2), [[1, 0], [0, 2]])
    accumulator = ConfusionAccumulator(2)
    accumulator.update(gt, pred)
    np.testing.assert_array_equal(accumulator.matrix, [[1, 0], [0, 2]])
    # ... but is reported for GT class 0 and counted in its row sum:
    # IoU_0 = 1 / (2 + 1 - 1) = 1/2 (instead of 1 if the pixel were dropped), IoU_1 = 1.
    np.testing.assert_array_equal(accumulator.ignored_predictions, [1, 0])
    scores = accumulator.scores()
    np.testing.assert_allclose(scores.per_class_iou, [0.5, 1.0])
    assert scores.mean_iou == pytest.approx(0.75)
    assert scores.pixel_accuracy == pytest.approx(3 / 4)
    assert scores.mean_accuracy == pytest.approx((1 / 2 + 1) / 2)
    assert scores.num_pixels == 4


def test_accumulating_two_images_equals_one_concatenated_image() -> None:
    rng = np.random.default_rng(0)
    gt_a, gt_b = rng.integers(0, 4, size=(2, 5, 6))
    pred_a, pred_b = rng.integers(0, 4, size=(2, 5, 6))
    gt_a[0, :3] = 255
    pred_b[2, 1:4] = 255
    separate = ConfusionAccumulator(4)
    separate.update(gt_a, pred_a)
    separate.update(gt_b, pred_b)
    together = ConfusionAccumulator(4)
    together.update(np.concatenate([gt_a, gt_b], axis=1), np.concatenate([pred_a, pred_b], axis=1))
    np.testing.assert_array_equal(separate.matrix, together.matrix)
    np.testing.assert_array_equal(separate.ignored_predictions, together.ignored_predictions)
    assert separate.scores().mean_iou == together.scores().mean_iou


def test_shape_mismatch_raises_naming_both_shapes() -> None:
    accumulator = ConfusionAccumulator(3)
    with pytest.raises(ValueError, match=r"\(2, 2\).*\(2, 3\)"):
        accumulator.update(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8))


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        ConfusionAccumulator(0)
    with pytest.raises(ValueError, match="integer"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 2)), 3)
    with pytest.raises(ValueError, match="square"):
        scores_from_confusion(np.zeros((2, 3)))


def test_to_dict_is_json_friendly() -> None:
    accumulator = ConfusionAccumulator(3)
    accumulator.update(np.array([[0, 1]]), np.array([[0, 1]]))
    summary = accumulator.scores().to_dict(["background", "cat", "dog"])
    # "dog" has neither GT nor prediction: NaN -> None.
    assert summary["per_class_iou"] == {"background": 1.0, "cat": 1.0, "dog": None}
    assert summary["mean_iou"] == 1.0
    assert summary["num_pixels"] == 2
    json.dumps(summary, allow_nan=False)
    with pytest.raises(ValueError, match="class names"):
        accumulator.scores().to_dict(["background"])


def test_empty_accumulator_gives_nan_mean_without_warning() -> None:
    scores = ConfusionAccumulator(2).scores()
    assert math.isnan(scores.mean_iou)
    assert scores.num_pixels == 0
