"""The locks one pipeline run holds, so no other run (or `dvc repro`) touches its artifacts.

* The artifacts run lock (`wsss.run_lock`): every stage, relabel and pipeline run takes it, so a
  second run against the same artifacts is refused at once, naming the owner.
* DVC's own repository lock (`.dvc/tmp/lock`), taken the way DVC 3 takes it (`zc.lockfile`,
  an exclusive `flock`), by every run that DVC did not start (DVC sets `DVC_STAGE` in the
  environment of the stage commands it runs, while it holds that lock itself). `dvc repro`
  empties a stage's outputs before running its command; holding DVC's lock makes a concurrent
  `dvc repro` fail with DVC's "Unable to acquire lock" before it deletes anything, and a relabel
  started while `dvc repro` runs is refused here instead of losing what it writes. (With DVC's
  `core.hardlink_lock` setting DVC uses another lock, which this does not take.)

Both are `flock`s: the kernel releases them when their owner dies, even by SIGKILL.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wsss.catalog import ArtifactLayout
from wsss.errors import RunLockedError
from wsss.run_lock import HeldLock, run_lock

DVC_LOCK = Path(".dvc") / "tmp" / "lock"


def started_by_dvc() -> bool:
    """True inside a stage command that `dvc repro` runs (it holds the repository lock then)."""
    return bool(os.environ.get("DVC_STAGE"))


@contextmanager
def dvc_repository_lock(repo: Path) -> Iterator[Path | None]:
    """Hold DVC's repository lock of `repo` (nothing outside a DVC repository or under `dvc repro`).

    Raises:
        RunLockedError: a DVC command holds it (naming its pid).
    """
    if started_by_dvc() or not (repo / ".dvc").is_dir():
        yield None
        return
    import zc.lockfile

    path = repo / DVC_LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        lock = zc.lockfile.LockFile(str(path))
    except zc.lockfile.LockError:
        owner = path.read_text(errors="replace").strip() if path.is_file() else ""
        raise RunLockedError(
            f"{path}: a DVC command{f' (pid {owner})' if owner else ''} holds the repository lock, e.g. `dvc repro`; "
            "wait for it to finish (a run started now would have its outputs deleted by DVC)"
        ) from None
    try:
        yield path
    finally:
        lock.close()


@contextmanager
def pipeline_lock(layout: ArtifactLayout) -> Iterator[HeldLock]:
    """The artifacts run lock, then DVC's repository lock, for the duration of one run."""
    with run_lock(layout.lock_dir) as held, dvc_repository_lock(layout.repo):
        yield held
