"""Confusion-matrix segmentation metrics following the CLIP-ES / deeplab-pytorch protocol.

Rows of the confusion matrix are ground-truth classes and columns are predictions. Pixels
whose ground truth is outside ``[0, num_classes)`` (e.g. the VOC boundary label 255) are not
counted at all.

Predictions outside ``[0, num_classes)`` need a decision the reference never had to make,
because its network predictions are always valid classes. Pseudo masks, however, contain 255
where the confidence was too low. Such a pixel is counted as *wrong*: a miss for its
ground-truth class. Internally the matrix has one extra "ignored" column; it adds to the
ground-truth row sum (recall and IoU denominators) but to no predicted class's column sum,
so it lowers the IoU of the class that was missed and raises no other class's false
positives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ConfusionAccumulator", "SegmentationScores", "confusion_matrix", "scores_from_confusion"]


def _check_pair(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"gt shape {gt.shape} does not match pred shape {pred.shape}")
    for name, array in (("gt", gt), ("pred", pred)):
        if array.size and not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"{name} must be an integer label array, got dtype {array.dtype}")
    return gt, pred


def _check_num_classes(num_classes: int) -> int:
    if int(num_classes) != num_classes or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes}")
    return int(num_classes)


def _confusion_with_ignored(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Confusion matrix with an extra last column for predictions outside the class range.

    Shape:
        gt, pred: any shape, equal.
        Output: ``(C, C + 1)`` int64.
    """
    gt, pred = _check_pair(gt, pred)
    gt = gt.ravel().astype(np.int64)
    pred = pred.ravel().astype(np.int64)
    counted = (gt >= 0) & (gt < num_classes)
    gt = gt[counted]
    pred = pred[counted]
    ignored_column = num_classes
    pred = np.where((pred >= 0) & (pred < num_classes), pred, ignored_column)
    width = num_classes + 1
    counts = np.bincount(gt * width + pred, minlength=num_classes * width)
    return counts.reshape(num_classes, width).astype(np.int64)


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Confusion matrix of one label map against another.

    Only pixels whose ground truth is in ``[0, num_classes)`` count. Predictions outside that
    range are left out of the matrix; use :class:`ConfusionAccumulator` to have them counted
    as misses.

    Args:
        gt: Ground-truth labels.
        pred: Predicted labels.
        num_classes: Number of classes ``C``, background included.

    Returns:
        ``matrix[i, j]`` = number of pixels with ground truth ``i`` predicted as ``j``.

    Raises:
        ValueError: If the shapes differ, the arrays are not integer, or ``num_classes < 1``.

    Shape:
        gt, pred: any shape, equal, e.g. ``(H, W)``.
        Output: ``(C, C)`` int64.
    """
    num_classes = _check_num_classes(num_classes)
    return _confusion_with_ignored(gt, pred, num_classes)[:, :num_classes]


@dataclass(frozen=True)
class SegmentationScores:
    """Segmentation quality derived from a confusion matrix.

    Attributes:
        per_class_iou: IoU per class; NaN where a class has neither ground truth nor
            prediction.
        mean_iou: Mean IoU over classes that have ground-truth pixels (the reference's
            ``valid`` filter), NaN if none has.
        pixel_accuracy: Correct pixels over counted pixels.
        mean_accuracy: Mean per-class recall over classes with ground truth.
        frequency_weighted_iou: IoU averaged with weights = ground-truth class frequency.
        num_pixels: Pixels counted (ground truth in range), ignored predictions included.
        ignored_predictions: Per ground-truth class, pixels predicted outside the class range.

    Shape:
        per_class_iou: ``(C,)``.
        ignored_predictions: ``(C,)``.
    """

    per_class_iou: np.ndarray
    mean_iou: float
    pixel_accuracy: float
    mean_accuracy: float
    frequency_weighted_iou: float
    num_pixels: int
    ignored_predictions: np.ndarray

    def to_dict(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        """JSON-friendly summary; NaN becomes None.

        Args:
            class_names: Names for the per-class entries, one per class; class indices as
                strings when None.

        Returns:
            The scalar scores, the pixel counts, and ``per_class_iou`` as a name -> IoU map.

        Raises:
            ValueError: If ``class_names`` does not have one name per class.
        """
        num_classes = len(self.per_class_iou)
        if class_names is None:
            class_names = [str(index) for index in range(num_classes)]
        if len(class_names) != num_classes:
            raise ValueError(f"got {len(class_names)} class names for {num_classes} classes")
        return {
            "mean_iou": _json_float(self.mean_iou),
            "pixel_accuracy": _json_float(self.pixel_accuracy),
            "mean_accuracy": _json_float(self.mean_accuracy),
            "frequency_weighted_iou": _json_float(self.frequency_weighted_iou),
            "num_pixels": int(self.num_pixels),
            "num_ignored_predictions": int(np.sum(self.ignored_predictions)),
            "per_class_iou": {str(name): _json_float(value) for name, value in zip(class_names, self.per_class_iou, strict=True)},
        }


def _json_float(value: float) -> float | None:
    value = float(value)
    return None if np.isnan(value) else value


def _nanmean(values: np.ndarray) -> float:
    """Mean ignoring NaN; NaN (without numpy's empty-slice warning) when nothing is left."""
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def scores_from_confusion(matrix: np.ndarray, ignored_predictions: np.ndarray | None = None) -> SegmentationScores:
    """Compute segmentation scores from a confusion matrix.

    ``IoU_c = H_cc / (row_c + col_c - H_cc)`` where ``row_c`` includes the pixels of class
    ``c`` whose prediction was ignored (they are misses) and ``col_c`` does not.

    Args:
        matrix: Confusion matrix, rows = ground truth, columns = prediction.
        ignored_predictions: Per ground-truth class, pixels whose prediction was outside the
            class range; zeros when None.

    Returns:
        The scores.

    Raises:
        ValueError: If ``matrix`` is not square or ``ignored_predictions`` has the wrong shape.

    Shape:
        matrix: ``(C, C)``.
        ignored_predictions: ``(C,)``.
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 1:
        raise ValueError(f"matrix must be a non-empty square (C, C) array, got {matrix.shape}")
    num_classes = matrix.shape[0]
    if ignored_predictions is None:
        ignored_predictions = np.zeros(num_classes, dtype=np.int64)
    ignored_predictions = np.asarray(ignored_predictions)
    if ignored_predictions.shape != (num_classes,):
        raise ValueError(f"ignored_predictions must have shape ({num_classes},), got {ignored_predictions.shape}")

    hits = np.diag(matrix).astype(np.float64)
    row_sum = matrix.sum(axis=1).astype(np.float64) + ignored_predictions
    col_sum = matrix.sum(axis=0).astype(np.float64)
    total = float(row_sum.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        per_class_iou = hits / (row_sum + col_sum - hits)
        recall = hits / row_sum
        pixel_accuracy = hits.sum() / total if total > 0 else float("nan")
    has_gt = row_sum > 0
    frequency = row_sum / total if total > 0 else np.zeros(num_classes)
    return SegmentationScores(
        per_class_iou=per_class_iou,
        mean_iou=_nanmean(per_class_iou[has_gt]),
        pixel_accuracy=float(pixel_accuracy),
        mean_accuracy=_nanmean(recall),
        frequency_weighted_iou=float(np.sum(frequency[has_gt] * per_class_iou[has_gt])),
        num_pixels=int(total),
        ignored_predictions=ignored_predictions.astype(np.int64),
    )


class ConfusionAccumulator:
    """Sum confusion matrices over images, counting out-of-range predictions as misses.

    Args:
        num_classes: Number of classes ``C``, background included (21 for VOC).

    Raises:
        ValueError: If ``num_classes < 1``.
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = _check_num_classes(num_classes)
        self._counts = np.zeros((self.num_classes, self.num_classes + 1), dtype=np.int64)

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """Add one image.

        Args:
            gt: Ground-truth labels; values outside ``[0, C)`` are not counted.
            pred: Predicted labels; values outside ``[0, C)`` count as misses.

        Raises:
            ValueError: If the shapes differ or the arrays are not integer.

        Shape:
            gt, pred: ``(H, W)`` (any shape, equal).
        """
        self._counts += _confusion_with_ignored(gt, pred, self.num_classes)

    def reset(self) -> None:
        """Forget every image added so far."""
        self._counts[...] = 0

    @property
    def matrix(self) -> np.ndarray:
        """Confusion matrix over in-range predictions, rows = GT. Shape: ``(C, C)`` int64."""
        return self._counts[:, : self.num_classes].copy()

    @property
    def ignored_predictions(self) -> np.ndarray:
        """Per GT class, pixels predicted outside ``[0, C)``. Shape: ``(C,)`` int64."""
        return self._counts[:, self.num_classes].copy()

    def scores(self) -> SegmentationScores:
        """Scores of everything added so far, see :func:`scores_from_confusion`."""
        return scores_from_confusion(self.matrix, self.ignored_predictions)
