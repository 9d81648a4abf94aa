"""One entry point for the three dataset formats: pick the loader by kind, apply each kind's defaults.

Ground truth by kind when `ground_truth_dir` is not given:

* voc / sample: `SegmentationClass/` when that folder exists (VOC test splits have none);
* coco: rasterised from the instances JSON's polygons and RLE into `derived_ground_truth`;
* folder: none.

A `ground_truth_dir` that is given must exist, whatever the kind (an error names the key).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from wsss.datasets.coco import load_coco
from wsss.datasets.folder import load_folder
from wsss.datasets.records import Manifest
from wsss.datasets.voc import load_voc
from wsss.errors import ConfigError
from wsss.failures import FailureReport

DATASET_KINDS: tuple[str, ...] = ("sample", "voc", "coco", "folder")
VOC_GROUND_TRUTH_DIR = "SegmentationClass"


def load_dataset(
    kind: str,
    root: Path,
    class_names: Sequence[str],
    *,
    rename: Mapping[str, str] | None = None,
    split: str = "train",
    ground_truth_dir: str | None = None,
    instances_json: str | None = None,
    images_dir: str | None = None,
    tags_file: str | None = None,
    tags_from: str = "annotations",
    derived_ground_truth: Path | None = None,
    failures: FailureReport | None = None,
) -> Manifest:
    """The manifest of a dataset of any supported kind (see the module doc for GT defaults).

    Args:
        kind: sample, voc, coco or folder.
        root: dataset root.
        class_names: the vocabulary's classes (label value = index + 1).
        rename: dataset label name -> class name (the vocabulary's `dataset_names`).
        split, tags_from: VOC split name and tag source ("annotations" or "ground_truth").
        ground_truth_dir: folder of label PNGs under root; None = the kind's default.
        instances_json, images_dir: COCO JSON and image folder; folder datasets' image folder.
        tags_file: folder datasets' CSV or JSON tags file.
        derived_ground_truth: where COCO masks rasterised from the JSON are cached.
        failures: per-image problems go here (the image is left out) instead of raising.

    Raises:
        ConfigError: naming the `data.*` key a kind needs but did not get.
        DatasetError: from the loader, naming the file and the reason.
    """
    root = Path(root)
    if kind not in DATASET_KINDS:
        raise ConfigError(f"data.kind must be one of {DATASET_KINDS}, got {kind!r}")
    if tags_from != "annotations" and kind not in ("sample", "voc"):
        raise ConfigError(f"data.tags_from: {tags_from!r} is only available for VOC layouts, not kind {kind!r}")
    if kind in ("sample", "voc"):
        if ground_truth_dir is None and (root / VOC_GROUND_TRUTH_DIR).is_dir():
            ground_truth_dir = VOC_GROUND_TRUTH_DIR
        return load_voc(root, split, class_names, ground_truth_dir, tags_from=tags_from, rename=rename, failures=failures)
    if kind == "coco":
        if not instances_json or not images_dir:
            raise ConfigError("data.instances_json and data.images_dir are required for COCO")
        return load_coco(
            root, instances_json, images_dir, class_names, ground_truth_dir,
            category_to_class=rename, derived_ground_truth=derived_ground_truth, failures=failures,
        )  # fmt: skip
    if not images_dir or not tags_file:
        raise ConfigError("data.images_dir and data.tags_file are required for folder datasets")
    return load_folder(root, images_dir, tags_file, class_names, ground_truth_dir, rename=rename, failures=failures)
