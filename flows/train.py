"""train: DeepLabV2 with the confidence-guided loss on the pseudo masks (MMSegmentation)."""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow

from tasks.command import run_stage
from tasks.run_names import stage_run_name
from tasks.runtime import link_written_files
from tasks.train import run_train
from wsss.catalog import ArtifactLayout
from wsss.params import load_params


@flow(name="wsss-train", flow_run_name=stage_run_name("train"))
def train_flow(params_path: str = "params.yaml") -> dict[str, Any]:
    """Train the segmenter; the output holds the model, its log and what produced it."""
    params = load_params(params_path)
    layout = ArtifactLayout.for_params(params)
    result = run_train(params, layout)
    link_written_files("wsss-train-files", result.written, "Files written by this train run")
    return dict(result.details["model"])


if __name__ == "__main__":
    sys.exit(run_stage({"train": lambda args: train_flow(args.params)}))
