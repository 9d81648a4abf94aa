"""sample and prepare: the embedded sample on disk; the manifest of the configured dataset."""

from __future__ import annotations

import sys

from prefect import flow

from tasks.command import run_stage
from tasks.prepare import run_prepare, run_sample
from tasks.run_names import stage_run_name
from tasks.runtime import link_written_files
from wsss.catalog import ArtifactLayout
from wsss.params import load_params


@flow(name="wsss-prepare", flow_run_name=stage_run_name("prepare"))
def prepare_flow(params_path: str = "params.yaml") -> str:
    """Manifest of the usable images, `failures.json` naming each refused image and why (fails only
    above `reliability.max_failed_share`), and the derived ground truth (COCO masks)."""
    params = load_params(params_path)
    result = run_prepare(params, ArtifactLayout.for_params(params))
    link_written_files("wsss-prepare-files", result.written, "Files written by this prepare run")
    return str(result.details["manifest_sha256"])


@flow(name="wsss-sample", flow_run_name=stage_run_name("sample"))
def sample_flow(params_path: str = "params.yaml") -> int:
    """Materialise the embedded sample photos in VOC layout under data/sample."""
    return len(run_sample(ArtifactLayout.for_params(load_params(params_path))).computed)


if __name__ == "__main__":
    sys.exit(run_stage({"prepare": lambda args: prepare_flow(args.params), "sample": lambda args: sample_flow(args.params)}))
