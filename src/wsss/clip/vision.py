"""CLIP ViT image tower run the CLIP-ES way: native aspect ratio, per-layer attention, patch-mean.

open_clip's own forward drops attention weights (`need_weights=False`) and interpolates
positional embeddings differently, so the tower is re-run here block by block from open_clip's
modules. What CLIP-ES changes relative to a stock forward (docs/method.md, "Model and input"):

* the input keeps its aspect ratio, each side resized to a multiple of the patch size;
* the patch grid of positional embeddings is bilinearly resized (`align_corners=False`) to the
  token grid and, in the reference, rounded through fp16 (`emb.half()`), even on CPU;
* the image feature is `ln_post(mean of patch tokens) @ proj`, not the CLS token;
* the head-averaged attention map of every block is available to the affinity refinement.

Tensors are batch-first `(B, L, D)` with `L = 1 + h * w` (CLS first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from wsss.errors import CheckpointError

if TYPE_CHECKING:
    from wsss.open_clip_types import ResidualAttentionBlock, VisionTransformer


@dataclass
class TowerState:
    """Tokens after some blocks, plus the running sum of the attention maps asked for.

    Attributes:
        tokens: `(B, L, D)` residual stream.
        attention_sum: `(B, h*w, h*w)` float32 sum of head-averaged attention (CLS row and
            column dropped) over the blocks collected so far, or None.
        attention_count: how many blocks were summed.
    """

    tokens: torch.Tensor
    attention_sum: torch.Tensor | None
    attention_count: int


@dataclass
class LastBlockOutput:
    """Outputs of the final block run with autograd enabled.

    Attributes:
        ln1_tokens: `(B, L, D)` output of the last block's `ln_1`, Grad-CAM's target layer.
        qkv: `(L, B, 3D)` leaf tensor (requires grad): the packed q/k/v projection of
            `ln1_tokens`. Gradients stop here; since the projection is linear, the spatial mean
            of the gradient w.r.t. `ln1_tokens` is `mean(grad qkv) @ in_proj_weight`, which
            saves back-propagating through the projection once per tag.
        in_proj_weight: `(3D, D)` weight of that projection.
        attention: `(B, h*w, h*w)` float32 head-averaged attention of the last block, no CLS.
        pooled: `(B, E)` projected image feature (patch-token mean after `ln_post`), with grad.
    """

    ln1_tokens: torch.Tensor
    qkv: torch.Tensor
    in_proj_weight: torch.Tensor
    attention: torch.Tensor
    pooled: torch.Tensor


def layer_norm_fp32(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """LayerNorm computed in fp32 and cast back, as the reference's LayerNorm subclass does."""
    if isinstance(norm, nn.Identity):
        return x
    assert isinstance(norm, nn.LayerNorm)
    weight = norm.weight.float() if norm.weight is not None else None
    bias = norm.bias.float() if norm.bias is not None else None
    return F.layer_norm(x.float(), norm.normalized_shape, weight, bias, norm.eps).to(x.dtype)


class ClipVisionTower:
    """Block-by-block runner over an open_clip `VisionTransformer` (not an nn.Module itself).

    Args:
        visual: `model.visual` of an open_clip CLIP ViT.
        round_pos_embed_to_fp16: reproduce the reference's `emb.half()` on the resized
            positional embeddings (reference-exact mode keeps it on).
    """

    def __init__(self, visual: VisionTransformer, round_pos_embed_to_fp16: bool = True) -> None:
        _check_supported(visual)
        self.visual = visual
        self.round_pos_embed_to_fp16 = round_pos_embed_to_fp16
        self.blocks: list[ResidualAttentionBlock] = list(visual.transformer.resblocks)
        patch = visual.conv1.kernel_size
        if patch[0] != patch[1]:
            raise CheckpointError(f"non-square patches {patch} are not supported")
        self.patch_size: int = int(patch[0])
        self.compute_dtype: torch.dtype = visual.conv1.weight.dtype
        self._pos_cache: dict[tuple[int, int], torch.Tensor] = {}

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def device(self) -> torch.device:
        return self.visual.conv1.weight.device

    def positional_embedding(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """`(1 + h*w, D)` positional embedding for a `grid_h x grid_w` token grid (cached)."""
        key = (grid_h, grid_w)
        if key not in self._pos_cache:
            table = self.visual.positional_embedding.detach().float()
            cls_row, grid_rows = table[:1], table[1:]
            side = math.isqrt(grid_rows.shape[0])
            if side * side != grid_rows.shape[0]:
                raise CheckpointError(f"positional embedding of {grid_rows.shape[0]} patches is not a square grid")
            grid = grid_rows.T.reshape(1, -1, side, side)
            grid = F.interpolate(grid, size=(grid_h, grid_w), mode="bilinear", align_corners=False)
            resized = torch.cat([cls_row, grid.reshape(grid.shape[1], -1).T], dim=0)
            if self.round_pos_embed_to_fp16:
                resized = resized.half()
            self._pos_cache[key] = resized.to(self.compute_dtype)
        return self._pos_cache[key]

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """Patchify, prepend CLS, add positional embeddings, `ln_pre`.

        Shape:
            pixels `(B, 3, H, W)` with H, W multiples of the patch size -> `(B, 1 + h*w, D)`.
        """
        _, _, height, width = pixels.shape
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f"input {height}x{width} is not a multiple of the patch size {self.patch_size}")
        visual = self.visual
        x = visual.conv1(pixels.to(self.compute_dtype))
        x = x.flatten(2).transpose(1, 2)
        cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1)
        x = x + self.positional_embedding(height // self.patch_size, width // self.patch_size)
        return layer_norm_fp32(visual.ln_pre, x)

    def run_blocks(self, state: TowerState, start: int, stop: int, collect_from: int, explicit_from: int | None = None) -> TowerState:
        """Run blocks `start..stop-1`; sum the head-averaged attention of blocks >= collect_from.

        Blocks >= `explicit_from` (default: `collect_from`) form attention probabilities
        explicitly; earlier ones use the fused kernel.
        """
        explicit_from = collect_from if explicit_from is None else min(explicit_from, collect_from)
        tokens, attention_sum, count = state.tokens, state.attention_sum, state.attention_count
        for index in range(start, stop):
            block = self.blocks[index]
            tokens, attention = self._block(block, tokens, index >= explicit_from)
            if index < collect_from:
                attention = None
            if attention is not None:
                attention_sum = attention if attention_sum is None else attention_sum + attention
                count += 1
        return TowerState(tokens, attention_sum, count)

    def run_last_block(self, tokens: torch.Tensor) -> LastBlockOutput:
        """Run the final block with autograd from its q/k/v projection onwards, then pool."""
        block = self.blocks[-1]
        mha = block.attn
        ln1 = layer_norm_fp32(block.ln_1, tokens.detach())
        with torch.enable_grad():
            qkv = F.linear(ln1.transpose(0, 1), mha.in_proj_weight, mha.in_proj_bias).detach().requires_grad_(True)
            parts = attention_from_qkv(mha, qkv)
            attention = parts.head_averaged_attention(tokens.shape[0])
            x = tokens.detach() + block.ls_1(parts.out)
            x = x + block.ls_2(block.mlp(layer_norm_fp32(block.ln_2, x)))
            pooled = self.pool(x)
        return LastBlockOutput(ln1, qkv, mha.in_proj_weight, attention, pooled)

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """CLIP-ES image feature: `ln_post` on every token, mean over patch tokens, projection.

        Shape: `(B, L, D)` -> `(B, E)`.
        """
        normed = layer_norm_fp32(self.visual.ln_post, tokens)
        pooled = normed[:, 1:, :].mean(dim=1)
        return pooled @ self.visual.proj

    def pool_cls(self, tokens: torch.Tensor) -> torch.Tensor:
        """Stock CLIP image feature from the CLS token. Shape: `(B, L, D)` -> `(B, E)`."""
        return layer_norm_fp32(self.visual.ln_post, tokens[:, 0, :]) @ self.visual.proj

    def forward_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """No-grad forward of every block without attention maps: `(B, L, D)` final tokens."""
        with torch.no_grad():
            state = TowerState(self.embed(pixels), None, 0)
            return self.run_blocks(state, 0, self.num_blocks, collect_from=self.num_blocks).tokens

    def _block(self, block: ResidualAttentionBlock, x: torch.Tensor, need_attention: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, attention = _attention(block.attn, layer_norm_fp32(block.ln_1, x), need_attention)
        x = x + block.ls_1(attended)
        x = x + block.ls_2(block.mlp(layer_norm_fp32(block.ln_2, x)))
        return x, attention


def _attention(mha: nn.MultiheadAttention, x: torch.Tensor, need_attention: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Self-attention through the block's own `nn.MultiheadAttention`.

    With `need_attention` it is called exactly as the reference calls it
    (`need_weights=True`: explicit softmax, probabilities averaged over heads), and the map is
    returned in fp32 without the CLS row and column, `(B, h*w, h*w)`. Otherwise the fused path
    (`need_weights=False`) is used.
    """
    if not need_attention:
        return mha(x, x, x, need_weights=False)[0], None
    out, weights = mha(x, x, x, need_weights=True, average_attn_weights=True)
    return out, weights.detach()[:, 1:, 1:].float()


@dataclass
class AttentionParts:
    """Intermediates of multi-head self-attention, in `F.multi_head_attention_forward`'s layout.

    `q`, `k`, `v`: `(B*H, L, d)` (unscaled q); `probs`: `(B*H, L, L)`; `head_out`: `(B*H, L, d)`
    = `probs @ v`; `out`: `(B, L, D)` after the output projection.
    """

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    probs: torch.Tensor
    head_out: torch.Tensor
    out: torch.Tensor

    def head_averaged_attention(self, batch: int) -> torch.Tensor:
        """`(B, h*w, h*w)` fp32 attention averaged over heads, CLS row and column removed."""
        length = self.probs.shape[-1]
        return self.probs.detach().view(batch, -1, length, length).mean(dim=1)[:, 1:, 1:].float()


def attention_from_qkv(mha: nn.MultiheadAttention, qkv: torch.Tensor) -> AttentionParts:
    """`nn.MultiheadAttention(need_weights=True)` from an already projected `(L, B, 3D)` qkv.

    The operations and memory layouts are those of `F.multi_head_attention_forward` (split,
    per-head views, scaled query, `bmm`, softmax, `bmm`, output projection), so the result is
    bit-identical to calling the module.
    """
    length, batch, packed = qkv.shape
    dim = packed // 3
    heads = mha.num_heads
    head_dim = dim // heads
    q, k, v = qkv.unflatten(-1, (3, dim)).unsqueeze(0).transpose(0, -2).squeeze(-2).contiguous()
    q = q.view(length, batch * heads, head_dim).transpose(0, 1)
    k = k.view(length, batch * heads, head_dim).transpose(0, 1)
    v = v.view(length, batch * heads, head_dim).transpose(0, 1)
    probs = torch.bmm(q * math.sqrt(1.0 / float(head_dim)), k.transpose(-2, -1)).softmax(dim=-1)
    head_out = torch.bmm(probs, v)
    merged = head_out.transpose(0, 1).contiguous().view(length * batch, dim)
    out = F.linear(merged, mha.out_proj.weight, mha.out_proj.bias).view(length, batch, dim).transpose(0, 1)
    return AttentionParts(q, k, v, probs, head_out, out)


def _check_supported(visual: VisionTransformer) -> None:
    """Refuse towers whose forward this runner would silently get wrong."""
    required = ("conv1", "class_embedding", "positional_embedding", "ln_pre", "transformer", "ln_post", "proj")
    missing = [name for name in required if getattr(visual, name, None) is None]
    if missing:
        raise CheckpointError(f"unsupported CLIP image tower {type(visual).__name__}: missing {missing} (ViT only)")
    if getattr(visual, "attn_pool", None) is not None:
        raise CheckpointError("CLIP towers with attentional pooling are not supported")
    if not isinstance(getattr(visual, "patch_dropout", nn.Identity()), nn.Identity):
        raise CheckpointError("patch dropout must be disabled for CAM extraction")
    for index, block in enumerate(visual.transformer.resblocks):
        attn = getattr(block, "attn", None)
        if not isinstance(attn, nn.MultiheadAttention) or hasattr(block, "ln_1_kv") or attn.in_proj_weight is None:
            raise CheckpointError(f"block {index}: only open_clip ResidualAttentionBlock with packed qkv is supported")
