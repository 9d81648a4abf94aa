"""sample and prepare: the embedded sample on disk; the manifest of the usable images, the failure
report and the derived ground truth (COCO masks rasterised from the instances JSON)."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger

from tasks.runtime import in_flow
from wsss.catalog import ArtifactLayout
from wsss.datasets import Manifest, load_dataset, manifest_sha256, materialize_sample
from wsss.datasets.settings import DataSettings
from wsss.datasets.validation import GroundTruthCensus, validate_images
from wsss.failures import FailureReport
from wsss.io.atomic import write_json_atomic, write_text_atomic
from wsss.params import Params
from wsss.stage_result import StageResult
from wsss.stages import stage
from wsss.text.vocabulary import ClassVocabulary


def run_sample(layout: ArtifactLayout) -> StageResult:
    """Write the registry-package photos in VOC layout under data/sample (byte-identical every run)."""
    manifest = materialize_sample(layout.sample_data)
    return StageResult("sample", tuple(r.image_id for r in manifest.records), written=(str(layout.sample_data),))


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


GROUND_TRUTH_ABOUT = """# Ground truth derived by `prepare`

Label maps `prepare` derives from the dataset (COCO masks rasterised from the instances JSON),
named `<image id>.<content key>.png` and reused by key. Empty of maps when the dataset's ground truth
is a folder of PNGs (or there is none). Written by `prepare`; do not edit.
"""


def run_prepare(params: Params, layout: ArtifactLayout) -> StageResult:
    """Manifest of the images that decode fully, `failures.json` naming each refused image and why;
    `manifest.meta.json` records the params it was made with, the dataset's one name and what its
    ground truth holds. `details["manifest_sha256"]`; `details["counts"]`: the line logged
    ("128 read, 126 kept, 2 skipped (no annotations), 0 failed").

    Raises:
        TooManyFailuresError: after the report and the manifest are written, when more than
            `reliability.max_failed_share` of the images failed.
    """
    failures, census = FailureReport("prepare"), GroundTruthCensus()
    layout.ground_truth.mkdir(parents=True, exist_ok=True)  # a DVC output even when nothing is derived
    write_text_atomic(layout.ground_truth_about, GROUND_TRUTH_ABOUT)  # never empty: DVC warns about an empty output
    manifest = build_manifest(params.data, params.vocabulary, layout, failures)
    # Every GT mask is checked (mode, values, size) by the one GT reader; failed images leave the manifest.
    manifest = validate_images(manifest, Path(params.data.root), params.reliability.max_image_pixels, failures, layout.ground_truth, census)
    write_text_atomic(layout.manifest, manifest.to_json())
    digest = manifest_sha256(manifest)
    write_json_atomic(
        layout.manifest_meta,
        {
            "root": params.data.root,
            "kind": params.data.kind,
            "dataset": params.data.dataset_name,
            "sha256": digest,
            "num_images": len(manifest.records),
            "ground_truth": census.to_dict(),
            "params": params.sections(*stage("prepare").params),
        },
    )
    total = len(manifest.records) + len(failures.failed_images())
    write_json_atomic(layout.prepare_failures, failures.to_dict(total, params.reliability.max_failed_share))
    counts = f"{params.data.dataset_name}: {failures.counts_line(len(manifest.records))}"
    if in_flow():
        logger = get_run_logger()
        logger.info("%s", counts)
        for failure in failures.failures:
            logger.warning("image %s left out: %s", failure.image, failure.reason)
        if census.warning():
            logger.warning("%s", census.warning())
    failures.check(total, params.reliability.max_failed_share, str(layout.prepare_failures))
    return StageResult(
        "prepare",
        tuple(r.image_id for r in manifest.records),
        failed={f.image: f.reason for f in failures.failures},
        written=tuple(str(p) for p in (layout.manifest, layout.manifest_meta, layout.prepare_failures)),
        details={"manifest_sha256": digest, "counts": counts, "ground_truth": census.to_dict()},
    )
