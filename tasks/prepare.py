"""sample and prepare: the embedded sample on disk; the manifest of the usable images, the failure
report and the derived ground truth (COCO masks rasterised from the instances JSON)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect import get_run_logger

from tasks.runtime import in_flow
from wsss.catalog import ArtifactLayout
from wsss.datasets import GroundTruthFiles, Manifest, load_dataset, manifest_sha256, materialize_sample
from wsss.datasets.settings import DataSettings
from wsss.datasets.validation import validate_images
from wsss.errors import DatasetError
from wsss.failures import FailureReport
from wsss.io.atomic import write_json_atomic, write_text_atomic
from wsss.params import Params
from wsss.text.vocabulary import ClassVocabulary


def run_sample(layout: ArtifactLayout) -> int:
    """Write the registry-package photos in VOC layout under data/sample (byte-identical every run)."""
    return len(materialize_sample(layout.sample_data).records)


@dataclass(frozen=True)
class PrepareSummary:
    manifest_sha256: str
    images: int
    failed: int
    written: tuple[Path, ...]


def build_manifest(data: DataSettings, vocabulary: ClassVocabulary, layout: ArtifactLayout, failures: FailureReport) -> Manifest:
    """The manifest of the dataset named by the `data` section (the sample is a VOC tree).

    Per-image problems go to `failures`; whole-file problems (tags file, split file, JSON) raise.
    COCO masks are rasterised into (or reused by content key from) `layout.ground_truth`.
    """
    return load_dataset(
        data.kind, Path(data.root), vocabulary.class_names, rename=vocabulary.rename, split=data.split,
        ground_truth_dir=data.ground_truth_dir, instances_json=data.instances_json, images_dir=data.images_dir,
        tags_file=data.tags_file, tags_from=data.tags_from, derived_ground_truth=layout.ground_truth, failures=failures,
    )  # fmt: skip


def run_prepare(params: Params, layout: ArtifactLayout) -> PrepareSummary:
    """Manifest of the images that decode fully, `failures.json` naming each refused image and why.

    Raises:
        TooManyFailuresError: after the report and the manifest are written, when more than
            `reliability.max_failed_share` of the images failed.
    """
    failures = FailureReport("prepare")
    layout.ground_truth.mkdir(parents=True, exist_ok=True)  # a DVC output even when nothing is derived
    manifest = build_manifest(params.data, params.vocabulary, layout, failures)
    # Every GT mask is checked (mode, values, size) by the one GT reader; failed images leave the manifest.
    manifest = validate_images(manifest, Path(params.data.root), params.reliability.max_image_pixels, failures, layout.ground_truth)
    write_text_atomic(layout.manifest, manifest.to_json())
    digest = manifest_sha256(manifest)
    write_json_atomic(layout.manifest_meta, {"root": params.data.root, "kind": params.data.kind, "sha256": digest,
                                             "num_images": len(manifest.records)})
    total = len(manifest.records) + len(failures.failed_images())
    write_json_atomic(layout.prepare_failures, failures.to_dict(total, params.reliability.max_failed_share))
    for failure in failures.failures if in_flow() else ():
        get_run_logger().warning("image %s left out: %s", failure.image, failure.reason)
    failures.check(total, params.reliability.max_failed_share, str(layout.prepare_failures))
    return PrepareSummary(digest, len(manifest.records), len(failures.failed_images()),
                          (layout.manifest, layout.manifest_meta, layout.prepare_failures))


def read_manifest(layout: ArtifactLayout) -> Manifest:
    """The manifest `prepare` wrote; a clear error when there is none."""
    try:
        return Manifest.from_json(layout.manifest.read_text(), str(layout.manifest))
    except OSError as error:
        raise DatasetError(f"{layout.manifest}: cannot read the manifest ({error.strerror or error}); run the prepare stage") from error


def ground_truth_files(params: Params, layout: ArtifactLayout) -> GroundTruthFiles:
    """The one GT reader of every stage: dataset masks under the data root, derived (COCO) masks in
    the catalog's folder (`manifest` records say which)."""
    return GroundTruthFiles(params.dataset_root, layout.ground_truth)
