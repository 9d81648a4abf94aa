"""Tests of wsss.cam.gradcam (normalisation, Grad-CAM maps, label-restricted softmax, gradients)."""

from __future__ import annotations

import math

import pytest
import torch

from wsss.cam.gradcam import gradcam_from_gradients, minmax_normalize, tag_gradients, tag_probabilities

# Tiny differentiable head for tag_gradients: p[b] = softmax(sum_l x[b, l] @ W) over 3 rows.
HEAD = torch.tensor([[1.0, -0.5, 0.25], [0.5, 2.0, -1.0]], dtype=torch.float64)  # (D=2, R=3)


def tokens() -> torch.Tensor:
    """Leaf (B=2, L=3, D=2) tensor with fixed values."""
    values = torch.tensor([[[0.1, 0.2], [0.3, -0.4], [0.5, 0.0]], [[-0.2, 0.1], [0.0, 0.3], [0.4, -0.1]]], dtype=torch.float64)
    return values.requires_grad_(True)


def head_probabilities(x: torch.Tensor) -> torch.Tensor:
    """(B, 3) softmax of the token sum through HEAD."""
    return (x.sum(dim=1) @ HEAD).softmax(dim=-1)


def test_minmax_normalize_by_hand() -> None:
    """(x - min) / (1e-7 + (max - min)) per map."""
    maps = torch.tensor([[[1.0, 3.0], [2.0, 5.0]]])
    # min 1, max - min 4
    expected = (maps - 1) / (1e-7 + 4)
    torch.testing.assert_close(minmax_normalize(maps), expected)
    torch.testing.assert_close(minmax_normalize(maps), torch.tensor([[[0.0, 0.5], [0.25, 1.0]]]), atol=1e-6, rtol=0)


def test_minmax_normalize_constant_map_is_zero() -> None:
    """A constant map has range 0 and becomes all zeros (eps avoids 0/0)."""
    result = minmax_normalize(torch.full((2, 3, 3), 4.0))
    torch.testing.assert_close(result, torch.zeros(2, 3, 3))


def test_minmax_normalize_is_per_map() -> None:
    """Each of the leading maps is normalised on its own."""
    maps = torch.tensor([[[0.0, 2.0]], [[10.0, 30.0]]])
    torch.testing.assert_close(minmax_normalize(maps), torch.tensor([[[0.0, 1.0]], [[0.0, 1.0]]]), atol=1e-6, rtol=0)


def test_gradcam_from_gradients_by_hand() -> None:
    """weights = token-mean of gradients; cam = relu(A @ w) reshaped to the grid, min-max normalised."""
    activations = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [3.0, -1.0]]])  # (1, 4, 2)
    gradients = torch.tensor(
        [
            [[[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]]],  # mean [4/4, 2/4] = [1, .5]
            [[[0.0, 2.0], [-2.0, 0.0], [-1.0, 1.0], [-1.0, 1.0]]],  # mean [-4/4, 4/4] = [-1, 1]
        ]
    )  # (K=2, B=1, 4, 2)
    result = gradcam_from_gradients(activations, gradients, (2, 2))
    assert result.shape == (1, 2, 2, 2)
    assert result.dtype == torch.float32
    # Slot 0: A @ [1, .5] = [1, .5, 1.5, 3 - .5 = 2.5]; (x - .5) / 2 = [.25, 0, .5, 1]
    # Slot 1: A @ [-1, 1] = [-1, 1, 0, -3 - 1 = -4]; relu -> [0, 1, 0, 0] -> [0, 1, 0, 0]
    expected = torch.tensor([[[[0.25, 0.0], [0.5, 1.0]], [[0.0, 1.0], [0.0, 0.0]]]])
    torch.testing.assert_close(result, expected, atol=1e-6, rtol=0)


def test_gradcam_clips_negatives_before_normalising() -> None:
    """Without the ReLU slot 1 would be (x + 4) / 5 = [.6, 1, .8, 0]; the ReLU gives [0, 1, 0, 0]."""
    activations = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [3.0, -1.0]]])
    gradients = torch.tensor([[[[-1.0, 1.0]] * 4]])  # (1, 1, 4, 2), mean [-1, 1]
    result = gradcam_from_gradients(activations, gradients, (2, 2))
    unclipped = torch.tensor([[[[0.6, 1.0], [0.8, 0.0]]]])
    assert not torch.allclose(result, unclipped, atol=1e-3)
    torch.testing.assert_close(result, torch.tensor([[[[0.0, 1.0], [0.0, 0.0]]]]), atol=1e-6, rtol=0)


def test_gradcam_grid_is_row_major() -> None:
    """Token i lands at (i // w, i % w) on a non-square 2x3 grid."""
    activations = torch.arange(6, dtype=torch.float32).reshape(1, 6, 1)  # A = [0..5]
    gradients = torch.ones(1, 1, 6, 1)  # weight 1
    result = gradcam_from_gradients(activations, gradients, (2, 3))
    # [0..5] / 5 laid out row-major
    expected = (torch.arange(6, dtype=torch.float32) / 5).reshape(1, 1, 2, 3)
    torch.testing.assert_close(result, expected, atol=1e-6, rtol=0)


def test_tag_probabilities_padding_and_softmax() -> None:
    """Padding rows get 0; valid rows are softmax(logit_scale * cos) computed by hand."""
    image = torch.tensor([[2.0, 0.0]])  # normalised to [1, 0]
    text = torch.tensor([[[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [1.0, 0.0]]])  # last row is padding
    valid = torch.tensor([[True, True, True, False]])
    result = tag_probabilities(image, text, valid, logit_scale=1.0)
    # cosines [1, .6, 0]; softmax = exp(c) / (e + e^.6 + 1)
    total = math.e + math.exp(0.6) + 1.0
    expected = torch.tensor([[math.e / total, math.exp(0.6) / total, 1.0 / total, 0.0]])
    torch.testing.assert_close(result, expected)


def test_tag_probabilities_rows_per_image() -> None:
    """Each image uses its own rows and its own padding; valid probabilities sum to 1."""
    image = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    text = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]])
    valid = torch.tensor([[True, True, True], [True, True, False]])
    result = tag_probabilities(image, text, valid, logit_scale=2.0)
    # image 0: logits [2, 0, 0] -> [e^2, 1, 1] / (e^2 + 2)
    # image 1: logits [2, 0, pad] -> [e^2, 1, 0] / (e^2 + 1)
    e2 = math.exp(2.0)
    expected = torch.tensor([[e2 / (e2 + 2), 1 / (e2 + 2), 1 / (e2 + 2)], [e2 / (e2 + 1), 1 / (e2 + 1), 0.0]])
    torch.testing.assert_close(result, expected)
    torch.testing.assert_close(result.sum(dim=-1), torch.ones(2))


def test_tag_gradients_batched_equals_per_slot() -> None:
    """One batched backward equals one backward per tag slot."""
    x_batched = tokens()
    batched = tag_gradients(head_probabilities(x_batched), x_batched, [2, 1], batched=True)
    x_loop = tokens()
    looped = tag_gradients(head_probabilities(x_loop), x_loop, [2, 1], batched=False)
    assert batched.shape == looped.shape == (2, 2, 3, 2)
    torch.testing.assert_close(batched, looped, atol=1e-6, rtol=0)


@pytest.mark.parametrize("batched", [True, False])
def test_tag_gradients_match_single_probability_gradient(batched: bool) -> None:
    """Slot k of image b is d p[b, k] / d x[b]; slots k >= K_b are zero."""
    x = tokens()
    grads = tag_gradients(head_probabilities(x), x, [2, 1], batched=batched)
    for b, count in enumerate([2, 1]):
        for k in range(2):
            if k >= count:
                assert torch.count_nonzero(grads[k, b]) == 0
                continue
            x_single = tokens()
            (single,) = torch.autograd.grad(head_probabilities(x_single)[b, k], x_single)
            torch.testing.assert_close(grads[k, b], single[b], atol=1e-12, rtol=0)


def test_tag_gradients_closed_form() -> None:
    """Softmax Jacobian by hand: d p_k / d x[b, l] = W @ (p_k (e_k - p)), the same for every token l."""
    x = tokens()
    probabilities = head_probabilities(x)
    grads = tag_gradients(probabilities, x, [2, 1])
    p = probabilities.detach()
    for b, count in enumerate([2, 1]):
        for k in range(count):
            one_hot = torch.zeros(3, dtype=torch.float64)
            one_hot[k] = 1.0
            per_token = HEAD @ (p[b, k] * (one_hot - p[b]))  # (D,)
            torch.testing.assert_close(grads[k, b], per_token.expand(3, 2), atol=1e-12, rtol=0)


def test_tag_gradients_without_tags() -> None:
    """No tags at all gives an empty (0, B, L, D) result."""
    x = tokens()
    grads = tag_gradients(head_probabilities(x), x, [0, 0])
    assert grads.shape == (0, 2, 3, 2)
    assert tag_gradients(head_probabilities(x), x, []).shape == (0, 2, 3, 2)
