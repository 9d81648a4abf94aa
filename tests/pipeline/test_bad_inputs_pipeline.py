"""The `prepare` stage on a folder dataset mixing good and broken images: report and exit codes.

The same corpus passes with `reliability.max_failed_share` above its failed share (exit 0, the
good images in the manifest, every bad one in failures.json) and fails below it (exit 2, the
message names the report; the report and manifest are still written). The stage's command line
runs in-process (`tests.in_process.stage_main`): the exit codes of a stage process are checked on
real processes in test_concurrent_runs.py and test_relabel_interrupted.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.in_process import stage_main
from tests.params_edit import edit_params
from tests.unit.test_bad_inputs import EXPECTED_FAILURES, GOOD_FILES, write_corpus


@pytest.fixture
def mixed(workdir: Path) -> Path:
    write_corpus(workdir / "data/mixed")
    return workdir


def prepare_with_share(path: Path, share: object, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    edit_params(
        path,
        {
            "data": {"kind": "folder", "root": "data/mixed", "images_dir": "images", "tags_file": "tags.json", "ground_truth_dir": None},
            "classes": {"names": ["cat", "dog"], "background": ["ground", "sky"]},
            "reliability": {"max_failed_share": share},
        },
    )
    return stage_main("flows.prepare", ["prepare"], capsys, monkeypatch)


@pytest.mark.parametrize("share", [0.6, 0.3])
def test_prepare_reports_bad_images_and_fails_only_above_the_share(
    harness, mixed: Path, share: float, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    returncode, _, stderr = prepare_with_share(mixed, share, capsys, monkeypatch)
    report = json.loads((mixed / "artifacts/prepare/failures.json").read_text())
    failed = len({image for image, _ in EXPECTED_FAILURES.values()})
    total = failed + len(GOOD_FILES)
    assert report["images_total"] == total and report["images_failed"] == failed
    assert len(report["failures"]) == len(EXPECTED_FAILURES)
    assert all(entry["file"] and entry["reason"] for entry in report["failures"])
    manifest = json.loads((mixed / "artifacts/prepare/manifest.json").read_text())
    assert sorted(r["image_id"] for r in manifest["records"]) == sorted(Path(n).stem for n in GOOD_FILES)
    if failed / total <= share:
        assert returncode == 0, stderr[-3000:]
    else:
        assert returncode == 2
        assert f"{failed} of {total} images failed" in stderr
        assert "artifacts/prepare/failures.json" in stderr


def test_params_with_a_wrong_type_stop_before_any_work(mixed: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    returncode, _, stderr = prepare_with_share(mixed, "half", capsys, monkeypatch)
    assert returncode == 2
    assert "reliability.max_failed_share must be float, got str 'half'" in stderr
