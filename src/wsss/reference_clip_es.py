"""An independent, deliberately literal CLIP-ES implementation: the parity oracle.

It follows the reference procedure step by step (docs/method.md) with the most direct tools and
none of the package's code paths: torchvision's Resize/ToTensor/Normalize for the input,
`nn.MultiheadAttention(need_weights=True)` for attention maps, one forward of the last block and
one backward per tag with a gradient hook on `ln_1`'s output, numpy Grad-CAM, `cv2.threshold` +
`cv2.findContours` boxes, an explicitly squared transition matrix and `cv2.resize`.
It is slow and only meant for small images: the tests compare the extractor with it
(tests/unit/test_engine_parity.py) and the benchmarks time its one-image loop on the same device
(`benchmarks.cam_speed`, `benchmarks.device_check`), where it runs on the model's device; on CPU
every value is what it was. No stage imports it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision import transforms

if TYPE_CHECKING:
    from wsss.open_clip_types import ClipModel, ResidualAttentionBlock


def sharpen_attention(model: ClipModel, factor: float = 8.0) -> None:
    """Scale the image tower's query/key projections so attention is peaked, as in trained CLIP.

    With open_clip's random init every attention map is almost uniform, the propagated CAA maps
    are nearly flat, and min-max normalisation then magnifies float rounding a thousandfold;
    such a model cannot tell a faithful implementation from a slightly wrong one. The tests'
    random weights and the benchmarks' use it.
    """
    with torch.no_grad():
        for block in model.visual.transformer.resblocks:
            width = block.attn.embed_dim
            block.attn.in_proj_weight[: 2 * width] *= factor


def reference_input(image: Image.Image) -> torch.Tensor:
    """`(1, 3, h, w)`: bicubic resize to ceil-16 sides, ToTensor, CLIP Normalize."""
    height = int(np.ceil(image.height / 16) * 16)
    width = int(np.ceil(image.width / 16) * 16)
    pipeline = transforms.Compose(
        [
            transforms.Resize((height, width), interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.ToTensor(),
            transforms.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
        ]
    )
    return pipeline(image)[None]


def reference_text(model: ClipModel, tokenizer: Callable[[list[str]], torch.Tensor], sentences: list[str]) -> torch.Tensor:
    device = model.visual.conv1.weight.device
    with torch.no_grad():
        features = model.encode_text(tokenizer(sentences).to(device))
    return features / features.norm(dim=-1, keepdim=True)


def _scale_cam(cam: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    cam = cam - np.min(cam)
    cam = cam / (1e-7 + np.max(cam))
    if size is not None:
        cam = cv2.resize(cam, size)
    return cam.astype(np.float32)


def _boxes(cam: np.ndarray, threshold: float) -> list[tuple[int, int, int, int]]:
    height, width = cam.shape
    gray = np.expand_dims((cam * 255).astype(np.uint8), 2)
    _, binary = cv2.threshold(gray, int(threshold * np.max(gray)), 255, cv2.THRESH_BINARY)
    contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    if len(contours) == 0:
        return [(0, 0, 0, 0)]
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append((x, y, min(x + w, width - 1), min(y + h, height - 1)))
    return boxes


def _block_with_weights(block: ResidualAttentionBlock, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    y = block.ln_1(x)
    out, weights = block.attn(y, y, y, need_weights=True)
    x = x + block.ls_1(out)
    x = x + block.ls_2(block.mlp(block.ln_2(x)))
    return x, weights


def reference_cams(
    model: ClipModel, image: Image.Image, tag_text: torch.Tensor, background_text: torch.Tensor, threshold: float = 0.4
) -> dict[str, np.ndarray]:
    """Grad-CAMs `(K, h, w)` and refined maps `(K, H, W)` for one image, the reference way."""
    visual = model.visual
    device = visual.conv1.weight.device
    pixels = reference_input(image).to(device)
    grid_h, grid_w = pixels.shape[2] // 16, pixels.shape[3] // 16

    table = visual.positional_embedding
    side = int(math.sqrt(table.shape[0] - 1))
    grid = table[1:].permute(1, 0).reshape(1, -1, side, side)
    grid = F.interpolate(grid, size=(grid_h, grid_w), mode="bilinear")
    pos = torch.cat([table[:1], grid.reshape(grid.shape[1], -1).permute(1, 0)], 0).half()

    with torch.no_grad():
        x = visual.conv1(pixels)
        x = x.reshape(1, x.shape[1], -1).permute(0, 2, 1)
        x = torch.cat([visual.class_embedding + torch.zeros(1, 1, x.shape[-1], device=device), x], dim=1)
        x = visual.ln_pre(x + pos.to(x.dtype))
        attentions = []
        for block in visual.transformer.resblocks[:-1]:
            x, weights = _block_with_weights(block, x)
            attentions.append(weights)

    last = visual.transformer.resblocks[-1]
    text = torch.cat([tag_text, background_text])
    captured: dict[str, torch.Tensor] = {}

    def keep(_module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        captured["activation"] = output.detach()
        output.register_hook(lambda grad: captured.__setitem__("gradient", grad.detach()))

    handle = last.ln_1.register_forward_hook(keep)
    gradcams: list[np.ndarray] = []
    refined: list[np.ndarray] = []
    affinity: torch.Tensor | None = None
    try:
        for tag in range(tag_text.shape[0]):
            with torch.enable_grad():
                x12, weights12 = _block_with_weights(last, x.detach().requires_grad_(True))
                pooled = visual.ln_post(x12)[:, 1:, :].mean(dim=1) @ visual.proj
                pooled = pooled / pooled.norm(dim=1, keepdim=True)
                probabilities = (model.logit_scale.exp() * pooled @ text.t()).softmax(dim=-1)
                model.zero_grad()
                probabilities[0, tag].backward(retain_graph=True)
            activation = captured["activation"][0, 1:].cpu().numpy().reshape(grid_h, grid_w, -1).transpose(2, 0, 1)
            gradient = captured["gradient"][0, 1:].cpu().numpy().reshape(grid_h, grid_w, -1).transpose(2, 0, 1)
            weights = np.mean(gradient, axis=(1, 2))
            cam = np.maximum((weights[:, None, None] * activation).sum(axis=0), 0).astype(np.float32)
            cam = _scale_cam(_scale_cam(cam))
            gradcams.append(cam)

            if affinity is None:
                stacked = torch.stack([w[:, 1:, 1:] for w in [*attentions, weights12.detach()]])[-8:]
                affinity = stacked.mean(dim=0)[0].float()
            mask = torch.zeros(grid_h, grid_w, device=device)
            for x0, y0, x1, y1 in _boxes(cam, threshold):
                mask[y0:y1, x0:x1] = 1
            transition = affinity / affinity.sum(dim=0, keepdim=True)
            transition = transition / transition.sum(dim=1, keepdim=True)
            for _ in range(2):
                transition = transition / transition.sum(dim=0, keepdim=True)
                transition = transition / transition.sum(dim=1, keepdim=True)
            transition = (transition + transition.t()) / 2
            transition = transition @ transition
            transition = transition * mask.view(1, -1)
            propagated = (transition @ torch.from_numpy(cam).to(device).view(-1, 1)).reshape(grid_h, grid_w).cpu().numpy()
            refined.append(_scale_cam(propagated.astype(np.float32), (image.width, image.height)))
    finally:
        handle.remove()
    assert affinity is not None, "no tag: nothing computed"
    return {"gradcam": np.stack(gradcams), "refined": np.stack(refined), "attention": affinity.cpu().numpy()}
