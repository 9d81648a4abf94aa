"""Tests of wsss.cam.caa (affinity normalisation, propagation, refinement, resizing) by hand."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from wsss.cam.caa import affinity_transition, propagate, refine_with_affinity, resize_maps, sinkhorn_normalize

ATTENTION = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
# One round on [[1,2],[3,4]]:
#   column sums 4, 6      -> [[1/4, 2/6], [3/4, 4/6]]
#   row sums 7/12, 17/12  -> [[3/7, 4/7], [9/17, 8/17]]
ONE_ROUND = torch.tensor([[3 / 7, 4 / 7], [9 / 17, 8 / 17]], dtype=torch.float64)

# Symmetric, doubly stochastic "chain" transition on a 2x2 token grid (row-major tokens 0..3).
CHAIN = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.5, 0.0, 0.5, 0.0], [0.0, 0.5, 0.0, 0.5], [0.0, 0.0, 0.5, 0.5]])
# CHAIN @ CHAIN, row by row (row i = sum_j CHAIN[i, j] * CHAIN[j]):
#   row0 = .5*r0 + .5*r1 = [.5, .25, .25, 0]
#   row1 = .5*r0 + .5*r2 = [.25, .5, 0, .25]
#   row2 = .5*r1 + .5*r3 = [.25, 0, .5, .25]
#   row3 = .5*r2 + .5*r3 = [0, .25, .25, .5]
CHAIN_SQUARED = torch.tensor([[0.5, 0.25, 0.25, 0.0], [0.25, 0.5, 0.0, 0.25], [0.25, 0.0, 0.5, 0.25], [0.0, 0.25, 0.25, 0.5]])


def reference_refine(transition: torch.Tensor, cam: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The reference order: square T, zero the masked-out COLUMNS, multiply by the flat map, min-max."""
    squared = transition @ transition
    masked_transition = squared * mask.reshape(1, -1).float()
    refined = masked_transition @ cam.reshape(-1)
    shifted = refined - refined.min()
    return (shifted / (1e-7 + shifted.max())).reshape(cam.shape)


def test_sinkhorn_one_round_by_hand() -> None:
    """One round is a column normalisation followed by a row normalisation."""
    torch.testing.assert_close(sinkhorn_normalize(ATTENTION, rounds=1), ONE_ROUND)


def test_sinkhorn_three_rounds_is_nearly_doubly_stochastic() -> None:
    """After 3 rounds rows sum to exactly 1 (last step) and columns to about 1."""
    result = sinkhorn_normalize(ATTENTION, rounds=3)
    torch.testing.assert_close(result.sum(dim=-1), torch.ones(2, dtype=torch.float64))
    # After one round the column sums are 114/119 and 124/119 (about 4% off); more rounds shrink it.
    torch.testing.assert_close(result.sum(dim=-2), torch.ones(2, dtype=torch.float64), atol=5e-3, rtol=0)
    assert not torch.allclose(result, ONE_ROUND)


def test_sinkhorn_works_on_batched_input() -> None:
    """Leading dims are batch dims: each matrix is normalised independently."""
    batch = torch.stack([ATTENTION, 2 * ATTENTION])
    result = sinkhorn_normalize(batch, rounds=1)
    # Scaling a matrix by 2 does not change its normalisation.
    torch.testing.assert_close(result, torch.stack([ONE_ROUND, ONE_ROUND]))


@pytest.mark.parametrize("rounds", [0, -1])
def test_sinkhorn_rejects_no_rounds(rounds: int) -> None:
    """Fewer than one round is a ValueError."""
    with pytest.raises(ValueError, match="rounds"):
        sinkhorn_normalize(ATTENTION, rounds=rounds)


def test_affinity_transition_is_symmetrised_sinkhorn() -> None:
    """The transition is (S + S^T) / 2 of the Sinkhorn result, hence symmetric, in float32."""
    result = affinity_transition(ATTENTION, sinkhorn_rounds=1)
    assert result.dtype == torch.float32
    # Off-diagonal: (4/7 + 9/17) / 2 = (68 + 63) / 119 / 2 = 131/238; diagonal 3/7 and 8/17.
    expected = torch.tensor([[3 / 7, 131 / 238], [131 / 238, 8 / 17]], dtype=torch.float32)
    torch.testing.assert_close(result, expected)
    torch.testing.assert_close(result, result.T)


def test_affinity_transition_default_rounds() -> None:
    """With the default 3 rounds it equals (S + S^T) / 2 of the 3-round Sinkhorn result."""
    sinkhorn = sinkhorn_normalize(ATTENTION.float(), rounds=3)
    torch.testing.assert_close(affinity_transition(ATTENTION), (sinkhorn + sinkhorn.T) / 2)


def test_propagate_power_two_is_matrix_square() -> None:
    """power=2 equals (T @ T) @ v, as the reference computes it."""
    transition = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    maps = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    # T @ T = [[1+6, 2+8], [3+12, 6+16]] = [[7, 10], [15, 22]]
    # [[7, 10], [15, 22]] @ [[1, 0], [1, 1]] = [[17, 10], [37, 22]]
    expected = torch.tensor([[17.0, 10.0], [37.0, 22.0]])
    torch.testing.assert_close(propagate(transition, maps, power=2), expected)


def test_propagate_power_one_is_one_product() -> None:
    """power=1 equals T @ v (not T^T @ v)."""
    transition = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    maps = torch.tensor([[1.0], [0.0]])
    # T @ [1, 0]^T = first column of T = [1, 3]
    torch.testing.assert_close(propagate(transition, maps, power=1), torch.tensor([[1.0], [3.0]]))


@pytest.mark.parametrize("power", [0, -2])
def test_propagate_rejects_power_below_one(power: int) -> None:
    """A power below 1 is a ValueError."""
    with pytest.raises(ValueError, match="power"):
        propagate(torch.eye(2), torch.ones(2, 1), power=power)


def test_refine_with_affinity_by_hand() -> None:
    """Masked map propagated through T^2 and min-max normalised, worked out by hand."""
    cams = torch.tensor(
        [
            [[1.0, 0.5], [0.2, 0.0]],  # flat [1, .5, .2, 0]
            [[0.0, 0.0], [0.0, 1.0]],  # flat [0, 0, 0, 1]
        ]
    )
    masks = torch.tensor(
        [
            [[False, True], [True, True]],  # token 0 is outside the box
            [[True, True], [True, True]],
        ]
    )
    result = refine_with_affinity(cams, CHAIN, masks, power=2)
    # Map 0: masked [0, .5, .2, 0]; T^2 @ it:
    #   row0 .25*.5 + .25*.2 = .175; row1 .5*.5 + 0*.2 = .25
    #   row2 0*.5 + .5*.2 = .1;      row3 .25*.5 + .25*.2 = .175
    #   min-max (min .1, range .15): [.075/.15, 1, 0, .075/.15] = [.5, 1, 0, .5]
    # Map 1: T^2 @ [0, 0, 0, 1] = last column [0, .25, .25, .5] -> [0, .5, .5, 1]
    expected = torch.tensor([[[0.5, 1.0], [0.0, 0.5]], [[0.0, 0.5], [0.5, 1.0]]])
    assert result.dtype == torch.float32
    assert result.shape == (2, 2, 2)
    torch.testing.assert_close(result, expected, atol=1e-5, rtol=0)
    for k in range(2):
        torch.testing.assert_close(result[k], reference_refine(CHAIN, cams[k], masks[k]), atol=1e-6, rtol=0)


def test_refine_masks_columns_of_non_symmetric_transition() -> None:
    """With a non-symmetric T the mask applies to source tokens (columns) and T is not transposed."""
    # Shift: (T v)[i] = v[i+1], 0 past the end; so (T^2 v)[i] = v[i+2] -> [v2, v3, 0, 0].
    shift = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    cams = torch.tensor([[[1.0, 0.5], [0.2, 0.7]]])
    masks = torch.tensor([[[False, True], [True, False]]])
    # masked flat [0, .5, .2, 0] -> T^2 gives [.2, 0, 0, 0] -> min-max [1, 0, 0, 0]
    # (the transposed shift would give [0, 0, 0, .5] -> [0, 0, 0, 1])
    result = refine_with_affinity(cams, shift, masks, power=2)
    torch.testing.assert_close(result, torch.tensor([[[1.0, 0.0], [0.0, 0.0]]]), atol=1e-6, rtol=0)
    torch.testing.assert_close(result[0], reference_refine(shift, cams[0], masks[0]), atol=1e-6, rtol=0)


def test_refine_with_no_maps_is_empty() -> None:
    """K = 0 gives an empty (0, h, w) result."""
    result = refine_with_affinity(torch.zeros(0, 2, 2), CHAIN, torch.zeros(0, 2, 2, dtype=torch.bool))
    assert result.shape == (0, 2, 2)


@pytest.mark.parametrize(("source", "target"), [((3, 4), (37, 50)), ((24, 32), (375, 500))])
def test_resize_maps_matches_cv2_linear(source: tuple[int, int], target: tuple[int, int]) -> None:
    """Upsampling equals cv2.resize(INTER_LINEAR) on float32 maps (what the reference uses)."""
    generator = np.random.default_rng(7)
    maps = generator.random((2, *source), dtype=np.float32)
    result = resize_maps(torch.from_numpy(maps), target)
    assert result.shape == (2, *target)
    height, width = target
    for k in range(2):
        expected = cv2.resize(maps[k], (width, height), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(result[k].numpy(), expected, atol=1e-5, rtol=0)


def test_resize_maps_empty() -> None:
    """No maps resize to a (0, H, W) tensor."""
    assert resize_maps(torch.zeros(0, 3, 4), (7, 9)).shape == (0, 7, 9)


def test_refine_images_equals_refine_image_one_by_one() -> None:
    """The batched CAA (one Sinkhorn, one host round trip for the boxes) gives each image's own result."""
    from wsss.cam.caa import refine_image, refine_images

    generator = torch.Generator().manual_seed(3)
    grid, counts, sizes = (6, 8), [2, 0, 3, 1], [(90, 120), (96, 128), (90, 121), (60, 80)]
    attention = torch.rand(len(counts), 48, 48, generator=generator).pow(4).softmax(dim=-1)
    gradcams = torch.rand(len(counts), 3, *grid, generator=generator).pow(3)
    gradcams[1:, :] *= torch.arange(1, 4).view(3, 1, 1, 1) / 3  # maps of differing peaks
    batched = refine_images(gradcams, attention, counts, sizes)
    for b, (count, size) in enumerate(zip(counts, sizes, strict=True)):
        alone = refine_image(gradcams[b, :count].clone(), attention[b].clone(), size)
        assert batched[b].shape == (count, *size)
        torch.testing.assert_close(batched[b], alone, atol=0, rtol=0)
