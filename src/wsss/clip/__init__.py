"""CLIP adapter: weight loading and the CLIP-ES image-tower runner over open_clip."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsss.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from wsss.clip.loading import LoadedClip, cast_for_inference, load_clip
    from wsss.clip.settings import ClipSource
    from wsss.clip.vision import ClipVisionTower, LastBlockOutput, TowerState, layer_norm_fp32
    from wsss.clip.weights import check_weights
    from wsss.datasets.records import file_sha256

__all__ = [
    "ClipSource",
    "ClipVisionTower",
    "LastBlockOutput",
    "LoadedClip",
    "TowerState",
    "cast_for_inference",
    "check_weights",
    "file_sha256",
    "layer_norm_fp32",
    "load_clip",
]

__getattr__, __dir__ = lazy_exports(__name__, __file__)
