"""CAM extraction over a stream of images: decode ahead of the model, full batches per size bucket.

What the `cams` stage does per shard (and the GPU check mirrors): the next images are decoded and
prepared on threads while the model runs (`overlap`, `decode_workers`). A forward takes images of
one network input size only (no padding may change the attention), and a dataset like VOC mixes
several sizes, so consecutive images would form small batches: instead each loaded image joins its
size bucket, a bucket runs when it holds `batch_size` images, and when `BUCKET_WINDOW_BATCHES`
batches' worth of images wait unanswered the bucket holding the oldest one runs as it is. Which images share a forward depends
only on the order and sizes of the images, never on timing, so a run is reproducible. Results
come back in input order. With image processes (`pool`), `PrepareFile` decodes and prepares the
next images there instead of on threads (the same pixels: the same code).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from wsss.cam.extractor import CamResult, ClipEsCamExtractor, PreparedImage, prepare_image, size_bucket
from wsss.datasets import safe_join
from wsss.errors import DatasetError, ImageError
from wsss.imaging import load_rgb
from wsss.io.pipelining import prefetch

T = TypeVar("T")
LoadedImage = tuple[PreparedImage, Sequence[int]]

# Images decoded ahead of the model, beyond one batch (bounds memory: ~3 MB each at max_side 1024).
PREFETCH_AHEAD = 4
# Images waiting for their bucket to fill, in batches: bounds memory (prepared inputs and finished
# results held back for order, ~2.5 MB each at VOC size) and how long a rare size waits.
BUCKET_WINDOW_BATCHES = 4


@dataclass(frozen=True)
class PrepareFile:
    """Decode + prepare one image file of a dataset for the network: `load` of `stream_cams` over
    `(image id, path under root, class ids)` items (picklable: image processes run it). An
    unreadable image returns its error."""

    root: Path
    patch_size: int
    max_side: int | None
    max_pixels: int | None = None

    @classmethod
    def of(cls, extractor: ClipEsCamExtractor, root: Path, max_pixels: int | None = None) -> PrepareFile:
        return cls(Path(root), extractor.tower.patch_size, extractor.settings.max_side, max_pixels)

    def __call__(self, item: tuple[str, str, Sequence[int]]) -> LoadedImage | Exception:
        _, path, class_ids = item
        try:
            return prepare_image(load_rgb(safe_join(self.root, path), self.max_pixels), self.patch_size, self.max_side), class_ids
        except (ImageError, DatasetError) as error:
            return error


def stream_cams(
    extractor: ClipEsCamExtractor,
    items: Sequence[T],
    load: Callable[[T], LoadedImage | Exception],
    batch_size: int,
    overlap: bool,
    decode_workers: int = 1,
    pool: Executor | None = None,
) -> Iterator[tuple[T, CamResult | Exception]]:
    """`(item, result)` for every item in order; `load` returning an exception (an unreadable
    image) yields that exception in the item's place, after every earlier item's result.

    Args:
        load: decode + prepare one item: `(prepared image, class ids)`, or the error it met.
        batch_size: images per forward, all of one size bucket.
        overlap: load the next `batch_size + PREFETCH_AHEAD` items on threads while the model runs.
        decode_workers: threads loading with `overlap` (PIL releases the GIL while decoding and
            resizing, so a GPU that needs more images per second than one thread decodes gets them).
        pool: image processes to load on instead of threads (with `overlap`; `load` must be
            picklable; `decode_workers` then says how many).
    """
    depth = batch_size + PREFETCH_AHEAD + decode_workers - 1
    # A generator either way: closed when the consumer leaves early (stops the prefetch).
    loaded: Generator[tuple[T, LoadedImage | Exception], None, None] = (
        prefetch(items, load, depth=depth, workers=decode_workers, pool=pool) if overlap else ((i, load(i)) for i in items)
    )
    window = max(1, BUCKET_WINDOW_BATCHES * batch_size)
    waiting: deque[list[Any]] = deque()  # [item, result or None] in input order
    buckets: dict[tuple[int, ...], list[tuple[list[Any], LoadedImage]]] = {}

    def run(bucket: tuple[int, ...]) -> None:
        members = buckets.pop(bucket)
        results = extractor.extract_batch([image for _, image in members], refine=False)
        for (entry, _), result in zip(members, results, strict=True):
            entry[1] = result

    def run_oldest() -> None:
        oldest = waiting[0]  # not answered yet, so it sits in a bucket
        run(next(key for key, members in buckets.items() if any(entry is oldest for entry, _ in members)))

    def ready() -> Iterator[tuple[T, CamResult | Exception]]:
        while waiting and waiting[0][1] is not None:
            item, result = waiting.popleft()
            yield item, result

    try:
        for item, image in loaded:
            entry: list[Any] = [item, image if isinstance(image, Exception) else None]
            waiting.append(entry)
            if not isinstance(image, Exception):
                bucket = size_bucket(image[0])
                buckets.setdefault(bucket, []).append((entry, image))
                if len(buckets[bucket]) == batch_size:
                    run(bucket)
            yield from ready()
            while len(waiting) >= window:  # the oldest image's bucket runs short rather than wait longer
                run_oldest()
                yield from ready()
        while buckets:  # the rest, oldest first
            run_oldest()
            yield from ready()
        yield from ready()
    finally:
        loaded.close()  # stops the prefetch when the consumer leaves early
