"""Scheduled incremental relabeling: manifest diffs, mask history and the run log (core, no Prefect)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsss.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from wsss.relabel.history import RunRecord, append_run_log, archive_outputs, read_run_log
    from wsss.relabel.manifest_diff import ManifestDiff, diff_fingerprints, diff_manifests, record_fingerprint, stored_fingerprints
    from wsss.relabel.settings import RelabelSettings

__all__ = [
    "ManifestDiff",
    "RelabelSettings",
    "RunRecord",
    "append_run_log",
    "archive_outputs",
    "diff_fingerprints",
    "diff_manifests",
    "read_run_log",
    "record_fingerprint",
    "stored_fingerprints",
]

__getattr__, __dir__ = lazy_exports(__name__, __file__)
