"""Grad-CAM channel weights through CLIP's last ViT block in closed form.

Grad-CAM needs, per tag c, only the spatial mean over patch tokens of the gradient of the tag's
probability w.r.t. the last block's `ln_1` output, `w_c = mean_i ds_c/dA_i`. Autograd computes
the full per-token gradient and averages it. Here the backward is written out and the mean is
pushed as early as linearity allows:

* the q/k/v projection is linear, so `w_c = [mean dq, mean dk, mean dv] @ W_in`;
* `mean_i dv_i = sum_j (1 - P_j0) dO_j / hw` (the attention columns of patch keys sum to
  `1 - P_j0`), and the means of dq and dk reduce to one `P^T dO` product per head plus
  `O(L * d)` terms, instead of the four `L x L` products and the softmax backward;
* the LayerNorm, MLP and output projections are back-propagated per token as usual.

The forward is computed with the same operations as `nn.MultiheadAttention(need_weights=True)`,
so the attention map and pooled feature are bit-identical to the reference's. Per tag this costs
three GEMMs and one attention-sized product, against roughly twice that for autograd; the result
equals autograd's to float rounding (tested).

Supported blocks: open_clip `ResidualAttentionBlock` with identity LayerScale and a QuickGELU or
exact-GELU MLP (all CLIP ViTs from OpenAI and most open_clip ones); `supports_closed_form`
says whether a block qualifies, and callers fall back to autograd otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from wsss.clip.vision import attention_from_qkv, layer_norm_fp32

if TYPE_CHECKING:
    from wsss.open_clip_types import ResidualAttentionBlock


@dataclass
class LastBlockForward:
    """Intermediates of the last block kept for the closed-form backward.

    Shapes use B images, L = 1 + h*w tokens, D width, H heads, d = D/H, F = MLP width.
    """

    ln1: torch.Tensor  # (B, L, D) ln_1 output = Grad-CAM activations
    q: torch.Tensor  # (B, H, L, d) unscaled queries
    k: torch.Tensor  # (B, H, L, d)
    v: torch.Tensor  # (B, H, L, d)
    probs: torch.Tensor  # (B, H, L, L) attention probabilities
    head_out: torch.Tensor  # (B, H, L, d) per-head attention outputs P @ v
    ln2_hat: torch.Tensor  # (B, L, D) normalised input of ln_2
    ln2_rstd: torch.Tensor  # (B, L, 1)
    mlp_hidden: torch.Tensor  # (B, L, F) pre-activation of the MLP
    post_hat: torch.Tensor  # (B, L, D) normalised input of ln_post
    post_rstd: torch.Tensor  # (B, L, 1)
    attention: torch.Tensor  # (B, h*w, h*w) fp32 head-averaged attention, CLS removed
    pooled: torch.Tensor  # (B, E) image feature


def supports_closed_form(block: ResidualAttentionBlock) -> bool:
    """True for blocks whose backward `channel_weights` implements."""
    activation = getattr(getattr(block, "mlp", None), "gelu", None)
    quick = type(activation).__name__ == "QuickGELU"
    exact_gelu = isinstance(activation, nn.GELU) and activation.approximate == "none"
    return (
        (quick or exact_gelu)
        and isinstance(block.ls_1, nn.Identity)
        and isinstance(block.ls_2, nn.Identity)
        and isinstance(block.ln_1, nn.LayerNorm)
        and isinstance(block.ln_2, nn.LayerNorm)
    )


def _normalised(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.float()
    mean = x.mean(dim=-1, keepdim=True)
    rstd = torch.rsqrt(x.var(dim=-1, unbiased=False, keepdim=True) + eps)
    return (x - mean) * rstd, rstd


def _layer_norm_backward(grad: torch.Tensor, x_hat: torch.Tensor, rstd: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """d loss / d x of `LayerNorm` given d loss / d output. Shapes broadcast over leading dims."""
    g = grad * gamma
    return rstd * (g - g.mean(dim=-1, keepdim=True) - x_hat * (g * x_hat).mean(dim=-1, keepdim=True))


def _activation_derivative(activation: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    if type(activation).__name__ == "QuickGELU":
        sig = torch.sigmoid(1.702 * hidden)
        return sig + 1.702 * hidden * sig * (1 - sig)
    cdf = 0.5 * (1 + torch.erf(hidden / math.sqrt(2.0)))
    return cdf + hidden * torch.exp(-0.5 * hidden * hidden) / math.sqrt(2 * math.pi)


def forward_last_block(block: ResidualAttentionBlock, tokens: torch.Tensor, ln_post: nn.LayerNorm, proj: torch.Tensor) -> LastBlockForward:
    """Run the last block and CLIP-ES pooling without autograd, keeping what the backward needs.

    Shape: tokens `(B, L, D)`.
    """
    batch = tokens.shape[0]
    heads = block.attn.num_heads
    with torch.no_grad():
        ln1 = layer_norm_fp32(block.ln_1, tokens)
        qkv = F.linear(ln1.transpose(0, 1), block.attn.in_proj_weight, block.attn.in_proj_bias)
        parts = attention_from_qkv(block.attn, qkv)
        attended = parts.out
        x_mid = tokens + attended
        ln2_hat, ln2_rstd = _normalised(x_mid, block.ln_2.eps)
        hidden = block.mlp.c_fc(layer_norm_fp32(block.ln_2, x_mid))
        x_out = x_mid + block.mlp.c_proj(block.mlp.gelu(hidden))
        post_hat, post_rstd = _normalised(x_out, ln_post.eps)
        pooled = layer_norm_fp32(ln_post, x_out)[:, 1:, :].mean(dim=1) @ proj

    def per_head(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(batch, heads, *t.shape[1:])

    return LastBlockForward(
        ln1=ln1,
        q=per_head(parts.q),
        k=per_head(parts.k),
        v=per_head(parts.v),
        probs=per_head(parts.probs),
        head_out=per_head(parts.head_out),
        ln2_hat=ln2_hat,
        ln2_rstd=ln2_rstd,
        mlp_hidden=hidden,
        post_hat=post_hat,
        post_rstd=post_rstd,
        attention=parts.head_averaged_attention(batch),
        pooled=pooled,
    )


def channel_weights(
    block: ResidualAttentionBlock, ln_post: nn.LayerNorm, proj: torch.Tensor, cache: LastBlockForward, feature_grads: torch.Tensor
) -> torch.Tensor:
    """Grad-CAM channel weights `mean_{i>=1} d s / d ln1_i` for each tag slot.

    Args:
        block: the last `ResidualAttentionBlock` (see `supports_closed_form`).
        ln_post: the tower's final LayerNorm; proj: `(D, E)` output projection.
        cache: `forward_last_block` output for the same tokens.
        feature_grads: `(K, B, E)` gradient of each tag's probability w.r.t. the pooled feature.

    Returns:
        `(K, B, D)` float32 channel weights.
    """
    batch, heads, length, head_dim = cache.q.shape
    patches = length - 1
    scale = 1.0 / math.sqrt(head_dim)
    dtype = cache.q.dtype

    # pooled = mean_{i>=1} ln_post(x_out_i) @ proj. Every patch token receives the same output
    # gradient, so ln_post's backward is `rstd_i * (g_c - x_hat_i * (x_hat_i . g) / D)` with one
    # shared vector g_c, and its product with c_proj's weight needs `x_hat @ W` only once for
    # all tags (the CLS token gets no gradient).
    grad_pooled = (feature_grads.to(dtype) @ proj.T).float() / patches  # (K, B, D)
    gamma_grad = grad_pooled * ln_post.weight.float()
    centred = gamma_grad - gamma_grad.mean(dim=-1, keepdim=True)
    coefficient = torch.einsum("bld,kbd->kbl", cache.post_hat, gamma_grad) / gamma_grad.shape[-1]
    rstd = cache.post_rstd[None]  # (1, B, L, 1)
    patch_only = torch.ones(length, 1, device=rstd.device)
    patch_only[0] = 0
    grad_out = rstd * patch_only * (centred[:, :, None, :] - cache.post_hat[None] * coefficient[..., None])

    # x_out = x_mid + c_proj(act(c_fc(ln_2(x_mid))))
    c_proj = block.mlp.c_proj.weight  # (D, F)
    shared = (cache.post_hat.to(dtype) @ c_proj).float()  # (B, L, F), once for all tags
    per_tag = (centred.to(dtype) @ c_proj).float()  # (K, B, F)
    grad_act = rstd * patch_only * (per_tag[:, :, None, :] - coefficient[..., None] * shared[None])
    grad_act = grad_act.to(dtype)
    grad_hidden = grad_act * _activation_derivative(block.mlp.gelu, cache.mlp_hidden)
    grad_ln2 = (grad_hidden @ block.mlp.c_fc.weight).float()
    grad_mid = grad_out + _layer_norm_backward(grad_ln2, cache.ln2_hat, cache.ln2_rstd, block.ln_2.weight.float())

    # x_mid = x + out_proj(concat_h O_h), O_h = P_h v_h
    grad_merged = grad_mid.to(dtype) @ block.attn.out_proj.weight  # (K, B, L, D)
    grad_heads = grad_merged.view(*grad_merged.shape[:3], heads, head_dim).transpose(2, 3)  # (K, B, H, L, d)
    probs, out, q, k, v = cache.probs, cache.head_out, cache.q, cache.k, cache.v
    cls_key = probs[..., 0]  # (B, H, L): P_j0
    row_term = (grad_heads * out).sum(dim=-1)  # c_j = dO_j . O_j

    # mean dv: sum_j (1 - P_j0) dO_j
    sum_dv = ((1 - cls_key)[..., None] * grad_heads).sum(dim=-2)
    # mean dq: sum over patch queries i of dS_ij, for each key j, then times k_j
    # One product for all tags: tags are folded into the columns, (B, H, L-1, K*(d+1)).
    num_tags = grad_heads.shape[0]
    stacked = torch.cat([grad_heads[..., 1:, :], row_term[..., 1:, None]], dim=-1)
    stacked = stacked.permute(1, 2, 3, 0, 4).reshape(batch, heads, patches, num_tags * (head_dim + 1))
    product = probs[:, :, 1:, :].transpose(-2, -1) @ stacked  # (B, H, L, K*(d+1))
    product = product.view(batch, heads, length, num_tags, head_dim + 1).permute(3, 0, 1, 2, 4)
    weighted_grads, weighted_rows = product[..., :head_dim], product[..., head_dim]
    column_sums = (v * weighted_grads).sum(dim=-1) - weighted_rows
    sum_dq = scale * (column_sums[..., None] * k).sum(dim=-2)
    # mean dk: sum over patch keys i of dS_ji, for each query j, then times q_j
    patch_value_sum = out - cls_key[..., None] * v[:, :, :1, :]  # sum_{i>=1} P_ji v_i
    row_sums = (grad_heads * patch_value_sum).sum(dim=-1) - row_term * (1 - cls_key)
    sum_dk = scale * (row_sums[..., None] * q).sum(dim=-2)

    def merge(t: torch.Tensor) -> torch.Tensor:  # (K, B, H, d) -> (K, B, D)
        return t.reshape(*t.shape[:2], heads * head_dim)

    mean_qkv = torch.cat([merge(sum_dq), merge(sum_dk), merge(sum_dv)], dim=-1).float() / patches
    return mean_qkv @ block.attn.in_proj_weight.float()
