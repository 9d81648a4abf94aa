"""Writing one shard of the CAM store: layout, storage dtypes, codec, atomic publication.

Image `<id>` is the group `/images/<id>` with the caller's named arrays (one 2-D map per chunk,
compressed losslessly by the chosen codec, fletcher32 on every chunk) and attributes; root
attributes hold the run's provenance plus `schema_version`, `shard_index`, `num_images`,
`image_ids` and `codec`. The shard is assembled in memory (HDF5's core driver, about 0.55 MB per
image with the default codec) and written in one go through the one atomic-write helper
(`wsss.io.atomic`: a short temporary name beside it, fsync, rename): HDF5 itself never writes to
disk, so a full disk is one clear error from a plain write (HDF5 left with unflushable data crashed
the process on exit), no partial file stays behind and the previous shard is never touched. The same inputs give byte-identical files.
"""

from __future__ import annotations

import errno
import json
import math
import re
from collections.abc import Callable, Mapping
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from wsss.errors import ArtifactWriteError, StoreError
from wsss.io.atomic import AtomicFile, copy_file_atomic, move_file_atomic
from wsss.io.attributes import MAX_ATTR_BYTES, encode_attrs, validate_name, write_attrs
from wsss.io.codecs import DEFAULT_CODEC, codec_level, codec_name, codec_record, dataset_filters

if TYPE_CHECKING:
    from wsss.io.shard_encoding import EncodedImage

SCHEMA_VERSION = 2  # 2: `codec` root attribute, Blosc2 codec; version 1 shards stay readable
RESERVED_ROOT_ATTRS = ("schema_version", "shard_index", "num_images", "image_ids", "codec")
# 2-D arrays above this are chunked in row blocks, so reading a few rows inflates little data.
MAX_CHUNK_BYTES = 4 * 1024 * 1024
# HDF5 1.10 format: object headers and chunk indexes carry checksums, so damaged metadata raises
# instead of being misread, and the files stay readable by HDF5 >= 1.10.
LIBVER = ("v110", "v110")
# Growth step of the in-memory file image.
CORE_BLOCK_BYTES = 4 * 1024 * 1024
# What h5py raises when HDF5 fails; each is re-raised naming the shard.
HDF5_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError, IndexError)
_SHARD_NAME = re.compile(r"^shard-(\d{5,})\.h5$")
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


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


def os_error_reason(error: BaseException) -> str:
    """`the disk is full (...)` for ENOSPC/EDQUOT/EFBIG, else the error itself."""
    if getattr(error, "errno", None) in _DISK_FULL or "No space left on device" in str(error):
        return f"the disk is full ({error})"
    return f"{type(error).__name__}: {error}"


class ShardWriter:
    """Writes one shard atomically: built in memory, written to a temporary file beside `path`, renamed onto it.

    Images must be added in strictly increasing id order (as `assign_shards` lists them), so a
    file's bytes depend only on its content. If the `with` block raises, an `add` failed half-way
    or the file cannot be written (disk full), nothing is left on disk and `path` (possibly an
    older shard) is untouched; the error names `path`.

    Args:
        path: the shard to produce, normally `shard_path(directory, index)`.
        root_attrs: provenance (parameters, weights hash, ...); dicts and lists are stored as JSON.
        compression: a codec of `wsss.io.codecs.CODECS` ("zstd" default, "blosc2-zstd", "gzip",
            "lzf", "none"; None means "none").
        compression_level: the codec's level (zstd 1-22, blosc2-zstd 1-9, default 1; gzip 0-9,
            default 4).
        shard_index: the `shard_index` attribute; parsed from the file name when None.
    """

    def __init__(
        self,
        path: str | Path,
        root_attrs: Mapping[str, Any] | None = None,
        *,
        compression: str | None = DEFAULT_CODEC,
        compression_level: int | None = None,
        shard_index: int | None = None,
    ) -> None:
        self.path = Path(path)
        self._pending: AtomicFile | None = None
        self.partial_path = self.path.with_name(f"{self.path.name}.in-memory")  # names the in-memory file only
        try:
            self.codec = codec_name(compression)
            self.level = codec_level(self.codec, compression_level)
        except StoreError as error:
            raise StoreError(f"{self.path}: {error}") from None
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
        encode_attrs(self.root_attrs, f"{self.path}: root")  # fail before any work
        self._filters = dataset_filters(self.codec, self.level)
        self._image_ids: list[str] = []
        self._ids_json_bytes = 2
        self._file: h5py.File | None = None
        self._broken: str | None = None

    def __enter__(self) -> ShardWriter:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # The partial path only names the in-memory file; nothing is created on disk yet.
            self._file = h5py.File(self.partial_path, "w", driver="core", backing_store=False, block_size=CORE_BLOCK_BYTES, libver=LIBVER)
            self._file.create_group("images", track_times=False)
        except (OSError, RuntimeError, ValueError) as error:
            self._discard()
            raise StoreError(f"{self.path}: cannot start the shard: {os_error_reason(error)}") from error
        return self

    def add(
        self, image_id: str, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any], dtypes: Mapping[str, np.dtype | type | str] | None = None
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
        where = self._accept(image_id)
        # Everything that can be refused is checked before the file changes.
        prepared, encoded_attrs = prepare_image(where, arrays, attrs, dtypes)

        def create_arrays(group: h5py.Group) -> None:
            for name, data in prepared.items():
                # Not kept: the dataset closes here, its chunks pass the filters and take their
                # place in the file before the next array's header (the file's byte layout).
                group.create_dataset(name, data=data, **dataset_options(data.shape, data.dtype, self._filters))

        self._write(image_id, encoded_attrs, create_arrays)

    def add_encoded(self, image_id: str, encoded: EncodedImage) -> None:
        """Store one image whose arrays were already stored through this codec's filters elsewhere
        (`wsss.io.shard_encoding.encode_image`, e.g. in another process): its compressed,
        checksummed chunks are written as they are, so the shard's bytes equal `add`'s."""
        where = self._accept(image_id)
        if (encoded.codec, encoded.level) != (self.codec, self.level):
            raise StoreError(f"{where}: encoded with {encoded.codec} {encoded.level}, the shard is {self.codec} {self.level}")

        def create_arrays(group: h5py.Group) -> None:
            for array in encoded.arrays:
                array.write_into(group, self._filters)

        self._write(image_id, encoded.attrs, create_arrays)

    def _accept(self, image_id: str) -> str:
        """Where an image goes, in error messages, once this shard can take it (in order, not full)."""
        if self._file is None:
            raise StoreError(f"{self.path}: ShardWriter.add called outside its `with` block")
        where = f"{self.path}: image {validate_name(image_id)!r}"
        if self._broken is not None:
            raise StoreError(f"{self.path}: no more images accepted because {self._broken}")
        if self._image_ids and image_id <= self._image_ids[-1]:
            reason = "duplicate image id" if image_id in self._image_ids else "ids must be added in sorted order"
            raise StoreError(f"{self.path}: {reason}: {image_id!r} after {self._image_ids[-1]!r}")
        if self._ids_json_bytes + len(json.dumps(image_id).encode("utf-8")) + 2 > MAX_ATTR_BYTES:
            raise StoreError(f"{self.path}: image_ids would exceed {MAX_ATTR_BYTES} bytes; use smaller shards")
        return where

    def _write(self, image_id: str, encoded_attrs: list[tuple[str, Any]], create_arrays: Callable[[h5py.Group], Any]) -> None:
        """The image's group, its arrays (`create_arrays`, sorted by name) and attributes, in this order."""
        assert self._file is not None  # _accept checked it
        where = f"{self.path}: image {image_id!r}"
        try:
            group = self._file["images"].create_group(image_id, track_times=False)
            create_arrays(group)
            write_attrs(group, encoded_attrs)
        except BaseException as error:
            self._broken = f"writing {image_id!r} failed ({os_error_reason(error)})"
            if isinstance(error, HDF5_ERRORS):
                raise StoreError(f"{where}: not stored: {os_error_reason(error)}") from error
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
        root["codec"] = codec_record(self.codec, self.level)
        try:
            write_attrs(self._file, encode_attrs(root, f"{self.path}: root"))
            self._file.flush()
            image = self._file.id.get_file_image()
            self._file.close()
            self._file = None
            self._pending = AtomicFile(self.path)
            self._pending.write(image)
        except Exception as error:  # noqa: BLE001 - h5py raises many types: any of them means nothing was published (StoreError)
            self._discard()
            raise StoreError(f"{self.path}: shard not written, nothing published: {_reason(error)}") from None
        try:
            self._pending.commit()
        except ArtifactWriteError as error:
            if self.path.is_file() and "directory could not be synced" in str(error):
                raise StoreError(f"{self.path}: written, but its directory could not be synced: {_reason(error)}") from None
            raise StoreError(f"{self.path}: shard not written, nothing published: {_reason(error)}") from None

    def _discard(self) -> None:
        if self._file is not None:
            with suppress(OSError, RuntimeError):  # an in-memory file; a failed close must not mask the original error
                self._file.close()
            self._file = None
        if self._pending is not None:
            self._pending.discard()


def _reason(error: BaseException) -> str:
    """The OS error behind an atomic-write failure, in `os_error_reason`'s words."""
    return os_error_reason(error.__cause__ if isinstance(error, ArtifactWriteError) and error.__cause__ else error)


def publish_copy(source: Path, destination: Path) -> Path:
    """Copy a finished shard onto `destination` atomically (`wsss.io.atomic`: temporary, fsync, rename).

    On any failure (disk full) the temporary copy is removed, `destination` keeps its previous
    content, and the StoreError names `destination`.
    """
    try:
        copy_file_atomic(source, destination)
    except ArtifactWriteError as error:
        raise StoreError(f"{destination}: not published, the previous file is kept: {_reason(error)}") from None
    return destination


def prepare_image(
    where: str, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any], dtypes: Mapping[str, Any] | None
) -> tuple[dict[str, np.ndarray], list[tuple[str, Any]]]:
    """One image's arrays as stored (sorted by name, in their storage dtypes) and its encoded
    attributes; everything a shard refuses about an image is refused here, before any write."""
    unknown = sorted(set(dtypes or ()) - set(arrays))
    if unknown:
        raise StoreError(f"{where}: dtypes given for arrays it does not have: {unknown}")
    prepared = {name: storage_array(f"{where}: array", name, arrays[name], (dtypes or {}).get(name)) for name in sorted(arrays)}
    return prepared, encode_attrs(attrs, where)


def dataset_options(shape: tuple[int, ...], dtype: np.dtype, filters: Mapping[str, Any]) -> dict[str, Any]:
    """`create_dataset` options of a stored array: its chunks (`chunk_shape`) with the codec's
    filters and checksum, or contiguous without them when empty; no timestamps."""
    chunks = chunk_shape(shape, dtype.itemsize)
    return {"chunks": chunks, "track_times": False, **(filters if chunks is not None else {})}


def publish_move(source: Path, destination: Path) -> Path:
    """Move a finished scratch shard onto `destination`: a rename where both are on one file system
    (the shard was written and synced once; copying it again cost ~20 % of the stage process's
    host work per image, benchmarks/pipeline_io_cost.py), else `publish_copy`'s atomic copy."""
    try:
        move_file_atomic(source, destination)
    except ArtifactWriteError as error:
        raise StoreError(f"{destination}: not published, the previous file is kept: {_reason(error)}") from None
    return destination


def storage_array(where: str, name: str, array: np.ndarray, dtype: Any) -> np.ndarray:
    """`array` as stored: C-contiguous in `dtype` (default float16 for floats); refuses overflow."""
    where = f"{where} {validate_name(name, f'{where} name')!r}"
    source = np.asarray(array)
    if source.dtype.kind not in "biuf" or source.ndim < 1:
        raise StoreError(f"{where}: need a numeric array with ndim >= 1, got {source.dtype}, ndim {source.ndim}")
    target = np.dtype(dtype if dtype is not None else np.float16 if source.dtype.kind == "f" else source.dtype)
    if target.kind not in "biuf":
        raise StoreError(f"{where}: storage dtype must be numeric, got {target}")
    if source.dtype == target:  # nothing is cast, so nothing can overflow (numpy's float16 isfinite is slow)
        return np.ascontiguousarray(source)
    if source.dtype == np.float32 and target == np.float16:
        stored = _float32_to_float16(source)
        if stored is not None:
            return stored
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is detected just below
        stored = np.ascontiguousarray(source, dtype=target)
    # Casting finite values beyond the range (float16: 65504) gives inf, silently ruining the maps.
    if target.kind == "f" and source.dtype.kind == "f" and not np.array_equal(np.isfinite(source), np.isfinite(stored)):
        raise StoreError(f"{where}: values overflow {target} (max {np.finfo(target).max})")
    return stored


def _float32_to_float16(source: np.ndarray) -> np.ndarray | None:
    """Round-to-nearest-even float32 -> float16 through torch, or None when any result is not finite.

    numpy converts subnormal results (most of a peaked attention map) ~40x slower; both are the
    IEEE conversion, so the bits are equal (tests/unit/test_store_codec.py). Arrays with inf or
    NaN results take numpy's path, which also reports overflow.
    """
    import torch  # the core depends on torch; imported here so readers of stores need not load it

    contiguous = np.ascontiguousarray(source)
    if not contiguous.flags.writeable:  # torch warns on read-only buffers even though it only reads
        contiguous = contiguous.copy()
    stored = torch.from_numpy(contiguous).to(torch.float16).numpy()
    if stored.size and int((stored.view(np.uint16) & 0x7FFF).max()) >= 0x7C00:  # exponent all ones: inf or NaN
        return None
    return stored
