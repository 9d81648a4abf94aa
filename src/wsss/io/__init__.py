"""Storage of pipeline artefacts: the sharded HDF5 CAM store."""

from wsss.io.attributes import from_attr, to_attr, validate_name
from wsss.io.cam_store import CamStore, StoredImage, summarize
from wsss.io.codecs import CODECS, DEFAULT_CODEC
from wsss.io.shard_writer import SCHEMA_VERSION, ShardWriter, assign_shards, chunk_shape, shard_path

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
