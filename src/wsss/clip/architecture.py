"""The CLIP ViT architecture a weights file holds, checked against the configured `clip.model_name`.

OpenAI-format files carry no architecture name: open_clip rebuilds the model from the tensor
shapes. Without a check a ViT-B/32 file loads as "ViT-B-16" and every artifact's lineage says
ViT-B-16 (issue 11, finding 9). The shapes read here are the ones open_clip's
`build_model_from_openai_state_dict` uses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields

import open_clip
import torch
from open_clip.model import CLIPTextCfg, CLIPVisionCfg

__all__ = ["ClipArchitecture", "architecture_of_config", "architecture_of_openai_state_dict"]


@dataclass(frozen=True)
class ClipArchitecture:
    """Sizes that tell CLIP ViT variants apart (ViT-B/16 and ViT-B/32 differ in `patch_size`)."""

    patch_size: int
    width: int
    layers: int
    image_size: int
    embed_dim: int
    text_width: int
    text_layers: int

    def describe(self) -> str:
        return (
            f"ViT patch {self.patch_size}, width {self.width}, {self.layers} layers, {self.image_size} px input, "
            f"embedding {self.embed_dim}, text width {self.text_width} x {self.text_layers} layers"
        )

    def differences(self, other: ClipArchitecture) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]


def _count_blocks(state_dict: Mapping[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)\.")
    return len({match.group(1) for key in state_dict if (match := pattern.match(key))})


def architecture_of_openai_state_dict(state_dict: Mapping[str, torch.Tensor]) -> ClipArchitecture:
    """The architecture of an OpenAI-format ViT state dict, from its tensor shapes.

    Raises:
        KeyError: a tensor every OpenAI CLIP ViT has is missing.
    """
    conv = state_dict["visual.conv1.weight"]
    grid = round((state_dict["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    return ClipArchitecture(
        patch_size=int(conv.shape[-1]),
        width=int(conv.shape[0]),
        layers=_count_blocks(state_dict, "visual.transformer.resblocks."),
        image_size=int(conv.shape[-1]) * grid,
        embed_dim=int(state_dict["text_projection"].shape[1]),
        text_width=int(state_dict["ln_final.weight"].shape[0]),
        text_layers=_count_blocks(state_dict, "transformer.resblocks."),
    )


def architecture_of_config(model_name: str) -> ClipArchitecture | None:
    """The architecture open_clip's config `model_name` describes; None for unknown or non-ViT names."""
    config = open_clip.get_model_config(model_name)
    if not config:
        return None
    try:
        vision = CLIPVisionCfg(**config.get("vision_cfg", {}))
        text = CLIPTextCfg(**config.get("text_cfg", {}))
    except TypeError:  # a config shape this dataclass does not describe
        return None
    if vision.timm_model_name or not isinstance(vision.layers, int) or not isinstance(vision.patch_size, int):
        return None
    image_size = vision.image_size if isinstance(vision.image_size, int) else None
    if image_size is None or text.hf_model_name:
        return None
    return ClipArchitecture(
        patch_size=vision.patch_size,
        width=vision.width,
        layers=vision.layers,
        image_size=image_size,
        embed_dim=int(config["embed_dim"]),
        text_width=text.width,
        text_layers=text.layers,
    )
