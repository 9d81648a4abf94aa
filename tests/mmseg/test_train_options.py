"""train_cli's --cfg-options / --amp (as MMSegmentation's tools/train.py) and validation curves."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("mmseg")

from mmengine.config import Config

from tests.mmseg.test_mmseg_training import CLASSES, TINY_CONFIG, _data_args, synthetic_data, train_cli_argv  # noqa: F401  (fixture)
from wsss.plots import training_curve_rows
from wsss_mmseg.train_cli import build_config, parse_args
from wsss_mmseg.training import ValidationData, build_train_config, enable_amp, train_segmenter


def _argv(root: Path, work_dir: Path) -> list[str]:
    return train_cli_argv(root, work_dir, "--max-iters", "3")


def test_cfg_options_are_merged_last(synthetic_data: Path, tmp_path: Path) -> None:
    args = parse_args(
        [
            *_argv(synthetic_data, tmp_path),
            "--cfg-options",
            "default_hooks.logger.interval=7",
            "model.decode_head.loss_decode.balanced=True",
            "optim_wrapper.optimizer.momentum=0.5",
            "model.decode_head.dilations=(3,6,9,12)",
            "train_cfg.max_iters=5",
        ]
    )
    cfg: Config = build_config(args)
    assert cfg.default_hooks.logger.interval == 7
    assert cfg.model.decode_head.loss_decode.balanced is True
    assert cfg.optim_wrapper.optimizer.momentum == 0.5
    assert tuple(cfg.model.decode_head.dilations) == (3, 6, 9, 12)
    assert cfg.train_cfg.max_iters == 5  # after --max-iters 3: the options win, as in tools/train.py
    assert cfg.optim_wrapper.type == "OptimWrapper"  # no --amp


def test_amp_switches_to_the_amp_optimizer_wrapper(synthetic_data: Path, tmp_path: Path) -> None:
    cfg = build_config(parse_args([*_argv(synthetic_data, tmp_path), "--amp"]))
    assert cfg.optim_wrapper.type == "AmpOptimWrapper" and cfg.optim_wrapper.loss_scale == "dynamic"
    assert cfg.optim_wrapper.optimizer.type == "SGD" and "paramwise_cfg" in cfg.optim_wrapper
    assert enable_amp(cfg).optim_wrapper.type == "AmpOptimWrapper"  # already on: unchanged
    cfg.optim_wrapper.type = "ApexOptimWrapper"
    with pytest.raises(ValueError, match="ApexOptimWrapper"):
        enable_amp(cfg)


def test_validation_during_training_gives_miou_curves(synthetic_data: Path, tmp_path: Path) -> None:
    validation = ValidationData(image_dir="images", gt_dir="masks", split_file="train.txt", interval=2)
    cfg = build_train_config(TINY_CONFIG, tmp_path, **_data_args(synthetic_data), max_iters=3, batch_size=2, validation=validation)
    assert cfg.val_evaluator.type == "WsssIoUMetric" and cfg.train_cfg.val_interval == 2
    train_segmenter(cfg)
    logs = [path.read_text() for path in sorted(tmp_path.glob("*/vis_data/scalars.json"))]
    train_rows, val_rows = training_curve_rows(logs)
    assert [row["iter"] for row in train_rows] == [1, 2, 3]
    assert all(row["loss"] > 0 for row in train_rows)
    assert train_rows[0]["lr"] > train_rows[1]["lr"] > train_rows[2]["lr"] >= 0  # PolyLR down to 0
    assert [row["iter"] for row in val_rows] == [2, 3]  # every 2 iterations and at the end
    assert all(0.0 <= row["miou"] <= 1.0 for row in val_rows)


def test_the_val_loop_reads_ground_truth_through_the_one_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Derived (COCO) ground truth lives outside the dataset root under content-keyed names; the val
    loop gets it through the GT reader (values checked), not as `<gt folder>/<id>.png` under the root."""
    import numpy as np
    from PIL import Image

    from tasks.train import validation_data
    from wsss.catalog import ArtifactLayout
    from wsss.datasets import ImageRecord, Manifest
    from wsss.errors import DatasetError
    from wsss.params import Params

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/images").mkdir(parents=True)
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(tmp_path / "data/images/a.png")
    layout = ArtifactLayout()
    labels = np.zeros((6, 8), np.uint8)
    labels[2:4, 2:6], labels[0] = 1, 255
    layout.ground_truth.mkdir(parents=True)
    Image.fromarray(labels).save(layout.ground_truth / "a.0123456789abcdef.png")
    record = ImageRecord("a", "images/a.png", ("cat",), "a.0123456789abcdef.png", "0" * 64, 8, 6, "derived")
    manifest = Manifest("m", (record,), ("cat", "dog"))
    params = Params.from_mapping({"data": {"kind": "voc", "root": "data"}, "classes": {"names": ["cat", "dog"]}})
    work_dir = tmp_path / "work"
    work_dir.mkdir()
    validation = validation_data(params, layout, manifest, work_dir)
    assert validation is not None and validation.interval is None  # null = the config's checkpoint interval
    with Image.open(Path(validation.gt_dir) / f"a{validation.gt_suffix}") as handle:
        np.testing.assert_array_equal(np.asarray(handle), labels)
    assert Path(validation.split_file).read_text() == "a\n"
    assert Path(validation.image_dir) == (tmp_path / "data/images").resolve()

    labels[5, 7] = 9  # not a class of the two-class list: refused naming the file, as every metric does
    Image.fromarray(labels).save(layout.ground_truth / "a.0123456789abcdef.png")
    with pytest.raises(DatasetError, match=r"a\.0123456789abcdef\.png has values outside 0\.\.2 and 255"):
        validation_data(params, layout, manifest, work_dir)
