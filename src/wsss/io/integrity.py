"""Read-side checks: the store reads only HDF5 objects of the kind it writes itself.

HDF5 readers follow soft and external links, read "external storage" (raw bytes of any other
file, e.g. /etc/passwd, presented as the dataset's values) and virtual datasets (VDS, mapping
other files), and allocate whatever shape a dataset declares. A shard is therefore checked
object by object before anything is read: every link must be a hard link held once, every
array a chunked dataset inside the shard (or an empty contiguous one) using only the store's
filters including the fletcher32 checksum, with every chunk present (a missing chunk would read
as zeros, unchecked), and small enough to fit in memory. Each refusal names what and why.
"""

from __future__ import annotations

import math
import os

import h5py

from wsss.errors import StoreError
from wsss.io.codecs import STORE_FILTERS

_FLETCHER32 = h5py.h5z.FILTER_FLETCHER32


def checked_group(parent: h5py.Group, name: str, where: str) -> h5py.Group:
    """The group `parent[name]` once its link and object are ones the store writes."""
    _check_hard_link(parent, name, where)
    group = parent[name]
    if not isinstance(group, h5py.Group):
        raise StoreError(f"{where}: is a {type(group).__name__}, not a group; refused")
    _check_single_link(group, where)
    return group


def checked_dataset(group: h5py.Group, name: str, where: str, read_bytes_per_item: int | None, max_bytes: int | None) -> h5py.Dataset:
    """The dataset `group[name]` once it passes every check; nothing of its data is read.

    Args:
        read_bytes_per_item: bytes per element the caller's read will allocate on top of the
            stored itemsize (4 when float16 is converted to float32), None for none.
        max_bytes: the most memory one array may need; None = no limit.
    """
    _check_hard_link(group, name, where)
    dataset = group[name]
    if not isinstance(dataset, h5py.Dataset):
        raise StoreError(f"{where}: is a {type(dataset).__name__}, not an array; refused")
    _check_single_link(dataset, where)
    if dataset.is_virtual:
        raise StoreError(f"{where}: is a virtual dataset (VDS) mapping other files; refused, the store writes none")
    if dataset.external:
        files = sorted({str(entry[0]) for entry in dataset.external})
        raise StoreError(f"{where}: its values are stored outside the shard in {files}; refused")
    _check_dtype_and_size(dataset, where, read_bytes_per_item, max_bytes)
    _check_layout_and_filters(dataset, where)
    return dataset


def available_memory_bytes() -> int | None:
    """Memory the system can still give (Linux MemAvailable), or None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _check_hard_link(parent: h5py.Group, name: str, where: str) -> None:
    link = parent.get(name, getlink=True)
    if link is None:
        raise StoreError(f"{where}: is missing from the shard")
    if isinstance(link, h5py.ExternalLink):
        raise StoreError(f"{where}: is an external link to {link.filename}:{link.path}; refused, the store writes no links")
    if isinstance(link, h5py.SoftLink):
        raise StoreError(f"{where}: is a soft link to {link.path}; refused, the store writes no links")
    if not isinstance(link, h5py.HardLink):
        raise StoreError(f"{where}: is a {type(link).__name__}, not a plain object; refused")


def _check_single_link(obj: h5py.HLObject, where: str) -> None:
    # A second hard link would let one image's name point at another image's data.
    count = h5py.h5o.get_info(obj.id).rc
    if count != 1:
        raise StoreError(f"{where}: is reachable under {count} names (extra hard links); refused")


def _check_dtype_and_size(dataset: h5py.Dataset, where: str, read_bytes_per_item: int | None, max_bytes: int | None) -> None:
    dtype = dataset.dtype
    if dtype.kind not in "biuf" or dtype.fields is not None or dataset.ndim < 1:
        raise StoreError(f"{where}: dtype {dtype} with {dataset.ndim} dimensions is not a numeric array the store writes; refused")
    items = math.prod(dataset.shape)
    needed = items * (dtype.itemsize + (read_bytes_per_item or 0))
    if max_bytes is not None and needed > max_bytes:
        raise StoreError(
            f"{where}: declares shape {dataset.shape} {dtype}, {_gib(needed)} to read, more than the {_gib(max_bytes)} of memory available; refused"
        )


def _check_layout_and_filters(dataset: h5py.Dataset, where: str) -> None:
    plist = dataset.id.get_create_plist()
    layout = plist.get_layout()
    if dataset.size == 0:
        if layout != h5py.h5d.CONTIGUOUS:
            raise StoreError(f"{where}: empty array with layout {layout} (the store writes empty arrays contiguous); refused")
        return
    if layout != h5py.h5d.CHUNKED:
        kind = {h5py.h5d.CONTIGUOUS: "contiguous", h5py.h5d.COMPACT: "compact"}.get(layout, str(layout))
        raise StoreError(f"{where}: {kind} layout without checksum (the store writes chunked, checksummed arrays); refused")
    filters = [plist.get_filter(index)[0] for index in range(plist.get_nfilters())]
    unknown = sorted(code for code in filters if code not in STORE_FILTERS)
    if unknown:
        raise StoreError(f"{where}: uses HDF5 filters {unknown} that the store never writes; refused")
    if _FLETCHER32 not in filters:
        raise StoreError(f"{where}: has no fletcher32 checksum, so damage could not be detected; refused")
    expected = math.prod(math.ceil(size / chunk) for size, chunk in zip(dataset.shape, dataset.chunks, strict=True))
    stored = dataset.id.get_num_chunks()
    if stored != expected:
        raise StoreError(
            f"{where}: holds {stored} of the {expected} chunks its shape {dataset.shape} needs (missing chunks would read as zeros); refused"
        )


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB"
