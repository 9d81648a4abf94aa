"""The parts of an open_clip CLIP ViT that this project reads, as types (for mypy only).

open_clip ships no type information, and torch types every submodule reached through an
`nn.Module` attribute as `Tensor | Module`. These classes name what each part of open_clip's
`CLIP` (3.x) is: the image tower (`VisionTransformer`), the text tower's pieces on the model
itself, and the residual attention blocks both towers are made of.

They are never instantiated and never used in `isinstance`: a loaded model is declared as a
`ClipModel` (`wsss.clip.loading.LoadedClip.model`), and modules import these names under
`if TYPE_CHECKING:` only, so no stage runs this module and no stage's code (its reuse-key
digest and DVC deps, `wsss.stage_code`) includes it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Mlp(nn.Module):
    """A block's MLP: `c_fc`, the activation (`gelu`), `c_proj` (an `nn.Sequential`)."""

    c_fc: nn.Linear
    gelu: nn.Module
    c_proj: nn.Linear


class ResidualAttentionBlock(nn.Module):
    """`x + ls_1(attn(ln_1(x)))`, then `x + ls_2(mlp(ln_2(x)))`."""

    ln_1: nn.LayerNorm
    attn: nn.MultiheadAttention
    ls_1: nn.Module  # LayerScale or Identity
    ln_2: nn.LayerNorm
    mlp: Mlp
    ls_2: nn.Module


class Transformer(nn.Module):
    """A stack of residual attention blocks (`resblocks` is an `nn.ModuleList`)."""

    resblocks: Sequence[ResidualAttentionBlock]

    def get_cast_dtype(self) -> torch.dtype:
        raise NotImplementedError  # open_clip's; this class only declares it


class VisionTransformer(nn.Module):
    """The image tower: patch embedding, positional embeddings, blocks, `ln_post`, projection."""

    conv1: nn.Conv2d
    class_embedding: nn.Parameter
    positional_embedding: nn.Parameter
    ln_pre: nn.Module  # LayerNorm or Identity
    transformer: Transformer
    ln_post: nn.LayerNorm
    proj: nn.Parameter


class ClipModel(nn.Module):
    """open_clip's `CLIP`: the image tower as `visual`, the text tower's parts on the model."""

    visual: VisionTransformer
    transformer: Transformer
    token_embedding: nn.Embedding
    positional_embedding: nn.Parameter
    ln_final: nn.LayerNorm
    text_projection: nn.Parameter | nn.Linear
    attn_mask: torch.Tensor
    logit_scale: nn.Parameter

    def encode_image(self, image: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        raise NotImplementedError  # open_clip's; this class only declares it

    def encode_text(self, text: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        raise NotImplementedError  # open_clip's; this class only declares it
