"""The closed-form last-block backward equals autograd's spatially averaged gradient."""

from __future__ import annotations

import pytest
import torch
from open_clip.transformer import QuickGELU, ResidualAttentionBlock
from torch import nn

from wsss.cam.gradcam import channel_weights_through_linear
from wsss.cam.last_block import channel_weights, forward_last_block, supports_closed_form
from wsss.clip.vision import layer_norm_fp32


def small_block(activation: type[nn.Module], seed: int = 0) -> tuple[nn.Module, nn.LayerNorm, torch.Tensor]:
    torch.manual_seed(seed)
    block = ResidualAttentionBlock(32, 4, act_layer=activation).eval().requires_grad_(False)
    with torch.no_grad():  # peaked attention and non-trivial LayerNorm affine terms
        block.attn.in_proj_weight[:64] *= 4
        for norm in (block.ln_1, block.ln_2):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.normal_(0, 0.1)
    ln_post = nn.LayerNorm(32).eval().requires_grad_(False)
    with torch.no_grad():
        ln_post.weight.uniform_(0.5, 1.5)
    proj = torch.randn(32, 16) / 32**0.5
    return block, ln_post, proj


def autograd_weights(block, ln_post, proj, tokens, feature_grads) -> torch.Tensor:
    """Reference: grad of <feature_grads_k, pooled> w.r.t. ln_1's output, averaged over patches."""
    ln1 = layer_norm_fp32(block.ln_1, tokens).requires_grad_(True)
    out, _ = block.attn(ln1, ln1, ln1, need_weights=True)
    x = tokens + out
    x = x + block.mlp(block.ln_2(x))
    pooled = ln_post(x)[:, 1:, :].mean(dim=1) @ proj
    weights = []
    for grad in feature_grads:
        (g,) = torch.autograd.grad(pooled, ln1, grad_outputs=grad, retain_graph=True)
        weights.append(g[:, 1:, :].mean(dim=1))
    return torch.stack(weights)


@pytest.mark.parametrize("activation", [QuickGELU, nn.GELU])
def test_closed_form_matches_autograd(activation: type[nn.Module]) -> None:
    block, ln_post, proj = small_block(activation)
    assert supports_closed_form(block)
    torch.manual_seed(1)
    tokens = torch.randn(2, 1 + 12, 32)
    feature_grads = torch.randn(3, 2, 16)
    cache = forward_last_block(block, tokens, ln_post, proj)
    ours = channel_weights(block, ln_post, proj, cache, feature_grads)
    expected = autograd_weights(block, ln_post, proj, tokens, feature_grads)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-6)


def test_forward_cache_matches_the_module() -> None:
    """Pooled feature and attention are those of the block's own MultiheadAttention forward."""
    block, ln_post, proj = small_block(QuickGELU)
    tokens = torch.randn(1, 1 + 6, 32)
    cache = forward_last_block(block, tokens, ln_post, proj)
    ln1 = block.ln_1(tokens)
    out, weights = block.attn(ln1, ln1, ln1, need_weights=True)
    x = tokens + out
    x = x + block.mlp(block.ln_2(x))
    assert torch.equal(cache.attention, weights[:, 1:, 1:])
    assert torch.equal(cache.pooled, ln_post(x)[:, 1:, :].mean(dim=1) @ proj)
    assert torch.equal(cache.ln1, ln1)


def test_layer_scale_blocks_fall_back_to_autograd() -> None:
    block = ResidualAttentionBlock(32, 4, ls_init_value=0.1)
    assert not supports_closed_form(block)


def test_weights_through_a_linear_map_equal_back_projected_gradients() -> None:
    """mean_i (g_i @ W) == (mean_i g_i) @ W for y = x W^T + b."""
    torch.manual_seed(2)
    gradients = torch.randn(2, 1, 5, 6)  # (K, B, tokens, P)
    weight = torch.randn(6, 4)  # (P, D)
    expected = (gradients @ weight).mean(dim=2)
    torch.testing.assert_close(channel_weights_through_linear(gradients, weight), expected)
