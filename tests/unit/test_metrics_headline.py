"""The headline metrics (`wsss.evaluation.headline`): one mIoU per artifact, the variant it is known by."""

from __future__ import annotations

import numpy as np

from wsss.evaluation.headline import headline
from wsss.evaluation.protocol import metrics_document
from wsss.metrics import ConfusionAccumulator

KEYS = (
    "cam_raw.alpha=1",
    "cam_raw.alpha=2",
    "cam_refined.alpha=1",
    "cam_refined.alpha=2",
    "pseudo.crf=on",
    "pseudo.crf=off",
    "pseudo_confident_pixels.crf=on",
    "model.scales=1.crf=off",
    "model.scales=1.crf=on",
)


def documents() -> tuple[dict, dict]:
    rng = np.random.default_rng(0)
    scores = {}
    for key in KEYS:
        accumulator = ConfusionAccumulator(4)
        accumulator.update(rng.integers(0, 4, (20, 20)), rng.integers(0, 4, (20, 20)))
        scores[key] = accumulator.scores()
    document = {**metrics_document("train", scores), "num_images_with_ground_truth": 1}
    return document, headline(document)


def test_the_headline_picks_the_variant_each_artifact_is_known_by() -> None:
    document, head = documents()
    train = document["train"]
    assert head["train"]["cam_refined"]["miou"] == max(train["cam_refined"][v]["miou"] for v in ("alpha=1", "alpha=2"))
    assert head["train"]["pseudo"]["miou"] == train["pseudo"]["crf=on"]["miou"]  # the stage's own CRF setting
    assert head["train"]["model"]["miou"] == train["model"]["scales=1.crf=on"]["miou"]
    assert "pseudo_confident_pixels" not in head["train"] and head["num_images_with_ground_truth"] == 1
    learned = {
        **document,
        "train": {
            **train,
            "pseudo": {**train["pseudo"], "crf=on.background=learned": {"miou": 0.5}},
            "pseudo_confident_pixels": {**train["pseudo_confident_pixels"], "crf=on.background=learned": {"miou": 0.4}},
        },
    }
    assert headline(learned)["train"]["pseudo_learned"] == {"miou": 0.5}
    assert headline(learned)["train"]["pseudo"] == head["train"]["pseudo"]
