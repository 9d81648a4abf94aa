"""Training losses as pure tensor functions (plus thin ``nn.Module`` wrappers); no mmseg here."""

from wsss.losses.cgl import (
    ConfidenceGuidedCrossEntropy,
    ConfidenceMode,
    confidence_guided_cross_entropy,
)

__all__ = ["ConfidenceGuidedCrossEntropy", "ConfidenceMode", "confidence_guided_cross_entropy"]
