"""The untracked params.local.yaml: merged over params.yaml by every stage, never written to it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from wsss.errors import ConfigError
from wsss.local_params import merge_params
from wsss.params import load_params

ROOT = Path(__file__).resolve().parents[2]


def test_merge_keeps_sibling_keys() -> None:
    base = {"clip": {"random_init": False, "seed": 0}, "cam": {"max_side": 1024}}
    assert merge_params(base, {"clip": {"random_init": True}}) == {
        "clip": {"random_init": True, "seed": 0}, "cam": {"max_side": 1024}}
    assert base["clip"]["random_init"] is False  # the input is not modified


def test_stages_load_params_yaml_with_the_local_override(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    assert load_params(params).clip.random_init is False
    (tmp_path / "params.local.yaml").write_text("clip:\n  random_init: true\n")
    loaded = load_params(params)
    assert loaded.clip.random_init is True
    assert loaded.clip.model_name == yaml.safe_load(params.read_text())["clip"]["model_name"]


def test_a_bad_override_is_refused_naming_the_file(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    (tmp_path / "params.local.yaml").write_text("- not a mapping\n")
    with pytest.raises(ConfigError, match="params.local.yaml: expected a mapping"):
        load_params(params)
    (tmp_path / "params.local.yaml").write_text("cam:\n  box_treshold: 0.5\n")
    with pytest.raises(ConfigError, match=r"params.yaml \(\+ params.local.yaml\): unknown key\(s\) cam.box_treshold"):
        load_params(params)
