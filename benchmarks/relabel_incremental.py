"""Wall time of an incremental relabel of 1 new image vs a full relabel of the whole folder dataset.

Builds a folder dataset of N real photos (crops of `skimage.data` images) in a temporary
directory, runs `flows.relabel` once from nothing (the full run: every image through CAMs,
CAA, CRF pseudo masks), adds one image and runs it again (the incremental run), and prints both
wall times and their ratio. Random-init CLIP unless --checkpoint is given. Run from the repository:

    python -m benchmarks.relabel_incremental [--images 12] [--max-side 448] [--json PATH]
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
from pathlib import Path

import numpy as np
import yaml
from PIL import Image
from skimage import data as skdata

from benchmarks.common import ROOT as REPO
from benchmarks.common import json_option, timed, write_json

PHOTOS = (("astronaut", "person"), ("chelsea", "cat"), ("coffee", "cup"), ("rocket", "rocket"))


def write_dataset(root: Path, count: int) -> dict[str, str]:
    """`count` distinct crops (different offsets) of four photos; returns file name -> tag."""
    tags = {}
    for index in range(count):
        name, tag = PHOTOS[index % len(PHOTOS)]
        pixels = getattr(skdata, name)()[..., :3]
        offset = 8 * (index // len(PHOTOS))
        crop = pixels[offset : offset + 380, offset : offset + 380]
        file = f"{name}_{index:03d}.jpg"
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(crop)).save(root / "images" / file, quality=90)
        tags[file] = tag
    with open(root / "tags.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "tags"])
        writer.writerows(sorted(tags.items()))
    return tags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=12, help="images in the full run (default 12)")
    parser.add_argument("--max-side", type=int, default=448, help="cam.max_side (default 448)")
    parser.add_argument("--checkpoint", help="CLIP ViT-B/16 file (default: random init)")
    json_option(parser)
    args = parser.parse_args()
    json_path = args.json.resolve() if args.json else None  # the run changes into a temporary folder
    work = Path(tempfile.mkdtemp(prefix="wsss-relabel-bench-"))
    os.environ.setdefault("PREFECT_HOME", str(work / ".prefect"))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(kind="folder", root="data/photos", images_dir="images", tags_file="tags.csv", ground_truth_dir=None)
    params["clip"].update(random_init=args.checkpoint is None, checkpoint=args.checkpoint)
    params["cam"]["max_side"] = args.max_side
    params["store"]["shard_count"] = 8
    params["pseudo"]["jobs"] = 1
    os.chdir(work)
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    tags = write_dataset(work / "data/photos", args.images + 1)
    extra = max(tags)
    del tags[extra]
    with open(work / "data/photos/tags.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "tags"])
        writer.writerows(sorted(tags.items()))

    from prefect import flow

    from flows.relabel import relabel_flow

    # Start the temporary Prefect server outside the timings (it lives for the whole process).
    flow(name="warm-up")(lambda: None)()
    full_s, full = timed(lambda: relabel_flow("params.yaml"))
    tags[extra] = PHOTOS[(args.images) % len(PHOTOS)][1]
    with open(work / "data/photos/tags.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "tags"])
        writer.writerows(sorted(tags.items()))
    incremental_s, incremental = timed(lambda: relabel_flow("params.yaml"))
    assert incremental["counts"]["added"] == 1 and len(incremental["cams"]["computed"]) == 1, incremental["counts"]
    print(f"workspace: {work}")
    print(
        f"full relabel of {args.images} images: {full_s:.1f} s wall (flow steps: "
        + ", ".join(f"{k} {v:.1f}" for k, v in full["durations"].items())
        + ")"
    )
    print(
        "incremental relabel of 1 new image: "
        f"{incremental_s:.1f} s wall (flow steps: " + ", ".join(f"{k} {v:.1f}" for k, v in incremental["durations"].items()) + ")"
    )
    print(f"ratio incremental / full: {incremental_s / full_s:.3f}")
    write_json(
        json_path,
        {
            "images": args.images,
            "workspace": str(work),
            "full_s": full_s,
            "full_steps_s": full["durations"],
            "incremental_s": incremental_s,
            "incremental_steps_s": incremental["durations"],
            "ratio": incremental_s / full_s,
        },
    )


if __name__ == "__main__":
    main()
