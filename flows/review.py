"""review: static HTML review report of the pseudo masks (artifacts/review/index.html)."""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow

from tasks.command import run_stage
from tasks.review import run_review
from tasks.run_names import stage_run_name
from tasks.runtime import link_written_files, table
from wsss.catalog import ArtifactLayout
from wsss.params import load_params


@flow(name="wsss-review", flow_run_name=stage_run_name("review"))
def review_flow(params_path: str = "params.yaml") -> dict[str, Any]:
    """Worst-first review report: photo, maps, mask, confidence, GT/IoU and lineage per image."""
    result = run_review(ArtifactLayout.for_params(load_params(params_path)))  # params checked before any work
    counts = result.details["counts"]
    table(result.details["worst"], "wsss-review-worst", "Images to review first (lowest triage score)")
    link_written_files("wsss-review-files", result.written, f"Review report of {counts['images']} images")
    return dict(counts)


if __name__ == "__main__":
    sys.exit(run_stage({"review": lambda args: review_flow(args.params)}))
