"""A relabel run killed at each of its publish points converges, on the next run, to the outputs of
an uninterrupted run, and the log of that next run says what it did.

Before, the rerun targeted only what its own refine recomputed: killed after refine published, the
changed images kept their old masks forever and every later run reported "unchanged". Now the pseudo
entry keys each mask by the refined maps it was made from, so a stale mask is recomputed whatever
was interrupted.

Black-box: `python -m flows.relabel run` in its own process; the kill comes from inside (the stage
entry is wrapped to send the signal to its own process right after cams publish, after refine
publish, after the first mask of the pseudo step, or just before the run log), so every point is hit
exactly. SIGTERM also marks the Prefect run crashed and releases the locks.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from tests.params_edit import write_params
from tests.pipeline.relabel_data import make_dataset, relabel_params, tags_of, write_tags
from tests.pipeline.repos import copy_repo, golden, make_pipeline_repo, pipeline_env, run
from wsss.io import CamStore

pytestmark = pytest.mark.slow

IDS = ["astro_a", "cat_a", "cup_a", "rocket_a"]
CHANGED = {"cat_a": ("cat", "person"), "rocket_a": ("rocket", "person")}
STATE = ("artifacts", ".wsss-scratch", "data")

# Runs `flows.relabel run` with one entry wrapped to signal its own process at a publish point.
KILLER = """
import os, signal, sys
import tasks.cams, tasks.refine  # relabel finds its entries through the stage table, so they are wrapped where they live
import tasks.relabel as relabel
from wsss.io.pseudo_store import PseudoMaskStore
point, number = sys.argv[1], int(sys.argv[2])

def stop():  # a negative number: that signal to the whole process group (as a terminal or supervisor sends it)
    os.killpg(0, -number) if number < 0 else os.kill(os.getpid(), number)

def after(module, name):
    original = getattr(module, name)
    def wrapped(*args, **kwargs):
        result = original(*args, **kwargs)
        stop()
        return result
    setattr(module, name, wrapped)

if point == "after-cams-publish":
    after(tasks.cams, "run_cams")
elif point == "after-refine-publish":
    after(tasks.refine, "run_refine")
elif point == "mid-pseudo":
    write = PseudoMaskStore.write
    def first_then_stop(self, *args, **kwargs):
        write(self, *args, **kwargs)
        stop()
    PseudoMaskStore.write = first_then_stop
elif point == "before-run-log":
    relabel.record_run = lambda *args, **kwargs: stop()
from flows.relabel import relabel_flow
from tasks.command import run_stage
sys.exit(run_stage({"run": lambda args: relabel_flow(args.params)}, [], lock=False))
"""


def relabel(repo: Path, env: dict[str, str]) -> None:
    run([sys.executable, "-m", "flows.relabel", "run"], repo, env)


def killed_relabel(repo: Path, env: dict[str, str], point: str, signal_number: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", KILLER, point, str(signal_number)],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        start_new_session=True,
        check=False,
    )


def restore(repo: Path, snapshot: Path) -> None:
    for name in STATE:
        shutil.rmtree(repo / name, ignore_errors=True)
        if (snapshot / name).exists():
            shutil.copytree(snapshot / name, repo / name)


def change_two_images(repo: Path) -> None:
    write_tags(repo, {**tags_of(IDS), **CHANGED})


def outputs(repo: Path) -> dict[str, object]:
    """Mask, raw-label and confidence bytes, and the values of both stores, per image."""
    found: dict[str, object] = {}
    for sub in ("masks", "raw", "confidence"):
        for path in sorted((repo / "artifacts/pseudo" / sub).iterdir()):
            found[f"{sub}/{path.name}"] = path.read_bytes()
    for store in ("cams", "refined"):
        for image_id, stored in CamStore(repo / "artifacts" / store).iter_images(keep_dtype=True):
            found[f"{store}/{image_id}"] = (
                json.dumps(stored.attrs, sort_keys=True, default=lambda a: np.asarray(a).tolist()),
                {k: (a.dtype.str, a.tobytes()) for k, a in stored.arrays.items()},
            )
    return found


def last_run(repo: Path) -> dict:
    return json.loads((repo / "artifacts/relabel/runs.jsonl").read_text().splitlines()[-1])


def build_relabel_runs(path: Path, api_url: str) -> str:
    """`repo`: a first completed relabel run, then the change relabeled uninterrupted (the reference);
    `snapshot`: the state after the first run."""
    repo = make_pipeline_repo(path / "repo")
    write_params(repo, relabel_params(shard_count=4))
    make_dataset(repo, IDS)
    env = pipeline_env(repo, api_url)
    relabel(repo, env)
    for name in STATE:
        shutil.copytree(repo / name, path / "snapshot" / name)
    change_two_images(repo)
    relabel(repo, env)
    return ""


@pytest.fixture(scope="session")
def relabel_runs(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> Path:
    return golden(tmp_path_factory, "relabel-interrupted", lambda path: build_relabel_runs(path, prefect_server))[0]


@pytest.fixture
def setup(relabel_runs: Path, tmp_path: Path, prefect_server: str) -> tuple[Path, dict[str, str], Path, dict, dict]:
    """This test's copy of the reference run, its environment, the snapshot to restore, and the reference outputs and log."""
    repo = copy_repo(relabel_runs / "repo", tmp_path / "repo")
    return repo, pipeline_env(repo, prefect_server), relabel_runs / "snapshot", outputs(repo), last_run(repo)


@pytest.mark.parametrize(
    ("point", "rerun_relabels"),
    [
        ("after-cams-publish", ["cat_a", "rocket_a"]),
        ("after-refine-publish", ["cat_a", "rocket_a"]),
        ("mid-pseudo", ["rocket_a"]),  # cat_a's mask was complete (under its new key) when the run died
        ("before-run-log", []),  # everything was published; only the log and the last manifest were not
    ],
)
def test_sigkill_at_each_publish_point_converges_to_the_uninterrupted_outputs(setup, point: str, rerun_relabels: list[str]) -> None:
    repo, env, snapshot, reference, reference_run = setup
    restore(repo, snapshot)
    change_two_images(repo)
    killed = killed_relabel(repo, env, point, 9)
    assert killed.returncode == -9, killed.stderr[-3000:]
    relabel(repo, env)
    assert outputs(repo) == reference, point
    rerun = last_run(repo)
    assert rerun["counts"] == reference_run["counts"] == {"added": 0, "changed": 2, "removed": 0, "unchanged": 2}
    assert rerun["relabeled"] == rerun_relabels, point
    relabel(repo, env)
    assert last_run(repo)["counts"]["unchanged"] == 4 and last_run(repo)["relabeled"] == []
    assert outputs(repo) == reference


def flow_runs(api_url: str, name: str, after: str) -> list[dict]:
    """Runs of the flow `name` a command started after the ISO time `after` (runs SIGKILLed by other
    tests stay RUNNING; runs of a deployment another test served on the same server are not ours)."""
    runs = {"start_time": {"after_": after}, "deployment_id": {"is_null_": True}}
    body = json.dumps({"flows": {"name": {"any_": [name]}}, "flow_runs": runs, "sort": "START_TIME_DESC"}).encode()
    request = urllib.request.Request(f"{api_url}/flow_runs/filter", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_sigterm_marks_the_run_crashed_releases_the_locks_and_the_rerun_converges(setup, prefect_server: str) -> None:
    repo, env, snapshot, reference, _ = setup
    restore(repo, snapshot)
    change_two_images(repo)
    started = datetime.now(UTC).isoformat()
    stopped = killed_relabel(repo, env, "mid-pseudo", 15)
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    assert [line for line in stopped.stderr.splitlines() if line.startswith("error:")] == [
        "error: stopped by SIGTERM; the Prefect flow run (if one had started) is marked crashed, locks released"
    ]
    assert (repo / "artifacts/.wsss-run.lock").read_text() == ""  # released, not left to a takeover
    assert [r["state_type"] for r in flow_runs(prefect_server, "wsss-relabel", started)] == ["CRASHED"]
    relabel(repo, env)
    assert outputs(repo) == reference and last_run(repo)["relabeled"] == ["rocket_a"]


READ_RUNS = """
import asyncio
from prefect.server.database import provide_database_interface
from prefect.server.models import flow_runs

async def main():
    async with provide_database_interface().session_context() as session:
        for run in await flow_runs.read_flow_runs(session):
            print(run.state_type.value)

asyncio.run(main())
"""


def test_sigterm_to_the_process_group_leaves_no_run_running_on_the_temporary_server(setup, tmp_path: Path) -> None:
    """Without PREFECT_API_URL, Prefect's temporary server used to be in the stage's process group: the
    group's SIGTERM stopped it before the crash was recorded, and the run stayed RUNNING for ever."""
    repo, env, snapshot, _, _ = setup
    restore(repo, snapshot)
    change_two_images(repo)
    local = {key: value for key, value in env.items() if key != "PREFECT_API_URL"} | {"PREFECT_HOME": str(tmp_path / "prefect")}
    stopped = killed_relabel(repo, local, "mid-pseudo", -15)
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    states = run([sys.executable, "-c", READ_RUNS], repo, local).stdout.split()
    assert states == ["CRASHED"], states
