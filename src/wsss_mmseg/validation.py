"""Validation during training (the mIoU curve): the project's mIoU as an mmengine metric, and the val loop config."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from mmengine.config import Config
from mmengine.evaluator import BaseMetric
from mmseg.registry import METRICS

from wsss.metrics import ConfusionAccumulator, scores_from_confusion

__all__ = ["ValidationData", "WsssIoUMetric", "set_validation"]


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

    default_prefix = ""  # no prefix: the curves read `miou` (None made mmengine warn on every run)

    def __init__(self, num_classes: int | None = None, collect_device: str = "cpu", prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.num_classes = num_classes

    def process(self, data_batch: Any, data_samples: Sequence[dict[str, Any]]) -> None:
        """Store one `(C, C)` confusion matrix per image (small, so they gather cheaply)."""
        num_classes = self.num_classes or len(self.dataset_meta["classes"])
        for sample in data_samples:
            prediction = sample["pred_sem_seg"]["data"].squeeze(0).cpu().numpy().astype(np.int64)
            truth = sample["gt_sem_seg"]["data"].squeeze(0).cpu().numpy().astype(np.int64)
            accumulator = ConfusionAccumulator(num_classes)
            accumulator.update(truth, prediction)
            self.results.append((accumulator.matrix, accumulator.ignored_predictions))

    def compute_metrics(self, results: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
        """`miou` and `pixel_accuracy` over every processed image (one confusion matrix), and
        `num_images`: how many images the validation scored (the curve's `images`)."""
        matrix = np.sum([matrix for matrix, _ in results], axis=0)
        ignored = np.sum([ignored for _, ignored in results], axis=0)
        scores = scores_from_confusion(matrix, ignored)
        return {"miou": float(scores.mean_iou), "pixel_accuracy": float(scores.pixel_accuracy), "num_images": len(results)}


@dataclass(frozen=True)
class ValidationData:
    """Images with ground truth for the val loop (paths relative to the training ``data_root``).

    Attributes:
        image_dir: Folder of ``<id><img_suffix>`` images.
        gt_dir: Folder of ``<id><gt_suffix>`` label-index PNGs (255 = not scored).
        split_file: Ids to score, one per line (the train stage writes at most
            `train.val_max_images`: `wsss.training.validation_subset`).
        interval: Iterations between validations (the last iteration is always scored); None =
            the config's checkpoint interval.
        gt_suffix: Ground-truth suffix.
    """

    image_dir: str
    gt_dir: str
    split_file: str
    interval: int | None = None
    gt_suffix: str = ".png"


def set_validation(cfg: Config, validation: ValidationData, class_names: Sequence[str], img_suffix: str | None) -> None:
    """An mmengine val loop on images with ground truth, scored with `WsssIoUMetric` (curves)."""
    cfg.val_dataloader = dict(
        batch_size=1,
        num_workers=0,
        persistent_workers=False,
        sampler=dict(type="DefaultSampler", shuffle=False),
        dataset=dict(
            type="PseudoMaskDataset",
            data_root=cfg.train_dataloader.dataset.data_root,
            ann_file=validation.split_file,
            img_suffix=img_suffix or cfg.train_dataloader.dataset.get("img_suffix", ".jpg"),
            seg_map_suffix=validation.gt_suffix,
            data_prefix=dict(img_path=validation.image_dir, seg_map_path=validation.gt_dir),
            metainfo=dict(classes=tuple(class_names)),
            test_mode=True,
            pipeline=[dict(type="LoadImageAsStored"), dict(type="LoadAnnotations"), dict(type="PackSegInputs")],
        ),
    )
    cfg.val_evaluator = dict(type="WsssIoUMetric", num_classes=len(class_names))
    cfg.val_cfg = dict(type="ValLoop")
    interval = validation.interval if validation.interval is not None else cfg.default_hooks.checkpoint.interval
    cfg.train_cfg.val_interval = max(1, int(interval))
