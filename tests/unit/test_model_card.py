"""The model card says what the model is, what it learned from, every score, its lineage, and its
limits first and loudly."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from wsss.io.records import ModelRecord
from wsss.metrics import ConfusionAccumulator
from wsss.model_card import FEW_SCORED_IMAGES, ModelCardFacts, render_model_card
from wsss.review.training_labels import StagedLabels


def record(**changes: object) -> ModelRecord:
    values = dict(
        checkpoint="artifacts/train/model.pth",
        trained_iterations=20000,
        num_images=10582,
        class_names=["background", "cat", "dog"],
        input_manifest_sha256="ab" * 32,
        pseudo_params={"crf": True, "background_alpha": 1.0},
        pseudo_flow_run_id="p-run",
        params={"config": "src/wsss_mmseg/configs/deeplabv2_r101_voc_pseudo.py", "msc_training": False},
        flow_run_id="t-run",
        recipe={"max_iters": 20000, "batch_size": 10, "crop_size": [321, 321], "lr": 0.00025, "seed": 0},
        corrections=StagedLabels(
            Path("m"),
            Path("c"),
            used=[{"image_id": "2007_000032", "mask_sha256": "34" * 32}],
            stale=[{"image_id": "2007_000033", "reason": "the image's bytes changed"}],
        ).summary(),
        architecture={
            "segmentor": "EncoderDecoder",
            "backbone": {"type": "ResNet", "depth": 101},
            "decode_head": {"type": "ASPPV2Head"},
            "mean": [123.675, 116.28, 103.53],
            "std": [58.395, 57.12, 57.375],
        },
        config_sha256="ef" * 32,
        init_weights={"path": "weights/resnet101.pth", "sha256": "12" * 32},
    )
    values.update(changes)
    return ModelRecord(**values)  # type: ignore[arg-type]


def facts(model: ModelRecord, clip: dict | None, scored: int) -> ModelCardFacts:
    accumulator = ConfusionAccumulator(3)
    accumulator.update(np.array([[0, 1], [2, 2]]), np.array([[0, 1], [2, 1]]))
    scores = {"model.scales=1,0.75.crf=on": accumulator.scores(), "pseudo.crf=on": accumulator.scores()}
    return ModelCardFacts(
        model,
        clip,
        "a clean origami {}.",
        {"kind": "voc", "root": "data/VOC2012", "split": "train"},
        scores,
        "train",
        scored,
        {"git_commit": "0123abc", "git_dirty": False},
        "84623b62",
        "e-run",
    )


def test_a_reference_run_states_facts_without_warnings() -> None:
    card = render_model_card(facts(record(), {"model": "ViT-B-16", "weights": "sha256:" + "9" * 64}, FEW_SCORED_IMAGES))
    assert "Limits" not in card and "RANDOM" not in card and "NO IMAGENET" not in card
    for fact in (
        "deeplabv2_r101_voc_pseudo.py",
        "20000 iterations",
        "ResNet-101",
        "ASPPV2Head",
        "weights/resnet101.pth",
        "10582 training images",
        "`" + "ab" * 32 + "`",
        "sha256:" + "9" * 64,
        "'crf': True",
        "Human-corrected masks used: 1 (2007_000032); stale (not used): 1",
        "`model.scales=1,0.75.crf=on`",
        "`pseudo.crf=on`",
        "commit `0123abc`",
        "`84623b62`",
        "0 background, 1 cat, 2 dog",
    ):
        assert fact in card, fact
    miou = float(card.split("`model.scales=1,0.75.crf=on` | ")[1].split(" |")[0])
    assert math.isclose(miou, (1 + 0.5 + 0.5) / 3, abs_tol=1e-4)


def test_random_clip_weights_no_imagenet_init_and_few_scored_images_are_said_first_and_loudly() -> None:
    card = render_model_card(facts(record(init_weights=None), {"model": "ViT-B-16", "weights": "random-init(seed=0)"}, 1))
    limits = card[card.index("## Limits (read first)") : card.index("## What the model is")]
    assert "**RANDOM CLIP WEIGHTS** (random-init(seed=0))" in limits
    assert "**NO IMAGENET INIT**" in limits and "**SCORED ON 1 IMAGE(S)**" in limits
    assert "Initial weights: none (random initialisation)" in card
    unknown = render_model_card(facts(record(), None, FEW_SCORED_IMAGES))  # no CAM store: the weights cannot be vouched for
    assert "**CLIP WEIGHTS UNKNOWN**" in unknown and "RANDOM" not in unknown
