"""Command line of the stage flows: `python -m flows.<stage> [--params params.yaml] [runner options]`.

Before any work the params file is loaded and checked (a bad value is one line naming the file
and the dotted key, exit 2); then the run takes its locks (`tasks.locking`) and runs the flow (its
shard jobs on the task runner of the `runner` section, plus `--runner/--dask-address/--workers`). Exit
0, or 2 with one line on a pipeline error (bad dataset file, too many failed images, another run
holding the artifacts, a full disk), or 143 after SIGTERM (130 after SIGINT): Prefect marks the run
crashed, the locks are released.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from prefect.exceptions import TerminationSignal

from tasks.locking import pipeline_lock
from tasks.run_names import stage_tags
from tasks.runtime import start_temporary_server_outside_our_process_group
from wsss.catalog import ArtifactLayout
from wsss.errors import WsssError
from wsss.params import load_params
from wsss.run_lock import describe_owner

EXIT_ERROR, EXIT_TERMINATED, EXIT_INTERRUPTED = 2, 128 + signal.SIGTERM, 128 + signal.SIGINT


class Terminated(BaseException):
    """SIGTERM arrived outside a flow run (Prefect raises its own `TerminationSignal` inside one)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """--runner/--dask-address/--workers: override the `runner` params section for one run."""
    parser.add_argument("--runner", choices=("sequential", "dask"), help="override runner.kind")
    parser.add_argument("--dask-address", dest="address", help="override runner.address (tcp://host:8786)")
    parser.add_argument("--workers", type=int, help="override runner.workers (LocalCluster size)")


def runner_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {"kind": getattr(args, "runner", None), "address": getattr(args, "address", None), "workers": getattr(args, "workers", None)}


def parse(
    flows: Mapping[str, Any], argv: list[str] | None, runner: bool, extra: Callable[[argparse.ArgumentParser], None] | None
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run a wsss pipeline stage as a Prefect flow")
    if len(flows) > 1:
        parser.add_argument("stage", choices=sorted(flows))
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    if runner:
        add_runner_arguments(parser)
    if extra:
        extra(parser)
    return parser.parse_args(argv)


def run_stage(
    flows: Mapping[str, Callable[[argparse.Namespace], Any]],
    argv: list[str] | None = None,
    *,
    lock: bool = True,
    runner: bool = False,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
    stage: str | None = None,
) -> int:
    """Run the named flow (the only one when the module has one); each callable gets the parsed
    arguments (`args.params`, runner overrides, `extra` options). Its flow runs are tagged with the
    dataset, `stage` (default: the flow's key) and experiment (`tasks.run_names`).

    `lock=False` is for commands whose flows take the locks per run themselves (relabel).
    """
    args = parse(flows, argv, runner, extra)
    name = getattr(args, "stage", next(iter(flows)))
    if not Path(args.params).is_file():
        print(f"error: {args.params}: params file not found", file=sys.stderr)
        return EXIT_ERROR
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        params = load_params(args.params, runner_overrides(args))  # every key checked before any work
        start_temporary_server_outside_our_process_group()
        with pipeline_lock(ArtifactLayout.for_params(params)) if lock else nullcontext() as held:
            if held is not None and held.stale_owner is not None:
                print(f"note: took over the stale run lock of {describe_owner(held.stale_owner)}", file=sys.stderr)
            with stage_tags(stage or name, params):
                flows[name](args)
    except WsssError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except (Terminated, TerminationSignal, KeyboardInterrupt) as stop:
        name = "SIGINT" if isinstance(stop, KeyboardInterrupt) else "SIGTERM"
        print(f"error: stopped by {name}; the Prefect flow run (if one had started) is marked crashed, locks released",
              file=sys.stderr)
        return EXIT_INTERRUPTED if isinstance(stop, KeyboardInterrupt) else EXIT_TERMINATED
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
