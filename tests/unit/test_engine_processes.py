"""Shards written with image processes (`runner.image_processes`) are byte-identical to shards
written in the stage process: a plain callback (refine: read, CAA, encode there) and a streamed one
(cams: encoded there, placed by the background writer), with unreadable images left out alike."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.unit.test_engine_streaming import IDS, UNREADABLE, Maps, StreamedMaps, run
from wsss.cam import CaaSettings
from wsss.cam.refine_stored import RefineStored
from wsss.errors import StoreError
from wsss.incremental import ImageOutput, run_sharded, shard_plan
from wsss.io import CamStore, ShardWriter, shard_path

PROCESSES = 2


def shard_bytes(store: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(store.glob("shard-*.h5"))}


@pytest.mark.parametrize("overlap", [False, True])
def test_a_plain_callback_on_image_processes_writes_the_same_shards(tmp_path: Path, overlap: bool) -> None:
    here = run(tmp_path / "here", Maps(), processes=0)
    there = run(tmp_path / "there", Maps(), overlap, processes=PROCESSES)
    assert there == here and here["failed"] == {UNREADABLE: f"{UNREADABLE}.jpg: cannot decode"}
    assert shard_bytes(tmp_path / "there") == shard_bytes(tmp_path / "here") and len(shard_bytes(tmp_path / "here")) == 2


def test_a_streamed_callback_encoded_on_image_processes_writes_the_same_shards(tmp_path: Path) -> None:
    here = run(tmp_path / "here", StreamedMaps(), processes=0, overlap=True)
    streamed = StreamedMaps()
    there = run(tmp_path / "there", streamed, processes=PROCESSES, overlap=True)
    assert there == here and streamed.calls == [(IDS[:4], True), (IDS[4:], True)]
    assert shard_bytes(tmp_path / "there") == shard_bytes(tmp_path / "here")


def test_a_rewritten_shard_copies_its_unchanged_images_and_computes_the_rest_there(tmp_path: Path) -> None:
    keys = {i: f"key-{i}" for i in IDS}
    run(tmp_path / "store", Maps(), processes=PROCESSES)
    changed = {**keys, "img01": "changed"}
    summary = run_sharded(
        shard_plan(list(changed), 4),
        changed,
        tmp_path / "store",
        tmp_path / "scratch",
        {"stage": "t"},
        Maps(),
        compression="zstd",
        copied_arrays=("maps",),
        processes=PROCESSES,
    )
    assert summary.computed == ("img01",) and summary.copied == ("img00", "img02")
    assert CamStore(tmp_path / "store").read("img01").attrs["content_key"] == "changed"


def cam_store(directory: Path) -> None:
    """Two CAM shards as the cams stage writes them: float32 Grad-CAM, peaked float16 attention."""
    rng = np.random.default_rng(0)
    grid = (6, 8)
    for shard, ids in ((0, IDS[:4]), (1, IDS[4:])):
        with ShardWriter(shard_path(directory, shard), {"stage": "cams"}) as writer:
            for index, image_id in enumerate(ids):
                tags = (3,) if index % 2 else (8, 15)
                logits = rng.normal(size=(48, 48)) * 4
                attention = np.exp(logits - logits.max(axis=1, keepdims=True))
                attrs = {
                    "class_ids": list(tags),
                    "tags": [f"t{t}" for t in tags],
                    "original_size": [45 + index, 61],
                    "grid": list(grid),
                    "source_path": f"{image_id}.jpg",
                    "source_sha256": "0" * 64,
                }
                writer.add(
                    image_id,
                    {"gradcam": rng.random((len(tags), *grid), dtype=np.float32), "attention": attention / attention.sum(axis=1, keepdims=True)},
                    attrs,
                    {"gradcam": np.float32, "attention": np.float16},
                )


def test_refine_on_image_processes_writes_the_same_refined_shards(tmp_path: Path) -> None:
    """The refine stage's own callback: each process reads its images from their CAM shard, runs
    CAA on one torch thread and encodes; the refined maps are bit-identical to this process's."""
    cam_store(tmp_path / "cams")
    compute = RefineStored(tmp_path / "cams", CaaSettings())
    here = run(tmp_path / "here", compute, processes=0, copied=("refined",))
    there = run(tmp_path / "there", RefineStored(tmp_path / "cams", CaaSettings()), processes=PROCESSES, copied=("refined",))
    assert there == here and here["computed"] == IDS
    assert shard_bytes(tmp_path / "there") == shard_bytes(tmp_path / "here")


class LargeStreamedMaps(StreamedMaps):
    """Outputs as large as a CAM entry's attention (cast to float16 here, then moved through shared
    memory), one of them overflowing float16 when `overflow` names it."""

    def __init__(self, overflow: str | None = None) -> None:
        super().__init__()
        self.overflow = overflow

    def __call__(self, image_id: str) -> ImageOutput:
        output = super().__call__(image_id)
        rng = np.random.default_rng(int(image_id[3:]))
        attention = (rng.random((400, 400), dtype=np.float32) ** 8).astype(np.float32)  # many float16 subnormals
        if image_id == self.overflow:
            attention[0, 0] = 1e6
        return ImageOutput({**output.arrays, "attention": attention}, output.attrs, {"attention": np.float16})


def test_large_streamed_arrays_cast_here_and_moved_through_shared_memory_write_the_same_shards(tmp_path: Path) -> None:
    here = run(tmp_path / "here", LargeStreamedMaps(), processes=0, overlap=True, copied=("maps", "attention"))
    there = run(tmp_path / "there", LargeStreamedMaps(), processes=PROCESSES, overlap=True, copied=("maps", "attention"))
    assert there == here and shard_bytes(tmp_path / "there") == shard_bytes(tmp_path / "here")
    assert CamStore(tmp_path / "there").read("img05", keep_dtype=True).arrays["attention"].dtype == np.float16
    assert not list(Path("/dev/shm").glob(f"wsss-{os.getpid()}-*"))  # every segment was read and removed


@pytest.mark.parametrize("overflowing", ["img05", None])
def test_an_overflow_on_image_processes_stops_the_shard_as_in_this_process(tmp_path: Path, overflowing: str | None) -> None:
    """A large array overflows where it is cast (here); a small one on the image process: either way
    a StoreError naming the image, and no shard."""
    compute = LargeStreamedMaps(overflowing) if overflowing else OverflowingMaps()
    with pytest.raises(StoreError, match=r"img05.*overflow float16"):
        run(tmp_path / "store", compute, processes=PROCESSES, overlap=True)
    assert not list((tmp_path / "store").glob("shard-*.h5"))


class OverflowingMaps(StreamedMaps):
    def __call__(self, image_id: str) -> ImageOutput:
        output = super().__call__(image_id)
        return ImageOutput({"maps": output.arrays["maps"] * (1e6 if image_id == "img05" else 1)}, output.attrs)
