"""What `wsss run` remembers between runs (`.wsss/runs.jsonl`, one line per run): when it ran, what
it asked DVC for, how it ended, each stage flow run's final state, its parent flow run, and the
params.local.yaml it ran with.

DVC never sees the untracked params.local.yaml (merged over params.yaml by every stage), so a
change there would go unnoticed by `dvc repro`: `wsss run` compares the file with the one of the
last completed run and reruns every stage when they differ (as `make pipeline` did when it wrote
the file itself), and `wsss status` says so.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wsss.catalog import ArtifactLayout
from wsss.local_params import LOCAL_PARAMS
from wsss.relabel.history import append_run_log, read_run_log

COMPLETED, FAILED = "completed", "failed"


@dataclass(frozen=True)
class LoopRun:
    """One `wsss run` as logged."""

    started: str
    seconds: float
    targets: list[str]
    force: bool
    outcome: str
    stages: dict[str, str] = field(default_factory=dict)
    flow_run_id: str | None = None
    flow_run_name: str | None = None
    params_local_sha256: str | None = None
    command: str = "run"


def local_params_digest(root: Path) -> str | None:
    """SHA-256 of params.local.yaml's bytes, or None when there is none."""
    path = root / LOCAL_PARAMS
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def record_loop_run(layout: ArtifactLayout, run: LoopRun) -> None:
    append_run_log(layout.loop_runs, run)


def loop_runs(layout: ArtifactLayout) -> list[dict[str, Any]]:
    """Every logged `wsss run`, oldest first."""
    return read_run_log(layout.loop_runs)


def last_completed_run(layout: ArtifactLayout) -> dict[str, Any] | None:
    return next((run for run in reversed(loop_runs(layout)) if run.get("outcome") == COMPLETED), None)


def local_params_changed(layout: ArtifactLayout) -> bool:
    """Whether params.local.yaml differs from the one the last completed `wsss run` used (False
    before the first: there is nothing to compare with, and a first run computes everything)."""
    last = last_completed_run(layout)
    return last is not None and last.get("params_local_sha256") != local_params_digest(layout.repo)
