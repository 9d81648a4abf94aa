"""Per-image output reuse: atomic writes and key files that say which inputs made an output.

A stage that writes several files per image (e.g. `pseudo`: mask, raw labels, confidence)
writes each one to a temporary name and renames it, then writes `<keys>/<image_id>.json`
holding the digest of everything the outputs depend on. An image is reused on the next run
only when its key file exists, names the same digest, and every output exists. The key file
is removed before an image is recomputed and written after its last output, so a run killed
at any point leaves either a consistent image or one without a key (recomputed next time).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wsss.bounded_parsing import loads_json

PARTIAL_SUFFIX = ".partial"


def content_key(arrays: Sequence[np.ndarray], values: Any) -> str:
    """Hex SHA-256 of arrays (dtype, shape and bytes) and a JSON-able value (sorted keys)."""
    digest = hashlib.sha256()
    for array in arrays:
        contiguous = np.ascontiguousarray(array)
        digest.update(f"{contiguous.dtype.str}{contiguous.shape}".encode())
        digest.update(contiguous.tobytes())
    digest.update(json.dumps(values, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through `<path>.partial` + fsync + rename (never half-written)."""
    partial = path.with_name(path.name + PARTIAL_SUFFIX)
    with open(partial, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def key_path(keys_dir: Path, image_id: str) -> Path:
    return keys_dir / f"{image_id}.json"


def reusable_row(keys_dir: Path, image_id: str, key: str, outputs: Iterable[Path]) -> dict[str, Any] | None:
    """The summary row stored with a matching key when every output exists; else None."""
    try:
        path = key_path(keys_dir, image_id)
        stored = loads_json(path.read_text(), str(path))
    except (OSError, ValueError):  # incl. ParseError: a damaged key only means recompute
        return None
    if not isinstance(stored, dict) or stored.get("key") != key or not all(path.is_file() for path in outputs):
        return None
    row = stored.get("row")
    return row if isinstance(row, dict) else None


def forget(keys_dir: Path, image_id: str) -> None:
    """Drop an image's key before its outputs are rewritten."""
    key_path(keys_dir, image_id).unlink(missing_ok=True)


def record(keys_dir: Path, image_id: str, key: str, row: dict[str, Any]) -> None:
    """Mark an image's outputs complete for `key` (call after its last output is in place)."""
    write_bytes_atomic(key_path(keys_dir, image_id), (json.dumps({"key": key, "row": row}, sort_keys=True) + "\n").encode())


def remove_stale_outputs(directories: Iterable[Path], keep_ids: set[str]) -> list[Path]:
    """Delete files whose stem is not a kept image id, and leftover `.partial` files; return them.

    Used after a run so that images no longer in the input (dropped or relabelled upstream) do
    not leave outputs behind.
    """
    removed = []
    for directory in directories:
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if path.is_file() and (path.name.endswith(PARTIAL_SUFFIX) or path.stem not in keep_ids):
                path.unlink()
                removed.append(path)
    return removed
