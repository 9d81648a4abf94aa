"""Storage of pipeline artefacts: the sharded HDF5 CAM store (read: `cam_store`, write: `shard_writer`,
`codecs`, refusals: `integrity`, background writer and prefetch: `pipelining`), the pseudo-mask store
(`pseudo_store`), the one atomic-write helper (`atomic`) and the typed JSON records (`records`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsss.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from wsss.io.attributes import from_attr, to_attr, validate_name
    from wsss.io.cam_store import CamStore, StoredImage
    from wsss.io.codecs import CODECS, DEFAULT_CODEC
    from wsss.io.shard_assignment import assign_shards
    from wsss.io.shard_writer import SCHEMA_VERSION, ShardWriter, chunk_shape, shard_path
    from wsss.io.summary import summarize

__all__ = [
    "CODECS",
    "DEFAULT_CODEC",
    "SCHEMA_VERSION",
    "CamStore",
    "ShardWriter",
    "StoredImage",
    "assign_shards",
    "chunk_shape",
    "from_attr",
    "shard_path",
    "summarize",
    "to_attr",
    "validate_name",
]

__getattr__, __dir__ = lazy_exports(__name__, __file__)
