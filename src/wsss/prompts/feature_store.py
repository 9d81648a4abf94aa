"""Arrays kept by content key in a folder (`<key>.npy`): the prompts stage's image features and
prompt text embeddings, which a later run reads back instead of running CLIP again.

A file is written atomically and read back exactly (`.npy`, no pickle), so a reused array is
bit for bit the one computed. An unreadable file counts as missing (it is computed again).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from wsss.io.atomic import is_temporary, write_bytes_atomic


class FeatureStore:
    """`<key>.npy` files in one folder (created on first use)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        """The stored array, or None when missing or unreadable."""
        try:
            return np.load(self.path(key), allow_pickle=False)
        except (OSError, ValueError):
            return None

    def put(self, key: str, array: np.ndarray) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        write_bytes_atomic(self.path(key), buffer.getvalue(), durable=False)

    def keep_only(self, keys: Iterable[str]) -> int:
        """Delete every other file (and leftovers of interrupted writes); returns how many."""
        keep = {self.path(key).name for key in keys}
        removed = 0
        for path in sorted(self.folder.iterdir()) if self.folder.is_dir() else ():
            if path.name not in keep or is_temporary(path):
                path.unlink(missing_ok=True)
                removed += 1
        return removed
