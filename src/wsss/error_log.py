"""Tracebacks of expected errors go to a log file; the console gets one line saying what and what to do.

A missing CLIP checkpoint, a bad params value or no Prefect server is a situation the user fixes,
not a bug: the command prints `error: <what> (traceback: <log file>)` and exits 2, and the
chained traceback (open_clip, the hub, Prefect) is appended to the log file for whoever needs it.
"""

from __future__ import annotations

import traceback
from datetime import UTC, datetime
from pathlib import Path


def record_traceback(path: Path, error: BaseException, context: str) -> Path:
    """Append `error`'s traceback (its causes included) under a dated `context` line; returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = "".join(traceback.format_exception(error))
    with open(path, "a", encoding="utf-8") as handle:  # a log: appended, never rewritten
        handle.write(f"--- {stamp} {context}\n{text}\n")
    return path


def one_line(error: BaseException, log: Path | None) -> str:
    """`error: <message> (traceback: <log>)`."""
    return f"error: {error}" + (f" (traceback: {log})" if log is not None else "")
