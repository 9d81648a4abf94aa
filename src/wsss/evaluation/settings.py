"""The `evaluate` params section (torch-free, so that loading the params never loads torch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from wsss.settings import check_fields, setting


@dataclass(frozen=True)
class EvaluateSettings:
    """The `evaluate` params section: what the evaluate stage reports."""

    SECTION: ClassVar[str] = "evaluate"

    background_alphas: tuple[float, ...] = setting(
        (1.0, 2.0), "exponents tried for CAM mIoU (the reference reports the best of 1 and 2)", gt=0.0, le=100.0
    )
    overlay_ids: tuple[str, ...] = setting((), "images drawn as overlays; empty = the first max_overlays of the manifest")
    max_overlays: int = setting(6, "how many overlays when no ids are given", ge=0, le=10_000)

    def __post_init__(self) -> None:
        check_fields(self)
