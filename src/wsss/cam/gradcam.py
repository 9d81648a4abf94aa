"""Softmax Grad-CAM on CLIP (docs/method.md, "Softmax Grad-CAM").

For an image with tags Y, the softmax runs over the tags' prompts plus the background words
only; the Grad-CAM target of tag c is its softmax probability, so the gradients of competing
tags and background concepts are subtracted from c's. Activations and gradients are those of
the last block's `ln_1` output (patch tokens); channel weights are the spatial mean of the
gradients; the map is ReLU(sum_k w_k A_k), min-max normalised.

All of an image's tags are back-propagated together as one batched vector-Jacobian product
(`is_grads_batched`), which gives the same numbers as one backward per tag.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

MINMAX_EPS = 1e-7


def minmax_normalize(maps: torch.Tensor, eps: float = MINMAX_EPS) -> torch.Tensor:
    """Per-map `(x - min) / (eps + max(x - min))` over the last two dims, as `scale_cam_image`.

    Shape: `(..., h, w)` -> same.
    """
    flat = maps.flatten(-2)
    shifted = flat - flat.min(dim=-1, keepdim=True).values
    scaled = shifted / (eps + shifted.max(dim=-1, keepdim=True).values)
    return scaled.view_as(maps)


def tag_probabilities(image_features: torch.Tensor, text_features: torch.Tensor, valid_rows: torch.Tensor, logit_scale: float) -> torch.Tensor:
    """Label-restricted softmax over each image's own prompt rows.

    Args:
        image_features: `(B, E)` image features (not yet normalised).
        text_features: `(B, R, E)` normalised prompt rows per image: tags first, then
            background words; padding rows for images with fewer tags.
        valid_rows: `(B, R)` bool, False on padding rows (excluded from the softmax).
        logit_scale: `exp(logit_scale)` of the CLIP model (about 100 for OpenAI weights).

    Returns:
        `(B, R)` softmax probabilities; 0 on padding rows.
    """
    image = F.normalize(image_features.float(), dim=-1)
    text = F.normalize(text_features.float(), dim=-1)
    logits = logit_scale * torch.einsum("be,bre->br", image, text)
    logits = logits.masked_fill(~valid_rows, float("-inf"))
    return logits.softmax(dim=-1)


def tag_gradients(probabilities: torch.Tensor, leaf: torch.Tensor, tag_counts: Sequence[int], batched: bool = True) -> torch.Tensor:
    """Gradients of each tag's probability w.r.t. a leaf tensor of the graph.

    Args:
        probabilities: `(B, R)` output of `tag_probabilities`, rows `0..K_b-1` are image b's tags.
        leaf: tensor the probabilities were computed from (any shape, e.g. `(B, L, D)`).
        tag_counts: `K_b` per image.
        batched: one batched backward over all tags (True) or one backward per tag slot.

    Returns:
        `(K_max, *leaf.shape)` gradients; slots `k >= K_b` of image b are zero.
    """
    k_max = max(tag_counts) if tag_counts else 0
    # Built on the host and copied once: indexing on a GPU image by image costs a launch each.
    cotangents = torch.zeros((k_max, *probabilities.shape), dtype=probabilities.dtype)
    for image_index, count in enumerate(tag_counts):
        slots = torch.arange(count)
        cotangents[slots, image_index, slots] = 1.0
    cotangents = cotangents.to(probabilities.device)
    if k_max == 0:
        return torch.zeros((0, *leaf.shape), dtype=leaf.dtype, device=leaf.device)
    if batched:
        (grads,) = torch.autograd.grad(probabilities, leaf, grad_outputs=cotangents, is_grads_batched=True)
        return grads
    per_slot = []
    for slot in range(k_max):
        retain = slot < k_max - 1
        (grad,) = torch.autograd.grad(probabilities, leaf, grad_outputs=cotangents[slot], retain_graph=retain)
        per_slot.append(grad)
    return torch.stack(per_slot)


def gradcam_from_gradients(activations: torch.Tensor, gradients: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Grad-CAM maps from target-layer activations and gradients of the patch tokens.

    Args:
        activations: `(B, h*w, D)` patch-token activations (CLS removed).
        gradients: `(K, B, h*w, D)` gradients of each tag slot.
        grid: `(h, w)` token grid.

    Returns:
        `(B, K, h, w)` float32 maps in [0, 1].
    """
    return gradcam_from_weights(activations, gradients.float().mean(dim=2), grid)


def channel_weights_through_linear(gradients: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Grad-CAM channel weights of a layer's input from the gradients of a linear map of it.

    For `y = x @ W^T + b`, `mean_i dL/dx_i = (mean_i dL/dy_i) @ W`: the spatial mean is taken
    before the (linear) back-projection instead of after it.

    Args:
        gradients: `(K, B, h*w, P)` gradients w.r.t. the linear map's output (patch tokens).
        weight: `(P, D)` weight of the linear map.

    Returns:
        `(K, B, D)` channel weights.
    """
    return gradients.float().mean(dim=2) @ weight.float()


def gradcam_from_weights(activations: torch.Tensor, weights: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Grad-CAM maps `ReLU(sum_c w_c * A_c)`, min-max normalised twice.

    The double normalisation is the reference's: pytorch-grad-cam normalises once per layer and
    again when aggregating layers (the second pass moves values by about 1e-7).

    Args:
        activations: `(B, h*w, D)` patch-token activations (CLS removed).
        weights: `(K, B, D)` channel weights per tag slot.
        grid: `(h, w)` token grid.

    Returns:
        `(B, K, h, w)` float32 maps in [0, 1].
    """
    cams = torch.einsum("bnd,kbd->bkn", activations.float(), weights).clamp_min(0)
    cams = cams.view(*cams.shape[:2], *grid)
    return minmax_normalize(minmax_normalize(cams))


def rescore_with_background_prompts(
    cams: torch.Tensor, patch_features: torch.Tensor, background_prompts: torch.Tensor, weight: float
) -> torch.Tensor:
    """SemPLeS's prompt-guided refinement term as a per-token CAM re-scoring.

    Each token i of tag k's map is multiplied by `exp(-weight * L_i) = (1 - sim_i)^weight`, with
    `L_i = -log(1 - sim(f_i, E_T(p_k)))` the stage (c) penalty of that token's feature against
    the tag's learned background prompt (sim clamped to [1e-4, 0.9999]); tokens that look like
    the class's own background lose mass. The result is min-max normalised again.

    Args:
        cams: `(B, K, h, w)` Grad-CAM maps in [0, 1].
        patch_features: `(B, h*w, E)` projected patch-token features.
        background_prompts: `(B, K, E)` learned background embedding of each tag slot.
        weight: lambda_r.

    Returns:
        `(B, K, h, w)` re-scored maps in [0, 1].
    """
    patches = F.normalize(patch_features.float(), dim=-1)
    prompts = F.normalize(background_prompts.float(), dim=-1)
    similarity = torch.einsum("bne,bke->bkn", patches, prompts).clamp(1e-4, 0.9999)
    factor = (1 - similarity).pow(weight).view_as(cams)
    return minmax_normalize(cams * factor)
