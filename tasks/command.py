"""Command line of the stage flows: `python -m flows.<stage> [--params params.yaml] [runner options]`.

Before any work the params file is loaded and checked (a bad value is one line naming the file
and the dotted key, exit 2); then the run takes its locks (`tasks.locking`) and runs the flow (its
shard jobs on the task runner of the `runner` section, plus `--runner/--dask-address/--workers`). Exit
0, or 2 with one line on a pipeline error (bad dataset file, too many failed images, another run
holding the artifacts, a full disk, missing CLIP weights: its traceback goes to
`.wsss/logs/<stage>.log`, not to the console), or 143 after SIGTERM (130 after SIGINT): Prefect
marks the run crashed, the locks are released. Under `wsss run` the flow run is a subflow run of
the command's parent flow run (`tasks.parent_run`).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from prefect.exceptions import TerminationSignal

from tasks.command_line import ExtraArguments, add_runner_arguments, runner_overrides, stage_parser
from tasks.locking import pipeline_lock
from tasks.parent_run import under_parent_flow_run
from tasks.run_names import stage_tags
from tasks.runtime import start_temporary_server_outside_our_process_group
from wsss.catalog import ArtifactLayout
from wsss.error_log import one_line, record_traceback
from wsss.errors import WsssError
from wsss.params import load_params
from wsss.run_lock import describe_owner

__all__ = ["EXIT_ERROR", "add_runner_arguments", "run_stage", "runner_overrides"]

EXIT_ERROR, EXIT_TERMINATED, EXIT_INTERRUPTED = 2, 128 + signal.SIGTERM, 128 + signal.SIGINT


class Terminated(BaseException):
    """SIGTERM arrived outside a flow run (Prefect raises its own `TerminationSignal` inside one)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


@contextmanager
def expected_errors_off_the_console() -> Iterator[None]:
    """Prefect logs a failed flow's exception with its whole chained traceback on the console (the
    root logger's handlers): for an expected error (`WsssError`) that record is kept off the
    console, where `run_stage` prints one line and puts the traceback in the log file. The UI still
    gets it (the flow-run logger's API handler)."""

    def keep(record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], WsssError))

    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(keep)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(keep)


def run_stage(
    flows: Mapping[str, Callable[[argparse.Namespace], Any]],
    argv: list[str] | None = None,
    *,
    lock: bool = True,
    runner: bool = False,
    extra: ExtraArguments | None = None,
    stage: str | None = None,
) -> int:
    """Run the named flow (the only one when the module has one); each callable gets the parsed
    arguments (`args.params`, runner overrides, `extra` options). Its flow runs are tagged with the
    dataset, `stage` (default: the flow's key) and experiment (`tasks.run_names`).

    `lock=False` is for commands whose flows take the locks per run themselves (relabel).
    """
    args = stage_parser(tuple(flows), runner, extra).parse_args(argv)
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
            with stage_tags(stage or name, params), expected_errors_off_the_console(), under_parent_flow_run():
                flows[name](args)
    except WsssError as error:
        log = record_traceback(ArtifactLayout().log_file(stage or name), error, f"stage {stage or name}")
        print(one_line(error, log), file=sys.stderr)
        return EXIT_ERROR
    except (Terminated, TerminationSignal, KeyboardInterrupt) as stop:
        name = "SIGINT" if isinstance(stop, KeyboardInterrupt) else "SIGTERM"
        print(f"error: stopped by {name}; the Prefect flow run (if one had started) is marked crashed, locks released", file=sys.stderr)
        return EXIT_INTERRUPTED if isinstance(stop, KeyboardInterrupt) else EXIT_TERMINATED
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
