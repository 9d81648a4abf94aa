"""Where the shards of the sharded stages run: in this process, or on Dask workers.

The core only describes the choice (the `runner` params section); the task layer turns it into
a Prefect task runner (prefect-dask's `DaskTaskRunner`), so no scheduling code lives here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from wsss.settings import AUTO, Auto, build_section, check_fields, plain, setting


@dataclass(frozen=True)
class RunnerSettings:
    """How the shards of `cams`, `refine` and the second pass are mapped (the `runner` section)."""

    SECTION: ClassVar[str] = "runner"

    kind: Literal["sequential", "dask"] = setting("sequential", "one shard after the other in the stage process, or Dask", identity=False)
    address: str | None = setting(
        None,
        "scheduler of an existing Dask cluster (tcp://host:8786); null starts a LocalCluster for the run",
        check=lambda value: None if "://" in value else "must be a scheduler address like tcp://host:8786",
        identity=False,
    )
    workers: int = setting(2, "worker processes of that LocalCluster (one thread each: torch uses the cores)", ge=1, le=1024, identity=False)
    overlap_io: bool = setting(
        True, "cams: decode the next images and compress/write shards on threads while the model runs (same stored values)", identity=False
    )
    decode_workers: int | Auto = setting(
        AUTO,
        "threads decoding and resizing the next images with overlap_io; auto: 2, with CLIP on CUDA up to 6 (same stored values)",
        ge=1,
        le=64,
        identity=False,
    )
    image_processes: int | Auto = setting(
        AUTO,
        "cams/refine: processes beside the stage process that decode and compress (cams) or read, refine and "
        "compress (refine) each shard's images; 0 = in the stage process; auto: 0, with CLIP on CUDA the cores less 2 "
        "(at most 8) (same stored values)",
        ge=0,
        le=256,
        identity=False,
    )

    def __post_init__(self) -> None:
        check_fields(self)

    def local_processes(self) -> int:
        """Processes of this machine the shards run on: the stage process (`sequential`), or the
        LocalCluster's `workers` (`dask` without an address; one thread each); 0 with an address
        (an existing cluster's workers). The task runner and the GPU check's default layout read it."""
        if self.kind == "sequential":
            return 1
        return 0 if self.address else self.workers

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> RunnerSettings:
        """Command-line overrides (None = keep) applied on top, checked like the params file."""
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        return build_section(RunnerSettings, {**plain(self), **given}, "runner")
