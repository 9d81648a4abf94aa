"""Incremental stages: per-image content keys and the sharded engine that reuses what is unchanged."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsss.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from wsss.incremental.engine import (
        ImageCompute,
        ImageOutput,
        ShardJob,
        ShardOutcome,
        SilentReport,
        StageReport,
        StageSummary,
        StreamingCompute,
        Submit,
        run_now,
        run_sharded,
        write_shard,
    )
    from wsss.incremental.keys import (
        CONTENT_KEY_ATTR,
        StoredKey,
        array_digest,
        content_key,
        key_identity,
        record_keys,
        reusable_ids,
        shard_is_current,
        stage_identity,
        stale_shards,
        stored_keys,
    )
    from wsss.incremental.shard_files import scratch_name, shard_plan

__all__ = [
    "CONTENT_KEY_ATTR",
    "ImageCompute",
    "ImageOutput",
    "ShardJob",
    "ShardOutcome",
    "SilentReport",
    "StageReport",
    "StageSummary",
    "StoredKey",
    "StreamingCompute",
    "Submit",
    "array_digest",
    "content_key",
    "key_identity",
    "record_keys",
    "reusable_ids",
    "run_now",
    "run_sharded",
    "scratch_name",
    "shard_is_current",
    "shard_plan",
    "stage_identity",
    "stale_shards",
    "stored_keys",
    "write_shard",
]

__getattr__, __dir__ = lazy_exports(__name__, __file__)
