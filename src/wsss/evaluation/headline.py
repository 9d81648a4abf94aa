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
the headline out; `wsss metrics` prints the same selection.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from wsss.evaluation.protocol import LEARNED_SUFFIX

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
        passes = {artifact: {variant[: len(variant) - len(suffix)]: entry for variant, entry in variants.items()
                             if (variant.endswith(suffix) if suffix else not variant.endswith(LEARNED_SUFFIX))}
                  for artifact, variants in artifacts.items() if isinstance(variants, Mapping)}
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
