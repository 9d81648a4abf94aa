"""Throw-away pipeline repositories: a copy of this checkout with test params, the environment its
stage processes run in, and golden repositories built once per test run and copied per test."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.params_edit import read_params, with_values, write_params
from tests.processes import cpu_share

ROOT = Path(__file__).resolve().parents[2]
COPIED = ("flows", "tasks", "src", "corrections", "reviewed.json", "dvc.yaml", "params.yaml", ".dvcignore", ".gitignore")
# Random CLIP weights (explicitly requested), small inputs, three templates, 4 iterations.
PIPELINE_TEST_PARAMS = {
    "clip.random_init": True,
    "cam.max_side": 224,
    "prompts.candidates": ["a photo of a {}.", "a clean origami {}.", "itap of a {}."],
    "pseudo.jobs": 1,
    "train.max_iters": 4,
    "train.checkpoint_interval": 2,
}


def pipeline_test_params() -> dict:
    """The shipped params.yaml with PIPELINE_TEST_PARAMS."""
    return with_values(read_params(), PIPELINE_TEST_PARAMS)


def pipeline_env(repo: Path, api_url: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{repo / 'src'}{os.pathsep}{repo}"
    env.update(
        HF_HUB_OFFLINE="1",
        DVC_NO_ANALYTICS="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
        PREFECT_HOME=str(repo / ".prefect"),
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
        env.setdefault("OMP_NUM_THREADS", str(cpu_share()))  # the stage's torch threads: this worker's share
    return env


def run(command: list[str], repo: Path, env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, check=False, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def make_pipeline_repo(destination: Path) -> Path:
    """This checkout's pipeline (flows, tasks, src, dvc.yaml, ...) with test params, as one git + DVC commit."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, destination / name)
    write_params(destination, pipeline_test_params())
    env = pipeline_env(destination)
    for command in (
        ["git", "init", "-q"],
        ["git", "config", "user.email", "t@example.com"],
        ["git", "config", "user.name", "t"],
        [sys.executable, "-m", "dvc", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "init"],
    ):
        run(command, destination, env)
    return destination


def golden(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], str]) -> tuple[Path, str]:
    """(path, note) of the repository `build(path)` makes, built once per test run; `note` is what
    `build` returned (e.g. the first run's output). Parallel workers (pytest-xdist) share one build:
    the first builds under a file lock, the others wait and reuse it; a failed build fails them all
    at once. Never change a golden repository: tests work on a `copy_repo` of it."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's base folder, above every worker's own
    folder = base / "golden"
    folder.mkdir(exist_ok=True)
    path, note, failed = folder / name, folder / f"{name}.note", folder / f"{name}.failed"
    with open(folder / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if failed.is_file():
            raise RuntimeError(f"building the golden repository {name!r} failed earlier in this run:\n{failed.read_text()}")
        if not note.is_file():
            shutil.rmtree(path, ignore_errors=True)
            try:
                text = build(path)
            except Exception:
                failed.write_text(traceback.format_exc())
                raise
            note.write_text(text)
    return path, note.read_text()


def copy_repo(source: Path, destination: Path) -> Path:
    """A copy of a (golden) repository: work tree, .git, DVC state, file times kept; the DVC cache
    (content-addressed files DVC never changes in place) is hard-linked, not copied."""
    cache = Path(".dvc") / "cache"
    shutil.copytree(source, destination, symlinks=True, ignore=lambda folder, names: ["cache"] if Path(folder) == source / cache.parent else [])
    if (source / cache).is_dir():
        shutil.copytree(source / cache, destination / cache, copy_function=os.link)
    return destination
