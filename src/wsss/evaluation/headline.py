"""The headline metrics of a pipeline run, read from evaluate's `artifacts/metrics.json`: one row
per scored artifact variant (CAM, CAA-refined maps, pseudo masks, the trained model), in
pipeline order. `wsss metrics` prints them; this is the one reader of that file for summaries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wsss.bounded_parsing import read_json_file
from wsss.catalog import ArtifactLayout
from wsss.errors import WsssError
from wsss.plots.rows import artifact_step

IMAGES_KEY = "num_images_with_ground_truth"


@dataclass(frozen=True)
class HeadlineRow:
    """One scored variant: `<split>.<artifact>.<variant>` of `dvc metrics show`."""

    split: str
    artifact: str
    variant: str
    step: str
    miou: float | None
    pixel_accuracy: float | None
    num_pixels: int


def headline_rows(document: Mapping[str, Any]) -> list[HeadlineRow]:
    """The rows of a metrics document (`wsss.evaluation.metrics_document` + the image count)."""
    rows = []
    for split, artifacts in document.items():
        if split == IMAGES_KEY or not isinstance(artifacts, Mapping):
            continue
        for artifact, variants in artifacts.items():
            for variant, scores in (variants or {}).items():
                rows.append(HeadlineRow(split, artifact, variant, artifact_step(artifact)[1], scores.get("miou"),
                                        scores.get("pixel_accuracy"), int(scores.get("num_pixels") or 0)))
    return sorted(rows, key=lambda r: (r.split, artifact_step(r.artifact)[0], r.artifact, r.variant))


def read_headline(layout: ArtifactLayout) -> tuple[list[HeadlineRow], int | None]:
    """(rows, images with ground truth) of the repository's metrics file."""
    if not layout.metrics.is_file():
        raise WsssError(f"{layout.metrics}: no metrics yet; the evaluate stage writes them (`wsss run evaluate`)")
    try:
        document = read_json_file(layout.metrics)
        return headline_rows(document), document.get(IMAGES_KEY)
    except (OSError, ValueError, AttributeError, TypeError) as error:
        raise WsssError(f"{layout.metrics}: not a metrics document ({error})") from error


def format_headline(rows: list[HeadlineRow], images: int | None) -> str:
    """A compact table: step, key, mIoU, pixel accuracy."""

    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    header = f"{'step':<32} {'metric key':<44} {'mIoU':>7} {'pix.acc':>7}"
    lines = [f"{images if images is not None else '?'} image(s) with ground truth scored", header, "-" * len(header)]
    for row in rows:
        key = f"{row.split}.{row.artifact}.{row.variant}"
        lines.append(f"{row.step:<32} {key:<44} {number(row.miou):>7} {number(row.pixel_accuracy):>7}")
    if not rows:
        lines.append("(no scored artifact: no image with ground truth)")
    return "\n".join(lines)
