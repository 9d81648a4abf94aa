"""CUDA paths the GPU check (`benchmarks/device_check.py`) relies on; skipped without a CUDA device.

The reference oracle must run where the model is, so that its one-image loop can be timed on the
same GPU, and the extractor on CUDA must compute what it computes on the CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch

from wsss.cam import CamSettings, ClipEsCamExtractor
from wsss.clip import ClipSource, LoadedClip, load_clip
from wsss.reference_clip_es import reference_cams, reference_text
from wsss.text import REFERENCE_TEMPLATE, voc_vocabulary

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture(autouse=True)
def full_fp32():
    """cuDNN convolutions default to TF32 on recent GPUs; compare true fp32 with the CPU."""
    previous = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = previous


@pytest.fixture(scope="module")
def clips(vit_b16_openai_file: Path) -> dict[str, LoadedClip]:
    return {device: load_clip(ClipSource(checkpoint=vit_b16_openai_file), device) for device in ("cpu", "cuda")}


def _reference(clip: LoadedClip, image, tags: list[int]) -> dict[str, np.ndarray]:
    vocabulary = voc_vocabulary()
    tokenizer = open_clip.get_tokenizer("ViT-B-16")
    tag_text = reference_text(clip.model, tokenizer, [REFERENCE_TEMPLATE.format(vocabulary.prompt_names[t]) for t in tags])
    background = reference_text(clip.model, tokenizer, [REFERENCE_TEMPLATE.format(w) for w in vocabulary.background_words])
    return reference_cams(clip.model, image, tag_text, background)


def test_reference_procedure_runs_on_cuda_and_matches_cpu(photos, clips) -> None:
    image, tags = photos["chelsea"]
    on_cpu, on_cuda = _reference(clips["cpu"], image, tags), _reference(clips["cuda"], image, tags)
    assert np.abs(on_cuda["gradcam"] - on_cpu["gradcam"]).max() < 1e-3
    assert np.abs(on_cuda["refined"] - on_cpu["refined"]).max() < 1e-2


def test_extractor_on_cuda_matches_the_reference_on_cuda(photos, clips) -> None:
    image, tags = photos["voc"]
    expected = _reference(clips["cuda"], image, tags)
    ours = ClipEsCamExtractor(clips["cuda"], voc_vocabulary(), CamSettings(batch_size=2)).extract(image, tags)
    assert np.abs(ours.gradcam - expected["gradcam"]).max() < 1e-3
    assert np.abs(ours.refined - expected["refined"]).max() < 1e-2


def test_fp16_extractor_embeds_prompts_on_cuda(vit_b16_openai_file: Path) -> None:
    """The first GPU check failed here: fp16 text tower, fp32 LayerNorm weights, CUDA layer_norm."""
    clip = load_clip(ClipSource(checkpoint=vit_b16_openai_file), "cuda", "fp16")
    extractor = ClipEsCamExtractor(clip, voc_vocabulary(), CamSettings())
    assert torch.isfinite(extractor._class_text).all()
