"""Prefect glue of the stage entries: flow-run id, progress and file artifacts, the task runner.

Stage entries (`tasks/<stage>.py`) call the core and report through the small objects here, so
the core never imports Prefect and the flows only wire.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import socket
import subprocess
import sys
import threading
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock
from urllib.parse import quote

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.context import FlowRunContext
from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings
from prefect.task_runners import ThreadPoolTaskRunner

from tasks.progress import Progress, shards_outcome
from wsss.incremental import ImageCompute, ShardJob, StageSummary, Submit, run_now, write_shard
from wsss.scaleout import RunnerSettings


def flow_run_id() -> str | None:
    """The Prefect flow-run id of the current run, for lineage records (None outside a flow)."""
    context = FlowRunContext.get()
    return str(context.flow_run.id) if context and context.flow_run else None


def in_flow() -> bool:
    return FlowRunContext.get() is not None


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
        raise FileNotFoundError(f"Dask worker on {socket.gethostname()}: the stage's working directory {workdir} does "
                                "not exist here; every worker host needs the repository at the same path (shared filesystem)")
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
        yield lambda job, compute: runner.submit(shard_task.with_options(task_run_name=f"{stage} shard {job.index}"),
                                                 parameters={"job": job, "compute": compute, "workdir": workdir})
        if settings.kind == "dask":  # every shard is written: a worker that cannot send its logs costs only them
            runner.client.run(_send_queued_reports, on_error="ignore")


async def _send_queued_reports() -> None:
    """On each Dask worker, before the stage ends (and may stop its temporary server): send the log
    lines and events its task runs queued (Prefect sends them in batches, on a thread)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    await APILogWorker.drain_all(timeout=30, at_exit=False)
    await EventsWorker.drain_all(timeout=30, at_exit=False)


def task_runner_for(settings: RunnerSettings) -> Any:
    """ThreadPoolTaskRunner(1) for `sequential`; DaskTaskRunner on `address`, or on a LocalCluster."""
    if settings.kind == "sequential":
        return ThreadPoolTaskRunner(max_workers=1)
    from prefect_dask import DaskTaskRunner

    if settings.address:
        return DaskTaskRunner(address=settings.address)
    # One thread per worker process: the extractor cached per process is not shared between
    # threads. (Dask's nanny sets OMP_NUM_THREADS=1 in its workers, so torch runs one thread there.)
    return DaskTaskRunner(cluster_kwargs={"n_workers": settings.local_processes(), "threads_per_worker": 1, "processes": True})


Result = TypeVar("Result")


def named_step(name: str, step: Callable[[], Result]) -> Result:
    """Run `step` as a Prefect task run called `name` inside a flow run, so every variant (the
    model with CRF on and off, the learned pass's cams/refine/pseudo) is its own line in the UI;
    outside a flow run, just call it."""
    if not in_flow():
        return step()
    return task(step, name=name, task_run_name=name, cache_policy=NONE)()


def markdown(key: str, text: str, description: str) -> None:
    if in_flow():
        create_markdown_artifact(text, key=key, description=description)


def table(rows: list[dict[str, Any]], key: str, description: str) -> None:
    if in_flow() and rows:
        create_table_artifact(rows, key=key, description=description)


ARTIFACTS_URL_ENV = "WSSS_ARTIFACTS_URL"


def file_reference(path: Path | str) -> str:
    """A written file as the Prefect UI can show it: its repository-relative path as copyable code
    (`file://` links do nothing from an http page), linked under `$WSSS_ARTIFACTS_URL` when someone
    serves the repository folder (e.g. `python -m http.server` in it)."""
    resolved = Path(path).resolve()
    try:
        shown = resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        shown = str(resolved)
    base = os.environ.get(ARTIFACTS_URL_ENV, "").rstrip("/")
    if base and not Path(shown).is_absolute():
        return f"[`{shown}`]({base}/{quote(shown)})"
    return f"`{shown}`"


def link_written_files(key: str, files: Sequence[Path | str], title: str) -> None:
    """A markdown artifact listing files this run wrote (`file_reference`)."""
    lines = [f"### {title}", ""] + [f"- {file_reference(p)}" for p in sorted(map(str, files))]
    markdown(key, "\n".join(lines) if files else f"### {title}\n\nnothing written", title)


def link_written_shards(key: str, written: Sequence[str], untouched: Sequence[str]) -> None:
    """A markdown artifact: the shard files this run wrote and those it left as they were."""
    lines = ["| shard | this run |", "|---|---|"]
    lines += [f"| {file_reference(p)} | written |" for p in sorted(written)]
    lines += [f"| `{name}` | unchanged (kept from an earlier run) |" for name in sorted(untouched)]
    markdown(key, "\n".join(lines), "Files written by this flow run")


def published_shards(key: str, summary: StageSummary, progress: Progress | None = None) -> dict[str, Any]:
    """Link the shard files a sharded stage run wrote (a markdown artifact), log what it did; its
    summary as a dict."""
    link_written_shards(key, summary.written, summary.untouched)
    if progress is not None:
        progress.finish(shards_outcome(summary))
    return summary.as_dict()


def _end_with_parent(parent: int, libc: Any) -> None:
    """In the server process, before exec: receive SIGTERM when the stage process dies (Linux)."""
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def start_temporary_server_outside_our_process_group() -> None:
    """Start Prefect's temporary API server (when no `PREFECT_API_URL` is set) in its own session.

    Prefect starts it as a child in the stage's process group, so a SIGTERM or Ctrl-C sent to the
    group (a terminal, a supervisor, `kill -- -pgid`) also stopped the server before the stage could
    report its crash, and the flow run stayed RUNNING for ever. In its own session it outlives the
    signal long enough; it still ends with the stage process (Prefect stops it at exit; the kernel
    sends it SIGTERM when the stage dies, even by SIGKILL). Started from the main thread, which
    that kernel notice is tied to. Linux only; elsewhere Prefect's own start is kept.
    """
    if get_current_settings().api.url or not sys.platform.startswith("linux"):
        return
    from prefect.server.api import server as prefect_server

    libc = ctypes.CDLL(None, use_errno=True)
    popen = functools.partial(subprocess.Popen, start_new_session=True, preexec_fn=functools.partial(_end_with_parent, os.getpid(), libc))

    class DetachedServer(prefect_server.SubprocessASGIServer):
        def _run_uvicorn_command(self) -> Any:
            detached = types.SimpleNamespace(Popen=popen, TimeoutExpired=subprocess.TimeoutExpired)
            with mock.patch.object(prefect_server, "subprocess", detached):
                return super()._run_uvicorn_command()

    DetachedServer().start()  # the instance Prefect's clients get (`SubprocessASGIServer()` is one per port)
