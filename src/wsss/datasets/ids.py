"""Image ids that collide on case-insensitive or normalising file systems (macOS, Windows).

Ids become file names in every stage (`<id>.png`, HDF5 keys); "Cat" and "cat", or "café" in NFC
and NFD form, are two files on Linux but one on macOS/Windows, where one would overwrite the
other. Loaders keep the first and refuse the later one, naming both.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from wsss.errors import DatasetError


def id_collision_key(image_id: str) -> str:
    """The form under which case-insensitive or normalising file systems (macOS, Windows) compare names."""
    return unicodedata.normalize("NFC", image_id).casefold()


def colliding_ids(image_ids: Iterable[str]) -> list[tuple[int, str, str]]:
    """`(position, id, earlier id)` for each id that differs from an earlier one only by case or
    Unicode normalisation ("Cat" after "cat", "e\u0301" after "\u00e9"); exact repeats are not listed."""
    first: dict[str, str] = {}
    found = []
    for position, image_id in enumerate(image_ids):
        earlier = first.setdefault(id_collision_key(image_id), image_id)
        if earlier != image_id:
            found.append((position, image_id, earlier))
    return found


def collision_reason(image_id: str, earlier: str) -> str:
    """Why an id colliding with an earlier one is refused (names both)."""
    return (
        f"image id {image_id!r} differs from the earlier id {earlier!r} only by case or Unicode "
        "normalisation; their files would collide on macOS/Windows file systems"
    )


def check_no_colliding_ids(image_ids: Iterable[str], source: str) -> None:
    """DatasetError naming `source` and both ids of the first case/normalisation collision."""
    for _, image_id, earlier in colliding_ids(image_ids):
        raise DatasetError(f"{source}: {collision_reason(image_id, earlier)}")
