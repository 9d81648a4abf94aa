"""What one run of a stage did: the one result type every stage entry (`run_<stage>`) returns.

Flows, relabel and the SemPLeS second pass read its fields by name; what only one stage knows
(the manifest hash, the selected template, the metrics document, shard names) goes into
`details`, whose keys say what each value is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FIELDS = ("stage", "computed", "reused", "failed", "removed", "written")


@dataclass(frozen=True)
class StageResult:
    """One stage run.

    Attributes:
        stage: the stage (or pass step) that ran, e.g. "cams" or "learned_cams".
        computed: images whose outputs this run computed (sorted).
        reused: images whose earlier outputs were kept: copied or left in an unchanged file.
        failed: image id -> why it has no output this run (its input could not be read).
        removed: images whose outputs this run deleted (no longer in the dataset).
        written: files this run wrote (repository-relative as the catalog names them).
        details: what only this stage reports, by name (never read by position).
    """

    stage: str
    computed: tuple[str, ...] = ()
    reused: tuple[str, ...] = ()
    failed: Mapping[str, str] = field(default_factory=dict)
    removed: tuple[str, ...] = ()
    written: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clashes = sorted(set(self.details) & set(FIELDS))
        if clashes:
            raise ValueError(f"StageResult details may not reuse the field names {clashes}")

    @property
    def images(self) -> int:
        """Images with an output after this run (computed or reused)."""
        return len(self.computed) + len(self.reused)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the fields, then the details at the same level (what a flow returns)."""
        return {
            "stage": self.stage,
            "computed": list(self.computed),
            "reused": list(self.reused),
            "failed": dict(self.failed),
            "removed": list(self.removed),
            "written": [str(p) for p in self.written],
            **self.details,
        }
