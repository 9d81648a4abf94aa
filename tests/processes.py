"""Helpers for the processes tests start (Chromium, a Prefect server, stage processes)."""

from __future__ import annotations

import os
import subprocess


def cpu_share() -> int:
    """Cores for one test process: all of them (at most 4), or an even share under pytest-xdist's
    workers, so that two workers on 2 cores do not run 4 busy torch threads."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, min(4, (os.cpu_count() or 1) // workers))


def stop_process(process: subprocess.Popen, timeout: float) -> None:
    """Ask `process` to end (SIGTERM), and kill it when it has not ended after `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
