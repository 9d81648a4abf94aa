"""DeepLab's multi-scale (MSC) training as an mmseg segmentor.

deeplab-pytorch, the trainer CLIP-ES used, runs the network on the input at scales 1, 0.75 and 0.5,
upsamples the smaller logits to the scale-1 logits and takes their pixel-wise max; the loss is the
sum over the three scales and the max (docs/method.md, "Segmenter": "MSC training"). Inference is unchanged; the
test-time max over scales is `inference.predict_logits_batch`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from torch import Tensor


@MODELS.register_module()
class MultiScaleEncoderDecoder(EncoderDecoder):
    """EncoderDecoder whose training loss covers several input scales and their max.

    Args:
        train_scales: input scales, the first must be 1.0 (deeplab-pytorch: 1.0, 0.75, 0.5).
        **kwargs: EncoderDecoder arguments.
    """

    def __init__(self, train_scales: Sequence[float] = (1.0, 0.75, 0.5), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not train_scales or float(train_scales[0]) != 1.0:
            raise ValueError(f"train_scales must start with 1.0, got {tuple(train_scales)}")
        self.train_scales = tuple(float(s) for s in train_scales)

    def scale_logits(self, inputs: Tensor) -> list[Tensor]:
        """Logits per scale, each upsampled to the scale-1 logits' size, then their max.

        Shape: inputs `(B, 3, H, W)` -> list of `(B, C, h, w)`, length `len(train_scales) + 1`.
        """
        logits = []
        for scale in self.train_scales:
            scaled = inputs if scale == 1.0 else F.interpolate(inputs, scale_factor=scale, mode="bilinear", align_corners=False)
            logits.append(self.decode_head.forward(self.extract_feat(scaled)))
        size = logits[0].shape[-2:]
        upsampled = [logits[0], *(F.interpolate(scaled, size=size, mode="bilinear", align_corners=False) for scaled in logits[1:])]
        return [*upsampled, torch.stack(upsampled).amax(dim=0)]

    def loss(self, inputs: Tensor, data_samples: list[Any]) -> dict[str, Tensor]:
        """Decode-head losses of every scale and of the max, summed by mmengine (keys hold "loss")."""
        names = [f"scale{s:g}" for s in self.train_scales] + ["max"]
        losses: dict[str, Tensor] = {}
        for name, logits in zip(names, self.scale_logits(inputs), strict=True):
            for key, value in self.decode_head.loss_by_feat(logits, data_samples).items():
                losses[f"{key}_{name}" if "loss" in key else f"{name}.{key}"] = value
        return losses
