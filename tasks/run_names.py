"""Flow runs people can find: names that say stage, dataset and params, and tags to filter by.

A stage's flow run is named `<stage> | <dataset> | <params hash>` (e.g. `cams | sample | 3f2a9c1d`:
the first 8 hex digits of the SHA-256 of the merged, validated params) and tagged
`dataset:<name>`, `stage:<stage>` and `experiment:<name>` (the DVC experiment when `dvc exp run`
started the stage, else the git branch), so the Prefect UI filters one dataset's or one
experiment's runs apart.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from prefect import tags
from prefect.context import FlowRunContext

from wsss.params import Params, load_params
from wsss.provenance import sha256_of

NO_EXPERIMENT = "none"


def params_digest(params: Params) -> str:
    """First 8 hex digits of the SHA-256 of every params section (as validated and merged)."""
    return sha256_of(params.sections(*(f.name for f in dataclasses.fields(Params))))[:8]


def dataset_name(params: Params) -> str:
    """The dataset's one name (`wsss.datasets.settings.dataset_name`: `data/VOC2012` -> `VOC2012`)."""
    return params.data.dataset_name


def experiment_name(directory: Path | str = ".") -> str:
    """`DVC_EXP_NAME` (set by `dvc exp run`), else the git branch, else `none`."""
    if os.environ.get("DVC_EXP_NAME"):
        return os.environ["DVC_EXP_NAME"]
    try:
        branch = subprocess.run(
            ["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=directory, capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return NO_EXPERIMENT
    return branch if branch and branch != "HEAD" else NO_EXPERIMENT


def run_name(stage: str, params: Params) -> str:
    return f"{stage} | {dataset_name(params)} | {params_digest(params)}"


def run_tags(stage: str, params: Params) -> tuple[str, ...]:
    return f"dataset:{dataset_name(params)}", f"stage:{stage}", f"experiment:{experiment_name()}"


def stage_run_name(stage: str) -> Callable[[], str]:
    """A `flow_run_name` callable: the run's name from the params file the flow was called with."""

    def name() -> str:
        context = FlowRunContext.get()
        parameters = context.parameters if context and context.parameters else {}
        return run_name(stage, load_params(parameters.get("params_path", "params.yaml"), parameters.get("runner")))

    return name


@contextmanager
def stage_tags(stage: str, params: Params) -> Iterator[None]:
    """Every flow run started inside gets the stage's dataset, stage and experiment tags."""
    with tags(*run_tags(stage, params)):
        yield
