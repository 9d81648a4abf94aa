"""Per-image content keys: the one reuse-key scheme of every incremental stage.

An image's key is the SHA-256 of everything that determines its output: the stage identity
(params, weights identity, template, class list, dataset root, library versions and the digest
of the core code that computes the numbers: `wsss.stage_code.code_digest`, from the stage table)
plus the image's own inputs (bytes hash, tags, path; for `refine`, the upstream CAM key; for
`pseudo`, the refined key). The HDF5 stages store it as the per-image attribute `content_key`,
the pseudo stage in `keys/<id>.json`. A later run reuses an image whose key is unchanged
instead of recomputing it, and leaves a whole shard file untouched when every image in it is
unchanged, so a params or code change still recomputes everything while a new image costs one
image.

`key_identity` is the one rule of what enters a key: what the stage records about how it made
its outputs, without the run-specific facts (flow-run id, git commit, manifest hash, the params
hash) and without the params keys declared `identity=False` (`wsss.settings.setting`: worker
counts, the runner, the store codec and shard layout), which change how a run goes, never a value.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from wsss.errors import StoreError
from wsss.io.attributes import from_attr
from wsss.params import Params
from wsss.provenance import sha256_of
from wsss.settings import iter_keys, type_hints

CONTENT_KEY_ATTR = "content_key"
# Root attributes that describe one run rather than what the maps are computed from (`layout`: the
# run's resolved runner section and cores, `wsss.machine_layout.layout_record`).
RUN_SPECIFIC_ATTRS = ("code_version", "flow_run_id", "input_manifest_sha256", "layout")
PARAMS_ATTR, PARAMS_HASH_ATTR = "params", "params_sha256"


def stage_identity(root_attrs: Mapping[str, Any]) -> dict[str, Any]:
    """A stage's root attributes without the run-specific ones (what its shards record about
    how they were made: two runs with equal identities write equal shards)."""
    return {k: v for k, v in root_attrs.items() if k not in RUN_SPECIFIC_ATTRS}


@cache
def not_identity_keys() -> frozenset[str]:
    """Dotted params keys declared `identity=False` (read once from the section classes)."""
    return frozenset(
        key for name, kind in type_hints(Params).items() for key, _, field in iter_keys(kind, name) if not field.metadata.get("identity", True)
    )


def identity_params(sections: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Recorded params sections without the keys that are not part of a reuse key."""
    kept = {}
    for name, value in sections.items():
        dotted = f"{prefix}{name}"
        if dotted in not_identity_keys():
            continue
        kept[name] = identity_params(value, f"{dotted}.") if isinstance(value, Mapping) else value
    return kept


def key_identity(recorded: Mapping[str, Any]) -> dict[str, Any]:
    """The one rule of what enters a reuse key, applied to what a stage records about how it made
    an output (root attributes, or the same shape: `params`, `code`, weights identity, ...):
    no run-specific attribute, no params hash, no params key declared `identity=False`."""
    identity = {k: v for k, v in stage_identity(recorded).items() if k != PARAMS_HASH_ATTR}
    if isinstance(identity.get(PARAMS_ATTR), Mapping):
        identity[PARAMS_ATTR] = identity_params(identity[PARAMS_ATTR])
    return identity


def content_key(identity: Mapping[str, Any], **inputs: Any) -> str:
    """Key of one image's output: stage identity + the image's inputs (JSON-serialisable)."""
    return sha256_of({"identity": dict(identity), "inputs": inputs})


def array_digest(arrays: Sequence[np.ndarray]) -> str:
    """SHA-256 of arrays (dtype, shape and bytes): an input for `content_key` when no upstream key exists."""
    digest = hashlib.sha256()
    for array in arrays:
        contiguous = np.ascontiguousarray(array)
        digest.update(f"{contiguous.dtype.str}{contiguous.shape}".encode())
        digest.update(contiguous.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class StoredKey:
    """Where an image's previous output lives and under which key it was computed."""

    shard: Path
    key: str | None


def stored_keys(store_dir: Path, *, strict: bool = False) -> dict[str, StoredKey]:
    """image id -> (shard, content key) of every image in a store directory (empty if none).

    An unreadable shard is skipped (its images are simply recomputed); an id found in two
    shards is an error naming both files. `strict` is for a store that is a stage's input (refine
    reads the CAM store): an unreadable shard, or one whose `image_ids` attribute does not list
    exactly the images it holds, is a StoreError naming it (it used to be skipped, and refine
    died with `KeyError: 'astronaut'`).
    """
    found: dict[str, StoredKey] = {}
    for path in sorted(Path(store_dir).glob("shard-*.h5")):
        try:
            with h5py.File(path, "r") as handle:
                images = handle.get("images")
                entries = {image_id: _key_of(images[image_id].attrs.get(CONTENT_KEY_ATTR)) for image_id in (images or {})}
                listed = from_attr(handle.attrs["image_ids"]) if strict else None
        except (OSError, KeyError, ValueError, RuntimeError, TypeError) as error:
            if strict:
                raise StoreError(
                    f"{path}: cannot read its images' content keys, shard damaged? ({error}); `wsss inspect {store_dir} --verify` lists what is wrong"
                ) from None
            continue
        if strict and (not isinstance(listed, list) or sorted(map(str, listed)) != sorted(entries)):
            raise StoreError(
                f"{path}: its image_ids attribute does not list the {len(entries)} images it holds; "
                f"`wsss inspect {store_dir} --verify` lists what is wrong"
            )
        for image_id, key in entries.items():
            if image_id in found:
                raise StoreError(f"{path}: image {image_id!r} is also in {found[image_id].shard}")
            found[image_id] = StoredKey(path, key)
    return found


def _key_of(raw: Any) -> str | None:
    return None if raw is None else str(from_attr(raw))


def shard_is_current(path: Path, expected: Mapping[str, str], previous: Mapping[str, StoredKey]) -> bool:
    """True when the file at `path` holds exactly the expected ids, each under its expected key."""
    if not path.is_file():
        return False
    held = sorted(image_id for image_id, stored in previous.items() if stored.shard == path)
    return held == sorted(expected) and all(previous[i].key == key for i, key in expected.items())


def reusable_ids(expected: Mapping[str, str], previous: Mapping[str, StoredKey]) -> dict[str, Path]:
    """The expected images whose previous output has the same key: id -> shard to copy from."""
    return {i: previous[i].shard for i, key in expected.items() if i in previous and previous[i].key == key}


def stale_shards(store_dir: Path, planned: Sequence[Path]) -> list[Path]:
    """Shard files in a store that the current plan does not produce (e.g. all images removed)."""
    keep = {p.name for p in planned}
    return sorted(p for p in Path(store_dir).glob("shard-*.h5") if p.name not in keep)


def record_keys(records: Iterable[Any], identity: Mapping[str, Any]) -> dict[str, str]:
    """Content key of each manifest record (`ImageRecord`) under a stage identity."""
    return {r.image_id: content_key(identity, sha256=r.sha256, tags=list(r.tags), image_path=r.image_path) for r in records}
