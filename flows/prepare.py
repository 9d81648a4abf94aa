"""prepare: the manifest (ids, tags, hashes, ground truth) of the configured dataset."""

from __future__ import annotations

import sys

from prefect import flow

from flows.cli import run_stage
from tasks import prepare as prepare_tasks
from tasks.common import MANIFEST, core_config, load_params
from tasks.reporting import link_written_files
from wsss.config import data_settings, prompt_settings, reliability_settings
from wsss.failures import FailureReport


@flow(name="wsss-prepare")
def prepare_flow(params_path: str = "params.yaml") -> str:
    """Write the manifest of the usable images, `failures.json` naming each refused image and why,
    and `vocabulary.json` (what CLIP is asked).

    Exits non-zero (TooManyFailuresError) only when more than `reliability.max_failed_share` failed.
    """
    params = load_params(params_path)
    data = data_settings(params)
    vocabulary = core_config(params).vocabulary
    reliability = reliability_settings(params)
    failures = FailureReport("prepare")
    prepare_tasks.write_vocabulary(vocabulary, prompt_settings(params).pin)
    manifest = prepare_tasks.build_manifest(data, vocabulary, failures)
    manifest = prepare_tasks.validate_manifest_images(manifest, data, reliability, failures)
    digest = prepare_tasks.write_manifest(manifest, data)
    prepare_tasks.write_failure_report(failures, manifest, reliability)
    link_written_files("wsss-prepare-files", sorted(MANIFEST.parent.glob("*.json")), "Files written by this prepare run")
    return digest


@flow(name="wsss-sample")
def sample_flow(params_path: str = "params.yaml") -> int:
    """Materialise the embedded sample photos in VOC layout under data/sample."""
    return len(prepare_tasks.materialize_sample_task().records)


if __name__ == "__main__":
    sys.exit(run_stage({"prepare": prepare_flow, "sample": sample_flow}))
