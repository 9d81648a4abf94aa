"""Tests of wsss.prompts.sharpness (Eq. 9 sharpness and template ranking) with hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from wsss.prompts.sharpness import TemplateSharpness, rank_templates, sharpness_of_scores

PROBABILITIES = torch.tensor(
    [
        [0.5, 0.3, 0.1, 0.1],  # tags {0, 1}: scores [.5, .3]
        [0.1, 0.1, 0.7, 0.1],  # tag {2}: single tag, skipped
        [0.1, 0.2, 0.3, 0.4],  # tags {1, 2, 3}: scores [.2, .3, .4]
    ]
)
TAG_SETS = [[0, 1], [2], [3, 1, 2]]

R = 1 / math.sqrt(2)
# Class embeddings (C=3, E=2) for two fake templates.
EVEN = torch.tensor([[R, R], [R, -R], [-1.0, 0.0]])  # classes 0 and 1 both at cos 1/sqrt2 to [1, 0]
SHARP = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])  # class 0 at cos 1, class 1 at cos 0
IMAGES = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
RANK_TAGS = [[0, 1], [2]]  # the second image has one tag and is skipped


def fake_class_text(template: str) -> torch.Tensor:
    """(C, E) embeddings chosen by the template's first word."""
    return {"even": EVEN, "sharp": SHARP}[template.split(maxsplit=1)[0]]


def test_sharpness_by_hand_ddof1() -> None:
    """Sum over multi-tag images of var(ddof=1) / mean of the tags' scores."""
    value, used = sharpness_of_scores(PROBABILITIES, TAG_SETS)
    # image 0: mean .4, var = (.1^2 + .1^2) / 1 = .02 -> .02 / .4 = .05
    # image 2: mean .3, var = (.1^2 + 0 + .1^2) / 2 = .01 -> .01 / .3 = 1/30
    assert used == 2
    assert value == pytest.approx(0.05 + 1 / 30, abs=1e-6)


def test_sharpness_by_hand_ddof0() -> None:
    """The population variance (ddof=0) divides by n instead of n - 1."""
    value, used = sharpness_of_scores(PROBABILITIES, TAG_SETS, ddof=0)
    # image 0: var = .02 / 2 = .01 -> .01 / .4 = .025
    # image 2: var = .02 / 3 -> (.02 / 3) / .3 = 1/45
    assert used == 2
    assert value == pytest.approx(0.025 + 1 / 45, abs=1e-6)


def test_sharpness_ignores_duplicate_tags() -> None:
    """Repeated ids count once, so [2, 2] is a single-tag image and is skipped."""
    value, used = sharpness_of_scores(PROBABILITIES, [[0, 1, 1], [2, 2], [1]])
    assert used == 1
    assert value == pytest.approx(0.05, abs=1e-6)


def test_sharpness_of_equal_scores_is_zero() -> None:
    """Equal tag scores have zero variance."""
    value, used = sharpness_of_scores(torch.tensor([[0.25, 0.25, 0.5]]), [[0, 1]])
    assert (value, used) == (0.0, 1)


def test_sharpness_rejects_mismatched_rows() -> None:
    """One probability row per tag set is required."""
    with pytest.raises(ValueError, match=r"expected \(2, C\) probabilities"):
        sharpness_of_scores(PROBABILITIES, TAG_SETS[:2])


def test_rank_templates_prefers_even_scores() -> None:
    """The template whose scores are equal over the image's tags ranks first, with sharpness 0."""
    ranking = rank_templates(IMAGES, RANK_TAGS, ["sharp {}.", "even {}."], fake_class_text, logit_scale=1.0)
    assert [entry.template for entry in ranking] == ["even {}.", "sharp {}."]
    assert all(isinstance(entry, TemplateSharpness) for entry in ranking)
    assert all(entry.num_images == 1 for entry in ranking)

    even, sharp = ranking
    # even: logits [1/sqrt2, 1/sqrt2, -1] -> p0 = p1 = e^r / (2 e^r + e^-1), variance 0
    assert even.sharpness == pytest.approx(0.0, abs=1e-9)
    p_even = math.exp(R) / (2 * math.exp(R) + math.exp(-1.0))
    assert even.mean_tag_probability == pytest.approx(p_even, abs=1e-6)

    # sharp: logits [1, 0, -1] -> p = [e, 1, e^-1] / Z; var(ddof=1) of two values = (p0 - p1)^2 / 2
    z = math.e + 1.0 + math.exp(-1.0)
    p0, p1 = math.e / z, 1.0 / z
    mean = (p0 + p1) / 2
    assert sharp.sharpness == pytest.approx((p0 - p1) ** 2 / 2 / mean, abs=1e-6)
    assert sharp.mean_tag_probability == pytest.approx(mean, abs=1e-6)


def test_rank_templates_normalises_features() -> None:
    """Unnormalised image and text features give the same ranking values as unit ones."""
    scaled = rank_templates(3 * IMAGES, RANK_TAGS, ["sharp {}."], lambda t: 5 * fake_class_text(t), logit_scale=1.0)
    unit = rank_templates(IMAGES, RANK_TAGS, ["sharp {}."], fake_class_text, logit_scale=1.0)
    assert scaled[0].sharpness == pytest.approx(unit[0].sharpness, abs=1e-6)


def test_rank_templates_ties_break_by_name() -> None:
    """Templates with the same sharpness are ordered by their text."""
    ranking = rank_templates(IMAGES, RANK_TAGS, ["even b {}", "even a {}"], fake_class_text, logit_scale=1.0)
    assert [entry.template for entry in ranking] == ["even a {}", "even b {}"]


def test_rank_templates_needs_a_multi_tag_image() -> None:
    """Without any image holding two distinct tags there is nothing to score."""
    with pytest.raises(ValueError, match="two or more tags"):
        rank_templates(IMAGES, [[0], [1, 1]], ["even {}."], fake_class_text, logit_scale=1.0)
