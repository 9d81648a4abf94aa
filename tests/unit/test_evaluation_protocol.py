"""The evaluation protocol and the SemPLeS assembly as pure functions, on hand-made arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from wsss.evaluation import ImageMaps, ProtocolScores, model_keys, score_image
from wsss.prompts.assembly import masks_from_labels, masks_from_refined, training_summary
from wsss.prompts.learning import TrainingRecord
from wsss.pseudo import PseudoSettings


def image_maps() -> ImageMaps:
    """A 4x4 image: class 0 (label 1) on the left half, background on the right."""
    ground_truth = np.array([[1, 1, 0, 0]] * 4, dtype=np.uint8)
    refined = np.zeros((1, 4, 4), dtype=np.float16)
    refined[0, :, :2] = 0.9
    stage = np.array([[1, 1, 0, 255]] * 4, dtype=np.uint8)
    return ImageMaps(
        ground_truth,
        np.full((1, 2, 2), 0.5, np.float32),
        refined,
        np.array([0]),
        np.where(stage == 255, 0, stage).astype(np.uint8),
        stage,
        rgb=lambda: np.zeros((4, 4, 3), np.uint8),
    )


def test_every_protocol_key_is_scored_once_per_image() -> None:
    scores = ProtocolScores(num_classes=2)
    score_image(scores, image_maps(), PseudoSettings(crf=False), alphas=(1.0, 2.0))
    result = scores.scores()
    assert sorted(result) == [
        "cam_raw.alpha=1",
        "cam_raw.alpha=2",
        "cam_refined.alpha=1",
        "cam_refined.alpha=2",
        "pseudo.crf=off",
        "pseudo.crf=on",
        "pseudo_confident_pixels.crf=off",
    ]
    assert result["cam_refined.alpha=1"].mean_iou == 1.0  # 0.9 beats (1 - 0.9); 0 loses to 1
    assert result["pseudo.crf=off"].mean_iou == 1.0  # the stage's raw labels, as written
    # Only confident pixels count: the ignored column is left out, not scored as a miss.
    assert result["pseudo_confident_pixels.crf=off"].num_pixels == 12


def test_model_keys_name_scales_and_crf() -> None:
    assert model_keys((1.0, 0.75), True) == [("model.scales=1,0.75.crf=off", False), ("model.scales=1,0.75.crf=on", True)]
    assert model_keys((1.0,), False) == [("model.scales=1.crf=off", False)]


def test_semples_masks_come_from_labels_or_refined_maps() -> None:
    labels = np.array([[0, 3], [3, 255]], dtype=np.uint8)  # class id 2 is label 3
    ((class_id, mask),) = masks_from_labels(labels, [2], size=4)
    assert class_id == 2 and mask.shape == (4, 4) and abs(float(mask.max()) - 1) < 1e-3 and float(mask.min()) == 0.0
    refined = np.stack([np.eye(2, dtype=np.float16)])
    ((class_id, soft),) = masks_from_refined(refined, [5], size=4)
    assert class_id == 5 and soft.shape == (4, 4) and torch.all((soft >= 0) & (soft <= 1))


def test_training_summary_leaves_the_warm_up_step_out() -> None:
    record = TrainingRecord(losses=[2.0, 1.5, 1.0], matches=[0.0] * 3, pushes=[0.0] * 3, step_seconds=[9.0, 0.1, 0.3])
    summary = training_summary(record, pairs=7, device="cpu")
    assert summary == {"pairs": 7, "steps": 3, "loss_first": 2.0, "loss_last": 1.0, "seconds_per_step_median": 0.2, "device": "cpu"}


def test_overlay_ids_naming_no_image_are_reported_not_silently_dropped(tmp_path: Path) -> None:
    """`evaluate.overlay_ids` naming unknown ids drew "0 images" with no warning; the evaluate stage now
    warns and records them in evaluation_run.json."""
    from wsss.evaluation.protocol import EvaluateSettings, overlay_choice
    from wsss.io.records import EvaluationRun

    ids = ["a", "b", "c"]
    assert overlay_choice(EvaluateSettings(max_overlays=2), ids) == (["a", "b"], [])
    assert overlay_choice(EvaluateSettings(overlay_ids=("c", "zebra", "a", "zebra", "B")), ids) == (["a", "c"], ["zebra", "B"])
    record = EvaluationRun(None, {}, {}, "0" * 64, None, overlay_ids_not_found=["zebra", "B"])
    record.write(tmp_path / "run.json")
    assert EvaluationRun.read(tmp_path / "run.json").overlay_ids_not_found == ["zebra", "B"]
