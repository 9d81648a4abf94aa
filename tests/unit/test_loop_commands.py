"""The loop commands' checks and reports without a pipeline run: where to run, no server, the
status and metrics texts, when params.local.yaml forces a rerun."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from wsss.catalog import ArtifactLayout
from wsss.cli import main

ROOT = Path(__file__).resolve().parents[2]


def dead_api_url() -> str:
    from wsss.loop.prefect_server import free_port

    return f"http://127.0.0.1:{free_port()}/api"  # nothing listens there


def test_run_outside_the_repository_says_where_to_run_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no dvc.yaml or params.yaml here" in err and "(traceback: .wsss/logs/run.log)" in err


def test_serve_without_a_server_that_answers_is_one_line_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["clip"]["random_init"] = True
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (tmp_path / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    url = dead_api_url()
    monkeypatch.setenv("PREFECT_API_URL", url)
    assert main(["serve", "--interval", "60"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: no Prefect server answers at {url} (PREFECT_API_URL)") and err.count("\n") == 1, err
    assert "Traceback" in (tmp_path / ".wsss/logs/serve.log").read_text()
    assert main(["serve"]) == 2  # no schedule anywhere: said before any server is looked for
    assert "give --cron or --interval" in capsys.readouterr().err
    assert main(["serve", "--cron", "every night"]) == 2
    assert "cron" in capsys.readouterr().err


def test_status_reasons_read_as_phrases_and_name_what_follows() -> None:
    from wsss.loop.status import change_reasons, downstream_of

    entries = [
        {"changed deps": {"data/photos": "modified", "params.yaml": {"cam.max_side": "modified"}}},
        {"changed outs": {"artifacts/cams": "deleted"}},
        "always changed",
    ]
    assert change_reasons(entries) == [
        "deps: data/photos modified",
        "params.yaml: cam.max_side modified",
        "outs: artifacts/cams deleted",
        "always changed",
    ]
    assert downstream_of(["refine"]) == ("pseudo", "review", "train", "learn_prompts", "learned_cams", "evaluate")


def test_a_changed_params_local_yaml_is_noticed_against_the_last_completed_run(tmp_path: Path) -> None:
    from wsss.loop.records import COMPLETED, FAILED, LoopRun, local_params_changed, local_params_digest, record_loop_run

    layout = ArtifactLayout(tmp_path)
    assert not local_params_changed(layout)  # nothing to compare with before the first run
    (tmp_path / "params.local.yaml").write_text("clip: {random_init: true}\n")
    record_loop_run(layout, LoopRun("2026-01-01 00:00 UTC", 1.0, [], False, COMPLETED, params_local_sha256=local_params_digest(tmp_path)))
    assert not local_params_changed(layout)
    (tmp_path / "params.local.yaml").write_text("clip: {random_init: true, seed: 1}\n")
    assert local_params_changed(layout)
    record_loop_run(layout, LoopRun("2026-01-01 00:01 UTC", 1.0, [], True, FAILED, params_local_sha256=local_params_digest(tmp_path)))
    assert local_params_changed(layout)  # a failed run may have left stages on the old file
    (tmp_path / "params.local.yaml").unlink()
    assert local_params_changed(layout)


def test_metrics_prints_the_headline_rows_in_pipeline_order(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from wsss.evaluation.headline import headline_rows

    document = {
        "train": {
            "model": {"scales=1.crf=off": {"miou": 0.5, "pixel_accuracy": 0.8, "num_pixels": 10}},
            "cam_raw": {"alpha=1": {"miou": 0.25, "pixel_accuracy": 0.7, "num_pixels": 10}},
            "pseudo": {"crf=on": {"miou": None, "pixel_accuracy": None, "num_pixels": 0}},
        },
        "num_images_with_ground_truth": 1,
    }
    assert [(r.step, r.artifact) for r in headline_rows(document)] == [("CAM", "cam_raw"), ("pseudo", "pseudo"), ("model", "model")]
    assert main(["metrics", "--root", str(tmp_path)]) == 2
    assert "no metrics yet" in capsys.readouterr().err
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts/metrics.json").write_text(json.dumps(document))
    assert main(["metrics", "--root", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "1 image(s) with ground truth scored"
    assert lines[3].split() == ["CAM", "train.cam_raw.alpha=1", "0.2500", "0.7000"]
    assert lines[5].split()[-3:] == ["train.model.scales=1.crf=off", "0.5000", "0.8000"]
    assert main(["metrics", "--root", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["miou"] == 0.25
