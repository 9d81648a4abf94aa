"""Helpers for the background processes tests start (Chromium, a Prefect server)."""

from __future__ import annotations

import subprocess


def stop_process(process: subprocess.Popen, timeout: float) -> None:
    """Ask `process` to end (SIGTERM), and kill it when it has not ended after `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
