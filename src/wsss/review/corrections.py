"""The corrections store: human-corrected masks that training prefers to pseudo masks.

Layout of a store directory (by default `corrections/` at the repository root, deliberately NOT
a stage output, so `dvc repro` and relabel runs never delete or rewrite it):

    masks/<image_id>.png       palette PNG, label = class index (0 background), 255 = ignore
    records/<image_id>.json    source file, its SHA-256, import time, image SHA-256 and size
    history/<image_id>/<time>  earlier versions when a correction is imported again

A record is written after its mask (both atomically), so an interrupted import leaves either the
old correction or the new one. Imported files are checked by `prepare`'s own readers (COCO index
and segmentations, the label-map reader); reading a stored mask checks its recorded SHA-256 and
then checks it again as an import would (a hand edit or a merge may have updated both), and
nothing that resolves outside the store is read.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from wsss.bounded_parsing import MAX_DATASET_BYTES, MAX_RECORD_BYTES, ParseError, loads_json, read_bytes_file, read_json_file
from wsss.datasets.coco import index_instances
from wsss.datasets.coco_masks import instance_mask
from wsss.datasets.ground_truth import GROUND_TRUTH_MODES, label_values_problem, read_label_pixels
from wsss.errors import DatasetError, WsssError
from wsss.io.atomic import write_bytes_atomic
from wsss.palette import labels_from_colours, palette_png_bytes

MASKS, RECORDS, HISTORY = "masks", "records", "history"
IGNORE_NAME = "ignore"


class CorrectionError(WsssError):
    """A corrected mask could not be read, validated or stored (names the file and the reason)."""


@dataclass(frozen=True)
class ImageSpec:
    """What a correction is checked against: the manifest's size and bytes hash of the image."""

    image_id: str
    width: int
    height: int
    sha256: str


@dataclass(frozen=True)
class ParsedCorrection:
    """One validated corrected mask, not yet stored. `labels` is `(H, W)` uint8."""

    image_id: str
    labels: np.ndarray
    source_file: str
    source_sha256: str
    source_format: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CorrectionRecord:
    """What the store remembers of one correction (the lineage of a human-corrected mask)."""

    image_id: str
    mask_file: str
    mask_sha256: str
    source_file: str
    source_sha256: str
    source_format: str
    imported_at: str
    image_sha256: str
    width: int
    height: int
    labels: list[int] = field(default_factory=list)

    def describe(self) -> str:
        return f"human-corrected (file {self.source_file}, sha256 {self.source_sha256}, time {self.imported_at})"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def label_names(class_names: Sequence[str], ignore_index: int = 255) -> dict[str, int]:
    """Category name -> label value: background 0, class c at index c, `ignore` at the ignore index."""
    names = {name: index for index, name in enumerate(class_names)}
    names.setdefault(IGNORE_NAME, ignore_index)
    return names


COLOUR_MODES = ("RGB", "RGBA")
"""Besides the ground-truth encodings: colour masks in the dataset palette (CVAT's mask export)."""


def _checked_labels(where: str, labels: np.ndarray, num_classes: int, ignore_index: int) -> np.ndarray:
    """`labels` as uint8 when every value is a label (0..C-1 with background, or the ignore index)."""
    problem = label_values_problem(labels, num_classes - 1, ignore_index)
    if problem is not None:
        raise CorrectionError(f"{where}: mask {problem}")
    return labels.astype(np.uint8)


def decode_mask(
    path: Path, data: bytes, spec: ImageSpec, num_classes: int, ignore_index: int, modes: Sequence[str] = (*GROUND_TRUTH_MODES, *COLOUR_MODES)
) -> np.ndarray:
    """A mask PNG's labels `(H, W)` uint8, read as `prepare` reads ground truth: mode and size checked on
    the header before decoding (a decompression bomb is refused unread), values 0..C-1 or the ignore index.

    Raises:
        CorrectionError: naming the file and the reason.
    """
    try:
        array, mode = read_label_pixels(path, what="mask", size=(spec.width, spec.height), modes=modes, data=data)
    except DatasetError as error:
        raise CorrectionError(f"{path}: {str(error).removeprefix(f'mask {path} ')}") from None
    if mode in COLOUR_MODES:
        try:
            return labels_from_colours(array, [*range(num_classes), ignore_index])
        except ValueError as error:
            raise CorrectionError(f"{path}: {error}") from None
    return _checked_labels(str(path), array, num_classes, ignore_index)


def _display(path: Path, relative_to: Path | None) -> str:
    resolved = path.resolve()
    if relative_to is not None and resolved.is_relative_to(relative_to.resolve()):
        return resolved.relative_to(relative_to.resolve()).as_posix()
    return path.name


def read_png_correction(
    path: Path, images: Mapping[str, ImageSpec], class_names: Sequence[str], ignore_index: int = 255, relative_to: Path | None = None
) -> ParsedCorrection:
    """A corrected mask `<image_id>.png`, validated against the image's size and the class range."""
    spec = images.get(path.stem)
    if spec is None:
        raise CorrectionError(f"{path}: no image {path.stem!r} in the manifest (name the file <image_id>.png)")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CorrectionError(f"{path}: cannot read ({error})") from error
    labels = decode_mask(path, data, spec, len(class_names), ignore_index)
    return ParsedCorrection(spec.image_id, labels, _display(path, relative_to), sha256_bytes(data), "png")


def read_coco_corrections(
    path: Path, images: Mapping[str, ImageSpec], class_names: Sequence[str], ignore_index: int = 255, relative_to: Path | None = None
) -> tuple[list[ParsedCorrection], list[str]]:
    """Corrected masks (and notes on skipped images) from a COCO JSON file (RLE or polygons).

    Read as `prepare` reads an instances JSON (`wsss.datasets.coco.index_instances`: sections, ids,
    references) and every segmentation checked by `wsss.datasets.coco_masks` (polygon coordinates
    finite and near the image, RLE size the image's and runs covering it exactly) before
    pycocotools decodes it. Images are matched by the stem of `file_name`, categories by name
    (`background`, the class names, `ignore`). Annotations are painted in file order; where they
    overlap the later one wins (counted in the notes). Images without any annotation are skipped
    (noted), since "no annotation" in an exported task usually means "not looked at", not "all
    background".
    """
    try:
        data = read_bytes_file(path, max_bytes=MAX_DATASET_BYTES)
        coco = index_instances(loads_json(data, str(path)), path)
    except (OSError, ParseError, DatasetError) as error:
        raise CorrectionError(f"{path}: not a readable COCO JSON file ({str(error).removeprefix(f'{path}: ')})") from error
    names = label_names(class_names, ignore_index)
    for category_id, name in coco.categories.items():
        if name not in names:
            raise CorrectionError(f"{path}: category {name!r} (id {category_id}) is not a class of the dataset")
    digest = sha256_bytes(data)
    parsed, notes = [], []
    for coco_id, file_name in coco.file_names.items():
        spec = images.get(Path(file_name).stem)
        where = f"{path}: image {file_name!r}"
        if spec is None:
            raise CorrectionError(f"{where}: no image {Path(file_name).stem!r} in the manifest")
        if coco.sizes[coco_id] != (spec.width, spec.height) or not all(type(v) is int for v in coco.sizes[coco_id]):
            width, height = coco.sizes[coco_id]
            raise CorrectionError(f"{where}: is {width!r}x{height!r} in the file but {spec.width}x{spec.height} in the manifest")
        annotations = coco.annotations.get(coco_id, [])
        if not annotations:
            notes.append(f"{where}: no annotations, skipped (import an all-background correction as a PNG)")
            continue
        labels = np.zeros((spec.height, spec.width), dtype=np.uint8)
        painted = np.zeros((spec.height, spec.width), dtype=bool)
        overlap, empty = 0, []
        for annotation, name in zip(annotations, coco.class_of[coco_id], strict=True):
            try:
                binary = instance_mask(annotation.get("segmentation"), spec.height, spec.width).astype(bool)
            except ValueError as error:
                raise CorrectionError(f"{where}: annotation {annotation.get('id')}: {error}") from None
            empty.extend([annotation.get("id")] if not binary.any() else [])
            overlap += int(np.sum(binary & painted))
            labels[binary] = names[name]
            painted |= binary
        if not painted.any():  # only empty shapes: as good as no annotation, not an all-background mask
            notes.append(f"{where}: its annotations paint no pixel (empty masks, or polygons of fewer than 3 points), skipped")
            continue
        overlaps: tuple[str, ...] = (f"{overlap} pixels covered by more than one annotation (the later annotation wins)",) if overlap else ()
        overlaps += (f"annotation(s) {empty} paint no pixel (empty, or polygons of fewer than 3 points)",) if empty else ()
        parsed.append(ParsedCorrection(spec.image_id, labels, _display(path, relative_to), digest, "coco", overlaps))
    return parsed, notes


def read_corrections(
    source: Path, images: Mapping[str, ImageSpec], class_names: Sequence[str], ignore_index: int = 255, relative_to: Path | None = None
) -> tuple[list[ParsedCorrection], list[str]]:
    """Every corrected mask in a PNG file, a COCO JSON file or a folder of them (recursively).

    Everything is validated before anything is stored: one bad file refuses the whole import.

    Returns:
        The corrections and the notes (skipped images, overlaps).

    Raises:
        CorrectionError: listing every bad file with its reason; also when nothing is found or an
            image is corrected twice.
    """
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in (".png", ".json"))
    elif source.is_file():
        files = [source]
    else:
        raise CorrectionError(f"{source}: no such file or folder")
    parsed: list[ParsedCorrection] = []
    notes: list[str] = []
    problems: list[str] = []
    for path in files:
        try:
            if path.suffix.lower() == ".png":
                parsed.append(read_png_correction(path, images, class_names, ignore_index, relative_to))
            elif path.suffix.lower() == ".json":
                found, skipped = read_coco_corrections(path, images, class_names, ignore_index, relative_to)
                parsed.extend(found)
                notes.extend(skipped)
            else:
                problems.append(f"{path}: not a .png or COCO .json file")
        except CorrectionError as error:
            problems.append(str(error))
    seen: dict[str, str] = {}
    for item in parsed:
        if item.image_id in seen:
            problems.append(f"image {item.image_id!r} is corrected twice ({seen[item.image_id]} and {item.source_file})")
        seen[item.image_id] = item.source_file
        notes.extend(f"{item.source_file}: {item.image_id}: {note}" for note in item.notes)
    if problems:
        raise CorrectionError("corrections refused, nothing was imported:\n  " + "\n  ".join(problems))
    if not parsed:
        listed = "".join(f"\n  {note}" for note in notes[:10])
        raise CorrectionError(f"{source}: no corrected masks found (expected <image_id>.png files or a COCO JSON){listed}")
    return parsed, notes


class CorrectionStore:
    """Read and add human-corrected masks in a store directory (created on first import)."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    def mask_path(self, image_id: str) -> Path:
        return self.directory / MASKS / f"{image_id}.png"

    def record_path(self, image_id: str) -> Path:
        return self.directory / RECORDS / f"{image_id}.json"

    def _inside(self, path: Path) -> Path:
        """`path` when it resolves inside the store (a link out of it is refused: nothing outside is read)."""
        if not path.resolve().is_relative_to(self.directory.resolve()):
            raise CorrectionError(f"{path}: resolves to {path.resolve()}, outside the corrections store; refused")
        return path

    def _read_record(self, path: Path) -> CorrectionRecord:
        self._inside(path)
        try:
            record = CorrectionRecord(**read_json_file(path, max_bytes=MAX_RECORD_BYTES))
        except (OSError, ValueError, TypeError) as error:  # ParseError is a ValueError
            raise CorrectionError(f"{path}: unreadable correction record ({error})") from error
        texts = ("image_id", "mask_file", "mask_sha256", "source_file", "source_sha256", "imported_at", "image_sha256")
        if not all(isinstance(getattr(record, key), str) for key in texts) or not all(
            type(getattr(record, key)) is int and getattr(record, key) > 0 for key in ("width", "height")
        ):
            raise CorrectionError(f"{path}: unreadable correction record (a field has the wrong type)")
        if record.image_id != path.stem:
            raise CorrectionError(f"{path}: the record is named for {path.stem!r} but describes image {record.image_id!r}")
        return record

    def records(self) -> dict[str, CorrectionRecord]:
        """Every stored correction by image id (a malformed record raises, naming its file)."""
        return {record.image_id: record for record in map(self._read_record, self.record_files())}

    def record_files(self) -> list[Path]:
        folder = self.directory / RECORDS
        return sorted(folder.glob("*.json")) if folder.is_dir() else []

    def read_records(self) -> tuple[dict[str, CorrectionRecord], dict[str, str]]:
        """Every readable record by image id, and why each other record file cannot be read (by image id)."""
        records, problems = {}, {}
        for path in self.record_files():
            try:
                records[path.stem] = self._read_record(path)
            except CorrectionError as error:
                problems[path.stem] = str(error)
        return records, problems

    def masks_without_record(self) -> list[Path]:
        """Mask files no record describes (copied in by hand, or a record deleted): never used."""
        folder = self.directory / MASKS
        if not folder.is_dir():
            return []
        return sorted(path for path in folder.iterdir() if not self.record_path(path.stem).is_file())

    def get(self, image_id: str) -> CorrectionRecord | None:
        path = self.record_path(image_id)
        return self._read_record(path) if path.is_file() else None

    def read_mask(self, record: CorrectionRecord, num_classes: int, ignore_index: int = 255) -> np.ndarray:
        """The stored mask, `(H, W)` uint8, checked as an import checks it: its recorded SHA-256,
        then size and mode on the header (before decoding) and label values 0..num_classes-1 or
        `ignore_index` (a hand edit or a merge may have updated the record along with the mask).

        Raises:
            CorrectionError: naming the file and the reason.
        """
        path = self.mask_path(record.image_id)
        if record.mask_file != path.relative_to(self.directory).as_posix():
            raise CorrectionError(
                f"{self.record_path(record.image_id)}: mask_file {record.mask_file!r} is not "
                f"{path.relative_to(self.directory).as_posix()!r}; refused (the store reads nothing else)"
            )
        try:
            data = self._inside(path).read_bytes()
        except OSError as error:
            raise CorrectionError(f"{path}: correction of {record.image_id!r} is missing ({error})") from error
        if sha256_bytes(data) != record.mask_sha256:
            raise CorrectionError(f"{path}: content differs from its record (sha256); re-import the correction")
        spec = ImageSpec(record.image_id, record.width, record.height, record.image_sha256)
        return decode_mask(path, data, spec, num_classes, ignore_index, GROUND_TRUTH_MODES)

    def add(self, items: Iterable[ParsedCorrection], images: Mapping[str, ImageSpec], now: datetime | None = None) -> list[CorrectionRecord]:
        """Store corrections (mask first, then record; earlier versions go to history/)."""
        stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        written = []
        for item in items:
            spec = images[item.image_id]
            png = palette_png_bytes(item.labels)
            mask_path, record_path = self.mask_path(item.image_id), self.record_path(item.image_id)
            for folder in (mask_path.parent, record_path.parent):
                folder.mkdir(parents=True, exist_ok=True)
            if record_path.is_file():
                self._archive(item.image_id, stamp)
            write_bytes_atomic(mask_path, png)
            record = CorrectionRecord(
                image_id=item.image_id,
                mask_file=f"{MASKS}/{item.image_id}.png",
                mask_sha256=sha256_bytes(png),
                source_file=item.source_file,
                source_sha256=item.source_sha256,
                source_format=item.source_format,
                imported_at=stamp,
                image_sha256=spec.sha256,
                width=spec.width,
                height=spec.height,
                labels=[int(v) for v in np.unique(item.labels)],
            )
            write_bytes_atomic(record_path, (json.dumps(asdict(record), indent=1, sort_keys=True) + "\n").encode())
            written.append(record)
        return written

    def _archive(self, image_id: str, stamp: str) -> None:
        target = self.directory / HISTORY / image_id
        target.mkdir(parents=True, exist_ok=True)
        safe = stamp.replace(":", "")
        for source, suffix in ((self.mask_path(image_id), ".png"), (self.record_path(image_id), ".json")):
            if source.is_file():
                shutil.copy2(source, target / f"{safe}{suffix}")


def import_corrections(
    source: Path,
    store: CorrectionStore,
    images: Mapping[str, ImageSpec],
    class_names: Sequence[str],
    ignore_index: int = 255,
    relative_to: Path | None = None,
    now: datetime | None = None,
) -> tuple[list[CorrectionRecord], list[str]]:
    """Validate every corrected mask under `source`, then store them all. Returns records and notes."""
    parsed, notes = read_corrections(source, images, class_names, ignore_index, relative_to)
    return store.add(parsed, images, now), notes
