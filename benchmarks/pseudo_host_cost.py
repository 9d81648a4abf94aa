"""The `pseudo` stage's per-image cost outside the dense CRF, for one or more source trees.

Per VOC-like image (real photos at VOC sizes, 1-3 tags, float16 refined maps in [0, 1] as the
refine stage stores them), CPU ms (process time, one thread) of what a pseudo job does after
reading the maps: `pseudo_label` with the shipped settings (dense CRF on: range checks, the
background score, the reference's CRF image, the CRF, arg-max and confidence), the summary row
(`mask_row`) and the bytes of the three files it writes (two palette PNGs and the float16
confidence). The CRF inference itself (`dense_crf`, pydensecrf's C++) is timed alone on the same
inputs; "outside the CRF" is the difference. Each tree is measured in its own process, round-robin
over `--rounds`, so machine noise hits all alike; compare an older checkout with
`git worktree add /tmp/base <rev>` and `--tree /tmp/base --tree .`.

    python -m benchmarks.pseudo_host_cost [--tree DIR ...] [--images 12] [--rounds 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import ROOT, json_option, voc_like_images, write_json


def refined_maps(height: int, width: int, tags: int, rng: np.random.Generator) -> np.ndarray:
    """`(tags, H, W)` float16 maps in [0, 1]: a smooth blob per tag over a low floor, like CAA output."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    maps = []
    for _ in range(tags):
        centre_row, centre_col = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
        spread = rng.uniform(0.1, 0.3) * max(height, width)
        maps.append(np.exp(-((rows - centre_row) ** 2 + (cols - centre_col) ** 2) / (2 * spread**2)))
    return np.clip(np.stack(maps), 0, 1).astype(np.float16)


def measure(images: int, seed: int) -> dict[str, float]:
    """Median CPU ms per image in this process (the tree on PYTHONPATH is the one measured)."""
    import torch

    torch.set_num_threads(1)
    from wsss.io.pseudo_store import mask_row, npy_bytes
    from wsss.palette import palette_png_bytes
    from wsss.pseudo.crf import dense_crf, reference_crf_image
    from wsss.pseudo.labels import scores_with_background
    from wsss.pseudo.settings import PseudoSettings
    from wsss.pseudo.step import pseudo_label

    settings, rng = PseudoSettings(), np.random.default_rng(seed)
    inputs = []
    for item in voc_like_images(images, seed=seed):
        rgb = np.asarray(item.image.convert("RGB"))
        inputs.append((item.image_id, rgb, refined_maps(*rgb.shape[:2], len(item.class_ids), rng), np.asarray(item.class_ids, np.int64)))
    totals, crfs = [], []
    for image_id, rgb, cams, class_ids in inputs:
        started = time.process_time()
        label = pseudo_label(rgb, cams, class_ids, settings)
        mask_row(image_id, label, ["tag"] * len(class_ids), "0" * 64, settings.ignore_index)
        palette_png_bytes(label.labels), palette_png_bytes(label.raw_labels), npy_bytes(label.confidence.astype(np.float16))
        totals.append(time.process_time() - started)
        crf_image, probabilities = reference_crf_image(rgb), scores_with_background(cams, alpha=1.0)
        started = time.process_time()
        dense_crf(crf_image, probabilities, settings.crf_params)
        crfs.append(time.process_time() - started)
    outside = [total - crf for total, crf in zip(totals, crfs, strict=True)]
    return {
        "total_ms": 1000 * statistics.median(totals),
        "crf_ms": 1000 * statistics.median(crfs),
        "outside_crf_ms": 1000 * statistics.median(outside),
    }


def run_tree(tree: Path, images: int, seed: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{ROOT}", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "benchmarks.pseudo_host_cost", "--measure", "--images", str(images), "--seed", str(seed)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"{tree}: the measurement failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, action="append", help="source tree (repeatable; default: this repository)")
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)  # one measurement, JSON on stdout
    json_option(parser)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.images, args.seed)))
        return 0
    trees = [tree.resolve() for tree in (args.tree or [ROOT])]
    rounds: dict[str, list[dict[str, float]]] = {str(tree): [] for tree in trees}
    for _ in range(args.rounds):
        for tree in trees:
            rounds[str(tree)].append(run_tree(tree, args.images, args.seed))
    figures: dict[str, Any] = {"images": args.images, "rounds": args.rounds, "load_average": os.getloadavg(), "trees": {}}
    print(f"pseudo per image, CPU ms (median over images, then over {args.rounds} rounds); {args.images} VOC-like images")
    print(f"{'tree':<40} {'total':>9} {'CRF':>9} {'outside CRF':>12}")
    for tree, runs in rounds.items():
        row = {key: round(statistics.median(run[key] for run in runs), 2) for key in runs[0]}
        figures["trees"][tree] = {**row, "runs": runs}
        print(f"{tree:<40} {row['total_ms']:>9.1f} {row['crf_ms']:>9.1f} {row['outside_crf_ms']:>12.1f}")
    if len(trees) > 1:
        first, last = (figures["trees"][str(t)]["outside_crf_ms"] for t in (trees[0], trees[-1]))
        figures["outside_crf_ratio_first_over_last"] = round(first / last, 2)
        print(f"outside the CRF: {trees[0]} / {trees[-1]} = {first / last:.2f}x")
    write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
