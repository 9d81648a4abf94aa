"""Build the review report of a pipeline run: collect records, summarise the run, write the folder."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wsss.io.overlay_inputs import weights_are_random
from wsss.metrics import scores_from_confusion
from wsss.review.collect import collect, worst_first
from wsss.review.records import ReviewRecord, RunSummary
from wsss.review.report import PAGE_SIZE, clean_report_folder, write_report
from wsss.review.sources import PipelineOutputs
from wsss.review.triage import DEFAULT_WEIGHTS, spearman


@dataclass
class ReviewResult:
    records: list[ReviewRecord]  # worst first
    run: RunSummary
    index_html: Path | None


def run_lineage(outputs: PipelineOutputs, records: Sequence[ReviewRecord]) -> dict[str, Any]:
    """The lineage facts every image shares (taken from the first image; differences are per image)."""
    if not records:
        return {}
    first = records[0].lineage
    return {key: first.get(key) for key in ("model", "template", "params_sha256", "code_version", "flow_run_ids")}


def summarise(outputs: PipelineOutputs, records: Sequence[ReviewRecord], confusion: np.ndarray | None, title: str) -> RunSummary:
    """Counts, per-class IoU of the pseudo masks where GT exists, and the triage/IoU correlation."""
    names = outputs.class_names
    per_class: dict[str, float] = {}
    mean_iou = None
    if confusion is not None:
        scores = scores_from_confusion(confusion[:, :-1], confusion[:, -1])
        per_class = {names[c]: round(float(v), 6) for c, v in enumerate(scores.per_class_iou) if not math.isnan(v)}
        mean_iou = None if math.isnan(scores.mean_iou) else round(float(scores.mean_iou), 6)
    scored = [(r.triage_score, r.iou) for r in records if r.iou is not None]
    correlation = spearman([s for s, _ in scored], [i for _, i in scored]) if scored else float("nan")
    stale = outputs.sorted_corrections[1]  # not used by training: stale, refused, unreadable, without a record
    labels = Counter(label for r in records for label in r.mask_labels if label not in (0, outputs.pseudo.ignore_index))
    return RunSummary(
        title=title,
        class_names=names,
        ignore_index=outputs.pseudo.ignore_index,
        num_images=len(records),
        num_with_ground_truth=len(scored),
        num_corrected=sum(r.origin == "human-corrected" for r in records),
        stale_corrections=stale,
        per_class_iou=per_class,
        mean_iou=mean_iou,
        triage_spearman=None if math.isnan(correlation) else round(correlation, 4),
        pseudo=outputs.pseudo.settings,
        lineage=run_lineage(outputs, records),
        triage_weights=dict(DEFAULT_WEIGHTS),
        label_counts={names[label]: count for label, count in sorted(labels.items()) if label < len(names)},
        dataset=outputs.dataset,
        num_reviewed=sum(r.state == "reviewed" for r in records),
        stale_marks=outputs.sorted_marks[1],
        random_weights=weights_are_random(run_lineage(outputs, records).get("model")),
        background_notes=outputs.background_notes,
        ground_truth_warning=outputs.ground_truth_warning,
    )


def build_review(
    outputs: PipelineOutputs,
    output: Path | None,
    jobs: int = 1,
    max_side: int = 320,
    title: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    page_size: int = PAGE_SIZE,
) -> ReviewResult:
    """Analyse every image with a pseudo mask; with `output`, write the report there (its old
    report files are removed first). Without it, only the triage is computed (no pictures)."""
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        clean_report_folder(output)
    records: list[ReviewRecord] = []
    confusion: np.ndarray | None = None
    for item in collect(outputs, output, jobs=jobs, max_side=max_side, progress=progress):
        records.append(item.record)
        if item.confusion is not None:
            confusion = item.confusion if confusion is None else confusion + item.confusion
    run = summarise(outputs, records, confusion, title or f"wsss review: {outputs.dataset or outputs.manifest.name}")
    index = write_report(records, run, output, page_size) if output is not None else None
    return ReviewResult(worst_first(records), run, index)
