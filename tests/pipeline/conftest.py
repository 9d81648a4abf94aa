"""Pipeline fixtures: a Prefect server, in-process flows reporting to it, and the sample pipeline run once."""

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
from prefect.context import _temporary_global_settings_context, get_settings_context
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.utilities.asyncutils import run_coro_as_sync

from benchmarks.common import stop_process
from tests.params_edit import edit_params, write_params
from tests.pipeline.relabel_data import PAIR, make_dataset, relabel_params
from tests.pipeline.repos import ROOT, copy_repo, golden, make_pipeline_repo, pipeline_env, pipeline_test_params, run


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
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
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
    write_params(tmp_path, pipeline_test_params())
    monkeypatch.chdir(tmp_path)
    return tmp_path


def build_sample_run(path: Path, api_url: str) -> str:
    """`make pipeline` on a fresh clone without CLIP weights (tracked `clip.random_init: false`):
    scripts/sample_pipeline.sh, i.e. `dvc repro` of every stage on the embedded sample; returns its output."""
    make_pipeline_repo(path)
    edit_params(path, {"clip.random_init": False})  # the tracked default: real weights wanted, none available
    shutil.copytree(ROOT / "scripts", path / "scripts")
    env = pipeline_env(path, api_url)
    run(["git", "add", "-A"], path, env)
    run(["git", "commit", "-qm", "tracked params: clip.random_init false"], path, env)
    return run(["bash", "scripts/sample_pipeline.sh"], path, env, timeout=1800).stdout


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> tuple[Path, str]:
    """(golden repository, output of its first run): the sample pipeline, finished, once per test run."""
    return golden(tmp_path_factory, "sample-run", lambda path: build_sample_run(path, prefect_server))


@pytest.fixture
def sample_repo(sample_run: tuple[Path, str], tmp_path: Path, prefect_server: str) -> tuple[Path, dict[str, str]]:
    """This test's own copy of the finished sample pipeline, and the environment of its stage processes."""
    path = copy_repo(sample_run[0], tmp_path / "repo")
    return path, pipeline_env(path, prefect_server)


def build_relabeled_pair(path: Path, api_url: str) -> str:
    """Two photos of the relabel folder dataset (4 hashed shards) after one `flows.relabel run`."""
    make_pipeline_repo(path)
    write_params(path, relabel_params(shard_count=4))
    make_dataset(path, PAIR)
    return run([sys.executable, "-m", "flows.relabel", "run"], path, pipeline_env(path, api_url)).stderr


@pytest.fixture
def relabeled_pair(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, prefect_server: str) -> tuple[Path, dict[str, str]]:
    """This test's copy of `build_relabeled_pair` (built once per test run), and its stage environment."""
    built, _ = golden(tmp_path_factory, "relabeled-pair", lambda path: build_relabeled_pair(path, prefect_server))
    path = copy_repo(built, tmp_path / "repo")
    return path, pipeline_env(path, prefect_server)
