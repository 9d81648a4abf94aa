"""`dvc repro prepare` on the sample: the counts line in the output, no "is empty" warning from DVC.

Before, `artifacts/ground_truth` (a `persist` output that holds only derived COCO masks) was empty
for every other dataset and DVC warned "'artifacts/ground_truth' is empty." on each save of it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.pipeline.conftest import make_pipeline_repo, pipeline_env, run

pytestmark = pytest.mark.slow


def test_dvc_repro_prepare_says_what_it_kept_and_warns_about_no_empty_folder(tmp_path: Path, prefect_server: str) -> None:
    repo = make_pipeline_repo(tmp_path / "repo")
    result = run([sys.executable, "-m", "dvc", "repro", "prepare"], repo, pipeline_env(repo, prefect_server))
    output = result.stdout + result.stderr
    assert "Running stage 'prepare'" in output
    assert "is empty" not in output, output[-3000:]
    assert "sample: 6 read, 6 kept, 0 skipped, 0 failed" in output
    assert (repo / "artifacts/ground_truth/README.md").is_file()
