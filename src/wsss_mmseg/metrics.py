"""mmengine metric with the project's mIoU protocol, for validation during training (curves)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from mmengine.evaluator import BaseMetric
from mmseg.registry import METRICS

from wsss.metrics import ConfusionAccumulator, scores_from_confusion

__all__ = ["WsssIoUMetric"]


@METRICS.register_module()
class WsssIoUMetric(BaseMetric):
    """mIoU as :class:`wsss.metrics.ConfusionAccumulator` computes it (classes with GT pixels).

    mmseg's ``IoUMetric`` averages over every class with a non-empty union (a class predicted
    but absent from the ground truth counts as 0) and reports percent; this metric gives the
    number `evaluate` reports, in [0, 1], under the key ``miou`` (with ``pixel_accuracy``).

    Args:
        num_classes: Classes, background included; None takes the dataset's class count.
        collect_device: See ``BaseMetric``.
        prefix: See ``BaseMetric``.
    """

    default_prefix = None

    def __init__(self, num_classes: int | None = None, collect_device: str = "cpu", prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.num_classes = num_classes

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Store one `(C, C)` confusion matrix per image (small, so they gather cheaply)."""
        num_classes = self.num_classes or len(self.dataset_meta["classes"])
        for sample in data_samples:
            prediction = sample["pred_sem_seg"]["data"].squeeze(0).cpu().numpy().astype(np.int64)
            truth = sample["gt_sem_seg"]["data"].squeeze(0).cpu().numpy().astype(np.int64)
            accumulator = ConfusionAccumulator(num_classes)
            accumulator.update(truth, prediction)
            self.results.append((accumulator.matrix, accumulator.ignored_predictions))

    def compute_metrics(self, results: list) -> dict[str, float]:
        """`miou` and `pixel_accuracy` over every processed image (one confusion matrix)."""
        matrix = np.sum([matrix for matrix, _ in results], axis=0)
        ignored = np.sum([ignored for _, ignored in results], axis=0)
        scores = scores_from_confusion(matrix, ignored)
        return {"miou": float(scores.mean_iou), "pixel_accuracy": float(scores.pixel_accuracy)}
