"""Triage without ground truth: a per-image quality score from what the pipeline already has.

Five "doubt" terms, each in [0, 1] (0 = no reason to doubt the mask):

* ``tag_doubt = 1 - clip(K * min_k p_k, 0, 1)``: ``p_k`` is CLIP's probability of tag ``k`` in the
  softmax over the image's K tags plus the background words (``tag_probabilities`` of the CAM
  store). ``K * p_k`` compares the weakest tag with an even split of the tag mass, so a
  two-tag image with 0.45/0.45 is not penalised but a tag CLIP barely sees (0.05) is.
* ``low_confidence = 1 - mean(confidence)``: the pseudo stage's per-pixel confidence (CRF
  posterior maximum, or normalised score).
* ``ignored_share``: share of mask pixels set to the ignore index (confidence below threshold).
* ``crf_disagreement``: share of pixels whose CRF label (``raw/``, before the confidence filter)
  differs from the arg-max of the refined maps without CRF. (``raw/`` vs ``masks/`` would only
  repeat the ignored share: the two differ exactly on ignored pixels.) 0 when the CRF is off.
* ``map_entropy``: mean over pixels of the entropy of the normalised scores
  ``[(1 - max_k cam)^alpha, cam_1, ..., cam_K]``, divided by ``log(K + 1)`` (1 = uniform).

``score = 1 - sum_i w_i * term_i / sum_i w_i`` with equal weights by default: 1 is a mask with no
warning sign, lower is worse; worst-first is ascending score.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from wsss.metrics import ConfusionAccumulator
from wsss.pseudo import labels_from_scores, scores_with_background

DEFAULT_WEIGHTS: Mapping[str, float] = {"tag_doubt": 1.0, "low_confidence": 1.0, "ignored_share": 1.0, "crf_disagreement": 1.0, "map_entropy": 1.0}
# Entropy and disagreement are averages: a strided subsample of ~1 Mpx gives them to < 1e-3
# at a fraction of the cost for very large photos.
MAX_SAMPLED_PIXELS = 1 << 20


@dataclass(frozen=True)
class TriageTerms:
    """The five doubt terms of one image, each in [0, 1] (see the module docstring)."""

    tag_doubt: float
    low_confidence: float
    ignored_share: float
    crf_disagreement: float
    map_entropy: float

    def as_dict(self) -> dict[str, float]:
        return {name: round(float(value), 6) for name, value in asdict(self).items()}


def _stride(shape: tuple[int, ...], max_pixels: int) -> int:
    pixels = math.prod(shape[-2:])
    return max(1, math.ceil(math.sqrt(pixels / max_pixels))) if pixels > max_pixels else 1


def tag_doubt(tag_probabilities: Sequence[float]) -> float:
    """``1 - clip(K * min_k p_k, 0, 1)``; 0 for an image without tags (nothing to doubt)."""
    probabilities = np.asarray(tag_probabilities, dtype=np.float64)
    if probabilities.size == 0:
        return 0.0
    return float(1.0 - np.clip(probabilities.size * probabilities.min(), 0.0, 1.0))


def _entropy_of_scores(scores: np.ndarray) -> float:
    channels = scores.shape[0]
    if channels <= 1:
        return 0.0
    scores = scores.astype(np.float32)
    probabilities = scores / np.maximum(scores.sum(axis=0, keepdims=True), np.float32(1e-12))
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(probabilities > 0, np.log(probabilities), 0.0)
    return float(-(probabilities * logs).sum(axis=0).mean() / math.log(channels))


def normalised_entropy(cams: np.ndarray, alpha: float = 1.0) -> float:
    """Mean per-pixel entropy of the background+tag scores over ``log(K + 1)``.

    Shape:
        cams: ``(K, H, W)`` in [0, 1]; K = 0 gives 0.
    """
    return 0.0 if cams.shape[0] == 0 else _entropy_of_scores(scores_with_background(cams, alpha))


def _disagreement(scores: np.ndarray, class_ids: Sequence[int], crf_labels: np.ndarray) -> float:
    if scores.shape[1:] != crf_labels.shape:
        raise ValueError(f"maps {scores.shape[1:]} and CRF labels {crf_labels.shape} differ in size")
    return float(np.mean(labels_from_scores(scores, np.asarray(class_ids, dtype=np.int64)) != crf_labels))


def crf_disagreement(cams: np.ndarray, class_ids: Sequence[int], crf_labels: np.ndarray, alpha: float = 1.0) -> float:
    """Share of pixels where the CRF label differs from the CAM arg-max (no CRF).

    Shape:
        cams: ``(K, H, W)``; crf_labels: ``(H, W)`` dataset labels (class c is c + 1).
    """
    return _disagreement(scores_with_background(cams, alpha), class_ids, crf_labels)


def triage_terms(
    *,
    tag_probabilities: Sequence[float],
    confidence: np.ndarray,
    labels: np.ndarray,
    crf_labels: np.ndarray,
    cams: np.ndarray,
    class_ids: Sequence[int],
    alpha: float = 1.0,
    ignore_index: int = 255,
    max_pixels: int = MAX_SAMPLED_PIXELS,
) -> TriageTerms:
    """All five terms of one image from the pipeline's outputs.

    Shape:
        confidence, labels, crf_labels: ``(H, W)``; cams: ``(K, H, W)`` (refined, as stored).
    """
    step = _stride(cams.shape, max_pixels)
    # One score stack for both terms, in the maps' stored dtype (the arg-max as the pipeline takes it).
    scores = scores_with_background(np.ascontiguousarray(cams[:, ::step, ::step]), alpha)
    return TriageTerms(
        tag_doubt=tag_doubt(tag_probabilities),
        low_confidence=float(np.clip(1.0 - float(np.mean(confidence, dtype=np.float64)), 0.0, 1.0)),
        ignored_share=float(np.mean(labels == ignore_index)),
        crf_disagreement=_disagreement(scores, class_ids, crf_labels[::step, ::step]),
        map_entropy=float(np.clip(_entropy_of_scores(scores), 0.0, 1.0)),
    )


def triage_score(terms: TriageTerms, weights: Mapping[str, float] = DEFAULT_WEIGHTS) -> float:
    """``1 - weighted mean of the terms``: 1 = no warning sign, lower = look at it first."""
    values = asdict(terms)
    unknown = sorted(set(weights) - set(values))
    if unknown or not weights or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"weights must be non-negative, not all zero, over {sorted(values)}; got {dict(weights)}")
    total = sum(weights.values())
    return float(1.0 - sum(weights[name] * values[name] for name in weights) / total)


def image_iou(ground_truth: np.ndarray, prediction: np.ndarray, num_classes: int) -> float | None:
    """mIoU of one image: the project's protocol on a single image (GT 255 not counted,
    prediction 255 a miss, IoU averaged over classes with GT pixels); None without GT pixels."""
    accumulator = ConfusionAccumulator(num_classes)
    accumulator.update(ground_truth, prediction)
    value = accumulator.scores().mean_iou
    return None if math.isnan(value) else float(value)


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given their average rank (as Spearman's rho needs)."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.arange(1, values.size + 1)
    _, tie_group = np.unique(values, return_inverse=True)
    return (np.bincount(tie_group, weights=ranks) / np.bincount(tie_group))[tie_group]


def spearman(scores: Sequence[float], ious: Sequence[float]) -> float:
    """Spearman rank correlation (ties averaged); NaN for fewer than 3 pairs or a constant side.

    numpy only: importing scipy.stats costs seconds, more than ranking 10,000 images.
    """
    a, b = np.asarray(scores, dtype=np.float64), np.asarray(ious, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"{a.shape} scores vs {b.shape} IoUs")
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])
