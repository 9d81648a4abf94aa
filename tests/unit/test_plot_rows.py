"""Rows of the DVC plots: per-class IoU per artifact, mIoU in pipeline order, training curves."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wsss.metrics import ConfusionAccumulator
from wsss.plots import per_class_iou_rows, pipeline_miou_rows, training_curve_rows

CLASSES = ("cat", "dog")


def _scores(gt: np.ndarray, pred: np.ndarray):
    accumulator = ConfusionAccumulator(len(CLASSES) + 1)
    accumulator.update(gt, pred)
    return accumulator.scores()


@pytest.fixture
def scores():
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 1]], dtype=np.uint8)
    perfect = _scores(gt, gt)
    half = _scores(gt, np.array([[0, 0, 1, 0], [0, 0, 1, 0]], dtype=np.uint8))
    # Deliberately not in pipeline order: the rows must put them in order.
    return {
        "model.scales=1.crf=off": perfect,
        "pseudo.crf=on": half,
        "cam_raw.alpha=1": half,
        "cam_refined.alpha=1.background=learned": perfect,
        "cam_refined.alpha=1": half,
    }


def test_per_class_rows_are_one_series_per_artifact_in_pipeline_order(scores) -> None:
    rows = per_class_iou_rows(scores, CLASSES)
    order = list(dict.fromkeys(row["artifact"] for row in rows))
    assert order == ["cam_raw.alpha=1", "cam_refined.alpha=1", "cam_refined.alpha=1.background=learned", "pseudo.crf=on", "model.scales=1.crf=off"]
    assert {row["step"] for row in rows if row["artifact"].startswith("cam_refined")} == {"CAA"}
    # "dog" has neither ground truth nor a prediction: no row (IoU undefined), never a 0 bar.
    assert {row["class"] for row in rows} == {"background", "cat"}
    # One bar per (artifact, class): nothing for a chart to stack, and every IoU is in [0, 1].
    assert len({(row["artifact"], row["class"]) for row in rows}) == len(rows)
    assert all(0.0 <= row["iou"] <= 1.0 for row in rows)
    cat = {row["artifact"]: row["iou"] for row in rows if row["class"] == "cat"}
    assert cat["model.scales=1.crf=off"] == 1.0 and cat["pseudo.crf=on"] == 0.5
    assert all(row["class_index"] == ["background", *CLASSES].index(row["class"]) for row in rows)


def test_per_class_rows_refuse_a_class_list_of_another_length(scores) -> None:
    with pytest.raises(ValueError, match="3 per-class IoUs for 4 classes"):
        per_class_iou_rows(scores, (*CLASSES, "bird"))


def test_pipeline_rows_follow_cam_caa_pseudo_model(scores) -> None:
    rows = pipeline_miou_rows(scores)
    assert [row["step"] for row in rows] == ["CAM", "CAA", "CAA", "pseudo", "model"]
    assert [row["order"] for row in rows] == sorted(row["order"] for row in rows)
    assert rows[-1]["miou"] == 1.0 and 0.0 < rows[0]["miou"] < 1.0


def test_training_curves_merge_resumed_logs_and_scale_mmseg_percentages() -> None:
    first = "\n".join(
        json.dumps(line)
        for line in [
            {"lr": 0.01, "loss": 2.0, "decode.loss_cgl": 2.0, "iter": 1, "step": 1, "time": 0.5},
            {"lr": 0.009, "loss": 1.5, "decode.loss_cgl": 1.5, "iter": 2, "step": 2},
            {"miou": 0.25, "pixel_accuracy": 0.5, "step": 2},
        ]
    )
    resumed = (
        "\n".join(
            json.dumps(line)
            for line in [
                {"lr": 0.008, "loss": 1.4, "iter": 2, "step": 2},
                {"lr": 0.007, "loss": 1.0, "iter": 3, "step": 3},
                {"mIoU": 40.0, "aAcc": 80.0, "step": 3},
            ]
        )
        + "\n\n"
    )
    train, val = training_curve_rows([first, resumed])
    assert [row["iter"] for row in train] == [1, 2, 3]
    assert train[1] == {"iter": 2, "lr": 0.008, "loss": 1.4}  # the resumed run's value wins
    assert train[0]["decode.loss_cgl"] == 2.0 and "time" not in train[0]
    assert val == [{"iter": 2, "miou": 0.25}, {"iter": 3, "miou": 0.4}]


def test_training_curves_name_a_broken_line() -> None:
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        training_curve_rows(['{"iter": 1, "loss": 1.0}\n{broken'])
