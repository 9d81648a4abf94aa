"""The Prefect flow `wsss-predict` (what a schedule or a deployment runs) writes what `wsss predict` writes."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("mmseg")

pytestmark = pytest.mark.slow  # the session's trained model and one Prefect flow run


def test_the_flow_predicts_what_the_command_predicts(trained_sample: Path, harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.predict import predict_flow
    from wsss.cli import main

    monkeypatch.chdir(trained_sample)  # a deployment runs in the repository
    image = "data/sample/JPEGImages/chelsea.jpg"
    result = predict_flow(inputs=[image], out=str(tmp_path / "flow"), crf=True)
    assert result["written"] == 1 and result["failed"] == 0
    assert result["written_files"] == [str(tmp_path / "flow/labels/chelsea.png")]
    assert main(["predict", image, "--crf", "--out", str(tmp_path / "command")]) == 0
    assert (tmp_path / "flow/labels/chelsea.png").read_bytes() == (tmp_path / "command/labels/chelsea.png").read_bytes()
