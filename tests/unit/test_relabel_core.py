"""Core of incremental relabeling: stable shards, content keys, manifest diffs, run log, settings."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from wsss.datasets import ImageRecord, Manifest
from wsss.errors import ConfigError, StoreError, WsssError
from wsss.incremental import content_key, record_keys, reusable_ids, shard_is_current, stale_shards, stored_keys
from wsss.io import ShardWriter, shard_path
from wsss.io.shard_assignment import assign_shards_by_hash, stable_shard_index
from wsss.relabel import RelabelSettings, RunRecord, append_run_log, archive_outputs, diff_manifests, read_run_log
from wsss.scaleout import RunnerSettings
from wsss.settings import build_section


def record(image_id: str, sha: str = "0" * 64, tags: tuple[str, ...] = ("cat",)) -> ImageRecord:
    return ImageRecord(image_id=image_id, image_path=f"images/{image_id}.jpg", tags=tags, ground_truth_path=None, sha256=sha, width=4, height=4)


def test_stable_shard_index_is_sha256_of_the_id_modulo_the_count() -> None:
    expected = int.from_bytes(hashlib.sha256(b"2007_000032").digest()[:8], "big") % 7
    assert stable_shard_index("2007_000032", 7) == expected
    ids = [f"img{i:03d}" for i in range(60)]
    before = assign_shards_by_hash(ids, 8)
    after = assign_shards_by_hash([*ids, "new_one"], 8)
    changed = [index for index in after if after[index] != before.get(index)]
    assert changed == [stable_shard_index("new_one", 8)]
    assert all(shard == sorted(shard) for shard in after.values())
    with pytest.raises(StoreError, match="shard_count"):
        stable_shard_index("a", 0)
    with pytest.raises(StoreError, match="duplicate"):
        assign_shards_by_hash(["a", "a"], 2)


def test_content_keys_change_with_inputs_and_identity_only() -> None:
    identity = {"params": {"cam": {"max_side": 224}}}
    keys = record_keys([record("a"), record("b", tags=("dog",))], identity)
    assert keys["a"] == content_key(identity, sha256="0" * 64, tags=["cat"], image_path="images/a.jpg")
    assert keys["a"] != keys["b"]
    assert record_keys([record("a", sha="1" * 64)], identity)["a"] != keys["a"]
    assert record_keys([record("a")], {"params": {"cam": {"max_side": 448}}})["a"] != keys["a"]


def write(directory: Path, index: int, keys: dict[str, str]) -> Path:
    path = shard_path(directory, index)
    with ShardWriter(path, {"stage": "t"}) as writer:
        for image_id in sorted(keys):
            writer.add(image_id, {"m": np.ones((2, 2), np.float32)}, {"content_key": keys[image_id]})
    return path


def test_stored_keys_decide_which_shards_and_images_are_reused(tmp_path: Path) -> None:
    zero = write(tmp_path, 0, {"a": "ka", "b": "kb"})
    one = write(tmp_path, 1, {"c": "kc"})
    previous = stored_keys(tmp_path)
    assert {i: (s.shard.name, s.key) for i, s in previous.items()} == {
        "a": ("shard-00000.h5", "ka"),
        "b": ("shard-00000.h5", "kb"),
        "c": ("shard-00001.h5", "kc"),
    }
    assert shard_is_current(zero, {"a": "ka", "b": "kb"}, previous)
    assert not shard_is_current(zero, {"a": "ka", "b": "new"}, previous)
    assert not shard_is_current(zero, {"a": "ka"}, previous)  # b was removed from this shard
    assert not shard_is_current(shard_path(tmp_path, 5), {"x": "kx"}, previous)
    assert reusable_ids({"a": "ka", "b": "new", "d": "kd"}, previous) == {"a": zero}
    assert stale_shards(tmp_path, [zero]) == [one]
    write(tmp_path / "dup", 0, {"a": "1"})
    write(tmp_path / "dup", 1, {"a": "2"})
    with pytest.raises(StoreError, match="also in"):
        stored_keys(tmp_path / "dup")


def test_manifest_diff_names_added_changed_removed_and_why() -> None:
    old = Manifest("m", (record("a"), record("b"), record("c"), record("d")), ("cat", "dog"))
    new = Manifest("m", (record("a"), record("b", tags=("cat", "dog")), record("c", sha="1" * 64), record("e")), ("cat", "dog"))
    diff = diff_manifests(old, new)
    assert (diff.added, diff.changed, diff.removed, diff.unchanged) == (("e",), ("b", "c"), ("d",), ("a",))
    assert diff.reasons == {"b": ("tags",), "c": ("sha256",)}
    assert diff.to_relabel == ("b", "c", "e") and diff.changed_share() == 1.0
    assert diff_manifests(None, new).counts() == {"added": 4, "changed": 0, "removed": 0, "unchanged": 0}
    assert diff_manifests(new, new).changed_share() == 0.0


def test_history_archive_and_run_log(tmp_path: Path) -> None:
    (tmp_path / "out" / "masks").mkdir(parents=True)
    (tmp_path / "out" / "masks" / "a.png").write_bytes(b"old mask")
    archived = archive_outputs(["a", "never_made"], tmp_path / "out", {"masks": ".png", "raw": ".png"}, tmp_path / "hist")
    assert archived == [tmp_path / "hist" / "masks" / "a.png"] and archived[0].read_bytes() == b"old mask"
    log = tmp_path / "runs.jsonl"
    for stamp in ("r1", "r2"):
        append_run_log(log, RunRecord(stamp, None, {"added": 1}, {"total": 1.5}, ["a"], [], False, "f" * 64, None))
    log.write_text(log.read_text() + '{"truncated')
    assert [run["run_stamp"] for run in read_run_log(log)] == ["r1", "r2"]
    log.write_text('{"x"\n{"run_stamp": "r3"}\n')
    with pytest.raises(WsssError, match="line 1"):
        read_run_log(log)


def test_runner_and_relabel_sections_are_validated() -> None:
    assert build_section(RunnerSettings, {}, "runner").kind == "sequential"
    with pytest.raises(ConfigError, match=r"runner is null; a section is a mapping"):
        build_section(RunnerSettings, None, "runner")
    settings = build_section(RunnerSettings, {"kind": "sequential", "workers": 3}, "runner").with_overrides({"kind": "dask", "address": None})
    assert (settings.kind, settings.workers, settings.address) == ("dask", 3, None)
    with pytest.raises(ConfigError, match=r"runner\.kind"):
        build_section(RunnerSettings, {"kind": "ray"}, "runner")
    with pytest.raises(ConfigError, match=r"runner\.wokers"):
        build_section(RunnerSettings, {"wokers": 2}, "runner")
    with pytest.raises(ConfigError, match=r"runner\.workers"):
        RunnerSettings().with_overrides({"workers": 0})
    assert build_section(RelabelSettings, {"cron": "0 3 * * *", "retrain_share": 0.3}, "relabel").retrain_share == 0.3
    with pytest.raises(ConfigError, match=r"relabel\.cron"):
        build_section(RelabelSettings, {"cron": "nightly"}, "relabel")
    with pytest.raises(ConfigError, match=r"relabel\.retrain_share"):
        build_section(RelabelSettings, {"retrain_share": 1.5}, "relabel")
    assert RelabelSettings(retrain_share=0.1).retrains(0.2) and not RelabelSettings().retrains(1.0)
