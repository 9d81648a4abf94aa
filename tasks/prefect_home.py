"""Stage processes started without the loop's set-up (a plain `dvc repro`, `python -m flows.<stage>`)
use the repository's private Prefect home (`<repo>/.prefect`) instead of the user's default one,
whose SQLite database another run or server may hold ("database is locked").

Prefect reads its settings once, when it is imported, so `flows/__init__.py` calls this before
any flow module imports Prefect. Whatever the caller set (`PREFECT_HOME`, `PREFECT_API_URL` with
its own home) is kept.
"""

from __future__ import annotations

import os
from pathlib import Path

from wsss.loop.prefect_server import loop_defaults


def use_private_prefect_home() -> None:
    """Set the loop's defaults the environment leaves unset (the repository is the working
    directory: DVC runs every stage there)."""
    for key, value in loop_defaults(Path.cwd()).items():
        os.environ.setdefault(key, value)
