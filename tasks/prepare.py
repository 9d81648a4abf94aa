"""sample and prepare: the embedded sample on disk; the manifest of the usable images and the failure report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect import get_run_logger

from tasks.runtime import in_flow
from wsss.catalog import ArtifactLayout
from wsss.datasets import Manifest, load_coco, load_folder, load_voc, manifest_sha256, materialize_sample
from wsss.datasets.settings import DataSettings
from wsss.datasets.validation import validate_images
from wsss.errors import DatasetError
from wsss.failures import FailureReport
from wsss.io.atomic import write_json_atomic, write_text_atomic
from wsss.params import Params


def run_sample(layout: ArtifactLayout) -> int:
    """Write the registry-package photos in VOC layout under data/sample (byte-identical every run)."""
    return len(materialize_sample(layout.sample_data).records)


@dataclass(frozen=True)
class PrepareSummary:
    manifest_sha256: str
    images: int
    failed: int
    written: tuple[Path, ...]


def load_dataset(data: DataSettings, class_names: tuple[str, ...], failures: FailureReport) -> Manifest:
    """The manifest of the dataset named by the `data` section (the sample is a VOC tree).

    Per-image problems go to `failures`; whole-file problems (tags file, split file, JSON) raise.
    """
    root = Path(data.root)
    if data.kind in ("sample", "voc"):
        return load_voc(root, data.split, class_names, data.ground_truth_dir, failures=failures)
    if data.kind == "coco":
        return load_coco(root, str(data.instances_json), str(data.images_dir), class_names, data.ground_truth_dir, failures=failures)
    return load_folder(root, str(data.images_dir), str(data.tags_file), class_names, failures=failures)


def run_prepare(params: Params, layout: ArtifactLayout) -> PrepareSummary:
    """Manifest of the images that decode fully, `failures.json` naming each refused image and why.

    Raises:
        TooManyFailuresError: after the report and the manifest are written, when more than
            `reliability.max_failed_share` of the images failed.
    """
    failures = FailureReport("prepare")
    manifest = load_dataset(params.data, tuple(params.vocabulary.class_names), failures)
    manifest = validate_images(manifest, Path(params.data.root), params.reliability.max_image_pixels, failures)
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
