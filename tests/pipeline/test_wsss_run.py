"""`wsss run` on a fresh clone: a folder dataset, no Prefect server, no PREFECT_HOME, first time.

One local server for every stage, the database in the repository's `.prefect/`, one parent flow
run with the stages as its subflow runs, the server gone afterwards; then `wsss status`,
`wsss metrics`, a no-change `wsss run`, and `wsss relabel`, whose first run counts against
what the stores hold.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.pipeline.conftest import make_pipeline_repo, pipeline_env
from tests.pipeline.relabel_data import make_dataset, relabel_params
from wsss.stages import STAGE_NAMES


def loop_env(repo: Path) -> dict[str, str]:
    """The test environment with no Prefect set-up at all (what a new user has)."""
    env = pipeline_env(repo)
    for key in ("PREFECT_HOME", "PREFECT_API_URL", "PREFECT_UI_API_URL"):
        env.pop(key, None)
    return env


def wsss(args: list[str], repo: Path, env: dict[str, str], timeout: int = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wsss.cli", *args], cwd=repo, env=env, capture_output=True, text=True, check=False, timeout=timeout)


def subflow_runs(database: Path) -> tuple[str, list[str]]:
    """(the parent run's name, its subflow runs' names), from the server's own database."""
    with sqlite3.connect(database) as db:
        parent_id, parent_name = db.execute("SELECT id, name FROM flow_run WHERE name LIKE 'run | %'").fetchone()
        children = db.execute(
            "SELECT f.name FROM flow_run f JOIN task_run t ON f.parent_task_run_id = t.id WHERE t.flow_run_id = ?", (parent_id,)
        ).fetchall()
    return parent_name, sorted(name for (name,) in children)


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_wsss_run_on_a_fresh_clone_with_a_folder_dataset_and_no_prefect_server(tmp_path: Path) -> None:
    repo = make_pipeline_repo(tmp_path / "repo")
    params = relabel_params(4)
    params["relabel"]["retrain_share"] = 0.5
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    make_dataset(repo, ["astro_a", "cat_a", "rocket_a"])
    env = loop_env(repo)

    first = wsss(["run"], repo, env)
    assert first.returncode == 0, (first.stdout[-3000:], first.stderr[-3000:])
    output = first.stdout + first.stderr
    assert re.findall(r"Running stage '([^']+)'", output) == list(STAGE_NAMES)
    assert "database is locked" not in output and "Traceback" not in output
    ui = re.search(r"Prefect UI: (http://127\.0\.0\.1:\d+)", output).group(1)
    with pytest.raises(OSError, match=r"refused|timed out|reset"):  # the command's server stopped with it
        urllib.request.urlopen(f"{ui}/api/health", timeout=3)
    parent, children = subflow_runs(repo / ".prefect/prefect.db")
    assert parent.startswith("run | photos | ")
    assert sorted(name.split(" | ")[0] for name in children) == sorted(STAGE_NAMES)
    record = json.loads((repo / ".wsss/runs.jsonl").read_text().splitlines()[-1])
    assert record["outcome"] == "completed" and record["flow_run_name"] == parent
    assert set(record["stages"]) == set(STAGE_NAMES) and set(record["stages"].values()) == {"Completed"}

    status = wsss(["status"], repo, env, timeout=300)
    assert status.returncode == 0 and status.stdout.startswith("Pipeline (dvc status): up to date"), status.stdout
    assert "all stages: completed in" in status.stdout
    started = time.monotonic()
    again = wsss(["run"], repo, env, timeout=300)
    assert again.returncode == 0 and "nothing to run" in again.stdout and "Running stage" not in again.stdout
    print(f"no-change wsss run: {time.monotonic() - started:.1f} s")
    metrics = wsss(["metrics"], repo, env, timeout=300)
    assert metrics.returncode == 0 and metrics.stdout.startswith("0 image(s) with ground truth scored"), metrics.stdout

    relabel = wsss(["relabel"], repo, env)
    assert relabel.returncode == 0, (relabel.stdout[-3000:], relabel.stderr[-3000:])
    (logged,) = [json.loads(line) for line in (repo / "artifacts/relabel/runs.jsonl").read_text().splitlines()]
    assert logged["counts"] == {"added": 0, "changed": 0, "removed": 0, "unchanged": 3} and logged["retrained"] is False


def test_wsss_run_without_weights_is_one_line_before_any_stage(tmp_path: Path) -> None:
    repo = make_pipeline_repo(tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["clip"].update(random_init=False, pretrained="openai")
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = wsss(["run"], repo, loop_env(repo), timeout=600)
    assert result.returncode == 2 and result.stdout == "", result.stdout
    assert result.stderr.count("\n") == 1 and "Failed to download" not in result.stderr, result.stderr
    assert "could not load pretrained weights 'openai'" in result.stderr
    assert "`clip: {random_init: true}` in params.local.yaml" in result.stderr
    assert "Traceback" in (repo / ".wsss/logs/run.log").read_text()
    assert not (repo / "artifacts").exists() and not (repo / ".prefect").exists()  # nothing started


@pytest.mark.slow
def test_the_server_a_command_starts_tells_its_ui_where_the_api_is(tmp_path: Path) -> None:
    """On any port but 4200 the UI said "Can't connect to Server API" unless PREFECT_UI_API_URL was set."""
    from wsss.loop.prefect_server import free_port, local_server, loop_environment

    port = free_port()
    with (
        local_server(loop_environment(tmp_path), tmp_path / "server.log", port=port) as api_url,
        urllib.request.urlopen(f"http://127.0.0.1:{port}/ui-settings", timeout=10) as response,
    ):
        settings = json.load(response)
    assert api_url == f"http://127.0.0.1:{port}/api" and settings["api_url"] == api_url
