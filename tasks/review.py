"""review: the static HTML review report (worst-first triage) of the pseudo masks.

All logic is in `wsss.review`; this node only passes paths and publishes a Prefect table of the
images to look at first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NONE

from wsss.review.build import build_review
from wsss.review.sources import PipelineOutputs, ReviewLayout

REVIEW_DIR = ReviewLayout().path("review_dir")
# Not a stage output: `dvc repro` deletes outputs before running a stage, relabel rewrites them.
CORRECTIONS_DIR = ReviewLayout().corrections
WORST_IN_ARTIFACT = 20


@task(cache_policy=NONE)
def write_review_report(output: Path = REVIEW_DIR, corrections: Path = CORRECTIONS_DIR, jobs: int | None = None) -> dict[str, Any]:
    """Write the report under `output`; returns its counts and the worst images."""
    workers = jobs if jobs is not None else min(4, os.cpu_count() or 1)
    result = build_review(PipelineOutputs.at(".", corrections), output, jobs=workers)
    worst = [{"rank": rank + 1, "image": r.image_id, "triage": r.triage_score, "iou": r.iou, "mask": r.origin}
             for rank, r in enumerate(result.records[:WORST_IN_ARTIFACT])]
    if worst:
        create_table_artifact(worst, key="wsss-review-worst", description="Images to review first (lowest triage score)")
    run = result.run
    return {"index_html": str(result.index_html), "images": run.num_images, "with_ground_truth": run.num_with_ground_truth,
            "corrected": run.num_corrected, "stale_corrections": len(run.stale_corrections),
            "triage_spearman": run.triage_spearman}
