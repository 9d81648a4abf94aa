"""One `wsss predict` run from plain values: what the command line and the Prefect flow both hand over.

`predict_images` checks every value before anything is loaded (ranges by the params' own
validation: `train.test_scales`, `pseudo.confidence_threshold`, `reliability.max_failed_share`;
the model files; the images; the device), then runs `wsss_mmseg.predict.run_predict` and settles
the failures (`failures.json`; exit 2 above the tolerated share, after every other image was written).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from wsss.catalog import ArtifactLayout
from wsss.errors import ConfigError
from wsss.failures import FailureReport
from wsss.inference.checks import checked, mmseg_module
from wsss.inference.inputs import collect_images
from wsss.inference.outputs import OutputFolder
from wsss.inference.trained_model import TrainedModel
from wsss.params import Params

MAX_BATCH_SIZE = 4096


@dataclass(frozen=True)
class PredictRequest:
    """What to predict and how (None: the model's or the params' value)."""

    inputs: Sequence[str] = ()
    out: str = "outputs/predict"
    file_list: str | None = None
    root: str = "."
    model: str | None = None
    record: str | None = None
    scales: tuple[float, ...] | None = None  # default: the model's train.test_scales (what evaluate used)
    crf: bool = False
    ignore_below: float | None = None
    confidence: bool = False
    overlays: bool = False
    batch_size: int = 1
    device: str = "cpu"
    max_failed_share: float | None = None


def predict_images(request: PredictRequest, params: Params) -> dict[str, Any]:
    """Run one prediction request; returns the summary (counts, seconds, settings, `line` to print).

    Raises:
        WsssError: one line naming the bad value or file (before any work), or, after the run,
            `TooManyFailuresError` when more images failed than tolerated.
    """
    model = TrainedModel.at(request.model or ArtifactLayout(Path(request.root)).model, request.record, request.root)
    scales = tuple(request.scales) if request.scales is not None else tuple(model.record.params.get("test_scales") or (1.0,))
    checked("--scales", lambda: replace(params.train, test_scales=scales))
    if scales[0] != 1.0:
        raise ConfigError(f"--scales must start with 1 (the trained size), got {','.join(f'{s:g}' for s in scales)}")
    if request.ignore_below is not None:
        checked("--ignore-below", lambda: replace(params.pseudo, confidence_threshold=request.ignore_below))
    if not isinstance(request.batch_size, int) or not 1 <= request.batch_size <= MAX_BATCH_SIZE:
        raise ConfigError(f"--batch-size must be an integer in [1, {MAX_BATCH_SIZE}], got {request.batch_size!r}")
    share = params.reliability.max_failed_share if request.max_failed_share is None else request.max_failed_share
    checked("--max-failed-share", lambda: replace(params.reliability, max_failed_share=share))
    failures = FailureReport("predict")
    images = collect_images(request.inputs, Path(request.file_list) if request.file_list else None, failures)
    total = len(images) + len(failures.failed_images())
    out = OutputFolder(Path(request.out), "predict")
    out.logger()  # from here on, library warnings go to the log, not over the summary
    predict = mmseg_module("predict")
    options = predict.PredictOptions(
        scales=scales,
        crf=params.pseudo.crf_params if request.crf else None,
        ignore_below=request.ignore_below,
        ignore_index=params.pseudo.ignore_index,
        confidence=request.confidence,
        overlays=request.overlays,
        batch_size=request.batch_size,
        device=predict.check_device(request.device),
        max_image_pixels=params.reliability.max_image_pixels,
    )
    summary = predict.run_predict(model, images, out, options, failures)
    summary.update(total=total, failed=len(failures.failures), out=str(out.root), scales=list(scales), crf=request.crf)
    summary["line"] = (
        f"predict: {summary['written']} of {total} images -> {out.root}/labels in {summary['seconds']:.1f} s "
        f"(scales {','.join(f'{s:g}' for s in scales)}, crf {'on' if request.crf else 'off'}, {request.device}, "
        f"batch {request.batch_size})" + (f"; {len(failures.failures)} failed, see {out.failures}" if failures.failures else "")
    )
    print(summary["line"])
    out.settle(failures, total, share)
    return summary
