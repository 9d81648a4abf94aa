"""CAA: class-aware attention-based affinity refinement (docs/method.md, "CAA").

The affinity is built once per image from the attention maps (mean of the last blocks'
head-averaged attention, CLS removed): Sinkhorn-style column/row normalisation, symmetrised.
Each class map is then propagated through the affinity raised to a power, restricted to the
columns (source tokens) inside that class's box mask, and min-max normalised.

The reference squares the `n x n` affinity (`T @ T`) and multiplies by the masked map; here
the power is applied as repeated matrix-vector products, `T @ (T @ (mask * cam))`, which is
the same quantity without the `O(n^3)` product and is done for all classes of an image in
one batched product.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from wsss.cam.boxes import box_mask
from wsss.cam.gradcam import minmax_normalize
from wsss.cam.settings import CaaSettings


def sinkhorn_normalize(affinity: torch.Tensor, rounds: int = 3) -> torch.Tensor:
    """Alternate column then row normalisation, `rounds` times.

    Shape: `(..., n, n)` -> same. The reference runs 3 rounds (1 + 2 more).
    """
    if rounds < 1:
        raise ValueError(f"sinkhorn rounds must be >= 1, got {rounds}")
    transition = affinity
    for _ in range(rounds):
        transition = transition / transition.sum(dim=-2, keepdim=True)
        transition = transition / transition.sum(dim=-1, keepdim=True)
    return transition


def affinity_transition(attention_mean: torch.Tensor, sinkhorn_rounds: int = 3) -> torch.Tensor:
    """Symmetric transition matrix `(T + T^T) / 2` of the Sinkhorn-normalised attention.

    Shape: `(..., n, n)` float -> `(..., n, n)` float32.
    """
    transition = sinkhorn_normalize(attention_mean.float(), sinkhorn_rounds)
    return (transition + transition.transpose(-2, -1)) / 2


def propagate(transition: torch.Tensor, masked_cams: torch.Tensor, power: int = 2) -> torch.Tensor:
    """`transition^power @ masked_cams` by repeated products.

    Shape: transition `(n, n)`, masked_cams `(n, K)` -> `(n, K)`.
    """
    if power < 1:
        raise ValueError(f"affinity power must be >= 1, got {power}")
    result = masked_cams
    for _ in range(power):
        result = transition @ result
    return result


def refine_with_affinity(cams: torch.Tensor, transition: torch.Tensor, box_masks: torch.Tensor, power: int = 2) -> torch.Tensor:
    """Refine one image's class maps with the affinity, at token resolution.

    Args:
        cams: `(K, h, w)` Grad-CAM maps in [0, 1].
        transition: `(h*w, h*w)` output of `affinity_transition`.
        box_masks: `(K, h, w)` bool masks of allowed source tokens per class.
        power: exponent of the transition matrix (the reference squares it: 2).

    Returns:
        `(K, h, w)` float32 refined maps, min-max normalised.
    """
    num_maps, height, width = cams.shape
    if num_maps == 0:
        return cams.float()
    masked = (cams.float() * box_masks.to(cams.device, torch.float32)).reshape(num_maps, height * width)
    refined = propagate(transition.float(), masked.T, power).T.reshape(num_maps, height, width)
    return minmax_normalize(refined)


def resize_maps(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize to `size = (H, W)` (half-pixel centres, no antialias, like cv2.resize).

    Shape: `(K, h, w)` -> `(K, H, W)`.
    """
    if maps.shape[0] == 0:
        return maps.new_zeros((0, *size))
    return F.interpolate(maps[None].float(), size=size, mode="bilinear", align_corners=False)[0]


def box_masks(cams: np.ndarray, tag_counts: Sequence[int], threshold: float) -> np.ndarray:
    """Box masks of the first `tag_counts[b]` maps of every image; False on padding slots.

    Shape: cams `(B, K_max, h, w)` in [0, 1] -> `(B, K_max, h, w)` bool.
    """
    masks = np.zeros(cams.shape, dtype=bool)
    for image, count in enumerate(tag_counts):
        for slot in range(count):
            masks[image, slot] = box_mask(cams[image, slot], threshold)
    return masks


def refine_images(
    gradcams: torch.Tensor,
    attention: torch.Tensor,
    tag_counts: Sequence[int],
    output_sizes: Sequence[tuple[int, int]],
    settings: CaaSettings | None = None,
) -> list[torch.Tensor]:
    """CAA for a batch of images on the same token grid.

    The affinities of all images are normalised in one batched Sinkhorn, and the box masks
    (cv2, on the host) take one device-to-host copy of all maps and one copy back, instead of a
    round trip per image; each image is then propagated, normalised and resized as by itself,
    so the result equals `refine_image` image by image.

    Args:
        gradcams: `(B, K_max, h, w)` Grad-CAM maps; slots `>= tag_counts[b]` are padding.
        attention: `(B, h*w, h*w)` mean attention per image.
        tag_counts: `K_b` per image.
        output_sizes: `(H_b, W_b)` per image.
        settings: CAA parameters.

    Returns:
        Per image, `(K_b, H_b, W_b)` float32 refined maps on the maps' device.
    """
    settings = settings or CaaSettings()
    transitions = affinity_transition(attention, settings.sinkhorn_rounds)
    cams = gradcams.detach().float().cpu().numpy()
    masks = torch.from_numpy(box_masks(cams, tag_counts, settings.box_threshold)).to(gradcams.device)
    return [
        resize_maps(refine_with_affinity(gradcams[b, :count], transitions[b], masks[b, :count], settings.affinity_power), size)
        for b, (count, size) in enumerate(zip(tag_counts, output_sizes, strict=True))
    ]


def refine_image(gradcam: torch.Tensor, attention: torch.Tensor, output_size: tuple[int, int], settings: CaaSettings | None = None) -> torch.Tensor:
    """CAA for one image: `(K, h, w)` Grad-CAMs + `(h*w, h*w)` attention -> `(K, H, W)` refined maps."""
    return refine_images(gradcam[None], attention[None], [gradcam.shape[0]], [output_size], settings)[0]
