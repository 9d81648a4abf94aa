"""SIGKILL `cams` and `pseudo` at seeded random points, rerun, and compare with an uninterrupted run.

Black-box: each stage runs as `python -m flows.<stage>` in its own process group, killed with
SIGKILL (no cleanup handlers run) at a seeded random moment of its measured uninterrupted
duration (a run that ends before its kill, the machine having got faster, is tried again at that
share of its own duration), then rerun to completion; per kill point, the result must verify (HDF5 checksums, no
leftovers), hold every manifest image exactly once, and equal the uninterrupted run's maps and
masks. Outputs (and the cams scratch) are cleared before the uninterrupted run and before each
kill point so that every kill lands in a run with work left. Each test works on its own copy of
the session's finished sample pipeline (`sample_repo`), with 2 images per shard.
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
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.params_edit import edit_params
from tests.pipeline.repos import run
from wsss.io import CamStore

# The session's sample pipeline run may be built in the setup of whichever test asks for it first.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

# Per stage; cams runs cost ~3x pseudo runs (CLIP), so it gets fewer kill points.
KILL_POINTS = {"cams": 2, "pseudo": 3}
SEED = 20240611


@pytest.fixture
def repo(sample_repo: tuple[Path, dict[str, str]]) -> tuple[Path, dict[str, str]]:
    """A copy of the finished sample pipeline with 2 images per shard, so that `cams` writes 3 shards."""
    path, env = sample_repo
    edit_params(path, {"store.images_per_shard": 2})
    return path, env


def stage_command(stage: str) -> list[str]:
    return [sys.executable, "-m", f"flows.{stage}"]


def timed_run(stage: str, repo: Path, env: dict[str, str]) -> float:
    started = time.monotonic()
    run(stage_command(stage), repo, env)
    return time.monotonic() - started


def run_and_kill(stage: str, repo: Path, env: dict[str, str], delay: float) -> float | None:
    """Start the stage, SIGKILL its whole process group after `delay` s; None, or how long it ran when it ended first."""
    started = time.monotonic()
    process = subprocess.Popen(stage_command(stage), cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        process.wait(timeout=delay)
        return time.monotonic() - started
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return None


def kill_points(stage: str, seed: int) -> list[float]:
    """Seeded SIGKILL moments, as shares of the stage's uninterrupted duration (mostly past the imports)."""
    rng = random.Random(seed)
    return [rng.uniform(0.4, 0.9) for _ in range(KILL_POINTS[stage])]


def kill_mid_run(stage: str, repo: Path, env: dict[str, str], share: float, duration: float, clear: Callable[[], None]) -> float | None:
    """SIGKILL the stage at `share` of `duration` (after `clear()` removed its outputs): the delay of the kill,
    or None when every run ended first. On a shared machine a run can take half the time of the measured one:
    a run that ended first is tried again at `share` of its own duration (3 tries)."""
    for _ in range(3):
        clear()
        delay = round(share * duration, 2)
        ended_after = run_and_kill(stage, repo, env, delay)
        if ended_after is None:
            return delay
        duration = ended_after
    return None


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
    shutil.rmtree(path / "artifacts/cams")
    shutil.rmtree(path / ".wsss-scratch", ignore_errors=True)
    duration = timed_run("cams", path, env)
    reference = store_contents(path / "artifacts/cams")
    shutil.rmtree(path / "artifacts/cams")

    def clear() -> None:
        shutil.rmtree(path / "artifacts/cams", ignore_errors=True)
        shutil.rmtree(path / ".wsss-scratch", ignore_errors=True)

    ids = manifest_ids(path)
    killed, lost = [], 0
    points = kill_points("cams", SEED)
    for share in points:
        if (delay := kill_mid_run("cams", path, env, share, duration, clear)) is not None:
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
        str(path.relative_to(directory)): path.read_bytes() for path in sorted(directory.rglob("*")) if path.is_file() and path.name != "summary.json"
    }


def test_pseudo_killed_at_random_points_resumes_to_the_uninterrupted_result(repo: tuple[Path, dict[str, str]]) -> None:
    path, env = repo
    shutil.rmtree(path / "artifacts/pseudo")
    duration = timed_run("pseudo", path, env)
    reference = pseudo_outputs(path / "artifacts/pseudo")
    reference_rows = json.loads((path / "artifacts/pseudo/summary.json").read_text())["images"]
    shutil.rmtree(path / "artifacts/pseudo")

    def clear() -> None:
        shutil.rmtree(path / "artifacts/pseudo", ignore_errors=True)

    ids = manifest_ids(path)
    killed, lost = [], 0
    points = kill_points("pseudo", SEED + 1)
    for share in points:
        if (delay := kill_mid_run("pseudo", path, env, share, duration, clear)) is not None:
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
    for sub, suffix in (("masks", ".png"), ("raw", ".png"), ("confidence", ".npy"), ("keys", ".json")):
        (path / "artifacts/pseudo" / sub / f"gone{suffix}").write_bytes(b"stale")
    (path / "artifacts/pseudo/masks/leftover.png.partial").write_bytes(b"half")
    run(stage_command("pseudo"), path, env)
    names = {p.name for p in (path / "artifacts/pseudo").rglob("*")}
    assert not {"gone.png", "gone.npy", "gone.json", "leftover.png.partial"} & names
