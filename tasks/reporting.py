"""Prefect artifacts that link a flow run to the files it wrote (lineage from the Prefect UI)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from prefect.artifacts import create_markdown_artifact


def link_written_shards(key: str, written: Sequence[Path], untouched: Sequence[str]) -> None:
    """A markdown artifact: the shard files this run wrote (absolute paths) and those it left as they were."""
    lines = ["| shard | this run |", "|---|---|"]
    lines += [f"| `{Path(p).resolve()}` | written |" for p in sorted(written)]
    lines += [f"| `{name}` | unchanged (kept from an earlier run) |" for name in sorted(untouched)]
    create_markdown_artifact("\n".join(lines), key=key, description="Files written by this flow run")


def link_written_files(key: str, files: Sequence[Path], title: str) -> None:
    """A markdown artifact listing files this run wrote, with `file://` links."""
    lines = [f"### {title}", ""] + [f"- [{Path(p).name}]({Path(p).resolve().as_uri()})" for p in sorted(files)]
    create_markdown_artifact("\n".join(lines) if files else f"### {title}\n\nnothing written", key=key, description=title)
