"""Two runs against one artifacts directory: the second is refused; a killed run's lock is taken over.

Real stage processes (`python -m flows.prepare ...`). The first run is frozen with SIGSTOP
while it holds the lock, so the overlap is certain rather than a race of timings.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.pipeline.repos import make_pipeline_repo, pipeline_env, run

pytestmark = pytest.mark.slow

LOCK = Path("artifacts/.wsss-run.lock")


def start(stage: list[str], repo: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "flows.prepare", *stage],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for_lock_owner(repo: Path, pid: int, timeout: float = 120) -> dict:
    """The lock record once the process with `pid` has written it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            owner = json.loads((repo / LOCK).read_text())
            if owner.get("pid") == pid:
                return owner
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"process {pid} never took the run lock")


@pytest.fixture
def repo(tmp_path: Path, prefect_server: str) -> tuple[Path, dict[str, str]]:
    path = make_pipeline_repo(tmp_path / "repo")
    return path, pipeline_env(path, prefect_server)


def test_second_run_is_refused_while_the_first_holds_the_artifacts(repo: tuple[Path, dict[str, str]]) -> None:
    path, env = repo
    first = start(["sample"], path, env)
    try:
        owner = wait_for_lock_owner(path, first.pid)
        os.killpg(first.pid, signal.SIGSTOP)  # the first run is now mid-way, holding the lock
        second = subprocess.run(
            [sys.executable, "-m", "flows.prepare", "sample"], cwd=path, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert second.returncode == 2
        assert "another pipeline run is using artifacts" in second.stderr
        assert f"pid {first.pid} on {owner['hostname']}, started {owner['started_at']}" in second.stderr
        assert json.loads((path / LOCK).read_text())["pid"] == first.pid  # the refused run left it alone
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-3000:]
    assert (path / LOCK).read_text() == ""  # released
    run([sys.executable, "-m", "flows.prepare", "prepare"], path, env)  # and the next run goes ahead


def test_lock_of_a_killed_run_is_taken_over(repo: tuple[Path, dict[str, str]]) -> None:
    from tasks.prepare import run_sample
    from wsss.catalog import ArtifactLayout

    path, env = repo
    run_sample(ArtifactLayout(path))  # the input of `prepare` (the other test makes it with the sample stage)
    first = start(["prepare"], path, env)
    wait_for_lock_owner(path, first.pid)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert json.loads((path / LOCK).read_text())["pid"] == first.pid  # the record survives the kill
    result = run([sys.executable, "-m", "flows.prepare", "prepare"], path, env)
    assert f"took over the stale run lock of pid {first.pid}" in result.stderr
    assert json.loads((path / "artifacts/prepare/manifest.meta.json").read_text())["num_images"] == 6
