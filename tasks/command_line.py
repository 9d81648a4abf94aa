"""The stage commands' argument parsing, without Prefect: `python -m flows.<stage> --help` and a
usage error answer before Prefect and the stage's libraries are imported (`answer_help_early`).

`tasks.command.run_stage` parses with the same parser before it runs anything.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

ExtraArguments = Callable[[argparse.ArgumentParser], None]


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """--runner/--dask-address/--workers: override the `runner` params section for one run."""
    parser.add_argument("--runner", choices=("sequential", "dask"), help="override runner.kind")
    parser.add_argument("--dask-address", dest="address", help="override runner.address (tcp://host:8786)")
    parser.add_argument("--workers", type=int, help="override runner.workers (LocalCluster size)")


def runner_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {"kind": getattr(args, "runner", None), "address": getattr(args, "address", None), "workers": getattr(args, "workers", None)}


def relabel_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """`python -m flows.relabel serve`: the schedule and the deployment name."""
    parser.add_argument("--cron", help="serve: cron schedule, e.g. '0 3 * * *'")
    parser.add_argument("--interval", type=int, help="serve: seconds between runs")
    parser.add_argument("--name", default="relabel", help="serve: deployment name (default: relabel)")


def repro_arguments(parser: argparse.ArgumentParser) -> None:
    """`python -m flows.repro` (`wsss run`'s parent flow run): what `dvc repro` gets."""
    parser.add_argument("targets", nargs="*", help="stages to reproduce with what they need (default: all)")
    parser.add_argument("--force", action="store_true", help="dvc repro --force: rerun even when nothing changed")


def stage_parser(names: Sequence[str], runner: bool = False, extra: ExtraArguments | None = None) -> argparse.ArgumentParser:
    """The command line of a flow module serving the commands `names` (a positional choice when several)."""
    parser = argparse.ArgumentParser(description="Run a wsss pipeline stage as a Prefect flow")
    if len(names) > 1:
        parser.add_argument("stage", choices=sorted(names), help="what to run")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    if runner:
        add_runner_arguments(parser)
    if extra:
        extra(parser)
    return parser


def answer_help_early(names: Sequence[str], runner: bool = False, extra: ExtraArguments | None = None) -> None:
    """Parse `sys.argv` now (in a `__main__` module, before its heavy imports): argparse prints the
    help or the usage error and exits, so neither waits for Prefect, torch or the stage code; any
    other command line goes on to the module's imports and is parsed again by `run_stage`."""
    stage_parser(names, runner, extra).parse_args(sys.argv[1:])
