"""Shared plumbing of the task nodes: params loading, artifact paths, JSON, Prefect reporting."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.context import FlowRunContext

from wsss.config import CoreConfig, data_settings, validate_params
from wsss.datasets import Manifest
from wsss.errors import ConfigError, DatasetError
from wsss.local_params import with_local_params

ARTIFACTS = Path("artifacts")
MANIFEST = ARTIFACTS / "prepare" / "manifest.json"
FAILURES = ARTIFACTS / "prepare" / "failures.json"
VOCABULARY = ARTIFACTS / "prepare" / "vocabulary.json"
# Label maps prepare derives (COCO masks rasterised from the instances JSON); manifest records
# with ground_truth_root "derived" are relative to it.
GROUND_TRUTH = ARTIFACTS / "prepare" / "ground_truth"
PROMPT_SCORES = ARTIFACTS / "prompts" / "scores.json"
CAM_STORE = ARTIFACTS / "cams"
REFINED_STORE = ARTIFACTS / "refined"
PSEUDO_DIR = ARTIFACTS / "pseudo"
TRAIN_DIR = ARTIFACTS / "train"
METRICS = ARTIFACTS / "metrics.json"
EVALUATION_RUN = ARTIFACTS / "evaluation_run.json"
PLOTS = ARTIFACTS / "plots"
SCRATCH = Path(".wsss-scratch")


def load_params(path: Path | str) -> dict[str, Any]:
    """Parse params.yaml (safe loader) with the untracked `params.local.yaml` beside it merged over it."""
    path = Path(path)
    try:
        params = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read params ({error})") from error
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    params = with_local_params(params, path)
    try:
        validate_params(params)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from error
    return params


def core_config(params: Mapping[str, Any]) -> CoreConfig:
    return CoreConfig.from_mapping(params)


def dataset_root(params: Mapping[str, Any]) -> Path:
    return Path(data_settings(params).root)


def read_manifest(path: Path = MANIFEST) -> Manifest:
    try:
        return Manifest.from_json(path.read_text(), str(path))
    except OSError as error:
        raise DatasetError(f"{path}: cannot read the manifest ({error}); run the prepare stage") from error


def write_json(path: Path, value: Any) -> None:
    """Deterministic JSON (sorted keys), written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(value, indent=1, sort_keys=True, default=str) + "\n")
    os.replace(partial, path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: cannot read JSON ({error})") from error


def flow_run_id() -> str | None:
    """The Prefect flow-run id of the current run, for lineage records."""
    context = FlowRunContext.get()
    return str(context.flow_run.id) if context and context.flow_run else None


class Progress:
    """A Prefect progress artifact updated every `every` items (and at the end)."""

    def __init__(self, key: str, total: int, description: str, every: int = 10) -> None:
        self.total, self.every, self.done = max(total, 1), max(every, 1), 0
        self.description = description
        self.artifact: UUID = create_progress_artifact(0.0, key=key, description=description)

    def step(self, count: int = 1) -> None:
        self.done += count
        if self.done % self.every == 0 or self.done >= self.total:
            update_progress_artifact(self.artifact, min(100.0, 100.0 * self.done / self.total))


def markdown(key: str, text: str, description: str) -> None:
    create_markdown_artifact(text, key=key, description=description)
