"""Segmentation metrics (confusion matrix, IoU) following the CLIP-ES / deeplab-pytorch protocol."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsss.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from wsss.metrics.iou import ConfusionAccumulator, SegmentationScores, confusion_matrix, scores_from_confusion

__all__ = ["ConfusionAccumulator", "SegmentationScores", "confusion_matrix", "scores_from_confusion"]

__getattr__, __dir__ = lazy_exports(__name__, __file__)
