"""Images encoded away from their shard (`encode_image`, e.g. in another process) and placed by
`ShardWriter.add_encoded` give the same shard file, byte for byte, as `ShardWriter.add`."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from wsss.errors import StoreError
from wsss.io import CODECS, CamStore, ShardWriter, shard_path
from wsss.io.shard_encoding import encode_image
from wsss.io.shard_writer import MAX_CHUNK_BYTES


def images() -> list[tuple[str, dict, dict, dict | None]]:
    """Every kind of array a store holds: float32 kept, float16 casts (peaked, with subnormals),
    integers, a 1-D and an empty array, a 2-D map over one chunk's size (row blocks)."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(96, 96)) * 6
    attention = np.exp(logits - logits.max(axis=1, keepdims=True))
    attention = (attention / attention.sum(axis=1, keepdims=True)).astype(np.float32)
    rows = MAX_CHUNK_BYTES // (2 * 700) + 3
    return [
        (
            "a",
            {"gradcam": rng.random((2, 6, 8), dtype=np.float32), "attention": attention},
            {"class_ids": [3, 7], "tags": ["cat", "dog"], "original_size": [45, 61], "source_path": "a.jpg", "content_key": "k" * 64},
            {"gradcam": np.float32, "attention": np.float16},
        ),
        (
            "b",
            {"refined": rng.random((1, 45, 61), dtype=np.float32), "ids": np.arange(5, dtype=np.int64), "none": np.zeros((0, 4))},
            {"tags": [], "note": None, "score": np.float32(0.5)},
            None,
        ),
        ("c", {"big": rng.random((rows, 700)).astype(np.float16)}, {}, None),
    ]


def write(path: Path, codec: str, encoded: bool) -> bytes:
    with ShardWriter(path, {"stage": "test", "params": {"x": 1}}, compression=codec) as writer:
        for image_id, arrays, attrs, dtypes in images():
            if encoded:
                # As it travels from a worker process: pickled.
                pickled = pickle.dumps(encode_image(image_id, arrays, attrs, dtypes, codec))
                entry = pickle.loads(pickled)  # noqa: S301 (bytes this test just made)
                writer.add_encoded(image_id, entry)
            else:
                writer.add(image_id, arrays, attrs, dtypes)
    return path.read_bytes()


@pytest.mark.parametrize("codec", CODECS)
def test_encoded_images_give_the_shard_add_writes_byte_for_byte(tmp_path: Path, codec: str) -> None:
    added = write(shard_path(tmp_path / "added", 0), codec, encoded=False)
    assert write(shard_path(tmp_path / "encoded", 0), codec, encoded=True) == added
    store = CamStore(tmp_path / "encoded")
    assert store.verify() == []
    stored = store.read("b", keep_dtype=True)
    assert stored.arrays["none"].shape == (0, 4) and stored.attrs["note"] is None


def test_an_encoded_image_is_refused_by_a_shard_of_another_codec(tmp_path: Path) -> None:
    image_id, arrays, attrs, dtypes = images()[0]
    entry = encode_image(image_id, arrays, attrs, dtypes, "gzip")
    with (
        pytest.raises(StoreError, match="encoded with gzip 4, the shard is zstd 1"),
        ShardWriter(shard_path(tmp_path, 0), {}, compression="zstd") as writer,
    ):
        writer.add_encoded(image_id, entry)
    assert not shard_path(tmp_path, 0).exists()


def test_encoding_refuses_what_add_refuses() -> None:
    with pytest.raises(StoreError, match="overflow float16"):
        encode_image("x", {"maps": np.array([1e6], dtype=np.float32)}, {})
    with pytest.raises(StoreError, match="contains '/'"):
        encode_image("a/b", {"maps": np.zeros(2)}, {})
    with pytest.raises(StoreError, match="dtypes given for arrays it does not have"):
        encode_image("x", {"maps": np.zeros(2)}, {}, {"other": np.float32})


def test_encoded_images_keep_the_shard_order_rules(tmp_path: Path) -> None:
    entry = encode_image("b", {"maps": np.zeros(2)}, {})
    with pytest.raises(StoreError, match="sorted order"), ShardWriter(shard_path(tmp_path, 0), {}) as writer:
        writer.add_encoded("b", entry)
        writer.add_encoded("a", encode_image("a", {"maps": np.zeros(2)}, {}))
