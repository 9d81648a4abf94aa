"""Learned prompts file (round trip, clear errors) and the side-by-side metrics helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from wsss.errors import StoreError
from wsss.evaluation import background_comparison_rows, metrics_document, with_learned_background
from wsss.metrics import ConfusionAccumulator
from wsss.prompts.learned_file import load_learned_prompts, save_learned_prompts


def test_round_trip_keeps_tensors_and_lineage(tmp_path: Path) -> None:
    tensors = {"context": torch.randn(2, 3, 8), "background_text": torch.randn(2, 4), "class_text": torch.randn(2, 4)}
    attributes = {"class_names": ["cat", "boat"], "clip": {"weights": "random-init(seed=0)"}, "flow_run_id": None}
    path = save_learned_prompts(tmp_path / "p.safetensors", tensors, attributes)
    assert not list(tmp_path.glob("*.partial"))
    loaded = load_learned_prompts(path)
    assert torch.equal(loaded.context, tensors["context"]) and torch.equal(loaded.background_text, tensors["background_text"])
    assert loaded.attributes == attributes and loaded.class_names == ["cat", "boat"]


def test_missing_and_corrupt_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"p\.safetensors.*learn_prompts"):
        load_learned_prompts(tmp_path / "p.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(StoreError, match=r"bad\.safetensors: cannot read"):
        load_learned_prompts(tmp_path / "bad.safetensors")
    with pytest.raises(StoreError, match="lack tensors"):
        save_learned_prompts(tmp_path / "x.safetensors", {"context": torch.zeros(1)}, {})


def scores_of(prediction: np.ndarray) -> object:
    accumulator = ConfusionAccumulator(3)
    accumulator.update(np.array([[0, 1], [2, 2]], dtype=np.uint8), prediction.astype(np.uint8))
    return accumulator.scores()


def test_learned_scores_sit_next_to_the_fixed_ones() -> None:
    fixed = {"cam_refined.alpha=1": scores_of(np.array([[0, 1], [2, 0]])), "pseudo.crf=on": scores_of(np.array([[0, 1], [2, 2]]))}
    learned = {"cam_refined.alpha=1": scores_of(np.array([[0, 1], [2, 2]]))}
    both = with_learned_background(fixed, learned)
    document = metrics_document("train", both)["train"]
    assert set(document["cam_refined"]) == {"alpha=1", "alpha=1.background=learned"}
    assert document["cam_refined"]["alpha=1.background=learned"]["miou"] == 1.0
    rows = background_comparison_rows(both)
    assert rows == [
        {
            "artifact": "cam_refined.alpha=1",
            "fixed": round(float(fixed["cam_refined.alpha=1"].mean_iou), 4),
            "learned": 1.0,
            "delta": round(1.0 - float(fixed["cam_refined.alpha=1"].mean_iou), 4),
        }
    ]


@pytest.mark.parametrize(("value", "name"), [(float("nan"), "background_text"), (float("inf"), "context"), (-float("inf"), "class_text")])
def test_non_finite_learned_prompts_are_refused_when_read_naming_the_file(tmp_path: Path, value: float, name: str) -> None:
    """Were refused only after the whole second pass, without naming the file."""
    from safetensors.torch import save_file

    tensors = {"context": torch.randn(2, 3, 8), "background_text": torch.randn(2, 4), "class_text": torch.randn(2, 4)}
    tensors[name].view(-1)[1] = value
    save_file(tensors, str(tmp_path / "prompts.safetensors"), metadata={"class_names": '["cat", "boat"]'})
    with pytest.raises(StoreError, match=rf"prompts\.safetensors: tensor '{name}' holds 1 NaN or infinite values"):
        load_learned_prompts(tmp_path / "prompts.safetensors")
