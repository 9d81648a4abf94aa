"""Outputs checked out as hardlinks of the DVC cache (`cache.type: hardlink`) are replaced, never
written in place: a stage run leaves every cache file's bytes as they were."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from wsss.catalog import PseudoLayout
from wsss.incremental import ImageOutput, run_sharded, shard_plan
from wsss.io.pseudo_store import PseudoMaskStore
from wsss.io.records import PseudoSummary
from wsss.pseudo.labels import PseudoLabel


def link_into_cache(outputs: Path, cache: Path) -> dict[Path, str]:
    """What `dvc commit` + checkout with hardlinks leaves: each output file one inode with a read-only
    cache file. Returns cache file -> SHA-256 of its bytes."""
    digests = {}
    for index, file in enumerate(sorted(p for p in outputs.rglob("*") if p.is_file())):
        cached = cache / f"{index:04d}"
        cached.parent.mkdir(parents=True, exist_ok=True)
        os.link(file, cached)
        os.chmod(cached, 0o444)
        digests[cached] = hashlib.sha256(cached.read_bytes()).hexdigest()
    return digests


def assert_cache_unchanged(digests: dict[Path, str]) -> None:
    changed = [str(p) for p, digest in digests.items() if hashlib.sha256(p.read_bytes()).hexdigest() != digest]
    assert changed == []


def maps(image_id: str) -> ImageOutput:
    seed = sum(map(ord, image_id))
    return ImageOutput({"maps": np.random.default_rng(seed).random((2, 8, 8), dtype=np.float32)}, {"seed": seed})


def test_a_sharded_stage_replaces_hardlinked_shards(tmp_path: Path) -> None:
    store = tmp_path / "artifacts/cams"
    keys = {f"img{i}": f"k{i}" for i in range(6)}

    def run(keys: dict[str, str]) -> dict:
        return run_sharded(
            shard_plan(list(keys), 100, shard_count=2),
            keys,
            store,
            tmp_path / "scratch",
            {"stage": "t"},
            maps,
            compression="zstd",
            copied_arrays=("maps",),
            overlap=True,
        ).as_dict()

    run(keys)
    digests = link_into_cache(store, tmp_path / "cache")
    second = run({**keys, "img1": "changed", "img9": "new"})
    assert second["computed"] == ["img1", "img9"] and second["written"]
    assert_cache_unchanged(digests)


def test_the_pseudo_store_replaces_hardlinked_masks_and_summary(tmp_path: Path) -> None:
    layout = PseudoLayout(tmp_path / "artifacts/pseudo")
    store = PseudoMaskStore(layout)
    labels = np.full((4, 5), 1, dtype=np.uint8)
    label = PseudoLabel(labels=labels, confidence=np.full((4, 5), 0.5, dtype=np.float32), raw_labels=labels)
    store.write("a", "k1", label, {"image_id": "a"})
    store.write_summary(PseudoSummary(params={}, input_manifest_sha256="m1", flow_run_id=None, images=[{"image_id": "a"}]))
    digests = link_into_cache(layout.root, tmp_path / "cache")
    relabelled = PseudoLabel(labels=labels * 2, confidence=np.full((4, 5), 0.9, dtype=np.float32), raw_labels=labels * 2)
    store.write("a", "k2", relabelled, {"image_id": "a"})
    store.write_summary(PseudoSummary(params={}, input_manifest_sha256="m2", flow_run_id=None, images=[{"image_id": "a"}]))
    np.testing.assert_array_equal(store.labels("a"), labels * 2)
    assert store.read_summary().input_manifest_sha256 == "m2"
    assert_cache_unchanged(digests)
