"""The `prompts` and `learn_prompts` params sections: prompt sharpness scoring and the template the
CAM stage uses; SemPLeS background prompt learning (torch-free, so that loading the params never
loads torch).

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
    """Candidate templates, the pin, and how sharpness is computed.

    Only `pooling` changes a stored image feature (`features/<key>.npy`); the others decide the
    ranking and the selection, which every run recomputes (the selected template enters the CAM
    keys itself), so they are not part of a reuse key.

    With a pin the ranking cannot change the selection, so it runs only when asked for
    (`rank_when_pinned`): ranking the 81 default templates embeds every class name 81 times
    (minutes on a CPU) for scores nobody reads.
    """

    SECTION: ClassVar[str] = "prompts"

    candidates: tuple[str, ...] = setting(
        (), "templates to score; empty = the CLIP ImageNet templates + the reference's", check=template_problem, identity=False
    )
    pin: str | None = setting(
        "a clean origami {}.", "template used whatever the ranking (the reference's); null = the best-ranked", check=template_problem, identity=False
    )
    rank_when_pinned: bool = setting(
        False, "rank the candidates even when `pin` is set (scores.json lists them; the pin stays selected)", identity=False
    )
    pooling: Literal["cls", "patch_mean"] = setting("cls", "image feature of the zero-shot scores")
    ddof: int = setting(1, "delta degrees of freedom of the variance in the sharpness", ge=0, le=1, identity=False)
    max_images: int = setting(500, "at most this many multi-label images are scored (sorted ids)", ge=1, le=10_000_000, identity=False)

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def ranks(self) -> bool:
        """Whether the ranking can matter: no pin (it selects), or the scores were asked for."""
        return self.pin is None or self.rank_when_pinned

    def skipped_ranking_note(self) -> str:
        """Why a run did not rank, and how to get the scores (recorded in scores.json)."""
        return (
            "ranking skipped: prompts.pin is set, so no score can change the selected template; "
            "set prompts.rank_when_pinned: true for the scores (or prompts.pin: null to select by rank)"
        )


@dataclass(frozen=True)
class LearnPromptsSettings:
    """The `learn_prompts` params section (defaults: SemPLeS on VOC, docs/method.md).

    As in SemPLeS's DeiT-based scripts (timm), the optimiser is AdamW at `lr * batch_size / 512`
    (linear scaling rule) with a per-epoch cosine decay to 0.
    """

    SECTION: ClassVar[str] = "learn_prompts"

    enabled: bool = setting(False, "run prompt learning and the second CAM pass")
    context_tokens: int = setting(30, "N learnable token embeddings per class", ge=1, le=64)
    prefix: str = setting("a photo of", 'words before the context ("." follows it)')
    lambda_prompt: float = setting(0.02, "lambda_p, weight of the push away from the class name (VOC 0.02, COCO 0.01)", ge=0.0, le=100.0)
    lr: float = setting(0.1, "learning rate before linear scaling (VOC 0.1, COCO 0.01)", gt=0.0, le=100.0)
    weight_decay: float = setting(0.03, "AdamW weight decay", ge=0.0, le=10.0)
    epochs: int = setting(60, "passes over all (image, tag) pairs", ge=1, le=100_000)
    batch_size: int = setting(128, "(image, tag) pairs per step", ge=1, le=1_000_000)
    max_steps: int | None = setting(None, "stop after this many steps (null = epochs decide); for smoke runs", ge=1, le=1_000_000_000)
    init_scale: float = setting(1.0, "contexts start uniform in [0, init_scale) (SemPLeS: torch.rand)", gt=0.0, le=100.0)
    image_size: int = setting(224, "side of the square CLIP input of X_b", ge=16, le=4096)
    mask_source: Literal["pseudo", "refined"] = setting(
        "pseudo", "M_k: pixels the pseudo mask labels k (before the confidence filter), or the soft refined map"
    )
    seed: int = setting(0, "seed of the initialisation and the batch order", ge=0, le=2**32 - 1)
    background_mode: Literal["add", "replace"] = setting("add", "second CAM pass: learned rows add to the fixed background words or replace them")
    rescore: bool = setting(False, "second CAM pass: re-score each Grad-CAM map with the prompt-guided refinement term")
    lambda_refine: float = setting(0.05, "lambda_r of that term (VOC 0.05, COCO 0.2)", ge=0.0, le=100.0)
    report_top_k: int = setting(5, "nearest vocabulary words listed per context token in the report", ge=1, le=1000)

    def __post_init__(self) -> None:
        check_fields(self)
