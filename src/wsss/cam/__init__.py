"""CAM stage of CLIP-ES: softmax Grad-CAM, box masks and CAA refinement."""

from wsss.cam.boxes import box_mask, contour_boxes
from wsss.cam.caa import affinity_transition, propagate, refine_with_affinity, resize_maps, sinkhorn_normalize
from wsss.cam.extractor import CamResult, CamSettings, ClipEsCamExtractor, PreparedImage, refine_image
from wsss.cam.gradcam import gradcam_from_gradients, minmax_normalize, tag_gradients, tag_probabilities

__all__ = [
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
