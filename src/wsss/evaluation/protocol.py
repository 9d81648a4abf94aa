"""The evaluation protocol: which artifacts are scored, with which variants, under which key.

Pure functions over arrays; the `evaluate` stage reads the stores and calls them, and so can a
notebook. Every number lands under a key `<artifact>.<variant>` (metrics.json nests them by
split; `dvc metrics show` prints one per artifact, `wsss.evaluation.headline`): `cam_raw.alpha=a` and `cam_refined.alpha=a`
for each background exponent,
`pseudo.crf=on|off` (the labels before the confidence filter), `pseudo_confident_pixels.crf=...`
(only the pixels the trainer learns from), `model.scales=...crf=on|off`, and the same keys
with `.background=learned` for the SemPLeS second pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from wsss.evaluation.settings import EvaluateSettings
from wsss.metrics import ConfusionAccumulator, SegmentationScores
from wsss.pseudo.labels import labels_from_scores, scores_with_background
from wsss.pseudo.settings import PseudoSettings
from wsss.pseudo.step import pseudo_label

LEARNED_SUFFIX = ".background=learned"


def overlay_choice(settings: EvaluateSettings, image_ids: Sequence[str]) -> tuple[list[str], list[str]]:
    """The images drawn as overlays (manifest order), and the `overlay_ids` that name no image of the
    manifest (reported by the stage: they used to draw "0 images" without a word)."""
    if not settings.overlay_ids:
        return list(image_ids[: settings.max_overlays]), []
    known, wanted = set(image_ids), set(settings.overlay_ids)
    return [i for i in image_ids if i in wanted], [i for i in dict.fromkeys(settings.overlay_ids) if i not in known]


@dataclass(frozen=True)
class ImageMaps:
    """What the protocol scores for one image with ground truth.

    Shape:
        ground_truth: `(H, W)` uint8; gradcam: `(K, h, w)` token-grid maps; refined: `(K, H, W)`
        as stored (float16); class_ids: `(K,)`; stage_raw_labels, stage_labels: `(H, W)` uint8,
        the pseudo stage's labels before and after the confidence filter.
    """

    ground_truth: np.ndarray
    gradcam: np.ndarray
    refined: np.ndarray
    class_ids: np.ndarray
    stage_raw_labels: np.ndarray
    stage_labels: np.ndarray
    rgb: Callable[[], np.ndarray]  # loaded only when the other CRF variant runs


def crf_word(on: bool) -> str:
    return "on" if on else "off"


class ProtocolScores:
    """One confusion matrix per metric key, over every scored image of the split."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self._accumulators: dict[str, ConfusionAccumulator] = {}

    def update(self, key: str, ground_truth: np.ndarray, prediction: np.ndarray) -> None:
        self._accumulators.setdefault(key, ConfusionAccumulator(self.num_classes)).update(ground_truth, prediction)

    def scores(self) -> dict[str, SegmentationScores]:
        return {key: accumulator.scores() for key, accumulator in sorted(self._accumulators.items())}


def argmax_labels(cams: np.ndarray, class_ids: np.ndarray, alpha: float) -> np.ndarray:
    """Labels of CAMs with the background `(1 - max)^alpha`, no CRF, no confidence filter."""
    return labels_from_scores(scores_with_background(cams, alpha), class_ids)


def score_image(scores: ProtocolScores, maps: ImageMaps, pseudo: PseudoSettings, alphas: Sequence[float]) -> None:
    """Add one image to every map and pseudo-mask key of the protocol.

    The stage's own masks are scored as written; the other CRF setting is recomputed with
    `pseudo_label` (no confidence filter), so `pseudo.crf=on` and `pseudo.crf=off` both exist.
    """
    import torch  # the map resize is CAA's (torch); evaluate starts without it

    from wsss.cam.caa import resize_maps

    gt, ids = maps.ground_truth, maps.class_ids
    upsampled = resize_maps(torch.from_numpy(np.asarray(maps.gradcam, dtype=np.float32)), gt.shape).numpy()
    for alpha in alphas:
        scores.update(f"cam_raw.alpha={alpha:g}", gt, argmax_labels(upsampled, ids, alpha))
        scores.update(f"cam_refined.alpha={alpha:g}", gt, argmax_labels(maps.refined, ids, alpha))
    scores.update(f"pseudo.crf={crf_word(pseudo.crf)}", gt, maps.stage_raw_labels)
    other = replace(pseudo, crf=not pseudo.crf, confidence_threshold=None)
    rgb = maps.rgb() if other.needs_image(ids) else None
    scores.update(f"pseudo.crf={crf_word(other.crf)}", gt, pseudo_label(rgb, maps.refined, ids, other).raw_labels)
    kept = maps.stage_labels != pseudo.ignore_index
    scores.update(f"pseudo_confident_pixels.crf={crf_word(pseudo.crf)}", np.where(kept, gt, 255).astype(np.uint8), maps.stage_labels)


def model_keys(test_scales: Sequence[float], test_crf: bool) -> list[tuple[str, bool]]:
    """(metric key, with CRF) of every scored variant of the trained segmenter."""
    scales = "scales=" + ",".join(f"{s:g}" for s in test_scales)
    return [(f"model.{scales}.crf=off", False)] + ([(f"model.{scales}.crf=on", True)] if test_crf else [])


def with_learned_background(fixed: dict[str, SegmentationScores], learned: dict[str, SegmentationScores]) -> dict[str, SegmentationScores]:
    """Both passes in one mapping: the learned pass's keys get `.background=learned`.

    The unsuffixed keys stay the fixed-background-word (reference) scores, so metrics.json lists
    e.g. `cam_refined.alpha=1` and `cam_refined.alpha=1.background=learned` side by side.
    """
    return {**fixed, **{key + LEARNED_SUFFIX: score for key, score in learned.items()}}


def background_comparison_rows(scores: dict[str, SegmentationScores]) -> list[dict[str, Any]]:
    """Rows `{artifact, fixed, learned, delta}` (mIoU) for every key scored in both passes."""
    rows = []
    for key, learned in scores.items():
        if not key.endswith(LEARNED_SUFFIX) or key[: -len(LEARNED_SUFFIX)] not in scores:
            continue
        fixed = scores[key[: -len(LEARNED_SUFFIX)]].mean_iou
        rows.append(
            {
                "artifact": key[: -len(LEARNED_SUFFIX)],
                "fixed": round(float(fixed), 4),
                "learned": round(float(learned.mean_iou), 4),
                "delta": round(float(learned.mean_iou - fixed), 4),
            }
        )
    return rows


def _rounded(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 6)


def metrics_document(split: str, scores: dict[str, SegmentationScores]) -> dict[str, Any]:
    """Nested metrics: `<split>.<artifact>.<variant>.miou` etc. (metrics.json, the full table)."""
    document: dict[str, Any] = {}
    for key, score in scores.items():
        artifact, variant = key.split(".", 1)
        document.setdefault(artifact, {})[variant] = {
            "miou": _rounded(score.mean_iou),
            "pixel_accuracy": _rounded(score.pixel_accuracy),
            "num_pixels": int(score.num_pixels),
        }
    return {split: document}


def summary_rows(scores: dict[str, SegmentationScores]) -> list[dict[str, Any]]:
    """Rows `{artifact, miou, pixels}` of the stage's table artifact."""
    return [{"artifact": k, "miou": round(float(s.mean_iou), 4), "pixels": int(s.num_pixels)} for k, s in scores.items()]


def protocol_markdown(split: str, num_images: int, pseudo: PseudoSettings, settings: EvaluateSettings) -> str:
    """The evaluation protocol, stated next to the numbers (CLIP-ES papers are often ambiguous)."""
    crf = pseudo.crf_params
    return f"""# Evaluation protocol

* Split: `{split}`, {num_images} images with ground truth (others are labelled but not scored).
* mIoU: one confusion matrix over all pixels of the split whose ground truth is in `[0, C)`
  (255 ignored); IoU averaged over classes that have ground-truth pixels.
* `cam_raw.alpha=a`: Grad-CAM maps upsampled bilinearly to full size; background `(1 - max)^a`; argmax.
* `cam_refined.alpha=a`: CAA-refined maps (float16 as stored), same rule. Alphas: {list(settings.background_alphas)}.
* `pseudo.crf=on|off`: pseudo labels before the confidence filter (the reference's `--eval_only`);
  CRF: {crf.iterations} iterations, Gaussian sxy={crf.gaussian_sxy} compat={crf.gaussian_compat}, bilateral
  sxy={crf.bilateral_sxy} srgb={crf.bilateral_srgb} compat={crf.bilateral_compat}, reference image quirk
  {"on" if pseudo.crf_reference_image_quirk else "off"}; background alpha {pseudo.background_alpha:g}.
* `pseudo_confident_pixels`: the same labels scored only where confidence >= {pseudo.confidence_threshold}
  (the pixels the trainer learns from).
* No multi-scale, no flip (the reference's CAM stage uses neither).
* `<key>.background=learned` (only when `learn_prompts.enabled`): the same artifact from the second
  pass (`artifacts/learned/`), whose softmax uses the SemPLeS learned per-class background prompts;
  unsuffixed keys use the fixed background words.
"""
