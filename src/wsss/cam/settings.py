"""The `cam` and `caa` params sections: CAM extraction and CAA refinement (torch-free, so that
loading the params never loads torch)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Literal

from wsss.errors import ConfigError
from wsss.settings import AUTO, Auto, check_fields, setting
from wsss.text.vocabulary import REFERENCE_TEMPLATE


@dataclass(frozen=True)
class CamSettings:
    """The `cam` params section: CAM extraction (defaults = the reference on VOC).

    `templates` is not a params key: the `prompts` stage selects the template and the caller sets
    it here (several are averaged; the reference uses one).
    """

    SECTION: ClassVar[str] = "cam"

    templates: tuple[str, ...] = setting((REFERENCE_TEMPLATE,), "prompt templates, set by the caller", param=False)
    affinity_layers: int = setting(8, "final blocks whose attention is averaged into the stored affinity (extraction, not CAA)", ge=1, le=64)
    max_side: int | None = setting(
        1024, "longer side of the network input; larger photos are downscaled, maps returned full size; null = never", ge=16, le=16384
    )
    backward: Literal["closed_form", "autograd_batched", "autograd_per_tag"] = setting(
        "closed_form", "tag gradients: analytic last-block backward, one batched autograd VJP, or one backward per tag"
    )
    round_pos_embed_to_fp16: bool = setting(True, "the reference's fp16 rounding of the resized positional embeddings")
    exact_attention: bool = setting(
        True, "explicit attention in every block (bit-identical to the reference); false: fused kernel where maps are unused"
    )
    batch_size: int | Auto = setting(
        1, "images per forward within a size bucket; auto (as shipped): 32 with CLIP on CUDA, else 1 (recorded resolved)", ge=1, le=4096
    )

    def __post_init__(self) -> None:
        if not self.templates:
            raise ConfigError("cam.templates must name at least one template")
        check_fields(self)


@dataclass(frozen=True)
class CaaSettings:
    """The `caa` params section: CAA refinement (defaults = the reference on VOC)."""

    SECTION: ClassVar[str] = "caa"

    box_threshold: float = setting(0.4, "contour threshold as a fraction of the CAM max (0.4 VOC, 0.7 COCO)", ge=0.0, le=1.0)
    sinkhorn_rounds: int = setting(3, "column/row normalisation rounds of the affinity", ge=1, le=100)
    affinity_power: int = setting(2, "exponent of the transition matrix (the reference squares it once)", ge=1, le=16)
    device: str = setting(
        "cpu",
        "torch device of the refine stage's CAA: cpu, or cuda for the affinity products (box masks stay on the host); "
        "auto (as shipped): clip.device when it is CUDA and refine runs in the stage process, else cpu (recorded resolved)",
        check=lambda value: None if re.fullmatch(rf"cpu|cuda(:\d+)?|{AUTO}", value) else "must be cpu, cuda, cuda:N or auto",
    )

    def __post_init__(self) -> None:
        check_fields(self)
