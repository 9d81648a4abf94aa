"""The pseudo-mask store, beside `CamStore`: per-image label PNGs, confidence maps and reuse keys.

Layout (`wsss.catalog.PseudoLayout`): `masks/<id>.png` (VOC palette, 255 = ignored), `raw/<id>.png`
(before the confidence filter), `confidence/<id>.npy` (float16), `keys/<id>.json` and
`summary.json`. An image's three files are written atomically, then its key file (the content
key + its summary row); the key is removed before the files are rewritten. An image is reused
only when its key file names the same key and all three files exist, so a run killed at any
point leaves every image either complete under its key or without a key (recomputed next time).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from wsss.bounded_parsing import read_json_file
from wsss.catalog import PseudoLayout
from wsss.io.atomic import is_temporary, write_bytes_atomic
from wsss.io.records import PseudoSummary
from wsss.palette import palette_png_bytes
from wsss.pseudo.labels import PseudoLabel
from wsss.relabel.history import archive_outputs


def png_bytes(rgb: np.ndarray) -> bytes:
    """An `(H, W, 3)` uint8 image (an overlay) as PNG."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def mask_row(image_id: str, label: PseudoLabel, tags: Sequence[str], source_sha256: str, ignore_index: int) -> dict[str, Any]:
    """The summary row of one mask: size, tags, ignored share, mean confidence, pixels per label."""
    values, counts = np.unique(label.labels, return_counts=True)
    return {
        "image_id": image_id,
        "size": [int(v) for v in label.labels.shape],
        "tags": list(tags),
        "ignored_fraction": round(float((label.labels == ignore_index).mean()), 6),
        "mean_confidence": round(float(label.confidence.mean()), 6),
        "label_pixels": {str(int(v)): int(c) for v, c in zip(values, counts, strict=True)},
        "source_sha256": source_sha256,
    }


class PseudoMaskStore:
    """Reads and writes one pass's pseudo masks (`layout.pseudo` or `layout.learned().pseudo`)."""

    def __init__(self, layout: PseudoLayout) -> None:
        self.layout = layout

    @property
    def root(self) -> Path:
        return self.layout.root

    def folders(self) -> list[Path]:
        return [self.layout.folder(kind) for kind in (*PseudoLayout.OUTPUTS, PseudoLayout.KEYS)]

    def reusable_row(self, image_id: str, key: str) -> dict[str, Any] | None:
        """The stored summary row when the image's outputs are complete under `key`, else None."""
        try:
            path = self.layout.output(PseudoLayout.KEYS, image_id)
            stored = read_json_file(path)
        except (OSError, ValueError):  # incl. ParseError: a damaged key only means recompute
            return None
        if not isinstance(stored, dict) or stored.get("key") != key:
            return None
        if not all(path.is_file() for path in self.layout.outputs(image_id).values()):
            return None
        row = stored.get("row")
        return row if isinstance(row, dict) else None

    def write(self, image_id: str, key: str, label: PseudoLabel, row: dict[str, Any]) -> None:
        """The image's mask, raw labels and confidence, then its key (the mark of completeness)."""
        self.layout.output(PseudoLayout.KEYS, image_id).unlink(missing_ok=True)
        paths = self.layout.outputs(image_id)
        write_bytes_atomic(paths[PseudoLayout.MASKS], palette_png_bytes(label.labels))
        write_bytes_atomic(paths[PseudoLayout.RAW], palette_png_bytes(label.raw_labels))
        write_bytes_atomic(paths[PseudoLayout.CONFIDENCE], npy_bytes(label.confidence.astype(np.float16)))
        record = json.dumps({"key": key, "row": row}, sort_keys=True) + "\n"
        write_bytes_atomic(self.layout.output(PseudoLayout.KEYS, image_id), record.encode())

    def has_mask(self, image_id: str) -> bool:
        return self.layout.output(PseudoLayout.MASKS, image_id).is_file()

    def image_ids(self) -> set[str]:
        """Images that have a mask file."""
        folder = self.layout.folder(PseudoLayout.MASKS)
        return {p.stem for p in folder.iterdir() if p.suffix == ".png"} if folder.is_dir() else set()

    def labels(self, image_id: str, raw: bool = False) -> np.ndarray:
        """`(H, W)` uint8 labels: the confidence-filtered mask, or the raw labels."""
        with Image.open(self.layout.output(PseudoLayout.RAW if raw else PseudoLayout.MASKS, image_id)) as handle:
            return np.asarray(handle, dtype=np.uint8)

    def confidence(self, image_id: str) -> np.ndarray:
        return np.load(self.layout.output(PseudoLayout.CONFIDENCE, image_id), allow_pickle=False)

    def read_summary(self) -> PseudoSummary | None:
        return PseudoSummary.read(self.layout.summary)

    def write_summary(self, summary: PseudoSummary) -> None:
        summary.write(self.layout.summary)

    def keep_only(self, image_ids: Iterable[str]) -> list[Path]:
        """Delete the outputs of every other image, and leftovers of interrupted writes; return them."""
        keep = set(image_ids)
        removed = []
        for folder in self.folders():
            for path in sorted(folder.iterdir()) if folder.is_dir() else ():
                if path.is_file() and (is_temporary(path) or path.name.endswith(".partial") or path.stem not in keep):
                    path.unlink()
                    removed.append(path)
        return removed

    def archive(self, image_ids: Iterable[str], destination: Path) -> list[Path]:
        """Copy the existing outputs of these images into `destination` (a relabel run's history)."""
        return archive_outputs(image_ids, self.root, PseudoLayout.OUTPUTS, destination)
