"""`cams` and `refine` on a real Dask cluster: `dask scheduler` + two `dask worker` processes.

Not a LocalCluster: the scheduler and each worker are started as the docs say (same checkout and
venv on `PYTHONPATH`), each from its own empty working directory and with its own `PREFECT_HOME`,
on 127.0.0.1; the stage runs `python -m flows.<stage> --runner dask --dask-address tcp://...`.

* The stores equal a sequential run's: every dataset's values and stored chunk bytes, every
  attribute except the root's `flow_run_id` (which is also why whole files differ). The stage runs
  with its temporary Prefect server (no `PREFECT_API_URL`), and no worker starts one of its own.
* A worker killed (SIGKILL of its process group: nanny and worker, like a lost host) while it runs
  a shard: Dask hands the shard to the surviving worker, the stage completes, the store equals
  the sequential one, and the Prefect server holds one completed task run per shard.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import hdf5plugin  # noqa: F401  (registers the stores' HDF5 filters: zstd)
import pytest
import yaml

from tests.pipeline.conftest import free_port, make_pipeline_repo, pipeline_env, run
from tests.pipeline.repos import copy_repo
from tests.pipeline.test_dask_cams import assert_same_store, read_all

pytestmark = pytest.mark.slow

DASK = str(Path(sys.executable).with_name("dask"))
STORES = {"cams": "artifacts/cams", "refine": "artifacts/refined"}
# open_clip's warning when the shard job builds the (random) model: the job runs on that worker.
SHARD_RUNNING = "No pretrained weights loaded"


@dataclass
class Sample:
    repo: Path
    reference: Path  # the sequential run's stores, by stage


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> Sample:
    """The sample through `prompts`, 2 images per shard (3 shards), and the sequential stores."""
    base = tmp_path_factory.mktemp("dask-cluster")
    repo = make_pipeline_repo(base / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["store"]["images_per_shard"] = 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = pipeline_env(repo, prefect_server)
    for stage in (["prepare", "sample"], ["prepare", "prepare"], ["prompts"], ["cams"], ["refine"]):
        run([sys.executable, "-m", f"flows.{stage[0]}", *stage[1:]], repo, env)
    for stage, store in STORES.items():
        shutil.copytree(repo / store, base / "sequential" / stage)
        shutil.rmtree(repo / store)
    return Sample(repo, base / "sequential")


def _stop_group(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM to the process's group (a dask worker's nanny and worker), SIGKILL after `timeout`."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            process.wait()


@dataclass
class Cluster:
    address: str
    workers: dict[str, subprocess.Popen]
    logs: dict[str, Path]  # "scheduler", "worker-a", "worker-b"

    def log(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")


@contextmanager
def dask_cluster(repo: Path, base: Path, names: tuple[str, ...] = ("worker-a", "worker-b")) -> Iterator[Cluster]:
    """`dask scheduler` and `dask worker`s (nanny, 1 process x 1 thread), each in its own folder."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {k: v for k, v in pipeline_env(repo).items() if not k.startswith("PREFECT_")}  # nothing of the stage's Prefect
    processes: dict[str, subprocess.Popen] = {}
    logs: dict[str, Path] = {}

    def start(name: str, command: list[str]) -> None:
        folder = base / name
        folder.mkdir(parents=True)
        logs[name] = base / f"{name}.log"
        with open(logs[name], "w") as log:
            processes[name] = subprocess.Popen(
                command,
                cwd=folder,
                env=dict(env, PREFECT_HOME=str(folder / ".prefect")),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    try:
        start("scheduler", [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"])
        for name in names:
            start(name, [DASK, "worker", address, "--nworkers", "1", "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard", "--name", name])
        deadline = time.monotonic() + 180
        while sum("Register worker addr" in line for line in _lines(logs["scheduler"])) < len(names):
            assert time.monotonic() < deadline, "the Dask workers did not register within 180 s"
            assert all(p.poll() is None for p in processes.values()), {n: p.returncode for n, p in processes.items()}
            time.sleep(1)
        yield Cluster(address, {n: processes[n] for n in names}, logs)
    finally:
        for process in reversed(list(processes.values())):
            _stop_group(process)


def _lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines() if path.is_file() else []


def _stage(stage: str, address: str) -> list[str]:
    return [sys.executable, "-m", f"flows.{stage}", "--runner", "dask", "--dask-address", address]


def test_cams_and_refine_on_a_dask_cluster_equal_the_sequential_run(sample: Sample, tmp_path: Path) -> None:
    repo = copy_repo(sample.repo, tmp_path / "repo")  # its own copy: no store another test left behind is reused
    env = pipeline_env(repo)  # no PREFECT_API_URL: the stage starts its temporary server
    with dask_cluster(repo, tmp_path) as cluster:
        for stage in STORES:
            run(_stage(stage, cluster.address), repo, env)
        worker_logs = [cluster.log(name) for name in cluster.workers]
    for stage, store in STORES.items():
        assert_same_store(sample.reference / stage, repo / store)
    # Every shard ran on the cluster's workers (how Dask spreads 3 shards over 2 workers depends on
    # timing; the killed-worker test below shows a shard moving from one worker to the other).
    for stage, store in STORES.items():
        shards = len(list((repo / store).glob("shard-*.h5")))
        ran = set(re.findall(rf"Task run '({stage} shard[^']*)'", "\n".join(worker_logs)))
        assert len(ran) >= shards == 3, (stage, sorted(ran))
    for text in worker_logs:
        assert "Starting temporary server" not in text  # they reported to the stage's server
        assert "Error logging to API" not in text  # and sent everything before it stopped
    assert not list(tmp_path.glob("worker-*/.wsss-scratch")) and not list(tmp_path.glob("worker-*/artifacts"))


def _task_runs(api_url: str, flow_run_id: str) -> list[dict]:
    body = json.dumps({"task_runs": {"flow_run_id": {"any_": [flow_run_id]}}}).encode()
    request = urllib.request.Request(f"{api_url}/task_runs/filter", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_a_worker_killed_mid_shard_hands_its_shard_to_the_other(sample: Sample, prefect_server: str, tmp_path: Path) -> None:
    repo = copy_repo(sample.repo, tmp_path / "repo")  # its own copy, without stores
    env = pipeline_env(repo, prefect_server)
    with dask_cluster(repo, tmp_path) as cluster:
        with open(tmp_path / "stage.log", "w") as log:
            stage = subprocess.Popen(_stage("cams", cluster.address), cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 400
            victim = None
            while victim is None:  # the first worker whose shard job is running (building CLIP)
                victim = next((n for n in cluster.workers if SHARD_RUNNING in cluster.log(n)), None)
                assert stage.poll() is None and time.monotonic() < deadline, "no worker started a shard"
                time.sleep(0.2)
            os.killpg(cluster.workers[victim].pid, signal.SIGKILL)
            stage.wait(timeout=600)
        finally:
            _stop_group(stage)
        survivor = next(n for n in cluster.workers if n != victim)
        survivor_log, scheduler_log = cluster.log(survivor), cluster.log("scheduler")
    assert stage.returncode == 0, (tmp_path / "stage.log").read_text()[-4000:]
    assert "Remove worker addr" in scheduler_log and f"name: {victim}" in scheduler_log
    assert sorted(line.split("'")[1] for line in survivor_log.splitlines() if "Finished in state Completed()" in line) == [
        "cams shard 0",
        "cams shard 1",
        "cams shard 2",
    ]
    assert_same_store(sample.reference / "cams", repo / STORES["cams"])
    flow_run_id = read_all(repo / STORES["cams"] / "shard-00000.h5")[1]["/"]["flow_run_id"].decode()
    runs = _task_runs(prefect_server, flow_run_id)
    assert sorted((r["name"], r["state_type"]) for r in runs) == [(f"cams shard {i}", "COMPLETED") for i in range(3)]
