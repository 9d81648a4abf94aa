"""Which shard an image goes to: by sorted position, or stably by a hash of its id.

`assign_shards` (by sorted position) moves every later image when one is inserted, so an
incremental run would rewrite every later shard. Here shard = first 8 bytes of SHA-256(id)
modulo `shard_count`: adding or removing an image changes only the shard it hashes to, and
every other shard file can be left byte-identical. Changing `shard_count` reshuffles all ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from itertools import pairwise

from wsss.errors import StoreError
from wsss.io.attributes import validate_name


def assign_shards(image_ids: Sequence[str], images_per_shard: int) -> dict[int, list[str]]:
    """Group a run's image ids into shards by their position in sorted order.

    Args:
        image_ids: every image id of the run, any order, no duplicates.
        images_per_shard: capacity of a shard (>= 1).

    Returns:
        Shard index -> the sorted ids it holds; only non-empty shards appear.
    """
    if images_per_shard < 1:
        raise StoreError(f"images_per_shard must be >= 1, got {images_per_shard}")
    ordered = sorted(validate_name(image_id) for image_id in image_ids)
    duplicates = sorted({a for a, b in pairwise(ordered) if a == b})
    if duplicates:
        raise StoreError(f"duplicate image ids: {duplicates[:5]}")
    shards: dict[int, list[str]] = {}
    for position, image_id in enumerate(ordered):
        shards.setdefault(position // images_per_shard, []).append(image_id)
    return shards


def stable_shard_index(image_id: str, shard_count: int) -> int:
    """Shard of one image id, in `[0, shard_count)`, the same on every machine and run."""
    if shard_count < 1:
        raise StoreError(f"shard_count must be >= 1, got {shard_count}")
    digest = hashlib.sha256(validate_name(image_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shard_count


def assign_shards_by_hash(image_ids: Iterable[str], shard_count: int) -> dict[int, list[str]]:
    """Group ids by `stable_shard_index`.

    Returns:
        Shard index -> its ids in sorted order (what `ShardWriter` requires); only non-empty
        shards appear, in increasing index order.
    """
    ordered = sorted(image_ids)
    duplicates = sorted({a for a, b in pairwise(ordered) if a == b})
    if duplicates:
        raise StoreError(f"duplicate image ids: {duplicates[:5]}")
    shards: dict[int, list[str]] = {}
    for image_id in ordered:
        shards.setdefault(stable_shard_index(image_id, shard_count), []).append(image_id)
    return dict(sorted(shards.items()))
