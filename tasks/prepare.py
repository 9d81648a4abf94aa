"""prepare: materialise the embedded sample; the manifest of the usable images, the failure report,
the derived ground truth (COCO masks) and the resolved vocabulary."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from tasks.common import FAILURES, GROUND_TRUTH, MANIFEST, VOCABULARY, write_json
from wsss.config import DataSettings
from wsss.datasets import Manifest, load_dataset, manifest_sha256, materialize_sample
from wsss.datasets.validation import validate_images
from wsss.failures import FailureReport, ReliabilitySettings
from wsss.text.vocabulary import ClassVocabulary, vocabulary_document

SAMPLE_DIR = Path("data/sample")


@task(retries=2, retry_delay_seconds=1, cache_policy=NONE)
def materialize_sample_task(destination: Path = SAMPLE_DIR) -> Manifest:
    """Write the registry-package photos in VOC layout (byte-identical on every run)."""
    return materialize_sample(destination)


# No retries: the loaders' errors are deterministic, and a retry would record failures twice.
@task(cache_policy=NONE)
def build_manifest(data: DataSettings, vocabulary: ClassVocabulary, failures: FailureReport) -> Manifest:
    """The manifest of the dataset named by the `data` section (the sample is a VOC tree).

    Per-image problems go to `failures`; whole-file problems (tags file, split file, JSON) raise.
    COCO masks are rasterised into (or reused from) `artifacts/prepare/ground_truth/`.
    """
    return load_dataset(
        data.kind, Path(data.root), vocabulary.class_names, rename=vocabulary.rename, split=data.split,
        ground_truth_dir=data.ground_truth_dir, instances_json=data.instances_json, images_dir=data.images_dir,
        tags_file=data.tags_file, tags_from=data.tags_from, derived_ground_truth=GROUND_TRUTH, failures=failures,
    )  # fmt: skip


@task(cache_policy=NONE)
def validate_manifest_images(
    manifest: Manifest, data: DataSettings, reliability: ReliabilitySettings, failures: FailureReport
) -> Manifest:
    """Decode every image and check every GT mask (mode, values, size); failed images leave the manifest."""
    return validate_images(manifest, Path(data.root), reliability.max_image_pixels, failures, GROUND_TRUTH)


@task(cache_policy=NONE)
def write_vocabulary(vocabulary: ClassVocabulary, template: str | None, path: Path = VOCABULARY) -> None:
    """`vocabulary.json`: classes, synonyms, dataset names, background words and the prompt strings
    (for the pinned template; null when the prompts stage picks it)."""
    write_json(path, vocabulary_document(vocabulary, template))


@task(cache_policy=NONE)
def write_failure_report(
    failures: FailureReport, manifest: Manifest, reliability: ReliabilitySettings, path: Path = FAILURES
) -> None:
    """Write `failures.json`, then raise if more than the tolerated share of images failed.

    Raises:
        TooManyFailuresError: after the report (and the manifest) are on disk.
    """
    total = len(manifest.records) + len(failures.failed_images())
    write_json(path, failures.to_dict(total, reliability.max_failed_share))
    for failure in failures.failures:
        get_run_logger().warning("image %s left out: %s", failure.image, failure.reason)
    failures.check(total, reliability.max_failed_share, str(path))


@task(cache_policy=NONE)
def write_manifest(manifest: Manifest, data: DataSettings, path: Path = MANIFEST) -> str:
    """Write the manifest (+ its hash and the dataset root); returns the hash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(manifest.to_json())
    partial.replace(path)
    digest = manifest_sha256(manifest)
    write_json(path.with_name("manifest.meta.json"), {"root": data.root, "kind": data.kind, "sha256": digest,
                                                      "num_images": len(manifest.records)})
    return digest
