"""CAM stage of CLIP-ES: softmax Grad-CAM, box masks and CAA refinement."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsss.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from wsss.cam.boxes import box_mask, contour_boxes
    from wsss.cam.caa import affinity_transition, propagate, refine_image, refine_with_affinity, resize_maps, sinkhorn_normalize
    from wsss.cam.extractor import CamResult, ClipEsCamExtractor, PreparedImage
    from wsss.cam.gradcam import gradcam_from_gradients, minmax_normalize, tag_gradients, tag_probabilities
    from wsss.cam.settings import CaaSettings, CamSettings

__all__ = [
    "CaaSettings",
    "CamResult",
    "CamSettings",
    "ClipEsCamExtractor",
    "PreparedImage",
    "affinity_transition",
    "box_mask",
    "contour_boxes",
    "gradcam_from_gradients",
    "minmax_normalize",
    "propagate",
    "refine_image",
    "refine_with_affinity",
    "resize_maps",
    "sinkhorn_normalize",
    "tag_gradients",
    "tag_probabilities",
]

__getattr__, __dir__ = lazy_exports(__name__, __file__)
