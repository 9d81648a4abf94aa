"""Training the tiny DeepLabV2 config on a synthetic dataset: loss, resume, evaluation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("mmseg")

import wsss_mmseg  # first: its mmcv.ops shim goes in before mmengine and mmseg are imported

# isort: split

from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, MODELS
from PIL import Image

from wsss_mmseg.training import build_train_config, evaluate_segmenter, train_segmenter

TINY_CONFIG = wsss_mmseg.CONFIG_DIR / "deeplabv2_tiny_cpu.py"
CLASSES = ("background", "square", "disc")


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 images with a red square or a blue disc, pseudo masks with 255 borders, confidences."""
    root = tmp_path_factory.mktemp("pseudo")
    for folder in ("images", "masks", "confidence"):
        (root / folder).mkdir()
    rng = np.random.default_rng(0)
    ids = []
    for index in range(4):
        height, width = 72 + 8 * index, 88
        rows, cols = np.mgrid[0:height, 0:width]
        image = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
        mask = np.zeros((height, width), np.uint8)
        if index % 2 == 0:
            inside = (abs(rows - height / 2) < height / 4) & (abs(cols - width / 2) < width / 4)
            mask[inside], colour = 1, (220, 40, 40)
        else:
            inside = (rows - height / 2) ** 2 + (cols - width / 2) ** 2 < (height / 3) ** 2
            mask[inside], colour = 2, (40, 40, 220)
        image[inside] = colour
        confidence = rng.uniform(0.9, 1.0, (height, width)).astype(np.float16)
        mask[:3] = 255  # an ignored band, as the 0.95 filter leaves
        image_id = f"img{index}"
        Image.fromarray(image).save(root / "images" / f"{image_id}.png")
        Image.fromarray(mask).save(root / "masks" / f"{image_id}.png")
        np.save(root / "confidence" / f"{image_id}.npy", confidence)
        ids.append(image_id)
    (root / "train.txt").write_text("\n".join(ids) + "\n")
    return root


def _data_args(root: Path, img_suffix: str = ".png", class_names: tuple[str, ...] = CLASSES) -> dict:
    """`build_train_config`'s data arguments for a synthetic data folder (images/, masks/, confidence/, train.txt)."""
    return dict(
        data_root=root,
        image_dir="images",
        mask_dir="masks",
        confidence_dir="confidence",
        split_file="train.txt",
        class_names=class_names,
        img_suffix=img_suffix,
        seed=0,
    )


def _logged_scalars(work_dir: Path) -> list[dict]:
    (scalars,) = sorted(work_dir.glob("*/vis_data/scalars.json"))[-1:]
    return [json.loads(line) for line in scalars.read_text().splitlines() if line.strip()]


def test_three_training_iterations_on_cpu(synthetic_data: Path, tmp_path: Path) -> None:
    last = train_segmenter(build_train_config(TINY_CONFIG, tmp_path, max_iters=3, batch_size=2, **_data_args(synthetic_data)))
    assert last == tmp_path / "iter_3.pth"
    records = _logged_scalars(tmp_path)
    assert [record["iter"] for record in records] == [1, 2, 3]
    assert all(math.isfinite(record["decode.loss_cgl"]) for record in records)


def test_loss_decreases_on_a_fixed_batch(synthetic_data: Path, tmp_path: Path) -> None:
    cfg = build_train_config(TINY_CONFIG, tmp_path, lr=0.01, **_data_args(synthetic_data))
    init_default_scope("mmseg")
    torch.manual_seed(0)
    np.random.seed(0)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    batch = pseudo_collate([dataset[0], dataset[1]])
    assert "gt_confidence_map" in batch["data_samples"][0]
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    losses = [float(model.train_step(batch, optim_wrapper)["loss"]) for _ in range(10)]
    assert all(math.isfinite(value) for value in losses)
    assert min(losses[-3:]) < 0.7 * losses[0], losses


def test_resume_continues_from_the_saved_iteration(synthetic_data: Path, tmp_path: Path) -> None:
    args = dict(_data_args(synthetic_data), checkpoint_interval=2)
    first = train_segmenter(build_train_config(TINY_CONFIG, tmp_path, max_iters=2, **args))
    assert first == tmp_path / "iter_2.pth"
    second = train_segmenter(build_train_config(TINY_CONFIG, tmp_path, max_iters=4, resume=True, **args))
    assert second == tmp_path / "iter_4.pth"
    checkpoint = torch.load(second, map_location="cpu", weights_only=True)  # plain data
    assert checkpoint["meta"]["iter"] == 4
    # The resumed run logged only iterations 3 and 4.
    assert [record["iter"] for record in _logged_scalars(tmp_path)] == [3, 4]
    logs = sorted(tmp_path.glob("*/*.log"))
    assert "resumed epoch: 0, iter: 2" in logs[-1].read_text()


def test_evaluation_of_a_trained_checkpoint(synthetic_data: Path, tmp_path: Path) -> None:
    last = train_segmenter(build_train_config(TINY_CONFIG, tmp_path, max_iters=1, **_data_args(synthetic_data)))
    data = dict(
        image_dir=synthetic_data / "images",
        gt_dir=synthetic_data / "masks",
        split_file=synthetic_data / "train.txt",
        class_names=CLASSES,
        img_suffix=".png",
    )
    scores = evaluate_segmenter(TINY_CONFIG, last, scales=(1.0, 0.75, 0.5), **data)
    assert scores["num_images"] == 4 and scores["scales"] == [1.0, 0.75, 0.5]
    assert set(scores["per_class_iou"]) == set(CLASSES)
    assert 0.0 <= scores["mean_iou"] <= 1.0
    pytest.importorskip("pydensecrf")
    from wsss.pseudo import CrfParams

    with_crf = evaluate_segmenter(TINY_CONFIG, last, crf=CrfParams(), **data)
    assert 0.0 <= with_crf["mean_iou"] <= 1.0


def test_config_overrides(synthetic_data: Path, tmp_path: Path) -> None:
    cfg: Config = build_train_config(
        TINY_CONFIG,
        tmp_path,
        crop_size=48,
        max_iters=7,
        batch_size=3,
        lr=0.5,
        cfg_options={"model.decode_head.loss_decode.balanced": True},
        **_data_args(synthetic_data),
    )
    assert cfg.model.data_preprocessor.size == (48, 48)
    crop = next(step for step in cfg.train_dataloader.dataset.pipeline if step["type"] == "RandomCrop")
    assert crop["crop_size"] == (48, 48)
    assert cfg.train_cfg.max_iters == 7 and cfg.param_scheduler[0]["end"] == 7
    assert cfg.train_dataloader.batch_size == 3 and cfg.optim_wrapper.optimizer.lr == 0.5
    assert cfg.model.decode_head.num_classes == 3 and cfg.model.decode_head.loss_decode.balanced is True
    assert cfg.train_dataloader.dataset.metainfo["classes"] == CLASSES
    missing = tmp_path / "missing.pth"
    with pytest.raises(FileNotFoundError):
        build_train_config(TINY_CONFIG, tmp_path, init_checkpoint=missing, **_data_args(synthetic_data))


def test_local_backbone_checkpoint_initialises_the_backbone(synthetic_data: Path, tmp_path: Path) -> None:
    init_default_scope("mmseg")
    cfg = build_train_config(TINY_CONFIG, tmp_path, **_data_args(synthetic_data))
    backbone = MODELS.build(cfg.model.backbone)
    with torch.no_grad():
        backbone.conv1.weight.fill_(0.125)
    weights = tmp_path / "resnet18_backbone.pth"
    torch.save(backbone.state_dict(), weights)

    cfg = build_train_config(TINY_CONFIG, tmp_path, init_checkpoint=weights, **_data_args(synthetic_data))
    assert cfg.model.backbone.init_cfg == dict(type="Pretrained", checkpoint=str(weights))
    model = MODELS.build(cfg.model)
    model.init_weights()  # through wsss_mmseg.checkpoints.load_plain_checkpoint
    assert bool((model.backbone.conv1.weight == 0.125).all())


def train_cli_argv(root: Path, work_dir: Path, *extra: str) -> list[str]:
    """`wsss_mmseg.train_cli`'s arguments for the tiny config on the synthetic data under `root`."""
    return [
        str(TINY_CONFIG),
        *("--work-dir", str(work_dir), "--data-root", str(root), "--image-dir", "images", "--mask-dir", "masks"),
        *("--confidence-dir", "confidence", "--split-file", "train.txt", "--classes", ",".join(CLASSES), "--img-suffix", ".png"),
        *extra,
    ]


def test_command_line_training_single_process(synthetic_data: Path, tmp_path: Path) -> None:
    """The launcher CLI (the DDP entry point under torchrun) trains in one process with --launcher none."""
    from wsss_mmseg.train_cli import main, parse_args

    argv = train_cli_argv(synthetic_data, tmp_path, "--max-iters", "1", "--seed", "0")
    assert parse_args([*argv, "--launcher", "pytorch"]).launcher == "pytorch"
    assert main(argv) == 0
    assert (tmp_path / "iter_1.pth").is_file()


def test_multi_scale_training_supervises_every_scale_and_their_max(synthetic_data: Path, tmp_path: Path) -> None:
    """deeplab-pytorch's MSC training: losses at scales 1, 0.75, 0.5 and of the pixel-wise max."""
    cfg = build_train_config(TINY_CONFIG, tmp_path, max_iters=1, **_data_args(synthetic_data))
    cfg.model.type = "MultiScaleEncoderDecoder"
    cfg.model.train_scales = (1.0, 0.75, 0.5)
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    init_default_scope("mmseg")
    model = MODELS.build(cfg.model)
    inputs = torch.randn(2, 3, 64, 64)
    logits = model.scale_logits(inputs)
    assert len(logits) == 4 and all(scale.shape == logits[0].shape for scale in logits)
    torch.testing.assert_close(logits[3], torch.stack(logits[:3]).amax(dim=0))
    last = train_segmenter(cfg)
    scalars = _logged_scalars(tmp_path)
    keys = {k for row in scalars for k in row}
    assert {"loss_cgl_scale1", "loss_cgl_scale0.75", "loss_cgl_scale0.5", "loss_cgl_max"} <= keys
    assert last.is_file()
