"""Per-shard overview of a store directory, for `wsss inspect`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from wsss.errors import StoreError
from wsss.io.cam_store import CamStore

PROPERTIES = ("shape", "dtype", "chunks", "compression", "compression_opts", "shuffle", "fletcher32")


def summarize(directory: str | Path) -> list[dict[str, Any]]:
    """Per-shard overview for inspection: size, image count, first image's arrays, root attr keys.

    A shard that cannot be read gets an `error` entry instead of raising.
    """
    store = CamStore(directory)
    summaries: list[dict[str, Any]] = []
    for path in store.shards:
        summary: dict[str, Any] = {"file": path.name, "size_bytes": path.stat().st_size}
        try:
            root = store.root_attrs(path)
            image_ids = root.get("image_ids") or []
            summary.update(images=len(image_ids), datasets=_first_image_datasets(path, image_ids[:1]), root_attr_keys=sorted(root))
            summary["compression"] = next((d["compression"] for d in summary["datasets"].values() if d["chunks"]), None)
        except StoreError as error:
            summary["error"] = str(error)
        summaries.append(summary)
    return summaries


def _first_image_datasets(path: Path, first: list[str]) -> dict[str, dict[str, Any]]:
    try:
        with h5py.File(path, "r") as handle:
            group = handle["images"][first[0]] if first else {}
            return {name: {key: _plain(getattr(group[name], key)) for key in PROPERTIES} for name in sorted(group)}
    except (OSError, KeyError, ValueError, RuntimeError) as error:
        raise StoreError(f"{path}: unreadable, shard corrupted? ({error})") from error


def _plain(value: Any) -> Any:
    """JSON-friendly form of an h5py dataset property (tuples -> lists, dtypes -> names)."""
    return list(value) if isinstance(value, tuple) else str(value) if isinstance(value, np.dtype) else value
