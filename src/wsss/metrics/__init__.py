"""Segmentation metrics (confusion matrix, IoU) following the CLIP-ES / deeplab-pytorch protocol."""

from wsss.metrics.iou import (
    ConfusionAccumulator,
    SegmentationScores,
    confusion_matrix,
    scores_from_confusion,
)

__all__ = [
    "ConfusionAccumulator",
    "SegmentationScores",
    "confusion_matrix",
    "scores_from_confusion",
]
