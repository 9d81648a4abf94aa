"""MS COCO instances JSON (2014/2017 as published): image-level tags and ground truth from it.

Tags are the category names of an image's annotations, unique, in order of first appearance in
the `annotations` list, renamed through `category_to_class` (the vocabulary's `dataset_names`:
COCO's official spellings differ from the CLIP-ES class lists for six classes). Images without
any annotation are skipped, as the CLIP-ES train list does (82,081 of 82,783 train2014 images).

Ground truth comes from the JSON itself: the polygons and RLE of each image are rasterised
(`wsss.datasets.coco_masks`, overlap and crowd rule there) into a palette PNG in the
`derived_ground_truth` folder, named `<image id>.<content key>.png`; a file whose key is already
there is reused, files of other keys are removed. A folder of ready-made label PNGs
(`ground_truth_dir`) is used instead when given.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from wsss.datasets.coco_masks import label_map_key, semantic_label_map, write_label_map
from wsss.datasets.ground_truth import check_ground_truth_dir, existing_ground_truth
from wsss.datasets.ids import colliding_ids, collision_reason
from wsss.datasets.records import (
    ImageRecord,
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
from wsss.io.atomic import is_temporary

UNKNOWN_TAG_HINT = " (if the dataset spells a class differently, map it with classes.dataset_names)"


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


@dataclass
class CocoIndex:
    """What the loader needs from an instances JSON, by COCO image id.

    Attributes:
        categories: category names (renamed) by category id.
        file_names: image file names.
        sizes: `(width, height)` from the JSON (either may be None when absent).
        tags: unique renamed category names of the annotated images.
        annotations: each annotated image's annotations, in JSON order.
        class_of: the renamed class name of each annotation of `annotations` (parallel lists).
        has_segmentation: whether any annotation in the file carries a segmentation.
        refused: images left out, with the reason (an annotation of an unknown category).
    """

    categories: dict[int, str] = field(default_factory=dict)
    file_names: dict[int, str] = field(default_factory=dict)
    sizes: dict[int, tuple[Any, Any]] = field(default_factory=dict)
    tags: dict[int, tuple[str, ...]] = field(default_factory=dict)
    annotations: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    class_of: dict[int, list[str]] = field(default_factory=dict)
    has_segmentation: bool = False
    refused: dict[int, str] = field(default_factory=dict)


def index_instances(data: Any, path: Path, category_to_class: Mapping[str, str] | None = None, failures: FailureReport | None = None) -> CocoIndex:
    """Index a parsed instances JSON (categories renamed through `category_to_class`).

    With `failures`, an annotation that names an unknown (or no integer) image id is recorded
    there and left out, and an image with an annotation of an unknown category is marked refused
    (`CocoIndex.refused`: its tags and ground truth would be incomplete); the rest is kept.

    Raises:
        DatasetError: on missing sections, wrong types, repeated image or category ids, and
            (without `failures`) annotations that refer to unknown images or categories.
    """
    rename = dict(category_to_class or {})
    categories: dict[int, str] = {}
    for index, entry in enumerate(_section(data, "categories", path)):
        category_id = _int_field(entry, "id", path, f"categories[{index}]")
        if category_id in categories:
            raise DatasetError(f"{path}: category id {category_id} appears twice")
        name = _str_field(entry, "name", path, f"categories[{index}]")
        categories[category_id] = rename.get(name, name)
    coco = CocoIndex(categories)
    for index, entry in enumerate(_section(data, "images", path)):
        image_id = _int_field(entry, "id", path, f"images[{index}]")
        if image_id in coco.file_names:
            raise DatasetError(f"{path}: image id {image_id} appears twice")
        coco.file_names[image_id] = _str_field(entry, "file_name", path, f"images[{index}]")
        coco.sizes[image_id] = (entry.get("width"), entry.get("height"))
    for index, entry in enumerate(_section(data, "annotations", path)):
        what = f"annotations[{index}]"
        try:
            image_id = _int_field(entry, "image_id", path, what)
            if image_id not in coco.file_names:
                raise DatasetError(f"{path}: {what} refers to unknown image id {image_id}")
        except DatasetError as error:
            if failures is None:
                raise
            failures.add(f"{what} (id {entry.get('id') if isinstance(entry, dict) else None})", str(path), f"{error}; the annotation is left out")
            continue
        try:
            category_id = _int_field(entry, "category_id", path, what)
            if category_id not in categories:
                raise DatasetError(f"{path}: {what} refers to unknown category id {category_id}")
        except DatasetError as error:
            if failures is None:
                raise
            coco.refused.setdefault(image_id, f"{error}; the image's tags and ground truth would be incomplete")
            continue
        coco.annotations.setdefault(image_id, []).append(entry)
        coco.class_of.setdefault(image_id, []).append(categories[category_id])
        coco.has_segmentation = coco.has_segmentation or entry.get("segmentation") is not None
    for image_id in coco.refused:  # kept in the index, so the image is reported under its own id
        coco.class_of.setdefault(image_id, [])
        coco.annotations.setdefault(image_id, [])
    coco.tags = {image_id: unique_in_order(names) for image_id, names in coco.class_of.items()}
    return coco


def coco_image_tags(data: Any, path: Path, category_to_class: Mapping[str, str] | None = None) -> tuple[dict[int, str], dict[int, tuple[str, ...]]]:
    """File names by COCO image id, and tags (renamed) of the images that have annotations."""
    coco = index_instances(data, path, category_to_class)
    return coco.file_names, coco.tags


def load_coco(
    root: Path,
    instances_json: str,
    images_dir: str,
    class_names: Sequence[str],
    ground_truth_dir: str | None = None,
    *,
    category_to_class: Mapping[str, str] | None = None,
    derived_ground_truth: Path | None = None,
    name: str | None = None,
    failures: FailureReport | None = None,
) -> Manifest:
    """Manifest of a COCO split from its instances JSON (official 2014/2017 files as published).

    Args:
        root: dataset root; every other path is relative to it.
        instances_json: e.g. `annotations/instances_val2014.json`.
        images_dir: e.g. `val2014`; images are `<images_dir>/<file_name>`.
        class_names: the class list tags must belong to (after renaming); label = index + 1.
        ground_truth_dir: folder of ready-made `<stem>.png` label maps (must exist), used where
            the file exists; None = ground truth from the JSON's masks (`derived_ground_truth`).
        category_to_class: COCO name -> class name (`ClassVocabulary.rename`; the COCO preset
            maps the official names). None keeps COCO's names.
        derived_ground_truth: folder for the label maps rasterised from the JSON (a cache keyed
            by content); None = no ground truth from the JSON.
        name: manifest name; default the JSON file's stem.
        failures: when given, per-image problems (unsafe name, duplicate or colliding stem,
            unknown tag, missing or unreadable image, size disagreeing with the JSON, malformed
            segmentation, an annotation of an unknown category) are recorded there and the image
            left out, and an annotation naming an unknown image is recorded and left out; problems
            of the JSON itself still raise.

    Returns:
        The manifest; image id = file-name stem; images without annotations are left out.

    Raises:
        DatasetError: naming the file for a missing or malformed JSON, one in which no image has
            a usable annotation, a missing `ground_truth_dir`, and (without `failures`) every
            per-image problem.
    """
    root = Path(root)
    for relative, what in ((instances_json, "instances_json"), (images_dir, "images_dir")):
        validate_relative_path(relative, what)
    check_ground_truth_dir(root, ground_truth_dir)
    json_path = safe_join(root, instances_json)
    data = parse_json(read_text(json_path, "instances JSON"), str(json_path))
    coco = index_instances(data, json_path, category_to_class, failures)
    if not any(coco.tags.values()):
        raise DatasetError(
            f"{json_path}: no image has a usable annotation ({len(coco.file_names)} images, "
            f"{len(data['annotations'])} annotations), so no image has tags (images without annotations are skipped)"
        )
    if failures is not None:  # left out as the CLIP-ES lists leave them out: said, not failed
        failures.skip("no annotations", len(coco.file_names) - len(coco.tags))
    usable, stems = _usable_images(coco, json_path, failures)
    masks = None
    if ground_truth_dir is None and derived_ground_truth is not None and coco.has_segmentation:
        masks = _DerivedMasks(Path(derived_ground_truth), json_path, tuple(class_names))
    records = []
    for coco_id, image_id in zip(usable, stems, strict=True):
        if coco_id in coco.refused and failures is not None:
            failures.add(image_id, str(json_path), coco.refused[coco_id])
            continue
        try:
            record = _coco_record(root, json_path, images_dir, coco, coco_id, image_id, class_names, ground_truth_dir)
            records.append(masks.attach(record, coco, coco_id) if masks else record)
        except DatasetError as error:
            if failures is None:
                raise
            failures.add(image_id, str(json_path), str(error))
    if masks is not None:
        masks.remove_unused()
    return Manifest(name or PurePosixPath(instances_json).stem, tuple(records), tuple(class_names))


def _usable_images(coco: CocoIndex, json_path: Path, failures: FailureReport | None) -> tuple[list[int], list[str]]:
    """COCO ids and stems of the annotated images whose names are safe, unique and non-colliding
    (by file name); the others are failures (or raise without a report)."""
    annotated = sorted(coco.tags, key=lambda coco_id: coco.file_names[coco_id])
    stems, usable = [], []
    for coco_id in annotated:
        what = f"{json_path}: file_name of image {coco_id}"
        try:
            file_name = validate_relative_path(coco.file_names[coco_id], what)
            stems.append(validate_image_id(PurePosixPath(file_name).stem, f"{what}: image id"))
            usable.append(coco_id)
        except DatasetError as error:
            if failures is None:
                raise
            failures.add(str(coco.file_names[coco_id]), str(json_path), str(error))
    if failures is None:
        check_unique_ids(stems, str(json_path))
    repeated = {stem for stem, count in Counter(stems).items() if count > 1}
    refused = {position: collision_reason(stem, earlier) for position, stem, earlier in colliding_ids(stems) if stem not in repeated}
    kept_ids, kept_stems = [], []
    for position, (coco_id, stem) in enumerate(zip(usable, stems, strict=True)):
        reason = f"duplicate image id {stem!r} ({coco.file_names[coco_id]})" if stem in repeated else refused.get(position)
        if reason is None:
            kept_ids.append(coco_id)
            kept_stems.append(stem)
        elif failures is None:
            raise DatasetError(f"{json_path}: {reason}")
        else:
            failures.add(stem, str(json_path), reason)
    return kept_ids, kept_stems


def _coco_record(
    root: Path,
    json_path: Path,
    images_dir: str,
    coco: CocoIndex,
    coco_id: int,
    image_id: str,
    class_names: Sequence[str],
    ground_truth_dir: str | None,
) -> ImageRecord:
    """One image's record, checked against the JSON's width and height (DatasetError otherwise)."""
    check_tags(image_id, coco.tags[coco_id], class_names, str(json_path), UNKNOWN_TAG_HINT)
    # Ascending class id, as the reference's COCO lists (`coco14/train.txt`) hold them: the order of
    # an image's maps decides float16 ties of the label argmax, so JSON order would change masks.
    tags = tuple(sorted(coco.tags[coco_id], key=list(class_names).index))
    ground_truth = existing_ground_truth(root, ground_truth_dir, image_id)
    record = make_record(root, image_id, f"{images_dir}/{coco.file_names[coco_id]}", tags, ground_truth)
    expected = coco.sizes[coco_id]
    # Width/height in the JSON are optional, but when present they must describe the file,
    # otherwise masks and annotations would not line up with the pixels.
    if expected not in ((None, None), (record.width, record.height)):
        raise DatasetError(
            f"{json_path}: image {coco_id} ({record.image_path}) is {record.width}x{record.height} "
            f"in its header but {expected[0]!r}x{expected[1]!r} in the JSON"
        )
    return record


@dataclass
class _DerivedMasks:
    """The label maps rasterised from the JSON, cached in `folder` by content key."""

    folder: Path
    json_path: Path
    class_names: tuple[str, ...]
    used: set[str] = field(default_factory=set)

    def attach(self, record: ImageRecord, coco: CocoIndex, coco_id: int) -> ImageRecord:
        """`record` with its derived ground truth (rasterised unless cached).

        Raises:
            DatasetError: naming the JSON and annotation when a segmentation is missing or malformed.
        """
        annotations = coco.annotations[coco_id]
        missing = [entry.get("id", "?") for entry in annotations if entry.get("segmentation") is None]
        if missing:
            raise DatasetError(
                f"{self.json_path}: image {coco_id}: annotation(s) {missing} have no 'segmentation' while "
                "others in the file do; its ground truth would be incomplete"
            )
        labels = [self.class_names.index(name) + 1 for name in coco.class_of[coco_id]]
        key = label_map_key(annotations, labels, record.height, record.width)
        file_name = f"{record.image_id}.{key[:16]}.png"
        path = self.folder / file_name
        if not path.is_file():
            try:
                label_map = semantic_label_map(annotations, labels, record.height, record.width)
            except ValueError as error:
                raise DatasetError(f"{self.json_path}: image {coco_id}: {error}") from None
            write_label_map(path, label_map)
        self.used.add(file_name)
        return ImageRecord(record.image_id, record.image_path, record.tags, file_name, record.sha256, record.width, record.height, "derived")

    def remove_unused(self) -> None:
        """Delete cached maps of keys this run did not use (changed annotations, removed images)."""
        if not self.folder.is_dir():
            return
        for path in self.folder.iterdir():
            if path.is_file() and path.name not in self.used and (path.name.endswith((".png", ".partial")) or is_temporary(path)):
                path.unlink()


def __getattr__(name: str) -> Any:
    """`COCO_TO_CLIPES_NAMES`, the earlier name of `wsss.text.vocabulary.COCO_DATASET_NAMES`
    (looked up on use: importing wsss.text loads torch)."""
    if name == "COCO_TO_CLIPES_NAMES":
        from wsss.text.vocabulary import COCO_DATASET_NAMES

        return COCO_DATASET_NAMES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
