"""Rows for `dvc plots`: per-class IoU, mIoU along the pipeline, training curves (pure functions).

The chart templates that draw these rows live in `.dvc/plots/` (DVC's template folder); the
offline HTML page that holds the chart library is made by `wsss.plots.offline_html`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsss.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from wsss.plots.rows import PIPELINE_STEPS, artifact_step, per_class_iou_rows, pipeline_miou_rows, training_curve_rows

__all__ = ["PIPELINE_STEPS", "artifact_step", "per_class_iou_rows", "pipeline_miou_rows", "training_curve_rows"]

__getattr__, __dir__ = lazy_exports(__name__, __file__)
