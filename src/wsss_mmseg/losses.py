"""mmseg side of the confidence-guided loss: the registered loss and the head's loss step.

mmseg's ``BaseDecodeHead.loss_by_feat`` only hands a loss ``(seg_logits, seg_label, weight,
ignore_index)``. A per-pixel confidence therefore travels as its own field:
``LoadConfidenceMap`` -> ``PackSegInputsWithConfidence`` (``data_sample.gt_confidence_map``)
-> :class:`ConfidenceLossMixin.loss_by_feat` (stacks it beside the labels) ->
:class:`ConfidenceGuidedCELoss` (``confidence=`` keyword). Losses that do not declare
``accepts_confidence`` are called exactly as mmseg would call them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from mmseg.models.losses import accuracy
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch import Tensor, nn

from wsss.losses import ConfidenceMode, confidence_guided_cross_entropy

__all__ = ["ConfidenceGuidedCELoss", "ConfidenceLossMixin", "stack_confidence_maps"]


@MODELS.register_module()
class ConfidenceGuidedCELoss(nn.Module):
    """Registered wrapper of :func:`wsss.losses.confidence_guided_cross_entropy`.

    Args:
        threshold: Hard-mode confidence threshold (0.95 in CLIP-ES).
        mode: ``"hard"`` (reference) or ``"soft"``.
        balanced: Class-balanced CE (see the core function).
        class_weight: Optional per-class weights.
        loss_weight: Multiplier of the loss value.
        loss_name: Key in the loss dict; must start with ``loss_`` to be back-propagated.

    Shape:
        seg_logits: ``(B, C, H, W)``; seg_label, confidence, weight: ``(B, H, W)``.
    """

    accepts_confidence = True

    def __init__(
        self,
        threshold: float = 0.95,
        mode: ConfidenceMode = "hard",
        balanced: bool = False,
        class_weight: Sequence[float] | None = None,
        loss_weight: float = 1.0,
        loss_name: str = "loss_cgl",
    ) -> None:
        super().__init__()
        if not loss_name.startswith("loss_"):
            raise ValueError(f"loss_name must start with 'loss_' to be optimised, got {loss_name!r}")
        if mode not in ("hard", "soft"):
            raise ValueError(f"mode must be 'hard' or 'soft', got {mode!r}")
        self.threshold = float(threshold)
        self.mode: ConfidenceMode = mode
        self.balanced = bool(balanced)
        self.loss_weight = float(loss_weight)
        self._loss_name = loss_name
        self.class_weight: Tensor | None
        weight_tensor = None if class_weight is None else torch.tensor(class_weight, dtype=torch.float32)
        self.register_buffer("class_weight", weight_tensor, persistent=False)

    def forward(
        self,
        seg_logits: Tensor,
        seg_label: Tensor,
        weight: Tensor | None = None,
        ignore_index: int = 255,
        confidence: Tensor | None = None,
        **kwargs: object,
    ) -> Tensor:
        """Weighted loss of one batch.

        Args:
            seg_logits: Logits at label resolution.
            seg_label: Labels, ``ignore_index`` where unsupervised.
            weight: Optional per-pixel weights from an mmseg pixel sampler.
            ignore_index: Label never supervised.
            confidence: Optional per-pixel confidence; None means hard labels only.
            **kwargs: Accepted and ignored, for call compatibility with mmseg losses.

        Returns:
            Scalar loss times ``loss_weight``.
        """
        loss = confidence_guided_cross_entropy(
            seg_logits,
            seg_label,
            confidence,
            threshold=self.threshold,
            mode=self.mode,
            ignore_index=ignore_index,
            class_weight=self.class_weight,
            balanced=self.balanced,
            pixel_weight=weight,
        )
        return self.loss_weight * loss

    @property
    def loss_name(self) -> str:
        """Name under which mmseg logs and sums this loss (``loss_`` prefix = optimised)."""
        return self._loss_name


def stack_confidence_maps(batch_data_samples: Sequence[SegDataSample], label_size: tuple[int, int]) -> Tensor | None:
    """Stack ``data_sample.gt_confidence_map`` of a batch to the (padded) label size.

    mmseg's data preprocessor pads labels bottom/right to the batch size (value 255) but
    knows nothing of the confidence, so each map is padded the same way here (value 0; the
    labels there are 255 anyway). A sample without a map gets confidence 1 (hard labels).

    Args:
        batch_data_samples: The batch, after the data preprocessor.
        label_size: ``(H, W)`` of the stacked labels.

    Returns:
        The stacked maps, or None when no sample of the batch carries one.

    Shape:
        Output: ``(B, H, W)`` float32.
    """
    if not any("gt_confidence_map" in sample for sample in batch_data_samples):
        return None
    height, width = label_size
    maps = []
    for sample in batch_data_samples:
        if "gt_confidence_map" not in sample:
            reference = sample.gt_sem_seg.data
            maps.append(torch.ones((height, width), dtype=torch.float32, device=reference.device))
            continue
        confidence = sample.gt_confidence_map.data.float()
        if confidence.ndim == 3:
            confidence = confidence[0]
        map_height, map_width = confidence.shape
        if map_height > height or map_width > width:
            raise ValueError(f"confidence map {tuple(confidence.shape)} is larger than its labels {label_size}")
        maps.append(F.pad(confidence, (0, width - map_width, 0, height - map_height), value=0.0))
    return torch.stack(maps, dim=0)


class ConfidenceLossMixin:
    """Decode-head mixin whose ``loss_by_feat`` passes the confidence map to the losses.

    Mirrors ``BaseDecodeHead.loss_by_feat`` of mmseg 1.2.2: logits are upsampled bilinearly
    to the label size before the loss (so the confidence, which has the label size, needs no
    resizing), an optional sampler gives ``seg_weight``, same-named losses are summed and
    ``acc_seg`` is logged. Put it before ``BaseDecodeHead`` in the bases.
    """

    def loss_by_feat(self, seg_logits: Tensor, batch_data_samples: Sequence[SegDataSample]) -> dict[str, Any]:
        """Loss dict of one batch.

        Args:
            seg_logits: Head output.
            batch_data_samples: Samples with ``gt_sem_seg`` and optionally
                ``gt_confidence_map``.

        Returns:
            ``{loss_name: loss, ..., "acc_seg": accuracy}``.

        Shape:
            seg_logits: ``(B, C, h, w)``, upsampled here to the label size ``(H, W)``.
        """
        seg_label = self._stack_batch_gt(batch_data_samples)  # type: ignore[attr-defined]
        label_size = tuple(seg_label.shape[2:])
        confidence = stack_confidence_maps(batch_data_samples, label_size)
        seg_logits = resize(
            input=seg_logits,
            size=label_size,
            mode="bilinear",
            align_corners=self.align_corners,  # type: ignore[attr-defined]
        )
        sampler = self.sampler  # type: ignore[attr-defined]
        seg_weight = sampler.sample(seg_logits, seg_label) if sampler is not None else None
        seg_label = seg_label.squeeze(1)

        loss_modules = self.loss_decode  # type: ignore[attr-defined]
        if not isinstance(loss_modules, nn.ModuleList):
            loss_modules = [loss_modules]
        ignore_index = self.ignore_index  # type: ignore[attr-defined]
        losses: dict[str, Tensor] = {}
        for loss_module in loss_modules:
            accepts_confidence = getattr(loss_module, "accepts_confidence", False)
            extra = {"confidence": confidence} if accepts_confidence else {}
            value = loss_module(seg_logits, seg_label, weight=seg_weight, ignore_index=ignore_index, **extra)
            name = loss_module.loss_name
            losses[name] = losses[name] + value if name in losses else value
        losses["acc_seg"] = accuracy(seg_logits, seg_label, ignore_index=ignore_index)
        return losses
