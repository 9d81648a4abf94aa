"""Pipeline fixtures: a throw-away copy of the repository with test params, and a Prefect server."""

from __future__ import annotations

import inspect
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from pathlib import Path

import pytest
import yaml
from prefect.context import _temporary_global_settings_context, get_settings_context
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.utilities.asyncutils import run_coro_as_sync

from benchmarks.common import stop_process

ROOT = Path(__file__).resolve().parents[2]
COPIED = ("flows", "tasks", "src", "corrections", "dvc.yaml", "params.yaml", ".dvcignore", ".gitignore")


def pipeline_test_params(params: dict) -> dict:
    """Random CLIP weights (explicitly requested), small inputs, three templates, 4 iterations."""
    params["clip"]["random_init"] = True
    params["cam"]["max_side"] = 224
    params["prompts"]["candidates"] = ["a photo of a {}.", "a clean origami {}.", "itap of a {}."]
    params["pseudo"]["jobs"] = 1
    params["train"].update(max_iters=4, checkpoint_interval=2)
    return params


def pipeline_env(repo: Path, api_url: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{repo / 'src'}{os.pathsep}{repo}"
    env.update(HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120", PREFECT_HOME=str(repo / ".prefect"))
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def run(command: list[str], repo: Path, env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def make_pipeline_repo(destination: Path) -> Path:
    destination.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, destination / name)
    params = pipeline_test_params(yaml.safe_load((ROOT / "params.yaml").read_text()))
    (destination / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = pipeline_env(destination)
    for command in (["git", "init", "-q"], ["git", "config", "user.email", "t@example.com"], ["git", "config", "user.name", "t"],
                    [sys.executable, "-m", "dvc", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        run(command, destination, env)
    return destination


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real local Prefect server (one start for every stage process of the session)."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    env = dict(os.environ, PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the Prefect server did not start within 120 s")
            time.sleep(1)
        yield url
    finally:
        stop_process(process, timeout=30)


@pytest.fixture(scope="module")
def harness(prefect_server: str) -> Iterator[None]:
    """The flows a test module runs in-process report to the session's Prefect server.

    Like `prefect_test_harness`, without starting a temporary server per module (15-20 s each on
    2 cores): the API URL is set for this process only (subprocesses get theirs from
    `pipeline_env`), and the log and event workers are drained before the module ends.
    """
    with ExitStack() as stack:
        stack.enter_context(temporary_settings(updates={PREFECT_API_URL: prefect_server}))
        stack.enter_context(_temporary_global_settings_context(get_settings_context()))
        yield

        async def drain() -> None:
            with suppress(RuntimeError):  # the log worker never started
                await _maybe_await(APILogWorker.instance().drain())
            await _maybe_await(EventsWorker.drain_all())

        run_coro_as_sync(drain())


async def _maybe_await(result: object) -> None:
    if inspect.isawaitable(result):
        await result



@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory holding the pipeline test params (the cwd of the test)."""
    params = pipeline_test_params(yaml.safe_load((ROOT / "params.yaml").read_text()))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    return tmp_path
