"""Storage of pipeline artefacts: the sharded HDF5 CAM store."""

from wsss.io.cam_store import (
    SCHEMA_VERSION,
    CamStore,
    ShardWriter,
    StoredImage,
    assign_shards,
    chunk_shape,
    shard_path,
    summarize,
)
from wsss.io.attributes import from_attr, to_attr, validate_name

__all__ = [
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
