"""review: the static HTML review report (worst-first triage) of the pseudo masks.

All logic is in `wsss.review`; this entry reads the pipeline's outputs through the catalog
(corrections included: an input, never a stage output, so `dvc repro` and relabel runs never
delete it) and returns the report's counts and the images to look at first.
"""

from __future__ import annotations

import os

from tasks.progress import Progress
from wsss.catalog import ArtifactLayout
from wsss.review.build import build_review
from wsss.review.sources import PipelineOutputs
from wsss.stage_result import StageResult

WORST_IN_ARTIFACT = 20
REPORT_FILES = ("index.html", "run.html", "triage.json")


def run_review(layout: ArtifactLayout, jobs: int | None = None) -> StageResult:
    """Write the report into `layout.review` from what the stages recorded; `jobs` worker
    processes (default: up to 4). `details`: `counts` and `worst` (the images to look at first)."""
    workers = jobs if jobs is not None else min(4, os.cpu_count() or 1)
    progress = Progress("wsss-review-progress", "Images analysed for the review report", "review")
    result = build_review(PipelineOutputs(layout), layout.review, jobs=workers, progress=lambda done, total: progress.reach(done, total, "analysed"))
    progress.finish(f"report {layout.review / 'index.html'}")
    queue = [r for r in result.records if r.state == "to review"]  # corrected and reviewed images left the queue
    worst = [
        {"rank": rank + 1, "image": r.image_id, "triage": r.triage_score, "iou": r.iou, "mask": r.origin}
        for rank, r in enumerate(queue[:WORST_IN_ARTIFACT])
    ]
    run = result.run
    counts = {
        "index_html": str(result.index_html),
        "images": run.num_images,
        "with_ground_truth": run.num_with_ground_truth,
        "to_review": len(queue),
        "corrected": run.num_corrected,
        "reviewed": run.num_reviewed,
        "stale_corrections": len(run.stale_corrections),
        "triage_spearman": run.triage_spearman,
    }
    return StageResult(
        "review",
        tuple(r.image_id for r in result.records),
        written=tuple(str(layout.review / name) for name in REPORT_FILES),
        details={"counts": counts, "worst": worst},
    )
