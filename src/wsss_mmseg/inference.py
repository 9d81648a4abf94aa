"""Running a trained segmenter: the one prediction path of `evaluate`, `wsss predict` and the export check.

`predict_batch` is deeplab-pytorch's test protocol (docs/method.md, "Segmenter") as `evaluate` scores it: the
image as training decoded it (`wsss.imaging.load_rgb`: raw pixel grid), the model's own
preprocessor (mean/std of the config), logits at each test scale max-fused at the scale-1 logit
size and upsampled bilinearly to the image, then either the arg-max of the logits or the arg-max
of the dense-CRF posterior of their softmax. `evaluate` (`score_segmenter_on`) and `wsss predict`
call it, so their labels are the same by construction (a test compares them).

Why not `mmseg.apis.inference_model`: it runs the config's `test_pipeline` (mmcv's loader, which
applies EXIF rotation, and a resize to a fixed scale), knows no test-time scale fusion or CRF,
and so would not predict what `evaluate` scored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmseg.registry import MODELS

import wsss_mmseg  # noqa: F401  (registers the custom modules before any build)
from wsss.pseudo.crf import CrfParams, dense_crf

if TYPE_CHECKING:
    from mmseg.models.segmentors import EncoderDecoder  # untyped (Any): the segmentor a config builds

__all__ = ["Prediction", "load_segmenter", "predict_batch", "predict_image", "predict_logits", "predict_logits_batch"]

PathLike = str | Path


def load_segmenter(config_path: PathLike, checkpoint: PathLike, *, num_classes: int, device: str = "cpu") -> torch.nn.Module:
    """Build the config's model with ``num_classes`` outputs and load a checkpoint into it.

    Args:
        config_path: The training config (model definition).
        checkpoint: An mmengine checkpoint of that model (loaded strictly, weights-only:
            `wsss_mmseg.checkpoints.load_plain_checkpoint`).
        num_classes: Output classes of the trained head.
        device: Torch device of the returned model.

    Returns:
        The model in eval mode.

    Shape:
        The model's ``encode_decode`` maps ``(B, 3, H, W)`` to ``(B, num_classes, H, W)``.
    """
    cfg = Config.fromfile(str(config_path))
    init_default_scope(cfg.get("default_scope", "mmseg"))
    cfg.model.decode_head.num_classes = num_classes
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    load_checkpoint(model, str(checkpoint), map_location="cpu", strict=True, logger=logging.getLogger("wsss_mmseg"))
    return model.to(device).eval()


def _bilinear(tensor: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(tensor, size=tuple(size), mode="bilinear", align_corners=False)


@torch.no_grad()
def predict_logits_batch(model: EncoderDecoder, images: Sequence[np.ndarray], scales: Sequence[float] = (1.0,)) -> torch.Tensor:
    """Class scores of images of one size, max-fused over scales, at the image size.

    As deeplab-pytorch's MSC at test time: the logits of each scaled input are upsampled to
    the scale-1.0 logit size, fused by pixel-wise max, then upsampled bilinearly to the image.
    Images of different sizes never share a batch: padding would change the logits.

    Args:
        model: A segmentor from :func:`load_segmenter`.
        images: RGB images, all of one size.
        scales: Input scales, the first 1.0.

    Returns:
        Fused logits at the image size, on the CPU.

    Raises:
        ValueError: If ``scales`` does not start with 1.0, or the images differ in size.

    Shape:
        images: each ``(H, W, 3)`` uint8 RGB.
        Output: ``(B, C, H, W)`` float32.
    """
    if not scales or scales[0] != 1.0:
        raise ValueError(f"scales must start with 1.0 (the reference size), got {scales}")
    if len({image.shape for image in images}) != 1:
        raise ValueError(f"a batch holds images of one size, got {sorted({image.shape for image in images})}")
    device = next(model.parameters()).device
    height, width = images[0].shape[:2]
    # The preprocessor (bgr_to_rgb=True) expects BGR like mmcv's loader, so flip channels here.
    bgr = [torch.from_numpy(np.ascontiguousarray(image[..., ::-1])).permute(2, 0, 1).to(device) for image in images]
    base = model.data_preprocessor(dict(inputs=bgr), training=False)["inputs"]
    fused: torch.Tensor | None = None
    for scale in scales:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        scaled = base if scale == 1.0 else _bilinear(base, size)
        logits = model.decode_head.forward(model.extract_feat(scaled))
        fused = logits if fused is None else torch.maximum(fused, _bilinear(logits, fused.shape[-2:]))
    assert fused is not None
    return _bilinear(fused, (height, width)).float().cpu()


def predict_logits(model: torch.nn.Module, image: np.ndarray, scales: Sequence[float] = (1.0,)) -> torch.Tensor:
    """:func:`predict_logits_batch` of one image. Shape: ``(H, W, 3)`` uint8 -> ``(C, H, W)`` float32."""
    return predict_logits_batch(model, [image], scales)[0]


@dataclass(frozen=True)
class Prediction:
    """One image's labels and how sure the model is of them.

    Shape:
        labels: ``(H, W)`` int64 class indices (0 = background); confidence: ``(H, W)`` float32,
        the probability of the chosen label (softmax of the logits, or the CRF posterior).
    """

    labels: np.ndarray
    confidence: np.ndarray


def labels_from_logits(image: np.ndarray, logits: torch.Tensor, crf: CrfParams | None) -> Prediction:
    """Arg-max of the logits, or with `crf` of the dense-CRF posterior of their softmax on the
    plain RGB image (deeplab-pytorch's test protocol)."""
    probabilities = logits.softmax(dim=0).numpy().astype(np.float32)
    if crf is not None:
        probabilities = dense_crf(np.ascontiguousarray(image, dtype=np.uint8), probabilities, crf)
        labels = probabilities.argmax(0)
    else:
        labels = logits.argmax(0).numpy()
    return Prediction(labels.astype(np.int64), probabilities.max(0).astype(np.float32))


def predict_batch(
    model: torch.nn.Module, images: Sequence[np.ndarray], scales: Sequence[float] = (1.0,), crf: CrfParams | None = None
) -> list[Prediction]:
    """What `evaluate` scores, for images of one size: fused logits, then arg-max or dense CRF."""
    logits = predict_logits_batch(model, images, scales)
    return [labels_from_logits(image, image_logits, crf) for image, image_logits in zip(images, logits, strict=True)]


def predict_image(model: torch.nn.Module, image: np.ndarray, scales: Sequence[float] = (1.0,), crf: CrfParams | None = None) -> Prediction:
    """:func:`predict_batch` of one image (what `evaluate` runs per image)."""
    return predict_batch(model, [image], scales, crf)[0]
