"""Iterations/s and memory of the full DeepLabV2-R101 recipe (crop 321, batch 10) with the CGL loss.

Runs `src/wsss_mmseg/configs/deeplabv2_r101_voc_pseudo.py` unchanged except for the schedule
length (and `--batch`/`--crop` if given) through `wsss_mmseg.training` (mmengine Runner, exactly
what the `train` stage runs) on a synthetic VOC-like set: real photos from `skimage.data`
resized to 500x375 with blocky random pseudo masks (21 classes, some 255) and confidence maps.
Speed does not depend on pixel values or weights (random init: nothing is downloaded).

Prints the median seconds/iteration after `--warmup` iterations (mmengine's IterTimerHook
`time`, logged every iteration), iterations/s, images/s, data-loading share, and peak memory:
CUDA `max_memory_allocated` (mmengine's `memory`, MiB) on a GPU, peak RSS on CPU.

Usage: python -m benchmarks.deeplabv2_train_speed [--iters 200] [--warmup 10] [--batch 10]
       [--crop 321] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.common import json_option, source_photos, timed, write_json
from wsss.text import voc_vocabulary
from wsss_mmseg import CONFIG_DIR
from wsss_mmseg.training import build_train_config, train_segmenter

VOC_CLASSES = ("background", *voc_vocabulary().class_names)


def write_synthetic_voc(root: Path, count: int, seed: int = 0) -> None:
    """`count` 500x375 photos with blocky pseudo masks and confidences in the VOC layout."""
    photos = source_photos()
    rng = np.random.default_rng(seed)
    for folder in ("JPEGImages", "pseudo_masks", "confidence", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    ids = []
    for index in range(count):
        image_id = f"img_{index:04d}"
        photo = Image.fromarray(photos[index % len(photos)]).convert("RGB").resize((500, 375), Image.BICUBIC)
        photo.save(root / "JPEGImages" / f"{image_id}.jpg", quality=90)
        blocks = rng.integers(0, len(VOC_CLASSES), size=(375 // 25 + 1, 500 // 25 + 1))
        blocks[rng.random(blocks.shape) < 0.1] = 255
        mask = np.kron(blocks, np.ones((25, 25), dtype=np.int64))[:375, :500].astype(np.uint8)
        Image.fromarray(mask).save(root / "pseudo_masks" / f"{image_id}.png")
        confidence = np.where(mask == 255, 0.5, 1.0).astype(np.float16)
        np.save(root / "confidence" / f"{image_id}.npy", confidence)
        ids.append(image_id)
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(ids) + "\n")


def logged_iterations(work_dir: Path) -> list[dict]:
    """Per-iteration scalars mmengine's LocalVisBackend wrote (`time`, `data_time`, `loss`, ...)."""
    files = sorted(work_dir.glob("*/vis_data/scalars.json"))
    if not files:
        raise FileNotFoundError(f"no scalars.json under {work_dir}")
    rows = [json.loads(line) for line in files[-1].read_text().splitlines() if line.strip()]
    return [row for row in rows if "time" in row]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=200, help="timed iterations (after warm-up)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--crop", type=int, default=321)
    parser.add_argument("--images", type=int, default=40, help="synthetic training images")
    parser.add_argument("--workers", type=int, default=4, help="dataloader workers")
    json_option(parser)
    args = parser.parse_args()

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    with tempfile.TemporaryDirectory(prefix="deeplabv2-speed-") as temp:
        data_root = Path(temp) / "voc"
        write_synthetic_voc(data_root, args.images)
        total = args.warmup + args.iters
        cfg = build_train_config(
            CONFIG_DIR / "deeplabv2_r101_voc_pseudo.py",
            Path(temp) / "work",
            data_root=data_root,
            image_dir="JPEGImages",
            mask_dir="pseudo_masks",
            split_file="ImageSets/Segmentation/train.txt",
            class_names=VOC_CLASSES,
            confidence_dir="confidence",
            max_iters=total,
            batch_size=args.batch,
            crop_size=args.crop,
            checkpoint_interval=total,
            num_workers=args.workers,
            cfg_options={"default_hooks.logger.interval": 1},
        )
        wall, _ = timed(lambda: train_segmenter(cfg))
        rows = logged_iterations(Path(temp) / "work")

    measured = rows[args.warmup :] or rows
    seconds = statistics.median(row["time"] for row in measured)
    data_seconds = statistics.median(row.get("data_time", 0.0) for row in measured)
    if torch.cuda.is_available():
        memory = f"{max(row.get('memory', 0) for row in rows)} MiB CUDA max_memory_allocated"
    else:
        memory = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB peak RSS (this process)"
    result = {
        "device": device,
        "config": "deeplabv2_r101_voc_pseudo.py",
        "batch": args.batch,
        "crop": args.crop,
        "iterations_timed": len(measured),
        "seconds_per_iteration": round(seconds, 4),
        "iterations_per_second": round(1.0 / seconds, 4),
        "images_per_second": round(args.batch / seconds, 3),
        "data_time_share": round(data_seconds / seconds, 4),
        "first_loss": rows[0].get("loss"),
        "last_loss": rows[-1].get("loss"),
        "memory": memory,
        "wall_seconds_incl_setup": round(wall, 1),
    }
    for key, value in result.items():
        print(f"{key:>26}: {value}")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
