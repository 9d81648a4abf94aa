"""Prefect glue of the stage entries: flow-run id, progress and file artifacts, the task runner.

Stage entries (`tasks/<stage>.py`) call the core and report through the small objects here, so
the core never imports Prefect and the flows only wire.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import subprocess
import sys
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock
from uuid import UUID

from prefect import task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NONE
from prefect.context import FlowRunContext
from prefect.settings import get_current_settings
from prefect.task_runners import ThreadPoolTaskRunner

from wsss.incremental import ImageCompute, ShardJob, StageSummary, Submit, run_now, write_shard
from wsss.scaleout import RunnerSettings


def flow_run_id() -> str | None:
    """The Prefect flow-run id of the current run, for lineage records (None outside a flow)."""
    context = FlowRunContext.get()
    return str(context.flow_run.id) if context and context.flow_run else None


def in_flow() -> bool:
    return FlowRunContext.get() is not None


class Progress:
    """A stage's progress as a Prefect progress artifact (the `StageReport` of the entries).

    Updated every `every` images and at the end; outside a flow run it only counts.
    """

    def __init__(self, key: str, description: str, every: int = 10) -> None:
        self.key, self.description, self.every = key, description, max(every, 1)
        self.total, self.done, self.counts = 1, 0, {}
        self.artifact: UUID | None = None

    def start(self, total: int) -> None:
        self.total, self.done = max(total, 1), 0
        if in_flow():
            self.artifact = create_progress_artifact(0.0, key=self.key, description=self.description)

    def advance(self, image_ids: Sequence[str], outcome: str) -> None:
        before = self.done
        self.done += len(image_ids)
        self.counts[outcome] = self.counts.get(outcome, 0) + len(image_ids)
        if self.artifact is not None and (self.done // self.every > before // self.every or self.done >= self.total):
            update_progress_artifact(self.artifact, min(100.0, 100.0 * self.done / self.total))


@task(cache_policy=NONE, retries=1, retry_delay_seconds=2)
def shard_task(job: ShardJob, compute: ImageCompute) -> Any:
    """One shard of a sharded stage, on whatever worker the flow's task runner picks."""
    return write_shard(job, compute)


@contextmanager
def shard_submit(settings: RunnerSettings) -> Iterator[Submit]:
    """`submit` of shard jobs onto the task runner the `runner` section asks for (this process
    outside a flow run): started for one stage entry, so it serves stage flows, the pipeline and
    relabel runs alike."""
    if not in_flow():
        yield run_now
        return
    with task_runner_for(settings) as runner:
        yield lambda job, compute: runner.submit(shard_task, parameters={"job": job, "compute": compute})


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


def markdown(key: str, text: str, description: str) -> None:
    if in_flow():
        create_markdown_artifact(text, key=key, description=description)


def table(rows: list[dict[str, Any]], key: str, description: str) -> None:
    if in_flow() and rows:
        create_table_artifact(rows, key=key, description=description)


def link_written_files(key: str, files: Sequence[Path | str], title: str) -> None:
    """A markdown artifact listing files this run wrote, with `file://` links."""
    lines = [f"### {title}", ""] + [f"- [{Path(p).name}]({Path(p).resolve().as_uri()})" for p in sorted(map(str, files))]
    markdown(key, "\n".join(lines) if files else f"### {title}\n\nnothing written", title)


def link_written_shards(key: str, written: Sequence[str], untouched: Sequence[str]) -> None:
    """A markdown artifact: the shard files this run wrote (absolute paths) and those it left as they were."""
    lines = ["| shard | this run |", "|---|---|"]
    lines += [f"| `{Path(p).resolve()}` | written |" for p in sorted(written)]
    lines += [f"| `{name}` | unchanged (kept from an earlier run) |" for name in sorted(untouched)]
    markdown(key, "\n".join(lines), "Files written by this flow run")


def published_shards(key: str, summary: StageSummary) -> dict[str, Any]:
    """Link the shard files a sharded stage run wrote (a markdown artifact); its summary as a dict."""
    link_written_shards(key, summary.written, summary.untouched)
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
