"""DeepLabV2's ASPP classifier as an mmseg decode head.

mmseg ships no DeepLabV2: its ``ASPPHead`` is the v3 design (image pooling, concatenation,
bottleneck). DeepLabV2 (the CLIP-ES trainer, deeplab-pytorch) instead *sums* four 3x3
dilated convolutions that go straight from the backbone features to class scores
(rates 6/12/18/24, padding = rate, with bias, weights N(0, 0.01), bias 0), no dropout,
no 1x1 classifier.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from torch import Tensor, nn

from wsss_mmseg.losses import ConfidenceLossMixin

__all__ = ["ASPPV2Head"]

# The same initialisation expressed as an mmengine init_cfg, so `model.init_weights()`
# re-applies it (BaseDecodeHead's default init_cfg names `conv_seg`, which this head deletes).
_ASPP_V2_INIT_CFG = dict(type="Normal", layer="Conv2d", mean=0.0, std=0.01, bias=0.0)


@MODELS.register_module()
class ASPPV2Head(ConfidenceLossMixin, BaseDecodeHead):
    """DeepLabV2 ASPP: sum of parallel dilated 3x3 convs, each a full classifier.

    The loss step passes ``gt_confidence_map`` to confidence-aware losses
    (:class:`wsss_mmseg.losses.ConfidenceLossMixin`).

    Args:
        in_channels: Backbone feature channels (2048 for ResNet-101, 512 for ResNet-18).
        num_classes: Classes, background included.
        dilations: Dilation (= padding) of each branch.
        **kwargs: Other ``BaseDecodeHead`` arguments (``loss_decode``, ``ignore_index``,
            ``align_corners``, ``in_index``, ``init_cfg``...). ``channels`` is accepted for
            config compatibility but unused, ``dropout_ratio`` must be 0 (DeepLabV2 has none).

    Raises:
        ValueError: If ``dropout_ratio`` is not 0, ``dilations`` is empty, or a multi-input
            ``input_transform`` is requested.

    Shape:
        inputs: tuple of backbone features, the selected one ``(B, in_channels, h, w)``.
        Output: ``(B, num_classes, h, w)``.
    """

    def __init__(self, in_channels: int, num_classes: int, dilations: Sequence[int] = (6, 12, 18, 24), **kwargs: object) -> None:
        if float(kwargs.pop("dropout_ratio", 0.0)) != 0.0:  # type: ignore[arg-type]
            raise ValueError("ASPPV2Head has no dropout (DeepLabV2); dropout_ratio must be 0")
        if kwargs.get("input_transform") is not None:
            raise ValueError("ASPPV2Head takes a single feature map (input_transform=None)")
        if not dilations:
            raise ValueError("dilations must name at least one branch")
        kwargs.pop("channels", None)
        kwargs.setdefault("init_cfg", dict(_ASPP_V2_INIT_CFG))
        super().__init__(
            in_channels,
            in_channels,  # `channels`: only sized the deleted conv_seg
            num_classes=num_classes,
            dropout_ratio=0.0,
            **kwargs,
        )
        # BaseDecodeHead always builds a 1x1 `conv_seg`; DeepLabV2 has none, and an unused
        # parameter would break DDP (unused-parameter error) and the optimiser's groups.
        delattr(self, "conv_seg")
        self.dilations = tuple(int(rate) for rate in dilations)
        branches = [nn.Conv2d(in_channels, self.out_channels, 3, padding=rate, dilation=rate, bias=True) for rate in self.dilations]
        self.aspp_branches = nn.ModuleList(branches)
        for branch in branches:
            nn.init.normal_(branch.weight, mean=0.0, std=0.01)
            assert branch.bias is not None  # bias=True
            nn.init.constant_(branch.bias, 0.0)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Class scores at the feature resolution (output stride 8 on a dilated ResNet).

        Args:
            inputs: Multi-level backbone features; ``in_index`` picks one.

        Returns:
            Sum of the branch outputs.

        Shape:
            Output: ``(B, num_classes, h, w)``.
        """
        features = self._transform_inputs(inputs)
        scores = self.aspp_branches[0](features)
        for branch in self.aspp_branches[1:]:
            scores = scores + branch(features)
        return scores

    def cls_seg(self, feat: Tensor) -> Tensor:
        """Not used: every ASPP branch is its own classifier."""
        raise NotImplementedError("ASPPV2Head has no separate classifier (conv_seg)")

    @torch.no_grad()
    def branch_outputs(self, inputs: Sequence[Tensor]) -> list[Tensor]:
        """Each branch's scores separately (diagnostics and tests).

        Shape:
            Each output: ``(B, num_classes, h, w)``.
        """
        features = self._transform_inputs(inputs)
        return [branch(features) for branch in self.aspp_branches]
