"""`wsss predict`, `wsss segment`, `wsss export-model` (registered by `wsss.cli`).

Only argparse is imported at module level; each handler imports what it runs, so `wsss --help`
stays fast. Every door is checked before a model is loaded or an image decoded: numbers by the
params' own validation (`train.test_scales`, `pseudo.confidence_threshold` ranges), the image
arguments (`wsss.inference.inputs`), the model files (`wsss.inference.trained_model`), the device.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wsss.errors import ConfigError, WsssError

if TYPE_CHECKING:
    from wsss.params import Params


def command_params(args: argparse.Namespace) -> Params:
    """`--params`, else `<root>/params.yaml` when there is one, else the built-in defaults."""
    from wsss.params import Params, load_params

    path = Path(args.params) if args.params else Path(args.root) / "params.yaml"
    if args.params or path.is_file():
        return load_params(path)
    return Params()


def float_list(text: str) -> tuple[float, ...]:
    """`1,0.75,0.5` -> (1.0, 0.75, 0.5); argparse turns the ValueError into a usage error (exit 2)."""
    values = tuple(float(part) for part in text.split(",") if part.strip())
    if not values:
        raise ValueError("empty list")
    return values


float_list.__name__ = "comma-separated numbers"  # what argparse names in its error


def positive_int(limit: int) -> Any:
    def parse(text: str) -> int:
        value = int(text)
        if not 1 <= value <= limit:
            raise ValueError(f"{value} is not in [1, {limit}]")
        return value

    parse.__name__ = f"integer in [1, {limit}]"
    return parse


def checked(option: str, make: Any) -> Any:
    """The value `make()` builds with the params' validation; its error prefixed with the option."""
    try:
        return make()
    except ConfigError as error:
        raise ConfigError(f"{option}: {error}") from None


def mmseg_module(name: str) -> Any:
    """A `wsss_mmseg` module; a clear error where the mmseg extra is not installed."""
    import importlib

    try:
        return importlib.import_module(f"wsss_mmseg.{name}")
    except ImportError as error:
        raise WsssError(f"this command needs MMSegmentation (pip install -e .[mmseg]): {error}") from None


def run_predict(args: argparse.Namespace) -> int:
    """The trained segmenter on new images: label PNGs (+ confidence, overlays), failures.json."""
    from wsss.catalog import ArtifactLayout
    from wsss.failures import FailureReport
    from wsss.inference.inputs import collect_images
    from wsss.inference.outputs import OutputFolder
    from wsss.inference.trained_model import TrainedModel

    params = command_params(args)
    model = TrainedModel.at(args.model or ArtifactLayout(Path(args.root)).model, args.record, args.root)
    scales = args.scales if args.scales is not None else tuple(model.record.params.get("test_scales") or (1.0,))
    checked("--scales", lambda: replace(params.train, test_scales=scales))
    if scales[0] != 1.0:
        raise ConfigError(f"--scales must start with 1 (the trained size), got {','.join(f'{s:g}' for s in scales)}")
    if args.ignore_below is not None:
        checked("--ignore-below", lambda: replace(params.pseudo, confidence_threshold=args.ignore_below))
    max_failed_share = params.reliability.max_failed_share if args.max_failed_share is None else args.max_failed_share
    checked("--max-failed-share", lambda: replace(params.reliability, max_failed_share=max_failed_share))
    failures = FailureReport("predict")
    images = collect_images(args.inputs, Path(args.file_list) if args.file_list else None, failures)
    total = len(images) + len(failures.failed_images())
    out = OutputFolder(Path(args.out), "predict")
    out.logger()  # from here on, library warnings go to the log
    predict = mmseg_module("predict")
    options = predict.PredictOptions(
        scales=scales, crf=params.pseudo.crf_params if args.crf else None, ignore_below=args.ignore_below,
        ignore_index=params.pseudo.ignore_index, confidence=args.confidence, overlays=args.overlays,
        batch_size=args.batch_size, device=predict.check_device(args.device),
        max_image_pixels=params.reliability.max_image_pixels,
    )
    summary = predict.run_predict(model, images, out, options, failures)
    print(f"predict: {summary['written']} of {total} images -> {out.root}/labels in {summary['seconds']:.1f} s "
          f"(scales {','.join(f'{s:g}' for s in scales)}, crf {'on' if args.crf else 'off'}, {args.device}, batch {args.batch_size})"
          + (f"; {len(failures.failures)} failed, see {out.failures}" if failures.failures else ""))
    out.settle(failures, total, max_failed_share)
    return 0


def check_photos(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """`(name, RGB array)` of the photos the export is checked on: --check-images, else the sample's."""
    import numpy as np

    from wsss.failures import FailureReport
    from wsss.imaging import load_rgb

    if not args.check_images:
        from wsss.sample import sample_images

        return [(sample.image_id, sample.rgb) for sample in sample_images()]
    from wsss.inference.inputs import collect_images

    failures = FailureReport("export-model")
    photos = [(image.name, np.asarray(load_rgb(image.path))) for image in collect_images(args.check_images, None, failures)]
    if failures.failures:
        raise WsssError(f"--check-images: {failures.failures[0].file}: {failures.failures[0].reason}")
    return photos


def run_export_model(args: argparse.Namespace) -> int:
    """The trained segmenter as ONNX (dynamic batch/H/W, metadata), checked against PyTorch with onnxruntime."""
    from wsss.catalog import ArtifactLayout
    from wsss.inference.trained_model import TrainedModel

    model = TrainedModel.at(args.model or ArtifactLayout(Path(args.root)).model, args.record, args.root)
    photos = check_photos(args)  # before the export: a bad photo path is a usage error
    export = mmseg_module("export")
    destination = Path(args.out) if args.out else ArtifactLayout(Path(args.root)).exports / "model.onnx"
    crop = model.record.recipe.get("crop_size") or [64, 64]
    export.export_onnx(model, destination, example_size=tuple(crop))
    check = export.check_export(destination, model, photos)
    for row in check.images:
        print(f"  {row['image']} {row['size'][0]}x{row['size'][1]}: max |logit diff| {row['max_abs_logit_diff']:.2e} "
              f"(logits up to {row['max_abs_logit']:.1f}), labels agree on {row['label_agreement']:.4%}")
    verdict = "ok" if check.within() else "FAILED"
    print(f"exported {destination} ({destination.stat().st_size / 1e6:.1f} MB, {len(model.class_names)} classes); "
          f"onnxruntime vs PyTorch on {len(photos)} photos: max |logit diff| {check.max_abs_logit_diff:.2e} "
          f"(tolerance {export.LOGIT_TOLERANCE:g}), labels agree on {check.label_agreement:.4%} "
          f"(at least {export.MIN_LABEL_AGREEMENT:.1%}): {verdict}")
    return 0 if check.within() else 1


def add_image_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", help="image files, folders (their images) and glob patterns ('photos/**/*.jpg')")
    parser.add_argument("--file-list", help="a text file naming one image per line (relative to the list's folder)")
    parser.add_argument("--root", default=".", help="pipeline repository: params.yaml, artifacts (default: .)")
    parser.add_argument("--params", help="params file (default: <root>/params.yaml when present, else the defaults)")
    parser.add_argument("--max-failed-share", type=float, help="exit 2 when more images fail (default: reliability.max_failed_share)")


def register(commands: argparse._SubParsersAction) -> None:
    """Add the predict, segment and export-model subcommands to the `wsss` parser."""
    predict = commands.add_parser("predict", help="segment new images with the trained model (as evaluate runs it)")
    add_image_arguments(predict)
    predict.add_argument("--out", default="outputs/predict", help="output folder (default: outputs/predict)")
    predict.add_argument("--model", help="trained checkpoint (default: <root>/artifacts/train/model.pth)")
    predict.add_argument("--record", help="its model.json (default: beside the checkpoint)")
    predict.add_argument("--scales", type=float_list, help="test scales fused by max, first 1 (default: the model's train.test_scales)")
    predict.add_argument("--crf", action="store_true", help="dense CRF on the softmax (pseudo.crf_params), as evaluate's crf=on")
    predict.add_argument("--ignore-below", type=float, metavar="CONFIDENCE",
                         help="label pixels less confident than this pseudo.ignore_index (255); default: none")
    predict.add_argument("--confidence", action="store_true", help="also write confidence/<name>.npy (float16)")
    predict.add_argument("--overlays", action="store_true", help="also write overlays/<name>.png (image | confidence | prediction)")
    predict.add_argument("--batch-size", type=positive_int(4096), default=1, help="images of one size per forward (default: 1)")
    predict.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    predict.set_defaults(handler=run_predict)

    export = commands.add_parser("export-model", help="the trained model as ONNX (checked against PyTorch)")
    export.add_argument("--format", choices=("onnx",), default="onnx", help="onnx (dynamic batch, height and width)")
    export.add_argument("--out", help="output file (default: <root>/artifacts/export/model.onnx)")
    export.add_argument("--root", default=".", help="pipeline repository (default: .)")
    export.add_argument("--model", help="trained checkpoint (default: <root>/artifacts/train/model.pth)")
    export.add_argument("--record", help="its model.json (default: beside the checkpoint)")
    export.add_argument("--check-images", nargs="+", help="photos to compare on (default: the sample's four photos)")
    export.set_defaults(handler=run_export_model)

