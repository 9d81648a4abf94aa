"""The cores a test process (and the stage processes it starts) may use."""

from __future__ import annotations

import os


def cpu_share() -> int:
    """Cores for one test process: all of them (at most 4), or an even share under pytest-xdist's
    workers, so that two workers on 2 cores do not run 4 busy torch threads."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, min(4, (os.cpu_count() or 1) // workers))
