"""A small folder dataset of real photos (crops of `skimage.data` images) for relabel tests."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skdata

from tests.params_edit import with_values
from tests.pipeline.repos import pipeline_test_params

DATASET = Path("data/photos")
PAIR = ("astro_a", "cat_a")  # the photos of the session's relabeled pair (tests/pipeline/conftest.py)
# id -> (skimage photo, crop box top/left/size, tags); crops keep every file distinct.
PHOTOS: dict[str, tuple[str, tuple[int, int, int], tuple[str, ...]]] = {
    "astro_a": ("astronaut", (0, 0, 300), ("person",)),
    "astro_b": ("astronaut", (100, 150, 300), ("person",)),
    "cat_a": ("chelsea", (0, 0, 300), ("cat",)),
    "cat_b": ("chelsea", (0, 150, 300), ("cat",)),
    "cup_a": ("coffee", (0, 0, 380), ("cup",)),
    "cup_b": ("coffee", (20, 200, 380), ("cup",)),
    "rocket_a": ("rocket", (0, 0, 400), ("rocket",)),
    "rocket_b": ("rocket", (27, 100, 400), ("rocket",)),
}


def relabel_params(shard_count: int = 16) -> dict:
    """Test params on the folder dataset: random CLIP, 224 px, the pinned template, hashed shards."""
    return with_values(
        pipeline_test_params(),
        {
            "data.kind": "folder",
            "data.root": str(DATASET),
            "data.images_dir": "images",
            "data.tags_file": "tags.csv",
            "data.ground_truth_dir": None,
            "prompts.candidates": [],
            "pseudo.crf": False,
            "store.shard_count": shard_count,
        },
    )


def write_photo(root: Path, image_id: str) -> None:
    name, (top, left, size), _ = PHOTOS[image_id]
    pixels = getattr(skdata, name)()
    crop = np.ascontiguousarray(pixels[top : top + size, left : left + size, :3])
    path = root / DATASET / "images" / f"{image_id}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(crop).resize((160, 160), Image.BICUBIC).save(path, quality=90)


def write_tags(root: Path, tags: Mapping[str, Sequence[str]]) -> None:
    path = root / DATASET / "tags.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "tags"])
        for image_id in sorted(tags):
            writer.writerow([f"{image_id}.jpg", ";".join(tags[image_id])])


def tags_of(image_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """id -> tags of these photos."""
    return {image_id: PHOTOS[image_id][2] for image_id in image_ids}


def make_dataset(root: Path, image_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Write the photos and their tags file; returns id -> tags."""
    for image_id in image_ids:
        write_photo(root, image_id)
    tags = tags_of(image_ids)
    write_tags(root, tags)
    return tags
