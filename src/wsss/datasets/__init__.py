"""Dataset adapters: VOC, COCO and plain folders read into root-relative, hashed manifests.

`load_dataset` picks the adapter by kind; `GroundTruthFiles` / `read_label_map` are the one
reader of ground-truth label maps (accepted encodings in `wsss.datasets.ground_truth`).

Each loader is a pure function of its arguments (no params.yaml) that returns a `Manifest`;
bad input raises `wsss.errors.DatasetError` naming the file and the reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wsss.datasets.coco import load_coco
from wsss.datasets.folder import load_folder
from wsss.datasets.ground_truth import GroundTruthFiles, read_label_map
from wsss.datasets.loading import DATASET_KINDS, load_dataset
from wsss.datasets.records import (
    ImageRecord,
    Manifest,
    file_sha256,
    manifest_sha256,
    safe_join,
    validate_image_id,
    validate_relative_path,
)
from wsss.datasets.voc import load_voc

if TYPE_CHECKING:
    from wsss.datasets.coco import COCO_TO_CLIPES_NAMES
    from wsss.datasets.sample import SAMPLE_CLASS_NAMES, materialize_sample

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

# The sample module needs wsss.text, whose package import loads torch (seconds); loading it on
# first use keeps `import wsss.datasets` cheap for callers that only read manifests.
_LAZY_SAMPLE_NAMES = frozenset({"SAMPLE_CLASS_NAMES", "materialize_sample"})


def __getattr__(name: str) -> Any:
    """Module attribute hook (PEP 562): the sample names, imported on first access."""
    if name in _LAZY_SAMPLE_NAMES:
        from wsss.datasets import sample

        return getattr(sample, name)
    if name == "COCO_TO_CLIPES_NAMES":
        from wsss.text.vocabulary import COCO_DATASET_NAMES

        return COCO_DATASET_NAMES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
