"""Stage entries found through the stage table (`wsss.stages`), for the runs that chain stages
(relabel, the SemPLeS second pass): no stage entry imports another, and the order they run in is
the table's."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from wsss.stages import stage


def stage_entry(name: str) -> Callable[..., Any]:
    """`run_<stage>` of a stage, imported when first asked for (its imports stay out of callers' start-up)."""
    entry = stage(name)
    return getattr(importlib.import_module(entry.entry_module), entry.entry_function)
