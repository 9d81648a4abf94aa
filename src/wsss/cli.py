"""`wsss` console script.

The daily loop: `wsss run [STAGE ...]`, `wsss relabel`, `wsss serve`, `wsss status`, `wsss metrics`
(`wsss.loop`). `wsss demo` runs the core end to end on the embedded sample photos: CLIP-ES CAMs, CAA,
pseudo masks (dense CRF when pydensecrf is installed), mIoU where ground truth exists, and
overlay PNGs. It always says which CLIP weights it used.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wsss.errors import WsssError

# Everything heavy (torch, open_clip, numpy, PIL) is imported by the command that needs it, so
# `wsss --help` and `wsss lineage` start at once.
if TYPE_CHECKING:
    from wsss.params import Params


def _load_params(path: str | None) -> Params:
    from wsss.params import Params, load_params

    return Params() if path is None else load_params(path)


def run_demo(args: argparse.Namespace) -> int:
    """CAMs, CAA and pseudo masks for the sample photos; writes PNGs and summary.json."""
    import numpy as np
    from PIL import Image

    from wsss.cam import ClipEsCamExtractor
    from wsss.inference.clip_weights import crf_available, resolve_weights
    from wsss.io.atomic import write_bytes_atomic, write_text_atomic
    from wsss.io.overlay_inputs import weights_are_random
    from wsss.io.pseudo_store import png_bytes
    from wsss.metrics import ConfusionAccumulator
    from wsss.palette import palette_png_bytes
    from wsss.pseudo import pseudo_label
    from wsss.sample import sample_images
    from wsss.text import REFERENCE_TEMPLATE
    from wsss.viz import OverlayInputs, overlay_figure

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    params = _load_params(args.params)
    clip, weights_note = resolve_weights(args, params)
    print(f"CLIP weights: {weights_note}")
    random_weights = weights_are_random(clip.identity())
    vocabulary = params.vocabulary
    template = params.prompts.pin or REFERENCE_TEMPLATE  # no prompts stage here: the pinned (reference) template
    extractor = ClipEsCamExtractor(clip, vocabulary, replace(params.cam, templates=(template,)), params.caa)
    settings = replace(params.pseudo, crf=crf_available(params.pseudo.crf and not args.no_crf))
    argmax_only = replace(settings, crf=False, confidence_threshold=None)
    cam_scores = ConfusionAccumulator(vocabulary.num_classes + 1)
    mask_scores = ConfusionAccumulator(vocabulary.num_classes + 1)
    images = []
    for sample in sample_images():
        ids = [vocabulary.class_id(tag) for tag in sample.tags]
        started = time.perf_counter()
        result = extractor.extract(Image.fromarray(sample.rgb), ids)
        cam_seconds = time.perf_counter() - started
        assert result.refined is not None
        refined = result.refined.astype(np.float16)  # as the pipeline stores them
        pseudo = pseudo_label(sample.rgb, refined, result.class_ids, settings)
        write_bytes_atomic(out / f"{sample.image_id}_mask.png", palette_png_bytes(pseudo.labels))
        figure = overlay_figure(
            OverlayInputs(
                rgb=sample.rgb,
                maps=result.refined,
                tags=list(sample.tags),
                class_names=vocabulary.class_names,
                probabilities=[float(p) for p in result.tag_probabilities],
                pseudo_labels=pseudo.labels,
                ground_truth=sample.ground_truth,
                random_weights=random_weights,
                title=f"{sample.image_id}  |  CLIP weights: {clip.identity()['weights']}",
            )
        )
        write_bytes_atomic(out / f"{sample.image_id}_overlay.png", png_bytes(figure))
        images.append(
            {
                "image_id": sample.image_id,
                "source": sample.source,
                "tags": list(sample.tags),
                "size": list(result.original_size),
                "token_grid": list(result.grid),
                "tag_probabilities": [round(float(p), 6) for p in result.tag_probabilities],
                "cam_seconds": round(cam_seconds, 3),
                "ignored_fraction": round(float((pseudo.labels == settings.ignore_index).mean()), 4),
            }
        )
        if sample.ground_truth is not None:
            cam_scores.update(sample.ground_truth, pseudo_label(None, refined, result.class_ids, argmax_only).labels)
            mask_scores.update(sample.ground_truth, pseudo.raw_labels)
        print(f"{sample.image_id}: tags={','.join(sample.tags)} cams in {cam_seconds:.2f}s -> {out}")
    summary = {
        "clip": clip.identity(),
        "weights_note": weights_note,
        "crf": settings.crf,
        "images": images,
        "params": args.params,
        f"miou_refined_cams_alpha{settings.background_alpha:g}": cam_scores.scores().mean_iou,
        f"miou_pseudo_masks_{'crf' if settings.crf else 'nocrf'}": mask_scores.scores().mean_iou,
    }
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2, default=float))
    print(f"summary: {out / 'summary.json'} (weights: {weights_note})")
    return 0


def run_lineage(args: argparse.Namespace) -> int:
    """Which model, prompts, params, code and input produced this image's maps and mask."""
    from wsss.lineage import format_lineage, image_lineage

    if args.diff:
        from wsss.lineage_diff import format_mask_diff, mask_diff

        revision_a, revision_b = args.diff
        diff = mask_diff(args.root, revision_a, revision_b, cache=args.cache)
        print(json.dumps(diff, indent=1, sort_keys=True) if args.json else format_mask_diff(diff))
        return 0
    if not args.image_id:
        raise WsssError("lineage: give an image id, or --diff REV_A REV_B")
    lineage = image_lineage(args.image_id, args.root)
    print(json.dumps(lineage, indent=1, sort_keys=True, default=str) if args.json else format_lineage(lineage))
    return 1 if lineage["problems"] and args.strict else 0


def run_inspect(args: argparse.Namespace) -> int:
    """Summary table of an HDF5 shard (or every shard of a store directory)."""
    from wsss.io import CamStore, summarize

    path = Path(args.path)
    directory = path if path.is_dir() else path.parent
    rows = [r for r in summarize(directory) if path.is_dir() or r.get("file") == path.name]
    if not rows:
        raise WsssError(f"{path}: no shard files found")
    for row in rows:
        print(f"{row['file']}: {row.get('images', '?')} images, {row.get('size_bytes', 0) / 1e6:.2f} MB, compression={row.get('compression')}")
        if "error" in row:
            print(f"  ERROR: {row['error']}")
            continue
        for name, info in (row.get("datasets") or {}).items():
            print(f"  {name:10s} shape={info.get('shape')} dtype={info.get('dtype')} chunks={info.get('chunks')} fletcher32={info.get('fletcher32')}")
        attrs = CamStore(directory).root_attrs(directory / row["file"])
        for key in ("stage", "params_sha256", "template", "input_manifest_sha256", "flow_run_id"):
            if key in attrs:
                print(f"  {key}: {attrs[key]}")
        if "clip" in attrs:
            print(f"  clip: {attrs['clip']}")
        if "code_version" in attrs:
            print(f"  code_version: {attrs['code_version']}")
    if args.verify:
        problems = CamStore(directory).verify()
        print("verify: " + ("ok" if not problems else "\n  ".join(["FAILED", *problems])))
        return 1 if problems else 0
    return 0


def run_overlay(args: argparse.Namespace) -> int:
    """PNG of the image, its refined map per tag (+ probability), pseudo mask and GT, with a legend."""
    import numpy as np

    from wsss.bounded_parsing import read_json_file
    from wsss.catalog import ArtifactLayout
    from wsss.datasets import GroundTruthFiles, Manifest, safe_join
    from wsss.imaging import load_rgb
    from wsss.io import CamStore
    from wsss.io.atomic import write_bytes_atomic
    from wsss.io.overlay_inputs import stored_overlay_inputs
    from wsss.io.pseudo_store import PseudoMaskStore, png_bytes
    from wsss.viz import overlay_figure

    layout = ArtifactLayout(Path(args.root))
    manifest = Manifest.from_json(layout.manifest.read_text(), str(layout.manifest))
    meta: dict[str, Any] = read_json_file(layout.manifest_meta)
    record = next((r for r in manifest.records if r.image_id == args.image_id), None)
    if record is None:
        raise WsssError(f"image {args.image_id!r} is not in {layout.manifest}")
    dataset_root = layout.repo / meta["root"]
    rgb = np.asarray(load_rgb(safe_join(dataset_root, record.image_path)))
    truth = None
    if record.ground_truth_path:  # the one GT reader: dataset masks and derived COCO masks alike
        truth = GroundTruthFiles(dataset_root, layout.ground_truth).read(record, len(manifest.class_names))
    masks = PseudoMaskStore(layout.pseudo)
    inputs = stored_overlay_inputs(
        args.image_id,
        rgb,
        CamStore(layout.refined),
        manifest.class_names,
        cams=CamStore(layout.cams) if layout.cams.is_dir() else None,
        pseudo_labels=masks.labels(args.image_id) if masks.has_mask(args.image_id) else None,
        ground_truth=truth,
    )
    out = Path(args.out or f"{args.image_id}_overlay.png")
    write_bytes_atomic(out, png_bytes(overlay_figure(inputs)))
    panels = ["image", f"{len(inputs.tags)} refined map(s)"]
    panels += ["pseudo mask"] * (inputs.pseudo_labels is not None) + ["ground truth"] * (truth is not None)
    print(f"wrote {out} ({' | '.join(panels)}{'; RANDOM CLIP weights' if inputs.random_weights else ''})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from wsss.inference.clip_weights import add_weights_arguments  # argparse only

    parser = argparse.ArgumentParser(prog="wsss", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the CLIP-ES core on the embedded sample photos")
    demo.add_argument("--out", default="outputs/demo", help="output folder")
    add_weights_arguments(demo)
    demo.add_argument("--params", help="params.yaml with clip/classes/cam/pseudo sections (default: built-in defaults)")
    demo.add_argument("--no-crf", action="store_true", help="skip the dense CRF")
    demo.set_defaults(handler=run_demo)

    lineage = commands.add_parser("lineage", help="how one image's maps and mask were produced")
    lineage.add_argument("image_id", nargs="?", help="the image (its id in the manifest)")
    lineage.add_argument(
        "--diff", nargs=2, metavar=("REV_A", "REV_B"), help="images whose pseudo mask changed between two git/DVC revisions, and why"
    )
    lineage.add_argument("--cache", help="DVC cache directory for --diff (default: <root>/.dvc/cache)")
    lineage.add_argument("--root", default=".", help="pipeline repository (default: .)")
    lineage.add_argument("--json", action="store_true", help="machine-readable output")
    lineage.add_argument("--strict", action="store_true", help="exit 1 when the artifacts disagree")
    lineage.set_defaults(handler=run_lineage)

    inspect = commands.add_parser("inspect", help="summary of an HDF5 shard or store directory")
    inspect.add_argument("path", help="a shard file (shard-00000.h5) or a store directory (artifacts/cams)")
    inspect.add_argument("--verify", action="store_true", help="read every map and check checksums")
    inspect.set_defaults(handler=run_inspect)

    overlay = commands.add_parser("overlay", help="write image + refined maps + pseudo mask as a PNG")
    overlay.add_argument("image_id", help="the image (its id in the manifest)")
    overlay.add_argument("--root", default=".", help="pipeline repository (default: .)")
    overlay.add_argument("--out", help="output PNG (default: <image_id>_overlay.png)")
    overlay.set_defaults(handler=run_overlay)

    from wsss.review.cli import register as register_review  # argparse only; handlers import lazily

    register_review(commands)
    from wsss.inference.cli import register as register_inference  # predict, segment, export-model

    register_inference(commands)
    from wsss.loop.cli import register as register_loop  # run, relabel, serve, status, metrics

    register_loop(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except WsssError as error:
        log = None
        if getattr(args, "log_name", None):  # the loop commands keep the traceback (library chains) out of the console
            from wsss.catalog import ArtifactLayout
            from wsss.error_log import record_traceback

            log = record_traceback(ArtifactLayout().log_file(args.log_name), error, f"wsss {args.command}")
        from wsss.error_log import one_line

        print(one_line(error, log), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
