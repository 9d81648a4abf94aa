"""Training's validation is bounded, mmengine stays off the console, the config dump holds the
effective values, and evaluate runs the model once per image for both CRF variants.

One tiny training run (2 iterations, 5 images with ground truth, `train.val_max_images: 2`,
`train.val_interval: 1`) serves every test of this module.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("mmseg")

from tasks.train import validation_data
from tests.mmseg.test_mmseg_training import TINY_CONFIG
from wsss.catalog import ArtifactLayout
from wsss.datasets import ImageRecord, Manifest, file_sha256
from wsss.params import Params
from wsss.plots import training_curve_rows
from wsss.training import validation_subset
from wsss_mmseg.training import build_train_config, train_segmenter

CLASSES = ("square", "disc")
IMAGES = 5


def _dataset(root: Path) -> Manifest:
    """Five small photos with a red square or a blue disc; their masks are both GT and pseudo masks."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(1)
    records = []
    for index in range(IMAGES):
        height, width = 40, 48
        rows, cols = np.mgrid[0:height, 0:width]
        image = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
        mask = np.zeros((height, width), np.uint8)
        inside = (abs(rows - 20) < 10) & (abs(cols - 24) < 12) if index % 2 == 0 else (rows - 20) ** 2 + (cols - 24) ** 2 < 100
        mask[inside] = 1 + index % 2
        image[inside] = (220, 40, 40) if index % 2 == 0 else (40, 40, 220)
        image_id = f"img{index}"
        Image.fromarray(image).save(root / "images" / f"{image_id}.png")
        Image.fromarray(mask).save(root / "masks" / f"{image_id}.png")
        records.append(
            ImageRecord(
                image_id,
                f"images/{image_id}.png",
                (CLASSES[index % 2],),
                f"masks/{image_id}.png",
                file_sha256(root / "images" / f"{image_id}.png"),
                width,
                height,
            )
        )
    return Manifest("shapes", tuple(records), CLASSES)


def _params(**train: Any) -> Params:
    return Params.from_mapping(
        {"data": {"kind": "voc", "root": "data"}, "classes": {"names": list(CLASSES)}, "train": {"config": str(TINY_CONFIG), **train}}
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Train 2 iterations with validation bounded to 2 of the 5 images, the console captured."""
    repo = tmp_path_factory.mktemp("repo")
    with contextlib.chdir(repo):
        manifest = _dataset(repo / "data")
        params = _params(val_max_images=2, val_interval=1)
        work_dir = repo / "work"
        work_dir.mkdir()
        validation = validation_data(params, ArtifactLayout(), manifest, work_dir)
        (work_dir / "split.txt").write_text("".join(f"{r.image_id}\n" for r in manifest.records))
        cfg = build_train_config(
            TINY_CONFIG,
            work_dir,
            data_root=repo / "data",
            image_dir="images",
            mask_dir="masks",
            split_file=str(work_dir / "split.txt"),
            class_names=("background", *CLASSES),
            img_suffix=".png",
            seed=0,
            max_iters=2,
            batch_size=2,
            validation=validation,
        )
        console = io.StringIO()
        with contextlib.redirect_stdout(console):  # mmengine's console handler binds sys.stdout when the Runner starts
            checkpoint = train_segmenter(cfg, quiet_console=True)  # as the train stage runs it
    return {
        "repo": repo,
        "manifest": manifest,
        "params": params,
        "validation": validation,
        "work_dir": work_dir,
        "checkpoint": checkpoint,
        "console": console.getvalue(),
    }


def test_an_evenly_spaced_subset_in_id_order() -> None:
    ids = [f"i{n:02d}" for n in range(10)]
    assert validation_subset(list(reversed(ids)), 4) == ["i00", "i02", "i05", "i07"]
    assert validation_subset(ids[:3], 4) == ids[:3] and validation_subset(ids, 0) == []


def test_training_validates_at_most_the_configured_images(trained: dict[str, Any]) -> None:
    assert Path(trained["validation"].split_file).read_text().split() == ["img0", "img2"]
    logs = [path.read_text() for path in sorted(trained["work_dir"].glob("*/vis_data/scalars.json"))]
    _, val_rows = training_curve_rows(logs)
    # What the metric saw, logged by it: 2 images at every validation (interval 1), not all 5.
    assert [(row["iter"], row["images"]) for row in val_rows] == [(1, 2), (2, 2)]


def test_no_validation_when_val_max_images_is_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    manifest = _dataset(tmp_path / "data")
    assert validation_data(_params(val_max_images=0), ArtifactLayout(), manifest, tmp_path) is None


def test_mmengine_environment_and_config_go_to_the_log_file_only(trained: dict[str, Any]) -> None:
    console = trained["console"]
    (log,) = sorted(trained["work_dir"].glob("*/*.log"))
    logged = log.read_text()
    for text in ("System environment:", "Config:\n", "Hooks will be executed", "paramwise_options", "Iter(train)"):
        assert text in logged, text
        assert text not in console, text
    assert " - INFO - " not in console and "FileClient" not in console  # nor mmengine's own deprecation notice


def test_the_dumped_config_shows_the_effective_values_only(trained: dict[str, Any]) -> None:
    """The tiny config file says `max_iters = 20` and the reference `num_classes = 21` at top level;
    with max_iters overridden to 2 and 3 classes the dump (and the config logged) said both."""
    dumped = (trained["work_dir"] / TINY_CONFIG.name).read_text()
    (log,) = sorted(trained["work_dir"].glob("*/*.log"))
    for text in (dumped, log.read_text()):
        assert not re.search(r"^(max_iters|num_classes|crop_size|train_pipeline) = ", text, re.MULTILINE)
        assert re.search(r"max_iters=2,", text) and re.search(r"num_classes=3,", text)


def test_evaluate_runs_the_model_once_per_image_for_both_crf_variants(
    trained: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.evaluate import score_model
    from wsss_mmseg import inference
    from wsss_mmseg.training import score_segmenter_on

    repo = tmp_path / "repo"
    shutil.copytree(trained["repo"] / "data", repo / "data")
    monkeypatch.chdir(repo)
    layout = ArtifactLayout()
    layout.model.parent.mkdir(parents=True)
    shutil.copyfile(trained["checkpoint"], layout.model)
    params, records = _params(test_crf=True), trained["manifest"].records
    forwards = []
    original = inference.predict_logits_batch
    monkeypatch.setattr(inference, "predict_logits_batch", lambda *a, **k: forwards.append(1) or original(*a, **k))
    scores = score_model(params, layout, records)
    assert sorted(scores) == ["model.scales=1.crf=off", "model.scales=1.crf=on"]
    assert len(forwards) == IMAGES  # was 2 x IMAGES: a full pass per CRF variant

    samples = [(repo / "data" / r.image_path, lambda r=r: np.asarray(Image.open(repo / "data" / r.ground_truth_path))) for r in records]
    for key, crf in (("model.scales=1.crf=off", None), ("model.scales=1.crf=on", params.pseudo.crf_params)):
        alone = score_segmenter_on(TINY_CONFIG, layout.model, samples, class_names=("background", *CLASSES), crf=crf)
        assert scores[key].to_dict() == alone.to_dict()
