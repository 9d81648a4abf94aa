"""The `prepare` stage on a folder dataset mixing good and broken images: report and exit codes.

The same corpus passes with `reliability.max_failed_share` above its failed share (exit 0, the
good images in the manifest, every bad one in failures.json) and fails below it (exit 2, the
message names the report; the report and manifest are still written).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.pipeline.conftest import make_pipeline_repo, pipeline_env
from tests.unit.test_bad_inputs import EXPECTED_FAILURES, GOOD_FILES, write_corpus

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> tuple[Path, dict[str, str]]:
    path = make_pipeline_repo(tmp_path_factory.mktemp("badinputs") / "repo")
    write_corpus(path / "data/mixed")
    return path, pipeline_env(path, prefect_server)


def prepare_with_share(path: Path, env: dict[str, str], share: float) -> subprocess.CompletedProcess:
    params = yaml.safe_load((path / "params.yaml").read_text())
    params["data"] = {"kind": "folder", "root": "data/mixed", "images_dir": "images", "tags_file": "tags.json",
                      "ground_truth_dir": None}
    params["classes"] = {"names": ["cat", "dog"], "background": ["ground", "sky"]}
    params["reliability"] = {"max_failed_share": share}
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return subprocess.run([sys.executable, "-m", "flows.prepare", "prepare"], cwd=path, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.parametrize("share", [0.6, 0.3])
def test_prepare_reports_bad_images_and_fails_only_above_the_share(repo: tuple[Path, dict[str, str]], share: float) -> None:
    path, env = repo
    result = prepare_with_share(path, env, share)
    report = json.loads((path / "artifacts/prepare/failures.json").read_text())
    failed = len({image for image, _ in EXPECTED_FAILURES.values()})
    total = failed + len(GOOD_FILES)
    assert report["images_total"] == total and report["images_failed"] == failed
    assert len(report["failures"]) == len(EXPECTED_FAILURES)
    assert all(entry["file"] and entry["reason"] for entry in report["failures"])
    manifest = json.loads((path / "artifacts/prepare/manifest.json").read_text())
    assert sorted(r["image_id"] for r in manifest["records"]) == sorted(Path(n).stem for n in GOOD_FILES)
    if failed / total <= share:
        assert result.returncode == 0, result.stderr[-3000:]
    else:
        assert result.returncode == 2
        assert f"{failed} of {total} images failed" in result.stderr
        assert "artifacts/prepare/failures.json" in result.stderr


def test_params_with_a_wrong_type_stop_before_any_work(repo: tuple[Path, dict[str, str]]) -> None:
    path, env = repo
    result = prepare_with_share(path, env, "half")  # type: ignore[arg-type]
    assert result.returncode == 2
    assert "reliability.max_failed_share must be float, got str 'half'" in result.stderr
