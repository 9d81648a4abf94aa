"""evaluate: mIoU / per-class IoU of every artifact with ground truth, plots, overlays."""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow

from tasks.command import run_stage
from tasks.evaluate import run_evaluate
from tasks.run_names import stage_run_name
from tasks.runtime import link_written_files, markdown, table
from wsss.catalog import ArtifactLayout
from wsss.params import load_params


@flow(name="wsss-evaluate", flow_run_name=stage_run_name("evaluate"))
def evaluate_flow(params_path: str = "params.yaml") -> dict[str, Any]:
    """mIoU and per-class IoU of every artifact with ground truth; overlays of a fixed sample."""
    params = load_params(params_path)
    result = run_evaluate(params, ArtifactLayout.for_params(params))
    details = result.details
    table(details["summary_rows"], "wsss-metrics", f"mIoU on {params.data.split} ({len(result.computed)} images with GT)")
    table(details["comparison_rows"], "wsss-background-prompts", "mIoU: fixed background words vs learned prompts")
    markdown("wsss-evaluation-protocol", details["protocol"], "How every number was computed")
    link_written_files("wsss-evaluate-files", result.written, "Files written by this evaluate run")
    return dict(details["metrics"])


if __name__ == "__main__":
    sys.exit(run_stage({"evaluate": lambda args: evaluate_flow(args.params)}))
