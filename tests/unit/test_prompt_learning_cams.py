"""Learned background prompts in the CAM softmax, and the prompt-guided re-scoring option."""

from __future__ import annotations

import math

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from tests.unit.test_prompt_learning import tiny_clip
from wsss.cam import ClipEsCamExtractor
from wsss.cam.extractor import CamSettings
from wsss.cam.gradcam import minmax_normalize, rescore_with_background_prompts
from wsss.clip.loading import LoadedClip
from wsss.errors import ConfigError
from wsss.text.vocabulary import ClassVocabulary


@pytest.fixture(scope="module")
def clip() -> LoadedClip:
    model = tiny_clip(seed=3).eval().requires_grad_(False)
    return LoadedClip(model, open_clip.get_tokenizer("ViT-B-16"), "tiny", "random-init(seed=3)")


@pytest.fixture(scope="module")
def vocabulary() -> ClassVocabulary:
    return ClassVocabulary.build(["cat", "boat"], {}, ["water", "grass", "sky"])


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))


SETTINGS = CamSettings(max_side=None, affinity_layers=2)


def extract(clip, vocabulary, photo, **options):
    extractor = ClipEsCamExtractor(clip, vocabulary, SETTINGS, **options)
    return extractor, extractor.extract(photo, [1], refine=False)


def test_adding_a_copy_of_the_tag_row_halves_its_odds(clip, vocabulary, photo) -> None:
    reference, fixed = extract(clip, vocabulary, photo)
    _, default_again = extract(clip, vocabulary, photo, learned_background=None)
    assert np.array_equal(fixed.gradcam, default_again.gradcam)
    # learned row of the tag = the tag's own prompt: p' = e^s / (Z + e^s) = p / (1 + p)
    learned = reference._class_text.clone()
    _, added = extract(clip, vocabulary, photo, learned_background=learned, background_mode="add")
    p = float(fixed.tag_probabilities[0])
    assert float(added.tag_probabilities[0]) == pytest.approx(p / (1 + p), rel=1e-5)
    _, replaced = extract(clip, vocabulary, photo, learned_background=learned, background_mode="replace")
    assert float(replaced.tag_probabilities[0]) == pytest.approx(0.5, rel=1e-5)
    assert not np.allclose(replaced.gradcam, fixed.gradcam)


def test_rescoring_with_zero_weight_keeps_the_maps(clip, vocabulary, photo) -> None:
    learned = torch.randn(2, 32, generator=torch.Generator().manual_seed(0))
    _, plain = extract(clip, vocabulary, photo, learned_background=learned)
    _, zero = extract(clip, vocabulary, photo, learned_background=learned, rescore_weight=0.0)
    np.testing.assert_allclose(zero.gradcam, plain.gradcam, atol=1e-6)
    _, strong = extract(clip, vocabulary, photo, learned_background=learned, rescore_weight=5.0)
    assert strong.gradcam.shape == plain.gradcam.shape and not np.allclose(strong.gradcam, plain.gradcam)


def test_bad_learned_prompts_are_refused(clip, vocabulary) -> None:
    with pytest.raises(ConfigError, match="shape"):
        ClipEsCamExtractor(clip, vocabulary, SETTINGS, learned_background=torch.zeros(3, 32))
    with pytest.raises(ConfigError, match="needs learned"):
        ClipEsCamExtractor(clip, vocabulary, SETTINGS, rescore_weight=0.05)
    with pytest.raises(ConfigError, match="background_mode"):
        ClipEsCamExtractor(clip, vocabulary, SETTINGS, learned_background=torch.zeros(2, 32), background_mode="swap")


def test_rescoring_by_hand() -> None:
    cams = torch.tensor([[[[1.0, 0.5]]]])  # (B=1, K=1, h=1, w=2)
    patches = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # (1, 2, E=2)
    prompts = torch.tensor([[[0.6, 0.8]]])  # cos = 0.6, 0.8
    out = rescore_with_background_prompts(cams, patches, prompts, weight=2.0)
    scored = torch.tensor([[[[1.0 * 0.4**2, 0.5 * 0.2**2]]]])
    torch.testing.assert_close(out, minmax_normalize(scored))
    assert math.isclose(float(out.max()), 1.0, rel_tol=1e-6)
