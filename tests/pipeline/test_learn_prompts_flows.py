"""The SemPLeS stage flows in-process: quick records when disabled, clear errors when inputs are missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from wsss.errors import StoreError


def test_disabled_stages_only_write_a_record(harness, workdir: Path) -> None:
    from flows.learn_prompts import learn_prompts_flow
    from flows.learned_cams import learned_cams_flow

    assert learn_prompts_flow("params.yaml")["enabled"] is False
    assert learned_cams_flow("params.yaml")["enabled"] is False
    assert sorted(p.relative_to(workdir).as_posix() for p in (workdir / "artifacts").rglob("*") if p.is_file()) == [
        "artifacts/learn_prompts/status.json",
        "artifacts/learned/status.json",
    ]
    assert json.loads((workdir / "artifacts/learned/status.json").read_text())["enabled"] is False


def test_second_pass_without_learned_prompts_names_the_file(harness, workdir: Path) -> None:
    from flows.learned_cams import learned_cams_flow
    from flows.prepare import prepare_flow, sample_flow

    sample_flow("params.yaml")
    prepare_flow("params.yaml")
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["learn_prompts"]["enabled"] = True
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.raises(StoreError, match=r"learn_prompts/prompts\.safetensors.*learn_prompts stage"):
        learned_cams_flow("params.yaml")
