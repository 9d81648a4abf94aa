"""Plot rows (lists of flat dicts, as `dvc plots` reads JSON) from scores and training logs.

Evaluation keys look like `cam_raw.alpha=1`, `cam_refined.alpha=1`, `pseudo.crf=on`,
`pseudo_confident_pixels.crf=on`, `model.scales=1.crf=off`, optionally with
`.background=learned`. Their prefix names the pipeline step that produced the artifact; rows
carry that step and a rank (`order`) so a chart can put them in pipeline order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from wsss.bounded_parsing import ParseError, loads_json
from wsss.metrics import SegmentationScores

# Artifact prefix -> (rank, step label). CAM -> CAA -> pseudo masks -> trained model.
PIPELINE_STEPS: dict[str, tuple[int, str]] = {
    "cam_raw": (0, "CAM"),
    "cam_refined": (1, "CAA"),
    "pseudo": (2, "pseudo"),
    "pseudo_confident_pixels": (3, "pseudo (confident pixels only)"),
    "model": (4, "model"),
}
LEARNED_SUFFIX = ".background=learned"


def artifact_step(key: str) -> tuple[int, str]:
    """Rank and step label of an evaluation key; unknown prefixes rank after the model."""
    prefix = key.split(".", 1)[0]
    return PIPELINE_STEPS.get(prefix, (len(PIPELINE_STEPS), prefix))


def _ordered_keys(keys: Iterable[str]) -> list[str]:
    """Pipeline order; within a step the fixed-background variant before the learned one."""
    return sorted(keys, key=lambda key: (artifact_step(key)[0], key.endswith(LEARNED_SUFFIX), key))


def _finite(value: float) -> bool:
    return value is not None and not math.isnan(float(value))


def per_class_iou_rows(scores: Mapping[str, SegmentationScores], class_names: Sequence[str]) -> list[dict[str, Any]]:
    """One row per (artifact, class) with a defined IoU: one bar series per artifact.

    Args:
        scores: Scores per evaluation key.
        class_names: Foreground class names; the label index is the position + 1 (0 = background).

    Returns:
        Rows `{artifact, step, order, class, class_index, iou}` in pipeline order, then class
        order. `iou` is in [0, 1]; classes whose IoU is undefined (neither in the ground truth
        nor predicted) have no row.

    Raises:
        ValueError: If a score has another number of classes than `class_names` + background.
    """
    names = ["background", *class_names]
    rows = []
    for order, key in enumerate(_ordered_keys(scores)):
        per_class = scores[key].per_class_iou
        if len(per_class) != len(names):
            raise ValueError(f"{key}: {len(per_class)} per-class IoUs for {len(names)} classes (background included)")
        step = artifact_step(key)[1]
        for index, iou in enumerate(per_class):
            if _finite(iou):
                rows.append({"artifact": key, "step": step, "order": order, "class": names[index], "class_index": index, "iou": round(float(iou), 6)})
    return rows


def pipeline_miou_rows(scores: Mapping[str, SegmentationScores]) -> list[dict[str, Any]]:
    """mIoU per artifact in pipeline order (CAM -> CAA -> pseudo -> model): one bar each.

    Returns:
        Rows `{artifact, step, order, miou, pixel_accuracy}`; artifacts without a defined mIoU
        (no ground-truth pixels) are left out.
    """
    rows = []
    for order, key in enumerate(_ordered_keys(scores)):
        score = scores[key]
        if not _finite(score.mean_iou):
            continue
        accuracy = score.pixel_accuracy
        rows.append(
            {
                "artifact": key,
                "step": artifact_step(key)[1],
                "order": order,
                "miou": round(float(score.mean_iou), 6),
                "pixel_accuracy": round(float(accuracy), 6) if _finite(accuracy) else None,
            }
        )
    return rows


def _scalar_records(texts: Iterable[str]) -> list[dict[str, Any]]:
    records = []
    for text in texts:
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = loads_json(line, f"scalars line {number}")
            except ParseError as error:
                raise ValueError(f"scalars line {number} is not JSON ({error})") from error
            if isinstance(record, dict):
                records.append(record)
    return records


def training_curve_rows(scalar_logs: Iterable[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Loss / lr and validation mIoU by iteration from mmengine `vis_data/scalars.json` texts.

    mmengine's `LocalVisBackend` writes one JSON object per line: training lines carry `iter`,
    `loss` and `lr` (plus the loss terms), validation lines the metrics and `step` (the
    iteration they were computed at). A resumed run writes a new file: pass the logs oldest
    first; a later value for the same iteration replaces the earlier one.

    Args:
        scalar_logs: The texts of the scalars files, oldest first.

    Returns:
        `(train_rows, val_rows)`: `{iter, loss, lr}` sorted by iteration (every other numeric
        training scalar whose name contains "loss" is kept too), and `{iter, miou}` with mIoU in
        [0, 1] (`miou` as logged by `wsss_mmseg`'s metric, or mmseg's `mIoU` percentage / 100),
        plus `images` (how many were scored) when the metric logged `num_images`.

    Raises:
        ValueError: If a line is not JSON.
    """
    train: dict[int, dict[str, Any]] = {}
    val: dict[int, dict[str, Any]] = {}
    for record in _scalar_records(scalar_logs):
        if "loss" in record and "iter" in record:
            step = int(record["iter"])
            row: dict[str, Any] = {"iter": step}
            for name, value in record.items():
                if isinstance(value, (int, float)) and (name == "lr" or "loss" in name):
                    row[name] = float(value)
            train[step] = row
        elif "miou" in record or "mIoU" in record:
            step = int(record.get("step", record.get("iter", 0)))
            miou = float(record["miou"]) if "miou" in record else float(record["mIoU"]) / 100.0
            val[step] = {"iter": step, "miou": round(miou, 6), **({"images": int(record["num_images"])} if "num_images" in record else {})}
    return [train[step] for step in sorted(train)], [val[step] for step in sorted(val)]
