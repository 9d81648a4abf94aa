"""The shard files of a sharded stage run: which image goes to which shard, the scratch folder
a run writes into, and publishing finished scratch shards into the store (the last step of
`wsss.incremental.engine.run_sharded`)."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wsss.errors import StoreError
from wsss.incremental.keys import PARAMS_ATTR, stage_identity, stale_shards
from wsss.io import CamStore, assign_shards
from wsss.io.atomic import remove_leftover_temporaries
from wsss.io.shard_assignment import assign_shards_by_hash
from wsss.io.shard_writer import publish_move
from wsss.provenance import sha256_of

if TYPE_CHECKING:
    from wsss.incremental.engine import ShardOutcome


def shard_plan(image_ids: Sequence[str], images_per_shard: int, shard_count: int | None = None) -> dict[int, list[str]]:
    """Shard index -> its ids in sorted order: by stable hash with `shard_count`, else by sorted position."""
    return assign_shards_by_hash(image_ids, shard_count) if shard_count else assign_shards(image_ids, images_per_shard)


def scratch_name(stage: str, root_attrs: Mapping[str, Any], keys: Mapping[str, str]) -> str:
    """The scratch folder of a run: stage + everything its shards' content depends on."""
    return f"{stage}-{sha256_of({'identity': stage_identity(root_attrs), 'keys': dict(keys)})[:16]}"


def records_params(path: Path, root_attrs: Mapping[str, Any]) -> bool:
    """Whether a shard recorded the params this run records (false for an unreadable shard)."""
    try:
        return CamStore(path.parent).root_attrs(path).get(PARAMS_ATTR) == root_attrs.get(PARAMS_ATTR)
    except StoreError:
        return False


def publish(outcomes: Sequence[ShardOutcome], output: Path, untouched: Sequence[str], scratch: Path) -> list[Path]:
    """Move finished scratch shards into the store; delete every other shard file (removed images, or
    a shard whose images all failed this time) and leftovers of interrupted copies; drop scratch."""
    output.mkdir(parents=True, exist_ok=True)
    published = []
    for outcome in outcomes:
        if outcome.path is not None:
            # A full disk: one StoreError naming the shard; the previous shard stays, nothing partial.
            published.append(publish_move(outcome.path, output / outcome.path.name))
    for stale in stale_shards(output, [*published, *(output / name for name in untouched)]):
        stale.unlink()
    remove_leftover_temporaries([output])
    shutil.rmtree(scratch, ignore_errors=True)
    return published
