"""Storage of pipeline artefacts: the sharded HDF5 CAM store (here), and in their modules the pseudo-mask
store (`pseudo_store`), the one atomic-write helper (`atomic`) and the typed JSON records (`records`)."""

from wsss.io.attributes import from_attr, to_attr, validate_name
from wsss.io.cam_store import SCHEMA_VERSION, CamStore, ShardWriter, StoredImage, chunk_shape, shard_path
from wsss.io.shard_assignment import assign_shards
from wsss.io.summary import summarize

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
