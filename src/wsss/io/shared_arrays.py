"""Large arrays between a stage process and its image processes through shared memory, not the pipe.

A process pool pickles what it sends through a pipe: for the 2.4 MB of a VOC-size network input,
~2.2 ms of the receiving process's CPU and ~3.7 ms of the sender's (measured with a spawned
ProcessPoolExecutor on the project machine), more than the stage process's whole budget per image
on a GPU host. `SharedArray(array)` pickles as the name of a file in /dev/shm (memory, not disk)
that holds the array's bytes: the sender writes them once; the receiver maps the file
copy-on-write (no copy, pages already in memory) and removes its name at once, so the memory goes
when the array does and no file outlives its one reading. Files whose reader died (a crashed
image process) are removed by `remove_orphans()` when the stage process ends its pool (names
carry the writer's pid). Without /dev/shm arrays are pickled as they are.
"""

from __future__ import annotations

import itertools
import mmap
import os
from pathlib import Path
from typing import Any

import numpy as np

# Arrays below this travel pickled: a file's setup costs more than copying them.
MIN_SHARED_BYTES = 256 * 1024
SHARED_MEMORY = Path("/dev/shm")  # noqa: S108 (files named by this process, opened exclusively)
PREFIX = "wsss-"
_NAMES = itertools.count()


class SharedArray:
    """An array that crosses to another process in shared memory; unpickled, it is a numpy array."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = np.ascontiguousarray(array)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        path = SHARED_MEMORY / f"{PREFIX}{os.getpid()}-{next(_NAMES)}"
        with open(path, "xb") as handle:  # tmpfs: the kernel copies the bytes into memory pages once
            handle.write(self.array.data.cast("B"))  # the buffer itself (contiguous above), no copy
        return _mapped, (str(path), self.array.shape, self.array.dtype.str)


def shared(array: np.ndarray) -> np.ndarray | SharedArray:
    """`array` as it should travel: in shared memory when large (and /dev/shm exists), else as it is."""
    return SharedArray(array) if array.nbytes >= MIN_SHARED_BYTES and array.size and SHARED_MEMORY.is_dir() else array


def _mapped(path: str, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        # Private and writable: torch may take it as it is; writes would copy the page, never reach the file.
        mapping = mmap.mmap(descriptor, os.fstat(descriptor).st_size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(descriptor)
        os.unlink(path)
    return np.frombuffer(mapping, dtype=np.dtype(dtype)).reshape(shape)


def remove_orphans() -> list[str]:
    """Remove the files nobody will read: this process's own (called when its image processes have
    ended) and those of writers that are gone (an image process that died). Their names."""
    removed = []
    for path in sorted(SHARED_MEMORY.glob(f"{PREFIX}*-*")) if SHARED_MEMORY.is_dir() else ():
        writer = path.name[len(PREFIX) :].split("-", 1)[0]
        if writer.isdigit() and (int(writer) == os.getpid() or not _alive(int(writer))):
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
