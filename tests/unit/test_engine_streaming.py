"""The engine's streamed path: a callback computing a shard's images together, a background writer."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from wsss.errors import ImageError, StoreError
from wsss.incremental import ImageOutput, run_sharded, shard_plan

IDS = [f"img{i:02d}" for i in range(7)]
UNREADABLE = "img03"


class Maps:
    """One-image-at-a-time callback; `img03` cannot be read."""

    def __call__(self, image_id: str) -> ImageOutput:
        if image_id == UNREADABLE:
            raise ImageError(f"{image_id}.jpg: cannot decode")
        seed = int(image_id[3:])
        maps = np.random.default_rng(seed).random((2, 24, 32), dtype=np.float32)
        return ImageOutput({"maps": maps}, {"seed": seed})


class StreamedMaps(Maps):
    """The same outputs, streamed; records the order and grouping it was asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], bool]] = []

    def stream(self, image_ids: Sequence[str], overlap: bool) -> Iterator[tuple[str, ImageOutput | Exception]]:
        self.calls.append((list(image_ids), overlap))
        for image_id in image_ids:
            try:
                yield image_id, self(image_id)
            except ImageError as error:
                yield image_id, error


def run(
    output: Path, compute: object, overlap: bool = False, keys: dict[str, str] | None = None, processes: int = 0, copied: tuple[str, ...] = ("maps",)
) -> dict:
    """The engine over IDS (4 per shard) into `output`; the summary with shard file names."""
    keys = keys or {i: f"key-{i}" for i in IDS}
    summary = run_sharded(
        shard_plan(list(keys), 4),
        keys,
        output,
        output.parent / f"{output.name}-scratch",
        {"stage": "t"},
        compute,
        compression="zstd",
        copied_arrays=copied,
        overlap=overlap,
        processes=processes,
    )
    return {**summary.as_dict(), "written": [Path(p).name for p in summary.written]}


@pytest.mark.parametrize("overlap", [False, True])
def test_streamed_and_overlapped_shards_equal_the_plain_ones_byte_for_byte(tmp_path: Path, overlap: bool) -> None:
    plain = run(tmp_path / "plain", Maps(), overlap=False)
    streamed_compute = StreamedMaps()
    streamed = run(tmp_path / "streamed", streamed_compute, overlap=overlap)
    assert streamed["failed"] == plain["failed"] == {UNREADABLE: f"{UNREADABLE}.jpg: cannot decode"}
    assert streamed["computed"] == plain["computed"] == [i for i in IDS if i != UNREADABLE]
    # One stream per shard, with the shard's images in order, told whether to overlap.
    assert streamed_compute.calls == [(IDS[:4], overlap), (IDS[4:], overlap)]
    for name in ("shard-00000.h5", "shard-00001.h5"):
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "streamed" / name).read_bytes()


def test_a_stream_is_asked_only_for_images_it_must_compute(tmp_path: Path) -> None:
    """Unchanged images of a rewritten shard are copied, not streamed; the order of the shard stays."""
    keys = {i: f"key-{i}" for i in IDS}
    run(tmp_path / "store", Maps(), overlap=True, keys=keys)
    compute = StreamedMaps()
    summary = run(tmp_path / "store", compute, overlap=True, keys={**keys, "img01": "changed"})
    assert compute.calls == [(["img01", UNREADABLE], True)]
    assert summary["computed"] == ["img01"] and summary["copied"] == ["img00", "img02"]


def test_a_stream_out_of_order_is_refused(tmp_path: Path) -> None:
    class Shuffled(StreamedMaps):
        def stream(self, image_ids: Sequence[str], overlap: bool) -> Iterator[tuple[str, ImageOutput | Exception]]:
            yield from reversed(list(super().stream(image_ids, overlap)))

    with pytest.raises(StoreError, match="where 'img00' was due"):
        run(tmp_path / "store", Shuffled(), overlap=True)
    assert not list((tmp_path / "store").glob("shard-*.h5"))
