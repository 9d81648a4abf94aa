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
    """Progress on stderr (about every 10 %), so stdout holds only the table or the JSON."""
    if done == total or done % max(100, total // 10) == 0:
        print(f"  {done}/{total} images analysed", file=sys.stderr, flush=True)


def mark_reviewed(args: argparse.Namespace, outputs: Any) -> None:
    """`--mark-reviewed` / `--unmark-reviewed`: every id checked before `reviewed.json` is written."""
    if args.mark_reviewed:
        marked = outputs.reviewed.mark(args.mark_reviewed, outputs.review_facts(args.mark_reviewed))
        print(
            f"marked {len(marked)} image(s) reviewed in {outputs.reviewed.path}: they leave the worst-first queue "
            "while image and pseudo mask stay as they are (commit the file)",
            file=sys.stderr,
        )
    if args.unmark_reviewed:
        removed = outputs.reviewed.unmark(args.unmark_reviewed)
        print(f"took back {len(removed)} review mark(s) in {outputs.reviewed.path}: back in the queue", file=sys.stderr)


def run_review(args: argparse.Namespace) -> int:
    """Write the review report (and/or print the worst images by triage score). `--worst N` lists
    the first N of the queue: images neither corrected nor marked reviewed."""
    from wsss.review.build import build_review

    outputs = _outputs(args)
    mark_reviewed(args, outputs)
    marked = bool(args.mark_reviewed or args.unmark_reviewed)  # the report is rewritten: it shows the queue
    out = Path(args.out) if args.out else (None if args.worst and not marked else outputs.layout.review)
    result = build_review(outputs, out, jobs=args.jobs, max_side=args.max_side, progress=None if args.json else _progress)
    worst = [r for r in result.records if r.state == "to review"][: args.worst] if args.worst else []
    if args.json:
        print(
            json.dumps(
                [
                    {"rank": rank + 1, **{k: getattr(r, k) for k in ("image_id", "triage_score", "triage_terms", "iou", "origin", "state")}}
                    for rank, r in enumerate(worst)
                ],
                indent=1,
            )
        )
    else:
        if worst:
            print(f"{'rank':>4}  {'triage':>6}  {'IoU':>5}  {'ignored':>7}  image")
            for rank, record in enumerate(worst, start=1):
                iou = "  -  " if record.iou is None else f"{record.iou:.3f}"
                print(f"{rank:>4}  {record.triage_score:.3f}  {iou}  {record.ignored_share:7.1%}  {record.image_id}")
        run = result.run
        done = run.num_corrected + run.num_reviewed
        if args.worst and done:
            print(f"{done} image(s) out of the queue: {run.num_corrected} human-corrected, {run.num_reviewed} marked reviewed")
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
    print(
        f"exported {len(images)} masks ({corrected} human-corrected) as {args.format}: "
        + ", ".join(str(p) for p in written[:3])
        + (f" (+{len(written) - 3} more)" if len(written) > 3 else "")
    )
    return 0


def run_import(args: argparse.Namespace) -> int:
    """Validate corrected masks (PNG or COCO RLE) and store them in the corrections store."""
    from wsss.review.corrections import import_corrections

    outputs = _outputs(args)
    records, notes = import_corrections(
        Path(args.source), outputs.corrections, outputs.image_specs, outputs.class_names, outputs.ignore_index, relative_to=Path(args.root)
    )
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    for record in records:
        print(f"{record.image_id}: {record.describe()} -> {outputs.corrections.directory / record.mask_file}")
    print(
        f"imported {len(records)} correction(s) into {outputs.corrections.directory}; training uses them from the next "
        "`dvc repro` / relabel retrain (commit the folder: `git add` or `dvc add`)"
    )
    if records and not args.no_report:
        refresh_report(args)
    return 0


def refresh_report(args: argparse.Namespace) -> None:
    """Rewrite the review report with what the corrections store holds now (as the review stage
    does), so the corrected images leave its queue; skipped, saying so, before any pseudo masks."""
    from wsss.review.build import build_review

    outputs = _outputs(args)  # read again: the store changed
    if not outputs.has_pseudo_summary():
        print(f"note: no pseudo masks yet ({outputs.layout.pseudo.summary}): no review report to refresh", file=sys.stderr)
        return
    result = build_review(outputs, outputs.layout.review, jobs=args.jobs, progress=_progress)
    print(f"report refreshed: {result.index_html} ({result.run.num_corrected} human-corrected, out of the queue)")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the review, export and import-corrections subcommands to the `wsss` parser."""

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--root", default=".", help="pipeline repository (default: .)")
        parser.add_argument("--corrections", default="corrections", help="corrections store, relative to --root (default: corrections)")

    review = commands.add_parser("review", help="HTML review report of the pseudo masks; worst-first triage")
    common(review)
    review.add_argument("--out", help="report folder (default: artifacts/review; with --worst only when given or marks change)")
    review.add_argument("--worst", type=int, metavar="N", help="print the N images with the lowest triage score")
    review.add_argument("--json", action="store_true", help="print --worst as JSON")
    review.add_argument("--jobs", type=int, default=1, help="worker processes (default: 1)")
    review.add_argument("--max-side", type=int, default=320, help="longer side of the report's panels in pixels")
    review.add_argument(
        "--mark-reviewed",
        nargs="+",
        default=[],
        metavar="ID",
        help="record in reviewed.json that these images' masks were looked at and accepted: they leave the queue",
    )
    review.add_argument("--unmark-reviewed", nargs="+", default=[], metavar="ID", help="take such marks back")
    review.set_defaults(handler=run_review)

    export = commands.add_parser("export", help="masks as COCO RLE JSON, CVAT zip, Label Studio tasks or palette PNGs")
    common(export)
    export.add_argument("--format", required=True, choices=FORMAT_CHOICES, help="what to write: " + ", ".join(FORMAT_CHOICES))
    export.add_argument("--out", help="output folder (default: artifacts/export/<format>)")
    export.add_argument(
        "--masks",
        choices=("training", "pseudo"),
        default="training",
        help="training: human corrections where they fit, else pseudo (default); pseudo: pseudo masks only",
    )
    export.add_argument(
        "--image-url-prefix", default="/data/local-files/?d=", help="Label Studio: prefix of each image's path relative to the dataset root"
    )
    export.set_defaults(handler=run_export)

    importer = commands.add_parser("import-corrections", help="store corrected masks (PNG or COCO RLE) for training")
    common(importer)
    importer.add_argument("source", help="<image_id>.png, a COCO JSON file, or a folder of them")
    importer.add_argument("--no-report", action="store_true", help="do not refresh the review report (artifacts/review) afterwards")
    importer.add_argument("--jobs", type=int, default=1, help="worker processes of the report refresh (default: 1)")
    importer.set_defaults(handler=run_import)
