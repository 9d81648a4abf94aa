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
from wsss.inference.checks import checked, mmseg_module

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


def run_predict(args: argparse.Namespace) -> int:
    """The trained segmenter on new images: label PNGs (+ confidence, overlays), failures.json."""
    from wsss.inference.predict_request import PredictRequest, predict_images

    fields = (
        "inputs",
        "out",
        "file_list",
        "root",
        "model",
        "record",
        "scales",
        "crf",
        "ignore_below",
        "confidence",
        "overlays",
        "batch_size",
        "device",
        "max_failed_share",
    )
    predict_images(PredictRequest(**{name: getattr(args, name) for name in fields}), command_params(args))
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
        print(
            f"  {row['image']} {row['size'][0]}x{row['size'][1]}: max |logit diff| {row['max_abs_logit_diff']:.2e} "
            f"(logits up to {row['max_abs_logit']:.1f}), labels agree on {row['label_agreement']:.4%}"
        )
    verdict = "ok" if check.within() else "FAILED"
    print(
        f"exported {destination} ({destination.stat().st_size / 1e6:.1f} MB, {len(model.class_names)} classes); "
        f"onnxruntime vs PyTorch on {len(photos)} photos: max |logit diff| {check.max_abs_logit_diff:.2e} "
        f"(tolerance {export.LOGIT_TOLERANCE:g}), labels agree on {check.label_agreement:.4%} "
        f"(at least {export.MIN_LABEL_AGREEMENT:.1%}): {verdict}"
    )
    return 0 if check.within() else 1


def segment_params(args: argparse.Namespace) -> Params:
    """The command's params with `--classes` / `--class-names` as the `classes` section (validated as params are)."""
    from wsss.text.classes import ClassesSettings

    params = command_params(args)
    if args.classes and args.class_names:
        raise ConfigError("--classes and --class-names: give one (a preset, or your own class list)")
    if args.classes:
        params = params.replace(classes=checked("--classes", lambda: ClassesSettings(preset=args.classes)))
    elif args.class_names:
        names = tuple(name.strip() for name in args.class_names.split(",") if name.strip())
        params = params.replace(classes=checked("--class-names", lambda: ClassesSettings(names=names)))
    if args.no_crf:
        params = params.replace(pseudo=replace(params.pseudo, crf=False))
    return params


def image_tags(args: argparse.Namespace, params: Params, failures: Any) -> tuple[list[Any], dict[str, tuple[str, ...]]]:
    """The images and each one's tags: `--tags` for all of them, or the tags file's row whose last path
    component is the image's file name (without image arguments, the rows themselves are the images,
    relative to the tags file's folder). An image without a row, or with a tag that is not a class, is
    that image's failure; a tag of `--tags` that is not a class stops the command."""
    from wsss.datasets.folder import parse_tags_csv, parse_tags_json
    from wsss.datasets.records import check_tags, read_text, unique_in_order
    from wsss.errors import DatasetError
    from wsss.inference.inputs import collect_images

    if bool(args.tags) == bool(args.tags_file):
        raise ConfigError("give the tags: --tags cat,dog (every image) or --tags-file tags.csv (image,tags per row)")
    rename, class_names = params.vocabulary.rename, params.vocabulary.class_names
    if args.tags:
        shared = unique_in_order(rename.get(t.strip(), t.strip()) for t in args.tags.split(",") if t.strip())
        check_tags("every image", shared, class_names, "--tags", f" (classes: {', '.join(class_names)})")
        images = collect_images(args.inputs, Path(args.file_list) if args.file_list else None, failures)
        return images, {image.name: shared for image in images}
    tags_file = Path(args.tags_file)
    text = read_text(tags_file, "tags file")
    rows = parse_tags_json(text, tags_file) if tags_file.suffix.lower() == ".json" else parse_tags_csv(text, tags_file)
    by_file = {Path(image).name: (tags, where) for image, tags, where in rows}
    arguments = args.inputs or [str(tags_file.parent / image) for image, _, _ in rows]
    images = collect_images(arguments, Path(args.file_list) if args.file_list else None, failures)
    kept, tags = [], {}
    for image in images:
        try:
            if image.path.name not in by_file:
                raise DatasetError(f"{tags_file}: no row for {image.path.name}")
            row, where = by_file[image.path.name]
            row = unique_in_order(rename.get(tag, tag) for tag in row)
            check_tags(image.name, row, class_names, f"{tags_file}: {where}")
        except DatasetError as error:
            failures.add(image.name, str(image.path), str(error))
            continue
        kept.append(image)
        tags[image.name] = row
    return kept, tags


def run_segment(args: argparse.Namespace) -> int:
    """CLIP-ES masks (+ confidence, refined maps, overlays) for your own photos and tags."""
    from wsss.failures import FailureReport
    from wsss.inference.clip_weights import crf_available, resolve_weights
    from wsss.inference.outputs import OutputFolder, progress_bar
    from wsss.inference.segment import SegmentRequest, segment_images
    from wsss.text import REFERENCE_TEMPLATE

    params = segment_params(args)
    max_failed_share = params.reliability.max_failed_share if args.max_failed_share is None else args.max_failed_share
    checked("--max-failed-share", lambda: replace(params.reliability, max_failed_share=max_failed_share))
    failures = FailureReport("segment")
    images, tags = image_tags(args, params, failures)
    total = len(images) + len(failures.failed_images())
    template = args.template or params.prompts.pin or REFERENCE_TEMPLATE  # no prompts stage: the pinned (reference) one
    if "{}" not in template:
        raise ConfigError(f"--template {template!r} has no '{{}}' for the class name")
    out = OutputFolder(Path(args.out), "segment")
    out.logger()
    params = params.replace(pseudo=replace(params.pseudo, crf=crf_available(params.pseudo.crf)))
    clip, weights_note = resolve_weights(args, params)
    print(f"CLIP weights: {weights_note}")
    request = SegmentRequest(images, tags, template, keep_stores=args.hdf5, overlays=not args.no_overlays)
    with progress_bar(len(images), "segment") as advance:
        summary = segment_images(request, params, clip, out, failures, advance)
    print(
        f"segment: {summary['written']} of {total} images -> {out.root}/masks (template {template!r}, "
        f"crf {'on' if params.pseudo.crf else 'off'}{', stores in cams/ and refined/' if args.hdf5 else ''})"
        + ("; RANDOM CLIP WEIGHTS: the masks are not meaningful" if summary["random_weights"] else "")
        + (f"; {len(failures.failures)} failed, see {out.failures}" if failures.failures else "")
    )
    out.settle(failures, total, max_failed_share)
    return 0


def add_image_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", help="image files, folders (their images) and glob patterns ('photos/**/*.jpg')")
    parser.add_argument("--file-list", help="a text file naming one image per line (relative to the list's folder)")
    parser.add_argument("--root", default=".", help="pipeline repository: params.yaml, artifacts (default: .)")
    parser.add_argument("--params", help="params file (default: <root>/params.yaml when present, else the defaults)")
    parser.add_argument("--max-failed-share", type=float, help="exit 2 when more images fail (default: reliability.max_failed_share)")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the predict, segment and export-model subcommands to the `wsss` parser."""
    predict = commands.add_parser("predict", help="segment new images with the trained model (as evaluate runs it)")
    add_image_arguments(predict)
    predict.add_argument("--out", default="outputs/predict", help="output folder (default: outputs/predict)")
    predict.add_argument("--model", help="trained checkpoint (default: <root>/artifacts/train/model.pth)")
    predict.add_argument("--record", help="its model.json (default: beside the checkpoint)")
    predict.add_argument("--scales", type=float_list, help="test scales fused by max, first 1 (default: the model's train.test_scales)")
    predict.add_argument("--crf", action="store_true", help="dense CRF on the softmax (pseudo.crf_params), as evaluate's crf=on")
    predict.add_argument(
        "--ignore-below", type=float, metavar="CONFIDENCE", help="label pixels less confident than this pseudo.ignore_index (255); default: none"
    )
    predict.add_argument("--confidence", action="store_true", help="also write confidence/<name>.npy (float16)")
    predict.add_argument("--overlays", action="store_true", help="also write overlays/<name>.png (image | confidence | prediction)")
    predict.add_argument("--batch-size", type=positive_int(4096), default=1, help="images of one size per forward (default: 1)")
    predict.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    predict.set_defaults(handler=run_predict)

    segment = commands.add_parser("segment", help="CLIP-ES masks for your own photos and tags (the pipeline's steps)")
    add_image_arguments(segment)
    segment.add_argument("--tags", help="comma-separated tags of every image (class names)")
    segment.add_argument("--tags-file", help="CSV (image,tags with ';') or JSON of tags per image file name")
    segment.add_argument("--classes", choices=("sample", "voc", "coco"), help="a class-list preset (default: the params' classes)")
    segment.add_argument("--class-names", help="your own comma-separated class list instead of a preset")
    segment.add_argument("--template", help="prompt template with {} (default: prompts.pin, the reference's)")
    segment.add_argument("--out", default="outputs/segment", help="output folder (default: outputs/segment)")
    segment.add_argument("--hdf5", action="store_true", help="keep the CAM and refined stores (cams/, refined/ shards)")
    segment.add_argument("--no-overlays", action="store_true", help="skip overlays/<name>.png")
    segment.add_argument("--no-crf", action="store_true", help="skip the dense CRF (pseudo.crf)")
    from wsss.inference.clip_weights import add_weights_arguments  # argparse only

    add_weights_arguments(segment)
    segment.set_defaults(handler=run_segment)

    export = commands.add_parser("export-model", help="the trained model as ONNX (checked against PyTorch)")
    export.add_argument("--format", choices=("onnx",), default="onnx", help="onnx (dynamic batch, height and width)")
    export.add_argument("--out", help="output file (default: <root>/artifacts/export/model.onnx)")
    export.add_argument("--root", default=".", help="pipeline repository (default: .)")
    export.add_argument("--model", help="trained checkpoint (default: <root>/artifacts/train/model.pth)")
    export.add_argument("--record", help="its model.json (default: beside the checkpoint)")
    export.add_argument("--check-images", nargs="+", help="photos to compare on (default: the sample's four photos)")
    export.set_defaults(handler=run_export_model)
