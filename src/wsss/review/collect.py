"""Per-image review records from a pipeline run: triage terms, per-image IoU, panels, lineage."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from wsss.catalog import ArtifactLayout
from wsss.metrics import ConfusionAccumulator
from wsss.review.records import ReviewRecord
from wsss.review.render import render_panels
from wsss.review.sources import PipelineOutputs
from wsss.review.triage import DEFAULT_WEIGHTS, image_iou, triage_score, triage_terms

IMAGES_PER_FOLDER = 1000


@dataclass(frozen=True)
class CollectJob:
    """One image to analyse (picklable: workers rebuild their `PipelineOutputs` from the layout)."""

    layout: ArtifactLayout
    image_id: str
    position: int
    panel_dir: Path | None  # None: triage only, no pictures
    max_side: int = 320


@dataclass
class Collected:
    record: ReviewRecord
    confusion: np.ndarray | None  # (C, C + 1): raw labels vs GT, ignored predictions in the last column


@cache
def _outputs(layout: ArtifactLayout) -> PipelineOutputs:
    return PipelineOutputs(layout)


def analyse(job: CollectJob, outputs: PipelineOutputs | None = None) -> Collected:
    """Triage terms and score, IoU where GT exists, lineage; panels when `panel_dir` is set.

    `outputs`: the caller's readers (one process); None in a worker process, which builds its own
    once. Never the cache in the caller's process: a report built again in the same process (the
    relabel loop, import-corrections) must see today's corrections, marks and masks.
    """
    outputs = outputs if outputs is not None else _outputs(job.layout)
    image_id = job.image_id
    pseudo = outputs.pseudo
    cams, attrs = outputs.refined(image_id)
    mask, crf_labels, confidence = outputs.pseudo_mask(image_id), outputs.crf_labels(image_id), outputs.confidence(image_id)
    class_ids = [int(c) for c in attrs.get("class_ids", [])]
    probabilities = outputs.tag_probabilities(image_id)
    terms = triage_terms(
        tag_probabilities=probabilities,
        confidence=confidence,
        labels=mask,
        crf_labels=crf_labels,
        cams=cams,
        class_ids=class_ids,
        alpha=pseudo.alpha,
        ignore_index=pseudo.ignore_index,
    )
    ground_truth = outputs.ground_truth(image_id)
    num_classes = len(outputs.class_names)
    iou, confusion = None, None
    if ground_truth is not None and ground_truth.shape == crf_labels.shape:
        iou = image_iou(ground_truth, crf_labels, num_classes)
        accumulator = ConfusionAccumulator(num_classes)
        accumulator.update(ground_truth, crf_labels)
        confusion = np.concatenate([accumulator.matrix, accumulator.ignored_predictions[:, None]], axis=1)
    corrected = outputs.corrected_mask(image_id)
    corrected_iou = None
    if corrected is not None and ground_truth is not None and ground_truth.shape == corrected.shape:
        corrected_iou = image_iou(ground_truth, corrected, num_classes)
    mark = outputs.sorted_marks[0].get(image_id)
    panels: dict[str, Any] = {}
    if job.panel_dir is not None:
        folder = f"img/{job.position // IMAGES_PER_FOLDER:03d}"
        names = render_panels(
            job.panel_dir / folder,
            f"{job.position:06d}",
            outputs.photo(image_id),
            cams.astype(np.float32),
            mask,
            confidence,
            ground_truth,
            corrected,
            pseudo.ignore_index,
            job.max_side,
        )
        panels = {key: [f"{folder}/{n}" for n in value] if isinstance(value, list) else f"{folder}/{value}" for key, value in names.items()}
    record = outputs.records[image_id]
    lineage = outputs.lineage(image_id)
    return Collected(
        ReviewRecord(
            image_id=image_id,
            width=record.width,
            height=record.height,
            tags=[str(t) for t in attrs.get("tags", record.tags)],
            tag_probabilities=[round(p, 4) for p in probabilities],
            tag_labels=[c + 1 for c in class_ids],
            mask_labels=[int(v) for v in np.unique(mask)],
            ground_truth_labels=[int(v) for v in np.unique(ground_truth)] if ground_truth is not None else None,
            triage_score=round(triage_score(terms, DEFAULT_WEIGHTS), 6),
            triage_terms=terms.as_dict(),
            iou=None if iou is None else round(iou, 6),
            ignored_share=round(terms.ignored_share, 6),
            mean_confidence=round(float(confidence.mean()), 6),
            origin="human-corrected" if corrected is not None else "pseudo",
            correction=lineage.get("correction"),
            lineage=lineage,
            panels=panels,
            corrected_iou=None if corrected_iou is None else round(corrected_iou, 6),
            corrected_labels=[int(v) for v in np.unique(corrected)] if corrected is not None else None,
            reviewed={"time": mark.time, "summary": mark.describe()} if mark is not None else None,
        ),
        confusion,
    )


def collect(
    outputs: PipelineOutputs,
    panel_dir: Path | None,
    image_ids: Sequence[str] | None = None,
    jobs: int = 1,
    max_side: int = 320,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[Collected]:
    """Analyse every image (sorted ids), in `jobs` processes when more than one; yields in id order.

    Panels are named by the image's position in `image_ids`, so a report stays valid for any id.
    """
    ids = list(image_ids if image_ids is not None else outputs.image_ids())
    work = [CollectJob(outputs.layout, image_id, position, panel_dir, max_side) for position, image_id in enumerate(ids)]
    if jobs <= 1 or len(work) <= 1:
        results: Iterator[Collected] = (analyse(job, outputs) for job in work)
        for done, item in enumerate(results, start=1):
            if progress:
                progress(done, len(work))
            yield item
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for done, item in enumerate(pool.map(analyse, work, chunksize=8), start=1):
            if progress:
                progress(done, len(work))
            yield item


def worst_first(records: Sequence[ReviewRecord]) -> list[ReviewRecord]:
    """The review queue first, by ascending triage score (ties: image id), i.e. the ones to look at
    first; then the images out of it (corrected or marked reviewed), in the same order."""
    return sorted(records, key=lambda record: record.queue_key)
