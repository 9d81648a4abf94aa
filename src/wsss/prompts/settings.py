"""The `prompts` params section: prompt sharpness scoring and the template the CAM stage uses.

The `prompts` stage is the one owner of the template: its `scores.json` names the selected one,
which `cams` (and the SemPLeS second pass) read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from wsss.settings import check_fields, setting


def template_problem(template: str) -> str | None:
    """A template holds exactly one `{}` (where the class name goes) and no other format field."""
    if template.count("{}") != 1:
        return "must contain exactly one '{}' (where the class name goes)"
    try:
        template.format("class")
    except (IndexError, KeyError, ValueError) as error:
        return f"is not a format string with one '{{}}' ({error})"
    return None


@dataclass(frozen=True)
class PromptSettings:
    """Candidate templates, the pin, and how sharpness is computed."""

    SECTION: ClassVar[str] = "prompts"

    candidates: tuple[str, ...] = setting(
        (), "templates to score; empty = the CLIP ImageNet templates + the reference's", check=template_problem
    )
    pin: str | None = setting(
        "a clean origami {}.", "template used whatever the ranking (the reference's); null = the best-ranked",
        check=template_problem,
    )
    pooling: Literal["cls", "patch_mean"] = setting("cls", "image feature of the zero-shot scores")
    ddof: int = setting(1, "delta degrees of freedom of the variance in the sharpness", ge=0, le=1)
    max_images: int = setting(500, "at most this many multi-label images are scored (sorted ids)", ge=1, le=10_000_000)

    def __post_init__(self) -> None:
        check_fields(self)
