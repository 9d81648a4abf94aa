"""Dataset adapters: VOC, COCO and plain folders read into root-relative, hashed manifests.

`load_dataset` picks the adapter by kind; `GroundTruthFiles` / `read_label_map` are the one
reader of ground-truth label maps (accepted encodings in `wsss.datasets.ground_truth`).

Each loader is a pure function of its arguments (no params.yaml) that returns a `Manifest`;
bad input raises `wsss.errors.DatasetError` naming the file and the reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsss.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from wsss.datasets.coco import load_coco
    from wsss.datasets.folder import load_folder
    from wsss.datasets.ground_truth import GroundTruthFiles, read_label_map
    from wsss.datasets.loading import DATASET_KINDS, load_dataset
    from wsss.datasets.records import ImageRecord, Manifest, file_sha256, manifest_sha256, safe_join, validate_image_id, validate_relative_path
    from wsss.datasets.sample import SAMPLE_CLASS_NAMES, materialize_sample
    from wsss.datasets.voc import load_voc
    from wsss.text.vocabulary import COCO_DATASET_NAMES as COCO_TO_CLIPES_NAMES

__all__ = [
    "COCO_TO_CLIPES_NAMES",
    "DATASET_KINDS",
    "SAMPLE_CLASS_NAMES",
    "GroundTruthFiles",
    "ImageRecord",
    "Manifest",
    "file_sha256",
    "load_coco",
    "load_dataset",
    "load_folder",
    "load_voc",
    "manifest_sha256",
    "materialize_sample",
    "read_label_map",
    "safe_join",
    "validate_image_id",
    "validate_relative_path",
]

__getattr__, __dir__ = lazy_exports(__name__, __file__)
