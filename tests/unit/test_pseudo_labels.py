"""Tests of wsss.pseudo.labels on hand-built 2x2 CAMs with hand-computed answers."""

from __future__ import annotations

import numpy as np
import pytest

from wsss.pseudo import PseudoLabel, background_score, labels_from_scores, make_pseudo_label, scores_with_background
from wsss.pseudo.labels import _in_unit_interval

# Two tags (VOC class ids 4 = bottle and 14 = person) on a 2x2 image.
CAM_BOTTLE = [[0.2, 0.9], [0.5, 0.0]]
CAM_PERSON = [[0.6, 0.1], [0.5, 0.3]]
CLASS_IDS = np.array([4, 14])
# max over tags             = [[0.6, 0.9], [0.5, 0.3]]
# background, alpha 1       = [[0.4, 0.1], [0.5, 0.7]]
# background, alpha 2       = [[0.16, 0.01], [0.25, 0.49]]


@pytest.fixture
def cams() -> np.ndarray:
    return np.array([CAM_BOTTLE, CAM_PERSON], dtype=np.float64)


def test_background_score_alpha_1(cams: np.ndarray) -> None:
    background = background_score(cams, alpha=1.0)
    assert background.shape == (1, 2, 2)
    np.testing.assert_allclose(background[0], [[0.4, 0.1], [0.5, 0.7]])


def test_background_score_alpha_2(cams: np.ndarray) -> None:
    background = background_score(cams, alpha=2.0)
    np.testing.assert_allclose(background[0], [[0.16, 0.01], [0.25, 0.49]])


def test_scores_with_background_prepends_channel_0(cams: np.ndarray) -> None:
    scores = scores_with_background(cams, alpha=1.0)
    assert scores.shape == (3, 2, 2)
    np.testing.assert_allclose(scores[0], [[0.4, 0.1], [0.5, 0.7]])
    np.testing.assert_array_equal(scores[1:], cams)


def test_labels_from_scores_maps_channels_to_dataset_labels(cams: np.ndarray) -> None:
    # Per pixel (bg, bottle, person):
    #   (0,0): (0.4, 0.2, 0.6) -> person -> 14 + 1 = 15
    #   (0,1): (0.1, 0.9, 0.1) -> bottle -> 4 + 1 = 5
    #   (1,0): (0.5, 0.5, 0.5) -> three-way tie, first channel wins -> background 0
    #   (1,1): (0.7, 0.0, 0.3) -> background 0
    labels = labels_from_scores(scores_with_background(cams), CLASS_IDS)
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, [[15, 5], [0, 0]])


def test_confidence_filter_ignores_exactly_the_low_confidence_pixels(cams: np.ndarray) -> None:
    # Normalised confidence = winning score / sum of scores:
    #   (0,0): 0.6 / 1.2 = 0.5     (1,0): 0.5 / 1.5 = 0.333
    #   (0,1): 0.9 / 1.1 = 0.818   (1,1): 0.7 / 1.0 = 0.7
    result = make_pseudo_label(cams, CLASS_IDS, confidence_threshold=0.6)
    assert isinstance(result, PseudoLabel)
    assert result.confidence.dtype == np.float32
    np.testing.assert_allclose(result.confidence, [[0.5, 0.9 / 1.1], [1 / 3, 0.7]], rtol=1e-6)
    np.testing.assert_array_equal(result.raw_labels, [[15, 5], [0, 0]])
    np.testing.assert_array_equal(result.labels, [[255, 5], [255, 0]])


def test_threshold_none_keeps_every_pixel(cams: np.ndarray) -> None:
    result = make_pseudo_label(cams, CLASS_IDS, confidence_threshold=None)
    np.testing.assert_array_equal(result.labels, result.raw_labels)


def test_custom_ignore_index(cams: np.ndarray) -> None:
    result = make_pseudo_label(cams, CLASS_IDS, confidence_threshold=0.6, ignore_index=200)
    np.testing.assert_array_equal(result.labels, [[200, 5], [200, 0]])


def test_posterior_path_uses_argmax_and_max_of_posterior(cams: np.ndarray) -> None:
    # Channels (bg, bottle, person); the CAMs no longer matter once a posterior is given.
    posterior = np.zeros((3, 2, 2), dtype=np.float32)
    posterior[:, 0, 0] = [0.1, 0.2, 0.7]  # person, conf 0.7
    posterior[:, 0, 1] = [0.5, 0.5, 0.0]  # tie -> background, conf 0.5
    posterior[:, 1, 0] = [0.02, 0.96, 0.02]  # bottle, conf 0.96
    posterior[:, 1, 1] = [0.96, 0.02, 0.02]  # background, conf 0.96
    result = make_pseudo_label(cams, CLASS_IDS, posterior=posterior)
    np.testing.assert_array_equal(result.raw_labels, [[15, 0], [5, 0]])
    np.testing.assert_allclose(result.confidence, [[0.7, 0.5], [0.96, 0.96]])
    # Default threshold 0.95, as in the reference.
    np.testing.assert_array_equal(result.labels, [[255, 255], [5, 0]])
    # "Strictly below": confidence exactly 0.5 is kept at threshold 0.5.
    at_half = make_pseudo_label(cams, CLASS_IDS, posterior=posterior, confidence_threshold=0.5)
    np.testing.assert_array_equal(at_half.labels, [[15, 0], [5, 0]])


def test_float16_cams_keep_float16_arithmetic() -> None:
    rng = np.random.default_rng(0)
    cams16 = rng.random((3, 16, 16)).astype(np.float16)
    class_ids = np.array([0, 7, 19])
    # The reference computation, done directly on float16 arrays.
    expected_background = np.power(1 - np.max(cams16, axis=0, keepdims=True), 2.0)
    expected_scores = np.concatenate((expected_background, cams16), axis=0)
    assert expected_scores.dtype == np.float16

    scores = scores_with_background(cams16, alpha=2.0)
    assert scores.dtype == np.float16
    assert scores.tobytes() == expected_scores.tobytes()

    keys = np.array([0, 1, 8, 20], dtype=np.uint8)
    result = make_pseudo_label(cams16, class_ids, alpha=2.0, confidence_threshold=None)
    np.testing.assert_array_equal(result.raw_labels, keys[np.argmax(expected_scores, axis=0)])


def test_no_tags_gives_all_background_with_full_confidence() -> None:
    cams = np.zeros((0, 3, 4), dtype=np.float32)
    np.testing.assert_array_equal(background_score(cams), np.ones((1, 3, 4)))
    result = make_pseudo_label(cams, np.zeros(0, dtype=np.int64))
    np.testing.assert_array_equal(result.labels, np.zeros((3, 4)))
    np.testing.assert_array_equal(result.raw_labels, np.zeros((3, 4)))
    np.testing.assert_array_equal(result.confidence, np.ones((3, 4)))
    assert result.labels.dtype == np.uint8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cams": np.zeros((2, 2))}, "3-D"),
        ({"class_ids": np.array([4])}, "1 entries but there are 2"),
        ({"class_ids": np.array([-1, 3])}, r"\[0, 254\]"),
        ({"class_ids": np.array([4, 255])}, r"\[0, 254\]"),
        ({"class_ids": np.array([[4, 14]])}, "1-D"),
        ({"alpha": 0.0}, "alpha"),
        ({"confidence_threshold": 1.5}, "confidence_threshold"),
        ({"cams": np.full((2, 2, 2), 1.5)}, r"\[0, 1\]"),
        ({"posterior": np.ones((2, 2, 2))}, "posterior"),
        ({"ignore_index": 0}, "collides"),
    ],
)
def test_bad_inputs_raise_value_error(cams: np.ndarray, kwargs: dict, message: str) -> None:
    arguments = {"cams": cams, "class_ids": CLASS_IDS, **kwargs}
    with pytest.raises(ValueError, match=message):
        make_pseudo_label(arguments.pop("cams"), arguments.pop("class_ids"), **arguments)


def test_labels_from_scores_rejects_channel_mismatch(cams: np.ndarray) -> None:
    with pytest.raises(ValueError, match="must match"):
        labels_from_scores(scores_with_background(cams), np.array([4]))


def every_float16() -> np.ndarray:
    return np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16)


def test_the_float16_range_check_on_bits_agrees_with_comparisons_for_every_float16() -> None:
    """All 65536 values (NaN, inf, -0.0, subnormals): accepted exactly when 0 <= x <= 1."""
    values = every_float16()
    with np.errstate(invalid="ignore"):
        expected = (values >= 0) & (values <= 1)
    for index in range(0, len(values), 512):
        chunk = values[index : index + 512]
        cams = chunk.reshape(1, 1, -1)
        accepted = _in_unit_interval(cams)
        assert accepted == bool(expected[index : index + 512].all()), index
    for value, wanted in zip(values, expected, strict=True):
        if wanted != _in_unit_interval(np.full((1, 1, 1), value)):
            raise AssertionError(f"{value!r} ({value.view(np.uint16):#06x})")


def test_the_background_score_with_alpha_1_equals_numpy_float16_bit_for_bit() -> None:
    """The CRF path's `(1 - max)^1` computed in float32 and rounded once, against numpy's float16
    arithmetic the reference ran: every float16 in [0, 1] as the maximum, and random stacks."""
    values = every_float16()
    unit = values[(values >= 0) & (values <= 1)]
    rng = np.random.default_rng(0)
    stacks = [
        unit.reshape(1, 1, -1),
        np.stack([unit, rng.permutation(unit)])[:, None, :],
        rng.random((3, 64, 64)).astype(np.float16),
        np.zeros((2, 4, 4), np.float16),
    ]
    for cams in stacks:
        reference = np.power(1 - np.max(cams, axis=0, keepdims=True), 1.0)
        assert reference.dtype == np.float16
        assert background_score(cams, 1.0).tobytes() == reference.tobytes()
