"""Confidence-guided cross-entropy (core, no mmseg) against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from wsss.losses import ConfidenceGuidedCrossEntropy, confidence_guided_cross_entropy

# One image, two classes, 2x2 pixels. Per pixel (row-major): logits (class 0, class 1),
# label and confidence. The last pixel is ignored (255).
LOGITS = torch.tensor([[[[2.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [1.0, 3.0]]]])  # (1, 2, 2, 2)
LABELS = torch.tensor([[[0, 1], [1, 255]]])
CONFIDENCE = torch.tensor([[[0.99, 0.5], [0.96, 0.2]]])
# Hand-computed -log softmax[label] = log(1 + exp(z_other - z_label)) for two classes.
CE_P0 = math.log(1 + math.exp(-2.0))  # logits (2, 0), label 0
CE_P1 = math.log(1 + math.exp(-1.0))  # logits (0, 1), label 1
CE_P2 = math.log(2.0)  # logits (1, 1), label 1


def _loss(**kwargs: object) -> float:
    return float(confidence_guided_cross_entropy(LOGITS, LABELS, **kwargs))  # type: ignore[arg-type]


def test_no_confidence_is_mean_ce_over_non_ignored_pixels() -> None:
    expected = (CE_P0 + CE_P1 + CE_P2) / 3
    assert _loss() == pytest.approx(expected, rel=1e-6)
    assert _loss() == pytest.approx(float(F.cross_entropy(LOGITS, LABELS, ignore_index=255)), rel=1e-6)


def test_hard_mode_keeps_pixels_at_or_above_threshold() -> None:
    assert _loss(confidence=CONFIDENCE) == pytest.approx((CE_P0 + CE_P2) / 2, rel=1e-6)
    # threshold is inclusive: 0.96 >= 0.96 stays, 0.99 too.
    assert _loss(confidence=CONFIDENCE, threshold=0.96) == pytest.approx((CE_P0 + CE_P2) / 2, rel=1e-6)
    assert _loss(confidence=CONFIDENCE, threshold=0.97) == pytest.approx(CE_P0, rel=1e-6)


def test_soft_mode_weights_by_confidence() -> None:
    expected = (0.99 * CE_P0 + 0.5 * CE_P1 + 0.96 * CE_P2) / (0.99 + 0.5 + 0.96)
    assert _loss(confidence=CONFIDENCE, mode="soft") == pytest.approx(expected, rel=1e-6)


def test_class_balanced_gives_each_present_class_equal_share() -> None:
    # class 0: one pixel; class 1: two pixels -> (CE_0 + mean(CE_1, CE_2)) / 2
    assert _loss(balanced=True) == pytest.approx((CE_P0 + (CE_P1 + CE_P2) / 2) / 2, rel=1e-6)
    # hard confidence leaves one pixel per class
    assert _loss(confidence=CONFIDENCE, balanced=True) == pytest.approx((CE_P0 + CE_P2) / 2, rel=1e-6)
    soft_class1 = (0.5 * CE_P1 + 0.96 * CE_P2) / (0.5 + 0.96)
    assert _loss(confidence=CONFIDENCE, mode="soft", balanced=True) == pytest.approx((CE_P0 + soft_class1) / 2, rel=1e-6)


def test_class_weight_matches_torch_weighted_mean() -> None:
    class_weight = torch.tensor([1.0, 3.0])
    expected = (CE_P0 + 3 * CE_P1 + 3 * CE_P2) / 7
    assert _loss(class_weight=class_weight) == pytest.approx(expected, rel=1e-6)
    torch_value = F.cross_entropy(LOGITS, LABELS, weight=class_weight, ignore_index=255)
    assert _loss(class_weight=class_weight) == pytest.approx(float(torch_value), rel=1e-6)


@pytest.mark.parametrize("case", ["all_ignored", "all_unconfident"])
def test_nothing_supervised_gives_zero_with_gradient(case: str) -> None:
    logits = LOGITS.clone().requires_grad_(True)
    if case == "all_ignored":
        loss = confidence_guided_cross_entropy(logits, torch.full_like(LABELS, 255), balanced=True)
    else:
        loss = confidence_guided_cross_entropy(logits, LABELS, torch.zeros_like(CONFIDENCE))
    assert loss.item() == 0.0
    assert loss.requires_grad
    loss.backward()
    assert logits.grad is not None
    assert torch.isfinite(logits.grad).all() and (logits.grad == 0).all()


def test_binary_confidence_hard_mode_equals_reference_255_encoding() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 8, 8, generator=generator, requires_grad=True)
    labels = torch.randint(0, 5, (2, 8, 8), generator=generator)
    labels[torch.rand(2, 8, 8, generator=generator) < 0.1] = 255
    confidence = (torch.rand(2, 8, 8, generator=generator) < 0.7).float()
    ours = confidence_guided_cross_entropy(logits, labels, confidence)
    (ours_grad,) = torch.autograd.grad(ours, logits)
    reference_labels = labels.masked_fill(confidence == 0, 255)
    reference = F.cross_entropy(logits, reference_labels, ignore_index=255)
    (reference_grad,) = torch.autograd.grad(reference, logits)
    torch.testing.assert_close(ours, reference)
    torch.testing.assert_close(ours_grad, reference_grad)


def test_half_precision_confidence_and_module_wrapper() -> None:
    module = ConfidenceGuidedCrossEntropy(threshold=0.95, mode="hard")
    value = module(LOGITS, LABELS, CONFIDENCE.half())
    assert float(value) == pytest.approx((CE_P0 + CE_P2) / 2, rel=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(labels=torch.tensor([[[0, 2], [1, 255]]])), "outside"),
        (dict(labels=LABELS[..., :1]), "labels must be"),
        (dict(confidence=CONFIDENCE[..., :1]), "confidence must"),
        (dict(mode="fuzzy"), "mode"),
        (dict(class_weight=torch.ones(3)), "class_weight"),
    ],
)
def test_invalid_inputs_are_rejected(kwargs: dict, message: str) -> None:
    arguments = dict(labels=LABELS, confidence=None)
    arguments.update(kwargs)
    labels = arguments.pop("labels")
    confidence = arguments.pop("confidence")
    with pytest.raises(ValueError, match=message):
        confidence_guided_cross_entropy(LOGITS, labels, confidence, **arguments)
