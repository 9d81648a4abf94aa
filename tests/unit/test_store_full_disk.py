"""A full disk while a shard is written: one StoreError naming the shard, no partial file, nothing published lost.

Two ways: ENOSPC injected at the write, flush (fsync) and rename points of `ShardWriter` and of
the publishing copy (both through `wsss.io.atomic`, the one atomic-write helper); and a real full
disk, a 256 kB tmpfs mounted in a private mount namespace (`unshare`), where h5py used to leave
HDF5 with data it could not flush and the process died with a segmentation fault on exit.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from wsss.errors import StoreError
from wsss.io import CamStore, ShardWriter, atomic, shard_path, shard_writer

ATTENTION = (np.arange(48 * 48, dtype=np.float32).reshape(48, 48) % 64) / 64.0


def disk_full(*args: Any) -> Any:
    raise OSError(errno.ENOSPC, "No space left on device")


def half_then_full() -> Callable[[int, Any], int]:
    """`os.write` that writes part of the first buffer, then fails: a partial file is on disk."""
    calls = []

    def write(descriptor: int, data: Any) -> int:
        calls.append(len(data))
        if len(calls) > 1:
            disk_full()
        return os.write(descriptor, bytes(data)[: len(data) // 2])

    return write


def faulty_os(point: str) -> SimpleNamespace:
    """The `os` module as the atomic-write helper (`wsss.io.atomic`) sees it, failing with ENOSPC at one point."""
    names = ("open", "close", "write", "fsync", "replace", "O_WRONLY", "O_CREAT", "O_TRUNC", "O_RDONLY", "name")
    functions = {name: getattr(os, name) for name in names}
    failing = {"write": ("write", half_then_full()), "flush": ("fsync", disk_full), "rename": ("replace", disk_full)}
    name, replacement = failing[point]
    functions[name] = replacement
    return SimpleNamespace(**functions)


def published_store(directory: Path) -> tuple[Path, str]:
    path = shard_path(directory, 0)
    with ShardWriter(path, {"run": "first"}) as writer:
        writer.add("a", {"attention": ATTENTION}, {})
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("point", ["write", "flush", "rename"])
def test_disk_full_while_writing_a_shard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str) -> None:
    path, digest = published_store(tmp_path)
    monkeypatch.setattr(atomic, "os", faulty_os(point))
    with pytest.raises(StoreError) as raised, ShardWriter(path, {"run": "second"}) as writer:
        for index in range(4):
            writer.add(f"img{index}", {"attention": ATTENTION + index}, {})
    message = str(raised.value)
    assert message.startswith(f"{path}: shard not written, nothing published: the disk is full"), message
    assert "No space left on device" in message and raised.value.__cause__ is None  # one error, no chained trace
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-00000.h5"]  # no partial file
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest  # the published shard is untouched
    monkeypatch.undo()
    assert CamStore(tmp_path).image_ids() == ["a"] and CamStore(tmp_path).verify() == []


def test_disk_full_while_publishing_a_shard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    output, scratch = tmp_path / "output", tmp_path / "scratch"
    destination, digest = published_store(output)
    source, _ = published_store(scratch)
    monkeypatch.setattr(atomic.shutil, "copyfileobj", disk_full)
    with pytest.raises(StoreError, match=rf"^{destination}: not published, the previous file is kept: the disk is full"):
        shard_writer.publish_copy(source, destination)
    monkeypatch.undo()
    assert sorted(p.name for p in output.iterdir()) == ["shard-00000.h5"]
    assert hashlib.sha256(destination.read_bytes()).hexdigest() == digest
    assert shard_writer.publish_copy(source, destination) == destination


CHILD = textwrap.dedent(
    """
    import hashlib, os, sys
    import numpy as np
    from wsss.errors import StoreError
    from wsss.io import CamStore, ShardWriter, shard_path

    directory = sys.argv[1]
    path = shard_path(directory, 0)
    with ShardWriter(path, {"run": "first"}) as writer:
        writer.add("a", {"attention": np.ones((48, 48), np.float32)}, {})
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    rng = np.random.default_rng(0)  # random maps barely compress: 40 x 80 kB cannot fit in 256 kB
    try:
        with ShardWriter(path, {"run": "second"}) as writer:
            for index in range(40):
                writer.add(f"img{index:03d}", {"attention": rng.random((200, 200))}, {})
        print("NO ERROR")
    except StoreError as error:
        print("ERROR", error)
    print("FILES", sorted(os.listdir(directory)))
    print("KEPT", hashlib.sha256(path.read_bytes()).hexdigest() == digest, CamStore(directory).verify())
    """
)


def test_real_full_disk_gives_one_error_and_no_crash(tmp_path: Path) -> None:
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        pytest.skip("needs Linux `unshare` to mount a private tmpfs")
    mount = tmp_path / "tiny"
    mount.mkdir()
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    command = [
        unshare, "--mount", "--map-root-user", "sh", "-c",
        'mount -t tmpfs -o size=256k tmpfs "$1" && exec "$2" "$3" "$1"', "sh", str(mount), sys.executable, str(script),
    ]  # fmt: skip
    probe = subprocess.run(
        [unshare, "--mount", "--map-root-user", "sh", "-c", f'mount -t tmpfs -o size=4k tmpfs "{mount}"'], capture_output=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a private tmpfs here: {probe.stderr.decode().strip()}")
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr[-2000:])  # -11 was the segfault
    lines = result.stdout.splitlines()
    shard = mount / "shard-00000.h5"
    assert lines[0].startswith(f"ERROR {shard}: shard not written, nothing published: the disk is full"), lines
    assert lines[1] == "FILES ['shard-00000.h5']" and lines[2] == "KEPT True []", lines
    assert "Exception ignored" not in result.stderr, result.stderr[-2000:]
