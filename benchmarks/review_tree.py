"""A small hand-built pipeline output tree (manifest, refined store, pseudo outputs, photos, GT)
for the review tests and `benchmarks.review_report_load`: every number in it is known, so triage
and IoU have exact answers."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from wsss.datasets import ImageRecord, Manifest
from wsss.io import ShardWriter, shard_path
from wsss.viz import voc_palette

CLASSES = ("cat", "dog", "person")  # labels 1, 2, 3
HEIGHT, WIDTH = 24, 32


@dataclass(frozen=True)
class FakeImage:
    image_id: str
    tags: tuple[str, ...]
    probabilities: tuple[float, ...]
    wrong_columns: int  # columns of the object predicted as background: lowers IoU
    ignored_rows: int  # rows of the mask set to 255
    with_gt: bool = True


def _png(array: np.ndarray, palette: bool = True) -> bytes:
    image = Image.fromarray(array.astype(np.uint8), mode="P" if palette else None)
    if palette:
        image.putpalette(voc_palette().flatten().tolist())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def object_mask(label: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """Ground truth: the tagged class in a box (at 24x32: rows 4..19, columns 6..25), background elsewhere."""
    gt = np.zeros((height, width), dtype=np.uint8)
    gt[round(height / 6) : round(5 * height / 6), round(width / 5) : round(4 * width / 5)] = label
    return gt


def default_images(count: int = 6) -> list[FakeImage]:
    """Images getting worse with their index: fewer correct columns, more ignored rows, weaker tags."""
    images = []
    for index in range(count):
        tag = CLASSES[index % len(CLASSES)]
        images.append(FakeImage(f"img{index:02d}", (tag,), (round(0.95 - 0.15 * index, 2),), 2 * index, index, with_gt=index != count - 1))
    return images


def build_tree(
    root: Path, images: list[FakeImage] | None = None, size: tuple[int, int] = (HEIGHT, WIDTH), photo: Callable[[int], np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """Write the tree under `root`; returns each image's pseudo mask.

    `size` scales the images (columns and rows of `FakeImage` scale with it); `photo(index)` gives
    the photo of the index-th image (random pixels by default).
    """
    images = images or default_images()
    height, width = size
    column_scale, row_scale = width / WIDTH, height / HEIGHT
    dataset = root / "data" / "fake"
    records, masks = [], {}
    (root / "artifacts" / "pseudo").mkdir(parents=True, exist_ok=True)
    for sub in ("masks", "raw", "confidence"):
        (root / "artifacts" / "pseudo" / sub).mkdir(parents=True, exist_ok=True)
    refined_rows = []
    rng = np.random.default_rng(0)
    for number, image in enumerate(images):
        label = CLASSES.index(image.tags[0]) + 1
        pixels = photo(number) if photo else (rng.random((height, width, 3)) * 255).astype(np.uint8)
        photo_path = dataset / "JPEGImages" / f"{image.image_id}.png"
        photo_path.parent.mkdir(parents=True, exist_ok=True)
        photo_bytes = _png(pixels, palette=False)
        photo_path.write_bytes(photo_bytes)
        gt = object_mask(label, height, width)
        gt_path = None
        if image.with_gt:
            gt_path = f"SegmentationClass/{image.image_id}.png"
            (dataset / gt_path).parent.mkdir(parents=True, exist_ok=True)
            (dataset / gt_path).write_bytes(_png(gt))
        raw = gt.copy()
        rows, columns = np.nonzero(gt)
        raw[rows.min() : rows.max() + 1, columns.min() : columns.min() + round(image.wrong_columns * column_scale)] = 0
        mask = raw.copy()
        mask[: round(image.ignored_rows * row_scale)] = 255
        confidence = np.where(mask == 255, 0.5, 1.0).astype(np.float16)
        cam = (gt > 0).astype(np.float32)[None] * 0.9  # argmax = gt: CRF disagreement = wrong columns
        pseudo = root / "artifacts" / "pseudo"
        (pseudo / "masks" / f"{image.image_id}.png").write_bytes(_png(mask))
        (pseudo / "raw" / f"{image.image_id}.png").write_bytes(_png(raw))
        np.save(pseudo / "confidence" / f"{image.image_id}.npy", confidence)
        masks[image.image_id] = mask
        sha = hashlib.sha256(photo_bytes).hexdigest()
        records.append(ImageRecord(image.image_id, f"JPEGImages/{image.image_id}.png", image.tags, gt_path, sha, width, height))
        refined_rows.append((image, cam, sha, label))
    manifest = Manifest("fake", tuple(records), CLASSES)
    prepare = root / "artifacts" / "prepare"
    prepare.mkdir(parents=True, exist_ok=True)
    (prepare / "manifest.json").write_text(manifest.to_json())
    (prepare / "manifest.meta.json").write_text(json.dumps({"kind": "folder", "root": "data/fake", "num_images": len(records)}))
    code = {"git_commit": "c0ffee", "git_dirty": False}
    cams_attrs = {
        "stage": "cams",
        "params": {"cam": {}},
        "params_sha256": "cd" * 32,
        "flow_run_id": "flow-cams-1",
        "code_version": code,
        "clip": {"model_name": "ViT-B-16", "weights": "random-init (test)"},
        "template": "a clean origami {}.",
    }
    refine_attrs = {
        "stage": "refine",
        "params": {"caa": {}},
        "params_sha256": "ab" * 32,
        "flow_run_id": "flow-refine-1",
        "code_version": code,
        "upstream_cams": {"clip": cams_attrs["clip"], "template": cams_attrs["template"]},
    }
    rows = sorted(refined_rows, key=lambda row: row[0].image_id)
    with ShardWriter(shard_path(root / "artifacts" / "cams", 0), cams_attrs) as writer:
        for image, _, sha, label in rows:
            writer.add(
                image.image_id,
                {"gradcam": np.zeros((1, 2, 2), np.float32)},
                {
                    "class_ids": [label - 1],
                    "tags": list(image.tags),
                    "tag_probabilities": list(image.probabilities),
                    "source_sha256": sha,
                    "source_path": f"JPEGImages/{image.image_id}.png",
                    "original_size": [height, width],
                },
            )
    with ShardWriter(shard_path(root / "artifacts" / "refined", 0), refine_attrs) as writer:
        for image, cam, sha, label in rows:
            writer.add(
                image.image_id,
                {"refined": cam},
                {
                    "class_ids": [label - 1],
                    "tags": list(image.tags),
                    "source_sha256": sha,
                    "source_path": f"JPEGImages/{image.image_id}.png",
                    "original_size": [height, width],
                },
            )
    summary = {
        "params": {"background_alpha": 1.0, "crf": True, "confidence_threshold": 0.95, "ignore_index": 255},
        "flow_run_id": "flow-pseudo-1",
        "input_manifest_sha256": "00" * 32,
        "images": [{"image_id": image.image_id} for image in images],
    }
    (root / "artifacts" / "pseudo" / "summary.json").write_text(json.dumps(summary))
    return masks
