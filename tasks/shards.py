"""The shards of a sharded stage (`cams`, `refine`, both passes) on the task runner of the `runner`
section, and what such a run publishes: the shard files and its closing line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect import task
from prefect.cache_policies import NONE
from prefect.task_runners import ThreadPoolTaskRunner

from tasks.progress import Progress, shards_outcome
from tasks.runtime import in_flow, link_written_shards
from wsss.incremental import ImageCompute, ShardJob, Submit, run_now, write_shard
from wsss.scaleout import RunnerSettings
from wsss.stage_result import StageResult


@task(cache_policy=NONE, retries=1, retry_delay_seconds=2)
def shard_task(job: ShardJob, compute: ImageCompute) -> Any:
    """One shard of a sharded stage, on whatever worker the flow's task runner picks."""
    return write_shard(job, compute)


@contextmanager
def shard_submit(settings: RunnerSettings, stage: str = "shard") -> Iterator[Submit]:
    """`submit` of shard jobs onto the task runner the `runner` section asks for (this process
    outside a flow run): started for one stage entry, so it serves stage flows, the pipeline and
    relabel runs alike. Task runs are named `<stage> shard <index>` (the learned pass's apart)."""
    if not in_flow():
        yield run_now
        return
    with task_runner_for(settings) as runner:
        yield lambda job, compute: runner.submit(shard_task.with_options(task_run_name=f"{stage} shard {job.index}"),
                                                 parameters={"job": job, "compute": compute})


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


def published_shards(key: str, result: StageResult, progress: Progress | None = None) -> dict[str, Any]:
    """Link the shard files a sharded stage run wrote (a markdown artifact), log what it did; the
    result as a dict."""
    link_written_shards(key, result.written, result.details["untouched"])
    if progress is not None:
        progress.finish(shards_outcome(result))
    return result.as_dict()
