"""The `relabel` params section: schedule, retraining threshold, where history goes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import ClassVar

from wsss.settings import check_fields, setting


def _cron_problem(value: str) -> str | None:
    return None if len(value.split()) in (5, 6) else "must be a cron expression like '0 3 * * *'"


def _inside_repository_problem(value: str) -> str | None:
    """State folders are written and deleted by runs: they must stay inside the repository."""
    path = PurePosixPath(value.replace("\\", "/"))
    if not value.strip() or path.is_absolute() or ".." in path.parts or value.startswith("~"):
        return "must be a relative path inside the repository (no '..', not absolute)"
    return None


@dataclass(frozen=True)
class RelabelSettings:
    """Scheduled incremental relabeling."""

    SECTION: ClassVar[str] = "relabel"

    cron: str | None = setting(None, "schedule of the served deployment (`serve` without --cron/--interval)", check=_cron_problem)
    interval_seconds: int | None = setting(None, "alternative to cron: a fixed interval", ge=1, le=31_536_000)
    retrain_share: float | None = setting(
        None, "retrain (train + evaluate) when (added + changed + removed) / images exceeds this; null = never", ge=0.0, le=1.0
    )
    state_dir: str = setting(
        "artifacts/relabel", "last run's manifest, the JSONL run log and history/<run stamp>/ (replaced masks)", check=_inside_repository_problem
    )

    def __post_init__(self) -> None:
        check_fields(self)

    def retrains(self, changed_share: float) -> bool:
        """Whether a run that changed this share of the images retrains (train + evaluate)."""
        return self.retrain_share is not None and changed_share > self.retrain_share
