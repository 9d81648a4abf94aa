"""Tests of wsss.io.cam_store: round trips, sharding, determinism, atomicity and corruption."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import numpy as np
import pytest

from wsss.errors import StoreError, WsssError
from wsss.io import CamStore, ShardWriter, assign_shards, from_attr, shard_path, summarize, to_attr

# Multiples of 1/8 in [0, 2) are exact in float16 (11-bit significand), so the cast is lossless.
GRADCAM = (np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 8.0) % 2.0
ATTENTION = (np.arange(144, dtype=np.float32).reshape(12, 12) % 16) / 16.0
IMAGE_ATTRS: dict[str, Any] = {
    "class_ids": np.array([0, 14], dtype=np.int64),
    "original_size": (375, 500),
    "grid": [24, 32],
    "source_path": "data/VOC2012/JPEGImages/2007_000032.jpg",
    "source_sha256": "ab" * 32,
    "tag_probabilities": np.array([0.75, 0.1234567], dtype=np.float32),
    "caption": "chat über der Straße",
    "looks_like_json": "json:[1, 2]",
    "empty": "",
    "flag": True,
    "score": 0.1,
    "count": 7,
    "extra": {"nested": [1, 2.5, None]},
}


def arrays_for(seed: int) -> dict[str, np.ndarray]:
    """Distinct, float16-exact arrays per image so mix-ups between images are caught."""
    return {"gradcam": (GRADCAM + seed / 4.0) % 2.0, "attention": (ATTENTION + seed / 8.0) % 1.0}


def write_shard(path: Path, image_ids: list[str], root_attrs: dict[str, Any] | None = None, **kwargs: Any) -> Path:
    with ShardWriter(path, root_attrs or {"run": "test"}, **kwargs) as writer:
        for seed, image_id in enumerate(image_ids):
            writer.add(image_id, arrays_for(seed), IMAGE_ATTRS)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def flip_bytes(path: Path, offset: int, count: int = 16) -> None:
    data = bytearray(path.read_bytes())
    for position in range(offset, min(offset + count, len(data))):
        data[position] ^= 0xFF
    path.write_bytes(bytes(data))


def test_arrays_and_attrs_round_trip(tmp_path: Path) -> None:
    exact = np.array([[1.0 / 3.0, 1e-7, 123456.789]], dtype=np.float32)  # not float16-representable
    with ShardWriter(shard_path(tmp_path, 0), {"run": "test"}) as writer:
        labels = np.array([[0, 255], [14, 3]], dtype=np.uint8)
        writer.add("img", {**arrays_for(0), "exact": exact, "labels": labels}, IMAGE_ATTRS, dtypes={"exact": np.float32})
    stored = CamStore(tmp_path).read("img")
    assert stored.shard == tmp_path / "shard-00000.h5"
    assert sorted(stored.arrays) == ["attention", "exact", "gradcam", "labels"]
    assert stored.arrays["labels"].dtype == np.uint8  # integer arrays are never cast to float
    np.testing.assert_array_equal(stored.arrays["labels"], [[0, 255], [14, 3]])
    assert all(stored.arrays[name].dtype == np.float32 for name in ("attention", "exact", "gradcam"))
    np.testing.assert_array_equal(stored.arrays["gradcam"], GRADCAM)
    np.testing.assert_array_equal(stored.arrays["attention"], ATTENTION)
    np.testing.assert_array_equal(stored.arrays["exact"], exact)
    raw = CamStore(tmp_path).read("img", ["gradcam"], keep_dtype=True)
    assert list(raw.arrays) == ["gradcam"] and raw.arrays["gradcam"].dtype == np.float16
    attrs = stored.attrs
    assert set(attrs) == set(IMAGE_ATTRS)
    for key in ("class_ids", "tag_probabilities"):
        assert attrs[key].dtype == IMAGE_ATTRS[key].dtype
        np.testing.assert_array_equal(attrs[key], IMAGE_ATTRS[key])
    assert attrs["original_size"] == [375, 500]  # JSON: tuples come back as lists
    for key in ("grid", "source_path", "source_sha256", "caption", "looks_like_json", "empty", "extra"):
        assert attrs[key] == IMAGE_ATTRS[key], key
    assert attrs["flag"] is True and attrs["score"] == 0.1 and attrs["count"] == 7
    assert type(attrs["count"]) is int and type(attrs["score"]) is float


def test_root_attrs_round_trip_with_json(tmp_path: Path) -> None:
    provenance = {
        "params": {"cam": {"box_threshold": 0.4, "templates": ["a clean origami {}."]}},
        "weights_sha256": "5" * 64,
        "images_per_shard": 2,
        "classes": ["aeroplane", "bicycle"],
    }
    write_shard(shard_path(tmp_path, 3), ["b", "a_first"][::-1], provenance)
    root = CamStore(tmp_path).root_attrs("shard-00003.h5")
    codec = {
        "name": "zstd",
        "level": 1,
        "filters": "shuffle -> Zstandard -> fletcher32",
        "checksum": "fletcher32",
        "reader": f"h5py + import hdf5plugin (written with hdf5plugin {hdf5plugin.version})",
    }
    expected = {"schema_version": 2, "shard_index": 3, "num_images": 2, "image_ids": ["a_first", "b"], "codec": codec}
    assert root == {**provenance, **expected}
    assert from_attr(to_attr({"x": np.float32(0.5)})) == {"x": 0.5}


def test_assign_shards_by_sorted_position() -> None:
    assert assign_shards(["e", "c", "a", "d", "b"], 2) == {0: ["a", "b"], 1: ["c", "d"], 2: ["e"]}
    before, after = assign_shards(["a", "b", "c"], 2), assign_shards(["a", "b", "c", "d"], 2)
    assert before[0] == after[0]  # appending an id that sorts last only touches the last shard
    assert assign_shards([], 4) == {}
    with pytest.raises(StoreError, match="duplicate"):
        assign_shards(["a", "a"], 2)
    with pytest.raises(StoreError, match="images_per_shard"):
        assign_shards(["a"], 0)


def test_identical_writes_are_byte_identical(tmp_path: Path) -> None:
    ids = ["2007_000032", "2007_000039", "2007_000063"]
    first = write_shard(tmp_path / "one" / "shard-00000.h5", ids, {"b": 1, "a": {"y": 2, "x": 1}})
    time.sleep(1.1)  # HDF5 timestamps have 1 s resolution; any stored time would now differ
    second = write_shard(tmp_path / "two" / "shard-00000.h5", ids, {"a": {"x": 1, "y": 2}, "b": 1})
    assert sha256(first) == sha256(second)
    different = write_shard(tmp_path / "three" / "shard-00000.h5", ids[:2], {"b": 1, "a": {"y": 2, "x": 1}})
    assert sha256(first) != sha256(different)


def test_exception_inside_writer_leaves_nothing(tmp_path: Path) -> None:
    path = shard_path(tmp_path, 0)
    with pytest.raises(RuntimeError, match="stage crashed"), ShardWriter(path, {}) as writer:
        writer.add("a", arrays_for(0), IMAGE_ATTRS)
        assert list(tmp_path.iterdir()) == []  # the shard is built in memory until complete
        raise RuntimeError("stage crashed")
    assert list(tmp_path.iterdir()) == []
    # A failed rewrite keeps the previous complete shard untouched.
    write_shard(path, ["a"])
    digest = sha256(path)
    with pytest.raises(StoreError, match="sorted order"), ShardWriter(path, {}) as writer:
        writer.add("b", arrays_for(0), IMAGE_ATTRS)
        writer.add("a", arrays_for(1), IMAGE_ATTRS)
    assert sha256(path) == digest and sorted(p.name for p in tmp_path.iterdir()) == ["shard-00000.h5"]


def test_refused_add_keeps_the_shard_consistent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = shard_path(tmp_path, 0)
    with ShardWriter(path, {}) as writer:
        writer.add("a", arrays_for(0), {})
        with pytest.raises(StoreError, match="cannot encode"):
            writer.add("b", arrays_for(1), {"bad": object()})  # refused before the file changes
        writer.add("c", arrays_for(2), {})
    store = CamStore(tmp_path)
    assert store.image_ids() == ["a", "c"] and store.verify() == []

    def failing_write(*args: Any) -> None:
        raise OSError("disk full")

    # A write that fails half-way leaves an image the shard cannot account for: no shard at all.
    monkeypatch.setattr("wsss.io.shard_writer.write_attrs", failing_write)
    with pytest.raises(StoreError, match="not written because writing 'd' failed"), ShardWriter(shard_path(tmp_path, 1), {}) as writer:
        with pytest.raises(StoreError, match=r"shard-00001\.h5: image 'd': not stored: OSError: disk full"):
            writer.add("d", arrays_for(0), {})
        with pytest.raises(StoreError, match="no more images accepted"):
            writer.add("e", arrays_for(0), {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-00000.h5"]


def test_corrupted_chunk_found_by_verify_and_read(tmp_path: Path) -> None:
    path = write_shard(shard_path(tmp_path, 0), ["a", "b", "c"])
    with h5py.File(path, "r") as handle:
        offset = handle["images/b/attention"].id.get_chunk_info(0).byte_offset
    assert CamStore(tmp_path).verify() == []
    flip_bytes(path, offset + 4)
    problems = CamStore(tmp_path).verify()
    assert len(problems) == 1 and str(path) in problems[0] and "'b'" in problems[0] and "attention" in problems[0]
    with pytest.raises(StoreError, match=r"shard-00000\.h5.*'b'.*attention"):
        CamStore(tmp_path).read("b")
    np.testing.assert_array_equal(CamStore(tmp_path).read("c").arrays["gradcam"], arrays_for(2)["gradcam"])


def test_bytes_flipped_mid_file_are_reported_with_the_shard_name(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    with ShardWriter(shard_path(tmp_path, 0), {}) as writer:
        for index in range(8):  # random maps barely compress, so the file's middle is chunk data
            writer.add(f"img{index}", {"gradcam": rng.random((2, 24, 32)), "attention": rng.random((48, 48))}, {})
    path = shard_path(tmp_path, 0)
    flip_bytes(path, path.stat().st_size // 2)
    store = CamStore(tmp_path)
    problems = store.verify()
    assert problems and all(str(path) in problem for problem in problems)
    failures = []
    for image_id in store.image_ids():
        try:
            store.read(image_id)
        except StoreError as error:
            failures.append(str(error))
    assert failures and all("shard-00000.h5" in failure for failure in failures)


def test_corruption_anywhere_never_escapes_without_the_file_name(tmp_path: Path) -> None:
    clean = write_shard(tmp_path / "clean" / "shard-00000.h5", ["a", "b"])
    original = clean.read_bytes()
    damaged_dir = tmp_path / "damaged"
    damaged_dir.mkdir()
    damaged = damaged_dir / "shard-00000.h5"
    for offset in range(0, len(original), max(1, len(original) // 97)):
        damaged.write_bytes(original)
        flip_bytes(damaged, offset, 8)
        store = CamStore(damaged_dir)
        assert all(str(damaged) in problem for problem in store.verify()), offset
        for image_id in ("a", "b"):
            try:
                store.read(image_id)
            except StoreError as error:  # a damaged read may also succeed: only a refusal is checked
                assert "shard-00000.h5" in str(error), offset  # noqa: PT017


@pytest.mark.parametrize("image_id", ["", ".", "a/b", "..", "x..y", "a\x00b", "x" * 256, 7])
def test_bad_image_ids_rejected(tmp_path: Path, image_id: Any) -> None:
    with pytest.raises(StoreError, match="image id"), ShardWriter(shard_path(tmp_path, 0), {}) as writer:
        writer.add(image_id, arrays_for(0), {})
    with pytest.raises(StoreError):
        assign_shards([image_id], 2)
    assert list(tmp_path.iterdir()) == []


def test_long_and_unicode_ids_accepted(tmp_path: Path) -> None:
    ids = sorted(["x" * 255, "2007_000032", "Straße-ü"])
    write_shard(shard_path(tmp_path, 0), ids)
    assert CamStore(tmp_path).image_ids() == ids


def test_duplicate_id_rejected(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="duplicate image id: 'a'"), ShardWriter(shard_path(tmp_path, 0), {}) as writer:
        writer.add("a", arrays_for(0), {})
        writer.add("a", arrays_for(1), {})


def test_non_hdf5_file_rejected_with_its_name(tmp_path: Path) -> None:
    bogus = shard_path(tmp_path, 0)
    bogus.write_text("not an HDF5 file\n")
    store = CamStore(tmp_path)
    with pytest.raises(StoreError, match=r"shard-00000\.h5.*cannot open"):
        store.image_ids()
    with pytest.raises(WsssError, match=r"shard-00000\.h5"):
        store.root_attrs(bogus)
    problems = store.verify()
    assert len(problems) == 1 and str(bogus) in problems[0]
    assert "shard-00000.h5" in summarize(tmp_path)[0]["error"]
    with pytest.raises(StoreError, match="does not exist"):
        CamStore(tmp_path / "missing")


@pytest.mark.parametrize("compression", ["gzip", "lzf"])
def test_chunks_filters_and_checksums_are_set(tmp_path: Path, compression: str) -> None:
    big = np.zeros((2100, 1100), dtype=np.float32)  # 4.6 MB as float16: split into row blocks
    with ShardWriter(shard_path(tmp_path, 0), {}, compression=compression) as writer:
        writer.add("a", {**arrays_for(0), "big": big, "empty": np.zeros((0, 3, 4), np.float32)}, {})
    with h5py.File(shard_path(tmp_path, 0), "r") as handle:
        group = handle["images/a"]
        assert group["gradcam"].chunks == (1, 3, 4) and group["attention"].chunks == (12, 12)
        assert group["big"].chunks == (4 * 1024 * 1024 // (1100 * 2), 1100)
        for name in ("gradcam", "attention", "big"):
            dataset = group[name]
            assert dataset.dtype == np.float16 and dataset.compression == compression
            assert dataset.fletcher32 and dataset.shuffle
            assert dataset.compression_opts == (4 if compression == "gzip" else None)
        assert group["empty"].chunks is None and group["empty"].shape == (0, 3, 4)
    assert CamStore(tmp_path).read("a").arrays["empty"].shape == (0, 3, 4)
    summary = summarize(tmp_path)[0]
    assert summary["file"] == "shard-00000.h5" and summary["images"] == 1 and summary["compression"] == compression
    assert summary["datasets"]["gradcam"]["shape"] == [2, 3, 4] and summary["datasets"]["gradcam"]["dtype"] == "float16"
    assert summary["root_attr_keys"] == ["codec", "image_ids", "num_images", "schema_version", "shard_index"]
    assert summary["size_bytes"] == shard_path(tmp_path, 0).stat().st_size


def test_iter_images_in_sorted_order_across_shards(tmp_path: Path) -> None:
    ids = ["d", "a", "e", "c", "b"]
    for shard_index, shard_ids in assign_shards(ids, 2).items():
        with ShardWriter(shard_path(tmp_path, shard_index), {"images_per_shard": 2}) as writer:
            for image_id in shard_ids:
                writer.add(image_id, arrays_for(ord(image_id)), {"name": image_id})
    store = CamStore(tmp_path)
    assert [path.name for path in store.shards] == ["shard-00000.h5", "shard-00001.h5", "shard-00002.h5"]
    assert store.image_ids() == sorted(ids) and "c" in store and "z" not in store
    seen = [(i, stored.attrs["name"], stored.shard.name, list(stored.arrays)) for i, stored in store.iter_images(["gradcam"])]
    assert [s[0] for s in seen] == ["a", "b", "c", "d", "e"] and all(s[0] == s[1] and s[3] == ["gradcam"] for s in seen)
    assert seen[4][2] == "shard-00002.h5"
    with pytest.raises(StoreError, match="not in the store"):
        store.read("z")
    with pytest.raises(StoreError, match="no arrays"):
        store.read("a", ["refined"])


def test_bad_values_rejected_before_anything_is_kept(tmp_path: Path) -> None:
    path = shard_path(tmp_path, 0)
    with pytest.raises(StoreError, match="overflow"), ShardWriter(path, {}) as writer:
        writer.add("a", {"refined": np.full((1, 2, 2), 1e6, np.float32)}, {})
    with pytest.raises(StoreError, match="reserved"):
        ShardWriter(path, {"num_images": 3})
    with pytest.raises(StoreError, match="limit"):
        ShardWriter(path, {"notes": "x" * 70_000})
    with pytest.raises(StoreError, match="cannot encode"):
        ShardWriter(path, {"bad": object()})
    with pytest.raises(StoreError, match="compression"):
        ShardWriter(path, {}, compression="brotli")
    with pytest.raises(StoreError, match="level"):
        ShardWriter(path, {}, compression="gzip", compression_level=10)
    with pytest.raises(StoreError, match="takes no level"):
        ShardWriter(path, {}, compression="lzf", compression_level=3)
    with pytest.raises(StoreError, match="shard_index"):
        ShardWriter(tmp_path / "cams.h5", {})
    assert list(tmp_path.iterdir()) == []
