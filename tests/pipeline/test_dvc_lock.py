"""A relabel run and `dvc repro` on one repository, in both orders: the second is refused, nothing is lost.

`dvc repro` deletes a stage's outputs before running its command; before, a relabel holding only
the artifacts run lock lost `artifacts/prepare` to a concurrent `dvc repro`. Runs that DVC did not
start now also hold DVC's own repository lock (`.dvc/tmp/lock`), so `dvc repro` stops with DVC's
"Unable to acquire lock" before deleting anything, and a relabel started while `dvc repro` runs is
refused. The first process is frozen with SIGSTOP while it holds its locks, so the overlap is certain.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.pipeline.repos import run

pytestmark = pytest.mark.slow
DVC_LOCK = Path(".dvc/tmp/lock")


def start(command: list[str], repo: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for_dvc_lock_owner(repo: Path, pid: int, process: subprocess.Popen, timeout: float = 300) -> None:
    """Until `.dvc/tmp/lock` names `pid` (zc.lockfile writes " <pid>" once it holds the lock)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (repo / DVC_LOCK).is_file() and (repo / DVC_LOCK).read_text().strip() == str(pid):
            return
        if process.poll() is not None:
            raise AssertionError(f"process {pid} ended ({process.returncode}) before holding the DVC lock")
        time.sleep(0.05)
    raise AssertionError(f"process {pid} never held the DVC lock")


@pytest.fixture
def repo(relabeled_pair: tuple[Path, dict[str, str]]) -> tuple[Path, dict[str, str]]:
    """Two photos after one relabel run: artifacts/prepare etc. exist from here on."""
    return relabeled_pair


def test_dvc_repro_during_a_relabel_is_refused_before_deleting_anything(repo: tuple[Path, dict[str, str]]) -> None:
    path, env = repo
    relabel = start([sys.executable, "-m", "flows.relabel", "run"], path, env)
    try:
        wait_for_dvc_lock_owner(path, relabel.pid, relabel)
        os.killpg(relabel.pid, signal.SIGSTOP)  # mid-run, holding both locks
        manifest = (path / "artifacts/prepare/manifest.json").read_bytes()
        repro = subprocess.run(
            [sys.executable, "-m", "dvc", "repro", "prepare"], cwd=path, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert repro.returncode != 0 and "Unable to acquire lock" in repro.stdout + repro.stderr
        assert (path / "artifacts/prepare/manifest.json").read_bytes() == manifest  # nothing deleted
    finally:
        os.killpg(relabel.pid, signal.SIGCONT)
    _, stderr = relabel.communicate(timeout=900)
    assert relabel.returncode == 0, stderr[-3000:]
    run([sys.executable, "-m", "wsss.cli", "lineage", "cat_a", "--strict"], path, env)  # its manifest is there
    run([sys.executable, "-m", "dvc", "repro", "prepare"], path, env)  # the lock was released: DVC goes ahead


def test_a_relabel_during_dvc_repro_is_refused_and_dvc_loses_nothing(repo: tuple[Path, dict[str, str]]) -> None:
    path, env = repo
    repro = start([sys.executable, "-m", "dvc", "repro", "refine"], path, env)
    try:
        wait_for_dvc_lock_owner(path, repro.pid, repro)
        os.killpg(repro.pid, signal.SIGSTOP)  # DVC holds its repository lock
        runs_before = (path / "artifacts/relabel/runs.jsonl").read_text()
        relabel = subprocess.run(
            [sys.executable, "-m", "flows.relabel", "run"], cwd=path, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        assert relabel.returncode == 2, relabel.stderr[-3000:]
        errors = [line for line in relabel.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, relabel.stderr[-3000:]
        assert "holds the repository lock" in errors[0] or "another pipeline run is using artifacts" in errors[0], errors
        assert (path / "artifacts/relabel/runs.jsonl").read_text() == runs_before  # the refused run did nothing
    finally:
        os.killpg(repro.pid, signal.SIGCONT)
    _, stderr = repro.communicate(timeout=1800)
    assert repro.returncode == 0, stderr[-3000:]
    status = run([sys.executable, "-m", "dvc", "status", "refine"], path, env)
    assert "up to date" in status.stdout
    for produced in ("artifacts/prepare/manifest.json", "artifacts/prompts/scores.json", "artifacts/cams", "artifacts/refined"):
        assert (path / produced).exists(), produced
