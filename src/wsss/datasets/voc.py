"""PASCAL VOC 2012 layout: split file, JPEGImages, Annotations XML and/or class PNGs.

Tags come from one of two sources (`tags_from`):

* "annotations": the unique `<object><name>` values of `Annotations/<id>.xml`, in order of
  appearance. Difficult objects are kept by default because the CLIP-ES reference's class labels
  include them. Files are parsed with the standard library's ElementTree after refusing any
  DOCTYPE or ENTITY declaration, which is what makes entity-expansion attacks possible.
* "ground_truth": the classes present in `<ground_truth_dir>/<id>.png` (values 1..C; 0 and 255
  are not tags), in class order, as the reference derives its VOC labels from the masks; no
  Annotations folder is needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from xml.etree import ElementTree

from wsss.datasets.ground_truth import check_ground_truth_dir, existing_ground_truth, read_label_map, tags_from_label_map
from wsss.datasets.ids import colliding_ids, collision_reason
from wsss.datasets.records import Manifest, check_tags, check_unique_ids, make_record, read_text, safe_join, unique_in_order, validate_image_id
from wsss.errors import DatasetError
from wsss.failures import FailureReport

SPLIT_DIRS: tuple[str, ...] = ("ImageSets/Segmentation", "ImageSets/Main")
_FORBIDDEN_XML_MARKERS: tuple[str, ...] = ("<!DOCTYPE", "<!ENTITY")
TAG_SOURCES: tuple[str, ...] = ("annotations", "ground_truth")


class _NoDoctypeTreeBuilder(ElementTree.TreeBuilder):
    """TreeBuilder that aborts on a DOCTYPE; a second guard behind the text check."""

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise ValueError("DOCTYPE declarations are not allowed")


def parse_xml_file(path: Path) -> ElementTree.Element:
    """Parse an XML file that must not declare a DOCTYPE or entities.

    Raises:
        DatasetError: naming the file when it is missing, not UTF-8, declares a DTD or entity,
            or is not well-formed (with line and column).
    """
    text = read_text(path, "annotation file")
    upper = text.upper()
    for marker in _FORBIDDEN_XML_MARKERS:
        if marker in upper:
            raise DatasetError(f"{path}: {marker} declarations are refused (entity expansion risk)")
    parser = ElementTree.XMLParser(target=_NoDoctypeTreeBuilder())  # noqa: S314 - DTDs and entities are refused above and by the builder
    try:
        parser.feed(text)
        return parser.close()
    except ElementTree.ParseError as error:
        # expat's message already says "line L, column C".
        raise DatasetError(f"{path}: malformed XML: {error}") from None
    except ValueError as error:
        raise DatasetError(f"{path}: {error}") from None


def voc_object_names(annotation: ElementTree.Element, path: Path, skip_difficult: bool = False) -> tuple[str, ...]:
    """Unique `<object><name>` values in order of appearance.

    Args:
        annotation: the parsed `<annotation>` root element.
        path: the XML file, named in errors.
        skip_difficult: drop objects marked `<difficult>1</difficult>`.

    Raises:
        DatasetError: when the root is not `<annotation>` or an object has no name.
    """
    if annotation.tag != "annotation":
        raise DatasetError(f"{path}: root element is <{annotation.tag}>, expected <annotation>")
    names = []
    for index, element in enumerate(annotation.findall("object")):
        name = (element.findtext("name") or "").strip()
        if not name:
            raise DatasetError(f"{path}: <object> number {index + 1} has no <name>")
        if skip_difficult and (element.findtext("difficult") or "").strip() == "1":
            continue
        names.append(name)
    return unique_in_order(names)


def read_split_ids(root: Path, split: str) -> list[str]:
    """Image ids of `split`, in file order, from ImageSets/Segmentation, else ImageSets/Main.

    Raises:
        DatasetError: when neither split file exists, a line holds more than one token, an id is
            unsafe or repeated.
    """
    validate_image_id(split, "split name")
    candidates = [safe_join(root, f"{directory}/{split}.txt") for directory in SPLIT_DIRS]
    split_file = next((path for path in candidates if path.is_file()), None)
    if split_file is None:
        raise DatasetError(f"split {split!r}: no split file, looked for {', '.join(map(str, candidates))}")
    ids = []
    for number, line in enumerate(read_text(split_file, "split file").splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != 1:
            raise DatasetError(f"{split_file}: line {number}: expected one image id, got {line.strip()!r}")
        try:
            ids.append(validate_image_id(tokens[0]))
        except DatasetError as error:
            raise DatasetError(f"{split_file}: line {number}: {error}") from None
    check_unique_ids(ids, str(split_file))
    return ids


def load_voc(
    root: Path,
    split: str,
    class_names: Sequence[str],
    ground_truth_dir: str | None = "SegmentationClass",
    *,
    tags_from: str = "annotations",
    skip_difficult: bool = False,
    rename: Mapping[str, str] | None = None,
    name: str | None = None,
    failures: FailureReport | None = None,
) -> Manifest:
    """Manifest of a VOC 2012-style tree.

    Args:
        root: the directory holding JPEGImages/, Annotations/ and ImageSets/ (VOC2012/).
        split: split name; ids come from `ImageSets/Segmentation/<split>.txt`, falling back to
            `ImageSets/Main/<split>.txt`.
        class_names: the dataset's classes; a tag outside them is an error; label = index + 1.
        ground_truth_dir: root-relative folder of `<id>.png` label maps (must exist); an image
            whose PNG is absent gets `ground_truth_path=None`. None: never look.
        tags_from: "annotations" (the XML) or "ground_truth" (the classes in each mask).
        skip_difficult: drop objects marked difficult (default keeps them, as CLIP-ES does).
        rename: XML object name -> class name (the vocabulary's `dataset_names`).
        name: manifest name; default `voc-<split>`.
        failures: when given, per-image problems (annotation, mask, unknown tag, missing or
            unreadable image, an id colliding with an earlier one) are recorded there and the
            image is left out; split-file problems still raise.

    Returns:
        The manifest, records sorted by id. Images with no objects keep `tags=()`.

    Raises:
        DatasetError: naming the file for a missing split file, image, annotation or mask,
            malformed or DTD-bearing XML, unsafe ids or paths, duplicate ids and unknown tags;
            naming `ground_truth_dir` when it does not exist.
    """
    root = Path(root)
    if tags_from not in TAG_SOURCES:
        raise DatasetError(f"tags_from must be one of {TAG_SOURCES}, got {tags_from!r}")
    if tags_from == "ground_truth" and ground_truth_dir is None:
        raise DatasetError("tags_from 'ground_truth' needs a ground_truth_dir of label PNGs")
    check_ground_truth_dir(root, ground_truth_dir)
    image_ids = read_split_ids(root, split)
    refused = {position: collision_reason(image_id, earlier) for position, image_id, earlier in colliding_ids(image_ids)}
    renamed = dict(rename or {})
    records = []
    for position, image_id in enumerate(image_ids):
        source = f"Annotations/{image_id}.xml" if tags_from == "annotations" else f"{ground_truth_dir}/{image_id}.png"
        try:
            if position in refused:
                raise DatasetError(f"{root / source}: {refused[position]}")
            ground_truth = existing_ground_truth(root, ground_truth_dir, image_id)
            if tags_from == "annotations":
                # Inside the try: an annotation symlinked out of the root costs this image only.
                annotation_path = safe_join(root, source)
                names = voc_object_names(parse_xml_file(annotation_path), annotation_path, skip_difficult)
                tags = unique_in_order(renamed.get(tag, tag) for tag in names)
                check_tags(image_id, tags, class_names, str(annotation_path))
            else:
                if ground_truth is None:
                    raise DatasetError(f"{root / source}: no ground-truth mask to take the tags from (tags_from: ground_truth)")
                tags = tags_from_label_map(read_label_map(safe_join(root, ground_truth), len(class_names)), class_names)
            records.append(make_record(root, image_id, f"JPEGImages/{image_id}.jpg", tags, ground_truth))
        except DatasetError as error:
            if failures is None:
                raise
            failures.add(image_id, str(root / source), str(error))
    return Manifest(name or f"voc-{split}", tuple(records), tuple(class_names))
