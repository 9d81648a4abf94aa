"""One pipeline run per artifacts directory: an exclusive lock naming its owner.

`python -m flows.<stage>` and `flows.pipeline` take the lock for the whole run, so a second
run against the same artifacts is refused at once instead of interleaving writes with the
first. The lock is an `flock` on `<artifacts>/.wsss-run.lock`, which the kernel releases when
its owner dies (even by SIGKILL), so a crashed run never blocks the next one; the file holds
the owner's pid, host, start time and command line, for the refusal message. A record left by
a dead owner is reported as a stale lock that was taken over.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsss.bounded_parsing import loads_json
from wsss.errors import RunLockedError

LOCK_NAME = ".wsss-run.lock"


def owner_record() -> dict[str, Any]:
    """This process as a lock owner: pid, hostname, UTC start time, command line."""
    return {
        "pid": os.getpid(),
        "hostname": socket.gethostname(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(sys.argv),
    }


def parse_owner(text: str) -> dict[str, Any] | None:
    """The owner record stored in a lock file; None when empty or unreadable (half-written)."""
    try:
        owner = loads_json(text, "run lock")
    except ValueError:  # incl. ParseError: nesting bounded
        return None
    return owner if isinstance(owner, dict) else None


def describe_owner(owner: dict[str, Any] | None) -> str:
    if owner is None:
        return "an owner that has not written its record yet"
    return f"pid {owner.get('pid')} on {owner.get('hostname')}, started {owner.get('started_at')} ({owner.get('command')})"


@dataclass(frozen=True)
class HeldLock:
    """A lock this process holds.

    Attributes:
        path: the lock file.
        owner: the record written into it (this process).
        stale_owner: the record a dead previous owner left behind, if any (it was taken over).
    """

    path: Path
    owner: dict[str, Any]
    stale_owner: dict[str, Any] | None


def _read_descriptor(descriptor: int) -> str:
    os.lseek(descriptor, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(descriptor, 65536):
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


@contextmanager
def run_lock(directory: Path | str) -> Iterator[HeldLock]:
    """Hold the run lock of `directory` (created if missing) for the duration of the block.

    Raises:
        RunLockedError: naming the lock file and its live owner (pid, host, start time, command).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            current = parse_owner(_read_descriptor(descriptor))
            raise RunLockedError(f"{path}: another pipeline run is using {directory}: {describe_owner(current)}; wait for it to finish") from None
        previous = parse_owner(_read_descriptor(descriptor))
        owner = owner_record()
        # Only a dead process leaves a record behind while the lock is free.
        stale = previous if previous is not None and previous.get("pid") != owner["pid"] else None
        os.ftruncate(descriptor, 0)
        os.lseek(descriptor, 0, os.SEEK_SET)
        os.write(descriptor, (json.dumps(owner, sort_keys=True) + "\n").encode())
        os.fsync(descriptor)
        try:
            yield HeldLock(path, owner, stale)
        finally:
            # Emptied, not deleted: deleting would let a waiter lock a file no one else sees.
            os.ftruncate(descriptor, 0)
    finally:
        os.close(descriptor)  # closing releases the flock
