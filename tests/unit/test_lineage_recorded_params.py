"""Lineage compares the params each artifact recorded with today's, never dvc.lock's.

On a run with random weights from the untracked params.local.yaml, `wsss lineage` said the
prompts stage "differs from params.yaml (+ params.local.yaml): clip.random_init": its scores.json
recorded no params, so lineage fell back to dvc.lock, which never sees params.local.yaml.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def dvc_lock_as_dvc_writes_it(params_yaml: dict) -> str:
    """Per stage, the params DVC tracks, read from params.yaml alone (DVC does not know params.local.yaml)."""
    stages = {
        name: {"cmd": f"python -m flows.{name}", "params": {"params.yaml": {section: params_yaml[section] for section in sections}}}
        for name, sections in (("prepare", ("data", "classes", "reliability")), ("prompts", ("clip", "classes", "prompts", "cam")))
    }
    return yaml.safe_dump({"schema": "2.0", "stages": stages})


@pytest.mark.slow
def test_lineage_of_a_random_init_run_reports_no_difference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.prepare import run_prepare, run_sample
    from tasks.prompts import run_prompts
    from wsss.catalog import ArtifactLayout
    from wsss.lineage import format_lineage, image_lineage
    from wsss.params import load_params

    params_yaml = yaml.safe_load((ROOT / "params.yaml").read_text())
    params_yaml["cam"]["max_side"] = 224  # small inputs, three templates: a quick prompts run
    params_yaml["prompts"]["candidates"] = ["a photo of a {}.", "a clean origami {}.", "itap of a {}."]
    params_yaml["clip"]["random_init"] = False  # the tracked file asks for real weights ...
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params_yaml, sort_keys=False))
    (tmp_path / "params.local.yaml").write_text("clip: {random_init: true}\n")  # ... the run used random ones
    (tmp_path / "dvc.lock").write_text(dvc_lock_as_dvc_writes_it(params_yaml))
    monkeypatch.chdir(tmp_path)
    params = load_params("params.yaml")
    layout = ArtifactLayout.for_params(params, tmp_path)
    run_sample(layout)
    run_prepare(params, layout)
    run_prompts(params, layout)

    lineage = image_lineage("chelsea", tmp_path)
    for stage in ("prepare", "prompts"):
        assert lineage["stages"][stage]["params_differ_from_current"] == [], stage
    assert lineage["stages"]["prompts"]["stage_params"]["clip"]["random_init"] is True
    assert "differs from params.yaml (+ params.local.yaml): nothing" in format_lineage(lineage)
    # The dataset's one name, as Prefect's run names and the review report call it (not the manifest's `voc-train`).
    assert lineage["stages"]["prepare"]["dataset"] == "sample" and "\n  dataset: sample\n" in format_lineage(lineage)

    (tmp_path / "params.local.yaml").unlink()  # today's params differ from what the run used
    assert image_lineage("chelsea", tmp_path)["stages"]["prompts"]["params_differ_from_current"] == ["clip.random_init"]
