"""The artifacts run lock: one run at a time, clear refusal, stale locks of dead runs taken over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wsss.errors import RunLockedError
from wsss.run_lock import LOCK_NAME, run_lock

HOLD_LOCK = """
import sys, time
from wsss.run_lock import run_lock
with run_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def holder(directory: Path) -> subprocess.Popen:
    """A second process that takes the lock and keeps it until killed."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    process = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(directory)], stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None and process.stdout.readline().strip() == "locked"
    return process


def test_lock_records_owner_and_is_released(tmp_path: Path) -> None:
    with run_lock(tmp_path / "artifacts") as lock:
        owner = json.loads(lock.path.read_text())
        assert owner["pid"] == os.getpid() and owner["hostname"] == socket.gethostname()
        assert owner["started_at"].endswith("Z") and lock.stale_owner is None
    assert (tmp_path / "artifacts" / LOCK_NAME).read_text() == ""
    with run_lock(tmp_path / "artifacts") as again:  # free again, and no stale owner left behind
        assert again.stale_owner is None


def test_second_run_in_another_process_is_refused(tmp_path: Path) -> None:
    process = holder(tmp_path)
    try:
        with pytest.raises(RunLockedError) as refused, run_lock(tmp_path):
            pytest.fail("the lock was taken twice")
        message = str(refused.value)
        assert LOCK_NAME in message and "another pipeline run" in message
        assert f"pid {process.pid} on {socket.gethostname()}, started 20" in message
    finally:
        process.kill()
        process.wait()


def test_second_run_in_the_same_process_is_refused(tmp_path: Path) -> None:
    with run_lock(tmp_path), pytest.raises(RunLockedError, match=f"pid {os.getpid()}"), run_lock(tmp_path):
        pytest.fail("the lock was taken twice")


def test_lock_of_a_killed_run_is_taken_over(tmp_path: Path) -> None:
    process = holder(tmp_path)
    process.send_signal(signal.SIGKILL)
    process.wait()
    started = time.monotonic()
    with run_lock(tmp_path) as lock:
        assert lock.stale_owner is not None and lock.stale_owner["pid"] == process.pid
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    assert time.monotonic() - started < 5  # no waiting on the dead owner
