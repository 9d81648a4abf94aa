"""Sharded HDF5 store of per-image, variable-size class maps (Grad-CAM, attention, refined CAMs).

A store is a directory of `shard-00000.h5`, `shard-00001.h5`, ... Image `i` of the sorted list of
a run's image ids goes to shard `i // images_per_shard`: adding images whose ids sort after all
existing ones only rewrites the last shard (and adds new ones), while an id sorting in the middle
shifts, and so rewrites, every later shard. Shards are written by `wsss.io.shard_writer`
(layout, codecs, atomic publication); this module reads them back. Every object is checked
before it is read (`wsss.io.integrity`): links, external storage, virtual datasets, arrays
without checksum or with missing chunks, and shapes that cannot fit in memory are refused with
an error naming the shard, the image and the reason.
"""

from __future__ import annotations

import itertools
import traceback
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin  # noqa: F401  (registers the Zstd and Blosc2 filters with HDF5, so their shards decompress)
import numpy as np

from wsss.errors import StoreError
from wsss.io.atomic import TEMPORARY_PREFIX
from wsss.io.attributes import from_attr, read_attrs, validate_name
from wsss.io.integrity import available_memory_bytes, checked_dataset, checked_group
from wsss.io.shard_writer import HDF5_ERRORS, SCHEMA_VERSION

SHARD_GLOB = "shard-*.h5"
# Leftovers of interrupted writes: the atomic helper's temporaries, and `.partial` files of older versions.
LEFTOVER_GLOBS = (TEMPORARY_PREFIX + "*", "shard-*.h5.partial")
# What h5py raises on damaged or unexpected content; each is re-raised naming the file.
_READ_ERRORS = HDF5_ERRORS


@dataclass
class StoredImage:
    """One image read back from a store.

    Attributes:
        arrays: name -> array; float arrays are float32 unless read with `keep_dtype=True`.
        attrs: per-image attributes as written (tuples come back as lists).
        shard: the shard file it came from.
    """

    arrays: dict[str, np.ndarray]
    attrs: dict[str, Any]
    shard: Path


@contextmanager
def open_shard(path: Path) -> Iterator[h5py.File]:
    """The shard opened read-only; errors leave as a StoreError naming it, holding no HDF5 object."""
    try:
        handle = h5py.File(path, "r")
    except _READ_ERRORS as error:
        raise StoreError(f"{path}: cannot open as an HDF5 shard ({error})") from error
    try:
        yield handle
    except _READ_ERRORS as error:
        _release_hdf5_objects(error)
        raise StoreError(f"{path}: unreadable, shard corrupted? ({error})") from error
    except StoreError as error:
        _release_hdf5_objects(error)
        raise
    finally:
        handle.close()


def _release_hdf5_objects(error: BaseException) -> None:
    """Clear the finished frames of `error`'s traceback (and of its causes): their locals hold
    the shard's HDF5 objects, e.g. the refused virtual dataset (the traceback keeps its lines).

    An error kept alive until exit (Prefect keeps a failed run's exception, on its threads) freed
    them after HDF5 had shut down: the stage printed its one error line, then died with a
    segfault (exit 139 instead of 2).
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__


def shard_image_ids(handle: h5py.File, path: Path) -> list[str]:
    version = from_attr(handle.attrs["schema_version"])
    image_ids = from_attr(handle.attrs["image_ids"])
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise StoreError(f"{path}: schema_version {version!r} is not supported (this code reads <= {SCHEMA_VERSION})")
    if not isinstance(image_ids, list) or not all(isinstance(i, str) for i in image_ids):
        raise StoreError(f"{path}: image_ids attribute is not a list of strings")
    return image_ids


def _read_image(handle: h5py.File, path: Path, image_id: str, names: Sequence[str] | None, keep_dtype: bool, max_bytes: int | None) -> StoredImage:
    where = f"{path}: image {image_id!r}"
    names = [names] if isinstance(names, str) else names
    try:
        group = checked_group(checked_group(handle, "images", f"{path}: group 'images'"), image_id, where)
        available = sorted(group.keys())
        attrs = read_attrs(group)
    except _READ_ERRORS as error:
        raise StoreError(f"{where}: group or attributes unreadable ({error})") from error
    missing = sorted(set(names or ()) - set(available))
    if missing:
        raise StoreError(f"{where}: no arrays {missing}; it has {available}")
    arrays: dict[str, np.ndarray] = {}
    for name in available if names is None else names:
        try:
            dataset = checked_dataset(group, name, f"{where}: array {name!r}", None if keep_dtype else 4, max_bytes)
            data = np.asarray(dataset[()])  # a fletcher32 mismatch raises here
        except _READ_ERRORS as error:
            raise StoreError(f"{where}: array {name!r} unreadable, shard corrupted? ({error})") from error
        arrays[name] = data if keep_dtype or data.dtype.kind != "f" else _as_float32(data)
    return StoredImage(arrays=arrays, attrs=attrs, shard=path)


def _as_float32(data: np.ndarray) -> np.ndarray:
    """Exact widening to float32; torch does float16 ~40x faster than numpy on subnormals."""
    if data.dtype == np.float16:
        import torch  # the core depends on torch; imported here so `wsss inspect` need not load it

        return torch.from_numpy(np.ascontiguousarray(data)).float().numpy()
    return data.astype(np.float32, copy=False)


class ShardReader:
    """One shard file opened once for many reads (a refine shard job, a pseudo job): each read is
    checked as `CamStore.read` checks it; an image the shard does not hold is a StoreError naming it.
    Opening the file per image cost ~0.5 ms of a ~3.8 ms read (benchmarks/pipeline_io_cost.py)."""

    def __init__(self, path: str | Path, max_array_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.max_array_bytes = max_array_bytes
        self._stack = ExitStack()
        self._handle = self._stack.enter_context(open_shard(self.path))

    def read(self, image_id: str, names: Sequence[str] | None = None, *, keep_dtype: bool = False) -> StoredImage:
        """Arrays (all, or those named) and attributes of one image of this shard."""
        limit = self.max_array_bytes if self.max_array_bytes is not None else available_memory_bytes()
        try:
            return _read_image(self._handle, self.path, validate_name(image_id), names, keep_dtype, limit)
        except _READ_ERRORS as error:
            _release_hdf5_objects(error)
            raise StoreError(f"{self.path}: unreadable, shard corrupted? ({error})") from error
        except StoreError as error:
            _release_hdf5_objects(error)
            raise

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> ShardReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class CamStore:
    """Read-only view of a store directory; each call opens the shard it needs and closes it.

    Args:
        directory: the store directory holding `shard-NNNNN.h5` files.
        max_array_bytes: the most memory reading one array may take; None = what the system
            has available (MemAvailable) at the time of the read. Larger arrays are refused.
    """

    def __init__(self, directory: str | Path, max_array_bytes: int | None = None) -> None:
        self.directory = Path(directory)
        self.max_array_bytes = max_array_bytes
        if not self.directory.is_dir():
            raise StoreError(f"{self.directory}: CAM store directory does not exist")
        self.shards: list[Path] = sorted(self.directory.glob(SHARD_GLOB))
        self._locations: dict[str, Path] | None = None

    def _memory_limit(self) -> int | None:
        return self.max_array_bytes if self.max_array_bytes is not None else available_memory_bytes()

    def _index(self) -> dict[str, Path]:
        if self._locations is None:
            locations: dict[str, Path] = {}
            for path in self.shards:
                with open_shard(path) as handle:
                    for image_id in shard_image_ids(handle, path):
                        if image_id in locations:
                            raise StoreError(f"{path}: image {image_id!r} is also in {locations[image_id]}")
                        locations[image_id] = path
            self._locations = locations
        return self._locations

    def shard_of(self, image_id: str) -> Path:
        """The shard holding `image_id` (a StoreError when none does)."""
        path = self._index().get(validate_name(image_id))
        if path is None:
            raise StoreError(f"{self.directory}: image {image_id!r} is not in the store")
        return path

    def image_ids(self) -> list[str]:
        """All image ids of the store, sorted."""
        return sorted(self._index())

    def __contains__(self, image_id: object) -> bool:
        return isinstance(image_id, str) and image_id in self._index()

    def read(self, image_id: str, names: Sequence[str] | None = None, *, keep_dtype: bool = False) -> StoredImage:
        """Arrays (all, or those named) and attributes of one image."""
        path = self.shard_of(image_id)
        with open_shard(path) as handle:
            return _read_image(handle, path, image_id, names, keep_dtype, self._memory_limit())

    def iter_images(self, names: Sequence[str] | None = None, *, keep_dtype: bool = False) -> Iterator[tuple[str, StoredImage]]:
        """Yield `(image_id, StoredImage)` in sorted id order, opening each shard once per run of ids."""
        index = self._index()
        for path, run in itertools.groupby(sorted(index), key=index.__getitem__):
            with open_shard(path) as handle:
                for image_id in run:
                    yield image_id, _read_image(handle, path, image_id, names, keep_dtype, self._memory_limit())

    def root_attrs(self, shard: str | Path) -> dict[str, Any]:
        """Root attributes of one shard (a path, or a file name inside the store), JSON decoded."""
        path = Path(shard) if Path(shard).exists() else self.directory / shard
        with open_shard(path) as handle:
            return read_attrs(handle)

    def verify(self) -> list[str]:
        """Check and read every array and attribute of every shard; return the problems (empty = fine).

        Each object is checked as a read checks it (links, external or virtual storage,
        checksum filter, missing chunks, size), and reading a chunk checks its fletcher32
        checksum; each problem names the shard, the image and the array.
        """
        partials = sorted(p for pattern in LEFTOVER_GLOBS for p in self.directory.glob(pattern))
        problems = [f"{partial}: leftover partial file of an interrupted write" for partial in partials]
        owners: dict[str, Path] = {}
        for path in self.shards:
            try:
                with open_shard(path) as handle:
                    problems.extend(self._verify_shard(handle, path, owners, self._memory_limit()))
            except StoreError as error:
                problems.append(str(error))
        return problems

    @staticmethod
    def _verify_shard(handle: h5py.File, path: Path, owners: dict[str, Path], max_bytes: int | None) -> list[str]:
        listed, root = shard_image_ids(handle, path), read_attrs(handle)
        images = checked_group(handle, "images", f"{path}: group 'images'")
        stored = sorted(images.keys())
        problems = []
        if root.get("num_images") != len(listed) or sorted(listed) != stored:
            problems.append(f"{path}: num_images/image_ids attributes do not match the {len(stored)} stored images")
        for image_id in stored:
            if image_id in owners:
                problems.append(f"{path}: image {image_id!r} is also in {owners[image_id]}")
            owners[image_id] = path
            try:
                names = sorted(checked_group(images, image_id, f"{path}: image {image_id!r}").keys())
            except StoreError as error:
                problems.append(str(error))
                continue
            except _READ_ERRORS as error:
                problems.append(f"{path}: image {image_id!r}: group unreadable ({error})")
                continue
            for name in names or [None]:  # one read per array, so every damaged array is reported
                try:
                    _read_image(handle, path, image_id, [name] if name else [], True, max_bytes)
                except StoreError as error:
                    problems.append(str(error))
        return problems
