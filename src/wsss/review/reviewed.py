"""Images a person looked at and accepted: the review queue's memory (`reviewed.json`).

Human input like `corrections/` (committed with git, never written by a stage, validated when
read), kept in its own file at the repository root (`wsss.catalog.ArtifactLayout.reviewed`):
inside `corrections/` it would make DVC retrain on every mark, since `train` depends on that
folder. `wsss review --mark-reviewed ID ...` writes it, `--unmark-reviewed ID ...` takes marks back.

    {"about": "...", "images": {"<image_id>": {"image_sha256": "...", "mask_sha256": "...", "time": "..."}}}

A mark holds for the mask the person saw: the image's bytes (the manifest's SHA-256) and the
pseudo mask file (`masks/<id>.png`) it was made on. When either changes (new photo bytes, a
relabel that rewrites the mask) the mark no longer applies, the image returns to the queue, and
the run page lists the mark as stale with the reason. Corrected images (`corrections/`) leave the
queue without a mark.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeGuard

from wsss.bounded_parsing import MAX_RECORD_BYTES, ParseError, read_json_file
from wsss.errors import WsssError
from wsss.io.atomic import write_text_atomic

ABOUT = (
    "Images a person reviewed and accepted (wsss review --mark-reviewed); they leave the worst-first "
    "queue while the image and its pseudo mask are unchanged. Human input: commit it."
)
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _is_sha256(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


class ReviewedError(WsssError):
    """`reviewed.json` could not be read or a mark could not be made (names the file or id and why)."""


@dataclass(frozen=True)
class ReviewMark:
    """One image marked reviewed: on which image bytes and which pseudo mask, and when (UTC)."""

    image_id: str
    image_sha256: str
    mask_sha256: str
    time: str

    def describe(self) -> str:
        return f"reviewed (marked {self.time})"


class ReviewedStore:
    """The marks in one `reviewed.json` (absent = no image marked)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def read(self) -> dict[str, ReviewMark]:
        """Every mark, checked: a malformed file raises one error naming it and what is wrong.

        Raises:
            ReviewedError: unreadable JSON, or an entry that is not a mark.
        """
        if not self.path.is_file():
            return {}
        try:
            document = read_json_file(self.path, max_bytes=MAX_RECORD_BYTES)
        except (OSError, ParseError, ValueError) as error:
            raise ReviewedError(f"{self.path}: unreadable ({error})") from error
        images = document.get("images") if isinstance(document, dict) else None
        if not isinstance(images, dict):
            raise ReviewedError(f"{self.path}: expected an object with an 'images' object of marks")
        marks = {}
        for image_id, entry in images.items():
            fields = entry if isinstance(entry, dict) else {}
            image_sha256, mask_sha256, time = (fields.get(key) for key in ("image_sha256", "mask_sha256", "time"))
            if not (_is_sha256(image_sha256) and _is_sha256(mask_sha256) and isinstance(time, str)):
                raise ReviewedError(
                    f"{self.path}: images.{image_id}: a mark needs image_sha256 and mask_sha256 "
                    "(64 hex digits) and time; remove the entry or mark the image again"
                )
            marks[image_id] = ReviewMark(image_id, image_sha256, mask_sha256, time)
        return marks

    def write(self, marks: Mapping[str, ReviewMark]) -> None:
        images = {image_id: {k: v for k, v in asdict(mark).items() if k != "image_id"} for image_id, mark in sorted(marks.items())}
        write_text_atomic(self.path, json.dumps({"about": ABOUT, "images": images}, indent=1) + "\n")

    def mark(self, image_ids: Iterable[str], current: Mapping[str, tuple[str, str]], now: datetime | None = None) -> list[ReviewMark]:
        """Mark images reviewed on their current `(image sha256, pseudo mask sha256)`; every id is
        checked before anything is written.

        Raises:
            ReviewedError: naming each id that has no image with a pseudo mask.
        """
        ids = list(dict.fromkeys(image_ids))
        unknown = [i for i in ids if i not in current]
        if unknown:
            raise ReviewedError(f"--mark-reviewed: no image with a pseudo mask is called {', '.join(map(repr, unknown))}")
        stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        marks = self.read()
        added = [ReviewMark(i, *current[i], stamp) for i in ids]
        marks.update({mark.image_id: mark for mark in added})
        self.write(marks)
        return added

    def unmark(self, image_ids: Iterable[str]) -> list[str]:
        """Take marks back (the images return to the queue); returns the ids that had one."""
        marks = self.read()
        removed = [i for i in dict.fromkeys(image_ids) if marks.pop(i, None) is not None]
        if removed:
            self.write(marks)
        return removed


def sort_marks(marks: Mapping[str, ReviewMark], current: Mapping[str, tuple[str, str]]) -> tuple[dict[str, ReviewMark], list[dict[str, Any]]]:
    """The marks that hold (same image bytes and pseudo mask as when marked), and the others with why."""
    holding, stale = {}, []
    for image_id, mark in sorted(marks.items()):
        if image_id not in current:
            stale.append({"image_id": image_id, "reason": "no such image with a pseudo mask in this run"})
        elif current[image_id][0] != mark.image_sha256:
            stale.append({"image_id": image_id, "reason": "the image changed since it was marked reviewed"})
        elif current[image_id][1] != mark.mask_sha256:
            stale.append({"image_id": image_id, "reason": "the pseudo mask changed since it was marked reviewed (back in the queue)"})
        else:
            holding[image_id] = mark
    return holding, stale
