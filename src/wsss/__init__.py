"""wsss: CLIP-ES weakly supervised semantic segmentation, as an orchestration-free library.

Image + image-level tags -> softmax Grad-CAM on a frozen CLIP ViT -> CAA refinement ->
pseudo masks with per-pixel confidence -> mIoU. Nothing in this package imports prefect,
dvc or mmseg; those live in `tasks/`, `flows/` and the mmseg adapter.
"""

from wsss.errors import CheckpointError, ConfigError, ImageError, WsssError

__all__ = ["CheckpointError", "ConfigError", "ImageError", "WsssError"]
__version__ = "0.1.0"
