"""The Prefect task runner that maps the `cams` shards: in-process, or prefect-dask on a Dask cluster."""

from __future__ import annotations

import argparse
from typing import Any

from prefect.task_runners import ThreadPoolTaskRunner

from wsss.scaleout import RunnerSettings


def task_runner_for(settings: RunnerSettings) -> Any:
    """ThreadPoolTaskRunner(1) for `sequential`; DaskTaskRunner on `address`, or on a LocalCluster."""
    if settings.kind == "sequential":
        return ThreadPoolTaskRunner(max_workers=1)
    from prefect_dask import DaskTaskRunner

    if settings.address:
        return DaskTaskRunner(address=settings.address)
    # One thread per worker process: torch already uses every core of its process, and the
    # extractor cached per process is not shared between threads.
    return DaskTaskRunner(cluster_kwargs={"n_workers": settings.workers, "threads_per_worker": 1, "processes": True})


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """--runner/--dask-address/--workers: override the `runner` params section for one run."""
    parser.add_argument("--runner", choices=("sequential", "dask"), help="override runner.kind")
    parser.add_argument("--dask-address", dest="address", help="override runner.address (tcp://host:8786)")
    parser.add_argument("--workers", type=int, help="override runner.workers (LocalCluster size)")


def runner_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {"kind": args.runner, "address": args.address, "workers": args.workers}
