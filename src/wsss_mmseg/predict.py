"""`wsss predict`: the trained segmenter on new images, exactly as `evaluate` runs it on the dataset.

Images are decoded as training decoded them (`wsss.imaging.load_rgb`: raw pixel grid, EXIF
orientation not applied, `--max-image-pixels` checked on the header before decoding), on a
thread ahead of the model; consecutive images of one size share a forward of up to
`batch_size` (`wsss.inference.outputs.batches_of_one_size`); each batch goes through
`wsss_mmseg.inference.predict_batch`, the function `evaluate` scores with (test scales max-fused,
optional dense CRF with `pseudo.crf_params`). Per image: `labels/<name>.png` (VOC palette; 255
only where `ignore_below` asks), optionally `confidence/<name>.npy` and `overlays/<name>.png`
(image | confidence | prediction, legend in the dataset's class colours). An image that cannot be
decoded is recorded in `failures.json` and the others go on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wsss.errors import ConfigError
from wsss.failures import FailureReport
from wsss.imaging import load_rgb
from wsss.inference.inputs import ImageInput
from wsss.inference.outputs import OutputFolder, batches_of_one_size, progress_bar, record_failure
from wsss.inference.trained_model import TrainedModel
from wsss.io.pipelining import prefetch
from wsss.pseudo.crf import CrfParams
from wsss.viz import OverlayInputs, overlay_figure
from wsss_mmseg.inference import Prediction, load_segmenter, predict_batch

LABELS, CONFIDENCE, OVERLAYS = "labels", "confidence", "overlays"
# Images decoded ahead of the model beyond one batch (bounds memory).
DECODE_AHEAD = 4


@dataclass(frozen=True)
class PredictOptions:
    """How `wsss predict` runs and what it writes (validated by the command before any work)."""

    scales: tuple[float, ...] = (1.0,)
    crf: CrfParams | None = None
    ignore_below: float | None = None  # pixels less confident than this get `ignore_index`
    ignore_index: int = 255
    confidence: bool = False
    overlays: bool = False
    batch_size: int = 1
    device: str = "cpu"
    max_image_pixels: int | None = None


def check_device(device: str, option: str = "--device") -> str:
    """The device, if torch can use it here; otherwise one line saying what to do.

    Raises:
        ConfigError: for an unknown device string or a CUDA device this machine does not have.
    """
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"{option} {device!r} is not a torch device (cpu, cuda, cuda:N)") from None
    if parsed.type not in ("cpu", "cuda"):
        raise ConfigError(f"{option} {device!r}: use cpu or cuda[:N]")
    if parsed.type == "cuda" and (not torch.cuda.is_available() or (parsed.index or 0) >= torch.cuda.device_count()):
        raise ConfigError(f"{option} {device!r}: torch sees {torch.cuda.device_count()} CUDA device(s) here; use --device cpu")
    return device


def final_labels(prediction: Prediction, options: PredictOptions) -> np.ndarray:
    """The label map written: the model's labels, `ignore_index` where asked (confidence below a threshold)."""
    labels = prediction.labels.astype(np.uint8)
    if options.ignore_below is not None:
        labels = np.where(prediction.confidence < options.ignore_below, np.uint8(options.ignore_index), labels)
    return labels


def overlay(name: str, rgb: np.ndarray, prediction: Prediction, labels: np.ndarray, model: TrainedModel) -> np.ndarray:
    """Image | confidence heat map | prediction, with the legend of the labels present."""
    return overlay_figure(
        OverlayInputs(
            rgb=rgb,
            maps=[prediction.confidence],
            tags=["confidence"],
            class_names=model.class_names[1:],
            pseudo_labels=labels,
            mask_caption="prediction",
            title=f"{name}  |  model {model.checkpoint.name} ({Path(str(model.record.params.get('config'))).name})",
        )
    )


def run_predict(
    model: TrainedModel, images: Sequence[ImageInput], out: OutputFolder, options: PredictOptions, failures: FailureReport
) -> dict[str, Any]:
    """Predict every image into `out`; failed images go to `failures`. Returns a summary."""
    logger = out.logger()
    network = load_segmenter(model.config, model.checkpoint, num_classes=len(model.class_names), device=options.device)
    logger.info("predict: %d images with %s (scales %s, crf %s)", len(images), model.checkpoint, options.scales, options.crf is not None)

    def decode(image: ImageInput) -> np.ndarray | Exception:
        try:
            return np.asarray(load_rgb(image.path, options.max_image_pixels))
        except Exception as error:  # noqa: BLE001 - recorded per image below, with its traceback in the log
            return error

    written, started = 0, time.perf_counter()
    decoded = prefetch(images, decode, depth=options.batch_size + DECODE_AHEAD, workers=1)
    try:
        with progress_bar(len(images), "predict") as advance:

            def usable() -> Iterator[tuple[ImageInput, np.ndarray]]:
                for image, result in decoded:
                    if isinstance(result, Exception):
                        record_failure(failures, logger, image.name, str(image.path), result)
                        advance(1)
                    else:
                        yield image, result

            for batch in batches_of_one_size(usable(), options.batch_size):
                written += _predict_and_write(batch, network, model, out, options, failures, logger)
                advance(len(batch))
    finally:
        decoded.close()
    seconds = time.perf_counter() - started
    return {"images": len(images), "written": written, "seconds": round(seconds, 3)}


def _predict_and_write(
    batch: list[tuple[ImageInput, np.ndarray]],
    network: torch.nn.Module,
    model: TrainedModel,
    out: OutputFolder,
    options: PredictOptions,
    failures: FailureReport,
    logger: Any,
) -> int:
    """One forward over a batch of one size, then every image's files; returns how many were written."""
    try:
        predictions = predict_batch(network, [rgb for _, rgb in batch], options.scales, options.crf)
    except Exception as error:  # noqa: BLE001 - e.g. out of memory on a huge image: that batch's images fail, the rest go on
        for image, _ in batch:
            record_failure(failures, logger, image.name, str(image.path), error)
        return 0
    for (image, rgb), prediction in zip(batch, predictions, strict=True):
        labels = final_labels(prediction, options)
        out.write_labels(LABELS, image.name, labels)
        if options.confidence:
            out.write_confidence(CONFIDENCE, image.name, prediction.confidence)
        if options.overlays:
            out.write_image(OVERLAYS, image.name, overlay(image.name, rgb, prediction, labels, model))
    return len(batch)
