"""Training losses as pure tensor functions (plus thin ``nn.Module`` wrappers); no mmseg here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsss.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from wsss.losses.cgl import ConfidenceGuidedCrossEntropy, ConfidenceMode, confidence_guided_cross_entropy

__all__ = ["ConfidenceGuidedCrossEntropy", "ConfidenceMode", "confidence_guided_cross_entropy"]

__getattr__, __dir__ = lazy_exports(__name__, __file__)
