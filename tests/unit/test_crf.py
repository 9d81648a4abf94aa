"""Tests of wsss.pseudo.crf: the reference's CRF input image and the dense CRF itself."""

from __future__ import annotations

import platform
import sys
import warnings

import numpy as np
import pytest

from wsss.pseudo import CrfParams, crf_posterior_for_cams, dense_crf, reference_crf_image


@pytest.fixture
def pydensecrf() -> None:
    pytest.importorskip("pydensecrf")


def test_reference_image_quirk_on_hand_picked_pixels() -> None:
    # BGR - (104.008, 116.669, 122.675), truncated toward zero, then wrapped modulo 256:
    #   RGB (0, 0, 0)       -> BGR (0, 0, 0)       -> (-104.008, -116.669, -122.675)
    #                       -> (-104, -116, -122)  -> (152, 140, 134)
    #   RGB (255, 255, 255) -> (150.992, 138.331, 132.325) -> (150, 138, 132)
    #   RGB (10, 200, 104)  -> BGR (104, 200, 10)  -> (-0.008, 83.331, -112.675)
    #                       -> (0, 83, -112)       -> (0, 83, 144)
    #   RGB (123, 117, 105) -> BGR (105, 117, 123) -> (0.992, 0.331, 0.325) -> (0, 0, 0)
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [10, 200, 104], [123, 117, 105]]], np.uint8)
    expected = np.array([[[152, 140, 134], [150, 138, 132], [0, 83, 144], [0, 0, 0]]], np.uint8)
    result = reference_crf_image(rgb)
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, expected)


@pytest.mark.skipif(
    platform.machine().lower() not in {"x86_64", "amd64"}, reason="numpy's out-of-range float -> uint8 cast is only known to wrap like this on x86"
)
def test_reference_image_quirk_matches_numpy_cast_the_reference_ran() -> None:
    # The reference did `image -= mean_bgr; image.astype(np.uint8)` on a float32 BGR image.
    # On x86 numpy converts through a C integer cast (truncate toward zero, keep the low
    # 8 bits); the implementation writes that arithmetic out, so they must agree everywhere.
    values = np.arange(256, dtype=np.uint8)
    # Every value 0..255 appears once in each channel.
    rgb = np.stack([values, values[::-1], np.roll(values, 7)], axis=-1)[None]
    bgr = rgb[..., ::-1].astype(np.float32)
    bgr -= np.array([104.008, 116.669, 122.675])
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        naive = bgr.astype(np.uint8)
    np.testing.assert_array_equal(reference_crf_image(rgb), naive)


def test_reference_image_quirk_equals_the_written_out_arithmetic_for_every_value() -> None:
    """trunc + mod 256 in int64 (the previous implementation, platform-independent) for every value of every channel."""
    values = np.arange(256, dtype=np.uint8)
    rgb = np.stack([values, np.roll(values, 85), np.roll(values, 170)], axis=-1)[None]
    bgr = rgb[..., ::-1].astype(np.float32)
    bgr -= np.asarray([104.008, 116.669, 122.675])
    written_out = np.mod(np.trunc(bgr).astype(np.int64), 256).astype(np.uint8)
    np.testing.assert_array_equal(reference_crf_image(rgb), written_out)


def test_reference_image_rejects_non_uint8() -> None:
    with pytest.raises(ValueError, match="uint8"):
        reference_crf_image(np.zeros((2, 2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        reference_crf_image(np.zeros((2, 2), dtype=np.uint8))


def _two_region_problem() -> tuple[np.ndarray, np.ndarray]:
    """8x8 image, black left half / white right half, with a matching confident unary."""
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    image[:, 4:] = 255
    probs = np.full((2, 8, 8), 0.1, dtype=np.float32)
    probs[0, :, :4] = 0.9
    probs[1, :, 4:] = 0.9
    return image, probs


def test_dense_crf_posterior_is_normalised_and_sharpens(pydensecrf: None) -> None:
    image, probs = _two_region_problem()
    # One pixel inside the black region is undecided; its neighbours should decide it.
    probs[:, 2, 1] = 0.5
    posterior = dense_crf(image, probs, CrfParams())
    assert posterior.shape == (2, 8, 8)
    assert posterior.dtype == np.float32
    np.testing.assert_allclose(posterior.sum(axis=0), 1.0, atol=1e-5)
    expected_labels = np.zeros((8, 8), dtype=np.int64)
    expected_labels[:, 4:] = 1
    np.testing.assert_array_equal(posterior.argmax(axis=0), expected_labels)
    # Every pixel ends up more confident than its 0.9 (or 0.5) unary.
    assert posterior.max(axis=0).min() > 0.9


def test_dense_crf_accepts_float16_probs(pydensecrf: None) -> None:
    image, probs = _two_region_problem()
    posterior = dense_crf(image, probs.astype(np.float16), CrfParams(iterations=2))
    assert posterior.dtype == np.float32
    np.testing.assert_allclose(posterior.sum(axis=0), 1.0, atol=1e-5)


def test_dense_crf_rejects_size_mismatch() -> None:
    image, probs = _two_region_problem()
    with pytest.raises(ValueError, match="does not match"):
        dense_crf(image[:4], probs, CrfParams())


def test_crf_posterior_for_cams_shapes_and_quirk_switch(pydensecrf: None) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    cams = rng.random((2, 8, 8)).astype(np.float16)
    with_quirk = crf_posterior_for_cams(rgb, cams, params=CrfParams())
    plain = crf_posterior_for_cams(rgb, cams, params=CrfParams(), reference_image_quirk=False)
    assert with_quirk.shape == plain.shape == (3, 8, 8)
    np.testing.assert_allclose(with_quirk.sum(axis=0), 1.0, atol=1e-5)
    # The same inputs run through dense_crf by hand give the same posterior.
    probs = np.concatenate((1 - cams.max(axis=0, keepdims=True), cams), axis=0)
    np.testing.assert_array_equal(with_quirk, dense_crf(reference_crf_image(rgb), probs))
    np.testing.assert_array_equal(plain, dense_crf(rgb, probs))


def test_crf_posterior_for_cams_rejects_size_mismatch() -> None:
    with pytest.raises(ValueError, match="does not match"):
        crf_posterior_for_cams(np.zeros((4, 4, 3), np.uint8), np.zeros((1, 8, 8), np.float32))


def test_missing_pydensecrf_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import pydensecrf...` raise ImportError.
    monkeypatch.setitem(sys.modules, "pydensecrf", None)
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    monkeypatch.setitem(sys.modules, "pydensecrf.utils", None)
    image, probs = _two_region_problem()
    with pytest.raises(ImportError, match=r"pip install pydensecrf2==1\.1"):
        dense_crf(image, probs, CrfParams())


def test_read_only_image_is_accepted() -> None:
    """Images decoded with np.asarray(PIL image) are read-only; the CRF must not need to write them."""
    pytest.importorskip("pydensecrf")
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    image.setflags(write=False)
    probs = np.full((2, 8, 8), 0.5, dtype=np.float32)
    posterior = dense_crf(image, probs, CrfParams(iterations=1))
    assert posterior.shape == (2, 8, 8)
