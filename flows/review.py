"""review: static HTML review report of the pseudo masks (artifacts/review/index.html)."""

from __future__ import annotations

import sys

from prefect import flow

from flows.cli import run_stage
from tasks import review as review_tasks
from tasks.common import load_params
from tasks.reporting import link_written_files


@flow(name="wsss-review")
def review_flow(params_path: str = "params.yaml") -> dict:
    """Worst-first review report: photo, maps, mask, confidence, GT/IoU and lineage per image."""
    load_params(params_path)  # refuses bad params before any work, like every stage
    summary = review_tasks.write_review_report()
    folder = review_tasks.REVIEW_DIR
    link_written_files("wsss-review-files", [folder / "index.html", folder / "run.html", folder / "triage.json"],
                       f"Review report of {summary['images']} images")
    return summary


if __name__ == "__main__":
    sys.exit(run_stage({"review": review_flow}))
