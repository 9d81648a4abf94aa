"""`wsss review`, `wsss export`, `wsss import-corrections` (registered by `wsss.cli`).

Only argparse is imported at module level: the handlers import the review package when run, so
`wsss --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

FORMAT_CHOICES = ("coco", "cvat", "labelstudio", "png")


def _outputs(args: argparse.Namespace) -> Any:
    from wsss.review.sources import PipelineOutputs

    return PipelineOutputs.at(args.root, args.corrections)


def _progress(done: int, total: int) -> None:
    if done == total or done % 100 == 0:
        print(f"  {done}/{total} images", file=sys.stderr)


def run_review(args: argparse.Namespace) -> int:
    """Write the review report (and/or print the worst images by triage score)."""
    from wsss.review.build import build_review

    outputs = _outputs(args)
    out = Path(args.out) if args.out else (None if args.worst else outputs.layout.review)
    result = build_review(outputs, out, jobs=args.jobs, max_side=args.max_side, progress=None if args.json else _progress)
    worst = result.records[: args.worst] if args.worst else []
    if args.json:
        print(json.dumps([{"rank": rank + 1, **{k: getattr(r, k) for k in ("image_id", "triage_score", "triage_terms", "iou", "origin")}}
                          for rank, r in enumerate(worst)], indent=1))
    else:
        if worst:
            print(f"{'rank':>4}  {'triage':>6}  {'IoU':>5}  {'ignored':>7}  image")
            for rank, record in enumerate(worst, start=1):
                iou = "  -  " if record.iou is None else f"{record.iou:.3f}"
                flag = "  (human-corrected)" if record.origin == "human-corrected" else ""
                print(f"{rank:>4}  {record.triage_score:.3f}  {iou}  {record.ignored_share:7.1%}  {record.image_id}{flag}")
        run = result.run
        if run.triage_spearman is not None:
            print(f"Spearman(triage score, IoU) on {run.num_with_ground_truth} images with GT: {run.triage_spearman:.3f}")
        if result.index_html is not None:
            print(f"report: {result.index_html} ({run.num_images} images; open it in a browser, no server needed)")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Masks out as COCO RLE JSON, a CVAT Segmentation Mask zip, Label Studio tasks or palette PNGs."""
    from wsss.review.exports import ExportImage, export_folder, export_masks

    outputs = _outputs(args)
    out = export_folder(Path(args.out) if args.out else outputs.layout.exports / args.format)  # before any mask is read
    images = []
    for image_id in outputs.image_ids():
        record = outputs.records[image_id]
        if args.masks == "pseudo":
            def load(i: str = image_id) -> Any:
                return outputs.pseudo_mask(i)
            origin = "pseudo"
        else:
            origin = "human-corrected" if outputs.usable_correction(image_id) else "pseudo"

            def load(i: str = image_id) -> Any:
                return outputs.training_mask(i)[0]
        images.append(ExportImage(image_id, record.image_path, record.width, record.height, load, origin))
    written = export_masks(args.format, images, outputs.class_names, out, outputs.pseudo.ignore_index, args.image_url_prefix)
    corrected = sum(image.origin == "human-corrected" for image in images)
    print(f"exported {len(images)} masks ({corrected} human-corrected) as {args.format}: "
          + ", ".join(str(p) for p in written[:3]) + (f" (+{len(written) - 3} more)" if len(written) > 3 else ""))
    return 0


def run_import(args: argparse.Namespace) -> int:
    """Validate corrected masks (PNG or COCO RLE) and store them in the corrections store."""
    from wsss.review.corrections import import_corrections

    outputs = _outputs(args)
    records, notes = import_corrections(
        Path(args.source), outputs.corrections, outputs.image_specs, outputs.class_names, outputs.ignore_index,
        relative_to=Path(args.root),
    )
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    for record in records:
        print(f"{record.image_id}: {record.describe()} -> {outputs.corrections.directory / record.mask_file}")
    print(f"imported {len(records)} correction(s) into {outputs.corrections.directory}; training uses them from the next "
          "`dvc repro` / relabel retrain (commit the folder: `git add` or `dvc add`)")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the review, export and import-corrections subcommands to the `wsss` parser."""
    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--root", default=".", help="pipeline repository (default: .)")
        parser.add_argument("--corrections", default="corrections", help="corrections store, relative to --root (default: corrections)")

    review = commands.add_parser("review", help="HTML review report of the pseudo masks; worst-first triage")
    common(review)
    review.add_argument("--out", help="report folder (default: artifacts/review; with --worst only when given)")
    review.add_argument("--worst", type=int, metavar="N", help="print the N images with the lowest triage score")
    review.add_argument("--json", action="store_true", help="print --worst as JSON")
    review.add_argument("--jobs", type=int, default=1, help="worker processes (default: 1)")
    review.add_argument("--max-side", type=int, default=320, help="longer side of the report's panels in pixels")
    review.set_defaults(handler=run_review)

    export = commands.add_parser("export", help="masks as COCO RLE JSON, CVAT zip, Label Studio tasks or palette PNGs")
    common(export)
    export.add_argument("--format", required=True, choices=FORMAT_CHOICES)
    export.add_argument("--out", help="output folder (default: artifacts/export/<format>)")
    export.add_argument("--masks", choices=("training", "pseudo"), default="training",
                        help="training: human corrections where they fit, else pseudo (default); pseudo: pseudo masks only")
    export.add_argument("--image-url-prefix", default="/data/local-files/?d=",
                        help="Label Studio: prefix of each image's path relative to the dataset root")
    export.set_defaults(handler=run_export)

    importer = commands.add_parser("import-corrections", help="store corrected masks (PNG or COCO RLE) for training")
    common(importer)
    importer.add_argument("source", help="<image_id>.png, a COCO JSON file, or a folder of them")
    importer.set_defaults(handler=run_import)
