"""Command line of the stage flows: `python -m flows.<stage> [--params params.yaml]`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from wsss.errors import WsssError
from wsss.run_lock import describe_owner, run_lock

# Relative to the working directory, like every artifact path of the stages (tasks/common.py).
ARTIFACTS_DIR = Path("artifacts")


def run_stage(flows: Mapping[str, Callable[[str], Any]], argv: list[str] | None = None, lock: bool = True) -> int:
    """Run the named flow (the only one when the module has one) holding the artifacts run lock.

    `lock=False` is for commands whose flows take the lock per run themselves (relabel serve).
    WsssError (bad params, bad dataset files, too many failed images, another run holding the
    lock) -> its message on stderr, exit 2.
    """
    parser = argparse.ArgumentParser(description="Run a wsss pipeline stage as a Prefect flow")
    if len(flows) > 1:
        parser.add_argument("stage", choices=sorted(flows))
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    name = getattr(args, "stage", next(iter(flows)))
    if not Path(args.params).is_file():
        print(f"error: {args.params}: params file not found", file=sys.stderr)
        return 2
    try:
        with run_lock(ARTIFACTS_DIR) if lock else nullcontext() as held:
            if held is not None and held.stale_owner is not None:
                print(f"note: took over the stale run lock of {describe_owner(held.stale_owner)}", file=sys.stderr)
            flows[name](args.params)
    except WsssError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
