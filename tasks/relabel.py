"""relabel: one incremental relabeling run over the same stage entries as `dvc repro`.

The stages upstream of `pseudo` and `pseudo` itself, in the stage table's order (prepare ->
(prompts once) -> cams -> refine -> pseudo), each recomputing only what its content keys say
changed, so whatever interrupted an earlier run is finished by the next one. What only a
relabel run adds: the diff against the last completed run's manifest (counts and reasons for the
log), the previous version of every replaced or removed mask (history), the mIoU of the current
masks, retraining above `relabel.retrain_share`, and the run log. Before the first relabel run
(no last manifest, e.g. after `dvc repro`) the diff is against what the pseudo-mask store holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from tasks.progress import Progress
from tasks.runtime import flow_run_id, table
from tasks.stage_entries import stage_entry
from wsss.catalog import ArtifactLayout
from wsss.datasets import Manifest, manifest_sha256
from wsss.errors import DatasetError
from wsss.io.atomic import write_json_atomic, write_text_atomic
from wsss.io.pseudo_store import PseudoMaskStore
from wsss.metrics import ConfusionAccumulator
from wsss.params import Params
from wsss.relabel import ManifestDiff, RunRecord, append_run_log, diff_fingerprints, diff_manifests, stored_fingerprints
from wsss.stage_inputs import ground_truth_files, read_manifest
from wsss.stage_result import StageResult
from wsss.stages import in_pipeline_order, upstream_of

# What a relabel run does besides its upstream stages: the template is chosen once (a new image
# does not re-rank the prompts), and retraining runs these, in table order.
ONCE = ("prompts",)
RETRAIN = ("train", "evaluate")
SHARDED_WITH_PROGRESS = ("cams", "refine", "pseudo")  # the steps that report per image


def relabel_steps() -> tuple[str, ...]:
    """The stages a relabel run goes through: those upstream of `pseudo` and `pseudo`, in order."""
    return in_pipeline_order({*upstream_of("pseudo"), "pseudo"})


def run_stamp(run_id: str | None) -> str:
    """Sortable, unique name of one run: UTC time plus the start of the flow-run id."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + (f"-{run_id[:8]}" if run_id else "")


def diff_against_last_run(manifest: Manifest, layout: ArtifactLayout, stored: dict[str, dict[str, Any]]) -> ManifestDiff:
    """Added / changed / removed images since the manifest the last relabel run completed with;
    before the first one, since what `stored` (the pseudo store's rows before this run) says was
    labelled: after a `dvc repro`, an unchanged dataset is unchanged, not all added."""
    if not layout.last_manifest.is_file():
        return diff_fingerprints(stored_fingerprints(stored), manifest)
    try:
        previous = Manifest.from_json(layout.last_manifest.read_text(), str(layout.last_manifest))
    except OSError as error:
        raise DatasetError(f"{layout.last_manifest}: cannot read the last run's manifest ({error})") from error
    return diff_manifests(previous, manifest)


def score_pseudo_masks(params: Params, layout: ArtifactLayout, manifest: Manifest) -> dict[str, Any]:
    """mIoU of the current pseudo masks on the images with ground truth (255 = ignored counts as a miss)."""
    accumulator = ConfusionAccumulator(params.vocabulary.num_classes + 1)
    masks, truth, scored = PseudoMaskStore(layout.pseudo), ground_truth_files(params, layout), 0
    for record in manifest.records:
        if record.ground_truth_path is None or not masks.has_mask(record.image_id):
            continue
        accumulator.update(truth.read(record, params.vocabulary.num_classes), masks.labels(record.image_id))
        scored += 1
    metrics: dict[str, Any] = {"images_scored": scored, "images": len(manifest.records)}
    if scored:
        scores = accumulator.scores()
        metrics.update(pseudo_miou=round(float(scores.mean_iou), 6), pixel_accuracy=round(float(scores.pixel_accuracy), 6))
    write_json_atomic(layout.relabel_metrics, metrics)
    return metrics


def record_run(record: RunRecord, layout: ArtifactLayout, manifest: Manifest) -> None:
    """Append the run to the JSONL log, then remember the manifest it completed (the images it
    could not read are left out, so the next run counts them as added again)."""
    append_run_log(layout.run_log, record)
    table(
        [{"run": record.run_stamp, **record.counts, **{f"{k}_s": round(v, 2) for k, v in record.durations.items()}, "retrained": record.retrained}],
        "wsss-relabel-run",
        f"Relabel run {record.run_stamp}",
    )
    completed = replace(manifest, records=tuple(r for r in manifest.records if r.image_id not in set(record.failed)))
    write_text_atomic(layout.last_manifest, completed.to_json())


class Laps:
    """Seconds per step of a run."""

    def __init__(self) -> None:
        self.durations: dict[str, float] = {}
        self._started = time.monotonic()

    def __call__(self, name: str, step: Callable[[], Any]) -> Any:
        result = step()
        self.durations[name] = time.monotonic() - self._started
        self._started = time.monotonic()
        return result


def run_relabel(params: Params, layout: ArtifactLayout) -> StageResult:
    """One relabel run (the caller holds the run lock). `computed`: the images relabeled this run;
    `details`: what it did, as logged (counts, reasons, each step's result, metrics, durations)."""
    run_id = flow_run_id()
    stamp, lap = run_stamp(run_id), Laps()
    history = layout.history(stamp)
    reports = {
        step: Progress(f"wsss-relabel-{step}-progress", f"Relabel run {stamp}: {step}", f"relabel {step}")
        for step in relabel_steps()
        if step in SHARDED_WITH_PROGRESS
    }
    results: dict[str, StageResult] = {}
    # What earlier runs (`dvc repro`) labelled, read before this run's pseudo step rewrites it.
    stored = {} if layout.last_manifest.is_file() else PseudoMaskStore(layout.pseudo).stored_rows()
    for step in relabel_steps():
        if step in ONCE and layout.prompt_scores.is_file():
            continue
        step_report = [reports[step]] if step in reports else []
        options = {"archive_to": history} if step == "pseudo" else {}  # replaced masks are kept in the run's history
        results[step] = lap(step, partial(stage_entry(step), params, layout, *step_report, **options))
    for report in reports.values():
        report.finish()
    manifest = read_manifest(layout)
    diff = diff_against_last_run(manifest, layout, stored)  # the last run's manifest is replaced only when this run completes
    pseudo = results["pseudo"]
    # Images whose input could not be read (their stage's failures.json says why); the others went on.
    failed = {i: reason for name in SHARDED_WITH_PROGRESS for i, reason in results[name].failed.items()}
    metrics = lap("metrics", lambda: score_pseudo_masks(params, layout, manifest))
    retrain = params.relabel.retrains(diff.changed_share())
    if retrain:
        lap("retrain", lambda: [stage_entry(step)(params, layout) for step in in_pipeline_order(RETRAIN)])
    # The review report shows this run's masks (it was stale until `wsss review` ran by hand).
    review = lap("review", lambda: stage_entry("review")(layout))
    durations = {**lap.durations, "total": sum(lap.durations.values())}
    archived = list(pseudo.details["archived"])
    record = RunRecord(
        run_stamp=stamp,
        flow_run_id=run_id,
        counts=diff.counts(),
        durations=durations,
        relabeled=list(pseudo.computed),
        removed=list(diff.removed),
        retrained=retrain,
        manifest_sha256=manifest_sha256(manifest),
        history_dir=str(history) if archived else None,
        written=[p for name in SHARDED_WITH_PROGRESS for p in results[name].written],
        failed=sorted(failed),
    )
    record_run(record, layout, manifest)
    details = {
        "counts": diff.counts(),
        "reasons": {k: list(v) for k, v in diff.reasons.items()},
        "cams": results["cams"].as_dict(),
        "refine": results["refine"].as_dict(),
        "pseudo": list(pseudo.computed),
        "archived": archived,
        "metrics": metrics,
        "retrained": retrain,
        "durations": durations,
        "run_stamp": stamp,
        "review": review.details["counts"],
    }
    return StageResult("relabel", pseudo.computed, pseudo.reused, failed, tuple(diff.removed), tuple(record.written), details)
