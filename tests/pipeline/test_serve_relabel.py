"""`python -m flows.relabel serve` against a real local Prefect server: a scheduled run relabels an
added image, and the deployment's runs carry our name from the moment they are scheduled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tasks.run_names import params_digest
from tests.params_edit import write_params
from tests.pipeline.relabel_data import make_dataset, relabel_params, write_photo, write_tags
from tests.pipeline.repos import ROOT, pipeline_env
from wsss.params import load_params


def deployment_runs(api_url: str, deployment: str, states: tuple[str, ...] | None = None) -> list[dict]:
    """Flow runs of the served deployment (in `states`, else all) through the server's REST API."""
    with urllib.request.urlopen(f"{api_url}/deployments/name/wsss-relabel/{deployment}", timeout=10) as response:
        deployment_id = json.load(response)["id"]
    runs: dict = {"deployment_id": {"any_": [deployment_id]}}
    if states:
        runs["state"] = {"type": {"any_": list(states)}}
    body = json.dumps({"flow_runs": runs})
    request = urllib.request.Request(f"{api_url}/flow_runs/filter", data=body.encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def delete_deployment(api_url: str, deployment: str) -> None:
    """Remove the served deployment (and so its schedule and scheduled runs) from the session's server."""
    with urllib.request.urlopen(f"{api_url}/deployments/name/wsss-relabel/{deployment}", timeout=10) as response:
        deployment_id = json.load(response)["id"]
    request = urllib.request.Request(f"{api_url}/deployments/{deployment_id}", method="DELETE")
    urllib.request.urlopen(request, timeout=10).close()


def completed_runs(api_url: str, deployment: str) -> list[dict]:
    return deployment_runs(api_url, deployment, ("COMPLETED",))


def logged_runs(repo: Path) -> list[dict]:
    path = repo / "artifacts/relabel/runs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def wait_for(condition, timeout: float, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"serve exited ({process.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(2)


@pytest.mark.slow
def test_served_flow_relabels_an_added_image_on_schedule(prefect_server: str, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("flows", "tasks"):  # the deployment's entrypoint is flows/relabel.py under the cwd
        (repo / name).symlink_to(ROOT / name, target_is_directory=True)
    write_params(repo, relabel_params(shard_count=4))
    tags = make_dataset(repo, ["astro_a", "cat_a"])
    env = pipeline_env(repo, prefect_server)
    env["PYTHONPATH"] = f"{ROOT / 'src'}{os.pathsep}{ROOT}"
    env["PREFECT_RUNNER_POLL_FREQUENCY"] = "2"
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - the server's stdout; closed once the server is stopped
    process = subprocess.Popen(
        [sys.executable, "-m", "flows.relabel", "serve", "--interval", "5", "--name", "test"],
        cwd=repo,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: len(logged_runs(repo)) >= 1, 300, process, "the first scheduled run")
        assert logged_runs(repo)[0]["counts"]["added"] == 2
        write_photo(repo, "rocket_a")
        write_tags(repo, {**tags, "rocket_a": ("rocket",)})
        wait_for(lambda: any(run["counts"]["added"] == 1 for run in logged_runs(repo)), 300, process, "a run that sees the added image")
        added_run = next(run for run in logged_runs(repo) if run["counts"]["added"] == 1)
        assert added_run["relabeled"] == ["rocket_a"]
        assert (repo / "artifacts/pseudo/masks/rocket_a.png").is_file()
        wait_for(
            lambda: added_run["flow_run_id"] in {r["id"] for r in completed_runs(prefect_server, "test")},
            120,
            process,
            "the relabel run to be COMPLETED on the server",
        )
        # Scheduled runs were created under random names ("adorable-hippo") and renamed only when
        # they started; the serving process names them as they are scheduled.
        name = f"relabel | photos | {params_digest(load_params(repo / 'params.yaml'))}"
        assert {run["name"] for run in completed_runs(prefect_server, "test")} == {name}
        upcoming = lambda: deployment_runs(prefect_server, "test", ("SCHEDULED",))  # noqa: E731
        wait_for(lambda: upcoming() and {run["name"] for run in upcoming()} == {name}, 60, process, f"every scheduled run to be named {name!r}")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        log.close()
        delete_deployment(prefect_server, "test")  # the shared server's scheduler would go on adding runs
