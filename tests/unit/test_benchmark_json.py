"""Benchmark figures written with `--json` name paths relative to the repository, never this machine's folders."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.common import ROOT, write_json


def test_paths_under_the_repository_are_written_relative_to_it(tmp_path: Path) -> None:
    figures = {
        str(ROOT): {"config": str(ROOT / "src/x.py"), "python": Path(ROOT / ".venv/bin/python"), "ms": 1.5},
        "/tmp/base": [str(ROOT), "other"],
        f"{ROOT}-sibling": 1,
    }
    write_json(tmp_path / "out.json", figures)
    written = json.loads((tmp_path / "out.json").read_text())
    assert written == {".": {"config": "src/x.py", "python": ".venv/bin/python", "ms": 1.5}, "/tmp/base": [".", "other"], f"{ROOT}-sibling": 1}
