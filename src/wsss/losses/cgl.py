"""Confidence-guided cross-entropy (the CGL of CLIP-ES, docs/method.md) as a pure tensor function.

The reference has no loss of its own: pseudo-mask pixels whose CRF confidence is below
``mu = 0.95`` are written as 255 and ``nn.CrossEntropyLoss(ignore_index=255)`` skips them
(docs/method.md, "Pseudo masks"). With the confidence map kept beside the labels, the same loss is

    L = sum_i w_i * CE_i / sum_i w_i

with one per-pixel weight ``w_i`` built from

* validity: 0 where the label is ``ignore_index``;
* confidence: ``1[conf_i >= threshold]`` in ``"hard"`` mode (exactly the reference's 255
  encoding), ``conf_i`` in ``"soft"`` mode (a smooth variant: confident pixels count more);
* ``class_weight[y_i]`` (same normalisation as ``torch.nn.functional.cross_entropy``'s
  ``weight``: a weighted mean);
* balancing (``balanced=True``, see :func:`confidence_guided_cross_entropy`).

``confidence=None`` gives plain cross-entropy with ``ignore_index``: the reference when the
pseudo masks already carry the 255 filter.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ConfidenceGuidedCrossEntropy", "ConfidenceMode", "confidence_guided_cross_entropy"]

ConfidenceMode = Literal["hard", "soft"]


def _check_inputs(
    logits: Tensor, labels: Tensor, confidence: Tensor | None, class_weight: Tensor | None, pixel_weight: Tensor | None, mode: str
) -> None:
    if logits.ndim != 4:
        raise ValueError(f"logits must be (B, C, H, W), got shape {tuple(logits.shape)}")
    batch, num_classes, height, width = logits.shape
    if labels.shape != (batch, height, width):
        raise ValueError(f"labels must be (B, H, W) = {(batch, height, width)}, got {tuple(labels.shape)}")
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"labels must be an integer tensor, got {labels.dtype}")
    for name, tensor in (("confidence", confidence), ("pixel_weight", pixel_weight)):
        if tensor is not None and tensor.shape != labels.shape:
            raise ValueError(f"{name} must have the labels' shape {tuple(labels.shape)}, got {tuple(tensor.shape)}")
    if class_weight is not None and class_weight.shape != (num_classes,):
        raise ValueError(f"class_weight must have shape ({num_classes},), got {tuple(class_weight.shape)}")
    if mode not in ("hard", "soft"):
        raise ValueError(f"mode must be 'hard' or 'soft', got {mode!r}")


def _class_balance(labels: Tensor, weights: Tensor, num_classes: int) -> Tensor:
    """Per-pixel factor ``1 / S_c`` with ``S_c`` = total weight of the pixel's class.

    Shape:
        labels: ``(N,)`` long in ``[0, C)``; weights: ``(N,)``; output: ``(N,)``.
    """
    class_totals = torch.zeros(num_classes, dtype=weights.dtype, device=weights.device)
    class_totals.scatter_add_(0, labels, weights)
    per_pixel_total = class_totals.gather(0, labels)
    # Pixels of a class whose total weight is 0 have weight 0 themselves: any finite value works.
    zeros = torch.zeros_like(per_pixel_total)
    return torch.where(per_pixel_total > 0, per_pixel_total.reciprocal(), zeros)


def confidence_guided_cross_entropy(
    logits: Tensor,
    labels: Tensor,
    confidence: Tensor | None = None,
    *,
    threshold: float = 0.95,
    mode: ConfidenceMode = "hard",
    ignore_index: int = 255,
    class_weight: Tensor | None = None,
    balanced: bool = False,
    pixel_weight: Tensor | None = None,
) -> Tensor:
    """Cross-entropy over confident, non-ignored pixels, as a weighted mean.

    Modes:
        ``"hard"``: mean CE over pixels with ``label != ignore_index`` and
        ``confidence >= threshold`` (all non-ignored pixels when ``confidence`` is None).
        With the reference's 0.95 threshold this equals ``nn.CrossEntropyLoss(ignore_index=255)``
        on masks where low-confidence pixels were set to 255.
        ``"soft"``: CE weighted by the confidence itself over non-ignored pixels, divided by
        the sum of the weights; ``threshold`` is not used.

    Balanced CE (``balanced=True``): every class present among the weighted pixels of the
    batch contributes equally, whatever its pixel count. A pixel of class ``c`` gets the
    extra factor ``1 / S_c`` where ``S_c`` is the total weight of class ``c`` in the batch
    (its number of valid pixels in hard mode), and the loss is then normalised as usual, so
    ``L = (1/K) * sum_c (weighted mean CE of class c)`` over the ``K`` present classes.
    CLIP-ES users could only train the ImageNet-initialised DeepLab without NaN after adding
    AdvCAM's balanced CE (docs/method.md, "Segmenter"), which keeps the dominant background class from swamping
    the gradient. AdvCAM's (DSRG-style) variant balances two groups, background versus all
    foreground pixels; this function balances per class, which coincides with it when a
    batch holds one foreground class.

    Args:
        logits: Unnormalised class scores.
        labels: Class indices in ``[0, C)`` or ``ignore_index``.
        confidence: Per-pixel confidence in ``[0, 1]`` (e.g. the CRF posterior max), or None
            for hard labels only.
        threshold: Hard mode: minimum confidence of a supervised pixel (``mu`` in docs/method.md).
        mode: ``"hard"`` or ``"soft"``.
        ignore_index: Label of pixels that never contribute.
        class_weight: Optional per-class weights (as ``F.cross_entropy``'s ``weight``).
        balanced: Class-balanced weighting, see above.
        pixel_weight: Optional extra per-pixel multiplicative weight (e.g. from an mmseg
            pixel sampler).

    Returns:
        Scalar loss. A batch without any weighted pixel gives 0 that still has a gradient
        path to ``logits`` (its gradient is 0), never NaN.

    Raises:
        ValueError: On shape, dtype or mode mismatches, or labels outside ``[0, C)`` that are
            not ``ignore_index``.

    Shape:
        logits: ``(B, C, H, W)``.
        labels: ``(B, H, W)`` integer.
        confidence, pixel_weight: ``(B, H, W)`` float.
        class_weight: ``(C,)``.
        Output: ``()``.
    """
    _check_inputs(logits, labels, confidence, class_weight, pixel_weight, mode)
    num_classes = logits.shape[1]
    labels = labels.long()
    valid = labels != ignore_index
    if bool(((labels < 0) | (labels >= num_classes))[valid].any()):
        bad = torch.unique(labels[valid & ((labels < 0) | (labels >= num_classes))])
        raise ValueError(f"labels {bad.tolist()} are outside [0, {num_classes}) and not ignore_index={ignore_index}")

    # CE in float32 even under autocast: log-softmax of fp16 logits loses the small losses.
    safe_labels = torch.where(valid, labels, torch.zeros_like(labels))
    pixel_ce = F.cross_entropy(logits.float(), safe_labels, reduction="none")

    weights = valid.float()
    if confidence is not None:
        confidence = confidence.to(device=logits.device, dtype=torch.float32)
        weights = weights * ((confidence >= threshold).float() if mode == "hard" else confidence.clamp(0.0, 1.0))
    if pixel_weight is not None:
        weights = weights * pixel_weight.to(device=logits.device, dtype=torch.float32)

    flat_labels = safe_labels.reshape(-1)
    flat_weights = weights.reshape(-1)
    if balanced:
        flat_weights = flat_weights * _class_balance(flat_labels, flat_weights, num_classes)
    if class_weight is not None:
        class_weight = class_weight.to(device=logits.device, dtype=torch.float32)
        flat_weights = flat_weights * class_weight[flat_labels]

    total_weight = flat_weights.sum()
    weighted_sum = (flat_weights * pixel_ce.reshape(-1)).sum()
    # When nothing is weighted the numerator is exactly 0 (a function of the logits), so
    # dividing by 1 instead of 0 returns 0 with a zero gradient rather than NaN.
    safe_total = torch.where(total_weight > 0, total_weight, torch.ones_like(total_weight))
    return weighted_sum / safe_total


class ConfidenceGuidedCrossEntropy(nn.Module):
    """``nn.Module`` wrapper of :func:`confidence_guided_cross_entropy` for plain PyTorch loops.

    Args:
        threshold: Hard-mode confidence threshold.
        mode: ``"hard"`` or ``"soft"``.
        ignore_index: Label never supervised.
        class_weight: Optional per-class weights, stored as a buffer.
        balanced: Class-balanced weighting.

    Shape:
        logits: ``(B, C, H, W)``; labels, confidence: ``(B, H, W)``; output: ``()``.
    """

    def __init__(
        self,
        threshold: float = 0.95,
        mode: ConfidenceMode = "hard",
        ignore_index: int = 255,
        class_weight: Tensor | None = None,
        balanced: bool = False,
    ) -> None:
        super().__init__()
        self.threshold = threshold
        self.mode: ConfidenceMode = mode
        self.ignore_index = ignore_index
        self.balanced = balanced
        self.class_weight: Tensor | None
        self.register_buffer("class_weight", class_weight, persistent=False)

    def forward(self, logits: Tensor, labels: Tensor, confidence: Tensor | None = None) -> Tensor:
        """Loss of one batch; see :func:`confidence_guided_cross_entropy`."""
        return confidence_guided_cross_entropy(
            logits,
            labels,
            confidence,
            threshold=self.threshold,
            mode=self.mode,
            ignore_index=self.ignore_index,
            class_weight=self.class_weight,
            balanced=self.balanced,
        )
