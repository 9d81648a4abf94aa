"""The `relabel` params section: schedule, retraining threshold, where history goes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wsss.errors import ConfigError


@dataclass(frozen=True)
class RelabelSettings:
    """Scheduled incremental relabeling.

    Attributes:
        cron: schedule of the served deployment (`serve` without --cron/--interval uses it).
        interval_seconds: alternative to `cron`, a fixed interval.
        retrain_share: retrain (train + evaluate) when (added + changed + removed) / images
            exceeds this share; None never retrains automatically.
        state_dir: last run's manifest, the JSONL run log and `history/<run stamp>/` (the previous
            version of every changed or removed mask).
    """

    cron: str | None = None
    interval_seconds: int | None = None
    retrain_share: float | None = None
    state_dir: str = "artifacts/relabel"

    def __post_init__(self) -> None:
        if self.cron is not None and (not isinstance(self.cron, str) or len(self.cron.split()) not in (5, 6)):
            raise ConfigError(f"relabel.cron must be a cron expression like '0 3 * * *', got {self.cron!r}")
        if self.interval_seconds is not None and (isinstance(self.interval_seconds, bool) or not isinstance(self.interval_seconds, int) or self.interval_seconds < 1):
            raise ConfigError(f"relabel.interval_seconds must be an integer >= 1, got {self.interval_seconds!r}")
        if self.retrain_share is not None and (isinstance(self.retrain_share, bool) or not isinstance(self.retrain_share, (int, float)) or not 0 <= self.retrain_share <= 1):
            raise ConfigError(f"relabel.retrain_share must be a number in [0, 1] or null, got {self.retrain_share!r}")


def relabel_settings(params: Mapping[str, Any]) -> RelabelSettings:
    """The `relabel` section (absent = defaults)."""
    from wsss.config import _build, _section

    return _build(RelabelSettings, _section(params, "relabel"), "relabel")
