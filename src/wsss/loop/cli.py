"""The loop's subcommands of `wsss` (argparse only here: every handler imports what it needs, so
each `--help` answers at once)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from wsss.stages import STAGE_NAMES

LOG = "log_name"  # which `.wsss/logs/<name>.log` an expected error's traceback goes to (wsss.cli.main)


def show_status(args: argparse.Namespace) -> int:
    from wsss.catalog import ArtifactLayout
    from wsss.loop.commands import repository_root
    from wsss.loop.status import status_report
    from wsss.params import load_params
    from wsss.relabel import read_run_log

    root = repository_root()
    relabel_log = ArtifactLayout.for_params(load_params(root / "params.yaml"), root).run_log
    print(status_report(root, ArtifactLayout(root), read_run_log(relabel_log), last=args.last))
    return 0


def show_metrics(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from wsss.catalog import ArtifactLayout
    from wsss.evaluation.headline import format_headline, read_headline

    rows, images = read_headline(ArtifactLayout(Path(args.root)))
    print(json.dumps([asdict(r) for r in rows], indent=1) if args.json else format_headline(rows, images))
    return 0


def stage_name(value: str) -> str:
    if value not in STAGE_NAMES:
        raise argparse.ArgumentTypeError(f"unknown stage {value!r}; stages: {', '.join(STAGE_NAMES)}")
    return value


def _handler(name: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        from wsss.loop import commands

        return int(getattr(commands, name)(args))

    return run


def register(commands: Any) -> None:
    """Add run, relabel, serve, status and metrics to the `wsss` subcommands."""
    run = commands.add_parser(
        "run",
        help="run the pipeline (dvc repro) under one Prefect server and one parent flow run",
        description="Run the DVC pipeline (every stage, or STAGE and what it needs) with a private Prefect home "
        "(.prefect/), one local Prefect server unless PREFECT_API_URL names one, and one parent flow run.",
    )
    run.add_argument(
        "stages",
        nargs="*",
        type=stage_name,
        metavar="STAGE",
        help=f"stage(s) to bring up to date with what they depend on (default: all); one of {', '.join(STAGE_NAMES)}",
    )
    run.add_argument("--force", action="store_true", help="rerun the stages even when DVC sees no change (dvc repro --force)")
    run.add_argument(
        "--random-weights-if-missing",
        action="store_true",
        help="when no CLIP weights are found, run with random ones via params.local.yaml (the sample's smoke run; "
        "removed again once real weights are found)",
    )
    run.set_defaults(handler=_handler("run_pipeline"), **{LOG: "run"})

    relabel = commands.add_parser(
        "relabel",
        help="one incremental relabel run of new or changed images",
        description="Relabel only what changed since the last run (python -m flows.relabel run), with the same Prefect set-up as `wsss run`.",
    )
    relabel.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    relabel.set_defaults(handler=_handler("run_relabel"), **{LOG: "relabel"})

    serve = commands.add_parser(
        "serve",
        help="serve the relabel deployment on its schedule until stopped",
        description="Register deployment wsss-relabel/NAME and run its scheduled and manual runs. "
        "Schedules need a server that stays up: the one PREFECT_API_URL names, else a "
        "local one on --port for as long as this command runs.",
    )
    serve.add_argument("--cron", help="cron schedule, e.g. '0 3 * * *' (default: relabel.cron)")
    serve.add_argument("--interval", type=int, help="seconds between runs (default: relabel.interval_seconds)")
    serve.add_argument("--name", default="relabel", help="deployment name (default: relabel)")
    serve.add_argument("--port", type=int, default=4200, help="port of the local Prefect server when PREFECT_API_URL is unset (default: 4200)")
    serve.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    serve.set_defaults(handler=_handler("serve_relabel"), **{LOG: "serve"})

    status = commands.add_parser("status", help="what is stale, why, and what the last runs did")
    status.add_argument("--last", type=int, default=5, help="how many of the last runs to list (default: 5)")
    status.set_defaults(handler=show_status, **{LOG: "status"})

    metrics = commands.add_parser("metrics", help="the headline metrics of the last evaluate run, as a table")
    metrics.add_argument("--root", default=".", help="pipeline repository (default: .)")
    metrics.add_argument("--json", action="store_true", help="machine-readable output")
    metrics.set_defaults(handler=show_metrics)
