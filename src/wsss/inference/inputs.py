"""The images a person hands `wsss predict` / `wsss segment`: files, folders, globs and file lists.

Every argument is resolved to image files before any model is loaded: a folder gives its image
files (by suffix, sorted, not recursive), a pattern with `*`, `?` or `[` gives its matches (`**`
recursive), any other path is taken as an image file (a missing one fails as that image), and
`--file-list` names one path per line (relative to the list's folder; blank lines and `# ...`
skipped). An image's outputs are named by its file stem, checked as the datasets check ids
(`wsss.datasets.validate_image_id`); a stem that repeats an earlier one (also up to case or
Unicode normalisation: one file on macOS/Windows) is that image's failure, the first one is kept.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wsss.datasets.ids import collision_reason, id_collision_key
from wsss.datasets.records import read_text, validate_image_id
from wsss.errors import DatasetError
from wsss.failures import FailureReport

# What a folder argument contributes (anything named explicitly is tried whatever its suffix).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"})
GLOB_CHARACTERS = frozenset("*?[")
# A file list longer than this is refused before it is read (one path per line: ~10 million paths).
MAX_FILE_LIST_BYTES = 1 << 30


@dataclass(frozen=True)
class ImageInput:
    """One image to segment: its output name (the file stem) and its file."""

    name: str
    path: Path


def _folder_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _expand(argument: str) -> list[Path]:
    """The files one command-line argument stands for.

    Raises:
        DatasetError: for a pattern that matches no file and a folder without images (a usage
            error: nothing to run, said before any work).
    """
    path = Path(argument)
    if path.is_dir():
        found = _folder_images(path)
        if not found:
            raise DatasetError(f"{path}: folder holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return found
    if GLOB_CHARACTERS & set(argument) and not path.exists():
        found = sorted(Path(match) for match in glob.glob(argument, recursive=True) if Path(match).is_file())
        if not found:
            raise DatasetError(f"{argument}: the pattern matches no file")
        return found
    return [path]


def read_file_list(path: Path) -> list[Path]:
    """The paths of a file list (UTF-8, one per line), relative ones joined to the list's folder.

    Raises:
        DatasetError: naming the list when it is missing, too large or not UTF-8.
    """
    try:
        size = path.stat().st_size
    except OSError as error:
        raise DatasetError(f"{path}: file list not found ({error.strerror or error})") from None
    if size > MAX_FILE_LIST_BYTES:
        raise DatasetError(f"{path}: file list is {size} bytes, more than {MAX_FILE_LIST_BYTES}")
    lines = (line.strip() for line in read_text(path, "file list").splitlines())
    return [path.parent / line for line in lines if line and not line.startswith("#")]


def collect_images(arguments: Sequence[str], file_list: Path | None, failures: FailureReport) -> list[ImageInput]:
    """Every image named by the arguments and the file list, in order, without repeats; a file
    whose name cannot name outputs is recorded in `failures` instead.

    Raises:
        DatasetError: when nothing at all is named, a pattern matches nothing, a folder has no
            image, or the file list cannot be read (usage errors, before any work).
    """
    paths = [found for argument in arguments for found in _expand(argument)]
    if file_list is not None:
        paths += read_file_list(file_list)
    if not paths:
        raise DatasetError("no images given: name image files, folders, glob patterns or --file-list")
    images: list[ImageInput] = []
    seen_files: set[Path] = set()
    names: dict[str, tuple[str, Path]] = {}
    for path in paths:
        try:
            resolved = path.resolve() if path.exists() else path.absolute()
        except (OSError, ValueError) as error:  # a NUL byte or an over-long name in a file list
            failures.add(str(path)[:200], "--file-list", f"unusable path ({getattr(error, 'strerror', None) or error})")
            continue
        if resolved in seen_files:  # the same file named twice (a folder and a glob): once is enough
            continue
        seen_files.add(resolved)
        name = path.stem
        try:
            validate_image_id(name, "image name")
        except DatasetError as error:
            failures.add(str(path), str(path), str(error))
            continue
        earlier = names.setdefault(id_collision_key(name), (name, path))
        if earlier[1] != path:
            reason = (
                f"its outputs would overwrite those of {earlier[1]} (same name {name!r})"
                if earlier[0] == name
                else collision_reason(name, earlier[0])
            )
            failures.add(str(path), str(path), reason)
            continue
        images.append(ImageInput(name, path))
    return images
