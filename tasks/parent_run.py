"""One parent flow run per `wsss run`: the stage flow runs DVC starts, each in its own process, are
its subflow runs.

The parent process (`flows/repro.py`, the `wsss-run` flow) puts its flow-run id into
`WSSS_PARENT_FLOW_RUN_ID` for `dvc repro`; a stage process that finds it enters a *detached*
context of that flow run, as Prefect does when it hands a flow run's context to another process
(`prefect.context.hydrated_context`). Calling the stage's flow inside it takes Prefect's own
subflow path: a tracking task run in the parent, then the stage's flow run with
`parent_task_run_id` pointing at it, so the UI opens one run of the command with the stages in it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.results import get_result_store
from prefect.task_runners import ThreadPoolTaskRunner

PARENT_FLOW_RUN_ENV = "WSSS_PARENT_FLOW_RUN_ID"


def parent_flow_run_id() -> UUID | None:
    """The parent flow run named by the environment, if any (a malformed value is ignored)."""
    try:
        return UUID(os.environ[PARENT_FLOW_RUN_ENV])
    except (KeyError, ValueError):
        return None


@contextmanager
def under_parent_flow_run() -> Iterator[None]:
    """Flow runs started inside become subflow runs of the parent flow run (when one is named)."""
    parent = parent_flow_run_id()
    if parent is None or FlowRunContext.get() is not None:  # no parent, or already inside a flow run
        yield
        return
    client = get_client(sync_client=True)
    with client:
        flow_run = client.read_flow_run(parent)
        with (
            ThreadPoolTaskRunner[Any]() as runner,
            FlowRunContext(flow_run=flow_run, client=client, task_runner=runner, result_store=get_result_store(), detached=True),
        ):
            yield
