"""A generic folder of images plus a tags file (CSV or JSON, chosen by extension).

CSV: header `image,tags`, one row per image, tags separated by `;` (`dog.jpg,dog;person`).
JSON: one object mapping image file names to tag lists (`{"dog.jpg": ["dog", "person"]}`).
Image names are relative to `images_dir`; the image id is the file stem. Ground truth, when
`ground_truth_dir` is given, is `<ground_truth_dir>/<image name with .png>` (`sub/dog.jpg` ->
`<ground_truth_dir>/sub/dog.png`), a palette or index PNG (`wsss.datasets.ground_truth`).
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from wsss.datasets.ground_truth import check_ground_truth_dir, existing_ground_truth
from wsss.datasets.ids import colliding_ids, collision_reason
from wsss.datasets.records import (
    Manifest,
    check_tags,
    check_unique_ids,
    make_record,
    parse_json,
    read_text,
    safe_join,
    unique_in_order,
    validate_image_id,
    validate_relative_path,
)
from wsss.errors import DatasetError
from wsss.failures import FailureReport

CSV_HEADER: tuple[str, str] = ("image", "tags")
TAG_SEPARATOR = ";"


def parse_tags_csv(text: str, path: Path) -> list[tuple[str, tuple[str, ...], str]]:
    """`(image name, tags, where)` per data row; `where` is "line N" for later error messages.

    Raises:
        DatasetError: naming the file and line for a wrong header, a row without exactly two
            fields, an empty image name or a CSV syntax error.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows = []
    try:
        header = next(reader, None)
        if header is None or tuple(cell.strip() for cell in header) != CSV_HEADER:
            raise DatasetError(f"{path}: line 1: expected the header 'image,tags', got {header!r}")
        for row in reader:
            where = f"line {reader.line_num}"
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != 2:
                raise DatasetError(f"{path}: {where}: expected 2 fields (image,tags), got {len(row)}: {row!r}")
            image, joined = row[0].strip(), row[1]
            if not image:
                raise DatasetError(f"{path}: {where}: empty image name")
            tags = unique_in_order(tag.strip() for tag in joined.split(TAG_SEPARATOR) if tag.strip())
            rows.append((image, tags, where))
    except csv.Error as error:
        raise DatasetError(f"{path}: line {reader.line_num}: CSV syntax error: {error}") from None
    return rows


def parse_tags_json(text: str, path: Path) -> list[tuple[str, tuple[str, ...], str]]:
    """`(image name, tags, where)` per entry of a JSON object of tag lists.

    Raises:
        DatasetError: naming the file and line/column for syntax errors, the key for wrong types,
            and repeated keys.
    """
    data = parse_json(text, str(path))  # a repeated image name is refused (it would drop tags)
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object of image name -> tag list, got {type(data).__name__}")
    rows = []
    for image, tags in data.items():
        where = f"key {image!r}"
        if not image.strip():
            raise DatasetError(f"{path}: empty image name")
        if not isinstance(tags, list) or not all(isinstance(tag, str) and tag.strip() for tag in tags):
            raise DatasetError(f"{path}: {where}: tags must be a list of non-empty strings, got {tags!r}")
        rows.append((image.strip(), unique_in_order(tag.strip() for tag in tags), where))
    return rows


def load_folder(
    root: Path,
    images_dir: str,
    tags_file: str,
    class_names: Sequence[str],
    ground_truth_dir: str | None = None,
    *,
    rename: Mapping[str, str] | None = None,
    name: str | None = None,
    failures: FailureReport | None = None,
) -> Manifest:
    """Manifest of a folder of images described by a tags file.

    Args:
        root: dataset root; the other paths are relative to it.
        images_dir: directory of the images; names in the tags file are relative to it.
        tags_file: `.csv` (header `image,tags`, tags `;`-separated) or `.json` (object of lists).
        class_names: the class list tags must belong to.
        ground_truth_dir: folder of label PNGs mirroring `images_dir` (must exist); an image
            whose PNG is absent has no ground truth. None: no ground truth.
        rename: tag name in the file -> class name (the vocabulary's `dataset_names`).
        name: manifest name; default the tags file's stem.
        failures: when given, per-image problems (unsafe name, duplicate or colliding id, unknown
            tag, missing or unreadable image) are recorded there and the image is left out instead
            of raising; problems of the whole tags file still raise.

    Returns:
        The manifest; image id = file stem; rows with no tags keep `tags=()`.

    Raises:
        DatasetError: naming the file (and line or key) for syntax errors, unsupported
            extensions, missing images, unsafe names, duplicate ids and unknown tags, and naming
            `ground_truth_dir` when that folder does not exist.
    """
    root = Path(root)
    validate_relative_path(images_dir, "images_dir")
    validate_relative_path(tags_file, "tags_file")
    check_ground_truth_dir(root, ground_truth_dir)
    renamed = dict(rename or {})
    tags_path = safe_join(root, tags_file)
    suffix = tags_path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise DatasetError(f"{tags_path}: unsupported tags file type {suffix!r} (use .csv or .json)")
    text = read_text(tags_path, "tags file")
    rows = parse_tags_csv(text, tags_path) if suffix == ".csv" else parse_tags_json(text, tags_path)
    entries = []
    for image, tags, where in rows:
        try:
            validate_relative_path(image, "image name")
            validate_image_id(PurePosixPath(image).stem)
        except DatasetError as error:
            if failures is None:
                raise DatasetError(f"{tags_path}: {where}: {error}") from None
            failures.add(image, f"{tags_path}: {where}", str(error))
            continue
        entries.append((PurePosixPath(image).stem, image, unique_in_order(renamed.get(tag, tag) for tag in tags), where))
    if failures is None:
        check_unique_ids((image_id for image_id, *_ in entries), str(tags_path))
    else:
        entries = _drop_duplicates(entries, tags_path, failures)
    entries = _drop_colliding(entries, tags_path, failures)
    records = []
    for image_id, image, tags, where in entries:
        try:
            check_tags(image_id, tags, class_names, f"{tags_path}: {where}")
            stem_path = str(PurePosixPath(image).with_suffix(""))
            ground_truth = existing_ground_truth(root, ground_truth_dir, image_id, stem_path)
            records.append(make_record(root, image_id, f"{images_dir}/{image}", tags, ground_truth))
        except DatasetError as error:
            if failures is None:
                raise
            failures.add(image_id, f"{tags_path}: {where}", str(error))
    return Manifest(name or PurePosixPath(tags_file).stem, tuple(records), tuple(class_names))


def _drop_duplicates(
    entries: list[tuple[str, str, tuple[str, ...], str]], tags_path: Path, failures: FailureReport
) -> list[tuple[str, str, tuple[str, ...], str]]:
    """Entries whose id occurs once; every copy of a repeated id is a failure (which one is meant is unknown)."""
    counts = Counter(image_id for image_id, *_ in entries)
    kept = []
    for image_id, image, tags, where in entries:
        if counts[image_id] > 1:
            failures.add(image_id, f"{tags_path}: {where}", f"duplicate image id {image_id!r} ({image})")
        else:
            kept.append((image_id, image, tags, where))
    return kept


def _drop_colliding(
    entries: list[tuple[str, str, tuple[str, ...], str]], tags_path: Path, failures: FailureReport | None
) -> list[tuple[str, str, tuple[str, ...], str]]:
    """Entries without the later of two ids that differ only by case or Unicode normalisation."""
    refused = {position: (image_id, earlier) for position, image_id, earlier in colliding_ids(e[0] for e in entries)}
    kept = []
    for position, entry in enumerate(entries):
        if position not in refused:
            kept.append(entry)
            continue
        reason = collision_reason(*refused[position])
        if failures is None:
            raise DatasetError(f"{tags_path}: {entry[3]}: {reason}")
        failures.add(entry[0], f"{tags_path}: {entry[3]}", reason)
    return kept
