"""Image records, dataset manifests and the path/id checks every dataset adapter shares.

A manifest lists, per image, its id, its image-level tags and paths *relative to the dataset
root* (POSIX strings), so that a manifest stays valid when the tree is moved and never points
outside it. Everything that reaches the file system goes through `safe_join`, which refuses
absolute paths and paths that resolve (symlinks included) outside the root.

Ground truth either belongs to the dataset (`ground_truth_root="dataset"`, a PNG under the dataset
root) or was derived from it by `prepare` (`"derived"`, e.g. COCO masks rasterised from the
instances JSON), in which case the path is relative to the folder of derived label maps that the
caller names; `wsss.datasets.ground_truth` resolves and reads both.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from PIL import Image, UnidentifiedImageError

from wsss.bounded_parsing import MAX_DATASET_BYTES, ParseError, loads_json, read_text_file
from wsss.datasets.ids import check_no_colliding_ids
from wsss.errors import DatasetError

MANIFEST_FORMAT = "wsss.datasets.manifest"
MANIFEST_VERSION = 2
# Version 1 had no `ground_truth_root` (all ground truth was in the dataset); still readable.
_READABLE_VERSIONS = (1, 2)
GROUND_TRUTH_ROOTS = ("dataset", "derived")
MAX_ID_LENGTH = 255
_SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
_HASH_CHUNK_BYTES = 1 << 20


def validate_image_id(image_id: str, what: str = "image id") -> str:
    """Check that an id can serve as a single file-name component; return it unchanged.

    Ids become file names (`JPEGImages/<id>.jpg`, `<id>_mask.png`), so anything that could
    climb out of a directory or confuse a file system is refused.

    Raises:
        DatasetError: naming the id and the reason.
    """
    if not isinstance(image_id, str):
        raise DatasetError(f"{what} {image_id!r}: must be a string, not {type(image_id).__name__}")
    reason = None
    if not image_id:
        reason = "is empty"
    elif len(image_id) > MAX_ID_LENGTH:
        reason = f"is longer than {MAX_ID_LENGTH} characters"
    elif "\x00" in image_id:
        reason = "contains a NUL character"
    elif "/" in image_id or "\\" in image_id:
        reason = "contains a path separator"
    elif image_id.startswith("."):
        # Covers "." and ".." as well as hidden files.
        reason = "starts with '.'"
    elif any("\udc80" <= char <= "\udcff" for char in image_id):
        # os.fsdecode's surrogate escapes: the file name's bytes are not UTF-8.
        reason = "is not valid UTF-8 (undecodable bytes in the file name)"
    elif not image_id.isprintable():
        reason = "contains non-printable characters"
    if reason is not None:
        raise DatasetError(f"{what} {image_id!r} {reason}")
    return image_id


def validate_relative_path(path: str, what: str = "path") -> str:
    """Check that `path` is a canonical, root-relative POSIX path; return it unchanged.

    Canonical means no empty, '.' or '..' components and no backslashes or drive letters, so
    that the same file always has the same manifest string on every platform.

    Raises:
        DatasetError: naming the path and the reason.
    """
    if not isinstance(path, str):
        raise DatasetError(f"{what} {path!r}: must be a string, not {type(path).__name__}")
    reason = None
    if not path:
        reason = "is empty"
    elif "\x00" in path:
        reason = "contains a NUL character"
    elif "\\" in path:
        reason = "contains a backslash (use '/')"
    elif path.startswith("/") or PureWindowsPath(path).drive:
        reason = "is absolute (paths must be relative to the dataset root)"
    elif ".." in path.split("/"):
        reason = "contains a '..' component"
    elif str(PurePosixPath(path)) != path or path == ".":
        reason = "is not in canonical form (no empty or '.' components, no trailing '/')"
    elif any("\udc80" <= char <= "\udcff" for char in path):
        reason = "is not valid UTF-8 (undecodable bytes in the file name)"
    elif not path.isprintable():
        reason = "contains non-printable characters"
    if reason is not None:
        raise DatasetError(f"{what} {path!r} {reason}")
    return path


def safe_join(root: Path | str, relative: str | PurePosixPath) -> Path:
    """`root / relative`, refusing absolute paths and anything that resolves outside `root`.

    Symlinks are resolved before the check, so a link inside the tree that points elsewhere is
    refused as well.

    Raises:
        DatasetError: naming the path and the reason.
    """
    text = str(relative)
    if "\x00" in text:
        raise DatasetError(f"path {text!r} contains a NUL character")
    if not text:
        raise DatasetError("path is empty")
    if text.startswith(("/", "\\")) or PurePosixPath(text).is_absolute() or PureWindowsPath(text).drive:
        raise DatasetError(f"path {text!r} is absolute (paths must be relative to the dataset root {root})")
    root_resolved = Path(root).resolve()
    candidate = (root_resolved / text).resolve()
    if candidate != root_resolved and not candidate.is_relative_to(root_resolved):
        raise DatasetError(f"path {text!r} resolves to {candidate}, outside the dataset root {root_resolved}")
    return candidate


def file_sha256(path: Path | str) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks.

    Raises:
        DatasetError: naming the file when it cannot be read.
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(_HASH_CHUNK_BYTES), b""):
                digest.update(chunk)
    except OSError as error:
        raise DatasetError(f"{path}: cannot read ({error.strerror or error})") from error
    return digest.hexdigest()


def image_header_size(path: Path | str) -> tuple[int, int]:
    """`(width, height)` from the image header; the pixels are not decoded.

    Raises:
        DatasetError: naming the file when it is missing or not an image.
    """
    try:
        with warnings.catch_warnings():
            # Size limits are the caller's (reliability.max_image_pixels); the warning is noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as handle:
                width, height = handle.size
    except FileNotFoundError:
        raise DatasetError(f"{path}: image file not found") from None
    except Image.DecompressionBombError as error:
        raise DatasetError(f"{path}: refused as a decompression bomb ({error})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise DatasetError(f"{path}: not a readable image ({type(error).__name__}: {error})") from error
    return int(width), int(height)


def read_text(path: Path, what: str) -> str:
    """A UTF-8 text file (BOM tolerated) of at most `MAX_DATASET_BYTES` (checked before reading);
    DatasetError naming the file when missing, too large or undecodable."""
    try:
        return read_text_file(path, max_bytes=MAX_DATASET_BYTES, source=f"{path}: {what}")
    except FileNotFoundError:
        raise DatasetError(f"{path}: {what} not found") from None
    except ParseError as error:
        raise DatasetError(str(error)) from None
    except OSError as error:
        raise DatasetError(f"{path}: cannot read {what} ({error.strerror or error})") from error


def parse_json(text: str, source: str, object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None) -> Any:
    """JSON of a dataset file (`wsss.bounded_parsing.loads_json`: bounded nesting) whose errors name
    `source` with line and column.

    Raises:
        DatasetError: on a syntax error, nesting deeper than any dataset file needs, or a
            ValueError raised by `object_pairs_hook`.
    """
    try:
        return loads_json(text, source, object_pairs_hook=object_pairs_hook)
    except ParseError as error:
        raise DatasetError(str(error)) from None


@dataclass(frozen=True)
class ImageRecord:
    """One image of a dataset: id, tags and root-relative POSIX paths.

    Attributes:
        image_id: unique within the dataset; a valid file-name component.
        image_path: the image, relative to the dataset root.
        tags: image-level class names, unique, in the dataset's order; may be empty.
        ground_truth_path: the label PNG relative to its root (see `ground_truth_root`), or None.
        sha256: hex SHA-256 of the image file's bytes.
        width: image width in pixels, from the file header.
        height: image height in pixels, from the file header.
        ground_truth_root: "dataset" (relative to the dataset root) or "derived" (relative to
            the folder of label maps `prepare` derived, e.g. rasterised COCO masks).
    """

    image_id: str
    image_path: str
    tags: tuple[str, ...]
    ground_truth_path: str | None
    sha256: str
    width: int
    height: int
    ground_truth_root: str = "dataset"

    def __post_init__(self) -> None:
        validate_image_id(self.image_id)
        validate_relative_path(self.image_path, f"image path of {self.image_id!r}")
        if self.ground_truth_path is not None:
            validate_relative_path(self.ground_truth_path, f"ground-truth path of {self.image_id!r}")
        if self.ground_truth_root not in GROUND_TRUTH_ROOTS:
            raise DatasetError(f"{self.image_path}: ground_truth_root must be one of {GROUND_TRUTH_ROOTS}, got {self.ground_truth_root!r}")
        tags = tuple(self.tags) if isinstance(self.tags, (list, tuple)) else self.tags
        if not isinstance(tags, tuple) or not all(isinstance(tag, str) and tag for tag in tags):
            raise DatasetError(f"{self.image_path}: tags must be a sequence of non-empty strings, got {self.tags!r}")
        if len(set(tags)) != len(tags):
            raise DatasetError(f"{self.image_path}: repeated tags in {list(tags)}")
        # Frozen, so normalise the list a JSON reader hands in through object.__setattr__.
        object.__setattr__(self, "tags", tags)
        if not isinstance(self.sha256, str) or not _SHA256_PATTERN.fullmatch(self.sha256):
            raise DatasetError(f"{self.image_path}: sha256 must be 64 lowercase hex digits, got {self.sha256!r}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DatasetError(f"{self.image_path}: {name} must be a positive integer, got {value!r}")


def check_unique_ids(image_ids: Iterable[str], source: str) -> None:
    """DatasetError naming `source` and every id that occurs more than once."""
    repeated = sorted(image_id for image_id, count in Counter(image_ids).items() if count > 1)
    if repeated:
        raise DatasetError(f"{source}: duplicate image ids {repeated}")


def check_tags(image_id: str, tags: Sequence[str], class_names: Sequence[str], source: str, hint: str = "") -> None:
    """DatasetError naming `source`, the image and the first tag that is not a class name."""
    known = set(class_names)
    for tag in tags:
        if tag not in known:
            raise DatasetError(f"{source}: image {image_id!r} has unknown tag {tag!r}{hint}")


def unique_in_order(items: Iterable[str]) -> tuple[str, ...]:
    """Items without repeats, first occurrence kept (dict preserves insertion order)."""
    return tuple(dict.fromkeys(items))


def make_record(
    root: Path, image_id: str, image_path: str, tags: Sequence[str], ground_truth_path: str | None, ground_truth_root: str = "dataset"
) -> ImageRecord:
    """Record for a file under `root`: size from its header, SHA-256 of its bytes.

    Raises:
        DatasetError: naming the file when it is missing, unsafe or not an image.
    """
    validate_image_id(image_id)
    validate_relative_path(image_path, f"image path of {image_id!r}")
    absolute = safe_join(root, image_path)
    if not absolute.is_file():
        raise DatasetError(f"{absolute}: image file not found (image {image_id!r})")
    width, height = image_header_size(absolute)
    return ImageRecord(image_id, image_path, tuple(tags), ground_truth_path, file_sha256(absolute), width, height, ground_truth_root)


@dataclass(frozen=True)
class Manifest:
    """A dataset's records (sorted by image id) and its class list.

    Attributes:
        name: dataset name, e.g. "voc-train".
        records: one per image, sorted by `image_id`, ids unique, tags within `class_names`.
        class_names: foreground classes; label value in masks = index + 1.
    """

    name: str
    records: tuple[ImageRecord, ...]
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        source = f"manifest {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise DatasetError(f"{source}: name must be a non-empty string")
        class_names = tuple(self.class_names)
        if not class_names or not all(isinstance(name, str) and name for name in class_names):
            raise DatasetError(f"{source}: class names must be a non-empty list of non-empty strings")
        if len(set(class_names)) != len(class_names):
            raise DatasetError(f"{source}: class names are not unique")
        records = tuple(self.records)
        if not all(isinstance(record, ImageRecord) for record in records):
            raise DatasetError(f"{source}: records must be ImageRecord objects")
        check_unique_ids((record.image_id for record in records), source)
        check_no_colliding_ids(sorted(record.image_id for record in records), source)
        for record in records:
            check_tags(record.image_id, record.tags, class_names, source)
        object.__setattr__(self, "class_names", class_names)
        object.__setattr__(self, "records", tuple(sorted(records, key=lambda record: record.image_id)))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready mapping (lists, not tuples)."""
        return {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "name": self.name,
            "class_names": list(self.class_names),
            "records": [{**asdict(record), "tags": list(record.tags)} for record in self.records],
        }

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, indent 1, records sorted by id, ASCII only, final newline."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=1, ensure_ascii=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> Manifest:
        """Parse and validate `to_json` output; `source` (a file name) is named in every error.

        Raises:
            DatasetError: on JSON syntax errors (with line and column), unknown or missing keys,
                wrong types, unsafe paths, duplicate ids or unknown tags.
        """
        data = parse_json(text, source)
        _expect_keys(data, {"format", "version", "name", "class_names", "records"}, source, "manifest")
        if data["format"] != MANIFEST_FORMAT or data["version"] not in _READABLE_VERSIONS:
            raise DatasetError(
                f"{source}: not a {MANIFEST_FORMAT} version {MANIFEST_VERSION} file (format {data['format']!r}, version {data['version']!r})"
            )
        if not isinstance(data["class_names"], list) or not isinstance(data["records"], list):
            raise DatasetError(f"{source}: 'class_names' and 'records' must be lists")
        fields = {"image_id", "image_path", "tags", "ground_truth_path", "sha256", "width", "height"}
        if data["version"] >= 2:
            fields.add("ground_truth_root")
        records = []
        for index, entry in enumerate(data["records"]):
            _expect_keys(entry, fields, source, f"record {index}")
            try:
                records.append(ImageRecord(**entry))
            except DatasetError as error:
                raise DatasetError(f"{source}: record {index}: {error}") from None
        try:
            return cls(data["name"], tuple(records), tuple(data["class_names"]))
        except DatasetError as error:
            raise DatasetError(f"{source}: {error}") from None


def manifest_sha256(manifest: Manifest) -> str:
    """Hex SHA-256 of the manifest's canonical JSON (UTF-8): its content identity."""
    return hashlib.sha256(manifest.to_json().encode("utf-8")).hexdigest()


def _expect_keys(data: object, expected: set[str], source: str, what: str) -> None:
    """DatasetError unless `data` is a dict with exactly the `expected` keys."""
    if not isinstance(data, dict):
        raise DatasetError(f"{source}: {what} must be a JSON object, not {type(data).__name__}")
    missing, unknown = sorted(expected - set(data)), sorted(set(data) - expected)
    if missing or unknown:
        raise DatasetError(f"{source}: {what} has missing keys {missing} / unknown keys {unknown}")
