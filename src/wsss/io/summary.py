"""Per-shard overview of a store directory, for `wsss inspect`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from wsss.errors import StoreError
from wsss.io.attributes import from_attr
from wsss.io.cam_store import CamStore, open_shard, shard_image_ids
from wsss.io.integrity import checked_dataset, checked_group

PROPERTIES = ("shape", "dtype", "chunks", "compression", "compression_opts", "shuffle", "fletcher32")


def summarize(directory: str | Path) -> list[dict[str, Any]]:
    """Per-shard overview for inspection: size, image count, codec, first image's arrays, root attr keys.

    A shard that cannot be read, or whose first image holds objects the store does not write,
    gets an `error` entry instead of raising.
    """
    summaries: list[dict[str, Any]] = []
    for path in CamStore(directory).shards:
        summary: dict[str, Any] = {"file": path.name, "size_bytes": path.stat().st_size}
        try:
            with open_shard(path) as handle:
                image_ids = shard_image_ids(handle, path)
                images = checked_group(handle, "images", f"{path}: group 'images'")
                first = checked_group(images, image_ids[0], f"{path}: image {image_ids[0]!r}") if image_ids else None
                datasets = {}
                for name in sorted(first or ()):
                    dataset = checked_dataset(first, name, f"{path}: image {image_ids[0]!r}: array {name!r}", None, None)
                    datasets[name] = {key: _plain(getattr(dataset, key)) for key in PROPERTIES}
                summary.update(images=len(image_ids), datasets=datasets, root_attr_keys=sorted(handle.attrs))
                codec = from_attr(handle.attrs["codec"]) if "codec" in handle.attrs else None
                summary["compression"] = (
                    codec.get("name")
                    if isinstance(codec, dict)
                    else next((d["compression"] or "none" for d in datasets.values() if d["chunks"]), None)
                )
        except StoreError as error:
            summary["error"] = str(error)
        summaries.append(summary)
    return summaries


def _plain(value: Any) -> Any:
    """JSON-friendly form of an h5py dataset property (tuples -> lists, dtypes -> names)."""
    return list(value) if isinstance(value, tuple) else str(value) if isinstance(value, np.dtype) else value
