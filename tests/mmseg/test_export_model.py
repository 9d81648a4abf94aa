"""`wsss export-model --format onnx`: the file reproduces PyTorch on real photos of any size within the
tolerance, and its metadata is all a consumer needs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mmseg")
onnxruntime = pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.slow  # the session's tiny model is trained by the train stage; export + check ~30 s


def test_onnx_export_matches_pytorch_on_real_photos_and_describes_itself(
    trained_sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wsss.cli import main
    from wsss.inference.trained_model import TrainedModel
    from wsss.palette import voc_palette
    from wsss.sample import sample_images
    from wsss_mmseg.export import LOGIT_TOLERANCE, MIN_LABEL_AGREEMENT, read_metadata
    from wsss_mmseg.inference import load_segmenter, predict_logits_batch

    path = tmp_path / "model.onnx"
    assert main(["export-model", "--root", str(trained_sample), "--out", str(path)]) == 0
    printed = capsys.readouterr().out
    # The command's own check: four photos of four sizes (dynamic H and W), within the tolerance.
    rows = re.findall(r"max \|logit diff\| ([0-9.e+-]+) \(logits up to [0-9.]+\), labels agree on ([0-9.]+)%", printed)
    assert len(rows) == 4, printed
    assert all(float(diff) <= LOGIT_TOLERANCE and float(agree) / 100 >= MIN_LABEL_AGREEMENT for diff, agree in rows), printed
    assert printed.rstrip().endswith(": ok")

    # A consumer with only the file: metadata says the classes, colours and the input contract.
    model = TrainedModel.at(trained_sample / "artifacts/train/model.pth", repo=trained_sample)
    metadata = read_metadata(path)
    assert metadata["classes"] == list(model.class_names)
    assert metadata["palette"] == voc_palette()[: len(model.class_names)].tolist()
    assert metadata["mean"] == pytest.approx([123.675, 116.28, 103.53]) and metadata["std"] == pytest.approx([58.395, 57.12, 57.375])
    assert "inside the graph" in metadata["input"] and metadata["checkpoint_sha256"] == model.identity()["checkpoint_sha256"]
    assert metadata["recipe"]["crop_size"] == model.record.recipe["crop_size"]

    # ... and runs a batch of two (dynamic N) on raw RGB pixels, getting PyTorch's logits.
    chelsea = next(sample.rgb for sample in sample_images() if sample.image_id == "chelsea")
    batch = np.stack([chelsea, chelsea[::-1]]).transpose(0, 3, 1, 2).astype(np.float32)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"image": batch})
    network = load_segmenter(model.config, model.checkpoint, num_classes=len(model.class_names))
    reference = predict_logits_batch(network, [chelsea, np.ascontiguousarray(chelsea[::-1])]).numpy()
    assert logits.shape == reference.shape == (2, len(model.class_names), 300, 451)
    assert np.abs(logits - reference).max() <= LOGIT_TOLERANCE
    assert (logits.argmax(1) == reference.argmax(1)).mean() >= MIN_LABEL_AGREEMENT
