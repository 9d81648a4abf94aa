"""relabel: the task nodes of the incremental relabel flow (diff, pseudo subset, history, metrics, log).

CAMs and refinement are the `cams`/`refine` flows themselves (they recompute only images whose
content key changed); this module adds what only a relabel run does: compare the dataset with
the last run's manifest, keep the previous version of every mask it replaces or deletes, make
pseudo masks for the affected images only, score the masks and log the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NONE

from tasks import pseudo as pseudo_tasks
from tasks.common import GROUND_TRUTH, PSEUDO_DIR, REFINED_STORE, read_json, write_json
from wsss.config import PseudoSettings
from wsss.datasets import GroundTruthFiles, Manifest
from wsss.errors import DatasetError
from wsss.metrics import ConfusionAccumulator
from wsss.relabel import ManifestDiff, RunRecord, append_run_log, archive_outputs, diff_manifests

LAST_MANIFEST = "last_manifest.json"
RUN_LOG = "runs.jsonl"
METRICS = "metrics.json"
# One image's pseudo outputs, as `tasks.pseudo` lays them out.
PSEUDO_LAYOUT = {pseudo_tasks.MASKS: ".png", pseudo_tasks.RAW: ".png", pseudo_tasks.CONFIDENCE: ".npy"}


def run_stamp(flow_run_id: str | None) -> str:
    """Sortable, unique name of one run: UTC time plus the start of the flow-run id."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + (f"-{flow_run_id[:8]}" if flow_run_id else "")


@task(cache_policy=NONE)
def diff_against_last_run(manifest: Manifest, state_dir: Path) -> ManifestDiff:
    """Added / changed / removed images since the manifest the last relabel run completed with."""
    path = state_dir / LAST_MANIFEST
    previous = None
    if path.is_file():
        try:
            previous = Manifest.from_json(path.read_text(), str(path))
        except OSError as error:
            raise DatasetError(f"{path}: cannot read the last run's manifest ({error})") from error
    return diff_manifests(previous, manifest)


def pseudo_targets(refined_computed: Sequence[str], manifest: Manifest, pseudo_params: Mapping[str, Any] | None) -> list[str]:
    """Images that need a new pseudo mask: refined maps recomputed, mask missing, or `pseudo` params changed."""
    summary_path = PSEUDO_DIR / "summary.json"
    summary = read_json(summary_path) if summary_path.is_file() else {}
    ids = [r.image_id for r in manifest.records]
    if summary.get("params") != dict(pseudo_params or {}):
        return ids
    missing = [i for i in ids if not (PSEUDO_DIR / pseudo_tasks.MASKS / f"{i}.png").is_file()]
    return sorted(set(refined_computed) | set(missing))


@task(cache_policy=NONE)
def relabel_pseudo(
    image_ids: Sequence[str],
    removed: Sequence[str],
    settings: PseudoSettings,
    pseudo_params: Mapping[str, Any] | None,
    dataset_root: Path,
    history: Path,
    manifest_sha256: str,
    flow_run_id: str | None,
) -> dict[str, Any]:
    """Archive, then rewrite the pseudo outputs of `image_ids` and delete those of `removed`.

    The summary keeps the rows of untouched images and replaces or drops the others.
    Returns the archived and written paths.
    """
    archived = archive_outputs([*image_ids, *removed], PSEUDO_DIR, PSEUDO_LAYOUT, history)
    for image_id in removed:
        for sub, suffix in PSEUDO_LAYOUT.items():
            (PSEUDO_DIR / sub / f"{image_id}{suffix}").unlink(missing_ok=True)
    jobs = [pseudo_tasks.PseudoJob(i, REFINED_STORE, dataset_root, PSEUDO_DIR, settings) for i in image_ids]
    # Rows kept from earlier runs keep their own run id; the summary-level id is this run's.
    rows = [{**row, "flow_run_id": flow_run_id} for row in (pseudo_tasks.make_pseudo_masks.fn(jobs, settings.jobs) if jobs else [])]
    summary_path = PSEUDO_DIR / "summary.json"
    summary = read_json(summary_path) if summary_path.is_file() else {}
    replaced = set(image_ids) | set(removed)
    kept = [row for row in summary.get("images", []) if row.get("image_id") not in replaced]
    write_json(summary_path, {
        **summary,
        "params": dict(pseudo_params or {}),
        "input_manifest_sha256": manifest_sha256,
        "flow_run_id": flow_run_id,
        "images": sorted(kept + rows, key=lambda row: row["image_id"]),
    })
    written = [PSEUDO_DIR / sub / f"{i}{suffix}" for i in image_ids for sub, suffix in PSEUDO_LAYOUT.items()]
    return {"archived": [str(p) for p in archived], "written": [str(p) for p in written]}


@task(cache_policy=NONE)
def score_pseudo_masks(manifest: Manifest, dataset_root: Path, num_classes: int, output: Path) -> dict[str, Any]:
    """mIoU of the current pseudo masks on the images with ground truth (255 = ignored counts as a miss)."""
    accumulator = ConfusionAccumulator(num_classes)
    ground_truth = GroundTruthFiles(dataset_root, GROUND_TRUTH)
    scored = 0
    for record in manifest.records:
        mask_path = PSEUDO_DIR / pseudo_tasks.MASKS / f"{record.image_id}.png"
        if record.ground_truth_path is None or not mask_path.is_file():
            continue
        with Image.open(mask_path) as mask:
            accumulator.update(ground_truth.read(record, num_classes - 1), np.asarray(mask, dtype=np.uint8))
        scored += 1
    metrics: dict[str, Any] = {"images_scored": scored, "images": len(manifest.records)}
    if scored:
        scores = accumulator.scores()
        metrics.update(pseudo_miou=round(float(scores.mean_iou), 6), pixel_accuracy=round(float(scores.pixel_accuracy), 6))
    write_json(output, metrics)
    return metrics


@task(cache_policy=NONE)
def record_run(record: RunRecord, state_dir: Path, manifest: Manifest) -> None:
    """Append the run to the JSONL log, publish it as a table artifact, remember the manifest."""
    append_run_log(state_dir / RUN_LOG, record)
    rows = [{"run": record.run_stamp, **record.counts, **{f"{k}_s": round(v, 2) for k, v in record.durations.items()},
             "retrained": record.retrained}]
    create_table_artifact(rows, key="wsss-relabel-run", description=f"Relabel run {record.run_stamp}")
    state_dir.mkdir(parents=True, exist_ok=True)
    partial = state_dir / (LAST_MANIFEST + ".partial")
    partial.write_text(manifest.to_json())
    partial.replace(state_dir / LAST_MANIFEST)
