"""One image's shard entry encoded away from its shard: the work of `ShardWriter.add` that can run
in another process (casts, HDF5's filters: shuffle, compression, fletcher32), leaving the shard's
writer only to place the finished chunks (`ShardWriter.add_encoded`).

An array is stored exactly as the shard writer stores it (same storage dtype, chunks, filter
pipeline: `wsss.io.shard_writer.dataset_options`) in a small in-memory HDF5 file, and its
chunks are read back raw (`read_direct_chunk`: the filtered bytes with their checksum). Written
into the shard with `write_direct_chunk`, they give the same file bytes as `add` (every codec:
tests/unit/test_shard_encoding.py), because HDF5's own filters made them. The shard writer's
work per image falls from the whole encoding (~6 ms for a VOC-size CAM entry with zstd) to
placing ~0.5 MB of chunks and the attributes (~1 ms; benchmarks/pipeline_io_cost.py).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from wsss.io.attributes import validate_name
from wsss.io.codecs import codec_level, codec_name, dataset_filters
from wsss.io.shard_writer import LIBVER, dataset_options, prepare_image
from wsss.io.shared_arrays import shared

_SCRATCH_NAMES = itertools.count()


@dataclass(frozen=True)
class EncodedArray:
    """One stored array: shape, storage dtype and its chunks as HDF5 wrote them (offset, filter
    mask, bytes); an empty array (stored contiguous, without filters) keeps its data instead."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    chunks: tuple[tuple[tuple[int, ...], int, bytes], ...] = ()
    empty: np.ndarray | None = None

    def write_into(self, group: h5py.Group, filters: Mapping[str, Any]) -> None:
        """Create the array in a shard's image group, as `ShardWriter.add` would have."""
        if self.empty is not None:
            group.create_dataset(self.name, data=self.empty, **dataset_options(self.shape, self.empty.dtype, filters))
            return
        dataset = group.create_dataset(
            self.name, shape=self.shape, dtype=np.dtype(self.dtype), **dataset_options(self.shape, np.dtype(self.dtype), filters)
        )
        for offset, mask, data in self.chunks:
            dataset.id.write_direct_chunk(offset, data, mask)

    @property
    def nbytes(self) -> int:
        return sum(len(data) for _, _, data in self.chunks)


@dataclass(frozen=True)
class EncodedImage:
    """An image's shard entry, ready for `ShardWriter.add_encoded`: arrays sorted by name, encoded
    attributes, and the codec that encoded them (a shard refuses another)."""

    arrays: tuple[EncodedArray, ...]
    attrs: list[tuple[str, Any]]
    codec: str
    level: int | None

    @property
    def nbytes(self) -> int:
        return sum(array.nbytes for array in self.arrays)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Back from an image process: every chunk in one shared-memory segment (wsss.io.shared_arrays).
        chunks = [data for array in self.arrays for _, _, data in array.chunks]
        packed = np.frombuffer(b"".join(chunks), dtype=np.uint8) if chunks else np.zeros(0, np.uint8)
        layout = [
            (array.name, array.shape, array.dtype, [(offset, mask, len(data)) for offset, mask, data in array.chunks], array.empty)
            for array in self.arrays
        ]
        return _unpacked, (shared(packed), layout, self.attrs, self.codec, self.level)


def _unpacked(packed: np.ndarray, layout: list[Any], attrs: list[tuple[str, Any]], codec: str, level: int | None) -> EncodedImage:
    data, position, arrays = packed.tobytes(), 0, []
    for name, shape, dtype, chunks, empty in layout:
        placed = []
        for offset, mask, size in chunks:
            placed.append((offset, mask, data[position : position + size]))
            position += size
        arrays.append(EncodedArray(name, shape, dtype, tuple(placed), empty))
    return EncodedImage(tuple(arrays), attrs, codec, level)


def encode_image(
    image_id: str,
    arrays: Mapping[str, np.ndarray],
    attrs: Mapping[str, Any],
    dtypes: Mapping[str, Any] | None = None,
    compression: str | None = "zstd",
    compression_level: int | None = None,
) -> EncodedImage:
    """What `ShardWriter.add(image_id, arrays, attrs, dtypes)` stores, encoded with a shard's codec.

    Raises:
        StoreError: whatever `add` would refuse (names, dtypes, overflow, attribute sizes).
    """
    codec = codec_name(compression)
    level = codec_level(codec, compression_level)
    where = f"image {validate_name(image_id)!r}"
    prepared, encoded_attrs = prepare_image(where, arrays, attrs, dtypes)
    filters = dataset_filters(codec, level)
    # A name per call: HDF5 refuses to create a file under the name of one still open (threads).
    name = f"wsss-encode-{threading.get_ident()}-{next(_SCRATCH_NAMES)}"
    encoded = []
    with h5py.File(name, "w", driver="core", backing_store=False, libver=LIBVER) as scratch:
        for array_name, data in prepared.items():
            options = dataset_options(data.shape, data.dtype, filters)
            if options["chunks"] is None:
                encoded.append(EncodedArray(array_name, data.shape, data.dtype.str, empty=data))
                continue
            dataset = scratch.create_dataset(array_name, data=data, **options)
            dataset.id.flush()  # the chunks leave HDF5's chunk cache through the filters
            chunk_shape = options["chunks"]
            offsets = itertools.product(*(range(0, size, step) for size, step in zip(data.shape, chunk_shape, strict=False)))
            chunks = tuple((offset, *dataset.id.read_direct_chunk(offset)) for offset in offsets)
            encoded.append(EncodedArray(array_name, data.shape, data.dtype.str, chunks))
    return EncodedImage(tuple(encoded), encoded_attrs, codec, level)
