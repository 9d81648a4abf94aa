"""The headline metrics: one mIoU per artifact and split, chosen from the full metrics document.

`evaluate` writes every key of the protocol to `artifacts/metrics.json` (~30 numbers: each
variant's mIoU, pixel accuracy and pixel count), and `dvc metrics show` printed all of them on one
line, the pixel counts hiding the mIoU. `artifacts/metrics_headline.json` (the DVC metrics file)
holds `<split>.<artifact>.miou` only, with the variant each artifact is known by:

* `cam_raw`, `cam_refined`: the best background exponent (`evaluate.background_alphas`; the
  reference reports the best of 1 and 2);
* `pseudo`: the masks as the pseudo stage made them (its CRF setting, the one variant
  `pseudo_confident_pixels` is scored with), before the confidence filter;
* `model`: after dense CRF when it was scored (`train.test_crf`, deeplab-pytorch's protocol), else without;
* the SemPLeS pass, when it ran: the same choices under `<artifact>_learned`.

`pseudo_confident_pixels` is left out (it scores a subset of the pixels). Pure: the document in,
the headline out; `wsss metrics` prints every variant
(`headline_rows`: the one reader of `artifacts/metrics.json` for summaries) in pipeline order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wsss.bounded_parsing import read_json_file
from wsss.catalog import ArtifactLayout
from wsss.errors import WsssError
from wsss.evaluation.protocol import LEARNED_SUFFIX
from wsss.plots.rows import artifact_step

IMAGES_KEY = "num_images_with_ground_truth"


def _miou(entry: Any) -> float | None:
    value = entry.get("miou") if isinstance(entry, Mapping) else None
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _choose(artifact: str, variants: Mapping[str, Any], pseudo_variant: str | None) -> float | None:
    """The headline mIoU of one artifact from its `{variant: {miou, ...}}`."""
    if artifact in ("cam_raw", "cam_refined"):
        scores = [s for s in (_miou(entry) for entry in variants.values()) if s is not None]
        return max(scores) if scores else None
    if artifact == "pseudo":
        chosen = pseudo_variant if pseudo_variant in variants else ("crf=on" if "crf=on" in variants else None)
        return _miou(variants.get(chosen)) if chosen else None
    if artifact == "model":
        with_crf = [v for v in variants if v.endswith(".crf=on")]
        chosen = with_crf[0] if with_crf else next(iter(sorted(variants)), None)
        return _miou(variants.get(chosen)) if chosen else None
    return None


def _split_headline(artifacts: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for suffix, name_suffix in (("", ""), (LEARNED_SUFFIX, "_learned")):
        passes = {
            artifact: {
                variant[: len(variant) - len(suffix)]: entry
                for variant, entry in variants.items()
                if (variant.endswith(suffix) if suffix else not variant.endswith(LEARNED_SUFFIX))
            }
            for artifact, variants in artifacts.items()
            if isinstance(variants, Mapping)
        }
        confident = passes.get("pseudo_confident_pixels") or {}
        pseudo_variant = next(iter(confident), None)  # the stage's own CRF setting
        for artifact in ("cam_raw", "cam_refined", "pseudo", "model"):
            if passes.get(artifact):
                out[f"{artifact}{name_suffix}"] = {"miou": _choose(artifact, passes[artifact], pseudo_variant)}
    return out


def headline(document: Mapping[str, Any]) -> dict[str, Any]:
    """`{split: {artifact: {"miou": value}}, "num_images_with_ground_truth": n}` of a metrics
    document (`wsss.evaluation.protocol.metrics_document` plus the image count)."""
    out: dict[str, Any] = {}
    for split, artifacts in document.items():
        if isinstance(artifacts, Mapping):
            out[split] = _split_headline(artifacts)
    if IMAGES_KEY in document:
        out[IMAGES_KEY] = document[IMAGES_KEY]
    return out


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
                rows.append(
                    HeadlineRow(
                        split,
                        artifact,
                        variant,
                        artifact_step(artifact)[1],
                        scores.get("miou"),
                        scores.get("pixel_accuracy"),
                        int(scores.get("num_pixels") or 0),
                    )
                )
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
