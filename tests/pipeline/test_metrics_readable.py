"""`dvc metrics show` and the docs' `dvc exp show` command print mIoU people can read.

A small DVC repository declares the evaluate stage's metrics and metric outputs exactly as the
project's dvc.yaml does and writes the documents the evaluate stage writes (`metrics_document`,
`headline`) for the usual 9 variants. Before, `dvc metrics show` printed all 28 numbers of
metrics.json on one line (~1,100 characters, the pixel counts hiding the mIoU), and the docs'
`--drop` regex (`...|num_pixels|pixel_accuracy|...`) dropped none of them: DVC matches at the start.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.pipeline.conftest import ROOT, pipeline_env, run
from tests.unit.test_metrics_headline import documents

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], dict]:
    path = tmp_path_factory.mktemp("metrics") / "repo"
    (path / "src").mkdir(parents=True)
    (path / "data").mkdir()
    (path / "src/code.py").write_text("x = 1\n")
    (path / "data/image.txt").write_text("pixels\n")
    (path / "params.yaml").write_text("train: {lr: 0.1, max_iters: 3}\n")
    document, head = documents()
    (path / "fixtures").mkdir()
    project = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["evaluate"]
    metric_files = [next(iter(entry)) if isinstance(entry, dict) else entry for entry in project["metrics"]]
    written = {"artifacts/metrics.json": document, "artifacts/metrics_headline.json": head}
    for name, content in written.items():
        (path / "fixtures" / Path(name).name).write_text(json.dumps(content, indent=1))
    copy = "; ".join(f"shutil.copy('fixtures/{Path(n).name}', '{n}')" for n in written)
    stage = {
        "cmd": f"python -c \"import os, shutil; os.makedirs('artifacts', exist_ok=True); {copy}\"",
        "deps": ["src/code.py", "data/image.txt"],
        "params": ["train"],
        # The project's own declaration of what evaluate writes as metrics and as plain JSON outputs.
        "outs": [entry for entry in project["outs"] if str(next(iter(entry)) if isinstance(entry, dict) else entry).startswith("artifacts/metrics")],
        "metrics": project["metrics"],
    }
    (path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"evaluate": stage}}, sort_keys=False))
    env = pipeline_env(path)
    for command in (
        ["git", "init", "-q"],
        ["git", "config", "user.email", "t@example.com"],
        ["git", "config", "user.name", "t"],
        [sys.executable, "-m", "dvc", "init", "-q"],
        [sys.executable, "-m", "dvc", "repro", "-q"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "evaluate"],
    ):
        run(command, path, env)
    return path, env, {"metric_files": metric_files, "headline": head}


def test_dvc_metrics_show_prints_one_miou_per_artifact(repo) -> None:
    path, env, facts = repo
    assert facts["metric_files"] == ["artifacts/metrics_headline.json"]
    shown = run([sys.executable, "-m", "dvc", "metrics", "show"], path, env).stdout
    assert max(len(line) for line in shown.splitlines()) < 200, shown  # was ~1,100 characters
    header = shown.splitlines()[0].split()
    assert header[1:] == ["num_images_with_ground_truth", "train.cam_raw.miou", "train.cam_refined.miou", "train.model.miou", "train.pseudo.miou"]
    assert "num_pixels" not in shown and "pixel_accuracy" not in shown
    # The full table stays beside it, for whoever asks for it.
    full = run([sys.executable, "-m", "dvc", "metrics", "show", "artifacts/metrics.json"], path, env).stdout
    assert "train.pseudo_confident_pixels.crf=on.num_pixels" in full


def test_the_documented_dvc_exp_show_drop_regex_drops_what_it_says(repo) -> None:
    path, env, _ = repo
    (line,) = [line for line in (ROOT / "docs/stages.md").read_text().splitlines() if line.startswith("dvc exp show")]
    command = [part for part in shlex.split(line) if part != "--only-changed"]  # one revision: every column is "unchanged"
    result = subprocess.run([sys.executable, "-m", *command, "--csv"], cwd=path, env=env, capture_output=True, text=True, timeout=120, check=True)
    columns = result.stdout.splitlines()[0].split(",")
    assert not [c for c in columns if re.match(r"(src|data|artifacts|flows|tasks|corrections)/|Created", c)], columns
    assert not [c for c in columns if "num_pixels" in c or "pixel_accuracy" in c], columns
    assert {"train.lr", "train.cam_refined.miou", "train.model.miou"} <= set(columns), columns
