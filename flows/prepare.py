"""prepare: the manifest (ids, tags, hashes, ground truth) of the configured dataset."""

from __future__ import annotations

import sys

from prefect import flow

from flows.cli import run_stage
from tasks import prepare as prepare_tasks
from tasks.common import core_config, load_params
from wsss.config import data_settings


@flow(name="wsss-prepare")
def prepare_flow(params_path: str = "params.yaml") -> str:
    """Write the manifest of the configured dataset (the sample is materialised by `sample`)."""
    params = load_params(params_path)
    data = data_settings(params)
    vocabulary = core_config(params).vocabulary
    manifest = prepare_tasks.build_manifest(data, tuple(vocabulary.class_names))
    return prepare_tasks.write_manifest(manifest, data)


@flow(name="wsss-sample")
def sample_flow(params_path: str = "params.yaml") -> int:
    """Materialise the embedded sample photos in VOC layout under data/sample."""
    return len(prepare_tasks.materialize_sample_task().records)


if __name__ == "__main__":
    sys.exit(run_stage({"prepare": prepare_flow, "sample": sample_flow}))
