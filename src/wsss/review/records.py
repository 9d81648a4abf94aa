"""The plain records the report writer takes: one per image, one for the run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from wsss.pseudo.settings import PseudoSettings


@dataclass
class ReviewRecord:
    """Everything the report shows of one image; `panels` are paths relative to the report folder.

    Labels are mask values: 0 background, class c at c (manifest class c - 1), the ignore index.
    `iou` is the image's mIoU of the pseudo labels before the confidence filter (None without GT);
    `corrected_iou` the same rule on the human-corrected mask (None without GT or correction).
    `reviewed`: the mark of a person who accepted the mask (`wsss.review.reviewed`), while it holds.
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
    corrected_iou: float | None = None
    corrected_labels: list[int] | None = None
    reviewed: dict[str, Any] | None = None

    @property
    def state(self) -> str:
        """`to review` (in the worst-first queue), `corrected` or `reviewed` (out of it)."""
        return "corrected" if self.origin == "human-corrected" else "reviewed" if self.reviewed else "to review"

    @property
    def queue_key(self) -> tuple[bool, float, str]:
        """The report's order: the queue first, worst triage score first; corrected and reviewed images after it."""
        return self.state != "to review", self.triage_score, self.image_id

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "state": self.state}


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
    dataset: str | None = None  # the one name (`wsss.datasets.settings.dataset_name`)
    num_reviewed: int = 0  # marked reviewed, out of the queue
    stale_marks: list[dict[str, Any]] = field(default_factory=list)
    random_weights: bool = False  # CLIP was randomly initialised: nothing on the pages means anything
    background_notes: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # vocabulary.json's
    ground_truth_warning: str | None = None  # prepare's census: the ground truth has no background
