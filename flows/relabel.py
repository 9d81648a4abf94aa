"""relabel: incremental relabeling of a growing dataset, run once or served on a schedule.

    python -m flows.relabel run [--params params.yaml] [--runner dask ...]
    python -m flows.relabel serve --cron "0 3 * * *" | --interval 3600 [--name nightly]

`serve` registers a deployment `wsss-relabel/<name>` with the Prefect server at
`PREFECT_API_URL` (`prefect server start`; the temporary server cannot schedule) and runs its
scheduled and manual (`prefect deployment run 'wsss-relabel/<name>'`) runs until stopped.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from flows.cams import run_cams
from flows.cli import ARTIFACTS_DIR, run_stage
from flows.prepare import prepare_flow
from flows.refine import refine_flow
from flows.runner import add_runner_arguments, runner_overrides
from tasks import relabel as relabel_tasks
from tasks.common import PROMPT_SCORES, core_config, dataset_root, flow_run_id, load_params, read_manifest
from tasks.reporting import link_written_files
from wsss.datasets import manifest_sha256
from wsss.relabel import RunRecord, relabel_settings
from wsss.run_lock import describe_owner, run_lock


@flow(name="wsss-relabel")
def relabel_flow(params_path: str = "params.yaml", runner: dict[str, Any] | None = None) -> dict[str, Any]:
    """Relabel only what changed since the last run; keep replaced masks; log counts and durations.

    Each run holds the artifacts run lock itself (not the serving process), so stage runs and
    `dvc repro` between scheduled runs are not refused.
    """
    with run_lock(ARTIFACTS_DIR) as lock:
        if lock.stale_owner is not None:
            get_run_logger().warning("took over the stale run lock of %s", describe_owner(lock.stale_owner))
        return relabel_once(params_path, runner)


def relabel_once(params_path: str, runner: dict[str, Any] | None) -> dict[str, Any]:
    """One relabel run (inside `relabel_flow`, under the run lock)."""
    params = load_params(params_path)
    settings = relabel_settings(params)
    state_dir = Path(settings.state_dir)
    run_id = flow_run_id()
    stamp = relabel_tasks.run_stamp(run_id)
    durations: dict[str, float] = {}
    started = time.monotonic()

    def lap(name: str) -> None:
        nonlocal started
        durations[name] = time.monotonic() - started
        started = time.monotonic()

    prepare_flow(params_path)
    manifest = read_manifest()
    diff = relabel_tasks.diff_against_last_run(manifest, state_dir)
    lap("prepare")
    if not PROMPT_SCORES.is_file():
        from flows.prompts import prompts_flow

        prompts_flow(params_path)
        lap("prompts")
    cams = run_cams(params_path, runner)
    lap("cams")
    refined = refine_flow(params_path)
    lap("refine")
    targets = relabel_tasks.pseudo_targets(refined["computed"], manifest, params.get("pseudo"))
    history = state_dir / "history" / stamp
    pseudo = relabel_tasks.relabel_pseudo(
        targets, diff.removed, core_config(params).pseudo, params.get("pseudo"), dataset_root(params), history,
        manifest_sha256(manifest), run_id,
    )
    lap("pseudo")
    metrics = relabel_tasks.score_pseudo_masks(
        manifest, dataset_root(params), core_config(params).vocabulary.num_classes + 1, state_dir / relabel_tasks.METRICS
    )
    lap("metrics")
    retrain = settings.retrain_share is not None and diff.changed_share() > settings.retrain_share
    if retrain:
        from flows.evaluate import evaluate_flow
        from flows.train import train_flow

        get_run_logger().info("%.0f%% of the images changed (> relabel.retrain_share): retraining", 100 * diff.changed_share())
        train_flow(params_path)
        evaluate_flow(params_path)
        lap("retrain")
    durations["total"] = sum(durations.values())
    record = RunRecord(
        run_stamp=stamp, flow_run_id=run_id, counts=diff.counts(), durations=durations,
        relabeled=targets, removed=list(diff.removed), retrained=retrain, manifest_sha256=manifest_sha256(manifest),
        history_dir=str(history) if pseudo["archived"] else None,
        written=[*cams["written"], *refined["written"], *pseudo["written"]],
    )
    relabel_tasks.record_run(record, state_dir, manifest)
    link_written_files("wsss-relabel-files", [Path(p) for p in record.written], f"Files written by relabel run {stamp}")
    return {
        "counts": diff.counts(), "reasons": {k: list(v) for k, v in diff.reasons.items()}, "cams": cams, "refine": refined,
        "pseudo": targets, "removed": list(diff.removed), "archived": pseudo["archived"], "metrics": metrics,
        "retrained": retrain, "durations": durations, "run_stamp": stamp,
    }


def serve(params_path: str, name: str, cron: str | None, interval: int | None, runner: dict[str, Any]) -> None:
    """Serve the flow as deployment `wsss-relabel/<name>` on the schedule (blocks until stopped)."""
    if cron is None and interval is None:
        settings = relabel_settings(load_params(params_path))
        cron, interval = settings.cron, settings.interval_seconds
    if cron is None and interval is None:
        raise SystemExit("error: give --cron or --interval (or set relabel.cron / relabel.interval_seconds)")
    relabel_flow.serve(
        name=name,
        cron=cron,
        interval=interval,
        parameters={"params_path": params_path, "runner": runner},
        description="Incremental relabeling of new or changed images",
        limit=1,  # runs write the same artifacts: a run due while one is going waits for it
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(add_help=False)
    add_runner_arguments(parser)
    parser.add_argument("--cron", help="serve: cron schedule, e.g. '0 3 * * *'")
    parser.add_argument("--interval", type=int, help="serve: seconds between runs")
    parser.add_argument("--name", default="relabel", help="serve: deployment name (default: relabel)")
    known, rest = parser.parse_known_args(argv)
    if {"-h", "--help"} & set(sys.argv[1:] if argv is None else argv):
        parser.usage, parser.description = argparse.SUPPRESS, "relabel options (before or after the command)"
        parser.print_help()
    overrides = runner_overrides(known)
    return run_stage({
        "run": lambda path: relabel_flow(path, overrides),
        "serve": lambda path: serve(path, known.name, known.cron, known.interval, overrides),
    }, rest, lock=False)  # relabel_flow takes the lock per run; a serving process must not hold it


if __name__ == "__main__":
    sys.exit(main())
