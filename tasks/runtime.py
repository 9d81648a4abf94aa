"""Prefect glue of the stage entries: flow-run id, named task runs, table/markdown/file artifacts.

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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock
from urllib.parse import quote

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.context import FlowRunContext
from prefect.settings import get_current_settings

from wsss.params import Params


def flow_run_id() -> str | None:
    """The Prefect flow-run id of the current run, for lineage records (None outside a flow)."""
    context = FlowRunContext.get()
    return str(context.flow_run.id) if context and context.flow_run else None


def in_flow() -> bool:
    return FlowRunContext.get() is not None


Result = TypeVar("Result")


def log_protocol(params: Params, *sections: str) -> None:
    """Log the values of the keys the class preset fixes (of `sections`, default all) and where
    each comes from: the preset, the user, or the section default (`Params.protocol_lines`)."""
    if in_flow():
        for line in params.protocol_lines(*sections):
            get_run_logger().info("protocol: %s", line)


def named_step(name: str, step: Callable[[], Result]) -> Result:
    """Run `step` as a Prefect task run called `name` inside a flow run, so every variant (the
    model with CRF on and off, the learned pass's cams/refine/pseudo) is its own line in the UI;
    outside a flow run, just call it."""
    if not in_flow():
        return step()
    return task(name=name, task_run_name=name, cache_policy=NONE)(step)()


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
