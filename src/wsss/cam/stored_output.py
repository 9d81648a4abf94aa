"""What the `cams` stage stores per image: a `CamResult` as the CAM store's arrays, dtypes and attributes.

The stage entry and `wsss segment` both hand this to a `ShardWriter`, so a photo segmented
outside the pipeline is stored (and so refined) from exactly the values the pipeline stores:
Grad-CAM at `store.gradcam_dtype` (float32: box masks threshold `uint8(cam * 255)`, which float16
rounding would move), attention at `store.attention_dtype` (float16, as the reference keeps it).
"""

from __future__ import annotations

from collections.abc import Sequence

from wsss.cam.extractor import CamResult
from wsss.incremental import ImageOutput
from wsss.io.settings import StoreSettings


def cam_image_output(result: CamResult, tags: Sequence[str], source_path: str, source_sha256: str, store: StoreSettings) -> ImageOutput:
    """One image's CAM-store entry: `gradcam` `(K, h, w)`, `attention` `(h*w, h*w)` and the per-image
    attributes `refine` and `pseudo` read back (class ids, tags, sizes, probabilities, source)."""
    return ImageOutput(
        {"gradcam": result.gradcam, "attention": result.attention},
        {
            "class_ids": result.class_ids,
            "tags": list(tags),
            "original_size": list(result.original_size),
            "grid": list(result.grid),
            "tag_probabilities": result.tag_probabilities,
            "source_path": source_path,
            "source_sha256": source_sha256,
        },
        {"gradcam": store.gradcam_dtype, "attention": store.attention_dtype},
    )
