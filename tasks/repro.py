"""`wsss run`'s parent flow run: `dvc repro` as a child process whose stage processes report their
flow runs as subflow runs of this one (`tasks.parent_run`), then the run's record
(`.wsss/runs.jsonl`) with each stage flow run's final state.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
from prefect.context import FlowRunContext

from tasks.parent_run import PARENT_FLOW_RUN_ENV
from tasks.progress import run_logger
from tasks.runtime import table
from wsss.catalog import ArtifactLayout
from wsss.errors import LoopError
from wsss.loop.records import COMPLETED, FAILED, LoopRun, local_params_digest, record_loop_run
from wsss.stages import in_pipeline_order

STAGE_TAG = "stage:"


def subflow_states(parent: UUID) -> dict[str, str]:
    """Stage -> final state name of each stage flow run under `parent`, in pipeline order."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent])))
    states: dict[str, str] = {}
    for run in runs:
        stage = next((tag.removeprefix(STAGE_TAG) for tag in run.tags if tag.startswith(STAGE_TAG)), run.name)
        states[stage] = run.state.name if run.state and run.state.name else "unknown"
    ordered = in_pipeline_order(list(states))
    return {**{name: states[name] for name in ordered}, **{k: v for k, v in states.items() if k not in ordered}}


def run_dvc_repro(targets: Sequence[str], force: bool) -> dict[str, Any]:
    """`dvc repro [--force] [targets]` in the working directory (the repository), inside this flow run."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        raise LoopError("run_dvc_repro runs inside the wsss-run flow")
    with get_client(sync_client=True) as client:
        api_url = str(client.api_url)
    env = {**os.environ, PARENT_FLOW_RUN_ENV: str(context.flow_run.id), "PREFECT_API_URL": api_url}
    command = [sys.executable, "-m", "dvc", "repro", *(["--force"] if force else []), *targets]
    run_logger().info("%s (stage flow runs report here, to %s)", " ".join(["dvc", *command[3:]]), api_url)
    started, clock = datetime.now(UTC), time.monotonic()
    code = subprocess.run(command, env=env, check=False).returncode
    stages = subflow_states(context.flow_run.id)
    outcome = COMPLETED if code == 0 else FAILED
    record_loop_run(
        ArtifactLayout(),
        LoopRun(
            started=started.strftime("%Y-%m-%d %H:%M UTC"),
            seconds=round(time.monotonic() - clock, 1),
            targets=list(targets),
            force=force,
            outcome=outcome,
            stages=stages,
            flow_run_id=str(context.flow_run.id),
            flow_run_name=context.flow_run.name,
            params_local_sha256=local_params_digest(Path.cwd()),
        ),
    )
    table([{"stage": name, "state": state} for name, state in stages.items()], "wsss-run-stages", "Stage flow runs of this run")
    if code != 0:
        failed = [name for name, state in stages.items() if state.lower() != "completed"]
        raise LoopError(f"dvc repro failed (exit {code})" + (f": stage {', '.join(failed)} did not complete" if failed else ""))
    return {"stages": stages, "seconds": round(time.monotonic() - clock, 1)}
