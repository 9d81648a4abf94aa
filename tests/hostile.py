"""Hostile inputs built small: decompression bombs that are a few hundred KB on disk, and a runner
that tries a crafted case in a child process with a memory ceiling (a segfault, or an allocation
of the declared size, then fails that one test instead of the suite or the shared machine)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def zero_zlib_stream(size: int, piece: int = 1 << 20) -> bytes:
    """A zlib stream of `size` zero bytes, built without compressing them all: after a full flush the
    compressor starts afresh, so every further piece compresses to the same bytes; the checksum of
    n zero bytes is adler32 = (n mod 65521) << 16 | 1."""
    count, rest = divmod(size, piece)
    compressor = zlib.compressobj(9)
    blocks = []
    if count:
        blocks.append(compressor.compress(bytes(piece)) + compressor.flush(zlib.Z_FULL_FLUSH))  # with the zlib header
    if count > 1:
        blocks.append((compressor.compress(bytes(piece)) + compressor.flush(zlib.Z_FULL_FLUSH)) * (count - 1))
    ending = compressor.compress(bytes(rest)) + compressor.flush()
    return b"".join(blocks) + ending[:-4] + struct.pack(">I", ((size % 65521) << 16) | 1)


def bomb_png(width: int, height: int) -> bytes:
    """An 8-bit greyscale PNG of `width` x `height` zero pixels whose data is a tiny share of its
    decoded size (32768 x 32768, 1 GiB decoded, is about 1 MB on disk)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zero_zlib_stream(height * (width + 1))  # each row: filter byte 0, then zero pixels
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def run_bounded(code: str, extra_memory: int = 512 * 2**20, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run `code` in a child Python (this checkout's `src` first) whose address space may grow by at
    most `extra_memory` bytes past what its imports took: `code` must call the `limit_memory()` it is
    given right before the crafted case. Returns the finished process (a segfault is returncode -11)."""
    prelude = textwrap.dedent(f"""
        import resource

        def limit_memory():
            with open("/proc/self/statm") as handle:
                pages = int(handle.read().split()[0])
            ceiling = pages * resource.getpagesize() + {extra_memory}
            resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
