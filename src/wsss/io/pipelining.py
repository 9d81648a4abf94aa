"""Overlap a stage's CPU work with its model: a background shard writer, an ordered decode prefetch,
and the image processes.

With a GPU computing CAMs in a few ms per image, the CPU side (decoding the next images, casting,
compressing and checksumming the last ones) must not wait for the model nor make it wait.
`BackgroundShardWriter` runs `ShardWriter.add` on one worker thread in submission order; HDF5
runs its filters (shuffle, Zstd, fletcher32) inside `H5Dwrite`, during which h5py releases the GIL,
so the model loop keeps running (figures in benchmarks/RESULTS.md). `prefetch` decodes the next
images on worker threads (PIL releases the GIL while decoding and resizing) and yields them in
input order.

One process has one HDF5 lock and one GIL, which capped a GPU host's cams near 90 images/s.
`image_processes(n)` is this process's pool of `n` worker processes (`runner.image_processes`):
`prefetch` can decode on it, and images encoded there (`wsss.io.shard_encoding`) reach the
background writer as futures (`add_encoded`), placed in submission order: the same bytes.
"""

from __future__ import annotations

import atexit
import itertools
import multiprocessing
import queue
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Mapping
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from wsss.errors import StoreError
from wsss.io.shard_writer import ShardWriter
from wsss.io.shared_arrays import remove_orphans

if TYPE_CHECKING:
    from wsss.io.shard_encoding import EncodedImage

T = TypeVar("T")
R = TypeVar("R")
_DONE = object()


class BackgroundShardWriter:
    """A `ShardWriter` whose `add` calls run in order on one worker thread.

    `add` only queues the image and returns; at most `max_pending` images wait (memory stays
    bounded: `add` blocks while the queue is full). A failure of the worker is raised by the
    next `add` or when the `with` block ends, and then, as when the block itself raises, the
    shard is not written and no partial file is left (the `ShardWriter` guarantees). Arrays
    handed to `add` are read later by the worker: do not modify them afterwards.

    Args:
        writer: the shard to write (not yet entered).
        max_pending: images queued at most.
    """

    def __init__(self, writer: ShardWriter, max_pending: int = 8) -> None:
        if max_pending < 1:
            raise StoreError(f"{writer.path}: max_pending must be >= 1, got {max_pending}")
        self.writer = writer
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._work, name=f"wsss-writer-{writer.path.name}", daemon=True)

    def __enter__(self) -> BackgroundShardWriter:
        self.writer.__enter__()
        self._thread.start()
        return self

    def add(
        self, image_id: str, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any], dtypes: Mapping[str, np.dtype | type | str] | None = None
    ) -> None:
        """Queue one image for `ShardWriter.add` (same arguments); raises an earlier write's error."""
        if not self._thread.is_alive():
            raise StoreError(f"{self.writer.path}: BackgroundShardWriter.add called outside its `with` block")
        self._raise_failure()
        self._queue.put((image_id, arrays, attrs, dtypes))

    def add_encoded(self, image_id: str, pending: Future[EncodedImage] | EncodedImage) -> None:
        """Queue one image for `ShardWriter.add_encoded`; `pending` may still be encoding (a future of
        an image process): the writer waits for it in its turn. Raises an earlier write's error."""
        if not self._thread.is_alive():
            raise StoreError(f"{self.writer.path}: BackgroundShardWriter.add_encoded called outside its `with` block")
        self._raise_failure()
        self._queue.put((image_id, pending))

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is not None:
            self._cancelled.set()  # the worker drops what is still queued
        self._queue.put(_DONE)
        self._thread.join()
        if exc_type is not None:
            self.writer.__exit__(exc_type, exc, tb)
            return
        if self._error is not None:
            self.writer.__exit__(type(self._error), self._error, self._error.__traceback__)
            raise self._error
        self.writer.__exit__(None, None, None)

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is not None or self._cancelled.is_set():
                continue  # keep draining so that a blocked `add` can return
            try:
                if len(item) == 2:  # (image id, encoded image or its future)
                    image_id, pending = item
                    self.writer.add_encoded(image_id, pending.result() if isinstance(pending, Future) else pending)
                else:
                    self.writer.add(*item)
            except BaseException as error:  # noqa: BLE001 (handed to the caller's thread, raised there)
                self._error = error


def prefetch(
    items: Iterable[T], load: Callable[[T], R], depth: int = 4, workers: int = 1, pool: Executor | None = None
) -> Generator[tuple[T, R], None, None]:
    """Yield `(item, load(item))` in input order while the next `depth` items load on threads (or on
    `pool`'s processes: `load` and the items are then pickled, e.g. `image_processes(n)`).

    An exception raised by `load(item)` is raised when that item's turn comes, after every
    earlier item was yielded. Leaving the loop early cancels what has not started.

    Args:
        items: what to load (e.g. manifest records).
        load: e.g. decode + resize + normalise one image.
        depth: items loading or loaded ahead of the consumer (bounds memory).
        workers: loader threads (without `pool`).
        pool: an executor of the caller's to load on; it is left running.
    """
    if depth < 1 or workers < 1:
        raise ValueError(f"depth and workers must be >= 1, got {depth} and {workers}")
    source = iter(items)
    own = pool is None
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wsss-prefetch") if pool is None else pool
    pending: deque[tuple[T, Future[R]]] = deque((item, pool.submit(load, item)) for item in itertools.islice(source, depth))
    try:
        while pending:
            item, future = pending.popleft()
            for following in itertools.islice(source, 1):
                pending.append((following, pool.submit(load, following)))
            yield item, future.result()
    finally:
        if own:
            pool.shutdown(wait=True, cancel_futures=True)
        else:
            for _, future in pending:
                future.cancel()


# This process's image processes by count (a stage keeps them for all its shards and passes).
_POOLS: dict[int, ProcessPoolExecutor] = {}


def image_processes(count: int) -> ProcessPoolExecutor:
    """`count` worker processes that decode, refine and encode images for this process's stages,
    started on first use and kept. They are spawned (the stage process runs threads, and maybe
    CUDA, which a forked child must not inherit) and run torch on one thread each (the cores are
    shared by processes, as Dask's workers do with OMP_NUM_THREADS=1)."""
    if count < 1:
        raise ValueError(f"image processes must be >= 1, got {count}")
    if count not in _POOLS:
        end_image_processes()  # one pool at a time: a changed layout replaces it
        if not _POOLS_ENDED_AT_EXIT:
            atexit.register(end_image_processes)
            _POOLS_ENDED_AT_EXIT.append(True)
        _POOLS[count] = ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread)
    return _POOLS[count]


_POOLS_ENDED_AT_EXIT: list[bool] = []


def end_image_processes() -> None:
    """Stop this process's image processes and remove the shared-memory segments nobody will read."""
    for pool in _POOLS.values():
        pool.shutdown(wait=True, cancel_futures=True)
    _POOLS.clear()
    remove_orphans()


def _one_thread() -> None:
    import torch  # an image process refines (CAA) and casts with torch

    torch.set_num_threads(1)
