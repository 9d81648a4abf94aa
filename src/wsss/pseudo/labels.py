"""Turn refined class activation maps into pseudo label maps with per-pixel confidence.

The arithmetic follows the CLIP-ES reference: a background score ``(1 - max_k cams)^alpha``
is stacked in front of the per-tag CAMs, the arg-max channel is mapped back to a dataset
label (0 = background, class ``c`` -> ``c + 1``), and low-confidence pixels are set to an
ignore index.

All functions keep the dtype of the CAMs in the score arithmetic: the reference stores CAMs
as float16 and does its numpy arithmetic on float16 arrays, so promoting to float32 here
would change rounding and therefore which channel wins near ties.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PseudoLabel", "background_score", "labels_from_scores", "make_pseudo_label", "scores_with_background"]

# Labels are stored as uint8 and class c becomes label c + 1, so c must stay below 255.
_MAX_CLASS_ID = 254


@dataclass(frozen=True)
class PseudoLabel:
    """A pseudo label map together with the confidence it was derived from.

    Attributes:
        labels: Dataset labels with low-confidence pixels replaced by the ignore index.
        confidence: Per-pixel confidence of the winning channel, in [0, 1].
        raw_labels: Dataset labels before any pixel was ignored.

    Shape:
        labels: ``(H, W)`` uint8.
        confidence: ``(H, W)`` float32.
        raw_labels: ``(H, W)`` uint8.
    """

    labels: np.ndarray
    confidence: np.ndarray
    raw_labels: np.ndarray


# float16 bit patterns: positive values order like their bits, 1.0 is 0x3C00, -0.0 is 0x8000.
_FLOAT16_ONE, _FLOAT16_NEGATIVE_ZERO = 0x3C00, 0x8000


def _in_unit_interval(cams: np.ndarray) -> bool:
    """All values in [0, 1] (no NaN). For float16 (the stored maps) on the bits: numpy's float16
    comparisons convert every value, ~1.5 ms per VOC-size map pair, twice per image."""
    if cams.dtype == np.float16:
        bits = np.ascontiguousarray(cams).view(np.uint16)
        return bool(np.all((bits <= _FLOAT16_ONE) | (bits == _FLOAT16_NEGATIVE_ZERO)))
    return bool(np.all(cams >= 0) and np.all(cams <= 1))


def _check_cams(cams: np.ndarray) -> None:
    if not isinstance(cams, np.ndarray) or cams.ndim != 3:
        shape = getattr(cams, "shape", None)
        raise ValueError(f"cams must be a 3-D array of shape (K, H, W), got shape {shape}")
    if not np.issubdtype(cams.dtype, np.floating):
        raise ValueError(f"cams must be a floating-point array, got dtype {cams.dtype}")
    if cams.size and not _in_unit_interval(cams):
        # Values above 1 make (1 - max) negative, which a fractional alpha turns into NaN.
        raise ValueError(f"cams values must lie in [0, 1] (and not be NaN), got min {np.nanmin(cams)} and max {np.nanmax(cams)}")


def _check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    return alpha


def _check_class_ids(class_ids: np.ndarray, num_maps: int) -> np.ndarray:
    ids = np.asarray(class_ids)
    if ids.ndim != 1:
        raise ValueError(f"class_ids must be a 1-D array of shape (K,), got shape {ids.shape}")
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"class_ids must be integers, got dtype {ids.dtype}")
    if len(ids) != num_maps:
        raise ValueError(f"class_ids has {len(ids)} entries but there are {num_maps} CAM channels; they must match one to one")
    if ids.size and (ids.min() < 0 or ids.max() > _MAX_CLASS_ID):
        raise ValueError(f"class_ids must lie in [0, {_MAX_CLASS_ID}] so that class + 1 fits a uint8 label, got min {ids.min()} and max {ids.max()}")
    return ids.astype(np.int64)


def _label_keys(class_ids: np.ndarray) -> np.ndarray:
    """Channel index -> dataset label: 0 -> background 0, k + 1 -> class_ids[k] + 1."""
    return np.concatenate([[0], class_ids + 1]).astype(np.uint8)


def background_score(cams: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """Score of the background class from the foreground CAMs.

    Computes ``(1 - max_k cams)^alpha`` in the dtype of ``cams``. With no CAMs (K = 0) every
    pixel is background with score 1, as if the maximum over no maps were 0.

    Args:
        cams: Foreground activation maps in [0, 1], one per image-level tag.
        alpha: Exponent; larger values shrink the background score and so favour foreground.

    Returns:
        The background score, with a leading channel axis so it concatenates directly with
        ``cams``.

    Raises:
        ValueError: If ``cams`` is not 3-D floating point in [0, 1] or ``alpha <= 0``.

    Shape:
        cams: ``(K, H, W)``.
        Output: ``(1, H, W)``, same dtype as ``cams``.
    """
    _check_cams(cams)
    alpha = _check_alpha(alpha)
    if cams.shape[0] == 0:
        return np.ones((1, *cams.shape[1:]), dtype=cams.dtype)
    if alpha == 1.0 and cams.dtype == np.float16:
        # The CRF's path (alpha 1). The maximum is exact in any dtype and `1 - m` is exact in float32
        # for every float16 m in [0, 1], so one rounding to float16 gives numpy's float16 result bit
        # for bit (tests/unit/test_pseudo_labels.py), without numpy's slow float16 loops; x**1 is x.
        return (1 - cams.astype(np.float32).max(axis=0, keepdims=True)).astype(np.float16)
    # alpha is a Python float so NEP 50 keeps the float16/float32 dtype of the CAMs.
    return np.power(1 - np.max(cams, axis=0, keepdims=True), alpha)


def scores_with_background(cams: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """Stack the background score in front of the foreground CAMs.

    Args:
        cams: Foreground activation maps in [0, 1], one per image-level tag.
        alpha: Background exponent, see :func:`background_score`.

    Returns:
        Channel 0 is the background score, channel ``k + 1`` is ``cams[k]``. The scores are
        not renormalised.

    Raises:
        ValueError: If ``cams`` is not 3-D floating point in [0, 1] or ``alpha <= 0``.

    Shape:
        cams: ``(K, H, W)``.
        Output: ``(K + 1, H, W)``, same dtype as ``cams``.
    """
    background = background_score(cams, alpha)
    return np.concatenate((background, cams), axis=0)


def labels_from_scores(scores: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
    """Arg-max over channels mapped to dataset labels.

    Ties go to the lowest channel (numpy's arg-max), hence to background first, as in the
    reference.

    Args:
        scores: Background score in channel 0 followed by one channel per tag.
        class_ids: 0-based foreground class index of each tag channel.

    Returns:
        Labels where 0 is background and class ``c`` is ``c + 1``.

    Raises:
        ValueError: If ``scores`` is not 3-D or its channel count is not ``len(class_ids) + 1``,
            or a class id is outside ``[0, 254]``.

    Shape:
        scores: ``(K + 1, H, W)``.
        class_ids: ``(K,)``.
        Output: ``(H, W)`` uint8.
    """
    if not isinstance(scores, np.ndarray) or scores.ndim != 3 or scores.shape[0] < 1:
        shape = getattr(scores, "shape", None)
        raise ValueError(f"scores must be a 3-D array of shape (K + 1, H, W), got shape {shape}")
    ids = _check_class_ids(class_ids, scores.shape[0] - 1)
    return _label_keys(ids)[np.argmax(scores, axis=0)]


def make_pseudo_label(
    cams: np.ndarray,
    class_ids: np.ndarray,
    *,
    alpha: float = 1.0,
    confidence_threshold: float | None = 0.95,
    ignore_index: int = 255,
    posterior: np.ndarray | None = None,
) -> PseudoLabel:
    """Build a pseudo label map and its confidence from refined CAMs.

    With ``posterior`` (e.g. the dense-CRF output) this is the reference procedure: labels
    are the arg-max of the posterior, confidence is its maximum, and pixels with confidence
    below the threshold are ignored.

    Without ``posterior`` the labels come from :func:`scores_with_background` and the
    confidence is the winning score after normalising the scores to sum 1 over channels.
    This confidence is an extension of this project: the reference only has a confidence
    on the CRF path.

    Args:
        cams: Foreground activation maps in [0, 1], one per image-level tag.
        class_ids: 0-based foreground class index of each CAM channel.
        alpha: Background exponent used when ``posterior`` is None.
        confidence_threshold: Pixels with confidence strictly below this get
            ``ignore_index``; None keeps every pixel.
        ignore_index: Label written to low-confidence pixels.
        posterior: Optional per-pixel class probabilities, channel order as in
            :func:`scores_with_background`.

    Returns:
        The thresholded labels, the confidence, and the labels before thresholding. With
        no tags (K = 0) every pixel is background with confidence 1.

    Raises:
        ValueError: On malformed ``cams``/``class_ids``/``posterior``, ``alpha <= 0``, a
            threshold outside [0, 1], or an ``ignore_index`` that is not a free uint8 label.

    Shape:
        cams: ``(K, H, W)``.
        class_ids: ``(K,)``.
        posterior: ``(K + 1, H, W)``.
        Output fields: ``(H, W)``.
    """
    _check_cams(cams)
    ids = _check_class_ids(class_ids, cams.shape[0])
    alpha = _check_alpha(alpha)
    keys = _label_keys(ids)
    if confidence_threshold is not None:
        confidence_threshold = float(confidence_threshold)
        if not 0.0 <= confidence_threshold <= 1.0:
            raise ValueError(f"confidence_threshold must lie in [0, 1], got {confidence_threshold}")
        if not 0 <= int(ignore_index) <= 255:
            raise ValueError(f"ignore_index must fit a uint8 label, got {ignore_index}")
        if int(ignore_index) in keys:
            raise ValueError(f"ignore_index {ignore_index} collides with a label in use ({keys.tolist()})")

    height, width = cams.shape[1:]
    if cams.shape[0] == 0 and posterior is None:
        raw_labels = np.zeros((height, width), dtype=np.uint8)
        confidence = np.ones((height, width), dtype=np.float32)
    elif posterior is not None:
        expected = (cams.shape[0] + 1, height, width)
        if not isinstance(posterior, np.ndarray) or posterior.shape != expected:
            shape = getattr(posterior, "shape", None)
            raise ValueError(f"posterior must have shape (K + 1, H, W) = {expected}, got {shape}")
        raw_labels = keys[np.argmax(posterior, axis=0)]
        confidence = np.max(posterior, axis=0).astype(np.float32)
    else:
        scores = scores_with_background(cams, alpha)
        raw_labels = keys[np.argmax(scores, axis=0)]
        scores32 = scores.astype(np.float32)
        # Scores cannot all be 0: the background is 0 only where some CAM equals 1.
        confidence = np.max(scores32, axis=0) / np.sum(scores32, axis=0)

    labels = raw_labels.copy()
    if confidence_threshold is not None:
        labels[confidence < confidence_threshold] = ignore_index
    return PseudoLabel(labels=labels, confidence=confidence, raw_labels=raw_labels)
