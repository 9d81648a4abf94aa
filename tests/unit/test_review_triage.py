"""Triage score terms, score, per-image IoU and Spearman on hand-built arrays with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wsss.review.triage import TriageTerms, crf_disagreement, image_iou, normalised_entropy, spearman, tag_doubt, triage_score, triage_terms


def test_tag_doubt_compares_the_weakest_tag_with_an_even_split() -> None:
    assert tag_doubt([0.9]) == pytest.approx(0.1)
    assert tag_doubt([0.45, 0.45]) == pytest.approx(0.1)  # two well-seen tags are not penalised
    assert tag_doubt([0.05, 0.9]) == pytest.approx(0.9)  # one tag CLIP barely sees
    assert tag_doubt([0.6, 0.6]) == 0.0  # clipped at an even split
    assert tag_doubt([]) == 0.0


def test_entropy_is_zero_for_a_certain_map_and_one_for_a_uniform_one() -> None:
    certain = np.zeros((1, 4, 4), dtype=np.float32)  # background 1, tag 0 everywhere
    assert normalised_entropy(certain) == pytest.approx(0.0)
    uniform = np.full((1, 4, 4), 0.5, dtype=np.float32)  # background 0.5, tag 0.5
    assert normalised_entropy(uniform) == pytest.approx(1.0)
    three = np.full((2, 2, 2), 0.5, dtype=np.float32)  # scores 0.5, 0.5, 0.5 over 3 channels
    assert normalised_entropy(three) == pytest.approx(1.0)
    half = np.zeros((1, 2, 2), dtype=np.float32)
    half[0, 0] = 0.5  # one row uniform (entropy 1), one row certain (0)
    assert normalised_entropy(half) == pytest.approx(0.5)


def test_crf_disagreement_counts_pixels_whose_label_the_crf_changed() -> None:
    cams = np.zeros((1, 2, 4), dtype=np.float32)
    cams[0, :, :2] = 0.9  # arg-max: class id 6 -> label 7 on the left half
    crf = np.array([[7, 0, 0, 0], [7, 7, 0, 7]], dtype=np.uint8)
    # left half: (0,1) differs; right half: (1,3) differs -> 2 of 8
    assert crf_disagreement(cams, [6], crf) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="differ in size"):
        crf_disagreement(cams, [6], crf[:, :2])


def test_triage_terms_and_score_on_a_hand_built_image() -> None:
    cams = np.zeros((1, 4, 4), dtype=np.float32)
    cams[0, :2] = 0.5  # top half uniform between background and tag
    labels = np.zeros((4, 4), dtype=np.uint8)
    labels[0] = 255  # 4 of 16 ignored
    crf = np.zeros((4, 4), dtype=np.uint8)
    crf[:2, :2] = 1  # arg-max is background everywhere (ties go to background): 4 of 16 differ
    confidence = np.full((4, 4), 0.8, dtype=np.float32)
    terms = triage_terms(tag_probabilities=[0.7], confidence=confidence, labels=labels, crf_labels=crf, cams=cams, class_ids=[0])
    assert terms.as_dict() == pytest.approx(
        {"tag_doubt": 0.3, "low_confidence": 0.2, "ignored_share": 0.25, "crf_disagreement": 0.25, "map_entropy": 0.5}
    )
    assert triage_score(terms) == pytest.approx(1 - (0.3 + 0.2 + 0.25 + 0.25 + 0.5) / 5)
    only_tags = {"tag_doubt": 1.0}
    assert triage_score(terms, only_tags) == pytest.approx(0.7)


def test_a_worse_mask_scores_lower() -> None:
    cams = np.zeros((1, 8, 8), dtype=np.float32)
    cams[0, 2:6, 2:6] = 0.9
    good_labels = np.where(cams[0] > 0, 1, 0).astype(np.uint8)
    common = dict(crf_labels=good_labels, cams=cams, class_ids=[0])
    good = triage_terms(tag_probabilities=[0.9], confidence=np.ones((8, 8)), labels=good_labels, **common)
    bad_labels = good_labels.copy()
    bad_labels[:3] = 255
    bad = triage_terms(tag_probabilities=[0.2], confidence=np.full((8, 8), 0.6), labels=bad_labels, **common)
    assert triage_score(bad) < triage_score(good)


def test_weights_must_name_known_terms() -> None:
    terms = TriageTerms(0, 0, 0, 0, 0)
    for weights in ({"tag_doubt": 1.0, "colour": 1.0}, {}, {"tag_doubt": 0.0}, {"tag_doubt": -1.0}):
        with pytest.raises(ValueError, match="weights"):
            triage_score(terms, weights)


def test_large_maps_are_subsampled_to_the_same_answer() -> None:
    cams = np.zeros((1, 64, 64), dtype=np.float32)
    cams[0, :, :32] = 0.5
    labels = np.zeros((64, 64), dtype=np.uint8)
    common = dict(tag_probabilities=[1.0], confidence=np.ones((64, 64)), labels=labels, crf_labels=labels, cams=cams, class_ids=[0])
    assert triage_terms(**common, max_pixels=256).map_entropy == pytest.approx(triage_terms(**common).map_entropy)


def test_image_iou_follows_the_project_protocol() -> None:
    gt = np.array([[0, 1], [1, 1]], dtype=np.uint8)
    pred = np.array([[0, 1], [0, 1]], dtype=np.uint8)
    # background: TP 1, FP 1 -> 1/2; class 1: TP 2, FN 1 -> 2/3
    assert image_iou(gt, pred, 3) == pytest.approx((0.5 + 2 / 3) / 2)
    ignored = np.array([[0, 255], [1, 1]], dtype=np.uint8)  # a predicted 255 is a miss
    assert image_iou(gt, ignored, 3) == pytest.approx((1.0 + 2 / 3) / 2)
    assert image_iou(np.full((2, 2), 255, np.uint8), pred, 3) is None  # no GT pixel


def test_spearman() -> None:
    assert spearman([0.1, 0.2, 0.3, 0.4], [0.0, 0.5, 0.6, 0.9]) == pytest.approx(1.0)
    assert spearman([0.1, 0.2, 0.3], [0.9, 0.5, 0.1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([0.1, 0.2], [0.3, 0.4]))
    assert math.isnan(spearman([0.1, 0.1, 0.1], [0.3, 0.4, 0.5]))


def test_spearman_matches_scipy_with_ties() -> None:
    from scipy.stats import spearmanr

    rng = np.random.default_rng(1)
    scores, ious = rng.integers(0, 5, 40).astype(float), rng.random(40)
    ious[:10] = 0.5
    assert spearman(scores, ious) == pytest.approx(spearmanr(scores, ious).statistic, abs=1e-12)
