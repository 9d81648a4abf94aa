"""Lossless codecs of the CAM store and the HDF5 filters each one writes.

Every chunked dataset carries a fletcher32 checksum after its compression filter (computed over
the compressed bytes, so a damaged chunk fails before it is decompressed). The default, `zstd`,
is HDF5's byte shuffle followed by Zstandard level 1 (the `hdf5plugin` filter): on peaked
float16 attention it stores ~0.52 MB per 500x375 image for ~1/6 of gzip's CPU time (figures in
benchmarks/RESULTS.md). `blosc2-zstd` (Blosc2: shuffle + Zstd) stores the same size with a little
more per-chunk overhead, but can compress one chunk on several threads (BLOSC_NTHREADS). Files
written with either need `import hdf5plugin` next to h5py to be read; gzip and lzf files need
nothing beyond h5py. Values are never changed: all codecs are lossless.
"""

from __future__ import annotations

from typing import Any

import h5py
import hdf5plugin

from wsss.errors import StoreError
from wsss.io.settings import DEFAULT_COMPRESSION, STORE_COMPRESSIONS

# The names are the `store.compression` choices (`wsss.io.settings`, the one list).
DEFAULT_CODEC = DEFAULT_COMPRESSION
CODECS = STORE_COMPRESSIONS
# Level used when the caller gives none, and the accepted range.
DEFAULT_LEVELS: dict[str, int] = {"zstd": 1, "blosc2-zstd": 1, "gzip": 4}
LEVEL_RANGES: dict[str, tuple[int, int]] = {"zstd": (1, 22), "blosc2-zstd": (1, 9), "gzip": (0, 9)}
CHECKSUM = "fletcher32"
# Filter ids the store writes; a dataset using any other filter was not written by it.
STORE_FILTERS = {
    h5py.h5z.FILTER_DEFLATE: "gzip",
    h5py.h5z.FILTER_SHUFFLE: "shuffle",
    h5py.h5z.FILTER_FLETCHER32: "fletcher32",
    h5py.h5z.FILTER_LZF: "lzf",
    hdf5plugin.Zstd.filter_id: "zstd",
    hdf5plugin.Blosc2.filter_id: "blosc2",
}


def codec_name(compression: str | None) -> str:
    """Canonical codec name; None (the old API's "no compression") is "none"."""
    name = "none" if compression is None else compression
    if name not in CODECS:
        raise StoreError(f"compression must be one of {CODECS}, got {compression!r}")
    return name


def codec_level(name: str, level: int | None) -> int | None:
    """The level `name` uses: `level`, or its default; codecs without levels take None."""
    if name not in LEVEL_RANGES:
        if level is not None:
            raise StoreError(f"compression {name!r} takes no level, got {level!r}")
        return None
    low, high = LEVEL_RANGES[name]
    chosen = DEFAULT_LEVELS[name] if level is None else level
    if not isinstance(chosen, int) or not low <= chosen <= high:
        raise StoreError(f"compression {name!r} level must be an integer in {low}-{high}, got {level!r}")
    return chosen


def dataset_filters(name: str, level: int | None) -> dict[str, Any]:
    """`create_dataset` keyword arguments of a chunked dataset: compression, shuffle, checksum."""
    if name == "gzip":
        options: dict[str, Any] = {"compression": "gzip", "compression_opts": level, "shuffle": True}
    elif name == "lzf":
        options = {"compression": "lzf", "shuffle": True}
    elif name == "zstd":
        assert level is not None  # codec_level gives every codec with levels an int
        options = {**hdf5plugin.Zstd(clevel=level), "shuffle": True}
    elif name == "blosc2-zstd":
        # Blosc2 shuffles bytes itself; HDF5's shuffle filter would only repeat that work.
        assert level is not None
        options = dict(hdf5plugin.Blosc2(cname="zstd", clevel=level, filters=hdf5plugin.Blosc2.SHUFFLE))
    else:
        options = {}
    return {**options, "fletcher32": True}


def codec_record(name: str, level: int | None) -> dict[str, Any]:
    """The `codec` root attribute: what compressed the shard and how to read it back."""
    pipelines = {
        "zstd": "shuffle -> Zstandard -> fletcher32",
        "blosc2-zstd": "Blosc2 (byte shuffle + Zstd) -> fletcher32",
        "gzip": "shuffle -> deflate -> fletcher32",
        "lzf": "shuffle -> lzf -> fletcher32",
        "none": "fletcher32",
    }
    record: dict[str, Any] = {"name": name, "level": level, "filters": pipelines[name], "checksum": CHECKSUM}
    if name in ("zstd", "blosc2-zstd"):
        record["reader"] = f"h5py + import hdf5plugin (written with hdf5plugin {hdf5plugin.version})"
    return record
