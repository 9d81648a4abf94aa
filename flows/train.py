"""train: DeepLabV2 with the confidence-guided loss on the pseudo masks (MMSegmentation)."""

from __future__ import annotations

import sys

from prefect import flow

from flows.cli import run_stage
from tasks import train as train_tasks
from tasks.common import PSEUDO_DIR, TRAIN_DIR, dataset_root, flow_run_id, load_params, read_json, read_manifest, write_json
from tasks.reporting import link_written_files
from wsss.config import train_settings
from wsss.datasets import manifest_sha256


@flow(name="wsss-train")
def train_flow(params_path: str = "params.yaml") -> dict:
    """Train the segmenter; the output holds the model, its log and what produced it."""
    params = load_params(params_path)
    settings = train_settings(params)
    manifest = read_manifest()
    pseudo_summary = read_json(PSEUDO_DIR / "summary.json")
    lineage = {
        "input_manifest_sha256": manifest_sha256(manifest),
        "pseudo_params": pseudo_summary.get("params"),
        "pseudo_flow_run_id": pseudo_summary.get("flow_run_id"),
    }
    result = train_tasks.train_deeplab(manifest, dataset_root(params), settings, TRAIN_DIR, lineage)
    record = {**result, **lineage, "params": params.get("train"), "flow_run_id": flow_run_id()}
    write_json(TRAIN_DIR / "model.json", record)
    link_written_files("wsss-train-files", sorted(p for p in TRAIN_DIR.iterdir() if p.is_file()), "Files written by this train run")
    return record


if __name__ == "__main__":
    sys.exit(run_stage({"train": train_flow}))
