"""cams: Grad-CAM maps and attention affinity of every image into sharded HDF5.

Shards are mapped with the flow's task runner (`runner` params section, or `--runner dask
--dask-address tcp://host:8786 --workers N`); only shards with added, changed or removed images
are written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.cli import run_stage
from flows.runner import add_runner_arguments, runner_overrides, task_runner_for
from tasks import cams as cam_tasks
from tasks.clip_model import extractor_for, load_clip_task
from tasks.common import CAM_STORE, PROMPT_SCORES, Progress, core_config, dataset_root, flow_run_id, load_params, read_json, read_manifest
from tasks.reporting import link_written_shards
from wsss.config import store_settings
from wsss.datasets import manifest_sha256
from wsss.incremental import package_source_digest
from wsss.provenance import stage_attributes
from wsss.scaleout import runner_settings

# Core sources that determine the maps: a change recomputes every image (part of the content key).
CAMS_CODE = ("clip", "text", "cam/extractor.py", "cam/gradcam.py", "cam/last_block.py", "imaging.py")


@flow(name="wsss-cams", task_runner=ThreadPoolTaskRunner(max_workers=1))
def cams_flow(params_path: str = "params.yaml") -> dict[str, Any]:
    """Grad-CAM maps + attention affinity of every image into sharded HDF5 (only what changed)."""
    params = load_params(params_path)
    config = core_config(params)
    store = store_settings(params)
    manifest = read_manifest()
    template = str(read_json(PROMPT_SCORES)["selected"])
    clip = load_clip_task(config)
    extractor = extractor_for(config, clip, manifest, (template,))
    spec = cam_tasks.ExtractorSpec(config, manifest, template)
    cam_tasks.remember_extractor(spec, extractor)
    attributes = stage_attributes(
        "cams",
        {key: params.get(key) for key in ("clip", "classes", "cam", "store")},
        manifest_sha256(manifest),
        clip=clip.identity(),
        template=template,
        class_names=list(config.vocabulary.class_names),
        prompt_names=list(config.vocabulary.prompt_names),
        background_words=list(config.vocabulary.background_words),
        dataset_root=str(dataset_root(params)),
        core_code_sha256=package_source_digest(CAMS_CODE),
        flow_run_id=flow_run_id(),
    )
    progress = Progress("wsss-cams-progress", len(manifest.records), "Images through CLIP-ES CAM extraction")
    summary = cam_tasks.extract_into_store(spec, manifest.records, dataset_root(params), CAM_STORE, attributes, store, "cams", progress)
    link_written_shards("wsss-cams-shards", [Path(p) for p in summary["written"]], summary["untouched"])
    return summary


def run_cams(params_path: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """`cams_flow` with the task runner that the `runner` section (plus overrides) asks for."""
    settings = runner_settings(load_params(params_path), overrides)
    return cams_flow.with_options(task_runner=task_runner_for(settings))(params_path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(add_help=False)
    add_runner_arguments(parser)
    known, rest = parser.parse_known_args(argv)
    if {"-h", "--help"} & set(sys.argv[1:] if argv is None else argv):
        parser.usage, parser.description = argparse.SUPPRESS, "runner options"
        parser.print_help()
    overrides = runner_overrides(known)
    return run_stage({"cams": lambda path: run_cams(path, overrides)}, rest)


if __name__ == "__main__":
    sys.exit(main())
