"""Where CAM extraction runs: in this process, or on Dask workers (the `runner` params section).

The core only describes the choice; the flows turn it into a Prefect task runner (prefect-dask's
`DaskTaskRunner`), so no scheduling code lives here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wsss.errors import ConfigError

RUNNER_KINDS = ("sequential", "dask")


@dataclass(frozen=True)
class RunnerSettings:
    """How the shards of the `cams` stage are mapped.

    Attributes:
        kind: "sequential" (one shard after the other in the stage process) or "dask".
        address: Dask scheduler address (`tcp://host:8786`) of an existing cluster; None starts a
            `LocalCluster` on this machine for the duration of the run.
        workers: worker processes of that LocalCluster (one thread each: CLIP uses all cores
            of its process through torch anyway).
    """

    kind: str = "sequential"
    address: str | None = None
    workers: int = 2

    def __post_init__(self) -> None:
        if self.kind not in RUNNER_KINDS:
            raise ConfigError(f"runner.kind must be one of {RUNNER_KINDS}, got {self.kind!r}")
        if self.address is not None and not isinstance(self.address, str):
            raise ConfigError(f"runner.address must be a string like tcp://host:8786 or null, got {self.address!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ConfigError(f"runner.workers must be an integer >= 1, got {self.workers!r}")


def runner_settings(params: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> RunnerSettings:
    """The `runner` section (absent = sequential), with command-line overrides applied on top."""
    from wsss.config import _build, _section

    section = {**_section(params, "runner"), **{k: v for k, v in (overrides or {}).items() if v is not None}}
    return _build(RunnerSettings, section, "runner")
