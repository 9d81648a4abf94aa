"""The sharded incremental engine, the one atomic-write helper and the pseudo-mask store."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest

from wsss.catalog import PseudoLayout
from wsss.errors import ArtifactWriteError, ImageError
from wsss.incremental import ImageOutput, array_digest, content_key, run_sharded, shard_plan
from wsss.io import CamStore, atomic
from wsss.io.atomic import TEMPORARY_PREFIX, write_bytes_atomic
from wsss.io.pseudo_store import PseudoMaskStore
from wsss.pseudo.labels import PseudoLabel


def test_content_keys_change_with_bytes_dtype_shape_and_values() -> None:
    maps = np.arange(12, dtype=np.float16).reshape(3, 4)
    key = content_key({"stage": "x"}, maps=array_digest([maps]), sha="a")
    assert key == content_key({"stage": "x"}, maps=array_digest([maps.copy()]), sha="a")
    changed = maps.copy()
    changed[1, 2] += 1
    others = [
        content_key({"stage": "x"}, maps=array_digest([changed]), sha="a"),
        content_key({"stage": "x"}, maps=array_digest([maps.astype(np.float32)]), sha="a"),
        content_key({"stage": "x"}, maps=array_digest([maps.reshape(4, 3)]), sha="a"),
        content_key({"stage": "x"}, maps=array_digest([maps]), sha="b"),
        content_key({"stage": "y"}, maps=array_digest([maps]), sha="a"),
    ]
    assert key not in others and len(set(others)) == 5


def test_atomic_write_replaces_and_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "x.npy"
    write_bytes_atomic(target, b"1")
    write_bytes_atomic(target, b"22")
    assert target.read_bytes() == b"22" and [p.name for p in tmp_path.iterdir()] == ["x.npy"]


def test_an_output_named_at_the_file_name_limit_can_be_written(tmp_path: Path) -> None:
    """A legal 250-character image id: `<id>.png` is 254 characters; `<id>.png.partial` would be 262."""
    image_id = "i" * 250
    write_bytes_atomic(tmp_path / f"{image_id}.png", b"png")
    assert (tmp_path / f"{image_id}.png").read_bytes() == b"png"


class FullDiskOs:
    """The `os` module as `wsss.io.atomic` sees it, with writes that fail like a full disk (the
    temporary file is created, as on a real full disk)."""

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    @staticmethod
    def write(descriptor: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_is_one_error_naming_the_file_and_the_old_version_stays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "mask.png"
    write_bytes_atomic(target, b"previous")
    monkeypatch.setattr(atomic, "os", FullDiskOs())
    with pytest.raises(ArtifactWriteError) as raised:
        write_bytes_atomic(target, b"new")
    assert str(raised.value).startswith(f"{target}: cannot write (No space left on device)") and "\n" not in str(raised.value)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["mask.png"]  # no temporary file left


def label(value: int) -> PseudoLabel:
    labels = np.full((4, 5), value, dtype=np.uint8)
    return PseudoLabel(labels=labels, confidence=np.full((4, 5), 0.5, dtype=np.float32), raw_labels=labels)


def test_pseudo_store_reuses_only_complete_outputs_under_the_same_key(tmp_path: Path) -> None:
    store = PseudoMaskStore(PseudoLayout(tmp_path / "pseudo"))
    assert store.reusable_row("a", "k1") is None  # nothing yet
    store.write("a", "k1", label(1), {"image_id": "a"})
    assert store.reusable_row("a", "k1") == {"image_id": "a"}
    assert store.reusable_row("a", "k2") is None  # inputs changed
    np.testing.assert_array_equal(store.labels("a"), np.full((4, 5), 1))
    assert store.confidence("a").dtype == np.float16
    (tmp_path / "pseudo/confidence/a.npy").unlink()
    assert store.reusable_row("a", "k1") is None  # an output is missing
    store.write("a", "k1", label(1), {"image_id": "a"})
    (tmp_path / "pseudo/keys/a.json").write_text("{trunc")
    assert store.reusable_row("a", "k1") is None  # unreadable key: recompute


def test_pseudo_store_keeps_only_listed_images_and_archives(tmp_path: Path) -> None:
    store = PseudoMaskStore(PseudoLayout(tmp_path / "pseudo"))
    for image_id in ("a", "b"):
        store.write(image_id, "k", label(2), {"image_id": image_id})
    (tmp_path / "pseudo/masks/c.png.partial").write_bytes(b"half")
    (tmp_path / "pseudo/masks" / f"{TEMPORARY_PREFIX}0123").write_bytes(b"half")
    archived = store.archive(["b", "never"], tmp_path / "history")
    assert sorted(p.relative_to(tmp_path / "history").as_posix() for p in archived) == ["confidence/b.npy", "masks/b.png", "raw/b.png"]
    removed = store.keep_only(["a"])
    assert sorted(p.name for p in removed) == sorted(["b.png", "b.png", "b.npy", "b.json", "c.png.partial", f"{TEMPORARY_PREFIX}0123"])
    assert sorted(p.relative_to(tmp_path / "pseudo").as_posix() for p in (tmp_path / "pseudo").rglob("*") if p.is_file()) == [
        "confidence/a.npy",
        "keys/a.json",
        "masks/a.png",
        "raw/a.png",
    ]


class Maps:
    """A compute callback: one small map per image, failing for the ids in `broken`."""

    def __init__(self, broken: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.broken, self.calls = set(broken), []

    def __call__(self, image_id: str) -> ImageOutput:
        self.calls.append(image_id)
        if image_id in self.broken:
            raise ImageError(f"{image_id}.jpg: image file not found")
        return ImageOutput({"m": np.full((2, 3), len(image_id), dtype=np.float32)}, {"source": image_id}, {"m": "float32"})


def run(tmp_path: Path, keys: dict[str, str], compute: Maps):
    plan = shard_plan(list(keys), 2)
    return run_sharded(plan, keys, tmp_path / "store", tmp_path / "scratch", {"stage": "t"}, compute, compression="gzip", copied_arrays=("m",))


def test_engine_recomputes_only_changed_images_and_leaves_current_shards(tmp_path: Path) -> None:
    keys = {"a": "1", "b": "1", "c": "1"}
    first = run(tmp_path, keys, Maps())
    assert first.computed == ("a", "b", "c") and [Path(p).name for p in first.written] == ["shard-00000.h5", "shard-00001.h5"]
    before = (tmp_path / "store/shard-00000.h5").read_bytes()
    compute = Maps()
    second = run(tmp_path, {**keys, "c": "2"}, compute)
    assert compute.calls == ["c"] and second.untouched == ("shard-00000.h5",) and second.computed == ("c",)
    assert (tmp_path / "store/shard-00000.h5").read_bytes() == before
    assert CamStore(tmp_path / "store").read("c", names=[]).attrs["content_key"] == "2"
    assert not (tmp_path / "scratch").exists()


def test_a_codec_change_rewrites_shards_by_copying_without_computing(tmp_path: Path) -> None:
    """The codec is not part of a reuse key (`identity=False`): the images keep their keys, yet each
    shard is rewritten with the new codec from the stored arrays, and records the codec it has."""
    import h5py

    from wsss.incremental import key_identity

    def run_with(codec: str, compute: Maps):
        attrs = {"stage": "t", "params": {"store": {"compression": codec, "gradcam_dtype": "float32"}}, "params_sha256": codec}
        keys = {i: content_key(key_identity(attrs), image=i) for i in ("a", "b", "c")}
        return keys, run_sharded(
            shard_plan(list(keys), 2), keys, tmp_path / "store", tmp_path / "scratch", attrs, compute, compression=codec, copied_arrays=("m",)
        )

    first_keys, _ = run_with("gzip", Maps())
    before = CamStore(tmp_path / "store").read("a", ["m"]).arrays["m"]
    compute = Maps()
    keys, summary = run_with("lzf", compute)
    assert keys == first_keys and compute.calls == []  # same keys: nothing recomputed
    assert summary.copied == ("a", "b", "c") and summary.untouched == () and len(summary.written) == 2
    store = CamStore(tmp_path / "store")
    for shard in store.shards:
        assert store.root_attrs(shard)["params"]["store"]["compression"] == "lzf"
        with h5py.File(shard, "r") as handle:
            assert handle["images/" + store.root_attrs(shard)["image_ids"][0] + "/m"].compression == "lzf"
    assert np.array_equal(store.read("a", ["m"]).arrays["m"], before)
    assert run_with("lzf", Maps())[1].untouched == ("shard-00000.h5", "shard-00001.h5")  # now current


def test_an_unreadable_input_costs_its_image_only(tmp_path: Path) -> None:
    """A file that vanished mid-run: the image is reported failed and left out; the others are written."""
    summary = run(tmp_path, {"a": "1", "b": "1", "c": "1"}, Maps(broken={"b", "c"}))
    assert summary.computed == ("a",) and sorted(summary.failed) == ["b", "c"] and "not found" in summary.failed["b"]
    assert CamStore(tmp_path / "store").image_ids() == ["a"]  # the all-failed shard 1 is not published
    again = run(tmp_path, {"a": "1", "b": "1", "c": "1"}, Maps())
    assert again.computed == ("b", "c") and again.copied == ("a",)  # failed images are retried next time


def test_publishing_removes_leftovers_of_interrupted_copies(tmp_path: Path) -> None:
    run(tmp_path, {"a": "1"}, Maps())
    (tmp_path / "store" / f"{TEMPORARY_PREFIX}abc").write_bytes(b"half a shard")
    run(tmp_path, {"a": "2"}, Maps())
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["shard-00000.h5"]
    assert CamStore(tmp_path / "store").verify() == []


def test_records_are_deterministic_json(tmp_path: Path) -> None:
    from wsss.io.records import PseudoSummary

    summary = PseudoSummary({"crf": True}, "f" * 64, None, [{"image_id": "a"}], {"a": "run-1"})
    summary.write(tmp_path / "summary.json")
    assert json.loads((tmp_path / "summary.json").read_text())["flow_run_id"] is None
    again = PseudoSummary.read(tmp_path / "summary.json")
    assert again == summary and again.image_flow_run_id("a") == "run-1" and again.row("a") == {"image_id": "a"}
