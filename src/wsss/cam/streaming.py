"""CAM extraction over a stream of images: decode ahead of the model, a batch per forward.

What the `cams` stage does per shard (and the GPU check mirrors): the next images are decoded and
prepared on a thread while the model runs (`overlap`), and `batch_size` consecutive images go
through one `extract_batch` (which groups them by size bucket). Results come back in input order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from wsss.cam.extractor import CamResult, ClipEsCamExtractor, PreparedImage
from wsss.io.pipelining import prefetch

T = TypeVar("T")
LoadedImage = tuple[PreparedImage, Sequence[int]]

# Images decoded ahead of the model, beyond one batch (bounds memory: ~3 MB each at max_side 1024).
PREFETCH_AHEAD = 4


def stream_cams(
    extractor: ClipEsCamExtractor,
    items: Sequence[T],
    load: Callable[[T], LoadedImage | Exception],
    batch_size: int,
    overlap: bool,
) -> Iterator[tuple[T, CamResult | Exception]]:
    """`(item, result)` for every item in order; `load` returning an exception (an unreadable
    image) yields that exception in the item's place, after every earlier item's result.

    Args:
        load: decode + prepare one item: `(prepared image, class ids)`, or the error it met.
        overlap: load the next `batch_size + PREFETCH_AHEAD` items on a thread while the model runs.
    """
    loaded = prefetch(items, load, depth=batch_size + PREFETCH_AHEAD) if overlap else ((i, load(i)) for i in items)
    batch: list[tuple[T, LoadedImage]] = []
    try:
        for item, image in loaded:
            if isinstance(image, Exception):
                yield from _extract(extractor, batch)  # keep the order: earlier images first
                batch = []
                yield item, image
                continue
            batch.append((item, image))
            if len(batch) == batch_size:
                yield from _extract(extractor, batch)
                batch = []
        yield from _extract(extractor, batch)
    finally:
        loaded.close()  # stops the prefetch when the consumer leaves early


def _extract(extractor: ClipEsCamExtractor, batch: Sequence[tuple[T, LoadedImage]]) -> Iterator[tuple[T, CamResult]]:
    results = extractor.extract_batch([image for _, image in batch], refine=False) if batch else []
    for (item, _), result in zip(batch, results, strict=True):
        yield item, result
