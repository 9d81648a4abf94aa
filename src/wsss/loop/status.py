"""`wsss status`: what a `wsss run` would do now, and what the last runs did.

* stale stages with DVC's reasons (`dvc status --json`), and the stages after them that rerun when
  their outputs change (from the stage table: DVC lists those only once the first has run);
* whether params.local.yaml changed since the last completed `wsss run` (DVC cannot see it);
* the last `wsss run`s (`.wsss/runs.jsonl`: outcome, duration, each stage flow run's state, the
  parent flow run) and the last relabel run (its own run log).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from wsss.bounded_parsing import ParseError, loads_json
from wsss.catalog import ArtifactLayout
from wsss.errors import LoopError
from wsss.loop.prefect_server import loop_environment
from wsss.loop.records import local_params_changed, loop_runs
from wsss.stages import STAGE_NAMES, in_pipeline_order, upstream_of


def dvc_status(root: Path, targets: Sequence[str] = ()) -> dict[str, Any]:
    """`dvc status --json` (of `targets` and the stages they depend on, or of every stage)."""
    command = [sys.executable, "-m", "dvc", "status", "--json", *(["--with-deps", *targets] if targets else [])]
    try:
        result = subprocess.run(command, cwd=root, env=loop_environment(root), capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        raise LoopError(f"`dvc status` could not run ({error})") from error
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise LoopError(f"`dvc status` failed (exit {result.returncode}): {last}")
    try:
        status = loads_json(result.stdout or "{}", "dvc status --json")
    except ParseError as error:
        raise LoopError(str(error)) from error
    return status if isinstance(status, dict) else {}


def change_reasons(entries: Sequence[Any]) -> list[str]:
    """DVC's reasons for one stage, as short phrases (`deps: data/photos modified`, `params.yaml: cam.max_side modified`)."""
    reasons = []
    for entry in entries:
        if isinstance(entry, str):  # "always changed", "changed checksum"
            reasons.append(entry)
            continue
        for kind, changes in entry.items() if isinstance(entry, Mapping) else ():
            label = kind.removeprefix("changed ")
            for path, what in changes.items() if isinstance(changes, Mapping) else ():
                if isinstance(what, Mapping):  # params: key -> state
                    reasons.append(f"{path}: " + ", ".join(f"{key} {state}" for key, state in what.items()))
                else:
                    reasons.append(f"{label}: {path} {what}")
    return reasons


def stale_stages(root: Path, targets: Sequence[str] = ()) -> dict[str, list[str]]:
    """Stage -> why DVC would rerun it (only stages of the table; empty when all is up to date)."""
    status = dvc_status(root, targets)
    return {name: change_reasons(status[name]) for name in STAGE_NAMES if name in status}


def downstream_of(stages: Sequence[str]) -> tuple[str, ...]:
    """The stages that read (directly or not) an output of `stages`, in pipeline order."""
    return in_pipeline_order({name for name in STAGE_NAMES if name not in stages and set(upstream_of(name)) & set(stages)})


def duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def run_line(run: Mapping[str, Any]) -> str:
    targets = ", ".join(run.get("targets") or []) or "all stages"
    states = run.get("stages") or {}
    stages = ", ".join(f"{name} {states[name].lower()}" for name in in_pipeline_order(list(states))) or "no stage ran"
    forced = " (forced)" if run.get("force") else ""
    flow_run = f"; flow run '{run['flow_run_name']}'" if run.get("flow_run_name") else ""
    return f"  {run.get('started', '?')}  {targets}{forced}: {run.get('outcome')} in {duration(float(run.get('seconds') or 0))}; {stages}{flow_run}"


def status_report(root: Path, layout: ArtifactLayout, relabel_runs: list[dict[str, Any]], last: int = 5) -> str:
    """The text `wsss status` prints."""
    stale = stale_stages(root)
    lines = [f"Pipeline (dvc status): {'up to date' if not stale else f'{len(stale)} stage(s) to rerun'}"]
    lines += [f"  {name}: {'; '.join(reasons) or 'changed'}" for name, reasons in stale.items()]
    after = downstream_of(list(stale))
    if after:
        lines.append(f"  then, when their outputs change: {', '.join(after)}")
    if local_params_changed(layout):
        lines.append("params.local.yaml: changed since the last completed `wsss run` (DVC does not see it): `wsss run` reruns every stage")
    runs = loop_runs(layout)
    lines.append(
        f"Last runs (wsss run, newest first; {len(runs)} logged in {layout.loop_runs.relative_to(layout.repo)}):"
        if runs
        else "Last runs: none logged by `wsss run` yet"
    )
    lines += [run_line(run) for run in reversed(runs[-last:])]
    if relabel_runs:
        latest = relabel_runs[-1]
        counts = ", ".join(f"{key} {value}" for key, value in (latest.get("counts") or {}).items())
        lines.append(f"Relabel: last run {latest.get('run_stamp')} ({counts}; retrained: {'yes' if latest.get('retrained') else 'no'})")
    lines.append("Browse the runs: PREFECT_HOME=.prefect prefect server start (then http://127.0.0.1:4200)")
    return "\n".join(lines)
