"""Keeping the previous version of every replaced mask, and the JSONL log of relabel runs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from wsss.bounded_parsing import loads_json
from wsss.errors import WsssError
from wsss.io.atomic import copy_file_atomic


@dataclass(frozen=True)
class RunRecord:
    """One relabel run as logged: counts, durations (seconds per step) and what it wrote."""

    run_stamp: str
    flow_run_id: str | None
    counts: Mapping[str, int]
    durations: Mapping[str, float]
    relabeled: Sequence[str]
    removed: Sequence[str]
    retrained: bool
    manifest_sha256: str
    history_dir: str | None
    written: Sequence[str] = field(default_factory=list)
    failed: Sequence[str] = field(default_factory=list)  # images left out (unreadable input), see failures.json


def archive_outputs(image_ids: Iterable[str], output_dir: Path, layout: Mapping[str, str], destination: Path) -> list[Path]:
    """Copy each image's existing outputs into `destination` before they are replaced or deleted.

    Args:
        image_ids: images whose outputs are about to change.
        output_dir: the stage output folder (e.g. artifacts/pseudo).
        layout: subfolder -> file suffix of one image's outputs (`{"masks": ".png", ...}`).
        destination: the history folder of this run; the same subfolders are created there.

    Returns:
        The archived copies (images without outputs yet are skipped).
    """
    archived = []
    for image_id in image_ids:
        for sub, suffix in layout.items():
            source = output_dir / sub / f"{image_id}{suffix}"
            if source.is_file():
                target = destination / sub / source.name
                copy_file_atomic(source, target)
                archived.append(target)
    return archived


def append_run_log(path: Path, record: Any) -> None:
    """Append one record (a dataclass: `RunRecord`, the loop's `LoopRun`) as a JSON line; a crash mid-write
    can at worst leave a truncated last line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(asdict(record), sort_keys=True, default=list) + "\n")


def read_run_log(path: Path) -> list[dict[str, Any]]:
    """Every logged run, oldest first (a truncated last line is ignored)."""
    if not path.is_file():
        return []
    runs = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        try:
            runs.append(loads_json(line, f"{path}: line {number}"))
        except ValueError as error:  # ParseError: syntax or nesting
            if number == len(lines):
                break
            raise WsssError(str(error)) from None  # names the file and line
    return runs
