"""Sharded HDF5 store of per-image, variable-size class maps (Grad-CAM, attention, refined CAMs).

A store is a directory of `shard-00000.h5`, `shard-00001.h5`, ... Image `i` of the sorted list of
a run's image ids goes to shard `i // images_per_shard`: adding images whose ids sort after all
existing ones only rewrites the last shard (and adds new ones), while an id sorting in the middle
shifts, and so rewrites, every later shard. Image `<id>` is the group `/images/<id>` with the
caller's named arrays (one 2-D map per chunk, gzip+shuffle or lzf, fletcher32) and attributes;
root attributes hold the run's provenance plus `schema_version`, `shard_index`, `num_images` and
`image_ids`. A shard is written to a temporary file and renamed into place when complete, and the
same inputs give byte-identical files (no timestamps, pinned file format, ids in sorted order).
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from wsss.errors import StoreError
from wsss.io.atomic import TEMPORARY_PREFIX, AtomicFile
from wsss.io.attributes import (
    MAX_ATTR_BYTES,
    encode_attrs,
    from_attr,
    read_attrs,
    validate_name,
    write_attrs,
)

SCHEMA_VERSION = 1
SHARD_GLOB = "shard-*.h5"
PARTIAL_SUFFIX = ".partial"
RESERVED_ROOT_ATTRS = ("schema_version", "shard_index", "num_images", "image_ids")
# 2-D arrays above this are chunked in row blocks, so reading a few rows inflates little data.
MAX_CHUNK_BYTES = 4 * 1024 * 1024
COMPRESSIONS = ("gzip", "lzf", None)
# HDF5 1.10 format: object headers and chunk indexes carry checksums, so damaged metadata raises
# instead of being misread, and the files stay readable by HDF5 >= 1.10.
LIBVER = ("v110", "v110")
# What h5py raises on damaged or unexpected content; each is re-raised naming the file.
_READ_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError, IndexError)
_SHARD_NAME = re.compile(r"^shard-(\d{5,})\.h5$")


def shard_path(directory: str | Path, shard_index: int) -> Path:
    """Path of shard `shard_index` in a store directory (`shard-00007.h5`)."""
    return Path(directory) / f"shard-{shard_index:05d}.h5"


def chunk_shape(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...] | None:
    """One trailing 2-D map per chunk for ndim >= 3; one chunk, or row blocks over 4 MiB, below.

    Returns None for empty arrays, which are stored contiguous (HDF5 chunks must be non-empty).
    """
    if not shape or 0 in shape:
        return None
    if len(shape) >= 3:
        return (1,) * (len(shape) - 2) + tuple(shape[-2:])
    rows = max(1, min(shape[0], MAX_CHUNK_BYTES // (itemsize * math.prod(shape[1:]))))
    return (rows, *shape[1:])


class ShardWriter:
    """Writes one shard atomically: into a temporary file beside it (`wsss.io.atomic`), renamed onto `path` on success.

    Images must be added in strictly increasing id order (as `assign_shards` lists them), so a
    file's bytes depend only on its content. If the `with` block raises, or an `add` failed
    half-way, the partial file is deleted and `path` (possibly an older shard) is left untouched.

    Args:
        path: the shard to produce, normally `shard_path(directory, index)`.
        root_attrs: provenance (parameters, weights hash, ...); dicts and lists are stored as JSON.
        compression: "gzip" (default), "lzf" or None.
        compression_level: gzip level, 0-9.
        shuffle: byte-shuffle before compressing (helps float16 maps).
        shard_index: the `shard_index` attribute; parsed from the file name when None.
    """

    def __init__(
        self,
        path: str | Path,
        root_attrs: Mapping[str, Any] | None = None,
        *,
        compression: str | None = "gzip",
        compression_level: int = 4,
        shuffle: bool = True,
        shard_index: int | None = None,
    ) -> None:
        self.path = Path(path)
        self._pending = AtomicFile(self.path)  # the one atomic-write helper: short temporary name, fsync, rename
        self.partial_path = self._pending.temporary
        if compression not in COMPRESSIONS or (compression == "gzip" and not 0 <= compression_level <= 9):
            raise StoreError(f"{self.path}: compression must be one of {COMPRESSIONS} (gzip level 0-9)")
        if shard_index is None:
            match = _SHARD_NAME.match(self.path.name)
            if match is None:
                raise StoreError(f"{self.path}: name is not shard-NNNNN.h5; pass shard_index explicitly")
            shard_index = int(match.group(1))
        self.shard_index = shard_index
        self.root_attrs = dict(root_attrs or {})
        clashes = sorted(set(self.root_attrs) & set(RESERVED_ROOT_ATTRS))
        if clashes:
            raise StoreError(f"{self.path}: root attributes {clashes} are reserved; the store writes them")
        encode_attrs(self.root_attrs, f"{self.path}: root")  # fail before any file exists
        self._filters: dict[str, Any] = {"fletcher32": True, "shuffle": shuffle and compression is not None}
        if compression is not None:
            level = compression_level if compression == "gzip" else None
            self._filters.update(compression=compression, compression_opts=level)
        self._image_ids: list[str] = []
        self._ids_json_bytes = 2
        self._file: h5py.File | None = None
        self._broken: str | None = None

    def __enter__(self) -> ShardWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._file = h5py.File(self.partial_path, "w", libver=LIBVER)
            self._file.create_group("images", track_times=False)
        except OSError as error:
            self._discard()
            raise StoreError(f"{self.partial_path}: cannot create shard file ({error})") from error
        return self

    def add(
        self,
        image_id: str,
        arrays: Mapping[str, np.ndarray],
        attrs: Mapping[str, Any],
        dtypes: Mapping[str, np.dtype | type | str] | None = None,
    ) -> None:
        """Store one image's arrays and attributes.

        Args:
            image_id: a valid id sorting after every id already added.
            arrays: name -> numeric array with ndim >= 1. Float arrays are stored as float16
                unless `dtypes` names another dtype; integer and bool arrays keep theirs.
            attrs: per-image attributes (class ids, original size, source path, hashes, ...).
            dtypes: storage dtype per array name, for those that must not be float16.

        Shape:
            arrays: any, e.g. gradcam `(K, h, w)`, attention `(h*w, h*w)`, refined `(K, H, W)`.
        """
        if self._file is None:
            raise StoreError(f"{self.path}: ShardWriter.add called outside its `with` block")
        where = f"{self.path}: image {validate_name(image_id)!r}"
        if self._image_ids and image_id <= self._image_ids[-1]:
            reason = "duplicate image id" if image_id in self._image_ids else "ids must be added in sorted order"
            raise StoreError(f"{self.path}: {reason}: {image_id!r} after {self._image_ids[-1]!r}")
        unknown = sorted(set(dtypes or ()) - set(arrays))
        if unknown:
            raise StoreError(f"{where}: dtypes given for arrays it does not have: {unknown}")
        if self._ids_json_bytes + len(json.dumps(image_id).encode("utf-8")) + 2 > MAX_ATTR_BYTES:
            raise StoreError(f"{self.path}: image_ids would exceed {MAX_ATTR_BYTES} bytes; use smaller shards")
        # Everything that can be refused is checked before the file changes.
        dtypes = dtypes or {}
        prepared = {name: _storage_array(f"{where}: array", name, arrays[name], dtypes.get(name)) for name in sorted(arrays)}
        encoded_attrs = encode_attrs(attrs, where)
        try:
            group = self._file["images"].create_group(image_id, track_times=False)
            for name, data in prepared.items():
                chunks = chunk_shape(data.shape, data.dtype.itemsize)
                filters = self._filters if chunks is not None else {}
                group.create_dataset(name, data=data, chunks=chunks, track_times=False, **filters)
            write_attrs(group, encoded_attrs)
        except BaseException as error:
            self._broken = f"writing {image_id!r} failed ({error})"
            raise
        self._image_ids.append(image_id)
        self._ids_json_bytes += len(json.dumps(image_id).encode("utf-8")) + 2

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is not None:
            self._discard()
            return
        if self._broken is not None:
            self._discard()
            raise StoreError(f"{self.path}: not written because {self._broken}")
        if self._file is None:
            raise StoreError(f"{self.path}: ShardWriter exited without being entered")
        root = dict(self.root_attrs)
        root.update(schema_version=SCHEMA_VERSION, shard_index=self.shard_index, num_images=len(self._image_ids))
        root["image_ids"] = list(self._image_ids)
        try:
            write_attrs(self._file, encode_attrs(root, f"{self.path}: root"))
            self._file.flush()
            self._file.close()
            self._file = None
            self._pending.commit()
        except Exception as error:
            self._discard()
            raise StoreError(f"{self.path}: could not finish shard ({error})") from error

    def _discard(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except (OSError, RuntimeError):
                pass  # the file is deleted next; a failed close must not mask the original error
            self._file = None
        self.partial_path.unlink(missing_ok=True)


def _storage_array(where: str, name: str, array: np.ndarray, dtype: Any) -> np.ndarray:
    where = f"{where} {validate_name(name, f'{where} name')!r}"
    source = np.asarray(array)
    if source.dtype.kind not in "biuf" or source.ndim < 1:
        raise StoreError(f"{where}: need a numeric array with ndim >= 1, got {source.dtype}, ndim {source.ndim}")
    target = np.dtype(dtype if dtype is not None else np.float16 if source.dtype.kind == "f" else source.dtype)
    if target.kind not in "biuf":
        raise StoreError(f"{where}: storage dtype must be numeric, got {target}")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is detected just below
        stored = np.ascontiguousarray(source, dtype=target)
    # Casting finite values beyond the range (float16: 65504) gives inf, silently ruining the maps.
    if target.kind == "f" and source.dtype.kind == "f" and not np.array_equal(np.isfinite(source), np.isfinite(stored)):
        raise StoreError(f"{where}: values overflow {target} (max {np.finfo(target).max})")
    return stored


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
def _open_shard(path: Path) -> Iterator[h5py.File]:
    try:
        handle = h5py.File(path, "r")
    except _READ_ERRORS as error:
        raise StoreError(f"{path}: cannot open as an HDF5 shard ({error})") from error
    try:
        yield handle
    except _READ_ERRORS as error:
        raise StoreError(f"{path}: unreadable, shard corrupted? ({error})") from error
    finally:
        handle.close()


def _shard_image_ids(handle: h5py.File, path: Path) -> list[str]:
    version = from_attr(handle.attrs["schema_version"])
    image_ids = from_attr(handle.attrs["image_ids"])
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise StoreError(f"{path}: schema_version {version!r} is not supported (this code reads <= {SCHEMA_VERSION})")
    if not isinstance(image_ids, list) or not all(isinstance(i, str) for i in image_ids):
        raise StoreError(f"{path}: image_ids attribute is not a list of strings")
    return image_ids


def _read_image(
    handle: h5py.File, path: Path, image_id: str, names: Sequence[str] | None, keep_dtype: bool
) -> StoredImage:
    where = f"{path}: image {image_id!r}"
    names = [names] if isinstance(names, str) else names
    try:
        group = handle["images"][image_id]
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
            data = np.asarray(group[name][()])  # a fletcher32 mismatch raises here
        except _READ_ERRORS as error:
            raise StoreError(f"{where}: array {name!r} unreadable, shard corrupted? ({error})") from error
        arrays[name] = data if keep_dtype or data.dtype.kind != "f" else data.astype(np.float32)
    return StoredImage(arrays=arrays, attrs=attrs, shard=path)


class CamStore:
    """Read-only view of a store directory; each call opens the shard it needs and closes it.

    Args:
        directory: the store directory holding `shard-NNNNN.h5` files.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise StoreError(f"{self.directory}: CAM store directory does not exist")
        self.shards: list[Path] = sorted(self.directory.glob(SHARD_GLOB))
        self._locations: dict[str, Path] | None = None

    def _index(self) -> dict[str, Path]:
        if self._locations is None:
            locations: dict[str, Path] = {}
            for path in self.shards:
                with _open_shard(path) as handle:
                    for image_id in _shard_image_ids(handle, path):
                        if image_id in locations:
                            raise StoreError(f"{path}: image {image_id!r} is also in {locations[image_id]}")
                        locations[image_id] = path
            self._locations = locations
        return self._locations

    def image_ids(self) -> list[str]:
        """All image ids of the store, sorted."""
        return sorted(self._index())

    def __contains__(self, image_id: object) -> bool:
        return isinstance(image_id, str) and image_id in self._index()

    def read(self, image_id: str, names: Sequence[str] | None = None, *, keep_dtype: bool = False) -> StoredImage:
        """Arrays (all, or those named) and attributes of one image."""
        path = self._index().get(validate_name(image_id))
        if path is None:
            raise StoreError(f"{self.directory}: image {image_id!r} is not in the store")
        with _open_shard(path) as handle:
            return _read_image(handle, path, image_id, names, keep_dtype)

    def iter_images(
        self, names: Sequence[str] | None = None, *, keep_dtype: bool = False
    ) -> Iterator[tuple[str, StoredImage]]:
        """Yield `(image_id, StoredImage)` in sorted id order, opening each shard once per run of ids."""
        index = self._index()
        for path, run in itertools.groupby(sorted(index), key=index.__getitem__):
            with _open_shard(path) as handle:
                for image_id in run:
                    yield image_id, _read_image(handle, path, image_id, names, keep_dtype)

    def root_attrs(self, shard: str | Path) -> dict[str, Any]:
        """Root attributes of one shard (a path, or a file name inside the store), JSON decoded."""
        path = Path(shard) if Path(shard).exists() else self.directory / shard
        with _open_shard(path) as handle:
            return read_attrs(handle)

    def verify(self) -> list[str]:
        """Read every array and attribute of every shard; return the problems found (empty = fine).

        Reading a chunk checks its fletcher32 checksum; each problem names the file (and image).
        """
        partials = sorted([*self.directory.glob(SHARD_GLOB + PARTIAL_SUFFIX), *self.directory.glob(TEMPORARY_PREFIX + "*")])
        problems = [f"{partial}: leftover partial file of an interrupted write" for partial in partials]
        owners: dict[str, Path] = {}
        for path in self.shards:
            try:
                with _open_shard(path) as handle:
                    problems.extend(self._verify_shard(handle, path, owners))
            except StoreError as error:
                problems.append(str(error))
        return problems

    @staticmethod
    def _verify_shard(handle: h5py.File, path: Path, owners: dict[str, Path]) -> list[str]:
        listed, root, stored = _shard_image_ids(handle, path), read_attrs(handle), sorted(handle["images"].keys())
        problems = []
        if root.get("num_images") != len(listed) or sorted(listed) != stored:
            problems.append(f"{path}: num_images/image_ids attributes do not match the {len(stored)} stored images")
        for image_id in stored:
            if image_id in owners:
                problems.append(f"{path}: image {image_id!r} is also in {owners[image_id]}")
            owners[image_id] = path
            try:
                names = sorted(handle["images"][image_id].keys())
            except _READ_ERRORS as error:
                problems.append(f"{path}: image {image_id!r}: group unreadable ({error})")
                continue
            for name in names or [None]:  # one read per array, so every damaged array is reported
                try:
                    _read_image(handle, path, image_id, [name] if name else [], keep_dtype=True)
                except StoreError as error:
                    problems.append(str(error))
        return problems
