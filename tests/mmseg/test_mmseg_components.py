"""mmseg adapter pieces: ops shim, ASPP-v2 head, loss wiring, optimiser groups, dataset, configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("mmseg")

import wsss_mmseg  # first: its mmcv.ops shim goes in before mmengine and mmseg are imported

# isort: split

from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import DATASETS, MODELS
from mmseg.structures import SegDataSample
from PIL import Image

from wsss.losses import confidence_guided_cross_entropy
from wsss_mmseg.ops_shim import MmcvOpUnavailableError, shim_installed

TINY_CONFIG = wsss_mmseg.CONFIG_DIR / "deeplabv2_tiny_cpu.py"
FULL_CONFIG = wsss_mmseg.CONFIG_DIR / "deeplabv2_r101_voc_pseudo.py"


@pytest.fixture(scope="module", autouse=True)
def _mmseg_scope() -> None:
    init_default_scope("mmseg")


def _tiny_model(num_classes: int = 5) -> torch.nn.Module:
    cfg = Config.fromfile(str(TINY_CONFIG))
    cfg.model.decode_head.num_classes = num_classes
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def test_ops_shim_provides_point_sample_and_refuses_compiled_ops() -> None:
    if not shim_installed():
        pytest.skip("real compiled mmcv ops are installed; the shim is a no-op")
    from mmcv.ops import point_sample, sigmoid_focal_loss

    features = torch.arange(16.0).reshape(1, 1, 4, 4)
    points = torch.tensor([[[0.125, 0.125], [0.875, 0.625]]])  # (x, y) in [0, 1]
    sampled = point_sample(features, points, align_corners=False)
    assert sampled.shape == (1, 1, 2)
    # pixel centres: (col 0, row 0) = 0 and (col 3, row 2) = 11
    torch.testing.assert_close(sampled[0, 0], torch.tensor([0.0, 11.0]))
    assert not isinstance(torch.nn.Conv2d(1, 1, 1), sigmoid_focal_loss)
    with pytest.raises(MmcvOpUnavailableError, match="sigmoid_focal_loss"):
        sigmoid_focal_loss(torch.zeros(1), torch.zeros(1))
    with pytest.raises(ImportError):  # the placeholder error is an ImportError when used
        from mmcv.ops import CrissCrossAttention

        CrissCrossAttention(8)


def test_head_output_is_stride_8_and_sum_of_branches() -> None:
    model = _tiny_model(num_classes=5).eval()
    head = model.decode_head
    assert not hasattr(head, "conv_seg")
    assert [branch.dilation for branch in head.aspp_branches] == [(r, r) for r in (6, 12, 18, 24)]
    assert [branch.padding for branch in head.aspp_branches] == [(r, r) for r in (6, 12, 18, 24)]
    assert all(branch.kernel_size == (3, 3) and branch.bias is not None for branch in head.aspp_branches)
    weights = torch.cat([branch.weight.flatten() for branch in head.aspp_branches])
    assert 0.008 < float(weights.std()) < 0.012 and abs(float(weights.mean())) < 1e-3
    assert all((branch.bias == 0).all() for branch in head.aspp_branches)

    with torch.no_grad():
        features = model.extract_feat(torch.randn(2, 3, 64, 64))
        assert features[-1].shape == (2, 512, 8, 8)
        scores = head(features)
        assert scores.shape == (2, 5, 8, 8)
        torch.testing.assert_close(scores, sum(head.branch_outputs(features)))
        alone = head.branch_outputs(features)[3]
        for branch in list(head.aspp_branches)[:3]:
            branch.weight.zero_()
            branch.bias.zero_()
        torch.testing.assert_close(head(features), alone)


def test_head_receptive_field_is_the_union_of_the_dilated_grids() -> None:
    """An impulse in the head's input reaches exactly the offsets {0, +-r} x {0, +-r}, r in 6..24."""
    head = MODELS.build(dict(type="ASPPV2Head", in_channels=1, channels=1, num_classes=1, init_cfg=None)).eval()
    with torch.no_grad():
        for branch in head.aspp_branches:
            branch.weight.fill_(1.0)
            branch.bias.zero_()
        impulse = torch.zeros(1, 1, 61, 61)
        impulse[0, 0, 30, 30] = 1.0
        response = head([impulse])[0, 0]
    offsets = {(dy * r, dx * r) for r in (6, 12, 18, 24) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    reached = {(int(y) - 30, int(x) - 30) for y, x in torch.nonzero(response)}
    assert reached == offsets
    assert float(response[30, 30]) == 4.0  # the centre tap of all four branches


def test_head_rejects_dropout() -> None:
    with pytest.raises(ValueError, match="dropout"):
        MODELS.build(dict(type="ASPPV2Head", in_channels=8, num_classes=3, dropout_ratio=0.1))


def _sample(label: torch.Tensor, confidence: torch.Tensor | None) -> SegDataSample:
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(data=label[None])
    if confidence is not None:
        sample.set_data(dict(gt_confidence_map=PixelData(data=confidence[None])))
    return sample


def test_head_loss_passes_confidence_and_pads_it_like_the_labels() -> None:
    head = MODELS.build(
        dict(type="ASPPV2Head", in_channels=8, num_classes=3, loss_decode=dict(type="ConfidenceGuidedCELoss", threshold=0.9, loss_name="loss_cgl"))
    )
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 4, generator=generator)
    labels = torch.randint(0, 3, (2, 16, 16), generator=generator)
    confidence = torch.rand(2, 16, 16, generator=generator)
    # The second sample was padded by the preprocessor (labels 255 on the right/bottom), its
    # confidence map was not.
    labels[1, 12:, :] = 255
    labels[1, :, 10:] = 255
    samples = [_sample(labels[0], confidence[0]), _sample(labels[1], confidence[1, :12, :10])]
    losses = head.loss_by_feat(logits, samples)
    assert set(losses) == {"loss_cgl", "acc_seg"}
    upsampled = F.interpolate(logits, size=(16, 16), mode="bilinear", align_corners=False)
    padded_confidence = confidence.clone()
    padded_confidence[1, 12:, :] = 0
    padded_confidence[1, :, 10:] = 0
    expected = confidence_guided_cross_entropy(upsampled, labels, padded_confidence, threshold=0.9)
    torch.testing.assert_close(losses["loss_cgl"], expected)

    # Without confidence maps the loss is plain CE with ignore_index (the reference).
    plain = head.loss_by_feat(logits, [_sample(labels[0], None), _sample(labels[1], None)])
    torch.testing.assert_close(plain["loss_cgl"], F.cross_entropy(upsampled, labels, ignore_index=255))
    # A sample without a map counts with confidence 1 (hard labels) beside one with a map.
    mixed = head.loss_by_feat(logits, [_sample(labels[0], confidence[0]), _sample(labels[1], None)])
    mixed_confidence = torch.stack([confidence[0], torch.ones(16, 16)])
    torch.testing.assert_close(mixed["loss_cgl"], confidence_guided_cross_entropy(upsampled, labels, mixed_confidence, threshold=0.9))


def test_loss_wrapper_contract() -> None:
    loss = MODELS.build(dict(type="ConfidenceGuidedCELoss", mode="soft", loss_weight=2.0))
    assert loss.loss_name.startswith("loss_")
    logits = torch.randn(1, 2, 4, 4)
    labels = torch.randint(0, 2, (1, 4, 4))
    confidence = torch.rand(1, 4, 4)
    expected = 2.0 * confidence_guided_cross_entropy(logits, labels, confidence, mode="soft")
    torch.testing.assert_close(loss(logits, labels, weight=None, ignore_index=255, confidence=confidence), expected)
    with pytest.raises(ValueError, match="loss_"):
        MODELS.build(dict(type="ConfidenceGuidedCELoss", loss_name="cgl"))


def test_optimizer_multipliers_follow_deeplab_pytorch() -> None:
    cfg = Config.fromfile(str(TINY_CONFIG))
    model = _tiny_model()
    base_lr = cfg.optim_wrapper.optimizer.lr
    base_wd = cfg.optim_wrapper.optimizer.weight_decay
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    group_of = {id(p): group for group in optim_wrapper.optimizer.param_groups for p in group["params"]}
    named = dict(model.named_parameters())
    assert len(group_of) == len(named)
    for name, parameter in named.items():
        group = group_of[id(parameter)]
        if name.startswith("decode_head.") and name.endswith(".bias"):
            expected = (20 * base_lr, 0.0)
        elif name.startswith("decode_head."):
            expected = (10 * base_lr, base_wd)
        else:
            expected = (base_lr, base_wd)
        assert (group["lr"], group["weight_decay"]) == pytest.approx(expected), name
    full = Config.fromfile(str(FULL_CONFIG))
    assert full.optim_wrapper.paramwise_cfg == cfg.optim_wrapper.paramwise_cfg


def test_full_config_mirrors_the_deeplab_recipe() -> None:
    cfg = Config.fromfile(str(FULL_CONFIG))
    backbone, head = cfg.model.backbone, cfg.model.decode_head
    assert (backbone.type, backbone.depth) == ("ResNet", 101)
    assert backbone.strides == (1, 2, 1, 1) and backbone.dilations == (1, 1, 2, 4)
    assert backbone.out_indices == (3,) and backbone.norm_cfg.type == "BN" and backbone.init_cfg is None
    assert (head.type, head.in_channels, head.num_classes) == ("ASPPV2Head", 2048, 21)
    assert head.loss_decode.type == "ConfidenceGuidedCELoss"
    assert cfg.train_dataloader.batch_size == 10 and cfg.model.data_preprocessor.size == (321, 321)
    assert cfg.train_cfg.type == "IterBasedTrainLoop" and cfg.train_cfg.max_iters == 20000
    (poly,) = cfg.param_scheduler
    assert (poly.type, poly.power, poly.end) == ("PolyLR", 0.9, 20000)
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.momentum, optimizer.weight_decay) == ("SGD", 2.5e-4, 0.9, 5e-4)
    steps = {step.type: step for step in cfg.train_dataloader.dataset.pipeline}
    assert steps["RandomResize"].ratio_range == (0.5, 1.5) and steps["RandomCrop"].crop_size == (321, 321)
    assert "RandomFlip" in steps and cfg.test_pipeline[0].type == "LoadImageAsStored"
    assert cfg.train_dataloader.dataset.pipeline[0].type == "LoadImageAsStored"
    assert cfg.custom_imports.imports == ["wsss_mmseg"] and cfg.default_scope == "mmseg"


def _write_dataset(root: Path, ids: list[str], *, with_confidence: bool) -> None:
    for folder in ("images", "masks", "conf"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for image_id in ids:
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "images" / f"{image_id}.jpg")
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "masks" / f"{image_id}.png")
        if with_confidence:
            np.save(root / "conf" / f"{image_id}.npy", np.ones((8, 8), np.float16))


def test_pseudo_mask_dataset_any_class_list_and_optional_confidence(tmp_path: Path) -> None:
    ids = ["2007_000032", "2007_000039"]
    _write_dataset(tmp_path, ids, with_confidence=True)
    (tmp_path / "split.txt").write_text("2007_000032 0 14\n2007_000039\n\n")  # COCO-style extra tokens
    classes = tuple(f"class{i}" for i in range(23))
    common = dict(type="PseudoMaskDataset", data_root=str(tmp_path), ann_file="split.txt", metainfo=dict(classes=classes))
    dataset = DATASETS.build(dict(common, data_prefix=dict(img_path="images", seg_map_path="masks", confidence_path="conf")))
    assert len(dataset) == 2 and dataset.metainfo["classes"] == classes
    assert len(dataset.metainfo["palette"]) == 23
    info = dataset.get_data_info(0)
    assert info["img_path"] == str(tmp_path / "images" / "2007_000032.jpg")
    assert info["seg_map_path"] == str(tmp_path / "masks" / "2007_000032.png")
    assert info["confidence_path"] == str(tmp_path / "conf" / "2007_000032.npy")
    assert dataset.label_map is None

    without = DATASETS.build(dict(common, data_prefix=dict(img_path="images", seg_map_path="masks")))
    assert "confidence_path" not in without.get_data_info(1)
    with pytest.raises(ValueError, match="classes"):
        DATASETS.build(dict(common, metainfo=None, data_prefix=dict(img_path="images", seg_map_path="masks")))
