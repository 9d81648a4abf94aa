"""SIGKILL `cams` and `pseudo` at seeded random points, rerun, and compare with an uninterrupted run.

Black-box: each stage runs as `python -m flows.<stage>` in its own process group, killed with
SIGKILL (no cleanup handlers run) at a seeded random moment of its measured uninterrupted
duration, then rerun to completion; per kill point, the result must verify (HDF5 checksums, no
leftovers), hold every manifest image exactly once, and equal the uninterrupted run's maps and
masks. Outputs (and the cams scratch) are cleared before each kill point so that every kill
lands in a run with work left.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.pipeline.conftest import make_pipeline_repo, pipeline_env, run
from wsss.io import CamStore

pytestmark = pytest.mark.slow

# Per stage; cams runs cost ~3x pseudo runs (CLIP), so it gets fewer kill points.
KILL_POINTS = {"cams": 2, "pseudo": 3}
SEED = 20240611


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> tuple[Path, dict[str, str]]:
    """The sample through `prompts`, with 2 images per shard so that `cams` writes 3 shards."""
    path = make_pipeline_repo(tmp_path_factory.mktemp("kill") / "repo")
    params = yaml.safe_load((path / "params.yaml").read_text())
    params["store"]["images_per_shard"] = 2
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = pipeline_env(path, prefect_server)
    for stage in (["prepare", "sample"], ["prepare", "prepare"], ["prompts"]):
        run([sys.executable, "-m", f"flows.{stage[0]}", *stage[1:]], path, env)
    return path, env


def stage_command(stage: str) -> list[str]:
    return [sys.executable, "-m", f"flows.{stage}"]


def timed_run(stage: str, repo: Path, env: dict[str, str]) -> float:
    started = time.monotonic()
    run(stage_command(stage), repo, env)
    return time.monotonic() - started


def run_and_kill(stage: str, repo: Path, env: dict[str, str], delay: float) -> int | None:
    """Start the stage, SIGKILL its whole process group after `delay` s; its exit code if it ended first."""
    process = subprocess.Popen(stage_command(stage), cwd=repo, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        return process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return None


def kill_points(stage: str, duration: float, seed: int) -> list[float]:
    """Seeded SIGKILL delays within the stage's uninterrupted duration (mostly past the imports)."""
    rng = random.Random(seed)
    return [round(rng.uniform(0.4, 0.9) * duration, 2) for _ in range(KILL_POINTS[stage])]


def manifest_ids(repo: Path) -> list[str]:
    return sorted(r["image_id"] for r in json.loads((repo / "artifacts/prepare/manifest.json").read_text())["records"])


def plain(value: object) -> str:
    """Attributes as canonical JSON (arrays as lists), for equality checks."""
    return json.dumps(value, sort_keys=True, default=lambda item: np.asarray(item).tolist())


def store_contents(directory: Path) -> dict[str, tuple[dict[str, np.ndarray], dict]]:
    store = CamStore(directory)
    return {image_id: (stored.arrays, stored.attrs) for image_id, stored in store.iter_images(keep_dtype=True)}


def test_cams_killed_at_random_points_resumes_to_the_uninterrupted_result(repo: tuple[Path, dict[str, str]]) -> None:
    path, env = repo
    duration = timed_run("cams", path, env)
    reference = store_contents(path / "artifacts/cams")
    shutil.rmtree(path / "artifacts/cams")

    ids = manifest_ids(path)
    killed, lost = [], 0
    points = kill_points("cams", duration, SEED)
    for delay in points:
        shutil.rmtree(path / "artifacts/cams", ignore_errors=True)
        shutil.rmtree(path / ".wsss-scratch", ignore_errors=True)
        if run_and_kill("cams", path, env, delay) is None:
            killed.append(delay)
        run(stage_command("cams"), path, env)  # the rerun after the kill

        store = CamStore(path / "artifacts/cams")
        assert store.verify() == []
        assert store.image_ids() == ids  # every image once (a repeat makes the store index fail)
        lost += len(set(ids) - set(store.image_ids()))
        resumed = store_contents(path / "artifacts/cams")
        for image_id in ids:
            arrays, attrs = resumed[image_id]
            assert plain(attrs) == plain(reference[image_id][1])
            for name, array in reference[image_id][0].items():
                np.testing.assert_array_equal(arrays[name], array, err_msg=f"{image_id}/{name}")
    print(f"\ncams: kill points tried {len(points)}, killed mid-run {len(killed)} at {killed} s of {duration:.1f} s; images lost {lost}")
    assert len(killed) >= KILL_POINTS["cams"] - 1, "kills must land while the stage runs"


def pseudo_outputs(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != "summary.json"
    }


def test_pseudo_killed_at_random_points_resumes_to_the_uninterrupted_result(repo: tuple[Path, dict[str, str]]) -> None:
    path, env = repo
    if not (path / "artifacts/cams").is_dir():
        run(stage_command("cams"), path, env)
    run(stage_command("refine"), path, env)
    duration = timed_run("pseudo", path, env)
    reference = pseudo_outputs(path / "artifacts/pseudo")
    reference_rows = json.loads((path / "artifacts/pseudo/summary.json").read_text())["images"]
    shutil.rmtree(path / "artifacts/pseudo")

    ids = manifest_ids(path)
    killed, lost = [], 0
    points = kill_points("pseudo", duration, SEED + 1)
    for delay in points:
        shutil.rmtree(path / "artifacts/pseudo", ignore_errors=True)
        if run_and_kill("pseudo", path, env, delay) is None:
            killed.append(delay)
        run(stage_command("pseudo"), path, env)  # the rerun after the kill

        resumed = pseudo_outputs(path / "artifacts/pseudo")
        assert not [name for name in resumed if name.endswith(".partial")]
        assert resumed == reference  # masks, raw labels, confidence and keys, byte for byte
        for sub, suffix in (("masks", ".png"), ("raw", ".png"), ("confidence", ".npy"), ("keys", ".json")):
            assert sorted(p.stem for p in (path / "artifacts/pseudo" / sub).iterdir()) == ids, sub
            assert all(p.name.endswith(suffix) for p in (path / "artifacts/pseudo" / sub).iterdir())
        rows = json.loads((path / "artifacts/pseudo/summary.json").read_text())["images"]
        assert rows == reference_rows
        lost += len(set(ids) - {row["image_id"] for row in rows})
    print(f"\npseudo: kill points tried {len(points)}, killed mid-run {len(killed)} at {killed} s of {duration:.1f} s; images lost {lost}")
    assert len(killed) >= KILL_POINTS["pseudo"] - 1, "kills must land while the stage runs"


def test_pseudo_drops_outputs_of_images_no_longer_refined(repo: tuple[Path, dict[str, str]]) -> None:
    """A stale image's mask, raw labels, confidence and key are removed on the next run."""
    path, env = repo
    if not (path / "artifacts/pseudo/masks").is_dir():
        pytest.skip("needs the pseudo outputs of the previous test")
    for sub, suffix in (("masks", ".png"), ("raw", ".png"), ("confidence", ".npy"), ("keys", ".json")):
        (path / "artifacts/pseudo" / sub / f"gone{suffix}").write_bytes(b"stale")
    (path / "artifacts/pseudo/masks/leftover.png.partial").write_bytes(b"half")
    run(stage_command("pseudo"), path, env)
    names = {p.name for p in (path / "artifacts/pseudo").rglob("*")}
    assert not {"gone.png", "gone.npy", "gone.json", "leftover.png.partial"} & names
