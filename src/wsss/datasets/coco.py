"""MS COCO 2014 instances JSON: image-level tags from the instance annotations.

Tags are the category names of an image's annotations, unique, in order of first appearance in
the `annotations` list, renamed through `category_to_class` (COCO's spellings differ from the
CLIP-ES class lists for six classes). Images without any annotation are skipped, as the CLIP-ES
train list does (82,081 of 82,783 train2014 images remain).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from wsss.datasets.records import (
    ImageRecord,
    Manifest,
    check_tags,
    check_unique_ids,
    existing_ground_truth,
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

COCO_TO_CLIPES_NAMES: Mapping[str, str] = {
    "motorcycle": "motorbike",
    "airplane": "aeroplane",
    "couch": "sofa",
    "potted plant": "pottedplant",
    "dining table": "diningtable",
    "tv": "tvmonitor",
}


def _int_field(entry: Any, key: str, path: Path, what: str) -> int:
    """`entry[key]` as an int (bools refused); DatasetError naming the file and entry otherwise."""
    if not isinstance(entry, dict):
        raise DatasetError(f"{path}: {what} must be a JSON object, not {type(entry).__name__}")
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise DatasetError(f"{path}: {what} needs an integer {key!r}, got {value!r}")
    return value


def _str_field(entry: dict[str, Any], key: str, path: Path, what: str) -> str:
    """`entry[key]` as a non-empty string; DatasetError naming the file and entry otherwise."""
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise DatasetError(f"{path}: {what} needs a non-empty string {key!r}, got {value!r}")
    return value


def _section(data: Any, key: str, path: Path) -> list[Any]:
    """One of the top-level lists `images`, `annotations`, `categories`."""
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise DatasetError(f"{path}: expected a top-level {key!r} list")
    return data[key]


def coco_image_tags(
    data: Any, path: Path, category_to_class: Mapping[str, str] | None = None
) -> tuple[dict[int, str], dict[int, tuple[str, ...]]]:
    """File names by COCO image id, and tags (renamed) of the images that have annotations.

    Args:
        data: the parsed instances JSON.
        path: its file, named in errors.
        category_to_class: COCO category name -> class name; names not in it are kept as-is.

    Raises:
        DatasetError: on missing sections, wrong types, repeated image or category ids, and
            annotations that refer to unknown images or categories.
    """
    rename = dict(category_to_class or {})
    categories: dict[int, str] = {}
    for index, entry in enumerate(_section(data, "categories", path)):
        category_id = _int_field(entry, "id", path, f"categories[{index}]")
        if category_id in categories:
            raise DatasetError(f"{path}: category id {category_id} appears twice")
        name = _str_field(entry, "name", path, f"categories[{index}]")
        categories[category_id] = rename.get(name, name)
    file_names: dict[int, str] = {}
    for index, entry in enumerate(_section(data, "images", path)):
        image_id = _int_field(entry, "id", path, f"images[{index}]")
        if image_id in file_names:
            raise DatasetError(f"{path}: image id {image_id} appears twice")
        file_names[image_id] = _str_field(entry, "file_name", path, f"images[{index}]")
    names_per_image: dict[int, list[str]] = {}
    for index, entry in enumerate(_section(data, "annotations", path)):
        what = f"annotations[{index}]"
        image_id = _int_field(entry, "image_id", path, what)
        category_id = _int_field(entry, "category_id", path, what)
        if image_id not in file_names:
            raise DatasetError(f"{path}: {what} refers to unknown image id {image_id}")
        if category_id not in categories:
            raise DatasetError(f"{path}: {what} refers to unknown category id {category_id}")
        names_per_image.setdefault(image_id, []).append(categories[category_id])
    tags = {image_id: unique_in_order(names) for image_id, names in names_per_image.items()}
    return file_names, tags


def load_coco(
    root: Path,
    instances_json: str,
    images_dir: str,
    class_names: Sequence[str],
    ground_truth_dir: str | None = None,
    *,
    category_to_class: Mapping[str, str] | None = None,
    name: str | None = None,
    failures: FailureReport | None = None,
) -> Manifest:
    """Manifest of a COCO 2014 split from its instances JSON.

    Args:
        root: dataset root; every other path is relative to it.
        instances_json: e.g. `annotations/instances_train2014.json`.
        images_dir: e.g. `train2014`; images are `<images_dir>/<file_name>`.
        class_names: the class list tags must belong to (after renaming).
        ground_truth_dir: directory of `<stem>.png` label maps, used where the file exists.
        category_to_class: COCO name -> class name; pass `COCO_TO_CLIPES_NAMES` for the CLIP-ES
            lists (`wsss.text.COCO_CLASS_NAMES`). None keeps COCO's names.
        name: manifest name; default the JSON file's stem.
        failures: when given, per-image problems (unsafe name, duplicate stem, unknown tag,
            missing or unreadable image, size disagreeing with the JSON) are recorded there and
            the image left out; problems of the JSON itself still raise.

    Returns:
        The manifest; image id = file-name stem; images without annotations are left out.

    Raises:
        DatasetError: naming the file for a missing or malformed JSON, missing images, a header
            size that disagrees with the JSON, unsafe names, duplicate stems and unknown tags.
    """
    root = Path(root)
    for relative, what in ((instances_json, "instances_json"), (images_dir, "images_dir")):
        validate_relative_path(relative, what)
    if ground_truth_dir is not None:
        validate_relative_path(ground_truth_dir, "ground_truth_dir")
    json_path = safe_join(root, instances_json)
    data = parse_json(read_text(json_path, "instances JSON"), str(json_path))
    file_names, tags_by_coco_id = coco_image_tags(data, json_path, category_to_class)
    sizes = {entry["id"]: (entry.get("width"), entry.get("height")) for entry in data["images"]}
    hint = "" if category_to_class else " (COCO spellings? pass category_to_class=COCO_TO_CLIPES_NAMES)"
    annotated = sorted(tags_by_coco_id, key=lambda coco_id: file_names[coco_id])
    stems, usable = [], []
    for coco_id in annotated:
        what = f"{json_path}: file_name of image {coco_id}"
        try:
            file_name = validate_relative_path(file_names[coco_id], what)
            stems.append(validate_image_id(PurePosixPath(file_name).stem, f"{what}: image id"))
            usable.append(coco_id)
        except DatasetError as error:
            if failures is None:
                raise
            failures.add(str(file_names[coco_id]), str(json_path), str(error))
    if failures is None:
        check_unique_ids(stems, str(json_path))
    else:
        repeated = {stem for stem, count in Counter(stems).items() if count > 1}
        for coco_id, stem in zip(usable, stems, strict=True):
            if stem in repeated:
                failures.add(stem, str(json_path), f"duplicate image id {stem!r} ({file_names[coco_id]})")
        kept = [(coco_id, stem) for coco_id, stem in zip(usable, stems, strict=True) if stem not in repeated]
        usable, stems = [coco_id for coco_id, _ in kept], [stem for _, stem in kept]
    records = []
    for coco_id, image_id in zip(usable, stems, strict=True):
        try:
            records.append(_coco_record(root, json_path, images_dir, coco_id, image_id, file_names[coco_id],
                                        tags_by_coco_id[coco_id], class_names, hint, ground_truth_dir, sizes[coco_id]))
        except DatasetError as error:
            if failures is None:
                raise
            failures.add(image_id, str(json_path), str(error))
    return Manifest(name or PurePosixPath(instances_json).stem, tuple(records), tuple(class_names))


def _coco_record(
    root: Path,
    json_path: Path,
    images_dir: str,
    coco_id: int,
    image_id: str,
    file_name: str,
    tags: tuple[str, ...],
    class_names: Sequence[str],
    hint: str,
    ground_truth_dir: str | None,
    expected: tuple[object, object],
) -> ImageRecord:
    """One image's record, checked against the JSON's width and height (DatasetError otherwise)."""
    check_tags(image_id, tags, class_names, str(json_path), hint)
    ground_truth = existing_ground_truth(root, ground_truth_dir, image_id)
    record = make_record(root, image_id, f"{images_dir}/{file_name}", tags, ground_truth)
    # Width/height in the JSON are optional, but when present they must describe the file,
    # otherwise masks and annotations would not line up with the pixels.
    if expected != (None, None) and expected != (record.width, record.height):
        raise DatasetError(
            f"{json_path}: image {coco_id} ({record.image_path}) is {record.width}x{record.height} "
            f"in its header but {expected[0]}x{expected[1]} in the JSON"
        )
    return record
