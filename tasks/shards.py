"""The shards of a sharded stage (`cams`, `refine`, both passes) on the task runner of the `runner`
section, and what such a run publishes: the shard files and its closing line."""

from __future__ import annotations

import inspect
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect import task
from prefect.cache_policies import NONE
from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings
from prefect.task_runners import ThreadPoolTaskRunner

from tasks.progress import Progress, shards_outcome
from tasks.runtime import in_flow, link_written_shards
from wsss.incremental import ImageCompute, ShardJob, Submit, run_now, write_shard
from wsss.scaleout import RunnerSettings
from wsss.stage_result import StageResult

_DIRECTORY_LOCK = threading.Lock()


@contextmanager
def stage_directory(workdir: str) -> Iterator[None]:
    """Run in the stage process's working directory: a shard job's paths (dataset, scratch, stores)
    are relative to it, and a `dask worker` may have been started anywhere. The working directory
    is one per process, so jobs that must move there run one at a time in a worker process."""
    if os.path.realpath(os.getcwd()) == os.path.realpath(workdir):
        yield
        return
    if not os.path.isdir(workdir):
        raise FileNotFoundError(
            f"Dask worker on {socket.gethostname()}: the stage's working directory {workdir} does "
            "not exist here; every worker host needs the repository at the same path (shared filesystem)"
        )
    with _DIRECTORY_LOCK:
        previous = os.getcwd()
        os.chdir(workdir)
        try:
            yield
        finally:
            os.chdir(previous)


@task(cache_policy=NONE, retries=1, retry_delay_seconds=2)
def shard_task(job: ShardJob, compute: ImageCompute, workdir: str) -> Any:
    """One shard of a sharded stage, on whatever worker the flow's task runner picks, in `workdir`."""
    with stage_directory(workdir):
        return write_shard(job, compute)


def api_url() -> str | None:
    """The Prefect API this process reports to: `PREFECT_API_URL`, or the temporary server it started."""
    url = get_current_settings().api.url
    if url:
        return url
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the temporary server's one instance (`start_temporary_server...`)
    return server.api_url if server.running else None


@contextmanager
def workers_report_here(settings: RunnerSettings) -> Iterator[None]:
    """Dask workers get the stage's Prefect settings with every task (prefect-dask serialises the
    settings context), but a temporary server has no URL in them, so each worker started one of its
    own; the URL is set here for the tasks submitted inside. (A worker on another host reaches
    only a server listening there: a multi-host run sets `PREFECT_API_URL` to a real server.)"""
    url = api_url() if settings.kind == "dask" else None
    if url is None or get_current_settings().api.url == url:
        yield
        return
    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield


@contextmanager
def shard_submit(settings: RunnerSettings, stage: str = "shard") -> Iterator[Submit]:
    """`submit` of shard jobs onto the task runner the `runner` section asks for (this process
    outside a flow run): started for one stage entry, so it serves stage flows, the pipeline and
    relabel runs alike. Task runs are named `<stage> shard <index>` (the learned pass's apart);
    each runs in this process's working directory and reports to this process's Prefect API."""
    if not in_flow():
        yield run_now
        return
    workdir = os.getcwd()
    with workers_report_here(settings), task_runner_for(settings) as runner:
        yield lambda job, compute: runner.submit(
            shard_task.with_options(task_run_name=f"{stage} shard {job.index}"), parameters={"job": job, "compute": compute, "workdir": workdir}
        )
        if settings.kind == "dask":  # every shard is written: a worker that cannot send its logs costs only them
            runner.client.run(_send_queued_reports, on_error="ignore")


async def _send_queued_reports() -> None:
    """On each Dask worker, before the stage ends (and may stop its temporary server): send the log
    lines and events its task runs queued (Prefect sends them in batches, on a thread)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        drained = worker.drain_all(timeout=30, at_exit=False)
        if inspect.isawaitable(drained):  # always here, in a running loop (outside one it waits itself)
            await drained


def task_runner_for(settings: RunnerSettings) -> Any:
    """ThreadPoolTaskRunner(1) for `sequential`; DaskTaskRunner on `address`, or on a LocalCluster."""
    if settings.kind == "sequential":
        return ThreadPoolTaskRunner(max_workers=1)
    from prefect_dask.task_runners import DaskTaskRunner

    if settings.address:
        return DaskTaskRunner(address=settings.address)
    # One thread per worker process: the extractor cached per process is not shared between
    # threads. (Dask's nanny sets OMP_NUM_THREADS=1 in its workers, so torch runs one thread there.)
    return DaskTaskRunner(cluster_kwargs={"n_workers": settings.local_processes(), "threads_per_worker": 1, "processes": True})


def published_shards(key: str, result: StageResult, progress: Progress | None = None) -> dict[str, Any]:
    """Link the shard files a sharded stage run wrote (a markdown artifact), log what it did; the
    result as a dict."""
    link_written_shards(key, result.written, result.details["untouched"])
    if progress is not None:
        progress.finish(shards_outcome(result))
    return result.as_dict()
