"""The plain records the report writer takes: one per image, one for the run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from wsss.pseudo.settings import PseudoSettings


@dataclass
class ReviewRecord:
    """Everything the report shows of one image; `panels` are paths relative to the report folder.

    Labels are mask values: 0 background, class c at c (manifest class c - 1), the ignore index.
    `iou` is the image's mIoU of the pseudo labels before the confidence filter (None without GT).
    """

    image_id: str
    width: int
    height: int
    tags: list[str]
    tag_probabilities: list[float]
    tag_labels: list[int]
    mask_labels: list[int]
    ground_truth_labels: list[int] | None
    triage_score: float
    triage_terms: dict[str, float]
    iou: float | None
    ignored_share: float
    mean_confidence: float
    origin: str = "pseudo"
    correction: dict[str, Any] | None = None
    lineage: dict[str, Any] = field(default_factory=dict)
    panels: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunSummary:
    """The run page: counts, per-class IoU of the pseudo masks where GT exists, protocol facts."""

    title: str
    class_names: list[str]
    ignore_index: int
    num_images: int
    num_with_ground_truth: int
    num_corrected: int
    stale_corrections: list[dict[str, Any]]
    per_class_iou: dict[str, float]
    mean_iou: float | None
    triage_spearman: float | None
    pseudo: PseudoSettings  # as the pseudo stage recorded them, typed
    lineage: dict[str, Any]
    triage_weights: dict[str, float]
    label_counts: dict[str, int] = field(default_factory=dict)
