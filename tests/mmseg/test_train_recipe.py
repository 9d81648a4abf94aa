"""The mmseg config file is the one source of a training recipe; `train.*` params override single values.

Before, the train stage always passed params.yaml's `train.max_iters/batch_size/crop_size/lr/seed`
into the config, so selecting the reference R101 recipe file trained with the tiny sample values.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("mmseg")

from tasks.train import train_config
from tests.params_edit import read_params, with_values
from wsss.catalog import ArtifactLayout
from wsss.datasets import ImageRecord, Manifest
from wsss.params import Params
from wsss_mmseg.recipe import effective_recipe

ROOT = Path(__file__).resolve().parents[2]
R101 = "src/wsss_mmseg/configs/deeplabv2_r101_voc_pseudo.py"
REFERENCE = {"max_iters": 20000, "batch_size": 10, "crop_size": [321, 321], "lr": 2.5e-4, "seed": 0}


def recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **train: object) -> dict:
    monkeypatch.chdir(ROOT)  # train.config is relative to the repository, like in a stage run
    params = Params.from_mapping(with_values(read_params(), {f"train.{key}": value for key, value in train.items()}))
    record = ImageRecord("a", "JPEGImages/a.jpg", ("cat",), None, "0" * 64, 8, 8)
    manifest = Manifest("m", (record,), tuple(params.vocabulary.class_names))
    cfg = train_config(params, ArtifactLayout(), manifest, tmp_path / "work", tmp_path / "split.txt")
    return {key: value for key, value in effective_recipe(cfg).items() if key in REFERENCE}


def test_selecting_the_reference_config_trains_with_its_own_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert recipe(tmp_path, monkeypatch, config=R101) == REFERENCE


def test_a_set_train_key_overrides_only_that_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert recipe(tmp_path, monkeypatch, config=R101, lr=0.001) == {**REFERENCE, "lr": 0.001}


def test_the_sample_recipe_is_the_tiny_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped params keep the sample's training exactly as it was (20 iterations, batch 2, crop 64, lr 0.01)."""
    assert recipe(tmp_path, monkeypatch) == {"max_iters": 20, "batch_size": 2, "crop_size": [64, 64], "lr": 0.01, "seed": 0}
