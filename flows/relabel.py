"""relabel: incremental relabeling of a growing dataset, run once or served on a schedule.

    python -m flows.relabel run [--params params.yaml] [--runner dask ...]
    python -m flows.relabel serve --cron "0 3 * * *" | --interval 3600 [--name nightly]

`serve` registers a deployment `wsss-relabel/<name>` with the Prefect server at
`PREFECT_API_URL` (`prefect server start`; the temporary server cannot schedule) and runs its
scheduled and manual (`prefect deployment run 'wsss-relabel/<name>'`) runs until stopped.
`wsss relabel` and `wsss serve` run these with the Prefect set-up of `wsss run`.
"""

from __future__ import annotations

import sys

from tasks.command_line import answer_help_early, relabel_serve_arguments

COMMANDS = ("run", "serve")

if __name__ == "__main__":  # `--help` and usage errors answer before Prefect and the stage code are imported
    answer_help_early(COMMANDS, runner=True, extra=relabel_serve_arguments)

# The imports below take seconds (Prefect, the stage code): they come after the early answer.
import argparse
from typing import Any

from prefect import flow

from tasks.command import run_stage, runner_overrides
from tasks.deployment_names import keep_scheduled_runs_named
from tasks.locking import pipeline_lock
from tasks.relabel import run_relabel
from tasks.run_names import run_name, stage_run_name
from tasks.runtime import link_written_files
from wsss.catalog import ArtifactLayout
from wsss.params import load_params


@flow(name="wsss-relabel", flow_run_name=stage_run_name("relabel"))
def relabel_flow(params_path: str = "params.yaml", runner: dict[str, Any] | None = None) -> dict[str, Any]:
    """Relabel only what changed since the last run; keep replaced masks; log counts and durations.

    Each run takes the locks itself (not the serving process), so stage runs and `dvc repro`
    between scheduled runs are not refused.
    """
    params = load_params(params_path, runner)
    layout = ArtifactLayout.for_params(params)
    with pipeline_lock(layout):
        result = run_relabel(params, layout)
    link_written_files("wsss-relabel-files", result.written, f"Files written by relabel run {result.details['run_stamp']}")
    return result.as_dict()


def serve(args: argparse.Namespace) -> None:
    """Serve the flow as deployment `wsss-relabel/<name>` on the schedule (blocks until stopped);
    its scheduled runs carry the name they run under (`tasks.deployment_names`)."""
    params = load_params(args.params, runner_overrides(args))
    cron, interval = (args.cron, args.interval) if args.cron or args.interval else (params.relabel.cron, params.relabel.interval_seconds)
    if cron is None and interval is None:
        raise SystemExit("error: give --cron or --interval (or set relabel.cron / relabel.interval_seconds)")
    keep_scheduled_runs_named(f"{relabel_flow.name}/{args.name}", run_name("relabel", params))
    relabel_flow.serve(
        name=args.name,
        cron=cron,
        interval=interval,
        parameters={"params_path": args.params, "runner": runner_overrides(args)},
        description="Incremental relabeling of new or changed images",
        limit=1,
    )  # runs write the same artifacts: a run due while one is going waits for it


if __name__ == "__main__":
    sys.exit(
        run_stage(
            {
                "run": lambda args: relabel_flow(args.params, runner_overrides(args)),
                "serve": serve,
                # relabel_flow takes the locks per run; a serving process must not hold them
            },
            lock=False,
            runner=True,
            extra=relabel_serve_arguments,
            stage="relabel",
        )
    )
