"""Background shard writer and ordered prefetch: order kept, errors raised, nothing half-written."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wsss.errors import StoreError
from wsss.io import CamStore, ShardWriter, shard_path
from wsss.io.pipelining import BackgroundShardWriter, prefetch


def maps(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"attention": rng.random((24, 24)).astype(np.float32), "gradcam": rng.random((1, 4, 6)).astype(np.float32)}


def test_background_writer_keeps_order_and_values_and_runs_on_its_own_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gate, threads = threading.Event(), set()
    original = ShardWriter.add

    def gated_add(self: ShardWriter, *args: Any) -> None:
        gate.wait()  # nothing is written until every image has been handed over
        threads.add(threading.get_ident())
        original(self, *args)

    monkeypatch.setattr(ShardWriter, "add", gated_add)
    ids = [f"img{index:02d}" for index in range(12)]
    with BackgroundShardWriter(ShardWriter(shard_path(tmp_path, 0), {"run": "bg"}), max_pending=len(ids)) as writer:
        for seed, image_id in enumerate(ids):
            writer.add(image_id, maps(seed), {"seed": seed}, {"gradcam": np.float32})
        gate.set()
    assert threads and threading.get_ident() not in threads
    store = CamStore(tmp_path)
    assert store.root_attrs("shard-00000.h5")["image_ids"] == ids
    for seed, image_id in enumerate(ids):
        stored = store.read(image_id, keep_dtype=True)
        assert stored.attrs["seed"] == seed
        np.testing.assert_array_equal(stored.arrays["attention"], maps(seed)["attention"].astype(np.float16))
        np.testing.assert_array_equal(stored.arrays["gradcam"], maps(seed)["gradcam"])


def test_background_shard_is_byte_identical_to_a_direct_write(tmp_path: Path) -> None:
    with ShardWriter(shard_path(tmp_path / "direct", 0), {"run": "x"}) as direct:
        for seed in range(5):
            direct.add(f"i{seed}", maps(seed), {})
    with BackgroundShardWriter(ShardWriter(shard_path(tmp_path / "bg", 0), {"run": "x"}), max_pending=2) as background:
        for seed in range(5):
            background.add(f"i{seed}", maps(seed), {})
    digest = [hashlib.sha256(shard_path(tmp_path / d, 0).read_bytes()).hexdigest() for d in ("direct", "bg")]
    assert digest[0] == digest[1]


def test_a_failed_background_write_is_raised_and_leaves_no_shard(tmp_path: Path) -> None:
    path = shard_path(tmp_path, 0)
    with ShardWriter(path, {"run": "old"}) as old:
        old.add("kept", maps(0), {})
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    bad = {"attention": np.full((4, 4), 1e6, np.float32)}  # overflows float16: refused by the worker
    with (
        pytest.raises(StoreError, match=r"image 'b': array 'attention': values overflow float16"),
        BackgroundShardWriter(ShardWriter(path, {"run": "new"}), max_pending=1) as writer,
    ):
        writer.add("a", maps(1), {})
        writer.add("b", bad, {})
        for index in range(20):  # the error surfaces at a later add or at the end of the block
            writer.add(f"c{index:02d}", maps(index), {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-00000.h5"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_an_error_in_the_caller_discards_the_shard_and_stops_the_worker(tmp_path: Path) -> None:
    writer = BackgroundShardWriter(ShardWriter(shard_path(tmp_path, 0), {}))
    with pytest.raises(RuntimeError, match="model crashed"), writer:
        writer.add("a", maps(0), {})
        raise RuntimeError("model crashed")
    assert list(tmp_path.iterdir()) == [] and not writer._thread.is_alive()
    with pytest.raises(StoreError, match="outside its `with` block"):
        writer.add("b", maps(1), {})


def test_prefetch_yields_in_input_order_while_loading_ahead() -> None:
    started: list[int] = []
    release = {index: threading.Event() for index in range(10)}
    for index in range(10):
        if index % 3 != 1:  # items 1, 4, 7 wait until the consumer has the item before: they finish last
            release[index].set()

    def load(index: int) -> int:
        started.append(index)
        if not release[index].wait(timeout=30):
            raise TimeoutError(index)
        return index * index

    results = []
    for index, value in prefetch(range(10), load, depth=3, workers=3):
        results.append((index, value))
        if index + 1 in release:
            release[index + 1].set()
    assert results == [(i, i * i) for i in range(10)]
    assert sorted(started) == list(range(10))


def test_prefetch_raises_a_load_error_at_its_position() -> None:
    def load(index: int) -> int:
        if index == 4:
            raise ValueError("cannot decode image 4")
        return index

    seen = []
    with pytest.raises(ValueError, match="cannot decode image 4"):
        for index, _ in prefetch(range(8), load, depth=2, workers=2):
            seen.append(index)
    assert seen == [0, 1, 2, 3]


def test_prefetch_stops_loading_when_the_consumer_leaves() -> None:
    loaded: list[int] = []
    lock = threading.Lock()

    def load(index: int) -> int:
        with lock:
            loaded.append(index)
        return index

    for index, _ in prefetch(range(1000), load, depth=4):
        if index == 5:
            break
    assert len(loaded) <= 6 + 4 and max(loaded) < 10
    with pytest.raises(ValueError, match="depth"):
        next(prefetch([1], load, depth=0))


class FakePrepared:
    """What `stream_cams` reads of a prepared image: its pixels' shape (the size bucket)."""

    def __init__(self, value: int, size: tuple[int, int]) -> None:
        self.value = value
        self.pixels = np.zeros((1, 3, *size), dtype=np.uint8)


class CountingExtractor:
    """Stands in for `ClipEsCamExtractor.extract_batch`: returns each image's value doubled and
    records the batches (values) it was given."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def extract_batch(self, images: list, refine: bool) -> list[int]:
        assert len({image.pixels.shape for image, _ in images}) == 1, "a batch mixes sizes"
        self.batches.append([image.value for image, _ in images])
        return [2 * image.value for image, _ in images]


def stream_values(
    sizes: list[str], batch_size: int, decode_workers: int = 1, unreadable: int | None = None, delays: list[float] | None = None
) -> tuple[list, CountingExtractor]:
    import time

    from wsss.cam.streaming import stream_cams

    shapes = {"a": (32, 48), "b": (48, 32), "c": (32, 32)}

    def load(index: int):
        time.sleep(delays[index] if delays else 0.0)
        return ValueError(f"image {index} unreadable") if index == unreadable else (FakePrepared(index, shapes[sizes[index]]), [0])

    extractor = CountingExtractor()
    out = list(stream_cams(extractor, list(range(len(sizes))), load, batch_size=batch_size, overlap=True, decode_workers=decode_workers))
    return out, extractor


@pytest.mark.parametrize("decode_workers", [1, 4])
def test_stream_cams_keeps_input_order_and_error_positions_with_several_decode_threads(decode_workers: int) -> None:
    """Loads finish out of order on several threads; results and the unreadable image's place in
    the stream are what one thread gives, and so are the batches (they never depend on timing)."""
    import random

    sizes = random.Random(1).choices("aab", k=12)
    delays = random.Random(3).choices([0.0, 0.002, 0.01], k=12)
    out, extractor = stream_values(sizes, 3, decode_workers, unreadable=5, delays=delays)
    assert [item for item, _ in out] == list(range(12))
    assert [result for item, result in out if item != 5] == [2 * i for i in range(12) if i != 5]
    assert isinstance(out[5][1], ValueError)
    _, one_thread = stream_values(sizes, 3, 1, unreadable=5)
    assert extractor.batches == one_thread.batches


def test_stream_cams_fills_a_batch_per_size_bucket_across_interleaved_sizes() -> None:
    """Sizes alternate as in a VOC list: each forward still gets `batch_size` images of one size."""
    out, extractor = stream_values(list("ababababcab"), batch_size=2)
    assert [item for item, _ in out] == list(range(11))
    assert extractor.batches == [[0, 2], [1, 3], [4, 6], [5, 7], [8], [9], [10]]


def test_stream_cams_runs_the_oldest_bucket_short_when_the_window_is_full() -> None:
    """One rare size must not wait for the whole shard: with batch 2 the window is 8 images, so the
    lone `c` runs by itself once 8 images wait behind it."""
    out, extractor = stream_values(list("caaaaaaaaaa"), batch_size=2)
    assert [item for item, _ in out] == list(range(11))
    assert extractor.batches[0] == [1, 2] and [0] in extractor.batches
    assert extractor.batches.index([0]) <= 4  # ran within the window, not at the end
