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


def test_background_writer_keeps_order_and_values_and_runs_on_its_own_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
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
    with pytest.raises(StoreError, match=r"image 'b': array 'attention': values overflow float16"):
        with BackgroundShardWriter(ShardWriter(path, {"run": "new"}), max_pending=1) as writer:
            writer.add("a", maps(1), {})
            writer.add("b", bad, {})
            for index in range(20):  # the error surfaces at a later add or at the end of the block
                writer.add(f"c{index:02d}", maps(index), {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-00000.h5"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_an_error_in_the_caller_discards_the_shard_and_stops_the_worker(tmp_path: Path) -> None:
    writer = BackgroundShardWriter(ShardWriter(shard_path(tmp_path, 0), {}))
    with pytest.raises(RuntimeError, match="model crashed"):
        with writer:
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
