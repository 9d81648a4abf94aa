"""The one way this project writes a file: into a short temporary name beside it, fsync, rename.

A reader (or a run killed at any instant) sees either the previous complete file or the new
complete one, never a torn one, and the rename survives a power cut (the file and then its
directory are fsync'ed). The temporary name is short (`.tmp-<12 hex>`), so an output whose own
name is at the file-system limit (a 250-character image id + ".png") can still be written.
A failed write (full disk, permissions) deletes the temporary file, leaves the previous output
in place and raises one `ArtifactWriteError` naming the file.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from wsss.errors import ArtifactWriteError

TEMPORARY_PREFIX = ".tmp-"
COPY_BLOCK_BYTES = 16 * 1024 * 1024


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class AtomicFile:
    """A pending replacement of `path`: write `temporary`, then `commit()` (or `discard()`).

    For writers that own the file handle themselves (h5py, safetensors); others use
    `atomic_path` or the `write_*_atomic` functions.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.temporary = self.path.with_name(TEMPORARY_PREFIX + secrets.token_hex(6))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise write_error(self.path, error) from error

    def write(self, data: bytes) -> None:
        """Write `data` as the temporary file's whole content (a short write is retried)."""
        try:
            descriptor = os.open(self.temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(descriptor, view) :]
            finally:
                os.close(descriptor)
        except OSError as error:
            self.discard()
            raise write_error(self.path, error) from error

    def commit(self, durable: bool = True) -> None:
        """fsync the written temporary file, rename it onto `path`, fsync the directory.

        `durable=False` skips both fsyncs (still atomic for readers and a killed process, not for a
        power cut): for files that are rebuilt anyway, e.g. thousands of review-report panels.
        """
        try:
            if durable:
                _fsync(self.temporary)
            os.replace(self.temporary, self.path)
        except OSError as error:
            self.discard()
            raise write_error(self.path, error) from error
        if durable and os.name == "posix":
            try:
                _fsync(self.path.parent)  # makes the rename itself durable
            except OSError as error:
                raise ArtifactWriteError(f"{self.path}: written, but its directory could not be synced ({error.strerror or error})") from error

    def discard(self) -> None:
        """Remove the temporary file (a failed removal must not hide the error being reported)."""
        with suppress(OSError):
            self.temporary.unlink(missing_ok=True)


def write_error(path: Path, error: OSError) -> ArtifactWriteError:
    """One line naming the file that could not be written and why (e.g. no space left on device)."""
    return ArtifactWriteError(f"{path}: cannot write ({error.strerror or error}); the previous version, if any, is unchanged")


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on a clean exit it replaces `path` atomically."""
    pending = AtomicFile(path)
    try:
        yield pending.temporary
    except OSError as error:
        pending.discard()
        raise write_error(pending.path, error) from error
    except BaseException:
        pending.discard()
        raise
    pending.commit()


def write_bytes_atomic(path: Path | str, data: bytes, *, durable: bool = True) -> None:
    pending = AtomicFile(path)
    pending.write(data)
    pending.commit(durable)


def write_text_atomic(path: Path | str, text: str, *, durable: bool = True) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), durable=durable)


def write_json_atomic(path: Path | str, value: Any) -> None:
    """Deterministic JSON (sorted keys, one-space indent, trailing newline)."""
    write_text_atomic(path, json.dumps(value, indent=1, sort_keys=True, default=str) + "\n")


def copy_file_atomic(source: Path | str, destination: Path | str) -> None:
    with atomic_path(destination) as temporary, open(source, "rb") as reader, open(temporary, "wb") as writer:
        shutil.copyfileobj(reader, writer, COPY_BLOCK_BYTES)


def move_file_atomic(source: Path | str, destination: Path | str) -> None:
    """Move a complete, already durable file (written by `AtomicFile`) onto `destination`: a rename
    within one file system (then the directory is synced), else the atomic copy (and the source
    is removed). A reader sees the previous file or this one."""
    source, destination = Path(source), Path(destination)
    try:
        os.replace(source, destination)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise write_error(destination, error) from error
        copy_file_atomic(source, destination)
        source.unlink()
        return
    if os.name == "posix":
        try:
            _fsync(destination.parent)
        except OSError as error:
            raise ArtifactWriteError(f"{destination}: written, but its directory could not be synced ({error.strerror or error})") from error


def is_temporary(path: Path) -> bool:
    """A leftover of an interrupted atomic write (safe to delete while holding the run lock)."""
    return path.name.startswith(TEMPORARY_PREFIX)


def remove_leftover_temporaries(directories: Iterable[Path]) -> list[Path]:
    """Delete temporary files that interrupted writes left in `directories`; return them."""
    removed = []
    for directory in directories:
        if directory.is_dir():
            for path in sorted(directory.iterdir()):
                if path.is_file() and is_temporary(path):
                    path.unlink()
                    removed.append(path)
    return removed
